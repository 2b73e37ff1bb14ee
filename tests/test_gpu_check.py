"""The GPU check's report assembler (benchmarks/gpu_report.py) on synthetic
results shaped like the suites' pytest-benchmark JSON, and the check script
(benchmarks/gpu_check.sh) rehearsed on the CPU with a few of its steps."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
H100 = "NVIDIA H100 80GB HBM3"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gpu_report = _load("gpu_report")
gpu_measure = _load("gpu_measure")


def _bench(name, **info):
    return {"name": name, "stats": {"median": info.get("median_ms", 1.0) / 1e3},
            "extra_info": dict({"device": H100, "backend_in_force": "auto"}, **info)}


def _write(path: Path, payload) -> None:
    path.write_text(json.dumps(payload))


@pytest.fixture
def work(tmp_path):
    """A work directory as gpu_check.sh leaves it after a GPU run."""
    w = tmp_path / "work"
    w.mkdir()
    _write(w / "env.json", {"device": H100, "capability": "9.0", "torch": "2.11.0+cu130",
                            "triton": "3.6.0", "python": "3.12.3", "commit": "abc1234",
                            "nvidia_smi": {"gpus": [{"driver_version": "580.159.04"}]}})
    _write(w / "roofline.json", {"copy_gbps": 3000.0, "matmul_bf16_tflops": 790.0,
                                 "matmul_fp32_ieee_tflops": 51.0,
                                 "matmul_fp32_tf32_tflops": 380.0})
    steps = [
        {"step": "env", "rc": 0, "seconds": 3, "limit_s": 45, "skipped": None},
        {"step": "tests", "rc": 124, "seconds": 140, "limit_s": 120, "skipped": None},
        {"step": "bench_gram", "rc": 1, "seconds": 50, "limit_s": 75, "skipped": None},
        {"step": "bench_reference", "rc": None, "seconds": None, "limit_s": None,
         "skipped": "budget spent"},
    ]
    (w / "steps.jsonl").write_text("\n".join(json.dumps(s) for s in steps) + "\n")
    (w / "junit.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        'errors="1" failures="1" skipped="2" tests="10" time="99.5">'
        '<testcase classname="tests.test_a" name="test_ok" time="0.1"/>'
        '<testcase classname="tests.test_a" name="test_bad" time="0.1">'
        '<failure message="AssertionError: 3 != 4">trace</failure></testcase>'
        '<testcase classname="tests.test_b" name="test_err" time="0.1">'
        '<error message="RuntimeError: CUDA error">trace</error></testcase>'
        '</testsuite></testsuites>')
    _write(w / "bench_norm.json", {"benchmarks": [
        # 64 MiB input, not long rows: the 85% bandwidth target applies; met
        _bench("bench_instance_norm[triton-bfloat16-8x64x256x256-nchw-forward]",
               provider="triton", direction="forward", shape=[8, 64, 256, 256],
               layout="nchw", dtype="bfloat16", median_ms=0.05, speedup_vs_eager=2.0,
               speedup_vs_compile=1.2, gbps=2700.0, fraction_of_copy_bw=0.9),
        # few long rows: 75% instead; missed
        _bench("bench_instance_norm[triton-bfloat16-1x64x512x512-nchw-forward]",
               provider="triton", direction="forward", shape=[1, 64, 512, 512],
               layout="nchw", dtype="bfloat16", median_ms=0.04, speedup_vs_eager=1.6,
               speedup_vs_compile=1.2, gbps=2100.0, fraction_of_copy_bw=0.7),
        # 4 MiB: only the ratios apply; no compile figure: incomplete
        _bench("bench_instance_norm[triton-bfloat16-4x128x64x64-nchw-backward]",
               provider="triton", direction="backward", shape=[4, 128, 64, 64],
               layout="nchw", dtype="bfloat16", median_ms=0.01, speedup_vs_eager=1.7,
               gbps=1200.0, fraction_of_copy_bw=0.4),
        _bench("bench_instance_norm[eager-bfloat16-8x64x256x256-nchw-forward]",
               provider="eager", direction="forward", shape=[8, 64, 256, 256],
               layout="nchw", dtype="bfloat16", median_ms=0.1, speedup_vs_eager=1.0,
               gbps=1350.0, fraction_of_copy_bw=0.45),
        _bench("bench_adain[triton-bfloat16-8x512x32x32-forward]", provider="triton",
               direction="forward", shape=[8, 512, 32, 32], dtype="bfloat16",
               median_ms=0.02, speedup_vs_eager=3.5, speedup_vs_compile=1.4,
               gbps=2500.0, fraction_of_copy_bw=0.83),
    ]})
    gram = "bench_gram[{p}-bf16-512px-b4-{layer}-forward]"
    style = "bench_style_loss[{p}-bf16-512px-b4-both]"
    _write(w / "bench_gram.json", {"benchmarks": [
        _bench(gram.format(p="triton", layer="relu1_1"), provider="triton",
               direction="forward", shape=[4, 64, 512, 512], precision="bf16",
               median_ms=0.1, speedup_vs_eager=1.4, gbps=2550.0, fraction_of_copy_bw=0.85,
               tflops=100.0, useful_tflops=100.0, fraction_of_matmul_peak=0.13,
               fraction_of_roofline=0.85),
        _bench(gram.format(p="triton", layer="relu5_1"), provider="triton",
               direction="forward", shape=[4, 512, 32, 32], precision="bf16",
               median_ms=0.01, speedup_vs_eager=1.1, gbps=900.0, fraction_of_copy_bw=0.3,
               tflops=400.0, useful_tflops=400.0, fraction_of_matmul_peak=0.5,
               fraction_of_roofline=0.5),
        _bench(gram.format(p="compile", layer="relu1_1"), provider="compile",
               direction="forward", shape=[4, 64, 512, 512], precision="bf16",
               median_ms=0.2, speedup_vs_eager=0.7, fraction_of_copy_bw=0.4),
        _bench(style.format(p="triton"), provider="triton", direction="both", size=512,
               batch=4, precision="bf16", median_ms=2.0, speedup_vs_eager=3.2,
               fraction_of_copy_bw=0.6, fraction_of_roofline=0.85, tflops=300.0,
               fraction_of_matmul_peak=0.38),
        _bench(style.format(p="compile"), provider="compile", direction="both", size=512,
               batch=4, precision="bf16", median_ms=3.2, speedup_vs_eager=2.0),
        # the case the time limit interrupted: no figures
        {"name": style.format(p="ext"), "stats": {}, "extra_info": {}},
    ]})
    _write(w / "bench_ext.json", {"benchmarks": [
        _bench("test_style_loss_fwd_bwd[b4-512px-ext-recompute]", provider="ext-recompute",
               median_ms=5.0, speedup_vs_eager=2.0, fraction_of_copy_bw=0.5,
               case="vgg19 relu1_1..relu5_1, 512px, batch 4, float32"),
        _bench("test_style_loss_fwd_bwd[b4-512px-ext]", provider="ext", median_ms=4.0,
               speedup_vs_eager=2.5, fraction_of_copy_bw=0.82,
               case="vgg19 relu1_1..relu5_1, 512px, batch 4, float32"),
        _bench("test_style_loss_fwd_bwd[b4-512px-compile]", provider="compile",
               median_ms=5.0, speedup_vs_eager=2.0,
               case="vgg19 relu1_1..relu5_1, 512px, batch 4, float32"),
    ]})
    for backend, compiled, rate in (("auto", False, 80.0), ("reference", False, 40.0),
                                    ("auto", True, 100.0)):
        mode = "compile" if compiled else "eager"
        _write(w / f"train_{backend}_{mode}.json", {
            "backend": backend, "compile": compiled, "size": 256, "batch": 8,
            "amp_bf16": True, "vgg_weights": "imagenet", "phase": "done",
            "interrupted": False, "images_per_s": rate, "median_step_ms": 8000 / rate,
            "warmup_s": 30.0 if compiled else 2.0, "timed_steps": 10})
    _write(w / "train_reference_compile.json", {
        "backend": "reference", "compile": True, "size": 256, "batch": 8,
        "phase": "warmup", "interrupted": True, "timed_steps": 0})
    return w


def _row(report, suite, name):
    return next(r for r in report["benchmarks"][suite]["rows"] if r["name"] == name)


def test_targets_are_judged_per_guide_row(work):
    report = gpu_report.build_report(work)
    big = _row(report, "bench_norm",
               "bench_instance_norm[triton-bfloat16-8x64x256x256-nchw-forward]")
    assert big["family"] == "instance_norm_fwd"
    assert [c["label"] for c in big["checks"]] == ["bw", "x eager", "x compile"]
    assert big["verdict"] == "met"
    long_rows = _row(report, "bench_norm",
                     "bench_instance_norm[triton-bfloat16-1x64x512x512-nchw-forward]")
    assert long_rows["verdict"] == "MISSED: bw (long rows) 70% < 75%"
    small_bwd = _row(report, "bench_norm",
                     "bench_instance_norm[triton-bfloat16-4x128x64x64-nchw-backward]")
    assert small_bwd["family"] == "instance_norm_bwd"
    assert [c["label"] for c in small_bwd["checks"]] == ["x eager"]  # below 32 MiB
    eager = _row(report, "bench_norm",
                 "bench_instance_norm[eager-bfloat16-8x64x256x256-nchw-forward]")
    assert eager["family"] is None and eager["verdict"] == "-"
    adain = _row(report, "bench_norm", "bench_adain[triton-bfloat16-8x512x32x32-forward]")
    assert adain["verdict"] == "met"

    relu1 = _row(report, "bench_gram", "bench_gram[triton-bf16-512px-b4-relu1_1-forward]")
    assert relu1["family"] == "gram_fwd_memory"
    assert relu1["verdict"] == "met"  # 85% >= 80%, 1.4x >= 1.3x
    assert relu1["speedup_vs_compile"] == pytest.approx(2.0)  # from the compile row
    relu5 = _row(report, "bench_gram", "bench_gram[triton-bf16-512px-b4-relu5_1-forward]")
    assert relu5["family"] == "gram_fwd_compute"
    assert relu5["verdict"] == "MISSED: bf16 peak 50% < 60%, x eager 1.10 < 1.3"

    style = _row(report, "bench_gram", "bench_style_loss[triton-bf16-512px-b4-both]")
    assert style["family"] == "style_loss"
    assert style["speedup_vs_compile"] == pytest.approx(1.6)
    assert style["verdict"] == "met"
    ext = _row(report, "bench_ext", "test_style_loss_fwd_bwd[b4-512px-ext]")
    assert ext["direction"] == "both" and ext["size"] == 512
    assert ext["speedup_vs_compile"] == pytest.approx(1.25)
    assert ext["verdict"] == "MISSED: x eager 2.50 < 3, x compile 1.25 < 1.5"
    recompute = _row(report, "bench_ext", "test_style_loss_fwd_bwd[b4-512px-ext-recompute]")
    assert recompute["speedup_vs_compile"] == pytest.approx(1.0)
    assert recompute["family"] is None  # a design alternative, not a fastgram path


def test_summary_counts_and_missing_figures(work):
    report = gpu_report.build_report(work)
    targets = report["targets"]
    assert targets["instance_norm_fwd"] == dict(targets["instance_norm_fwd"], cases=2, met=1,
                                                missed=1, incomplete=0)
    assert (targets["instance_norm_bwd"]["met"], targets["instance_norm_bwd"]["cases"]) == (1, 1)
    assert (targets["style_loss"]["cases"], targets["style_loss"]["missed"]) == (2, 1)
    assert report["benchmarks"]["bench_gram"]["incomplete_cases"] == [
        "bench_style_loss[ext-bf16-512px-b4-both]"]
    assert report["benchmarks"]["bench_reference"] == {"present": False, "rows": []}

    steps = {s["step"]: s["status"] for s in report["steps"]}
    assert steps == {"env": "ok", "tests": "TIMED OUT", "bench_gram": "FAILED (rc 1)",
                     "bench_reference": "skipped (budget spent)"}
    tests = report["tests"]
    assert (tests["tests"], tests["passed"], tests["failures"], tests["errors"]) == (10, 6, 1, 1)
    assert [c["test"] for c in tests["failed_cases"]] == ["tests.test_a::test_bad",
                                                         "tests.test_b::test_err"]
    runs = {r["variant"]: r for r in report["train"]}
    assert runs["train_reference_compile"]["status"] == "interrupted in warmup"
    assert report["train_ratios"] == {"auto / reference, eager": 2.0,
                                      "auto compiled / auto eager": 1.25}


def test_incomplete_when_a_ratio_was_not_measured(work):
    data = json.loads((work / "bench_norm.json").read_text())
    del data["benchmarks"][0]["extra_info"]["speedup_vs_compile"]
    (work / "bench_norm.json").write_text(json.dumps(data))
    report = gpu_report.build_report(work)
    row = report["benchmarks"]["bench_norm"]["rows"][0]
    assert row["verdict"] == "incomplete: x compile not measured"
    assert report["targets"]["instance_norm_fwd"]["incomplete"] == 1


def test_cpu_rows_are_not_held_to_the_h100_targets(work):
    data = json.loads((work / "bench_norm.json").read_text())
    for bench in data["benchmarks"]:
        bench["extra_info"]["device"] = "cpu"
    (work / "bench_norm.json").write_text(json.dumps(data))
    report = gpu_report.build_report(work)
    verdicts = {r["provider"]: r["verdict"] for r in report["benchmarks"]["bench_norm"]["rows"]}
    assert verdicts == {"triton": "n/a (cpu)", "eager": "-"}
    assert report["targets"]["instance_norm_fwd"]["cases"] == 0


def test_main_writes_json_and_markdown(work, tmp_path, capsys):
    out = tmp_path / "out"
    assert gpu_report.main(["--work", str(work), "--out", str(out)]) == 0
    report = json.loads((out / "gpu_report.json").read_text())
    assert report["mode"] == "gpu" and report["env"]["device"] == H100
    markdown = (out / "gpu_report.md").read_text()
    assert "- device: NVIDIA H100 80GB HBM3 (capability 9.0" in markdown
    assert "copy 3000 GB/s (read + write), matmul bf16 790.0" in markdown
    assert ("| bench_instance_norm[triton-bfloat16-8x64x256x256-nchw-forward] | triton | "
            "0.05 | 2700 | - | 90% | 2.00x | 1.20x | bw >= 85%, x eager >= 1.5, "
            "x compile >= 1.15 | met |") in markdown
    assert "| auto | eager | 80.0 | 100.0 | 2 | 10 | done |" in markdown
    assert "| 5-layer VGG style loss fwd+bwd | 2 | 1 | 1 | 0 |" in markdown
    assert "| test_style_loss_fwd_bwd[b4-512px-ext-recompute] | ext-recompute | 5 |" in markdown
    printed = capsys.readouterr().out
    # the verdicts come last: the end of the output is what a device call shows
    assert printed.rstrip().splitlines()[-1].startswith("- missed: ")
    assert printed.index("## Summary") > printed.index("### bench_norm")


def test_main_rejects_a_missing_work_directory(tmp_path):
    with pytest.raises(SystemExit):
        gpu_report.main(["--work", str(tmp_path / "nope"), "--out", str(tmp_path)])


def test_train_measurement_validates_its_arguments():
    for bad in (["--steps", "0"], ["--batch", "-1"], ["--warmup", "-2"]):
        with pytest.raises(SystemExit):
            gpu_measure.main(["train", *bad])


# --------------------------------------------------------------------------
# the script


def _run_script(args, tmp_path, **env_extra):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", TMPDIR=str(tmp_path),
               CUDA_VISIBLE_DEVICES="", **env_extra)
    env.pop("OUT", None)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="needs bash and coreutils timeout")
def test_dry_run_records_timeouts_and_budget_skips(tmp_path):
    """env runs, the compiled training run overruns its 9 s cap (the CPU
    compiles for minutes) and is interrupted with its JSON written, and the
    last step is skipped because the 30 s budget is spent; the report is
    written all the same and the exit status says a step failed. (The
    reference backend: no extension build inside the 9 s.)"""
    out = tmp_path / "out"
    proc = _run_script(["--dry-run", "--only", "env,train_reference_compile,bench_reference",
                        "--budget", "30", "--out", str(out)], tmp_path,
                       GPU_CHECK_CAP_TRAIN_REFERENCE_COMPILE="9")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((out / "gpu_report.json").read_text())
    steps = {s["step"]: s["status"] for s in report["steps"]}
    assert steps["env"] == "ok"
    assert steps["install"] == "skipped (not in --only)"
    assert steps["train_reference_compile"] == "TIMED OUT"
    assert steps["bench_reference"] == "skipped (budget spent)"
    assert report["mode"] == "dry-run" and report["env"]["device"] == "cpu"
    run = next(r for r in report["train"] if r["variant"] == "train_reference_compile")
    assert run["interrupted"] is True and run["compile"] is True and run["size"] == 64
    assert run["status"] == f"interrupted in {run['phase']}" and run["phase"] != "done"
    # what comes back from a device call: at most 8 plain files, plain names
    names = sorted(p.name for p in out.iterdir())
    assert names == ["gpu_check.log", "gpu_check_raw.tar.gz", "gpu_report.json",
                     "gpu_report.md"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    log = (out / "gpu_check.log").read_text()
    assert "=== [train_reference_compile] TIMED OUT" in log and "## Summary" in log
    assert not list(tmp_path.glob("fastgram-gpu-check.*")), "work directory left behind"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_rejects_bad_arguments(tmp_path):
    for args in (["--budget", "soon"], ["--frobnicate"], ["--only", "env,benchmarks"]):
        proc = _run_script(args, tmp_path)
        assert proc.returncode == 2 and "gpu_check.sh" in proc.stderr
    proc = _run_script(["--help"], tmp_path)
    assert proc.returncode == 0 and "carry" in proc.stdout


def test_a_failed_training_run_shows_its_error(work):
    (work / "train_auto_eager.json").write_text(json.dumps({
        "backend": "auto", "compile": False, "phase": "setup", "interrupted": False,
        "error": "ExtensionBuildError: nvcc failed\nmore", "timed_steps": 0}))
    report = gpu_report.build_report(work)
    run = next(r for r in report["train"] if r["variant"] == "train_auto_eager")
    assert run["status"] == "FAILED in setup: ExtensionBuildError: nvcc failed"
    assert "auto / reference, eager" not in report["train_ratios"]
