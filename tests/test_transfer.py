"""StyleTransferGAN: fit, stylize on every input kind, save/load, CLI."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fastgram import StyleTransferGAN, data

TINY = dict(ngf=4, ndf=4, n_res_blocks=1, num_scales=1, vgg_weights=None, batch_size=2,
            style_weight=1e-3, content_weight=1e-2, sample_every=2, checkpoint_every=2)
CONTENT = [data.image_path(name) for name in data.CONTENT_IMAGES]
STYLE = [data.image_path(name) for name in data.STYLE_IMAGES]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    gan = StyleTransferGAN(size=32, style_dim=4, device="cpu", **TINY)
    metrics = gan.fit(CONTENT, STYLE, steps=2, out_dir=out, quiet=True)
    assert metrics["step"] == 2
    return gan, out


def odd_image(height=97, width=131, seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(array)


def test_stylize_returns_the_kind_and_size_it_was_given(trained, tmp_path):
    gan, _ = trained
    image = odd_image()
    style = data.image_path("brick")
    out = gan.stylize(image, style=style)
    assert isinstance(out, Image.Image) and out.size == image.size
    path = tmp_path / "odd.png"
    image.save(path)
    from_path = gan.stylize(str(path), style=style)
    assert isinstance(from_path, Image.Image) and from_path.size == (131, 97)
    tensor = torch.rand(3, 97, 131)
    single = gan.stylize(tensor, style=style)
    assert single.shape == (3, 97, 131) and 0 <= single.min() and single.max() <= 1
    batch = gan.stylize(torch.rand(2, 3, 21, 10), style=style)
    assert batch.shape == (2, 3, 21, 10)
    many = gan.stylize([image, tensor], style=style)
    assert isinstance(many, list) and many[0].size == (131, 97) and many[1].shape == tensor.shape
    resized = gan.stylize(image, style=style, size=48)
    assert min(resized.size) == 48


def test_padding_does_not_change_the_unpadded_result_much(trained):
    """A divisible image and the same image with a ragged border agree away
    from the border (reflection padding, then cropping back)."""
    gan, _ = trained
    x = torch.rand(1, 3, 64, 64)
    code = gan.encode_style(data.image_path("brick"))
    whole = gan.stylize(x, style_code=code)
    ragged = gan.stylize(x[:, :, :63, :61], style_code=code)
    assert ragged.shape == (1, 3, 63, 61)
    assert torch.isfinite(ragged).all()
    assert (whole[..., :40, :40] - ragged[..., :40, :40]).abs().mean() < 0.05


def test_style_codes_alpha_and_determinism(trained):
    gan, _ = trained
    content = torch.rand(3, 40, 48)
    codes = gan.encode_style([data.image_path("brick"), data.image_path("hubble_deep_field")])
    assert codes.shape == (2, 4)
    mean_code = codes.mean(0)
    a = gan.stylize(content, style_code=mean_code)
    b = gan.stylize(content, style_code=mean_code)
    assert torch.equal(a, b)
    per_item = gan.stylize([content, content], style_code=codes)
    assert not torch.equal(per_item[0], per_item[1])
    # alpha = 0 is the content's own style whatever the style given.
    own_a = gan.stylize(content, style_code=codes[0], alpha=0.0)
    own_b = gan.stylize(content, style_code=codes[1], alpha=0.0)
    assert torch.equal(own_a, own_b)
    half = gan.stylize(content, style_code=codes[0], alpha=0.5)
    full = gan.stylize(content, style_code=codes[0], alpha=1.0)
    assert not torch.equal(half, full) and not torch.equal(half, own_a)


def test_save_load_round_trip_and_training_checkpoint(trained, tmp_path):
    gan, run_dir = trained
    image = odd_image(40, 36, seed=5)
    style = data.image_path("brick")
    expected = np.asarray(gan.stylize(image, style=style))
    for path in (gan.save(tmp_path / "model.pt"), run_dir / "checkpoint.pt"):
        loaded = StyleTransferGAN.load(path, device="cpu")
        assert loaded.config == gan.config
        assert np.array_equal(np.asarray(loaded.stylize(image, style=style)), expected)


def test_bad_stylize_arguments(trained, tmp_path):
    gan, _ = trained
    x = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="^alpha:"):
        gan.stylize(x, style=x, alpha=2)
    with pytest.raises(ValueError, match="^style, style_code:"):
        gan.stylize(x)
    with pytest.raises(ValueError, match="^style_code:"):
        gan.stylize(x, style_code=torch.zeros(3))
    with pytest.raises(ValueError, match="^style:"):
        gan.stylize([x, x, x], style=[x, x])
    with pytest.raises(FileNotFoundError, match="^content:"):
        gan.stylize(tmp_path / "missing.png", style=x)
    with pytest.raises(TypeError, match="^content:"):
        gan.stylize(42, style=x)
    with pytest.raises(ValueError, match="^content:"):
        gan.stylize(torch.rand(1, 16, 16), style=x)
    with pytest.raises(ValueError, match="^size:"):
        gan.stylize(x, style=x, size=0)
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read image"):
        gan.stylize(tmp_path / "junk.png", style=x)


# -- the command line ------------------------------------------------------------


def fastgram_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastgram.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def test_cli_train_then_stylize(tmp_path):
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    for i in range(2):
        odd_image(48, 40, seed=i).save(content / f"c{i}.png")
    odd_image(40, 40, seed=9).save(style / "s.png")
    run = tmp_path / "run"
    result = fastgram_cli("train", "--content", str(content), "--style", str(style),
                          "--out", str(run), "--steps", "2", "--size", "32", "--batch-size", "2",
                          "--ngf", "4", "--ndf", "4", "--style-dim", "4", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "trained to step 2" in result.stdout and (run / "checkpoint.pt").is_file()
    out = tmp_path / "out"
    result = fastgram_cli("stylize", str(content), str(style / "s.png"), "--style",
                          str(style / "s.png"), "--checkpoint", str(run / "checkpoint.pt"),
                          "--alpha", "0.7", "--out", str(out))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == ["c0_stylized.png", "c1_stylized.png", "s_stylized.png"]
    assert Image.open(out / "c0_stylized.png").size == (40, 48)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--content", "nowhere", "--style", ".", "--out", "x"], "no such directory"),
        (["train", "--content", ".", "--style", ".", "--out", "x", "--steps", "-3"],
         "expected a positive integer"),
        (["train", "--content", ".", "--style", ".", "--out", "x", "--lr", "fast"],
         "expected a finite number > 0"),
        (["train", "--content", ".", "--style", ".", "--out", "x", "--size", "30"],
         "size: expected a multiple of 4"),
        (["stylize", "missing.png", "--style", "s.png", "--checkpoint", "c.pt"],
         "no such file or directory"),
        (["stylize", ".", "--style", ".", "--checkpoint", "c.pt", "--alpha", "3"],
         "no such file"),
    ],
)
def test_cli_errors_are_one_line_and_non_zero(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main_status(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()[-1]) > 0


def test_cli_train_reports_an_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "style").mkdir()
    odd_image(32, 32).save(tmp_path / "style" / "s.png")
    args = ["train", "--content", "empty", "--style", "style", "--out", "run", "--steps", "1"]
    assert main_status(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == "fastgram train: error: content: no readable image in directory 'empty'"


def main_status(args) -> int:
    """Run the CLI in this process; an uncaught exception fails the test."""
    from fastgram import cli

    try:
        return cli.main(args)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.mark.slow
def test_demo_runs_and_prints_finite_ratios(tmp_path):
    result = fastgram_cli("demo", "--out", str(tmp_path / "demo"), "--steps", "4", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for name in ("demo_grid.png", "model.pt", "checkpoint.pt"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert len(list((tmp_path / "demo" / "stylized").glob("*.png"))) == len(data.CONTENT_IMAGES)
    ratios = [float(line.rsplit(":", 1)[1]) for line in out.splitlines()
              if line.startswith(("style ratio", "content ratio"))]
    assert len(ratios) == 2 and all(np.isfinite(ratios)), out
    # The starter model on styles neither model saw, at the grid's 256 px.
    from fastgram.commands.demo import OUTPUT_SIZE, UNSEEN_STYLES

    grid = Image.open(tmp_path / "demo" / "starter_grid.png")
    assert grid.height > len(data.CONTENT_IMAGES) * OUTPUT_SIZE
    assert grid.width > (1 + 2 * len(UNSEEN_STYLES)) * OUTPUT_SIZE
    starter = list((tmp_path / "demo" / "starter").glob("*.png"))
    assert len(starter) == len(data.CONTENT_IMAGES) * len(UNSEEN_STYLES)
    line = next(line for line in out.splitlines() if "gram ratio" in line)
    assert all(np.isfinite(float(v.split()[-1])) for v in line.split(":", 1)[1].split(",")), line


# -- bad checkpoints and arguments through the Python API ---------------------------


def test_load_names_the_key_shape_or_config_field_that_does_not_fit(tmp_path):
    gan = StyleTransferGAN(size=32, style_dim=4, device="cpu", **TINY)
    state = torch.load(gan.save(tmp_path / "model.pt"), weights_only=True)
    first = next(iter(state["style_encoder"]))
    cases = {
        "list": ([state], "holds a list"),
        "noconfig": ({k: v for k, v in state.items() if k != "config"}, "no 'config' entry"),
        "noweights": ({k: v for k, v in state.items() if k != "generator"},
                      "has no 'generator' entry"),
        "missing": ({**state, "style_encoder": {}}, "'style_encoder' in .* lacks"),
        "extra": ({**state, "style_encoder": {**state["style_encoder"], "x": torch.zeros(1)}},
                  "tensor.* the model does not have .*'x'"),
        "shape": ({**state, "style_encoder": {**state["style_encoder"], first: torch.zeros(2)}},
                  rf"style_encoder\.{first} .* has shape \(2,\)"),
        "field": ({**state, "config": {**state["config"], "lr": "fast"}},
                  "config .* is invalid: lr:"),
        "unknown": ({**state, "config": {**state["config"], "turbo": 1}}, "unknown fields"),
        "format": ({**state, "format": 7}, "format 7"),
    }
    for name, (value, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(value, path)
        with pytest.raises(ValueError, match=f"^checkpoint: .*{message}"):
            StyleTransferGAN.load(path, device="cpu")


def test_fit_steps_must_be_a_positive_int(tmp_path):
    gan = StyleTransferGAN(size=32, style_dim=4, device="cpu", **TINY)
    with pytest.raises(TypeError, match="^steps: expected an int, got str"):
        gan.fit(CONTENT, STYLE, steps="10", out_dir=tmp_path)
    for steps in (0, -1):
        with pytest.raises(ValueError, match="^steps: expected an int >= 1"):
            gan.fit(CONTENT, STYLE, steps=steps, out_dir=tmp_path)


def test_stylize_refuses_tensors_outside_the_unit_range(trained):
    gan, _ = trained
    x = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match=r"^content: expected values in \[0, 1\].*divide 0-255"):
        gan.stylize(x * 255, style=x)
    with pytest.raises(ValueError, match=r"^style: expected values in \[0, 1\]"):
        gan.stylize(x, style=x - 0.5)
