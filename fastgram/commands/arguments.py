"""Argument types shared by the subcommands: each parses the text, checks it
with :mod:`fastgram.validation` and rejects a bad value with a one-line
message argparse prints beside the option's name."""

from __future__ import annotations

import argparse
import pathlib
from typing import Callable

from fastgram import validation


def _parsed(text: str, parse: Callable, check: Callable, what: str):
    """``check(parse(text))``, or one line saying what was expected."""
    try:
        return check(parse(text), "value")
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    return _parsed(text, int, validation.integer, "a positive integer")


def non_negative_int(text: str) -> int:
    return _parsed(text, int, lambda v, n: validation.integer(v, n, minimum=0),
                   "an integer >= 0")


def non_negative_float(text: str) -> float:
    return _parsed(text, float, validation.non_negative, "a finite number >= 0")


def positive_float(text: str) -> float:
    return _parsed(text, float, validation.positive, "a finite number > 0")


def unit_float(text: str) -> float:
    return _parsed(text, float, validation.in_unit_interval, "a number in [0, 1]")


def _path(text: str, exists: Callable[[pathlib.Path], bool], what: str) -> pathlib.Path:
    path = pathlib.Path(text)
    if not exists(path):
        raise argparse.ArgumentTypeError(f"no such {what}: {text}")
    return path


def existing_dir(text: str) -> pathlib.Path:
    return _path(text, pathlib.Path.is_dir, "directory")


def existing_file(text: str) -> pathlib.Path:
    return _path(text, pathlib.Path.is_file, "file")


def existing_path(text: str) -> pathlib.Path:
    return _path(text, pathlib.Path.exists, "file or directory")


def output_dir(path, option: str = "--out") -> pathlib.Path:
    """Create the folder ``path`` if needed and prove it writable, before
    any work whose results would then have nowhere to go."""
    import tempfile

    from fastgram.commands import CommandError, errors

    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise CommandError(f"{option}: {str(path)!r} is a file, not a folder; choose another path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise CommandError(f"{option}: {str(parent)!r} is a file, so the folder "
                               f"{str(path)!r} cannot be made there; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise CommandError(f"{option}: cannot write to {str(path)!r}: "
                           f"{errors.describe(exc)[0]}") from None
    return path


def check_backend() -> str:
    """The backend in force (``FASTGRAM_BACKEND``), checked now: an unknown
    name, or a backend chosen explicitly that cannot run here, would
    otherwise stop the run at its first operation."""
    import fastgram
    from fastgram import dispatch
    from fastgram.commands import CommandError

    name = fastgram.get_backend()  # ValueError naming FASTGRAM_BACKEND
    if name != "auto":
        reason = dispatch.unavailable_reason(name)
        if reason is not None:
            raise CommandError(f"backend {name!r} (FASTGRAM_BACKEND) cannot run here: {reason}; "
                               "unset FASTGRAM_BACKEND or set it to auto")
    return name
