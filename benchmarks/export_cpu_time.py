"""CPU time per 512x512 image: the exported ONNX generator run by
onnxruntime (float32) against fastgram's eager path (bf16 autocast, as
``stylize`` runs the starter model on a CPU with bf16, and float32).

The style is encoded once beforehand in every variant, as ``fastgram
stylize`` does for a batch of photos. The variants run interleaved in one
process, each repeat in turn, on the same inputs and thread count; the
medians are reported. Writes a JSON report (``--out``).

    python benchmarks/export_cpu_time.py --repeats 7 --out benchmarks/results/export_2026-12-06
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import tempfile
import time

import torch


def main() -> None:
    import onnxruntime as ort

    from fastgram import StyleTransferGAN, data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args()

    gan = StyleTransferGAN.pretrained(device="cpu")
    threads = torch.get_num_threads()
    content = data.load_image("astronaut", size=(args.size, args.size))
    code = gan.encode_style(data.image_path("brick"))
    with tempfile.TemporaryDirectory() as folder:
        files = gan.export(pathlib.Path(folder) / "starter.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(files["generator"]), options,
                                       providers=["CPUExecutionProvider"])
    feeds = {"content": content.numpy(), "style_code": code.numpy()}

    def fp32():
        with torch.no_grad():
            return gan.generator(content, code)

    variants = {
        "onnxruntime_fp32": lambda: session.run(None, feeds)[0],
        "fastgram_eager_stylize": lambda: gan.stylize(content, style_code=code),
        "fastgram_eager_fp32": fp32,
    }
    for run in variants.values():  # warm-up: first-call allocations, oneDNN plans
        run()
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    difference = float((torch.from_numpy(variants["onnxruntime_fp32"]()) - fp32()).abs().max())
    report = {
        "image": f"{args.size}x{args.size}",
        "threads": threads,
        "repeats": args.repeats,
        "stylize_autocast": "bf16" if gan.config.amp_cpu else "none",
        "median_s": {name: round(statistics.median(t), 4) for name, t in times.items()},
        "all_s": {name: [round(x, 4) for x in t] for name, t in times.items()},
        "onnxruntime_vs_fp32_max_abs_difference": difference,
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
