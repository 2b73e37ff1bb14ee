"""``StyleTransferGAN``: train, stylise, save and load in one object."""

from __future__ import annotations

import os
import pathlib
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from PIL import Image

from fastgram import imageio, memory, precision
from fastgram._version import __version__
from fastgram import validation
from fastgram.train import checkpoint, networks
from fastgram.train.config import TrainConfig
from fastgram.train.trainer import Trainer, resolve_device

MODEL_FORMAT = 1

ImageLike = Union[Image.Image, str, os.PathLike, torch.Tensor]


class StyleTransferGAN:
    """A style-transfer GAN: a generator driven by style codes from a style
    encoder, trained adversarially with VGG19 content and Gram style losses.

    Args:
        size: training crop size (and the size style images are encoded at).
        style_dim: length of the style code (None: the generator's default,
            8 for ``generator="munit"``; the ``"adain"`` generator's code is
            its layer's channel statistics).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``.
        **config: any other :class:`fastgram.train.TrainConfig` field
            (``ngf``, ``style_weight``, ``adv_loss``, ``steps``, ...).

    >>> gan = StyleTransferGAN(size=128)
    >>> gan.fit("photos/", "paintings/", steps=2000, out_dir="runs/paint")
    >>> picture = gan.stylize("photo.jpg", style="painting.jpg", alpha=0.8)
    """

    def __init__(self, size: int = 256, style_dim: Optional[int] = None, *, device="auto",
                 **config):
        self.config = TrainConfig(size=size, style_dim=style_dim, **config)
        self.device = resolve_device(device)
        self.generator = networks.build_generator(self.config).to(self.device).eval()
        self.style_encoder = networks.build_style_encoder(self.config).to(self.device).eval()
        if precision.bf16_on_cpu(self.device, self.config.amp_cpu):
            # oneDNN's bf16 convolutions run about 4x faster on channels_last
            # weights (measured: VGG19 to relu3_1 at 512x512 in 0.14 s
            # against 0.6 s); the results are the same.
            self.generator.to(memory_format=torch.channels_last)
            self.style_encoder.to(memory_format=torch.channels_last)
        self.last_metrics: dict = {}

    # -- training -----------------------------------------------------------

    def fit(
        self,
        content,
        style,
        steps: Optional[int] = None,
        out_dir="runs/fastgram",
        resume: bool = False,
        quiet: bool = False,
    ) -> dict:
        """Train on ``content`` and ``style`` (directories or lists of image
        paths) until ``steps`` steps in total (default ``config.steps``);
        checkpoints, samples and metrics go to ``out_dir``. Afterwards this
        object stylises with the EMA weights. Returns the last metrics."""
        if steps is not None:
            validation.integer(steps, "steps")
        trainer = Trainer(
            self.config, content, style, out_dir, device=self.device, resume=resume, quiet=quiet
        )
        self.last_metrics = trainer.fit(steps)
        self.generator.load_state_dict(trainer.generator_ema.shadow.state_dict())
        self.style_encoder.load_state_dict(trainer.style_encoder_ema.shadow.state_dict())
        return self.last_metrics

    # -- inference ------------------------------------------------------------

    @torch.no_grad()
    def encode_style(self, images) -> torch.Tensor:
        """Style codes (N, style_dim) of one image or a list of them (PIL
        images, paths, or (3, H, W) / (N, 3, H, W) tensors in [0, 1]).
        Images are resized so their shorter side is ``config.style_size``
        (default ``config.size``)."""
        batch = [self._style_tensor(t) for t in _as_list(images, "images")]
        with self._autocast():
            return torch.cat([self.style_encoder(t) for t in batch]).float()

    @torch.no_grad()
    def stylize(
        self,
        content,
        style=None,
        *,
        alpha: float = 1.0,
        size: Optional[int] = None,
        style_code: Optional[torch.Tensor] = None,
    ):
        """Render ``content`` in the style of ``style`` (or of ``style_code``).

        Args:
            content: a PIL image, a path, a (3, H, W) or (B, 3, H, W) tensor
                in [0, 1], or a list of those.
            style: one style image for all contents, or a list with one per
                content. Not needed when ``style_code`` is given.
            alpha: 1 applies the style fully, 0 keeps the content's own
                style; in between, the AdaIN parameters of the two codes are
                blended.
            size: ``None`` keeps each content's resolution (sides that are not
                multiples of the network's stride are padded by reflection and
                cropped back); an int resizes the shorter side to it first.
            style_code: (style_dim,) or (N, style_dim) codes, e.g. from
                :meth:`encode_style`, averaged or interpolated.

        Returns:
            The same kind as ``content``: PIL images for PIL images and paths,
            tensors (on their own device) for tensors; a list for a list.
        """
        alpha = validation.in_unit_interval(alpha, "alpha")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"size: expected None or a positive int, got {size!r}")
        single = not isinstance(content, (list, tuple))
        contents = _as_list(content, "content")
        codes = self._codes_for(len(contents), style, style_code)
        results = [
            self._stylize_one(item, code, alpha, size) for item, code in zip(contents, codes)
        ]
        return results[0] if single else results

    def _codes_for(self, count: int, style, style_code) -> List[torch.Tensor]:
        if (style is None) == (style_code is None):
            raise ValueError("style, style_code: give exactly one of them")
        if style_code is not None:
            validation.tensor(style_code, "style_code", (1, 2))
            codes = style_code.reshape(-1, style_code.shape[-1]).to(self.device)
            if codes.shape[1] != self.config.style_dim:
                raise ValueError(
                    f"style_code: expected {self.config.style_dim} values per code, "
                    f"got shape {tuple(style_code.shape)}"
                )
        else:
            styles = _as_list(style, "style")
            codes = torch.cat([self.encode_style(s) for s in styles])
        if codes.shape[0] == 1:
            return [codes] * count
        if codes.shape[0] != count:
            raise ValueError(
                f"style: expected one style (or code) for all contents or {count}, got {codes.shape[0]}"
            )
        return [c.unsqueeze(0) for c in codes]

    def _stylize_one(self, item: ImageLike, code: torch.Tensor, alpha: float, size):
        batch, kind, device = self._content_tensor(item, size)
        out = self._generate(batch, code, alpha)
        if kind == "pil":
            return imageio.tensor_to_pil(out[0])
        out = out.to(device)
        return out[0] if kind == "tensor3" else out

    def _generate(self, batch: torch.Tensor, code: torch.Tensor, alpha: float) -> torch.Tensor:
        memory.check_budget(self.generator, batch, self.style_encoder if alpha < 1.0 else None)
        height, width = batch.shape[2:]
        stride = self.generator.stride
        minimum = self.generator.min_size
        pad_h = max(-height % stride, minimum - height)
        pad_w = max(-width % stride, minimum - width)
        pad_h += -(height + pad_h) % stride
        pad_w += -(width + pad_w) % stride
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
        with self._autocast():
            content_code = self.generator.encode(batch)
            params = self.generator.style_params(code.expand(batch.shape[0], -1), batch.shape[0])
            if alpha < 1.0:
                own = self.generator.style_params(self.style_encoder(batch), batch.shape[0])
                params = alpha * params + (1.0 - alpha) * own
            out = self.generator.render(content_code, params)
        return out[:, :, :height, :width].float()

    def _autocast(self):
        """bf16 autocast on a CPU that runs it natively, for models trained
        with ``amp_cpu`` (see :mod:`fastgram.precision`)."""
        return precision.autocast(self.device, cuda=False, cpu=self.config.amp_cpu)

    def _content_tensor(self, item: ImageLike, size):
        if isinstance(item, torch.Tensor):
            validation.tensor(item, "content", (3, 4))
            if item.shape[-3] != 3:
                raise ValueError(f"content: expected 3 (RGB) channels, got shape {tuple(item.shape)}")
            _check_unit_range(item, "content")
            kind = "tensor3" if item.dim() == 3 else "tensor4"
            batch, device = item.reshape(-1, *item.shape[-3:]), item.device
        else:
            batch, kind, device = _load(item, "content").unsqueeze(0), "pil", None
        batch = batch.to(self.device, torch.float32)
        if size is not None:
            batch = _resize_shorter(batch, size)
        return batch, kind, device

    def _style_tensor(self, item: ImageLike) -> torch.Tensor:
        if isinstance(item, torch.Tensor):
            validation.tensor(item, "style", (3, 4))
            _check_unit_range(item, "style")
            batch = item.reshape(-1, *item.shape[-3:])
        else:
            batch = _load(item, "style").unsqueeze(0)
        size = self.config.style_size or self.config.size
        return _resize_shorter(batch.to(self.device, torch.float32), size)

    # -- export -------------------------------------------------------------------

    def export(self, path, format: str = "onnx") -> dict:
        """Write the generator and the style encoder as graphs of standard
        operators that run without fastgram (see :mod:`fastgram.export`).

        Args:
            path: the generator's file, ending in ``.onnx`` (``format="onnx"``,
                opset 18, needs ``pip install 'fastgram[export]'``) or ``.pt2``
                (``format="torch_export"``, read back with
                ``torch.export.load``). The style encoder goes beside it as
                ``<name>.style_encoder.<suffix>``.
            format: ``"onnx"`` or ``"torch_export"``.

        The generator graph takes ``content`` (B, 3, H, W) in [0, 1], H and W
        multiples of ``generator.stride`` (4) and at least
        ``generator.min_size`` (8), and ``style_code`` (1, style_dim); it
        renders at ``alpha=1`` in float32. Returns
        ``{"generator": path, "style_encoder": path}``.
        """
        from fastgram import export

        return export.export(self, path, format)

    # -- persistence ------------------------------------------------------------

    def save(self, path) -> pathlib.Path:
        """Write the configuration and the (EMA) inference weights atomically."""
        state = {
            "format": MODEL_FORMAT,
            "fastgram_version": __version__,
            "config": self.config.to_dict(),
            "generator": self.generator.state_dict(),
            "style_encoder": self.style_encoder.state_dict(),
        }
        return checkpoint.save(state, path)

    @classmethod
    def pretrained(cls, name: str = "starter", device="auto") -> "StyleTransferGAN":
        """The model shipped with fastgram (``"starter"``: any style, no
        training needed; see the README's "The starter model")."""
        from fastgram import data

        return cls.load(data.model_path(name), device=device)

    @classmethod
    def load(cls, path, device="auto") -> "StyleTransferGAN":
        """Load a file written by :meth:`save`, or a training checkpoint
        (``checkpoint.pt`` of ``fit``/``fastgram train``, whose EMA weights
        are used)."""
        state = checkpoint.load(path)
        config = checkpoint.config_of(state, path)
        if "models" in state:  # a trainer checkpoint
            keys = ("models.generator_ema", "models.style_encoder_ema")
        elif state.get("format") == MODEL_FORMAT:
            keys = ("generator", "style_encoder")
        else:
            raise ValueError(
                f"checkpoint: {str(path)!r} has neither 'models' (a training checkpoint) nor "
                f"format {MODEL_FORMAT} (a model file); got format {state.get('format')!r}"
            )
        values = config.to_dict()
        size, style_dim = values.pop("size"), values.pop("style_dim")
        gan = cls(size, style_dim, device=device, **values)
        for module, key in zip((gan.generator, gan.style_encoder), keys):
            checkpoint.load_weights(module, checkpoint.entry(state, key, dict, path), key, path)
        return gan


def _as_list(value, name: str) -> list:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{name}: expected at least one image")
    return items


def _load(item, name: str) -> torch.Tensor:
    if isinstance(item, Image.Image):
        return imageio.pil_to_tensor(item)
    if isinstance(item, (str, os.PathLike)):
        path = pathlib.Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file {str(path)!r}")
        try:
            return imageio.pil_to_tensor(imageio.read_image(path))
        except Exception as exc:
            raise ValueError(f"{name}: cannot read image {str(path)!r} ({exc})") from exc
    raise TypeError(
        f"{name}: expected a PIL image, a path or a tensor, got {type(item).__name__}"
    )


def _check_unit_range(image: torch.Tensor, name: str) -> None:
    """Images are RGB in [0, 1]; a 0-255 tensor would otherwise be
    stylised into saturated noise without a word."""
    low, high = torch.aminmax(image.detach())
    low, high = float(low), float(high)
    if low < 0.0 or high > 1.0:
        hint = "; divide 0-255 images by 255" if high > 1.0 else ""
        raise ValueError(f"{name}: expected values in [0, 1], got values from {low:g} to "
                         f"{high:g}{hint}")


def _resize_shorter(batch: torch.Tensor, size: int) -> torch.Tensor:
    height, width = batch.shape[2:]
    scale = size / min(height, width)
    target = (max(1, round(height * scale)), max(1, round(width * scale)))
    if target == (height, width):
        return batch
    return F.interpolate(batch, size=target, mode="bicubic", align_corners=False).clamp(0, 1)


__all__ = ["StyleTransferGAN"]
