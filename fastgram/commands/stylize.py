"""``fastgram stylize``: render photos in a style with a trained model."""

from __future__ import annotations

import argparse
import sys

from fastgram import imageio
from fastgram.commands import CommandError
from fastgram.commands import arguments as types

HELP = "stylise images (files or folders) in any style, with the starter model or a checkpoint"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("content", nargs="+", type=types.existing_path,
                        help="content images, or folders of them")
    parser.add_argument("--style", required=True, type=types.existing_file, help="style image")
    parser.add_argument("--checkpoint", default=None, type=types.existing_file,
                        help="a model saved by StyleTransferGAN.save or a training checkpoint.pt "
                             "(default: the starter model shipped with fastgram)")
    parser.add_argument("--alpha", type=types.unit_float, default=1.0,
                        help="style strength in [0, 1] (default 1)")
    parser.add_argument("--size", type=types.positive_int, default=None,
                        help="resize the shorter side to this first (default: keep the size)")
    parser.add_argument("--preserve-color", action="store_true",
                        help="keep the content's colours: the stylised luminance with the "
                             "content's chroma (YCbCr)")
    parser.add_argument("--out", default="stylized", help="output folder (default ./stylized)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def content_files(paths) -> list:
    files = []
    for path in paths:
        if path.is_dir():
            found = imageio.list_images(path)
            if not found:
                raise CommandError(f"no images in folder {str(path)!r}")
            files.extend(found)
        else:
            files.append(path)
    return files


def run(args: argparse.Namespace) -> int:
    from fastgram.transfer import StyleTransferGAN

    files = content_files(args.content)
    types.check_backend()
    out_dir = types.output_dir(args.out)
    # Errors below (a checkpoint that does not fit, an unreadable image, too
    # little memory) are worded by fastgram.commands.errors in cli.main.
    if args.checkpoint is None:
        gan = StyleTransferGAN.pretrained(device=args.device)
    else:
        gan = StyleTransferGAN.load(args.checkpoint, device=args.device)
    code = gan.encode_style(args.style)
    show = not args.quiet and sys.stderr.isatty()
    used = set()
    for i, path in enumerate(files, 1):
        image = gan.stylize(path, style_code=code, alpha=args.alpha, size=args.size,
                             preserve_color=args.preserve_color)
        name = f"{path.stem}_stylized.png"
        if name in used:  # same file name in two input folders
            name = f"{path.stem}_{i}_stylized.png"
        used.add(name)
        target = out_dir / name
        image.save(target)
        if show:
            sys.stderr.write(f"\r[{i}/{len(files)}] {path.name}")
            sys.stderr.flush()
    if show:
        sys.stderr.write("\n")
    print(f"wrote {len(files)} image(s) to {out_dir}")
    return 0
