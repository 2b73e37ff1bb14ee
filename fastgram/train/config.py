"""Training configuration: one dataclass of plain values, checked on creation,
saved in every checkpoint."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from fastgram import validation
from fastgram.models.adain_generator import ADAIN_LAYERS
from fastgram.nn.vgg import DEFAULT_LAYERS, LAYER_NAMES, layer_channels, layer_stride
from fastgram.train.losses import ADVERSARIAL_LOSSES, STYLE_LOSSES


# The smallest training crop: the style encoder's four stride-2 convolutions
# need 2**4 pixels (StyleEncoder.min_size; the generator needs less).
MIN_SIZE = 16

STYLE_ENCODERS = ("learned", "vgg", "statistics")
# "munit": learned content encoder + decoder with AdaIN residual blocks driven
# by a style code; "adain": the frozen VGG19 as content encoder, AdaIN of its
# features to the style's statistics, a learned decoder (any style).
GENERATORS = ("munit", "adain")
# The style encoder each generator takes when none is named.
DEFAULT_STYLE_ENCODER = {"munit": "learned", "adain": "statistics"}


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run.

    Model sizes default to a network small enough to train on a CPU; raise
    ``ngf``/``ndf`` (64 is the usual GPU setting) for quality.
    """

    # data
    size: int = 128
    batch_size: int = 4
    # models
    generator: str = "munit"
    # None: 8 for "munit"; for "adain" the style code is the statistics of
    # adain_layer (2 x its channels) and style_dim must be that or None.
    style_dim: Optional[int] = None
    # relu3_1: at 128 px crops a decoder from relu4_1 (16 x 16 positions)
    # did not learn to render content within 1000 CPU steps; from relu3_1 it
    # did within 100 (measured for the starter model; README).
    adain_layer: str = "relu3_1"
    ngf: int = 32
    ndf: int = 32
    n_res_blocks: int = 4
    num_scales: int = 2
    spectral_norm: bool = False
    # "vgg": a style MLP on the frozen VGG19's channel statistics (styles
    # never seen in training get sensible codes); "learned": MUNIT's
    # convolutional style encoder trained from scratch; "statistics": the
    # statistics themselves (the "adain" generator's, and only its, encoder).
    # None: the generator's own (DEFAULT_STYLE_ENCODER).
    style_encoder: Optional[str] = None
    # Shorter side style images are resized to before encoding when
    # stylising; None: ``size``.
    style_size: Optional[int] = None
    # optimisation
    lr: float = 2e-4
    lr_d: Optional[float] = None  # discriminator; None: same as lr
    betas: Tuple[float, float] = (0.5, 0.999)
    # losses
    adv_loss: str = "nonsaturating"
    # The VGG19 features follow the Caffe weights' 0-255 input scale, so the
    # raw content and Gram losses are large (about 1e6 and 1e5 at the start);
    # these weights bring both near the adversarial term's order of magnitude.
    adv_weight: float = 1.0
    content_weight: float = 1e-5
    style_weight: float = 3e-5
    style_rec_weight: float = 1.0
    r1_gamma: float = 0.0
    # Total variation of the output (mean |dx| + |dy|): penalises the
    # high-frequency patterns VGG losses cannot see.
    tv_weight: float = 0.0
    # None: relu4_1 for "munit"; for "adain" its own layer, where the target
    # is the AdaIN'd content features (another layer would ask the decoder
    # to undo the style it was given).
    content_layers: Optional[Tuple[str, ...]] = None
    # "gram" (Gram matrices) or "moment" (per-channel mean and standard
    # deviation, the AdaIN paper's loss; its raw value is on another scale
    # than the Gram loss's, so style_weight wants retuning with it).
    style_loss: str = "gram"
    style_layers: Tuple[str, ...] = DEFAULT_LAYERS
    style_layer_weights: Optional[Tuple[float, ...]] = None
    vgg_weights: Optional[str] = "imagenet"
    # data: strength in [0, 1] of the random palette change of style crops
    style_augment: float = 0.0
    # run
    steps: int = 1000
    seed: int = 0
    ema_decay: float = 0.999
    amp: bool = True  # bf16 autocast on CUDA
    # bf16 autocast on the CPU, training and stylising, where the processor
    # runs bf16 natively (fastgram.precision); float32 elsewhere.
    amp_cpu: bool = False
    compile: bool = False
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 100
    max_bad_steps: int = 10

    def __post_init__(self):
        self._resolve_architecture()
        for name in ("size", "batch_size", "style_dim", "ngf", "ndf", "num_scales", "steps",
                     "log_every", "sample_every", "checkpoint_every", "max_bad_steps"):
            validation.integer(getattr(self, name), name)
        validation.integer(self.n_res_blocks, "n_res_blocks", minimum=0)
        validation.integer(self.seed, "seed", minimum=0)
        if self.size < MIN_SIZE:
            raise ValueError(f"size: expected at least {MIN_SIZE} (the style encoder's four "
                             f"stride-2 layers), got {self.size}")
        stride = layer_stride(self.adain_layer) if self.generator == "adain" else 4
        if self.size % stride:
            raise ValueError(f"size: expected a multiple of {stride} (the generator's stride), "
                             f"got {self.size}")
        if self.style_size is not None:
            validation.integer(self.style_size, "style_size")
        for name in ("lr", "adv_weight", "content_weight", "style_weight", "style_rec_weight",
                     "r1_gamma", "tv_weight", "ema_decay"):
            validation.non_negative(getattr(self, name), name)
        validation.positive(self.lr, "lr")
        if self.lr_d is not None:
            validation.positive(self.lr_d, "lr_d")
        if not self.ema_decay < 1:
            raise ValueError(f"ema_decay: expected a number in [0, 1), got {self.ema_decay}")
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas}")
        validation.one_of(self.adv_loss, "adv_loss", ADVERSARIAL_LOSSES)
        validation.one_of(self.style_loss, "style_loss", STYLE_LOSSES)
        validation.in_unit_interval(self.style_augment, "style_augment")
        self.content_layers = _layers(self.content_layers, "content_layers")
        self.style_layers = _layers(self.style_layers, "style_layers")
        if self.style_layer_weights is not None:
            self.style_layer_weights = tuple(float(w) for w in self.style_layer_weights)
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(
                    f"style_layer_weights: expected {len(self.style_layers)} weights, "
                    f"got {len(self.style_layer_weights)}"
                )

    def _resolve_architecture(self) -> None:
        """Fill in the generator-dependent defaults (style_encoder,
        style_dim) and refuse combinations that cannot work."""
        validation.one_of(self.generator, "generator", GENERATORS)
        if self.style_encoder is None:
            self.style_encoder = DEFAULT_STYLE_ENCODER[self.generator]
        validation.one_of(self.style_encoder, "style_encoder", STYLE_ENCODERS)
        if (self.generator == "adain") != (self.style_encoder == "statistics"):
            raise ValueError(
                f"style_encoder: {self.style_encoder!r} does not drive the {self.generator!r} "
                "generator; 'statistics' goes with generator='adain' and 'learned' or 'vgg' "
                "with generator='munit'")
        if self.generator != "adain":
            self.style_dim = 8 if self.style_dim is None else self.style_dim
            if self.content_layers is None:
                self.content_layers = ("relu4_1",)
            return
        if self.content_layers is None:
            self.content_layers = (self.adain_layer,)
        validation.one_of(self.adain_layer, "adain_layer", ADAIN_LAYERS)
        statistics = 2 * layer_channels(self.adain_layer)
        if self.style_dim not in (None, statistics):
            raise ValueError(
                f"style_dim: the 'adain' generator's style code is the {statistics} channel "
                f"statistics of {self.adain_layer}; give None or {statistics}, got {self.style_dim}")
        self.style_dim = statistics

    def to_dict(self) -> dict:
        """Plain values only (tuples as lists), for checkpoints and JSON."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"config: unknown fields {unknown}")
        return cls(**values)


def _layers(layers, name: str) -> Tuple[str, ...]:
    layers = tuple(layers)
    if not layers:
        raise ValueError(f"{name}: expected at least one VGG19 layer name")
    for layer in layers:
        if layer not in LAYER_NAMES:
            raise ValueError(f"{name}: unknown VGG19 layer {layer!r}; expected names like relu4_1")
    return layers
