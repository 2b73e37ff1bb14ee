"""The ``fastgram`` command.

Subcommands are registered in :data:`COMMANDS` as ``(name, help, configure,
run)``: ``configure(parser)`` adds the subcommand's arguments and
``run(args) -> int`` does the work and returns the exit status. Whatever a
subcommand raises is printed as one line on stderr
(:mod:`fastgram.commands.errors` words it): exit status 2 for errors a user
can fix, 1 for bugs. ``--debug`` or ``FASTGRAM_DEBUG=1`` shows the traceback
instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from typing import Callable, Optional, Sequence

from fastgram._version import __version__
from fastgram.commands import errors


def _package_version(name: str) -> Optional[str]:
    try:
        return importlib.import_module(name).__version__
    except Exception:  # not installed, or broken: report it as absent
        return None


def collect_info() -> dict:
    """Versions, devices and backend status, as plain data."""
    import torch

    import fastgram
    from fastgram.backends.ext import load as ext_load

    try:
        backend_in_force = fastgram.get_backend()
    except ValueError as exc:  # a bad FASTGRAM_BACKEND must not hide the rest
        backend_in_force = f"invalid ({exc})"
    cuda_devices = [
        torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
    ] if torch.cuda.is_available() else []
    return {
        "fastgram": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": _package_version("triton"),
        "numpy": _package_version("numpy"),
        "pillow": _package_version("PIL"),
        "cpu_threads": torch.get_num_threads(),
        "cuda_devices": cuda_devices,
        "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1",
        "backend_in_force": backend_in_force,
        "backends": {
            name: {"available": s.available, "reason": s.reason, "ops": list(s.ops)}
            for name, s in fastgram.backends().items()
        },
        "extension": ext_load.info(),
    }


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _run_info(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    torch_build = f"CUDA {info['torch_cuda']} build" if info["torch_cuda"] else "CPU build"
    print(f"fastgram   {info['fastgram']}")
    print(f"python     {info['python']} ({info['platform']})")
    print(f"torch      {info['torch']} ({torch_build})")
    print(f"triton     {info['triton'] or 'not installed'}")
    print(f"numpy      {info['numpy'] or 'not installed'}")
    print(f"pillow     {info['pillow'] or 'not installed'}")
    devices = ", ".join(info["cuda_devices"]) or "none visible"
    print(f"devices    cpu ({info['cpu_threads']} threads); cuda: {devices}")
    if info["triton_interpret"]:
        print("           TRITON_INTERPRET=1: Triton kernels run on the CPU interpreter")
    print(f"backend    {info['backend_in_force']} (set with FASTGRAM_BACKEND or fastgram.set_backend)")
    print("backends:")
    for name, status in info["backends"].items():
        state = "available" if status["available"] else "unavailable"
        ops = ", ".join(status["ops"]) or "-"
        print(f"  {name:<10} {state:<12} ops: {ops}")
        if status["reason"]:
            print(f"  {'':<10} why: {status['reason']}")
    ext = info["extension"]
    if ext["loaded"]:
        devices = ", ".join(ext["devices"]) or "none"
        print(f"extension  loaded from {ext['origin']} ({ext['path']}); devices: {devices}")
        if ext["build"]:
            built = ext["build"]
            print(f"           built with {built['compiler']}, C++ {built['cplusplus']}, "
                  f"OpenMP {built['openmp']}, CUDA sources {built['cuda_sources']}, "
                  f"pybind11 {built['pybind11']}")
    print(f"           ahead-of-time build: {ext['aot']}")
    return 0


def _subcommand(name: str) -> tuple:
    """``(name, help, configure, run)`` of the module ``fastgram.commands.<name>``."""
    module = importlib.import_module(f"fastgram.commands.{name}")
    return (name, module.HELP, module.configure, module.run)


COMMANDS: list = [
    ("info", "show versions, devices and which backends run here", _configure_info, _run_info),
    _subcommand("train"),
    _subcommand("stylize"),
    _subcommand("demo"),
    _subcommand("evaluate"),
    _subcommand("export"),
    _subcommand("serve"),
]


DEBUG_HELP = f"show the traceback of an error (also {errors.DEBUG_ENV}=1)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgram",
        description="GAN-based image style transfer on fused Gram, instance-norm and AdaIN kernels.",
    )
    parser.add_argument("--version", action="version", version=f"fastgram {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_text, configure, run in COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text)
        configure(command)
        # Also after the subcommand; its own dest, so neither default hides the other.
        command.add_argument("--debug", dest="debug_here", action="store_true", help=DEBUG_HELP)
        command.set_defaults(_run=run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args._run
    debug = errors.debug_requested(args.debug or args.debug_here)
    try:
        return run(args)
    except KeyboardInterrupt as exc:
        # A training run stopped by a signal says where it saved (exit 128 + signal).
        print(f"fastgram {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(exc, "signum", 2)
    except Exception as exc:
        if debug:
            raise
        message, status = errors.describe(exc)
        print(f"fastgram {args.command}: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
