"""``TrainConfig(style_loss="moment")`` and ``fastgram train --style-loss``:
the AdaIN paper's moment loss as the trainer's style term."""

import argparse

import pytest
import torch

from fastgram import data, ops
from fastgram.train import TrainConfig, Trainer, losses

CONTENT = [data.image_path(name) for name in data.CONTENT_IMAGES]
STYLE = [data.image_path(name) for name in data.STYLE_IMAGES]
TINY = dict(size=32, batch_size=2, ngf=4, ndf=4, style_dim=4, n_res_blocks=1, num_scales=1,
            vgg_weights=None, ema_decay=0.5, log_every=1, sample_every=2, checkpoint_every=2,
            style_weight=1e-3, content_weight=1e-2)


def test_moment_style_loss_trains_two_steps(tmp_path):
    trainer = Trainer(TrainConfig(**TINY, style_loss="moment"), CONTENT, STYLE, tmp_path,
                      quiet=True)
    before = {n: p.detach().clone() for n, p in trainer.generator.named_parameters()}
    first = trainer.step()
    second = trainer.step()
    assert all(torch.isfinite(torch.tensor(m["style"])) for m in (first, second))
    assert first["style"] > 0
    moved = [n for n, p in trainer.generator.named_parameters() if not torch.equal(before[n], p)]
    assert moved


def test_style_term_is_the_moment_loss(gen):
    layers = ("relu1_1", "relu2_1")
    out = {k: torch.randn(2, c, 8, 8, generator=gen) for k, c in zip(layers, (4, 6))}
    style = {k: torch.randn(2, c, 6, 6, generator=gen) for k, c in zip(layers, (4, 6))}
    targets = losses.style_targets(style, layers, "moment")
    term = losses.style_loss(out, targets, layers, [1.0, 0.5], "moment")
    expected = ops.moment_loss([out[k] for k in layers], [style[k] for k in layers], [1.0, 0.5],
                               unbiased=True, backend="reference")
    assert torch.allclose(term, expected, rtol=1e-6)
    gram = losses.style_loss(out, losses.style_targets(style, layers), layers)
    assert not torch.allclose(gram, term)


def test_config_refuses_unknown_style_loss():
    with pytest.raises(ValueError, match="^style_loss:"):
        TrainConfig(style_loss="wasserstein")


def test_cli_takes_style_loss(tmp_path):
    from fastgram.commands import train

    parser = argparse.ArgumentParser()
    train.configure(parser)
    base = ["--content", str(tmp_path), "--style", str(tmp_path), "--out", str(tmp_path / "run")]
    assert train.config_from_args(parser.parse_args(base)).style_loss == "gram"
    args = parser.parse_args(base + ["--style-loss", "moment"])
    assert train.config_from_args(args).style_loss == "moment"
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--style-loss", "wasserstein"])
