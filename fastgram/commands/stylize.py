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
    parser.add_argument("--style", required=True, action="append", type=types.existing_file,
                        help="style image; repeat it for several, with --style-weights (mix "
                             "them) or --mask (one region each)")
    parser.add_argument("--style-weights", nargs="+", type=types.non_negative_float, default=None,
                        metavar="W", help="one weight per --style: mix the styles (normalised "
                                          "to sum 1)")
    parser.add_argument("--mask", action="append", type=types.existing_file, default=None,
                        help="a greyscale mask of the content's size per --style, in the same "
                             "order (white: that style); one content only")
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
    parser.add_argument("--tile", type=types.positive_int, default=None,
                        help="stylise in tiles of this many pixels with the whole image's "
                             "statistics (default: only when the image does not fit the "
                             "memory budget)")
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


def check_styles(args: argparse.Namespace, files: list) -> None:
    """Several styles need a way to combine them, with a value per style."""
    count = len(args.style)
    if args.style_weights is not None and args.mask is not None:
        raise CommandError("--style-weights, --mask: give one of them (mix the styles "
                           "everywhere, or one style per region)")
    for option, values in (("--style-weights", args.style_weights), ("--mask", args.mask)):
        if values is not None and len(values) != count:
            raise CommandError(f"{option}: expected {count} values, one per --style, "
                               f"got {len(values)}")
    if count > 1 and args.style_weights is None and args.mask is None:
        raise CommandError(f"--style: {count} styles given; add --style-weights to mix them "
                           "or --mask to place one per region")
    if args.mask is not None and len(files) != 1:
        raise CommandError(f"--mask: the masks fit one content image, got {len(files)}")


def run(args: argparse.Namespace) -> int:
    from fastgram.transfer import StyleTransferGAN

    files = content_files(args.content)
    check_styles(args, files)
    types.check_backend()
    out_dir = types.output_dir(args.out)
    # Errors below (a checkpoint that does not fit, an unreadable image, too
    # little memory) are worded by fastgram.commands.errors in cli.main.
    if args.checkpoint is None:
        gan = StyleTransferGAN.pretrained(device=args.device)
    else:
        gan = StyleTransferGAN.load(args.checkpoint, device=args.device)
    codes = gan.encode_style(args.style)
    style = dict(style_code=codes)
    if args.style_weights is not None:
        style["style_weights"] = args.style_weights
    elif args.mask is not None:
        style["masks"] = args.mask
    elif len(args.style) == 1:
        style["style_code"] = codes[0]
    show = not args.quiet and sys.stderr.isatty()
    used = set()
    for i, path in enumerate(files, 1):
        image = gan.stylize(path, **style, alpha=args.alpha, size=args.size,
                             preserve_color=args.preserve_color, tile=args.tile,
                             progress=show)
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
