"""Measure tiled stylisation against the whole image.

    python scripts/measure_tiling.py --out benchmarks/results/tiling_2026-12-06
    python scripts/measure_tiling.py --model default --out benchmarks/results/tiling_default

--model starter: the shipped any-style model (fastgram.tiling, two passes);
--model default: ``StyleTransferGAN()``'s MUNIT-design generator
(fastgram.layer_tiling, one pass per layer), untrained (seed 0): no default
MUNIT model ships, and memory, time and equality do not depend on training.

* equality: max |tiled - whole| in float32 on a photo at 1024² and 2048²,
  for several tile sizes (some not dividing the image);
* peak RSS (resource.getrusage maxrss, in a fresh subprocess per case) of
  stylising a 4096² photo in tiles, and the memory estimate of the
  whole-image forward for the starter and the default model;
* time per pixel, tiled against whole, at 2048², interleaved, median of
  --repeats, in the model's own precision (bf16 autocast where the CPU runs
  it natively).

Writes report.json into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastgram import StyleTransferGAN, data, memory, precision  # noqa: E402


def photo(side: int) -> torch.Tensor:
    """A photo (the astronaut, 512²) upscaled to side², as (1, 3, side, side)."""
    return data.load_image("astronaut", (side, side))


def load(model: str) -> StyleTransferGAN:
    if model == "starter":
        return StyleTransferGAN.pretrained(device="cpu")
    torch.manual_seed(0)
    return StyleTransferGAN(device="cpu", vgg_weights=None)


def equality(model: str, sides, tiles) -> list:
    saved = precision.cpu_has_native_bf16
    precision.cpu_has_native_bf16 = lambda: False  # float32 end to end (checked per call)
    try:
        gan = load(model)
        code = gan.encode_style(data.image_path("retina"))
        rows = []
        for side in sides:
            content = photo(side)
            whole = gan.stylize(content, style_code=code)
            for tile in tiles:
                tiled = gan.stylize(content, style_code=code, tile=tile)
                diff = float((tiled - whole).abs().max())
                rows.append({"side": side, "tile": tile, "divides": side % tile == 0,
                             "max_abs_diff": diff})
                print(f"equality {side}² tile {tile}: {diff:.2e}", flush=True)
    finally:
        precision.cpu_has_native_bf16 = saved
    return rows


_CHILD = r"""
import json, resource, sys, torch
# A forked child starts with its parent's high-water mark: restart it here
# (Linux), and report the peak both ways.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
sys.path.insert(0, sys.argv[1])
from fastgram import StyleTransferGAN, data
side, tile, model = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if model == "starter":
    gan = StyleTransferGAN.pretrained(device="cpu")
else:
    torch.manual_seed(0)
    gan = StyleTransferGAN(device="cpu", vgg_weights=None)
code = gan.encode_style(data.image_path("retina"))
from PIL import Image
with Image.open(data.image_path("astronaut")) as small:
    picture = small.convert("RGB").resize((side, side), Image.BICUBIC)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = gan.stylize(picture, style_code=code, tile=tile)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"before": before, "peak": peak, "vm_hwm": hwm, "size": list(out.size)}))
"""


def peak_rss(model: str, side: int, tile: int) -> dict:
    env = dict(os.environ, FASTGRAM_MEMORY_BUDGET="unlimited")
    result = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(side), str(tile), model],
                            capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    found = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"peak RSS {model} {side}² tile {tile}: maxrss {found['peak'] / 2**30:.2f} GiB, VmHWM "
          f"{found['vm_hwm'] / 2**30:.2f} GiB ({found['before'] / 2**30:.2f} GiB before "
          "stylising)", flush=True)
    return {"model": model, "side": side, "tile": tile, "peak_rss_bytes": found["peak"],
            "vm_hwm_bytes": found["vm_hwm"], "rss_before_stylize_bytes": found["before"]}


def estimates(side: int) -> list:
    rows = []
    for name, gan in (("starter", StyleTransferGAN.pretrained(device="cpu")),
                      ("default (munit, StyleTransferGAN())", load("default"))):
        estimate = memory.estimate_generate_bytes(gan.generator, (1, 3, side, side))
        rows.append({"model": name, "side": side, "whole_image_estimate_bytes": estimate})
        print(f"estimate {name} {side}² whole: {estimate / 2**30:.2f} GiB", flush=True)
    return rows


def timing(model: str, side: int, tile: int, repeats: int) -> dict:
    gan = load(model)
    code = gan.encode_style(data.image_path("retina"))
    content = photo(side)
    gan.stylize(content[..., :256, :256], style_code=code)  # warm-up
    times = {"whole": [], "tiled": []}
    os.environ["FASTGRAM_MEMORY_BUDGET"] = "unlimited"
    for _ in range(repeats):
        for name, kwargs in (("whole", {}), ("tiled", {"tile": tile})):
            start = time.perf_counter()
            gan.stylize(content, style_code=code, **kwargs)
            times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    pixels = side * side
    row = {"model": model, "side": side, "tile": tile, "repeats": repeats,
           "bf16": precision.bf16_on_cpu(torch.device("cpu"), gan.config.amp_cpu),
           "seconds": times, "median_seconds": medians,
           "ns_per_pixel": {k: v / pixels * 1e9 for k, v in medians.items()},
           "ratio_tiled_over_whole": medians["tiled"] / medians["whole"]}
    print(f"time {side}² tile {tile}: whole {medians['whole']:.2f} s, tiled "
          f"{medians['tiled']:.2f} s, ratio {row['ratio_tiled_over_whole']:.2f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["starter", "default"], default="starter")
    parser.add_argument("--out", default="benchmarks/results/tiling")
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 384, 1000])
    parser.add_argument("--rss-side", type=int, default=4096)
    parser.add_argument("--rss-tiles", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--time-side", type=int, default=2048)
    parser.add_argument("--time-tile", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["equality", "rss", "estimate", "time"])
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FASTGRAM_MEMORY_BUDGET", "unlimited")  # the whole-image references
    previous = out / "report.json"  # parts skipped now keep their last figures
    report = json.loads(previous.read_text()) if previous.is_file() else {}
    report |= {"machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "torch": torch.__version__,
              "note": "CPU shared with other jobs; timings interleaved, medians"}
    if "rss" not in args.skip:  # first, while this process is small
        report["peak_rss_tiled"] = [peak_rss(args.model, args.rss_side, t)
                                    for t in args.rss_tiles]
    if "equality" not in args.skip:
        report["equality_float32"] = equality(args.model, args.sides, args.tiles)
    if "estimate" not in args.skip:
        report["whole_image_estimates"] = estimates(args.rss_side)
    if "time" not in args.skip:
        report["time"] = timing(args.model, args.time_side, args.time_tile, args.repeats)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'report.json'}")


if __name__ == "__main__":
    main()
