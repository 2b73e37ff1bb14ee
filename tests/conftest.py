"""Shared test setup.

Triton kernels run on the CPU only under the interpreter, which must be
switched on before triton is first imported: on a machine without a CUDA
device this conftest turns it on for the whole session.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import fastgram  # noqa: E402
from fastgram import dispatch  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _isolated_backend_state(monkeypatch):
    """Each test starts from auto, fresh probes and no warnings issued yet."""
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    fastgram.set_backend(None)
    dispatch.refresh()
    yield
    fastgram.set_backend(None)
    dispatch.refresh()


@pytest.fixture
def gen():
    """A seeded CPU generator: fresh, reproducible random inputs per test."""
    return torch.Generator().manual_seed(1234)
