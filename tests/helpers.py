"""Comparison and input helpers for the numerical tests (the policy is in
ENGINEERING.md, section 4)."""

from __future__ import annotations

import contextlib

import torch

# Relative-error limits of the numerical policy.
RTOL = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 1e-2,
    torch.bfloat16: 1e-2,
}


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float64; inf when ``out`` has NaN/inf
    where ``ref`` does not, so a NaN never passes."""
    out = out.detach().to(torch.float64)
    ref = ref.detach().to(torch.float64)
    assert out.shape == ref.shape, f"shape {tuple(out.shape)} != {tuple(ref.shape)}"
    if not torch.equal(torch.isfinite(out), torch.isfinite(ref)):
        return float("inf")
    finite = torch.isfinite(ref)
    diff = torch.linalg.vector_norm((out - ref)[finite])
    norm = torch.linalg.vector_norm(ref[finite])
    if norm == 0:
        return float(diff)
    return float(diff / norm)


def assert_close(out: torch.Tensor, ref: torch.Tensor, rtol: float, what: str = "output"):
    err = rel_error(out, ref)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}"


def randn(*shape, dtype=torch.float32, gen=None, device="cpu", requires_grad=False):
    """Random normal values scaled and shifted off zero mean, so that
    statistics are non-trivial."""
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 1.7 + 0.3
    x = x.to(device=device, dtype=dtype)
    return x.requires_grad_(requires_grad)


def kernel_backends() -> list:
    """The backends whose kernels can run here: Triton only on a GPU or under
    the interpreter."""
    import os
    names = ["reference", "ext"]
    if os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available():
        names.append("triton")
    return names


def require_extension() -> None:
    """Skip when the C++ extension cannot be loaded here; fail instead under
    ``FASTGRAM_REQUIRE_EXT=1`` (CI), so a broken build never passes as a skip."""
    import os

    import pytest

    from fastgram.backends.ext import load as ext_load

    reason = ext_load.load_error()
    if reason is not None:
        if os.environ.get("FASTGRAM_REQUIRE_EXT") == "1":
            pytest.fail(f"extension required but unavailable: {reason}")
        pytest.skip(f"the extension could not be built here: {reason}")


def reference_style_loss_and_grads(features, targets, weights, scales):
    """The reference style loss and its gradients (features, targets) in float64."""
    from fastgram.ops import reference

    fs = [f.detach().double().requires_grad_() for f in features]
    ts = [t.detach().double().requires_grad_() for t in targets]
    loss = reference.style_loss(fs, ts, weights, scales)
    loss.backward()
    return loss.detach(), [f.grad for f in fs], [t.grad for t in ts]


@contextlib.contextmanager
def poisoned_memory():
    """Fresh tensors (at::empty inside C++ kernels too) come filled with NaN,
    so an output element a kernel forgot to write fails the comparison."""
    import torch.utils.deterministic

    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.utils.deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        assert torch.isnan(torch.empty(4)).all()
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.utils.deterministic.fill_uninitialized_memory = saved[1]


def run_two_ranks(script_text: str, tmp_path, marker: str) -> None:
    """Run ``script_text`` under torchrun with 2 gloo ranks (argument: a run
    folder in ``tmp_path``) and check it succeeded and printed ``marker``."""
    import os
    import subprocess
    import sys

    script = tmp_path / "two_ranks.py"
    script.write_text(script_text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert marker in result.stdout, result.stdout[-3000:]


def assert_compiles_fullgraph(fn, features, rtol: float = 1e-6) -> None:
    """``fn(list of tensors) -> scalar loss`` compiles with no graph break
    (fullgraph, aot_eager) and its loss and gradients equal the eager ones."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)([f.detach().clone() for f in features])
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    fs = [f.detach().clone().requires_grad_() for f in features]
    fe = [f.detach().clone().requires_grad_() for f in features]
    out, expected = compiled(fs), fn(fe)
    assert_close(out, expected, rtol, "compiled loss")
    out.backward()
    expected.backward()
    for a, b in zip(fs, fe):
        assert_close(a.grad, b.grad, rtol, "compiled grad")
    torch._dynamo.reset()
