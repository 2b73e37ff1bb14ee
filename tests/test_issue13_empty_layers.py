"""A direct style-loss operator call with an empty layer list is refused
with a ValueError naming ``features``, by the kernels and by the fakes alike,
instead of the dispatcher's NotImplementedError (issue 13). Run in a
subprocess with the interpreter on, as the other direct-misuse tests are."""

import os
import subprocess
import sys

import pytest

import fastgram

EMPTY_CALLS = r"""
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
import fastgram

status = fastgram.backends()  # loads the extension and the Triton operators
ops = torch.ops.fastgram
calls = {}  # name -> f(target, grad): the tensors are made real or fake by the caller
if status["ext"].available:
    calls.update({
        "ext forward, both lists empty": lambda t, g: ops.ext_style_loss([], [], [], []),
        "ext forward, no features": lambda t, g: ops.ext_style_loss([], [t], [1.0], [1.0]),
        "ext backward": lambda t, g: ops.ext_style_loss_backward(g, [], [], [], []),
    })
if status["triton"].available:
    calls.update({
        "triton forward": lambda t, g: ops.triton_style_loss([], [], [], [], False),
        "triton forward, no features":
            lambda t, g: ops.triton_style_loss([], [t], [1.0], [1.0], True),
        "triton backward":
            lambda t, g: ops.triton_style_loss_backward(g, [], [], [], [], [], False),
    })


def answer(call):
    try:
        call(torch.ones(3, 3), torch.ones(()))
    except NotImplementedError as exc:  # a RuntimeError subclass: checked first
        return "NotImplementedError", str(exc)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return None, None


for name, call in calls.items():
    kind, text = answer(call)
    assert kind == "ValueError", f"{name}: {kind}: {text[:300] if text else 'no error'}"
    assert text.startswith("features: "), f"{name}: {text[:300]}"
    with FakeTensorMode():  # the fake (a traced graph) answers the same
        fake = answer(call)
    assert fake == (kind, text), f"{name}: fake {fake} != kernel {(kind, text)}"
print("EMPTY REFUSED", len(calls))
"""


def test_empty_layer_lists_are_refused_naming_features():
    env = {**os.environ, "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET", "1")}
    expected = sum(3 for name in ("ext", "triton") if fastgram.backends()[name].available)
    if expected == 0:
        pytest.skip("neither compiled backend can run here")
    result = subprocess.run([sys.executable, "-c", EMPTY_CALLS], capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"EMPTY REFUSED {expected}" in result.stdout, result.stdout

