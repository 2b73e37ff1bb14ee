"""Atomic checkpoint files that load with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python values (dicts, lists,
tuples, numbers, strings, None), so loading it never unpickles code.
"""

from __future__ import annotations

import errno
import glob
import os
import pathlib
import random
import tempfile
from typing import Any, Dict, Mapping

import numpy as np
import torch

from fastgram.train.config import TrainConfig

PathLike = Any


class DiskFullError(OSError):
    """A checkpoint could not be written for lack of space (ENOSPC); the
    previous checkpoint file is untouched."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the disk is full.
    torch.save reports a short write either as ENOSPC or, from its zip
    writer, as ``inline_container.cc ... unexpected pos`` / ``failed
    writing``, with the OSError only in the exception's context."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, RuntimeError) and (
            "unexpected pos" in str(exc) or "failed writing" in str(exc)
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def remove_stale_temporaries(path: PathLike) -> list:
    """Delete the temporary files that earlier saves of ``path`` left when
    they were killed between creating and renaming them (``kill -9``, power
    loss). Only names of :func:`save`'s own pattern are touched; only one
    process (rank 0) saves a given checkpoint, so none of them is in use."""
    path = pathlib.Path(path)
    removed = []
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            stale.unlink()
            removed.append(stale)
        except FileNotFoundError:
            pass
    return removed


def save(state: Dict[str, Any], path: PathLike) -> pathlib.Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same
    directory, flushed and fsynced, then renamed over ``path``. A crash
    leaves either the old file or the new one, never half of one; the next
    save removes the temporary files of saves that were killed. A full disk
    raises :class:`DiskFullError` and leaves the old file as it was."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, Exception) and _disk_full(exc):
            raise DiskFullError(
                f"disk full while writing the checkpoint {str(path)!r}; the previous "
                f"checkpoint is intact. Free space in {str(path.parent)!r} and run again"
            ) from exc
        raise
    return path


def load(path: PathLike, map_location="cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save` (``weights_only=True``)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file {str(path)!r}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint: {str(path)!r} is not a readable fastgram checkpoint ({exc})") from exc


def describe(path: PathLike) -> str:
    return repr(str(path))


def require_mapping(state, path: PathLike) -> Mapping[str, Any]:
    """``state`` itself, if it is what every fastgram checkpoint is: a dict
    with a ``config`` entry that is a dict."""
    if not isinstance(state, dict):
        raise ValueError(
            f"checkpoint: {describe(path)} holds a {type(state).__name__}, not a fastgram "
            "checkpoint (a dict written by StyleTransferGAN.save or fastgram train)"
        )
    if "config" not in state:
        raise ValueError(
            f"checkpoint: {describe(path)} has no 'config' entry, so the networks it belongs "
            "to cannot be rebuilt; it was not written by StyleTransferGAN.save or fastgram train"
        )
    if not isinstance(state["config"], dict):
        raise ValueError(
            f"checkpoint: 'config' in {describe(path)} is a {type(state['config']).__name__}, "
            "expected a dict of TrainConfig fields"
        )
    return state


def entry(state: Mapping[str, Any], key: str, kind, path: PathLike):
    """``state[key]`` (``key`` may be dotted: ``models.generator``), which
    must be a ``kind``; else a ValueError naming the key."""
    value: Any = state
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"checkpoint: {describe(path)} has no {key!r} entry; the file is "
                             "incomplete or was written by something else")
        value = value[part]
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"checkpoint: {key!r} in {describe(path)} is a {type(value).__name__}, "
                         f"expected a {expected}")
    return value


def config_of(state: Mapping[str, Any], path: PathLike):
    """The :class:`TrainConfig` saved in ``state``; a bad field is a
    ValueError naming it."""
    try:
        return TrainConfig.from_dict(require_mapping(state, path)["config"])
    except (TypeError, ValueError) as exc:
        if str(exc).startswith("checkpoint:"):
            raise
        raise ValueError(f"checkpoint: the config in {describe(path)} is invalid: {exc}") from None


def load_weights(module: torch.nn.Module, weights, key: str, path: PathLike) -> None:
    """``module.load_state_dict(weights)`` after checking that the tensor
    names and shapes are the module's, so a mismatch names the entry, the
    tensor and both shapes instead of torch's multi-line RuntimeError."""
    if not isinstance(weights, dict):
        raise ValueError(f"checkpoint: {key!r} in {describe(path)} is a "
                         f"{type(weights).__name__}, expected a dict of tensors")
    expected = module.state_dict()
    missing = [name for name in expected if name not in weights]
    if missing:
        raise ValueError(
            f"checkpoint: {key!r} in {describe(path)} lacks {len(missing)} of the "
            f"{len(expected)} tensors the model needs (first: {missing[0]!r}); the file is "
            "incomplete or holds another model"
        )
    unexpected = [name for name in weights if name not in expected]
    if unexpected:
        raise ValueError(
            f"checkpoint: {key!r} in {describe(path)} has {len(unexpected)} tensor(s) the model "
            f"does not have (first: {unexpected[0]!r}); it holds another model"
        )
    for name, reference in expected.items():
        value = weights[name]
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"checkpoint: {key}.{name} in {describe(path)} is a "
                             f"{type(value).__name__}, expected a tensor")
        if value.shape != reference.shape:
            raise ValueError(
                f"checkpoint: {key}.{name} in {describe(path)} has shape {tuple(value.shape)}, "
                f"but the configuration saved with it builds {tuple(reference.shape)}; the "
                "weights and the config do not belong together"
            )
    module.load_state_dict(weights)


def rng_state() -> Dict[str, Any]:
    """The Python, NumPy, torch and CUDA random states as plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
