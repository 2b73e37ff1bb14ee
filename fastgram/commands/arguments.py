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
