"""Assembles the GPU check's report: one JSON file with every figure and a
Markdown summary, from the files ``benchmarks/gpu_check.sh`` leaves in its
work directory:

* ``steps.jsonl``: one line per step (exit code, seconds, limit, skipped);
* ``env.json``, ``backends.json``, ``roofline.json`` (``gpu_measure.py``);
* ``junit.xml`` (the test suite);
* ``bench_<suite>.json`` (pytest-benchmark ``--benchmark-json``; the cases'
  ``extra_info`` holds the figures: ``median_ms``, ``speedup_vs_eager``,
  ``speedup_vs_compile``, ``gbps``, ``fraction_of_copy_bw``, ``tflops``,
  ``fraction_of_matmul_peak``, ``fraction_of_roofline``, ``provider``, ...);
* ``train_<backend>_<eager|compile>.json`` (``gpu_measure.py train``).

Every fastgram case measured on CUDA is held to its GPU target (ENGINEERING.md, section 6)
(:func:`target_checks`); a missing file or figure shows as missing, never as
a pass.

    python benchmarks/gpu_report.py --work WORK_DIR --out OUT_DIR [--mode gpu]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Optional

SUITES = ("bench_norm", "bench_gram", "bench_ext", "bench_reference")
TRAIN_VARIANTS = (("auto", False), ("reference", False), ("auto", True), ("reference", True))
# Providers that are baselines, not fastgram's fast paths: not shown per case.
BASELINES = ("eager", "compile", "reference")
# fastgram's fast paths, held to the targets (others, such as bench_ext's
# "ext-recompute" design alternative, are shown without targets).
TARGET_PROVIDERS = ("triton", "ext", "auto")
# pytest-benchmark test function -> the op it measures.
OPS = {
    "bench_instance_norm": "instance_norm",
    "bench_adain": "adain",
    "bench_gram": "gram",
    "bench_style_loss": "style_loss",
    "test_style_loss_fwd_bwd": "style_loss",
}
MIB = 2**20
# The targets qualify the instance-norm bandwidth target with |x| >= 32 MB;
# below it launch latency, not the kernel, bounds the figure.
BANDWIDTH_MIN_BYTES = 32 * MIB
FAMILIES = {
    "instance_norm_fwd": "instance norm fwd (affine)",
    "instance_norm_bwd": "instance norm bwd",
    "adain_fwd": "AdaIN fwd",
    "gram_fwd_memory": "Gram fwd, relu1_1..relu3_1 (memory-bound)",
    "gram_fwd_compute": "Gram fwd, relu4_1/relu5_1",
    "style_loss": "5-layer VGG style loss fwd+bwd",
}
TIMEOUT_CODES = (124, 137)  # timeout(1): signal sent; killed after the grace period


# --------------------------------------------------------------------------
# reading the work directory


def load_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def load_steps(path: Path) -> list:
    """The step records, in order; later records of a step replace earlier ones."""
    steps: dict = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        steps[record["step"]] = record
    return [dict(s, status=step_status(s)) for s in steps.values()]


def step_status(record: dict) -> str:
    if record.get("skipped"):
        return f"skipped ({record['skipped']})"
    rc = record.get("rc")
    if rc in TIMEOUT_CODES:
        return "TIMED OUT"
    if rc == 0:
        return "ok"
    if rc == 5 and record["step"].startswith(("tests", "bench")):
        return "no cases selected"
    return f"FAILED (rc {rc})"


def summarize_junit(path: Path, max_failures: int = 40) -> Optional[dict]:
    """Counts and the failing cases of a pytest junit XML file."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time_s": 0.0}
    for suite in suites:
        for key, attr in (("tests", "tests"), ("failures", "failures"), ("errors", "errors"),
                          ("skipped", "skipped")):
            totals[key] += int(suite.get(attr, 0) or 0)
        totals["time_s"] += float(suite.get("time", 0) or 0)
    totals["passed"] = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    failed = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is not None:
                message = (node.get("message") or node.text or "").strip().splitlines()
                failed.append({
                    "test": f"{case.get('classname', '')}::{case.get('name', '')}",
                    "kind": kind,
                    "message": message[0][:200] if message else "",
                })
    totals["failed_cases"] = failed[:max_failures]
    totals["failed_cases_omitted"] = max(0, len(failed) - max_failures)
    return totals


# --------------------------------------------------------------------------
# benchmark rows


def _param_id(name: str) -> str:
    return name[name.index("[") + 1:name.rindex("]")] if "[" in name else ""


def _direction(func: str, info: dict) -> Optional[str]:
    if info.get("direction"):
        return info["direction"]
    if func.endswith("fwd_bwd") or func.endswith("forward_backward"):
        return "both"
    if func.endswith("forward"):
        return "forward"
    return None


def _first(info: dict, *keys):
    for key in keys:
        if info.get(key) is not None:
            return info[key]
    return None


def benchmark_rows(data: dict, suite: str) -> list:
    """One flat row per pytest-benchmark case of ``data`` (a parsed
    ``--benchmark-json`` file)."""
    rows = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if info.get("median_ms") is None:
            continue  # interrupted before the harness recorded it (see incomplete_cases)
        name = bench.get("name", "")
        func = name.split("[")[0]
        param_id = _param_id(name)
        size = info.get("size")
        if size is None:
            match = re.search(r"(\d+)px", param_id)
            size = int(match.group(1)) if match else None
        layer = re.search(r"relu\d_\d", param_id)
        copy_frac = info.get("fraction_of_copy_bw")
        peak_frac = info.get("fraction_of_matmul_peak")
        roofline = info.get("fraction_of_roofline")
        if roofline is None and (copy_frac is not None or peak_frac is not None):
            roofline = max(f for f in (copy_frac, peak_frac) if f is not None)
        rows.append({
            "suite": suite,
            "name": name,
            "func": func,
            "case": param_id,
            "op": OPS.get(func, func.replace("bench_", "", 1)),
            "provider": info.get("provider"),
            "direction": _direction(func, info),
            "shape": info.get("shape"),
            "dtype": _first(info, "dtype", "precision"),
            "size": size,
            "layer": layer.group(0) if layer else None,
            "device": info.get("device"),
            "cuda": info.get("device") not in (None, "cpu"),
            "median_ms": info.get("median_ms"),
            "eager_ms": info.get("eager_ms"),
            "gbps": info.get("gbps"),
            "tflops": _first(info, "useful_tflops", "tflops"),
            "fraction_of_copy_bw": copy_frac,
            "fraction_of_matmul_peak": peak_frac,
            "fraction_of_roofline": roofline,
            "speedup_vs_eager": info.get("speedup_vs_eager"),
            "speedup_vs_compile": info.get("speedup_vs_compile"),
            "extra_info": info,
        })
    return rows


def incomplete_cases(data: dict) -> list:
    """Cases in the file without figures: the one running when the step's
    time limit interrupted the suite."""
    return [b.get("name", "") for b in data.get("benchmarks", [])
            if (b.get("extra_info") or {}).get("median_ms") is None]


def case_key(row: dict) -> tuple:
    """The case a row measures, whatever the provider: its test function and
    parameter id with the provider's token taken out."""
    provider = row.get("provider") or ""
    case = re.sub(rf"(^|-){re.escape(provider)}(?=-|$)", "", row["case"], count=1)
    return (row["suite"], row["func"], case)


def attach_compile_ratios(rows: list) -> None:
    """Fill ``speedup_vs_compile`` from the torch.compile row of the same case
    where the suite did not record it itself."""
    compiled = {case_key(r): r["median_ms"] for r in rows
                if r.get("provider") == "compile" and r.get("median_ms")}
    for row in rows:
        if row["speedup_vs_compile"] is None and row.get("median_ms"):
            compile_ms = compiled.get(case_key(row))
            if compile_ms is not None and row.get("provider") != "compile":
                row["speedup_vs_compile"] = compile_ms / row["median_ms"]


# --------------------------------------------------------------------------
# the GPU targets (ENGINEERING.md, section 6)


def _element_size(dtype: Optional[str]) -> int:
    if dtype is None:
        return 4
    if "16" in dtype:
        return 2
    return 8 if "64" in dtype else 4


def _check(label: str, value: Optional[float], minimum: float, percent: bool = False) -> dict:
    return {"label": label, "value": value, "minimum": minimum, "percent": percent,
            "met": None if value is None else value >= minimum}


def target_checks(row: dict) -> tuple:
    """``(family, checks)`` for a fastgram case measured on CUDA, else
    ``(None, [])``. Each check: label, value, minimum, met (None when the
    figure was not measured)."""
    if (not row["cuda"] or row["provider"] not in TARGET_PROVIDERS
            or row["suite"] == "bench_reference"):
        return None, []
    op, direction, shape = row["op"], row["direction"], row["shape"]
    copy_frac = row["fraction_of_copy_bw"]
    vs_eager, vs_compile = row["speedup_vs_eager"], row["speedup_vs_compile"]
    if op == "instance_norm" and direction in ("forward", "backward"):
        checks = []
        nbytes = 0
        if shape:
            numel = 1
            for dim in shape:
                numel *= dim
            nbytes = numel * _element_size(row["dtype"])
        long_rows = bool(shape) and len(shape) == 4 and (
            shape[0] * shape[1] <= 132 and shape[2] * shape[3] >= 65536)
        if direction == "forward":
            if long_rows:
                checks.append(_check("bw (long rows)", copy_frac, 0.75, percent=True))
            elif nbytes >= BANDWIDTH_MIN_BYTES:
                checks.append(_check("bw", copy_frac, 0.85, percent=True))
            checks += [_check("x eager", vs_eager, 1.5), _check("x compile", vs_compile, 1.15)]
            return "instance_norm_fwd", checks
        if nbytes >= BANDWIDTH_MIN_BYTES:
            checks.append(_check("bw", copy_frac, 0.70, percent=True))
        checks.append(_check("x eager", vs_eager, 1.5))
        return "instance_norm_bwd", checks
    if op == "adain" and direction == "forward":
        return "adain_fwd", [_check("bw", copy_frac, 0.80, percent=True),
                             _check("x eager", vs_eager, 3.0),
                             _check("x compile", vs_compile, 1.3)]
    if op == "gram" and direction == "forward":
        deep = row["layer"] in ("relu4_1", "relu5_1") if row["layer"] else (
            bool(shape) and shape[1] >= 512)
        if not deep:
            return "gram_fwd_memory", [_check("bw", copy_frac, 0.80, percent=True),
                                       _check("x eager", vs_eager, 1.3)]
        checks = []
        if row["dtype"] in ("bf16", "bfloat16"):
            checks.append(_check("bf16 peak", row["fraction_of_matmul_peak"], 0.60,
                                 percent=True))
        checks.append(_check("x eager", vs_eager, 1.3))
        return "gram_fwd_compute", checks
    if op == "style_loss" and direction == "both":
        checks = []
        if row["size"] == 512:
            # <= 1.25x the floor == at least 80% of the roofline
            checks.append(_check("roofline", row["fraction_of_roofline"], 0.80, percent=True))
        checks += [_check("x eager", vs_eager, 3.0), _check("x compile", vs_compile, 1.5)]
        return "style_loss", checks
    return None, []


def _fmt_check_value(check: dict) -> str:
    if check["value"] is None:
        return "not measured"
    return f"{100 * check['value']:.0f}%" if check["percent"] else f"{check['value']:.2f}"


def _fmt_minimum(check: dict) -> str:
    return f"{100 * check['minimum']:.0f}%" if check["percent"] else f"{check['minimum']:g}"


def verdict(row: dict) -> str:
    """'met', 'MISSED: ...', 'incomplete: ...', 'n/a (cpu)' or '-'."""
    checks = row.get("checks") or []
    if not checks:
        if not row["cuda"] and row["provider"] in TARGET_PROVIDERS:
            return "n/a (cpu)"
        return "-"
    missed = [c for c in checks if c["met"] is False]
    unknown = [c for c in checks if c["met"] is None]
    if missed:
        return "MISSED: " + ", ".join(
            f"{c['label']} {_fmt_check_value(c)} < {_fmt_minimum(c)}" for c in missed)
    if unknown:
        return "incomplete: " + ", ".join(f"{c['label']} not measured" for c in unknown)
    return "met"


def target_text(row: dict) -> str:
    return ", ".join(f"{c['label']} >= {_fmt_minimum(c)}" for c in row.get("checks") or []) or "-"


def summarize_targets(rows: Iterable[dict]) -> dict:
    summary = {key: {"title": title, "cases": 0, "met": 0, "missed": 0, "incomplete": 0,
                     "missed_cases": []} for key, title in FAMILIES.items()}
    for row in rows:
        family = row.get("family")
        if family is None:
            continue
        entry = summary[family]
        entry["cases"] += 1
        result = verdict(row)
        if result == "met":
            entry["met"] += 1
        elif result.startswith("MISSED"):
            entry["missed"] += 1
            entry["missed_cases"].append(f"{row['name']}: {result[len('MISSED: '):]}")
        else:
            entry["incomplete"] += 1
    return summary


# --------------------------------------------------------------------------
# assembling


def load_train(work: Path) -> list:
    runs = []
    for backend, compiled in TRAIN_VARIANTS:
        name = f"train_{backend}_{'compile' if compiled else 'eager'}"
        data = load_json(work / f"{name}.json")
        if data is None:
            runs.append({"variant": name, "backend": backend, "compile": compiled,
                         "status": "no result"})
            continue
        if data.get("error"):
            status = f"FAILED in {data.get('phase')}: {data['error'].splitlines()[0][:120]}"
        elif data.get("phase") == "done":
            status = "done"
        elif data.get("interrupted"):
            status = f"interrupted in {data.get('phase')}"
        else:
            status = f"stopped in {data.get('phase')}"
        runs.append(dict(data, variant=name, status=status))
    return runs


def train_ratios(runs: list) -> dict:
    rate = {(r["backend"], r["compile"]): r.get("images_per_s") for r in runs}
    ratios = {}
    for label, num, den in (
        ("auto / reference, eager", ("auto", False), ("reference", False)),
        ("auto / reference, compiled", ("auto", True), ("reference", True)),
        ("auto compiled / auto eager", ("auto", True), ("auto", False)),
    ):
        if rate.get(num) and rate.get(den):
            ratios[label] = rate[num] / rate[den]
    return ratios


def build_report(work: Path, mode: str = "gpu") -> dict:
    work = Path(work)
    benchmarks = {}
    all_rows = []
    for suite in SUITES:
        data = load_json(work / f"{suite}.json")
        if data is None:
            benchmarks[suite] = {"present": False, "rows": []}
            continue
        rows = benchmark_rows(data, suite)
        attach_compile_ratios(rows)
        for row in rows:
            row["family"], row["checks"] = target_checks(row)
            row["verdict"] = verdict(row)
        benchmarks[suite] = {"present": True, "rows": rows,
                             "incomplete_cases": incomplete_cases(data),
                             "machine_info": data.get("machine_info"),
                             "datetime": data.get("datetime")}
        all_rows += rows
    runs = load_train(work)
    return {
        "mode": mode,
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "env": load_json(work / "env.json"),
        "backends": load_json(work / "backends.json"),
        "roofline": load_json(work / "roofline.json"),
        "steps": load_steps(work / "steps.jsonl"),
        "tests": summarize_junit(work / "junit.xml"),
        "train": runs,
        "train_ratios": train_ratios(runs),
        "benchmarks": benchmarks,
        "targets": summarize_targets(all_rows),
    }


# --------------------------------------------------------------------------
# rendering


def _num(value, spec: str = ".3g", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _table(header: list, rows: list) -> list:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return lines


def header_lines(report: dict) -> list:
    env = report.get("env") or {}
    roof = report.get("roofline") or {}
    lines = [
        f"- mode: {report['mode']}; generated {report['generated_utc']}",
        f"- device: {env.get('device', '?')} (capability {env.get('capability', '-')}, "
        f"{env.get('multiprocessors', '-')} SMs, {env.get('memory_gib', '-')} GiB); "
        f"driver {_driver(env)}",
        f"- torch {env.get('torch', '?')} (CUDA {env.get('torch_cuda', '-')}), "
        f"triton {env.get('triton', '?')}, Python {env.get('python', '?')}, "
        f"commit {env.get('commit') or '?'}",
        f"- measured roofline: copy {_num(roof.get('copy_gbps'), '.0f')} GB/s (read + write), "
        f"matmul bf16 {_num(roof.get('matmul_bf16_tflops'), '.1f')}, "
        f"fp32 TF32 {_num(roof.get('matmul_fp32_tf32_tflops'), '.1f')}, "
        f"fp32 IEEE {_num(roof.get('matmul_fp32_ieee_tflops'), '.1f')} TFLOP/s",
    ]
    backends = (report.get("backends") or {}).get("backends")
    if backends:
        lines.append("- backends: " + "; ".join(
            f"{name} {'available' if s['available'] else 'unavailable'}"
            for name, s in backends.items()))
    ext = (report.get("backends") or {}).get("ext")
    if ext:
        lines.append(f"- extension: {'loaded' if ext.get('loaded') else 'NOT loaded'} "
                     f"({ext.get('origin')}, devices {ext.get('devices')})")
    return lines


def _driver(env: dict) -> str:
    gpus = (env.get("nvidia_smi") or {}).get("gpus") or []
    return gpus[0].get("driver_version", "?") if gpus else "-"


def steps_lines(report: dict) -> list:
    rows = [[s["step"], s["status"], _num(s.get("seconds"), ".0f"), _num(s.get("limit_s"), "d")]
            for s in report["steps"]]
    return _table(["step", "status", "seconds", "limit s"], rows)


def tests_lines(report: dict) -> list:
    tests = report.get("tests")
    if tests is None:
        return ["no junit XML (the test step did not run or wrote nothing)"]
    lines = [f"{tests['passed']} passed, {tests['failures']} failed, {tests['errors']} errors, "
             f"{tests['skipped']} skipped of {tests['tests']} ({tests['time_s']:.0f} s)"]
    lines += [f"- {c['kind']}: {c['test']}: {c['message']}" for c in tests["failed_cases"]]
    if tests["failed_cases_omitted"]:
        lines.append(f"- ... and {tests['failed_cases_omitted']} more (junit.xml)")
    return lines


def train_lines(report: dict) -> list:
    rows = [[r["backend"], "compile" if r["compile"] else "eager",
             _num(r.get("images_per_s"), ".1f"), _num(r.get("median_step_ms"), ".1f"),
             _num(r.get("warmup_s"), ".0f"), f"{r.get('timed_steps', 0)}", r["status"]]
            for r in report["train"]]
    first = next((r for r in report["train"] if r.get("size")), {})
    lines = [f"Trainer at {first.get('size', '?')}x{first.get('size', '?')}, batch "
             f"{first.get('batch', '?')}, bf16 autocast {first.get('amp_bf16', '?')}, "
             f"VGG weights {first.get('vgg_weights', '?')}:", ""]
    lines += _table(["backend", "mode", "images/s", "median step ms", "warm-up s",
                     "timed steps", "status"], rows)
    if report["train_ratios"]:
        lines += [""] + [f"- {k}: {v:.2f}x" for k, v in report["train_ratios"].items()]
    return lines


def _shown(row: dict) -> bool:
    if row["suite"] == "bench_reference":
        return row["provider"] == "reference"
    return row["provider"] not in BASELINES


def case_lines(report: dict) -> list:
    lines = []
    for suite, entry in report["benchmarks"].items():
        if not entry["present"]:
            lines += [f"### {suite}", "", "no results (the step did not run or wrote nothing)", ""]
            continue
        rows = [r for r in entry["rows"] if _shown(r)]
        shown = ("the reference backend against eager" if suite == "bench_reference" else
                 "fastgram's providers; eager and torch.compile are the ratios' baselines")
        lines += [f"### {suite}", "", f"{len(rows)} of {len(entry['rows'])} cases shown ({shown})."]
        if entry.get("incomplete_cases"):
            lines.append("Interrupted by the step's time limit: "
                         + ", ".join(entry["incomplete_cases"]) + ".")
        lines.append("")
        lines += _table(
            ["case", "provider", "ms", "GB/s", "TFLOP/s", "% roofline", "x eager",
             "x compile", "target", "met"],
            [[r["func"] + "[" + r["case"] + "]", r["provider"], _num(r["median_ms"], ".4g"),
              _num(r["gbps"], ".4g"), _num(r["tflops"], ".3g"),
              _pct(r["fraction_of_roofline"]), _num(r["speedup_vs_eager"], ".2f", "x"),
              _num(r["speedup_vs_compile"], ".2f", "x"), target_text(r), r["verdict"]]
             for r in rows])
        lines.append("")
    return lines


def target_lines(report: dict, max_missed: int = 8) -> list:
    rows = [[t["title"], t["cases"], t["met"], t["missed"], t["incomplete"]]
            for t in report["targets"].values()]
    lines = _table(["target", "cases", "met", "missed", "incomplete"], rows) + [""]
    for t in report["targets"].values():
        for case in t["missed_cases"][:max_missed]:
            lines.append(f"- missed: {case}")
        if len(t["missed_cases"]) > max_missed:
            lines.append(f"- ... {len(t['missed_cases']) - max_missed} more missed in "
                         f"'{t['title']}' (gpu_report.md)")
    if not any(t["cases"] for t in report["targets"].values()):
        lines.append("(no fastgram case measured on CUDA: nothing to hold to the targets)")
    return lines


def render_markdown(report: dict) -> str:
    lines = ["# fastgram GPU check", ""] + header_lines(report)
    lines += ["", "## Steps", ""] + steps_lines(report)
    lines += ["", "## Tests", ""] + tests_lines(report)
    lines += ["", "## Training throughput", ""] + train_lines(report)
    lines += ["", "## Benchmarks", ""] + case_lines(report)
    lines += ["## the GPU targets (ENGINEERING.md, section 6)", ""] + target_lines(report, max_missed=10**6)
    return "\n".join(lines) + "\n"


def render_console(report: dict) -> str:
    """What the check prints last: the per-case table first (long), the
    summary after it, so the end of the output holds the verdicts."""
    lines = case_lines(report)
    lines += ["## Summary", ""] + header_lines(report) + [""] + steps_lines(report)
    lines += ["", "Tests: " + "\n".join(tests_lines(report))]
    lines += [""] + train_lines(report) + [""] + target_lines(report)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Assemble the GPU check's report.")
    parser.add_argument("--work", required=True, help="the check's work directory")
    parser.add_argument("--out", required=True, help="where gpu_report.{json,md} go")
    parser.add_argument("--mode", default="gpu", help="label: gpu or dry-run")
    parser.add_argument("--quiet", action="store_true", help="do not print the summary")
    args = parser.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    if not work.is_dir():
        parser.error(f"--work: {str(work)!r} is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(work, args.mode)
    (out / "gpu_report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "gpu_report.md").write_text(render_markdown(report))
    if not args.quiet:
        sys.stdout.write(render_console(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
