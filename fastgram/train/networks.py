"""The networks a training run needs, built from its configuration."""

from __future__ import annotations

import torch

from fastgram.models import (AdaINGenerator, Discriminator, Generator, StyleEncoder,
                             VGGStatisticsEncoder, VGGStyleEncoder)
from fastgram.models.vgg_style_encoder import STATISTICS_LAYERS
from fastgram.nn import InstanceNorm2d, VGG19Features
from fastgram.train.config import TrainConfig


def build_generator(config: TrainConfig) -> torch.nn.Module:
    if config.generator == "adain":
        return AdaINGenerator(config.adain_layer, config.ngf, vgg_weights=config.vgg_weights)
    return Generator(3, 3, config.ngf, style_dim=config.style_dim, n_res_blocks=config.n_res_blocks)


def build_style_encoder(config: TrainConfig) -> torch.nn.Module:
    if config.style_encoder == "statistics":
        return VGGStatisticsEncoder(config.adain_layer, vgg_weights=config.vgg_weights)
    if config.style_encoder == "vgg":
        return VGGStyleEncoder(config.style_dim, vgg_weights=config.vgg_weights)
    return StyleEncoder(3, config.style_dim, ndf=config.ngf)


def build_discriminator(config: TrainConfig) -> Discriminator:
    # Spectral normalisation replaces the norm layers rather than stacking on them.
    norm = None if config.spectral_norm else InstanceNorm2d
    return Discriminator(
        3,
        config.ndf,
        num_scales=config.num_scales,
        norm_layer=norm,
        spectral_norm=config.spectral_norm,
    )


def build_vgg(config: TrainConfig) -> VGG19Features:
    layers = config.content_layers + config.style_layers
    if config.generator == "adain":  # the content target is taken there
        layers += (config.adain_layer,)
    if shares_style_statistics(config):
        layers += statistics_layers(config)
    layers = tuple(dict.fromkeys(layers))
    return VGG19Features(layers=layers, weights=config.vgg_weights)


def statistics_layers(config: TrainConfig) -> tuple:
    """The VGG19 layers whose channel statistics the style encoder takes
    (none for the learned encoder)."""
    if config.style_encoder == "statistics":
        return (config.adain_layer,)
    return STATISTICS_LAYERS if config.style_encoder == "vgg" else ()


def shares_style_statistics(config: TrainConfig) -> bool:
    """Whether the loss network's VGG19 passes can feed the style encoder
    (it is the VGG-statistics one on the same weights): training then runs
    no VGG pass of its own for it. Random weights (``vgg_weights=None``) are
    drawn separately for the two, so they do not share."""
    return bool(statistics_layers(config)) and config.vgg_weights is not None


def architecture(config: TrainConfig) -> dict:
    """The configuration fields that decide the saved networks' shapes."""
    fields = ("generator", "adain_layer", "style_dim", "style_encoder", "ngf", "ndf", "n_res_blocks", "num_scales",
              "spectral_norm")
    return {name: getattr(config, name) for name in fields}
