"""The any-style configuration: the VGG-statistics style encoder, colour
augmentation of style crops, the total-variation term, and training and
saving with them."""

import copy

import pytest
import torch

from fastgram import StyleTransferGAN, data
from fastgram.models import VGGStyleEncoder
from fastgram.models.vgg_style_encoder import channel_statistics
from fastgram.train import TrainConfig, Trainer, augment, losses

CONTENT = [data.image_path(name) for name in data.CONTENT_IMAGES]
STYLE = [data.image_path(name) for name in data.STYLE_IMAGES]
TINY = dict(size=32, batch_size=2, ngf=4, ndf=4, style_dim=4, n_res_blocks=1, num_scales=1,
            vgg_weights=None, ema_decay=0.5, log_every=1, sample_every=2, checkpoint_every=2,
            style_encoder="vgg", style_augment=1.0, tv_weight=0.1)


def test_channel_statistics_are_means_then_biased_stds_per_layer():
    a, b = torch.rand(2, 3, 5, 4), torch.rand(2, 2, 3, 3)
    stats = channel_statistics([a, b], eps=0.0)
    expected = torch.cat([a.mean((2, 3)), a.std((2, 3), correction=0),
                          b.mean((2, 3)), b.std((2, 3), correction=0)], 1)
    torch.testing.assert_close(stats, expected)


def test_vgg_style_encoder_keeps_its_frozen_trunk_out_of_state_and_parameters():
    encoder = VGGStyleEncoder(style_dim=6, hidden=16, vgg_weights=None)
    names = [n for n, _ in encoder.named_parameters()]
    assert names and all(n.startswith("mlp.") for n in names)
    assert all(k.startswith("mlp.") for k in encoder.state_dict())
    clone = copy.deepcopy(encoder)
    assert clone.vgg is encoder.vgg and clone.mlp is not encoder.mlp
    encoder.double()
    assert next(encoder.vgg.parameters()).dtype == torch.float64


def test_vgg_style_encoder_codes_depend_on_the_style_and_only_grad_when_asked():
    torch.manual_seed(0)
    encoder = VGGStyleEncoder(style_dim=6, hidden=16, vgg_weights=None)
    images = torch.rand(2, 3, 32, 32)
    images[1] *= 0.3
    codes = encoder(images)
    assert codes.shape == (2, 6) and not torch.allclose(codes[0], codes[1])
    assert encoder.statistics(images).grad_fn is None
    fake = images.clone().requires_grad_(True)
    encoder(fake).sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="^image:"):
        encoder(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="^image:"):
        encoder(torch.rand(1, 1, 32, 32))


def test_colour_jitter_is_seeded_in_range_and_off_at_zero():
    batch = torch.rand(3, 3, 8, 8)
    assert augment.colour_jitter(batch, torch.Generator().manual_seed(1), 0.0) is batch
    first = augment.colour_jitter(batch, torch.Generator().manual_seed(1), 1.0)
    again = augment.colour_jitter(batch, torch.Generator().manual_seed(1), 1.0)
    other = augment.colour_jitter(batch, torch.Generator().manual_seed(2), 1.0)
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first, other)
    assert first.min() >= 0 and first.max() <= 1 and first.shape == batch.shape
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="^strength:"):
            augment.colour_jitter(batch, torch.Generator(), bad)
    with pytest.raises(ValueError, match="^batch:"):
        augment.colour_jitter(torch.rand(3, 8, 8), torch.Generator(), 1.0)


def test_hue_rotation_keeps_grey_and_is_orthogonal():
    matrix = augment._hue_rotation(1.0)
    torch.testing.assert_close(matrix @ torch.ones(3), torch.ones(3))
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(3), atol=1e-6, rtol=0)


def test_total_variation_of_a_constant_is_zero_and_of_a_ramp_its_slope():
    assert losses.total_variation(torch.full((1, 3, 4, 4), 0.5)) == 0
    ramp = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 5, 5) / 4
    torch.testing.assert_close(losses.total_variation(ramp), torch.tensor(0.25))
    with pytest.raises(ValueError, match="^images:"):
        losses.total_variation(torch.rand(3, 4, 4))


def test_config_names_bad_any_style_fields():
    for field, value in (("style_encoder", "clip"), ("style_augment", 2.0), ("tv_weight", -1.0)):
        with pytest.raises(ValueError, match=f"^{field}:"):
            TrainConfig(**{field: value})


def test_vgg_style_encoder_trains_resumes_exactly_and_round_trips(tmp_path):
    straight = Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path / "a", quiet=True)
    straight.fit(4)
    first = Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path / "b", quiet=True)
    first.fit(2)
    resumed = Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path / "b", quiet=True, resume=True)
    resumed.fit(4)
    for a, b in ((straight.generator, resumed.generator),
                 (straight.style_encoder, resumed.style_encoder)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name
    gan = StyleTransferGAN.load(tmp_path / "b" / "checkpoint.pt", device="cpu")
    assert isinstance(gan.style_encoder, VGGStyleEncoder)
    saved = StyleTransferGAN.load(gan.save(tmp_path / "model.pt"), device="cpu")
    content = torch.rand(1, 3, 32, 32)
    style = torch.rand(1, 3, 40, 48)
    torch.testing.assert_close(saved.stylize(content, style=style), gan.stylize(content, style=style))


def test_trainer_feeds_the_style_encoder_its_own_vgg_passes_with_the_same_result(tmp_path):
    config = TrainConfig(**{**TINY, "vgg_weights": "imagenet"})
    trainer = Trainer(config, CONTENT, STYLE, tmp_path, quiet=True)
    assert trainer._shared_statistics
    style = trainer.style_data.sample(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        shared = trainer._style_code(trainer.style_encoder, style, trainer.vgg(style))
        own = trainer.style_encoder(style)
    torch.testing.assert_close(shared, own)
    assert not Trainer(TrainConfig(**TINY), CONTENT, STYLE, tmp_path / "b",
                       quiet=True)._shared_statistics
