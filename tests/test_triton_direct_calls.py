"""Direct ``torch.ops.fastgram.triton_*`` calls of the norm operators with bad
arguments raise an error naming the argument, before any kernel reads a
buffer: run in a subprocess with the Triton interpreter on (where a launch
would read past the buffers), and without it (where a CPU tensor used to
reach the driver and fail with "0 active drivers")."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

BAD_CALLS = r"""
import torch
import fastgram
assert fastgram.backends()["triton"].available, fastgram.backends()["triton"].reason
ops = torch.ops.fastgram
x = torch.randn(2, 3, 4, 4)
w = torch.randn(3)
mean = torch.randn(2, 3)
s = torch.randn(2, 3, 5, 5)
calls = {  # name: (call, the argument the message must name)
    "rank 2": (lambda: ops.triton_instance_norm(torch.randn(2, 3), None, None, 1e-5, 0, 0.0), "x"),
    "integer": (lambda: ops.triton_instance_norm(x.int(), None, None, 1e-5, 0, 0.0), "x"),
    "empty": (lambda: ops.triton_instance_norm(torch.randn(2, 0, 4), None, None, 1e-5, 0, 0.0), "x"),
    "short weight": (lambda: ops.triton_instance_norm(x, torch.randn(2), None, 1e-5, 0, 0.0), "weight"),
    "bias batch": (lambda: ops.triton_instance_norm(x, None, torch.randn(3, 3), 1e-5, 0, 0.0), "bias"),
    "activation": (lambda: ops.triton_instance_norm(x, None, None, 1e-5, 7, 0.0), "activation"),
    "eps zero": (lambda: ops.triton_instance_norm(x, None, None, 0.0, 0, 0.0), "eps"),
    "eps nan": (lambda: ops.triton_instance_norm(x, None, None, float("nan"), 0, 0.0), "eps"),
    "grad shape": (lambda: ops.triton_instance_norm_backward(
        torch.randn(2, 3, 4, 5), x, None, None, mean, mean, 0, 0.0), "grad_y"),
    "mean length": (lambda: ops.triton_instance_norm_backward(
        x, x, None, None, torch.randn(2, 2), mean, 0, 0.0), "mean"),
    "style channels": (lambda: ops.triton_adain(x, torch.randn(2, 4, 5, 5), 1e-5, 1.0), "style"),
    "style batch": (lambda: ops.triton_adain(x, torch.randn(3, 3, 5, 5), 1e-5, 1.0), "style"),
    "style rank": (lambda: ops.triton_adain(x, torch.randn(2, 3, 25), 1e-5, 1.0), "style"),
    "alpha nan": (lambda: ops.triton_adain(x, s, 1e-5, float("nan")), "alpha"),
    "s_mean rows": (lambda: ops.triton_adain_backward(
        x, x, s, mean, mean, torch.randn(1, 3), mean, 1.0, True), "s_mean"),
    "grad_out shape": (lambda: ops.triton_adain_backward(
        torch.randn(2, 3, 4), x, s, mean, mean, mean, mean, 1.0, True), "grad_out"),
}
for name, (call, argument) in calls.items():
    try:
        call()
    except (RuntimeError, ValueError, TypeError) as exc:
        assert str(exc).startswith(argument), f"{name}: {exc}"
        continue
    raise SystemExit(f"no error for: {name}")
print("ALL RAISED", len(calls))
"""

CPU_WITHOUT_INTERPRETER = r"""
import torch
import fastgram.backends.triton.instance_norm  # registers the operator
try:
    torch.ops.fastgram.triton_instance_norm(torch.randn(2, 3, 4, 4), None, None, 1e-5, 0, 0.0)
except ValueError as exc:
    print("REFUSED", exc)
"""


def _run(code: str, interpreter: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpreter:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=env)


def test_bad_direct_calls_name_the_argument_and_never_launch():
    result = _run(BAD_CALLS, interpreter=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALL RAISED 16" in result.stdout


def test_cpu_tensor_without_the_interpreter_is_refused_clearly():
    result = _run(CPU_WITHOUT_INTERPRETER, interpreter=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REFUSED x:" in result.stdout and "active drivers" not in result.stdout
