"""Stylising estimates its memory before allocating and refuses above the
budget (fastgram.memory, issue 13): the estimate against the measured peak
of real runs, the budget variable, the refusal and the command line's line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fastgram import StyleTransferGAN, cli, memory
from fastgram.commands import errors

TINY = dict(ngf=8, n_res_blocks=1)

# The peak RSS a stylising forward adds, in a fresh process after a warm-up
# (the peak restarted just before it, through /proc/self/clear_refs).
# glibc's mmap threshold is fixed so that every large buffer is mapped on
# allocation and unmapped on free: the peak RSS then is the peak of live
# memory, not of what the default malloc keeps cached after frees.
MEASURE = r"""
import json, sys
import torch
from fastgram.transfer import StyleTransferGAN


def status(key):  # kB in /proc/self/status
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


h, w, alpha = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
gan = StyleTransferGAN(size=64, device="cpu", ngf=8, n_res_blocks=1)
code = torch.randn(1, gan.config.style_dim)
with torch.no_grad():
    gan._generate(torch.rand(1, 3, 64, 64), code, alpha)  # kernels, extension, allocator
    batch = torch.rand(1, 3, h, w)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS restarts from now: earlier peaks do not count
    before = status("VmRSS")
    gan._generate(batch, code, alpha)
    peak = status("VmHWM")
print(json.dumps({"added": peak - before}))
"""


def _measured_peak(height, width, alpha):
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", memory.ENV_VAR: "unlimited"}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(height), str(width), str(alpha)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["added"]


@pytest.fixture(scope="module")
def gan():
    return StyleTransferGAN(size=64, device="cpu", **TINY)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize("height, width, alpha", [(512, 512, 1.0), (1000, 700, 0.5)])
def test_estimate_matches_the_measured_peak(gan, height, width, alpha):
    # 1000 x 700 is padded to 1000 x 704, and alpha < 1 runs the style encoder too
    estimate = memory.estimate_generate_bytes(
        gan.generator, (1, 3, height, width),
        style_encoder=gan.style_encoder if alpha < 1 else None)
    measured = _measured_peak(height, width, alpha)
    assert 0.7 <= estimate / measured <= 1.3, (estimate, measured)


def test_estimate_grows_with_the_pixels_and_the_width(gan):
    small = memory.estimate_generate_bytes(gan.generator, (1, 3, 256, 256))
    large = memory.estimate_generate_bytes(gan.generator, (1, 3, 1024, 1024))
    assert 14 < large / small < 17  # about linear in H * W
    wide = StyleTransferGAN(size=64, device="cpu", ngf=16, n_res_blocks=1)
    assert memory.estimate_generate_bytes(wide.generator, (1, 3, 1024, 1024)) > 1.7 * large
    # a 10000 x 10000 image costs no memory and little time to estimate
    huge = memory.estimate_generate_bytes(gan.generator, (1, 3, 10000, 10000))
    assert huge > 2e10


def test_stylize_refused_before_allocating_with_a_tiny_budget(gan, monkeypatch, request):
    monkeypatch.setenv(memory.ENV_VAR, "1M")

    def never(module, args):
        if args[0].device.type != "meta":  # the estimate runs it on meta tensors
            raise AssertionError("the generator ran before the memory check")

    hook = gan.generator.encoder.register_forward_pre_hook(never)
    request.addfinalizer(hook.remove)
    code = torch.zeros(1, gan.config.style_dim)
    with pytest.raises(memory.MemoryBudgetError) as caught:
        gan.stylize(torch.rand(3, 120, 96), style_code=code)
    exc = caught.value
    assert isinstance(exc, MemoryError)
    assert exc.budget == 2**20 and exc.estimate > exc.budget
    text = str(exc)
    assert text.startswith("memory: stylising a 1x3x120x96 batch needs about ")
    assert "memory budget of 1.0M (FASTGRAM_MEMORY_BUDGET=1M)" in text
    assert "size=" in text and "FASTGRAM_MEMORY_BUDGET=" in text and "unlimited" in text


def test_stylize_runs_within_the_budget(gan, monkeypatch):
    code = torch.zeros(1, gan.config.style_dim)
    image = torch.rand(3, 40, 36)
    estimate = memory.estimate_generate_bytes(gan.generator, (1, 3, 40, 36))
    monkeypatch.setenv(memory.ENV_VAR, str(2 * estimate))
    assert gan.stylize(image, style_code=code).shape == (3, 40, 36)
    monkeypatch.setenv(memory.ENV_VAR, "unlimited")
    assert memory.check_budget(gan.generator, image[None]) is None
    monkeypatch.setenv(memory.ENV_VAR, str(estimate - 1))
    with pytest.raises(memory.MemoryBudgetError):
        gan.stylize(image, style_code=code)


def test_suggested_size_fits_the_budget(gan, monkeypatch):
    monkeypatch.setenv(memory.ENV_VAR, "64M")
    batch = torch.empty(1, 3, 2000, 1500)
    with pytest.raises(memory.MemoryBudgetError) as caught:
        memory.check_budget(gan.generator, batch)
    side = caught.value.suggested_size
    assert side is not None and side % 4 == 0 and f"size={side}" in str(caught.value)
    scaled = (1, 3, round(2000 * side / 1500), side)
    assert memory.estimate_generate_bytes(gan.generator, scaled) <= 64 * 2**20


@pytest.mark.parametrize("value, expected", [
    ("123456", 123456), ("512M", 512 * 2**20), ("2G", 2 * 2**30), ("1.5GiB", int(1.5 * 2**30)),
    ("64kb", 64 * 2**10), ("unlimited", None), ("off", None),
])
def test_budget_variable_values(value, expected, monkeypatch):
    monkeypatch.setenv(memory.ENV_VAR, value)
    assert memory.budget_bytes("cpu")[0] == expected


def test_default_budget_is_a_fraction_of_the_available_memory(monkeypatch):
    monkeypatch.delenv(memory.ENV_VAR, raising=False)
    real = memory._available
    monkeypatch.setattr(memory, "_available", lambda device: (10_000, "memory available"))
    budget, source = memory.budget_bytes("cpu")
    assert budget == int(10_000 * memory.DEFAULT_FRACTION)
    assert "80%" in source and memory.ENV_VAR in source
    monkeypatch.setenv(memory.ENV_VAR, "25%")
    assert memory.budget_bytes("cpu")[0] == 2500
    # on Linux the default reads MemAvailable
    monkeypatch.delenv(memory.ENV_VAR)
    monkeypatch.setattr(memory, "_available", real)
    if os.path.exists("/proc/meminfo"):
        available = memory._available(torch.device("cpu"))[0]
        assert 0 < memory.budget_bytes("cpu")[0] <= available


@pytest.mark.parametrize("value", ["bogus", "-1G", "0%", "150%", "12X"])
def test_bad_budget_variable_is_named(value, monkeypatch):
    monkeypatch.setenv(memory.ENV_VAR, value)
    with pytest.raises(ValueError, match=f"^{memory.ENV_VAR}: expected"):
        memory.budget_bytes("cpu")


def test_check_budget_validates_its_arguments(gan):
    with pytest.raises(ValueError, match="^batch"):
        memory.check_budget(gan.generator, torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="^generator"):
        memory.estimate_generate_bytes("net", (1, 3, 8, 8))
    with pytest.raises(ValueError, match="^shape"):
        memory.estimate_generate_bytes(gan.generator, (1, 3, 0, 8))
    with pytest.raises(TypeError, match="^style_encoder"):
        memory.estimate_generate_bytes(gan.generator, (1, 3, 8, 8), style_encoder=3)


def test_cli_message_is_one_line_with_exit_status_2(gan, tmp_path, monkeypatch, capsys):
    exc = memory.MemoryBudgetError("stylising a 1x3x10000x10000 batch", 30 * 2**30, 2**30,
                                   "FASTGRAM_MEMORY_BUDGET=1G", 1824)
    line, status = errors.describe(exc)
    assert status == 2 and "\n" not in line
    assert "--size 1824" in line and "size=" not in line and "FASTGRAM_MEMORY_BUDGET" in line

    # end to end: a saved model stylising a picture over a 1K budget
    model = gan.save(tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    for name in ("content.png", "style.png"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / name)
    monkeypatch.setenv(memory.ENV_VAR, "1K")
    code = cli.main(["stylize", str(tmp_path / "content.png"), "--style",
                     str(tmp_path / "style.png"), "--checkpoint", str(model),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "memory budget of 1.0K (FASTGRAM_MEMORY_BUDGET=1K)" in err and "--size" in err
