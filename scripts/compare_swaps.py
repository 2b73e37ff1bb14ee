"""Before/after ``fastgram.patch`` on the CPU, for the re-implemented
projects of tests/protocol_models.py, in one process.

* fast_neural_style: one training step (TransformerNet forward, loss
  network, content + Gram style loss, backward) with the project's own
  Gram style loss and unpatched model (before) against ``fastgram.patch`` +
  ``fastgram.ops.style_loss`` (after), plus each change alone.
* MUNIT-like generator: forward, and forward+backward of an L1 loss, before
  and after ``fastgram.patch``.

Variants run interleaved (one repeat of each in turn), the median is kept;
the speed ratio is before / after (> 1: fastgram faster). Agreement is the
largest absolute difference of outputs, losses and parameter gradients.

    python scripts/compare_swaps.py [--repeats 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

import fastgram  # noqa: E402
from fastgram import ops  # noqa: E402
from protocol_models import (  # noqa: E402
    LossNet,
    MunitGenerator,
    TransformerNet,
    gram_matrix,
    their_style_loss,
)


# {variant: (fastest, slowest)} seconds of the last interleaved() call,
# printed beside the medians: the machine is shared, the spread shows it.
SPREAD = {}


def _spread(name):
    low, high = SPREAD[name]
    return f"[{low * 1e3:.0f}-{high * 1e3:.0f}]"


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(variants, repeats, warmup=1):
    """{name: median seconds} with the variants run in turn, repeat after
    repeat, and {name: last result}; the spread of each goes to SPREAD."""
    times = {name: [] for name in variants}
    results = {}
    for i in range(warmup + repeats):
        for name, fn in variants.items():
            seconds, results[name] = _timed(fn)
            if i >= warmup:
                times[name].append(seconds)
    SPREAD.update({name: (min(t), max(t)) for name, t in times.items()})
    return {name: statistics.median(t) for name, t in times.items()}, results


def _max_diff(a, b):
    """Largest |a - b| over tensors, dicts and tuples of them."""
    if isinstance(a, dict):
        return max(_max_diff(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return max(_max_diff(x, y) for x, y in zip(a, b))
    return float((a.double() - b.double()).abs().max())


def _loss_and_grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return {"loss": loss.detach()}, grads


def fast_neural_style(repeats, lines):
    torch.manual_seed(0)
    size, batch = 128, 4
    net = TransformerNet(width=32, n_res=5)  # the original's widths and depth
    vgg = LossNet(width=64)  # VGG16-like channel counts 64..512, one conv per stage
    x = torch.rand(batch, 3, size, size)
    style_features = vgg(torch.rand(1, 3, size, size))
    their_grams = [gram_matrix(f) for f in style_features]
    our_targets = [ops.gram_matrix(f)[0] for f in style_features]
    style_weight, content_weight = 1e5, 1.0

    def step(style_loss):
        def run(model):
            feats = vgg(model(x))
            content = content_weight * torch.nn.functional.mse_loss(feats[1], vgg(x)[1])
            return content + style_loss(feats)

        return run

    theirs = step(lambda feats: their_style_loss(feats, their_grams, style_weight))
    ours = step(lambda feats: style_weight * ops.style_loss(feats, our_targets))
    patched = copy.deepcopy(net)
    report = fastgram.patch(patched)
    variants = {
        "before (torch norms, their Gram loss)": lambda: _loss_and_grads(net, theirs),
        "after (patch + fastgram.ops.style_loss)": lambda: _loss_and_grads(patched, ours),
        "patch only": lambda: _loss_and_grads(patched, theirs),
        "fastgram.ops.style_loss only": lambda: _loss_and_grads(net, ours),
    }
    medians, results = interleaved(variants, repeats)
    before = "before (torch norms, their Gram loss)"
    lines.append(
        f"fast_neural_style-like training step: TransformerNet(width 32, 5 residual blocks), "
        f"batch {batch}, {size}x{size}, float32; {len(report.swapped)} instance norms swapped, "
        f"{len(report.skipped)} left"
    )
    for name, seconds in medians.items():
        diff = _max_diff(results[name], results[before])
        lines.append(
            f"  {name:42s} {seconds * 1e3:8.1f} ms {_spread(name):13s} "
            f"x{medians[before] / seconds:5.2f}  "
            f"max |diff| loss+grads {diff:.1e}"
        )
    loss = float(results[before][0]["loss"])
    after = results["after (patch + fastgram.ops.style_loss)"]
    relative = _max_diff(after[0], results[before][0]) / abs(loss)
    lines.append(f"  (loss {loss:.4e}; relative difference of the 'after' loss {relative:.1e})")


def munit(repeats, lines):
    torch.manual_seed(0)
    size, batch = 128, 2
    net = MunitGenerator(dim=64, n_down=2, n_res=4, style_dim=8, mlp_dim=256)  # MUNIT's defaults
    images = torch.rand(batch, 3, size, size)
    style = torch.randn(batch, 8)
    target = torch.rand(batch, 3, size, size)
    patched = copy.deepcopy(net)
    report = fastgram.patch(patched)

    def forward(model):
        with torch.no_grad():
            return {"out": model(images, style)}

    def train_step(model):
        return _loss_and_grads(model, lambda m: (m(images, style) - target).abs().mean())

    lines.append(
        f"MUNIT-like generator: dim 64, 2 downsamplings, 4 residual blocks, style 8, MLP 256, "
        f"batch {batch}, {size}x{size}, float32; {len(report.swapped)} swapped "
        f"({len(report.notes)} AdaIN), {len(report.skipped)} left"
    )
    for label, fn in (("forward", forward), ("forward+backward", train_step)):
        medians, results = interleaved(
            {"before": lambda: fn(net), "after": lambda: fn(patched)}, repeats
        )
        diff = _max_diff(results["after"], results["before"])
        lines.append(
            f"  {label:17s} before {medians['before'] * 1e3:8.1f} ms {_spread('before')}  after "
            f"{medians['after'] * 1e3:8.1f} ms {_spread('after')}  "
            f"x{medians['before'] / medians['after']:5.2f}  "
            f"max |diff| {diff:.1e}"
        )
    lines.append("  report:")
    lines += ["    " + line for line in str(report).splitlines()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats: expected at least 1")
    available = [name for name, s in fastgram.backends().items() if s.available]
    lines = [
        f"compare_swaps.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"backend {fastgram.get_backend()} (available: {', '.join(available)})",
        f"medians of {args.repeats} interleaved repeats [fastest-slowest ms]; "
        "ratio = before / after; "
        f"machine shared with other jobs (load average {os.getloadavg()[0]:.1f} at start)",
        "",
    ]
    fast_neural_style(args.repeats, lines)
    lines.append("")
    munit(args.repeats, lines)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
