"""Packaging: layout, public names and the kernels subpackage mapping."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import fastgram

ROOT = Path(__file__).resolve().parent.parent


def test_public_api_names():
    for name in ("ops", "functional", "nn", "backends", "set_backend", "use_backend",
                 "get_backend", "BackendUnavailableError", "FastgramFallbackWarning"):
        assert hasattr(fastgram, name), name
    for name in ("gram_matrix", "style_loss", "content_loss", "instance_norm", "adain"):
        assert getattr(fastgram.functional, name) is getattr(fastgram.ops, name)


def test_kernels_is_a_subpackage_never_a_top_level_package(tmp_path):
    spec = importlib.util.find_spec("fastgram.kernels")
    assert spec is not None
    assert Path(spec.origin).resolve().parent == ROOT / "kernels"
    # Outside the checkout, no top-level "kernels" package may be importable.
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('kernels'))"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "None", probe.stdout + probe.stderr


def test_importing_fastgram_does_not_import_triton():
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, fastgram; fastgram.ops.gram_matrix; print('triton' in sys.modules)"],
        capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "False"
