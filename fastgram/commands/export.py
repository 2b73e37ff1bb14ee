"""``fastgram export``: write a model's generator and style encoder as ONNX
or torch.export graphs that run without fastgram."""

from __future__ import annotations

import argparse

from fastgram.commands import CommandError
from fastgram.commands import arguments as types

HELP = "export the generator and style encoder to ONNX (.onnx) or torch.export (.pt2)"

_BY_SUFFIX = {".onnx": "onnx", ".pt2": "torch_export"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="the generator's file, ending in .onnx or .pt2; the style "
                                    "encoder is written beside it as <name>.style_encoder.<suffix>")
    parser.add_argument("--format", choices=("onnx", "torch_export"), default=None,
                        help="default: from the suffix of OUT (.onnx: onnx, .pt2: torch_export)")
    parser.add_argument("--checkpoint", default=None, type=types.existing_file,
                        help="a model saved by StyleTransferGAN.save or a training checkpoint.pt "
                             "(default: the starter model shipped with fastgram)")


def run(args: argparse.Namespace) -> int:
    import pathlib

    from fastgram import export
    from fastgram.transfer import StyleTransferGAN

    out = pathlib.Path(args.out)
    format = args.format or _BY_SUFFIX.get(out.suffix)
    if format is None:
        raise CommandError(f"OUT: {str(out)!r} ends in neither .onnx nor .pt2; name the file "
                           "with one of them or give --format")
    try:  # a wrong suffix, a missing folder or missing packages: before loading anything
        export.check_request(out, format)
    except ImportError as exc:
        raise CommandError(str(exc)) from None
    # Traced on the CPU: the graphs are the same, and no GPU is needed.
    if args.checkpoint is None:
        gan = StyleTransferGAN.pretrained(device="cpu")
    else:
        gan = StyleTransferGAN.load(args.checkpoint, device="cpu")
    files = gan.export(out, format=format)
    for role, path in files.items():
        print(f"wrote {role}: {path}")
    return 0
