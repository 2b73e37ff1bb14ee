"""fastgram's unbiased AdaIN and moment loss against pytorch-AdaIN's numerics,
on the CPU: agreement and forward+backward speed.

pytorch-AdaIN (naoto0804/pytorch-AdaIN) is re-implemented below from its
documented behaviour, not copied: per (sample, channel) over the flattened
spatial positions, mean and ``var()`` with PyTorch's default (unbiased, N - 1)
correction, eps = 1e-5 added to the variance before the square root; AdaIN
maps the content's statistics onto the style's; the training loss
(``calc_style_loss``) is the MSE of the means plus the MSE of the standard
deviations, summed over relu1_1..relu4_1.

Shapes: VGG19 features of a batch of 8 256x256 content images (relu1_1 ..
relu4_1: 64x256², 128x128², 256x64², 512x32²); AdaIN at relu4_1 with style
images of the same size and of 512x512 (a 64x64 style feature map); the
style loss against style features of the same size.

Agreement: relative error ||x - ref|| / ||ref|| and the largest elementwise
relative error |x - ref| / max|ref|, of the outputs and gradients, against
the same re-implementation evaluated in float64; the float32
re-implementation's own error is printed beside it (what fp32 rounding
costs either way).

Speed: forward + backward of each variant, the variants run alternately in
one process (interleaved), medians of the repeats. AdaIN takes gradients
for content and style; the style loss for the generated image's features
only (the style features come from a frozen encoder, as in pytorch-AdaIN).

    python scripts/compare_pytorch_adain.py [--repeats 7] [--batch 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import fastgram
from fastgram import ops

EPS = 1e-5
LAYERS = (("relu1_1", 64, 1), ("relu2_1", 128, 2), ("relu3_1", 256, 4), ("relu4_1", 512, 8))


# --------------------------------------------------------------------------
# pytorch-AdaIN's numerics, written here


def paper_mean_std(feat: torch.Tensor, eps: float = EPS):
    """(mean, std), each (N, C, 1, 1): std = sqrt(unbiased var + eps)."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    std = torch.sqrt(flat.var(dim=2) + eps)
    return flat.mean(dim=2).reshape(n, c, 1, 1), std.reshape(n, c, 1, 1)


def paper_adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    c_mean, c_std = paper_mean_std(content)
    s_mean, s_std = paper_mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


def paper_style_loss(features, targets) -> torch.Tensor:
    total = 0.0
    for f, t in zip(features, targets):
        fm, fs = paper_mean_std(f)
        tm, ts = paper_mean_std(t)
        total = total + F.mse_loss(fm, tm) + F.mse_loss(fs, ts)
    return total


# --------------------------------------------------------------------------
# measurement


def relu_features(shape, gen, scale=1.0):
    return (torch.randn(*shape, generator=gen) * scale + 0.2).relu_()


def errors(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    out, ref = out.detach().double(), ref.detach().double()
    diff = out - ref
    return (float(diff.norm() / ref.norm()),
            float(diff.abs().max() / ref.abs().max()))


def run_with_grads(fn, inputs, grad=None):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad if grad is not None else torch.ones_like(out))
    return out.detach(), [t.grad for t in leaves]


def agreement(name, fast, paper, inputs, grad_shape, gen, lines):
    grad = torch.randn(*grad_shape, generator=gen) if grad_shape else None
    ref_out, ref_grads = run_with_grads(
        paper, [t.double() for t in inputs], None if grad is None else grad.double())
    results = {}
    for label, fn in (("fastgram", fast), ("paper fp32", paper)):
        out, grads = run_with_grads(fn, inputs, grad)
        results[label] = [errors(out, ref_out)] + [errors(g, r) for g, r in zip(grads, ref_grads)]
    parts = ["output"] + [f"grad {n}" for n in ("content", "style")][:len(inputs)] \
        if len(inputs) == 2 else ["loss"] + [f"grad features[{i}]" for i in range(len(inputs) // 2)]
    lines.append(f"{name}: relative error vs the float64 re-implementation (norm-wise / max elementwise)")
    for i, part in enumerate(parts):
        f_norm, f_max = results["fastgram"][i]
        p_norm, p_max = results["paper fp32"][i]
        lines.append(f"  {part:<22} fastgram {f_norm:.2e} / {f_max:.2e}   "
                     f"paper formula in fp32 {p_norm:.2e} / {p_max:.2e}")
    return max(max(e) for e in results["fastgram"])


def timing(name, variants: dict, inputs, repeats, lines, trainable=None):
    """``trainable``: how many leading inputs take gradients (all by default;
    the style loss's style features do not, as in pytorch-AdaIN's training)."""
    times = {label: [] for label in variants}
    trainable = len(inputs) if trainable is None else trainable

    def step(fn):
        leaves = [t.detach().requires_grad_(i < trainable) for i, t in enumerate(inputs)]
        out = fn(*leaves)
        out.sum().backward() if out.dim() else out.backward()

    for fn in variants.values():  # warm-up (the extension's first call, allocator)
        step(fn)
    for _ in range(repeats):
        for label, fn in variants.items():
            start = time.perf_counter()
            step(fn)
            times[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(t) * 1e3 for label, t in times.items()}
    base = medians["pytorch-AdaIN formula (eager)"]
    lines.append(f"{name}: forward+backward, median of {repeats} interleaved repeats")
    for label, ms in medians.items():
        lines.append(f"  {label:<34} {ms:9.1f} ms   {base / ms:5.2f}x")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    b, size = args.batch, args.size
    backend = fastgram.backends()["ext"]
    lines = [
        "fastgram vs pytorch-AdaIN's numerics (re-implemented from its documented behaviour)",
        f"torch {torch.__version__}, fastgram {fastgram.__version__}, python "
        f"{platform.python_version()}, {torch.get_num_threads()} threads, CPU "
        f"({platform.processor() or platform.machine()}); ext backend "
        f"{'available' if backend.available else 'unavailable: ' + str(backend.reason)}",
        f"batch {b}, content {size}x{size}, float32; calls use fastgram's default backend (auto)",
        "",
    ]
    worst = {}

    # AdaIN at relu4_1: style of the content's size, and of twice its size
    c4 = relu_features((b, 512, size // 8, size // 8), gen)
    for label, style_px in (("same size", size), ("512px style", 2 * size)):
        s4 = relu_features((b, 512, style_px // 8, style_px // 8), gen, 1.5)
        fast = lambda c, s: ops.adain(c, s, unbiased=True)  # noqa: E731
        name = f"adain relu4_1 {tuple(c4.shape)} <- style {tuple(s4.shape)} ({label})"
        worst[name] = agreement(name, fast, paper_adain, [c4, s4], c4.shape, gen, lines)
        timing(name, {"pytorch-AdaIN formula (eager)": paper_adain,
                      "fastgram adain(unbiased=True)": fast}, [c4, s4], args.repeats, lines)
        lines.append("")

    # the style loss over relu1_1..relu4_1
    feats = [relu_features((b, c, size // s, size // s), gen) for _, c, s in LAYERS]
    style = [relu_features((b, c, size // s, size // s), gen, 1.5) for _, c, s in LAYERS]
    n = len(feats)
    fast_loss = lambda *t: ops.moment_loss(list(t[:n]), list(t[n:]), unbiased=True)  # noqa: E731
    paper_loss = lambda *t: paper_style_loss(t[:n], t[n:])  # noqa: E731
    name = "style loss relu1_1..relu4_1 " + ", ".join(str(tuple(f.shape)) for f in feats)
    worst[name] = agreement(name, fast_loss, paper_loss, feats + style, (), gen, lines)
    timing(name, {"pytorch-AdaIN formula (eager)": paper_loss,
                  "fastgram moment_loss(unbiased=True)": fast_loss},
           feats + style, args.repeats, lines, trainable=n)
    lines.append("")
    lines.append("largest relative error of fastgram (any output or gradient, norm-wise or "
                 "elementwise): " + ", ".join(f"{v:.2e}" for v in worst.values()))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
