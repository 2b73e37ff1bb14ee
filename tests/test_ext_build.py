"""Building, caching and loading the extension, and its argument checks.

The checks that must not take the test process down with them (bad
arguments, broken builds) run in subprocesses and are judged by exit code and
output.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastgram.backends.ext import build as ext_build
from helpers import require_extension

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ext_available():
    require_extension()


def run_python(code: str, env_extra: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # The cache is inherited (the subprocess finds what this session built).
    for key in ("FASTGRAM_REQUIRE_EXT", "FASTGRAM_EXT_CSRC"):
        env.pop(key, None)
    env.update(env_extra)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


LOAD_AND_TIME = """
    import json, os, time
    from fastgram.backends.ext import build as ext_build
    start = time.perf_counter()
    built = ext_build.build_jit()
    elapsed = time.perf_counter() - start
    print(json.dumps({"origin": built.origin, "path": built.path, "seconds": elapsed,
                      "mtime": os.stat(built.path).st_mtime_ns}))
"""


def test_second_jit_load_comes_from_the_cache(ext_available):
    env = {"FASTGRAM_EXT_CACHE": str(ext_build.cache_root())}
    first = run_python(LOAD_AND_TIME, env)
    assert first.returncode == 0, first.stderr
    second = run_python(LOAD_AND_TIME, env)
    assert second.returncode == 0, second.stderr
    a = json.loads(first.stdout.strip().splitlines()[-1])
    b = json.loads(second.stdout.strip().splitlines()[-1])
    assert a["origin"] in ("jit-build", "jit-cache")
    assert b["origin"] == "jit-cache", "the second load ran the build"
    assert b["path"] == a["path"] and b["mtime"] == a["mtime"], "the library was rebuilt"
    assert b["seconds"] < 5.0, f"a cached load took {b['seconds']:.1f} s"


def test_cache_key_changes_with_the_sources(tmp_path, monkeypatch):
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    (csrc / "a.cpp").write_text("int f() { return 1; }\n")
    monkeypatch.setenv(ext_build.CSRC_ENV, str(csrc))
    before = ext_build.jit_name(with_cuda=False)
    assert before == ext_build.jit_name(with_cuda=False)
    (csrc / "a.cpp").write_text("int f() { return 2; }\n")
    assert ext_build.jit_name(with_cuda=False) != before
    assert ext_build.jit_name(with_cuda=True) != ext_build.jit_name(with_cuda=False)


def test_stale_aot_build_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(ext_build, "aot_library", lambda: str(tmp_path / "_C.so"))
    stamp = tmp_path / "_C_build.json"
    monkeypatch.setattr(ext_build, "STAMP_FILE", stamp)
    assert "stamp" in ext_build.aot_stale_reason()
    stamp.write_text(json.dumps({"sources_hash": "0" * 64, "torch": "0.0"}))
    assert "torch" in ext_build.aot_stale_reason()
    import torch

    stamp.write_text(json.dumps({"sources_hash": "0" * 64, "torch": torch.__version__}))
    assert "changed" in ext_build.aot_stale_reason()
    stamp.write_text(
        json.dumps({"sources_hash": ext_build.sources_hash(), "torch": torch.__version__})
    )
    assert ext_build.aot_stale_reason() is None


BROKEN_BUILD = """
    import warnings
    import torch
    import fastgram
    from fastgram.backends.ext import load as ext_load
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        try:
            status = fastgram.backends()["ext"]
        except ext_load.ExtensionBuildError as exc:
            print("RAISED")
            print(exc)
            raise SystemExit(0)
        fastgram.backends()
        loss = fastgram.ops.style_loss(torch.randn(2, 3, 4, 4), torch.randn(3, 3))
    build = [w for w in caught if issubclass(w.category, ext_load.ExtensionBuildWarning)]
    print("AVAILABLE", status.available)
    print("WARNINGS", len(build))
    print("REASON", status.reason)
    print("LOSS", float(loss))
    print(build[0].message if build else "")
"""


@pytest.fixture
def broken_sources(tmp_path):
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    (csrc / "broken.cpp").write_text("this is not C++ ;\n")
    return {"FASTGRAM_EXT_CSRC": str(csrc), "FASTGRAM_EXT_CACHE": str(tmp_path / "cache")}


def test_failed_build_warns_once_and_falls_back(broken_sources):
    result = run_python(BROKEN_BUILD, broken_sources)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "AVAILABLE False" in out and "WARNINGS 1" in out, out
    assert "could not be built" in out
    assert "broken.cpp" in out and "error" in out.lower(), "the compiler's message is missing"
    assert "LOSS" in out


def test_required_extension_raises_on_failed_build(broken_sources):
    result = run_python(BROKEN_BUILD, {**broken_sources, "FASTGRAM_REQUIRE_EXT": "1"})
    assert result.returncode == 0, result.stderr
    assert "RAISED" in result.stdout, result.stdout
    assert "broken.cpp" in result.stdout and "FASTGRAM_REQUIRE_EXT" in result.stdout


def test_required_extension_raises_on_corrupt_cached_library(tmp_path, ext_available):
    code = """
        from fastgram.backends.ext import build as ext_build, load as ext_load
        name = ext_build.jit_name(ext_build.jit_wants_cuda())
        library = ext_build.cache_root() / name / (name + ".so")
        library.parent.mkdir(parents=True)
        library.write_bytes(b"not a shared library")
        (library.parent / "BUILD_COMPLETE").write_text("")
        try:
            ext_load.load_error()
        except ext_load.ExtensionBuildError as exc:
            print("RAISED", str(library) in str(exc), "to rebuild it" in str(exc))
    """
    env = {"FASTGRAM_EXT_CACHE": str(tmp_path / "cache"), "FASTGRAM_REQUIRE_EXT": "1"}
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert "RAISED True True" in result.stdout, result.stdout + result.stderr


BAD_CALLS = """
    import torch
    from fastgram.backends.ext import load as ext_load
    assert ext_load.load_error() is None
    ops = torch.ops.fastgram
    f = torch.randn(2, 3, 4, 5)
    t = torch.randn(3, 3)
    loss, (r,) = ops.ext_style_loss([f], [t], [1.0], [1.0])
    g = torch.tensor(1.0)
    calls = {
        "rank 2": lambda: ops.ext_gram_matrix(torch.randn(2, 3), 1.0),
        "rank 5": lambda: ops.ext_gram_matrix(torch.randn(1, 2, 3, 4, 5), 1.0),
        "integer": lambda: ops.ext_gram_matrix(torch.ones(2, 3, 4, dtype=torch.int64), 1.0),
        "empty": lambda: ops.ext_gram_matrix(torch.randn(2, 0, 4), 1.0),
        "half on cpu": lambda: ops.ext_gram_matrix(torch.randn(2, 3, 4).half(), 1.0),
        "grad shape": lambda: ops.ext_gram_matrix_backward(torch.randn(2, 4, 4), f, 1.0),
        "grad rank": lambda: ops.ext_gram_matrix_backward(torch.randn(3, 3), f, 1.0),
        "no layers": lambda: ops.ext_style_loss([], [], [], []),
        "targets count": lambda: ops.ext_style_loss([f], [], [1.0], [1.0]),
        "weights count": lambda: ops.ext_style_loss([f], [t], [1.0, 2.0], [1.0]),
        "scales count": lambda: ops.ext_style_loss([f], [t], [1.0], []),
        "target channels": lambda: ops.ext_style_loss([f], [torch.randn(4, 4)], [1.0], [1.0]),
        "target batch": lambda: ops.ext_style_loss([f], [torch.randn(5, 3, 3)], [1.0], [1.0]),
        "target device": lambda: ops.ext_style_loss([f], [t.to("meta")], [1.0], [1.0]),
        "mixed dtypes": lambda: ops.ext_style_loss([f, f.double()], [t, t], [1.0] * 2, [1.0] * 2),
        "grad_loss numel": lambda: ops.ext_style_loss_backward(torch.ones(2), [f], [r], [1.0], [1.0]),
        "residual dtype": lambda: ops.ext_style_loss_backward(g, [f], [r.double()], [1.0], [1.0]),
        "residual shape": lambda: ops.ext_style_loss_backward(g, [f], [torch.randn(2, 3, 4)], [1.0], [1.0]),
        "residual 2-D": lambda: ops.ext_style_loss_backward(g, [f], [torch.randn(3, 3)], [1.0], [1.0]),
        "residuals count": lambda: ops.ext_style_loss_backward(g, [f], [], [1.0], [1.0]),
    }
    for name, call in calls.items():
        try:
            call()
        except (RuntimeError, ValueError, TypeError) as exc:  # C++ checks or the fakes' checks
            assert str(exc), name
            continue
        raise SystemExit(f"no error for: {name}")
    print("ALL RAISED", len(calls))
"""


def test_bad_arguments_raise_instead_of_crashing(ext_available):
    result = run_python(BAD_CALLS, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALL RAISED 20" in result.stdout


def csrc_files(pattern: str) -> list:
    return sorted(p.name for p in (Path(__file__).resolve().parents[1] / "csrc").glob(pattern))


def setup_kwargs(monkeypatch, **env):
    """The keyword arguments setup.py passes to setuptools.setup."""
    import runpy

    import setuptools

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    return captured


def test_setup_builds_the_extension_ahead_of_time_unless_told_not_to(monkeypatch):
    kwargs = setup_kwargs(monkeypatch, FASTGRAM_BUILD_EXT="1", FASTGRAM_EXT_CUDA="0")
    (ext,) = kwargs["ext_modules"]
    assert ext.name == "fastgram._C"
    assert sorted(Path(s).name for s in ext.sources) == csrc_files("*.cpp")
    assert "fastgram.kernels" in kwargs["packages"]
    assert kwargs["package_dir"] == {"fastgram.kernels": "kernels"}
    kwargs = setup_kwargs(monkeypatch, FASTGRAM_BUILD_EXT="0")
    assert "ext_modules" not in kwargs and "fastgram.kernels" in kwargs["packages"]


@pytest.mark.skipif(ext_build.cuda_build_possible() is not None, reason="no CUDA toolkit or CUDA torch")
def test_setup_adds_the_cuda_sources_where_a_toolkit_exists(monkeypatch):
    from torch.utils import cpp_extension

    # setup.py points torch's builder at the toolkit; undo that afterwards.
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", cpp_extension.CUDA_HOME)
    monkeypatch.setenv("CUDA_HOME", ext_build.cuda_toolkit())
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    monkeypatch.delenv("FASTGRAM_EXT_CUDA", raising=False)
    kwargs = setup_kwargs(monkeypatch, FASTGRAM_BUILD_EXT="1")
    (ext,) = kwargs["ext_modules"]
    assert sorted(Path(s).name for s in ext.sources) == sorted(csrc_files("*.cpp") + csrc_files("*.cu"))
    assert "-DFASTGRAM_WITH_CUDA" in ext.extra_compile_args["nvcc"]
    assert all(d in ext.include_dirs for d in ext_build.nvidia_include_dirs())


def test_the_library_is_a_python_module_that_reports_its_build(ext_available):
    from fastgram.backends.ext import load as ext_load

    info = ext_load.info()
    assert info["loaded"], info["error"]
    build = info["build"] if info["origin"] != "preloaded" else None
    if build is None:
        pytest.skip("the library was loaded by another test before the loader saw it")
    assert build["compiler"] and build["cplusplus"] >= 201703
    assert build["cuda_sources"] == ("cuda" in info["devices"])
    pybind11 = pytest.importorskip("pybind11")
    assert build["pybind11"] == pybind11.__version__
