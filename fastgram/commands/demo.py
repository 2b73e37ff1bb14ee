"""``fastgram demo``: train briefly on the bundled sample images, stylise
them, and report how far the outputs moved towards the style; then show the
starter model shipped with fastgram on styles that neither model saw."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import fastgram
from fastgram import data, imageio, quality
from fastgram.commands import arguments as types
from fastgram.train import TrainConfig, Trainer, networks
from fastgram.train.evaluate import transfer_ratios
from fastgram.transfer import StyleTransferGAN

HELP = "train on the bundled sample images for a few minutes and stylise them"

DEMO_STYLE = "hubble_deep_field"
DEMO_CONFIG = dict(size=64, batch_size=4, ngf=16, ndf=16, n_res_blocks=2, num_scales=2, content_weight=3e-5,
                   log_every=10, ema_decay=0.9)
OUTPUT_SIZE = 256
# Shown with the starter model: styles it never saw in training.
UNSEEN_STYLES = ("gravel", "retina")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="fastgram-demo", help="output folder (default ./fastgram-demo)")
    parser.add_argument("--steps", type=types.positive_int, default=250,
                        help="training steps (default 250)")
    parser.add_argument("--style", choices=data.STYLE_IMAGES, default=DEMO_STYLE,
                        help=f"bundled style image (default {DEMO_STYLE})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    types.check_backend()
    out = types.output_dir(args.out)
    contents = [data.image_path(name) for name in data.CONTENT_IMAGES]
    style_path = data.image_path(args.style)
    config = TrainConfig(steps=args.steps, seed=args.seed, sample_every=max(1, args.steps // 3),
                         checkpoint_every=args.steps, **DEMO_CONFIG)
    started = time.perf_counter()
    # Probe the backends first: on a fresh machine this builds the C++
    # extension once (it says so on stderr), which must not skew the estimate.
    fastgram.backends()
    trainer = Trainer(config, contents, [style_path], out, device=args.device, quiet=args.quiet)

    # Time a few steps first (they count towards the run) for the estimate.
    probe = min(3, args.steps)
    times = []
    for _ in range(probe):
        tick = time.perf_counter()
        trainer.step()
        times.append(time.perf_counter() - tick)
    per_step = statistics.median(times)
    print(f"fastgram demo: {args.steps} steps at {config.size}px on {trainer.device}, "
          f"about {per_step:.2f} s a step: expect {per_step * (args.steps - probe) + 10:.0f} s more")
    train_start = time.perf_counter()
    metrics = trainer.fit()
    train_seconds = time.perf_counter() - train_start
    throughput = (args.steps - probe) * config.batch_size / max(train_seconds, 1e-9)

    gan = StyleTransferGAN.load(out / "checkpoint.pt", device=trainer.device)
    model_path = gan.save(out / "model.pt")
    style = imageio.pil_to_tensor(imageio.read_image(style_path)).unsqueeze(0).to(trainer.device)
    code = gan.encode_style(style)
    vgg = networks.build_vgg(config).to(trainer.device)
    ratios, rows = [], []
    for path in contents:
        content = data.load_image(path.stem, size=OUTPUT_SIZE).to(trainer.device)
        output = gan.stylize(content, style_code=code)
        imageio.save_image(output[0], out / "stylized" / f"{path.stem}.png")
        ratios.append(transfer_ratios(vgg, config, content, style, output))
        style_tile = torch.nn.functional.interpolate(style, size=content.shape[2:], mode="area")
        rows.append([content[0].cpu(), style_tile[0].cpu(), output[0].cpu()])
    grid_path = imageio.save_image(_grid(rows), out / "demo_grid.png")
    starter_path, starter_ratios = _starter_on_unseen_styles(contents, trainer.device, out)

    style_ratio = statistics.mean(r["style_ratio"] for r in ratios)
    content_ratio = statistics.mean(r["content_ratio"] for r in ratios)
    print(f"trained {trainer.step_count} steps in {train_seconds + sum(times):.0f} s "
          f"({throughput:.2f} images/s); last losses: "
          + ", ".join(f"{k}={metrics[k]:.4g}" for k in ("loss_d", "loss_g", "content", "style")
                      if k in metrics))
    print(f"grid (content | style | output): {grid_path}")
    print(f"stylized images:                 {out / 'stylized'}")
    print(f"model:                           {model_path}")
    print(f"training samples:                {out / 'samples'}")
    print(f"style ratio   (style loss of output / of content, vs the style image): {style_ratio:.3f}")
    print(f"content ratio (content loss of output / of style, vs the content image): {content_ratio:.3f}")
    print(f"starter model on styles it never saw ({', '.join(UNSEEN_STYLES)}): {starter_path}")
    print("  gram ratio (Gram distance to the style of output / of content; 1: no move): "
          + ", ".join(f"{name} {value:.2f}" for name, value in starter_ratios.items()))
    print(f"throughput    {throughput:.2f} images/s; total wall time {time.perf_counter() - started:.0f} s")
    return 0


def _grid(rows):
    """Rows of tiles cropped to the smallest tile's square."""
    crop = min(min(t.shape[1] for row in rows for t in row),
               min(t.shape[2] for row in rows for t in row))
    return imageio.image_grid([[t[:, :crop, :crop] for t in row] for row in rows])


def _starter_on_unseen_styles(contents, device, out):
    """Stylise the demo's photos with the shipped starter model in styles
    that neither it nor the demo's model saw; write a grid (content, then
    style | output per style) and return its path and the mean Gram ratio
    per style."""
    gan = StyleTransferGAN.pretrained(device=device)
    styles = {name: data.load_image(name).to(device) for name in UNSEEN_STYLES}
    codes = {name: gan.encode_style(image) for name, image in styles.items()}
    vgg = quality.feature_extractor(device)
    rows, ratios = [], {name: [] for name in UNSEEN_STYLES}
    for path in contents:
        content = data.load_image(path.stem, size=OUTPUT_SIZE).to(device)
        row = [content[0].cpu()]
        for name, style in styles.items():
            output = gan.stylize(content, style_code=codes[name])
            imageio.save_image(output[0], out / "starter" / f"{path.stem}_{name}.png")
            ratios[name].append(quality.gram_ratio(output, content, style, vgg=vgg))
            tile = torch.nn.functional.interpolate(style, size=content.shape[2:], mode="area")
            row += [tile[0].cpu(), output[0].cpu()]
        rows.append(row)
    path = imageio.save_image(_grid(rows), out / "starter_grid.png")
    return path, {name: statistics.mean(values) for name, values in ratios.items()}
