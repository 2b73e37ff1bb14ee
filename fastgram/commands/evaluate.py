"""``fastgram evaluate``: score a model on content x style pairs
(:func:`fastgram.quality.evaluate`): a table on stdout, JSON and a grid
image on request."""

from __future__ import annotations

import argparse
import json
import pathlib

from fastgram.commands import CommandError
from fastgram.commands import arguments as types
from fastgram.commands.stylize import content_files

HELP = "score a model: Gram ratio, content distance, SSIM, colour and lattice metrics"


def pretrained_model(device):
    """The starter model shipped with the package."""
    from fastgram.transfer import StyleTransferGAN

    return StyleTransferGAN.pretrained(device=device)


# The model evaluated when --checkpoint is not given.
DEFAULT_MODEL = pretrained_model

COLUMNS = (  # (JSON key, heading, format)
    ("gram_ratio", "gram ratio", "{:.3f}"),
    ("content_distance", "content dist", "{:.3g}"),
    ("ssim", "ssim", "{:.3f}"),
    ("histogram_distance", "colour dist", "{:.3f}"),
    ("lattice_score", "lattice", "{:.1f}"),
    ("stylize_seconds", "seconds", "{:.3f}"),
)


def long_side(text: str) -> int:
    value = types.positive_int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"expected at least 16 (VGG19's relu5_1 needs 16 px), "
                                         f"got {text!r}")
    return value


def period(text: str) -> int:
    value = types.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, got {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=DEFAULT_MODEL is None, default=None,
                        type=types.existing_file,
                        help="a model saved by StyleTransferGAN.save or a training checkpoint.pt"
                        + ("" if DEFAULT_MODEL is None else " (default: the starter model)"))
    parser.add_argument("--content", nargs="+", required=True, type=types.existing_path,
                        help="content images, or folders of them")
    parser.add_argument("--style", nargs="+", required=True, type=types.existing_path,
                        help="style images, or folders of them")
    parser.add_argument("--pairs", choices=("all", "zip"), default="all",
                        help="all: every content with every style (default); "
                             "zip: the i-th content with the i-th style")
    parser.add_argument("--long-side", type=long_side, default=512,
                        help="resize contents to this on the longer side and stylise there "
                             "(default 512)")
    parser.add_argument("--json", type=pathlib.Path, default=None,
                        help="write the per-pair figures and the means to this JSON file")
    parser.add_argument("--grid", type=pathlib.Path, default=None,
                        help="write a content | style | output grid (PNG) here")
    parser.add_argument("--baseline", action="store_true",
                        help="also score the identity model (output = content): the "
                             "reference every ratio is measured against")
    parser.add_argument("--period", type=period, default=4,
                        help="lattice period in pixels for the lattice score (default 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")


def load_model(args: argparse.Namespace):
    if args.checkpoint is None:
        return DEFAULT_MODEL(args.device)
    from fastgram.transfer import StyleTransferGAN

    return StyleTransferGAN.load(args.checkpoint, device=args.device)


def _output_file(path, option: str):
    """Check before any work that ``path`` can be written (its folder made)."""
    if path is None:
        return None
    if path.is_dir():
        raise CommandError(f"{option}: {str(path)!r} is a folder; give a file name")
    types.output_dir(path.parent if str(path.parent) else ".", option)
    return path


def _table(title: str, report: dict) -> str:
    names = [(p["content"], p["style"]) for p in report["pairs"]]
    wc = max([len("content"), len("mean")] + [len(c) for c, _ in names])
    ws = max([len("style")] + [len(s) for _, s in names])

    def line(first, second, values):
        cells = [f"{v:>{len(h)}}" for v, (_, h, _) in zip(values, COLUMNS)]
        return f"  {first:<{wc}}  {second:<{ws}}  " + "  ".join(cells)

    def cells(record):
        return ["-" if record[k] is None else fmt.format(record[k]) for k, _, fmt in COLUMNS]

    rows = [title, line("content", "style", [h for _, h, _ in COLUMNS])]
    rows += [line(p["content"], p["style"], cells(p)) for p in report["pairs"]]
    rows.append(line("mean", "", cells(report["mean"])))
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from fastgram import quality

    contents = content_files(args.content)
    styles = content_files(args.style)
    json_path = _output_file(args.json, "--json")
    grid_path = _output_file(args.grid, "--grid")
    types.check_backend()
    model = load_model(args)
    report = quality.evaluate(model, contents, styles, long_side=args.long_side,
                              grid_path=grid_path, pairs=args.pairs, baseline=args.baseline,
                              period=args.period)
    source = "starter model" if args.checkpoint is None else str(args.checkpoint)
    report = {"checkpoint": source, **report}
    print(_table(f"{source} at {args.long_side} px on the long side "
                 f"({len(report['pairs'])} pairs, {report['device']}):", report))
    if args.baseline:
        print(_table("identity baseline (output = content):", report["baseline"]))
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {json_path}")
    if grid_path is not None:
        print(f"grid (content | style | output): {report['grid']}")
    return 0
