"""The backend registry: choice, precedence, errors and fallback warnings.

The compiled backends are simulated here (a fake ``ext`` implementation whose
availability the test controls), so these tests hold whatever the machine
has built.
"""

import threading
import warnings

import pytest
import torch

import fastgram
from fastgram import dispatch, ops
from fastgram.backends import OpImpl, reference
from fastgram.dispatch import BackendUnavailableError, FastgramFallbackWarning

X = torch.randn(2, 3, 4, 4)


class FakeExt:
    """A controllable ``ext`` backend module providing gram_matrix and
    style_loss (the reference functions, recording each call)."""

    NAME = "ext"
    OPS = ("gram_matrix", "style_loss")
    __name__ = "fake_ext"

    def __init__(self, monkeypatch):
        self.calls = []
        self.unavailable = None  # reason, or None for available
        self.unsupported = None  # reason returned by supports(), or None
        monkeypatch.setitem(dispatch._MODULES, "ext", self)

    def probe(self):
        return self.unavailable

    def table(self):
        return {op: OpImpl(self._recording(op, getattr(reference, op)), self._supports)
                for op in self.OPS}

    def _recording(self, op, fn):
        def impl(*args):
            self.calls.append(op)
            return fn(*args)

        return impl

    def _supports(self, *args):
        return self.unsupported


@pytest.fixture
def fake_ext(monkeypatch):
    fake = FakeExt(monkeypatch)
    dispatch.refresh()
    yield fake
    dispatch.refresh()


def fallback_warnings(record):
    return [w for w in record if issubclass(w.category, FastgramFallbackWarning)]


def test_backends_reports_every_backend():
    report = fastgram.backends()
    assert list(report) == ["reference", "triton", "ext"]
    ref = report["reference"]
    assert ref.available and ref.reason is None
    assert set(ref.ops) == {"gram_matrix", "style_loss", "content_loss", "instance_norm", "adain",
                            "moment_loss"}
    for status in report.values():
        assert isinstance(status, fastgram.BackendStatus)
        assert status.available == (status.reason is None)
        assert status.name in str(status)


def test_auto_uses_an_available_backend(fake_ext):
    ops.gram_matrix(X)
    ops.style_loss([X], [torch.randn(3, 3)])
    assert fake_ext.calls == ["gram_matrix", "style_loss"]
    assert fastgram.backends()["ext"].available


def test_auto_falls_back_with_one_warning_per_op_and_backend(fake_ext):
    fake_ext.unavailable = "simulated: compiler missing"
    dispatch.refresh()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            expected = ops.gram_matrix(X, backend="reference")
            assert torch.equal(ops.gram_matrix(X), expected)
            ops.style_loss([X], [torch.randn(3, 3)])
            ops.instance_norm(X)  # ext does not provide it: no warning
    found = fallback_warnings(record)
    assert len(found) == 2, [str(w.message) for w in found]
    messages = sorted(str(w.message) for w in found)
    assert "gram_matrix" in messages[0] and "style_loss" in messages[1]
    assert all("simulated: compiler missing" in m and "'ext'" in m for m in messages)
    assert fake_ext.calls == []
    status = fastgram.backends()["ext"]
    assert not status.available and status.reason == "simulated: compiler missing"


def test_auto_falls_back_when_inputs_are_unsupported(fake_ext):
    fake_ext.unsupported = "simulated: float64 not supported"
    with pytest.warns(FastgramFallbackWarning, match="float64 not supported"):
        ops.gram_matrix(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastgramFallbackWarning)
        ops.gram_matrix(X)  # second call: silent
    assert fake_ext.calls == []


def test_explicit_unavailable_backend_is_an_error(fake_ext):
    fake_ext.unavailable = "simulated: not built"
    dispatch.refresh()
    with pytest.raises(BackendUnavailableError, match="backend.*'ext'.*simulated: not built"):
        ops.gram_matrix(X, backend="ext")
    with pytest.raises(BackendUnavailableError, match="simulated: not built"):
        fastgram.set_backend("ext")
    with pytest.raises(BackendUnavailableError, match="simulated: not built"):
        with fastgram.use_backend("ext"):
            pass
    assert fastgram.get_backend() == "auto"


def test_env_var_naming_an_unavailable_backend_fails_at_the_call(fake_ext, monkeypatch):
    fake_ext.unavailable = "simulated: not built"
    dispatch.refresh()
    monkeypatch.setenv("FASTGRAM_BACKEND", "ext")
    with pytest.raises(BackendUnavailableError, match="simulated: not built"):
        ops.gram_matrix(X)


def test_explicit_backend_without_the_op_routes_to_reference_once(fake_ext):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with fastgram.use_backend("ext"):
            y1 = ops.instance_norm(X)
            y2 = ops.instance_norm(X)
            ops.gram_matrix(X)
    assert torch.equal(y1, y2)
    found = fallback_warnings(record)
    assert len(found) == 1 and "no implementation of instance_norm" in str(found[0].message)
    assert fake_ext.calls == ["gram_matrix"]


def test_reference_choice_bypasses_other_backends(fake_ext):
    ops.gram_matrix(X, backend="reference")
    with fastgram.use_backend("reference"):
        ops.gram_matrix(X)
    fastgram.set_backend("reference")
    ops.gram_matrix(X)
    assert fake_ext.calls == []


def test_precedence_call_then_context_then_global_then_env(fake_ext, monkeypatch):
    monkeypatch.setenv("FASTGRAM_BACKEND", "reference")
    assert fastgram.get_backend() == "reference"
    ops.gram_matrix(X)
    assert fake_ext.calls == []
    fastgram.set_backend("ext")
    assert fastgram.get_backend() == "ext"
    with fastgram.use_backend("reference"):
        assert fastgram.get_backend() == "reference"
        ops.gram_matrix(X)
        assert fake_ext.calls == []
        ops.gram_matrix(X, backend="ext")
        assert fake_ext.calls == ["gram_matrix"]
    ops.gram_matrix(X)
    assert fake_ext.calls == ["gram_matrix", "gram_matrix"]
    fastgram.set_backend(None)
    assert fastgram.get_backend() == "reference"


def test_use_backend_nests_and_restores_on_error():
    assert fastgram.get_backend() == "auto"
    with pytest.raises(RuntimeError, match="boom"):
        with fastgram.use_backend("reference") as name:
            assert name == "reference"
            with fastgram.use_backend("auto"):
                assert fastgram.get_backend() == "auto"
            assert fastgram.get_backend() == "reference"
            raise RuntimeError("boom")
    assert fastgram.get_backend() == "auto"


def test_use_backend_is_local_to_the_thread():
    seen = []
    with fastgram.use_backend("reference"):
        thread = threading.Thread(target=lambda: seen.append(fastgram.get_backend()))
        thread.start()
        thread.join()
    assert seen == ["auto"]


@pytest.mark.parametrize("name", ["fast", "", "AUTO", None, 3])
def test_unknown_backend_names_are_rejected(name):
    if name is not None:
        with pytest.raises(ValueError, match="^name:"):
            fastgram.set_backend(name)
        with pytest.raises(ValueError, match="^name:"):
            with fastgram.use_backend(name):
                pass
    if name not in (None, ""):
        with pytest.raises(ValueError, match="^backend:"):
            ops.gram_matrix(X, backend=name)


def test_unknown_env_value_is_rejected(monkeypatch):
    monkeypatch.setenv("FASTGRAM_BACKEND", "turbo")
    with pytest.raises(ValueError, match="^FASTGRAM_BACKEND:"):
        ops.gram_matrix(X)


def test_backend_that_forgets_an_op_it_promises_is_unavailable(fake_ext, monkeypatch):
    full_table = fake_ext.table
    monkeypatch.setattr(fake_ext, "table", lambda: {"gram_matrix": full_table()["gram_matrix"]})
    dispatch.refresh()
    status = fastgram.backends()["ext"]
    assert not status.available and "no implementation of style_loss" in status.reason


def test_backend_whose_table_raises_is_unavailable(fake_ext, monkeypatch):
    def broken():
        raise ImportError("simulated: kernels missing")

    monkeypatch.setattr(fake_ext, "table", broken)
    dispatch.refresh()
    status = fastgram.backends()["ext"]
    assert not status.available and "simulated: kernels missing" in status.reason


def test_triton_probe_explains_missing_device(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    dispatch.refresh()
    status = fastgram.backends()["triton"]
    assert not status.available
    assert "CUDA" in status.reason or "not installed" in status.reason


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_public_ops_compile_with_fullgraph(backend):
    """Dispatch must be traceable: no locks, warnings or probes in the traced
    path once the backends were probed (the eager call below does that)."""

    def all_ops(x, t):
        return (ops.style_loss([x], [t]) + ops.content_loss(x, x * 0.5)
                + ops.instance_norm(x, activation="relu").sum() + ops.adain(x, x[:1]).mean()
                + ops.gram_matrix(x).sum())

    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 3, dtype=torch.float64)
    with fastgram.use_backend(backend):
        expected = all_ops(x, t)
        compiled = torch.compile(all_ops, backend="eager", fullgraph=True)
        torch._dynamo.reset()
        out = compiled(x, t)
    assert torch.allclose(out, expected, rtol=1e-12)
    (grad,) = torch.autograd.grad(out, x)
    (expected_grad,) = torch.autograd.grad(expected, x)
    assert torch.allclose(grad, expected_grad, rtol=1e-10)
