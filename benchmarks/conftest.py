"""Benchmark session setup: versions and device in pytest-benchmark's
machine info, so every saved number says where it was measured."""

import platform

import torch

import fastgram


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch"] = torch.__version__
    machine_info["cuda"] = torch.version.cuda
    machine_info["fastgram"] = fastgram.__version__
    machine_info["python"] = platform.python_version()
    try:
        import triton

        machine_info["triton"] = triton.__version__
    except ImportError:
        machine_info["triton"] = None
    if torch.cuda.is_available():
        machine_info["gpu"] = torch.cuda.get_device_name()
    machine_info["backends"] = {
        name: (status.available, status.reason) for name, status in fastgram.backends().items()
    }


def _fmt(value, spec):
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the derived figures (ratios, GB/s, TFLOP/s) that pytest-benchmark's
    own table leaves out; ``--benchmark-json`` saves them as extra_info."""
    session = getattr(config, "_benchmarksession", None)
    benches = [b for b in getattr(session, "benchmarks", []) if b.extra_info]
    if not benches:
        return
    write = terminalreporter.write_line
    write("")
    write("fastgram figures (median of the provider; ratio = eager median / provider median;"
          " x alt: the same ratio with eager and provider alternating)")
    header = (f"{'case':<64} {'median ms':>10} {'x eager':>8} {'x alt':>6} {'target':>7} "
              f"{'GB/s':>8} {'%copy':>6} {'TFLOP/s':>8}")
    write(header)
    write("-" * len(header))
    for bench in sorted(benches, key=lambda b: b.name):
        info = bench.extra_info
        frac = info.get("fraction_of_copy_bw")
        write(
            f"{bench.name[:64]:<64} {_fmt(info.get('median_ms'), '10.3f')} "
            f"{_fmt(info.get('speedup_vs_eager'), '8.2f')} "
            f"{_fmt(info.get('interleaved_speedup_vs_eager'), '6.2f')} "
            f"{_fmt(info.get('target'), '7.2f')} {_fmt(info.get('gbps'), '8.1f')} "
            f"{_fmt(None if frac is None else 100 * frac, '6.1f')} "
            f"{_fmt(info.get('tflops'), '8.3f')}"
        )
