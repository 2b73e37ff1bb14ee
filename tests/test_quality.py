"""fastgram.quality and ``fastgram evaluate``: each metric on inputs with
known answers, the evaluation on a tiny untrained model, and clear errors."""

import json
import math

import pytest
import torch

from fastgram import cli, data, quality
from fastgram.transfer import StyleTransferGAN


def photo(name="astronaut", long_side=128):
    image = data.load_image(name)
    return quality.resize(image, quality.long_side_size(*image.shape[2:], long_side))


def flat(value, height=32, width=32):
    return torch.full((1, 3, height, width), float(value))


def dots(height, width, period, amplitude=0.03):
    pattern = torch.zeros(1, 3, height, width)
    pattern[..., ::period, ::period] = amplitude
    return pattern


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    gan = StyleTransferGAN(size=32, ngf=8, ndf=8, n_res_blocks=1, style_dim=4, device="cpu")
    return gan.save(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    from fastgram import imageio

    paths = {}
    for name, size in (("astronaut", 48), ("chelsea", 40), ("brick", 48)):
        paths[name] = imageio.save_image(data.load_image(name, size=size)[0], folder / f"{name}.png")
    return paths


# -- metrics -------------------------------------------------------------------------


def test_ssim_of_an_image_with_itself_is_one_and_of_noise_is_low(gen):
    image = photo(long_side=64)
    assert quality.ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    noise = torch.rand(image.shape, generator=gen)
    assert quality.ssim(noise, image) < 0.2
    assert quality.ssim(noise, image) == pytest.approx(quality.ssim(image, noise), abs=1e-12)


def test_ssim_of_flat_images_has_the_closed_form():
    # Constant images: no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 0.2, 0.6, 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert quality.ssim(flat(a), flat(b)) == pytest.approx(expected, rel=1e-6)  # float32 inputs


def test_ssim_is_on_luminance():
    # Two images of the same luminance but different colours are identical to SSIM.
    height = width = 24
    red = torch.zeros(1, 3, height, width)
    red[:, 0] = 0.5 / 0.299 * 0.5
    grey = torch.full((1, 3, height, width), 0.25)
    assert quality.ssim(red, grey) == pytest.approx(1.0, abs=1e-9)


def test_gram_ratio_of_the_content_itself_is_one_and_the_style_itself_is_zero():
    content, style = photo(long_side=48), photo("brick", long_side=48)
    assert quality.gram_ratio(content, content, style) == pytest.approx(1.0, abs=1e-12)
    same_area = quality.style_at_area_of(style, content)
    assert quality.gram_distance(same_area, same_area) == 0.0
    assert quality.gram_ratio(same_area, content, style) == 0.0


def test_gram_matrices_are_normalised_by_c_h_w():
    feats = torch.rand(1, 5, 4, 3)
    flat_feats = feats.reshape(1, 5, -1)
    expected = flat_feats @ flat_feats.transpose(1, 2) / (5 * 4 * 3)
    torch.testing.assert_close(quality._grams({name: feats for name in quality.STYLE_LAYERS})[0],
                               expected)


def test_the_style_is_resized_to_the_outputs_pixel_count():
    assert quality.area_size(100, 200, 50 * 50) == (35, 71)
    out = quality.style_at_area_of(torch.rand(1, 3, 100, 200), torch.rand(1, 3, 50, 50))
    assert tuple(out.shape[2:]) == (35, 71)
    again = quality.style_at_area_of(out, torch.rand(1, 3, 50, 50))
    assert again is out  # already that area: left alone


def test_content_distance_is_zero_for_the_content_and_positive_otherwise(gen):
    content = photo(long_side=48)
    assert quality.content_distance(content, content) == 0.0
    assert quality.content_distance(torch.rand(content.shape, generator=gen), content) > 0.0


def test_histogram_distance_identical_disjoint_and_half():
    image = photo(long_side=32)
    assert quality.histogram_distance(image, image) == 0.0
    assert quality.histogram_distance(image, torch.flip(image, (3,))) == 0.0  # same colours
    assert quality.histogram_distance(flat(0.0), flat(1.0)) == pytest.approx(1.0)
    half = flat(0.0)
    half[..., 16:] = 1.0
    assert quality.histogram_distance(half, flat(0.0)) == pytest.approx(0.5)
    assert quality.histogram_distance(flat(0.2, 10, 10), flat(0.2, 40, 20)) == 0.0  # any sizes


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])  # 512 x 512 and 341 x 512
def test_lattice_score_is_low_for_a_photo_and_high_with_a_faint_dot_lattice(name):
    image = photo(name, long_side=512)
    natural = quality.lattice_score(image)
    dotted = quality.lattice_score((image + dots(*image.shape[2:], 4)).clamp(0, 1))
    assert natural < 20
    assert dotted > 50
    assert dotted > 10 * natural


def test_lattice_period_is_a_parameter():
    image = photo(long_side=384)  # 384 x 384: a multiple of 3 and 4
    dotted = (image + dots(384, 384, 3)).clamp(0, 1)
    assert quality.lattice_score(dotted, period=3) > 50
    assert quality.lattice_score(dotted, period=4) < 20
    assert quality.lattice_score(image, period=3) < 20


# -- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, message", [
    (lambda: quality.ssim(flat(0.5), flat(0.5, 32, 40)), ValueError, "content: expected the size"),
    (lambda: quality.ssim(flat(2.0), flat(0.5)), ValueError, "output: expected values in [0, 1]"),
    (lambda: quality.ssim(flat(0.5, 8, 8), flat(0.5, 8, 8)), ValueError,
     "output: expected height and width of at least 11"),
    (lambda: quality.ssim(torch.rand(1, 1, 16, 16), flat(0.5)), ValueError, "output: expected one RGB"),
    (lambda: quality.ssim(torch.rand(2, 3, 16, 16), flat(0.5)), ValueError, "output: expected one RGB"),
    (lambda: quality.ssim([1.0], flat(0.5)), TypeError, "output: expected a torch.Tensor"),
    (lambda: quality.histogram_distance(flat(0.5), flat(0.5), bins=1), ValueError, "bins:"),
    (lambda: quality.histogram_distance(flat(0.5), flat(-0.1)), ValueError, "style: expected values"),
    (lambda: quality.lattice_score(flat(0.5), period=1), ValueError, "period:"),
    (lambda: quality.lattice_score(flat(0.5, 16, 16), period=9), ValueError, "period:"),
    (lambda: quality.lattice_score(torch.ones(1, 3, 32, 32, dtype=torch.int64)), TypeError, "image:"),
    (lambda: quality.gram_ratio(flat(0.5, 8, 8), flat(0.5), flat(0.5)), ValueError,
     "output: expected height and width of at least 16"),
    (lambda: quality.content_distance(flat(0.5), flat(0.5, 32, 48)), ValueError, "content:"),
    (lambda: quality.gram_distance(flat(0.5), flat(0.5), vgg="vgg"), TypeError, "vgg:"),
])
def test_metrics_name_the_bad_argument(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(message), str(info.value)


class WrongShape:
    def stylize(self, content, style=None):
        return content[..., :-1]


class OutOfRange:
    def stylize(self, content, style=None):
        return content * 255


@pytest.mark.parametrize("model, kwargs, error, message", [
    (object(), {}, TypeError, "model: expected an object with a stylize"),
    (WrongShape(), {}, ValueError, "model: stylize returned shape"),
    (OutOfRange(), {}, ValueError, "model: stylize returned an unusable image"),
    (quality.IdentityModel(), {"pairs": "zip"}, ValueError, "pairs: 'zip' needs as many"),
    (quality.IdentityModel(), {"pairs": "some"}, ValueError, "pairs: expected one of"),
    (quality.IdentityModel(), {"long_side": 8}, ValueError, "long_side:"),
])
def test_evaluate_names_the_bad_argument(model, kwargs, error, message):
    contents = {"a": flat(0.3), "b": flat(0.6)}
    with pytest.raises(error) as info:
        quality.evaluate(model, contents, [flat(0.5)], long_side=kwargs.pop("long_side", 32),
                         **kwargs)
    assert str(info.value).startswith(message), str(info.value)


def test_evaluate_names_unreadable_and_missing_images(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(ValueError, match=r"^contents\[0\]: cannot read image"):
        quality.evaluate(quality.IdentityModel(), [broken], [flat(0.5)], long_side=32)
    with pytest.raises(FileNotFoundError, match=r"^styles\[0\]: no such file"):
        quality.evaluate(quality.IdentityModel(), [flat(0.5)], [tmp_path / "none.png"], long_side=32)
    with pytest.raises(ValueError, match=r"^contents: expected at least one image"):
        quality.evaluate(quality.IdentityModel(), [], [flat(0.5)], long_side=32)


# -- evaluate and the command ------------------------------------------------------------


def test_evaluate_a_tiny_model_with_baseline_and_grid(tiny_checkpoint, image_files, tmp_path):
    gan = StyleTransferGAN.load(tiny_checkpoint, device="cpu")
    grid = tmp_path / "grid.png"
    contents = [image_files["astronaut"], image_files["chelsea"]]
    report = quality.evaluate(gan, contents, [image_files["brick"]], long_side=64,
                              grid_path=grid, baseline=True, thumbnail=64)
    json.dumps(report, allow_nan=False)  # plain, standard JSON
    assert [(p["content"], p["style"]) for p in report["pairs"]] == [
        ("astronaut", "brick"), ("chelsea", "brick")]
    first, second = report["pairs"]
    assert (first["height"], first["width"]) == (64, 64)
    assert max(second["height"], second["width"]) == 64
    for record in report["pairs"]:
        assert set(quality.METRICS) <= set(record)
        assert record["gram_ratio"] == pytest.approx(
            record["gram_distance_output"] / record["gram_distance_content"])
        assert 0 <= record["histogram_distance"] <= 1 and record["ssim"] <= 1
        assert record["stylize_seconds"] > 0
    for key in quality.METRICS:
        assert report["mean"][key] == pytest.approx(
            sum(p[key] for p in report["pairs"]) / 2)
    base = report["baseline"]
    for record in base["pairs"]:
        assert record["gram_ratio"] == 1.0 and record["content_distance"] == 0.0
        assert record["ssim"] == pytest.approx(1.0)
    assert base["mean"]["gram_ratio"] == 1.0
    assert report["grid"] == str(grid)
    from fastgram import imageio

    assert imageio.read_image(grid).size == (3 * 66 + 2, 2 * 66 + 2)


def test_evaluate_the_identity_model_on_tensors_zip_pairs():
    contents = {"p": photo(long_side=40), "q": photo("chelsea", long_side=40)}
    styles = [("b", photo("brick", long_side=40)), ("h", photo("hubble_deep_field", long_side=40))]
    report = quality.evaluate(quality.IdentityModel(), contents, styles, long_side=32, pairs="zip")
    assert [(p["content"], p["style"]) for p in report["pairs"]] == [("p", "b"), ("q", "h")]
    assert all(p["gram_ratio"] == 1.0 and p["ssim"] == pytest.approx(1.0) for p in report["pairs"])
    assert report["model"] == "identity" and "baseline" not in report


def test_evaluate_command_writes_json_and_grid(tiny_checkpoint, image_files, tmp_path, capsys):
    out_json, out_grid = tmp_path / "out" / "report.json", tmp_path / "out" / "grid.png"
    status = cli.main([
        "evaluate", "--checkpoint", str(tiny_checkpoint),
        "--content", str(image_files["astronaut"]), str(image_files["chelsea"]),
        "--style", str(image_files["brick"]), "--long-side", "64",
        "--json", str(out_json), "--grid", str(out_grid), "--baseline", "--device", "cpu",
    ])
    printed = capsys.readouterr().out
    assert status == 0
    assert "gram ratio" in printed and "identity baseline" in printed and "mean" in printed
    report = json.loads(out_json.read_text())
    assert report["checkpoint"] == str(tiny_checkpoint)
    assert len(report["pairs"]) == 2 and report["long_side"] == 64
    assert report["baseline"]["mean"]["gram_ratio"] == 1.0
    assert out_grid.is_file()


def test_evaluate_without_a_checkpoint_scores_the_starter_model(image_files, capsys):
    assert "evaluate" in [name for name, *_ in cli.COMMANDS]
    status = cli.main(["evaluate", "--content", str(image_files["astronaut"]), "--style",
                       str(image_files["brick"]), "--long-side", "64", "--device", "cpu"])
    out = capsys.readouterr().out
    assert status == 0 and out.startswith("starter model at 64 px"), out


@pytest.mark.parametrize("extra, message", [
    (["--pairs", "zip"], "pairs: 'zip' needs as many styles as contents"),
    (["--json", "{file}/sub/report.json"], "--json: "),
    (["--content", "{broken}"], "contents[0]: cannot read image"),
])
def test_evaluate_command_errors_are_one_line(extra, message, tiny_checkpoint, image_files,
                                              tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    extra = [e.format(file=image_files["brick"], broken=broken) for e in extra]
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--content",
            str(image_files["astronaut"]), str(image_files["chelsea"]),
            "--style", str(image_files["brick"]), "--long-side", "32", *extra]
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and message in err, err


def test_evaluate_command_rejects_a_tiny_long_side(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["evaluate", "--checkpoint", __file__, "--content", __file__, "--style",
                  __file__, "--long-side", "8"])
    assert info.value.code == 2
    assert "--long-side: expected at least 16" in capsys.readouterr().err


def test_ratio_edge_cases():
    assert quality._ratio(0.0, 0.0) == 1.0
    assert math.isinf(quality._ratio(1.0, 0.0))
    assert quality._json_safe({"a": [math.inf, 1.0]}) == {"a": [None, 1.0]}
