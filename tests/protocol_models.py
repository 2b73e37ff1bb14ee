"""Re-implementations of the module protocols of two public projects, written
here from their documented behaviour (not their code), small enough for the
CPU: what ``fastgram.patch`` and the drop-ins are tested against, and what
``scripts/compare_swaps.py`` times.

* MUNIT (Huang et al., 2018): a decoder whose AdaIN layers take their scale
  and shift as attributes assigned from a style MLP's output before each
  forward (found by the class name ``AdaptiveInstanceNorm2d``, flat
  ``(B·C,)`` tensors, unused running buffers, statistics computed as a batch
  norm in training mode over a ``(1, B·C, H, W)`` view), layer norms with
  the unbiased standard deviation and ``eps`` added to it, and plain
  instance norms in the content encoder.
* pytorch/examples fast_neural_style (Johnson et al., 2016): TransformerNet
  with ``InstanceNorm2d(affine=True)``, reflection-padded convolutions,
  nearest-upsampling convolutions, and a Gram-matrix style loss normalised
  by C·H·W.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F


# --------------------------------------------------------------------- MUNIT
class AdaptiveInstanceNorm2d(torch.nn.Module):
    """MUNIT's protocol: ``weight``/``bias`` assigned as flat (B·C,) tensors."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = None
        self.bias = None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        assert self.weight is not None and self.bias is not None, "assign weight and bias first"
        batch, channels = x.shape[:2]
        # one batch-norm "channel" per (sample, channel): instance statistics;
        # the running buffers are tiled copies, so the originals never change
        folded = x.contiguous().view(1, batch * channels, *x.shape[2:])
        out = F.batch_norm(
            folded,
            self.running_mean.repeat(batch),
            self.running_var.repeat(batch),
            self.weight,
            self.bias,
            training=True,
            momentum=self.momentum,
            eps=self.eps,
        )
        return out.view_as(x)

    def __repr__(self):
        return f"{type(self).__name__}({self.num_features})"


class LayerNorm(torch.nn.Module):
    """MUNIT-style layer norm: per sample over (C, H, W), unbiased std, eps
    added to the std, per-channel gamma/beta."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.gamma = torch.nn.Parameter(torch.rand(num_features))
        self.beta = torch.nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        flat = x.reshape(x.shape[0], -1)
        stats_shape = (-1,) + (1,) * (x.dim() - 1)
        mean = flat.mean(1).view(stats_shape)
        std = flat.std(1).view(stats_shape)
        y = (x - mean) / (std + self.eps)
        param_shape = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.gamma.view(param_shape) + self.beta.view(param_shape)


def _conv_norm_act(cin, cout, kernel, stride, norm, act="relu"):
    pad = torch.nn.ReflectionPad2d((kernel - 1) // 2)  # 4x4 stride 2 halves the size
    layers = [pad, torch.nn.Conv2d(cin, cout, kernel, stride)]
    if norm == "in":
        layers.append(torch.nn.InstanceNorm2d(cout))
    elif norm == "adain":
        layers.append(AdaptiveInstanceNorm2d(cout))
    elif norm == "ln":
        layers.append(LayerNorm(cout))
    if act == "relu":
        layers.append(torch.nn.ReLU(inplace=True))  # in place, as MUNIT's blocks
    elif act == "tanh":
        layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


class MunitResBlock(torch.nn.Module):
    def __init__(self, dim, norm):
        super().__init__()
        self.body = torch.nn.Sequential(
            _conv_norm_act(dim, dim, 3, 1, norm), _conv_norm_act(dim, dim, 3, 1, norm, act=None)
        )

    def forward(self, x):
        return x + self.body(x)


class MunitGenerator(torch.nn.Module):
    """Content encoder (instance norms), style MLP, AdaIN decoder with layer
    norms in its upsampling blocks."""

    def __init__(self, dim=8, n_down=2, n_res=2, style_dim=4, mlp_dim=16):
        super().__init__()
        enc = [_conv_norm_act(3, dim, 7, 1, "in")]
        for _ in range(n_down):
            enc.append(_conv_norm_act(dim, 2 * dim, 4, 2, "in"))
            dim *= 2
        enc += [MunitResBlock(dim, "in") for _ in range(n_res)]
        self.enc_content = torch.nn.Sequential(*enc)
        dec = [MunitResBlock(dim, "adain") for _ in range(n_res)]
        for _ in range(n_down):
            dec += [torch.nn.Upsample(scale_factor=2), _conv_norm_act(dim, dim // 2, 5, 1, "ln")]
            dim //= 2
        dec.append(_conv_norm_act(dim, 3, 7, 1, None, act="tanh"))
        self.dec = torch.nn.Sequential(*dec)
        n_params = sum(2 * m.num_features for m in self._adain_layers())
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(style_dim, mlp_dim),
            torch.nn.ReLU(inplace=True),
            torch.nn.Linear(mlp_dim, mlp_dim),
            torch.nn.ReLU(inplace=True),
            torch.nn.Linear(mlp_dim, n_params),
        )

    def _adain_layers(self):
        # found by class name, as the protocol's code does
        return [m for m in self.dec.modules() if type(m).__name__ == "AdaptiveInstanceNorm2d"]

    def assign_adain_params(self, params):
        """Per layer, the next C columns are the shift (bias) and the C after
        them the scale (weight), flattened sample-major."""
        for m in self._adain_layers():
            c = m.num_features
            m.bias = params[:, :c].contiguous().view(-1)
            m.weight = params[:, c : 2 * c].contiguous().view(-1)
            params = params[:, 2 * c :]

    def decode(self, content, style):
        self.assign_adain_params(self.mlp(style))
        return self.dec(content)

    def forward(self, images, style):
        return self.decode(self.enc_content(images), style)


# ---------------------------------------------------------- fast_neural_style
class ConvLayer(torch.nn.Module):
    def __init__(self, cin, cout, kernel, stride):
        super().__init__()
        self.reflection_pad = torch.nn.ReflectionPad2d(kernel // 2)
        self.conv2d = torch.nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = torch.nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = torch.nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x):
        y = torch.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class UpsampleConvLayer(torch.nn.Module):
    def __init__(self, cin, cout, kernel, stride, upsample):
        super().__init__()
        self.upsample = upsample
        self.conv = ConvLayer(cin, cout, kernel, stride)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv(x)


class TransformerNet(torch.nn.Module):
    """Downsampling 9/3/3 convolutions, residual blocks, two nearest
    upsamplings, a 9x9 output convolution; affine instance norms after every
    convolution but the last (width 32 and 5 blocks in the original)."""

    def __init__(self, width=32, n_res=5):
        super().__init__()
        w = width
        self.conv1, self.in1 = ConvLayer(3, w, 9, 1), torch.nn.InstanceNorm2d(w, affine=True)
        self.conv2 = ConvLayer(w, 2 * w, 3, 2)
        self.in2 = torch.nn.InstanceNorm2d(2 * w, affine=True)
        self.conv3 = ConvLayer(2 * w, 4 * w, 3, 2)
        self.in3 = torch.nn.InstanceNorm2d(4 * w, affine=True)
        self.res = torch.nn.Sequential(*[ResidualBlock(4 * w) for _ in range(n_res)])
        self.deconv1 = UpsampleConvLayer(4 * w, 2 * w, 3, 1, upsample=2)
        self.in4 = torch.nn.InstanceNorm2d(2 * w, affine=True)
        self.deconv2 = UpsampleConvLayer(2 * w, w, 3, 1, upsample=2)
        self.in5 = torch.nn.InstanceNorm2d(w, affine=True)
        self.deconv3 = ConvLayer(w, 3, 9, 1)

    def forward(self, x):
        y = torch.relu(self.in1(self.conv1(x)))
        y = torch.relu(self.in2(self.conv2(y)))
        y = torch.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = torch.relu(self.in4(self.deconv1(y)))
        y = torch.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


class LossNet(torch.nn.Module):
    """A small VGG-like feature extractor (random weights) standing in for
    VGG16 relu1_2..relu4_3: four stages, each returning its ReLU output."""

    def __init__(self, width=8):
        super().__init__()
        stages, cin = [], 3
        for i in range(4):
            cout = width * 2**i
            pool = [torch.nn.MaxPool2d(2)] if i else []
            conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
            stages.append(torch.nn.Sequential(*pool, conv, torch.nn.ReLU()))
            cin = cout
        self.stages = torch.nn.ModuleList(stages)
        self.requires_grad_(False)

    def forward(self, x) -> List[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def gram_matrix(y):
    """fast_neural_style's Gram: (B, C, C), normalised by C·H·W."""
    b, c, h, w = y.shape
    f = y.reshape(b, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)


def their_style_loss(features, gram_style, style_weight):
    """Sum over layers of MSE(Gram(F_l), target Gram broadcast over the batch)."""
    loss = 0.0
    for f, g in zip(features, gram_style):
        gram = gram_matrix(f)
        loss = loss + F.mse_loss(gram, g.expand_as(gram))
    return style_weight * loss
