"""How well a model transfers style: VGG19 loss ratios.

* style ratio: style loss of the output against the style image divided by
  that of the content image against the style image;
* content ratio: content loss of the output against the content image
  divided by that of the style image against the content image.

Both are below 1 when the output is closer in style to the style image than
the photo was, and closer in content to the photo than the style image was.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from fastgram import ops
from fastgram.nn import VGG19Features
from fastgram.train.config import TrainConfig


@torch.no_grad()
def transfer_ratios(
    vgg: VGG19Features,
    config: TrainConfig,
    content: torch.Tensor,
    style: torch.Tensor,
    output: torch.Tensor,
) -> Dict[str, float]:
    """Ratios for (1, 3, H, W) content and output and a style image of any
    size (resized to the content's size for the content term)."""
    style_at_content_size = F.interpolate(
        style, size=content.shape[2:], mode="bicubic", align_corners=False
    ).clamp(0, 1)
    feats = {
        name: vgg(image)
        for name, image in (("content", content), ("style", style),
                            ("output", output), ("style_resized", style_at_content_size))
    }
    grams = [ops.gram_matrix(feats["style"][k]) for k in config.style_layers]

    def style_term(name):
        return ops.style_loss([feats[name][k] for k in config.style_layers], grams,
                              config.style_layer_weights).item()

    def content_term(name):
        return sum(ops.content_loss(feats[name][k], feats["content"][k]).item()
                   for k in config.content_layers)

    return {
        "style_ratio": style_term("output") / style_term("content"),
        "content_ratio": content_term("output") / content_term("style_resized"),
    }
