"""Training losses against values computed by hand."""

import math

import pytest
import torch

from fastgram.train import losses

REAL = torch.tensor([[2.0, -1.0]])
FAKE = torch.tensor([[0.5, -3.0]])


def sp(z):  # softplus
    return math.log1p(math.exp(z))


def test_discriminator_losses_by_hand():
    expected = {
        "vanilla": (sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2,
        "nonsaturating": (sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2,
        "lsgan": ((2 - 1) ** 2 + (-1 - 1) ** 2) / 2 + (0.25 + 9) / 2,
        "hinge": (max(0, 1 - 2) + max(0, 1 + 1)) / 2 + (max(0, 1.5) + max(0, 1 - 3)) / 2,
    }
    for kind, value in expected.items():
        assert losses.discriminator_loss(REAL, FAKE, kind).item() == pytest.approx(value), kind


def test_generator_losses_by_hand():
    expected = {
        "vanilla": -(sp(0.5) + sp(-3)) / 2,
        "nonsaturating": (sp(-0.5) + sp(3)) / 2,
        "lsgan": ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2,
        "hinge": -(0.5 - 3) / 2,
    }
    for kind, value in expected.items():
        assert losses.generator_loss(FAKE, kind).item() == pytest.approx(value), kind


def test_multi_scale_logits_average_the_scales():
    two = losses.generator_loss([FAKE, FAKE * 2], "lsgan")
    one = (losses.generator_loss(FAKE, "lsgan") + losses.generator_loss(FAKE * 2, "lsgan")) / 2
    assert two.item() == pytest.approx(one.item())


def test_r1_penalty_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]], requires_grad=True)
    logits = (x**2).sum(dim=1)  # d logit / dx = 2x
    expected = ((2 * x) ** 2).sum(dim=1).mean()
    assert losses.r1_penalty(logits, x).item() == pytest.approx(expected.item())


def test_content_style_and_reconstruction_losses_by_hand():
    out = {"relu4_1": torch.tensor([[[[1.0, 2.0]]]]), "relu1_1": torch.tensor([[[[1.0, 3.0]]]])}
    ref = {"relu4_1": torch.tensor([[[[0.0, 4.0]]]])}
    assert losses.content_loss(out, ref).item() == pytest.approx((1 + 4) / 2)
    # One channel, N = 2: gram = (1 + 9) / 2 = 5; target 3 -> (5 - 3)^2 = 4, weight 0.5.
    grams = {"relu1_1": torch.tensor([[3.0]])}
    assert losses.style_loss(out, grams, ["relu1_1"], [0.5]).item() == pytest.approx(2.0)
    code = torch.tensor([[1.0, -1.0]])
    assert losses.style_reconstruction_loss(torch.tensor([[0.0, 1.0]]), code).item() == 1.5


def test_bad_loss_arguments():
    with pytest.raises(ValueError, match="^kind:"):
        losses.generator_loss(FAKE, "wasserstein")
    with pytest.raises(ValueError, match="^fake:"):
        losses.discriminator_loss([REAL, REAL], [FAKE])
    with pytest.raises(TypeError, match="^real:"):
        losses.discriminator_loss([], [FAKE])
    with pytest.raises(ValueError, match="^real_images:"):
        losses.r1_penalty(REAL, torch.zeros(1, 2))
