"""Every foreseeable user error of the ``fastgram`` command is one line on
stderr naming the problem and the fix, with exit status 2; a traceback only
with ``--debug`` or ``FASTGRAM_DEBUG=1``."""

import errno
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from fastgram import StyleTransferGAN, cli
from fastgram.commands import errors
from fastgram.train import checkpoint

TINY = dict(ngf=4, ndf=4, n_res_blocks=1, num_scales=1, vgg_weights=None, batch_size=2)
TRAIN = ["--steps", "1", "--size", "16", "--batch-size", "2", "--ngf", "4", "--ndf", "4",
         "--style-dim", "4", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model file, a style image, a content folder, and broken checkpoints."""
    root = tmp_path_factory.mktemp("cli_errors")
    rng = np.random.default_rng(0)
    for folder in ("content", "style"):
        (root / folder).mkdir()
        Image.fromarray(rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(
            root / folder / "a.png")
    gan = StyleTransferGAN(size=16, style_dim=4, device="cpu", **TINY)
    model = gan.save(root / "model.pt")
    state = torch.load(model, weights_only=True)
    first = next(iter(state["generator"]))
    broken = {
        "list": [1, 2, 3],
        "noconfig": {k: v for k, v in state.items() if k != "config"},
        "missing": {**state, "generator": {k: v for k, v in state["generator"].items()
                                           if not k.startswith("decoder")}},
        "shape": {**state, "generator": {**state["generator"], first: torch.zeros(3, 3)}},
        "otherconfig": {**state, "config": {**state["config"], "ngf": 8}},
        "badfield": {**state, "config": {**state["config"], "size": "big"}},
    }
    for name, value in broken.items():
        torch.save(value, root / f"{name}.pt")
    return root


def status_and_err(args, capsys):
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return code, lines[0]


def stylize_args(files, checkpoint_name="model.pt", *extra):
    return ["stylize", files / "content", "--style", files / "style" / "a.png",
            "--checkpoint", files / checkpoint_name, "--out", files / "out", *extra]


@pytest.mark.parametrize("name, expected", [
    ("list", "holds a list, not a fastgram checkpoint"),
    ("noconfig", "has no 'config' entry"),
    ("missing", "'generator' in .* lacks 10 of the 21 tensors .*first: 'decoder"),
    ("shape", r"generator\.encoder\..* has shape \(3, 3\), but the configuration saved with it"
              r" builds \(4, 3, 7, 7\)"),
    ("otherconfig", r"has shape \(4, 3, 7, 7\), but the configuration saved with it builds "
                    r"\(8, 3, 7, 7\)"),
    ("badfield", "the config in .* is invalid: size: expected an int"),
])
def test_checkpoints_that_do_not_fit(files, name, expected, capsys):
    code, line = status_and_err(stylize_args(files, f"{name}.pt"), capsys)
    assert code == 2
    assert line.startswith("fastgram stylize: error: checkpoint: ")
    import re
    assert re.search(expected, line), line


def test_a_model_file_cannot_resume_training(files, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((files / "model.pt").read_bytes())
    args = ["train", "--content", files / "content", "--style", files / "style",
            "--out", run, "--resume", *TRAIN]
    code, line = status_and_err(args, capsys)
    assert code == 2
    assert "is a model file" in line and "cannot resume training" in line


def test_output_folder_that_cannot_be_written(files, tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, expected in ((a_file, "is a file, not a folder"),
                          (a_file / "sub", "is a file, so the folder")):
        args = stylize_args(files)[:-1] + [out]
        code, line = status_and_err(args, capsys)
        assert code == 2 and line.startswith("fastgram stylize: error: --out: ")
        assert expected in line, line

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro"))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    args = ["train", "--content", files / "content", "--style", files / "style",
            "--out", tmp_path / "ro", *TRAIN]
    code, line = status_and_err(args, capsys)
    assert code == 2 and "--out: cannot write to" in line and "read-only file system" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(files, capsys):
    code, line = status_and_err(stylize_args(files, "model.pt", "--device", "cuda"), capsys)
    assert code == 2
    assert "device: 'cuda' was requested but no CUDA device is visible" in line
    assert "use 'cpu' or 'auto'" in line


def test_bogus_or_unavailable_backend(files, capsys, monkeypatch):
    monkeypatch.setenv("FASTGRAM_BACKEND", "turbo")
    code, line = status_and_err(stylize_args(files), capsys)
    assert code == 2 and "FASTGRAM_BACKEND: expected one of" in line and "'turbo'" in line
    from fastgram import dispatch

    monkeypatch.setenv("FASTGRAM_BACKEND", "triton")
    monkeypatch.setattr(dispatch, "unavailable_reason", lambda name: "no CUDA device is visible")
    code, line = status_and_err(stylize_args(files), capsys)
    assert code == 2
    assert "backend 'triton' (FASTGRAM_BACKEND) cannot run here: no CUDA device" in line
    assert "set it to auto" in line


def test_training_size_below_the_minimum(files, tmp_path, capsys):
    args = ["train", "--content", files / "content", "--style", files / "style",
            "--out", tmp_path / "run", *TRAIN, "--size", "8"]
    code, line = status_and_err(args, capsys)
    assert code == 2 and "size: expected at least 16" in line


def test_out_of_memory_is_one_line(files, capsys, monkeypatch):
    def exhausted(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 6400000000 bytes.")

    monkeypatch.setattr(StyleTransferGAN, "stylize", exhausted)
    code, line = status_and_err(stylize_args(files), capsys)
    assert code == 2 and "out of memory" in line and "smaller --size" in line


def test_full_disk_during_a_checkpoint_save(files, tmp_path, capsys, monkeypatch):
    """The real failure: torch.save into a file on a full disk (/dev/full)."""
    real_mkstemp = tempfile.mkstemp

    def on_full_disk(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", on_full_disk)
    run = tmp_path / "run"
    args = ["train", "--content", files / "content", "--style", files / "style",
            "--out", run, *TRAIN]
    code, line = status_and_err(args, capsys)
    assert code == 2
    assert "disk full while writing the checkpoint" in line and "Free space" in line
    assert not list(run.glob(".checkpoint.pt.*")), "the temporary file was left behind"


def test_debug_shows_the_traceback(files, capsys, monkeypatch):
    with pytest.raises(ValueError, match="holds a list"):
        cli.main([str(a) for a in stylize_args(files, "list.pt")] + ["--debug"])
    with pytest.raises(ValueError, match="holds a list"):
        cli.main(["--debug"] + [str(a) for a in stylize_args(files, "list.pt")])
    monkeypatch.setenv("FASTGRAM_DEBUG", "1")
    with pytest.raises(ValueError, match="holds a list"):
        cli.main([str(a) for a in stylize_args(files, "list.pt")])


def test_a_bug_is_one_line_with_status_1_and_the_way_to_the_traceback(files, capsys,
                                                                       monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(StyleTransferGAN, "load", broken)
    code, line = status_and_err(stylize_args(files), capsys)
    assert code == 1 and "internal error: KeyError" in line and "--debug" in line


def test_unnamed_value_errors_are_not_mistaken_for_user_errors():
    assert errors.describe(ValueError("size: expected an int"))[1] == 2
    assert errors.describe(ValueError("style, style_code: give one"))[1] == 2
    assert errors.describe(TypeError("list indices must be integers or slices, not str"))[1] == 1


def test_subprocess_exit_status_and_no_traceback(files):
    args = [str(a) for a in stylize_args(files, "shape.pt")]
    result = subprocess.run([sys.executable, "-m", "fastgram.cli", *args], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("fastgram stylize: error: checkpoint: ")
