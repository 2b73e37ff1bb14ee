"""``StyleTransferGAN``: train, stylise, save and load in one object."""

from __future__ import annotations

import os
import pathlib
import dataclasses
import math
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fastgram import color, imageio, layer_tiling, memory, precision, tiling
from fastgram.models.adain_generator import AdaINGenerator, VGGStatisticsEncoder
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
    def encode_style(self, images, *, tile: Optional[int] = None,
                     progress: bool = False) -> torch.Tensor:
        """Style codes (N, style_dim) of one image or a list of them (PIL
        images, paths, or (3, H, W) / (N, 3, H, W) tensors in [0, 1]).
        Images are resized so their shorter side is ``config.style_size``
        (default ``config.size``).

        ``tile``: encode in tiles of this many pixels, with memory that
        depends on the tile, not the image, and a code equal to the untiled
        one: any-style models sum their VGG19 statistics over the tiles
        (:mod:`fastgram.tiling`), MUNIT-design style encoders run layer by
        layer and pool over all tiles (:mod:`fastgram.layer_tiling`).
        ``progress`` shows the tiles on stderr."""
        progress = validation.boolean(progress, "progress")
        if tile is not None:
            tile = self._check_tile(tile, self.style_encoder)
        batch = [self._style_tensor(t) for t in _as_list(images, "images")]
        codes = []
        with self._autocast():
            for t in batch:
                if tile is None:
                    codes.append(self.style_encoder(t).float())
                    continue
                if not isinstance(self.style_encoder, VGGStatisticsEncoder):
                    codes.append(layer_tiling.encode_style(self.style_encoder, t, tile,
                                                           progress).float())
                    continue
                _, mean, var = tiling.tiled_features(self.style_encoder, t, tile, keep=False,
                                                     progress=progress, label="style")
                std = (var + 1e-5).sqrt()  # channel_statistics' eps
                codes.append(torch.cat([mean, std], dim=1).float().to(t.device))
        return torch.cat(codes)

    @torch.no_grad()
    def stylize(
        self,
        content,
        style=None,
        *,
        alpha: float = 1.0,
        size: Optional[int] = None,
        style_code: Optional[torch.Tensor] = None,
        preserve_color: bool = False,
        style_weights: Optional[Sequence[float]] = None,
        masks: Optional[Sequence[ImageLike]] = None,
        tile: Optional[int] = None,
        progress: bool = False,
    ):
        """Render ``content`` in the style of ``style`` (or of ``style_code``).

        Args:
            content: a PIL image, a path, a (3, H, W) or (B, 3, H, W) tensor
                in [0, 1], or a list of those.
            style: one style image for all contents, or a list with one per
                content; with ``style_weights`` or ``masks``, the list of
                styles to mix or to place. Not needed when ``style_code`` is
                given.
            alpha: 1 applies the style fully, 0 keeps the content's own
                style; in between, the AdaIN parameters of the two codes are
                blended.
            size: ``None`` keeps each content's resolution (sides that are not
                multiples of the network's stride are padded by reflection and
                cropped back); an int resizes the shorter side to it first.
            style_code: (style_dim,) or (N, style_dim) codes, e.g. from
                :meth:`encode_style`, averaged or interpolated.
            preserve_color: keep the content's colours: the output's
                luminance with the content's chroma (YCbCr, BT.601; see
                :mod:`fastgram.color` for the method and why).
            style_weights: one non-negative weight per style (or code),
                normalised to sum 1: the styles' AdaIN parameters are mixed
                with these weights, for every content (for the starter model
                the parameters are the style codes themselves, so this equals
                stylising with the weighted mean code).
            masks: one mask per style (or code) for a single content: PIL
                images (read as greyscale), paths, or (H, W) / (1, H, W)
                tensors in [0, 1], of the content's size (resized with it
                when ``size`` is given). Soft edges are allowed; at each
                pixel the masks are normalised to sum 1, and every pixel
                needs a positive value in at least one mask. Each region is
                normalised with its own content statistics before it is
                given its style's (see :mod:`fastgram.models.regions`).
            tile: stylise in tiles of this many pixels a side, every
                instance norm and AdaIN taking its statistics over the whole
                image, so the result equals the untiled one: any-style
                models (such as the starter) in two passes
                (:mod:`fastgram.tiling`), MUNIT-design models one layer pass
                per norm (:mod:`fastgram.layer_tiling`). Works with
                ``masks``, ``alpha`` and ``preserve_color``. ``None``: whole,
                unless the memory estimate exceeds the budget, then tiled
                with a tile size that fits. Must cover the receptive field
                (20 pixels for the starter, 16 for the default MUNIT design).
            progress: show the tiles done on stderr.

        Returns:
            The same kind as ``content``: PIL images for PIL images and paths,
            tensors (on their own device) for tensors; a list for a list.
        """
        alpha = validation.in_unit_interval(alpha, "alpha")
        preserve_color = validation.boolean(preserve_color, "preserve_color")
        progress = validation.boolean(progress, "progress")
        if tile is not None:
            tile = self._check_tile(tile, self.generator)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"size: expected None or a positive int, got {size!r}")
        single = not isinstance(content, (list, tuple))
        contents = _as_list(content, "content")
        if style_weights is not None and masks is not None:
            raise ValueError("style_weights, masks: give one of them (mix styles everywhere, or "
                             "place one style per region)")
        if style_weights is None and masks is None:
            plans = [_Style(code) for code in self._codes_for(len(contents), style, style_code)]
        else:
            codes = self._all_codes(style, style_code)
            if style_weights is not None:
                plans = [_Style(codes, weights=_mix_weights(style_weights, len(codes)))]
            else:
                if len(contents) != 1:
                    raise ValueError(f"masks: expected one content image to place the regions "
                                     f"on, got {len(contents)}")
                plans = [_Style(codes, masks=_mask_list(masks, len(codes)))]
            plans = plans * len(contents)
        results = [
            self._stylize_one(item, plan, alpha, size, preserve_color, tile, progress)
            for item, plan in zip(contents, plans)
        ]
        return results[0] if single else results

    def _all_codes(self, style, style_code) -> torch.Tensor:
        """(N, style_dim) codes of ``style`` (a list of images) or ``style_code``."""
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
            return codes.float()
        return torch.cat([self.encode_style(s) for s in _as_list(style, "style")])

    def _codes_for(self, count: int, style, style_code) -> List[torch.Tensor]:
        codes = self._all_codes(style, style_code)
        if codes.shape[0] == 1:
            return [codes] * count
        if codes.shape[0] != count:
            raise ValueError(
                f"style: expected one style (or code) for all contents or {count}, got {codes.shape[0]}"
            )
        return [c.unsqueeze(0) for c in codes]

    def _stylize_one(self, item: ImageLike, plan: "_Style", alpha: float, size,
                     keep_colors: bool, tile: Optional[int] = None, progress: bool = False):
        batch, kind, device = self._content_tensor(item, None)
        if plan.masks is not None:
            plan = plan.with_masks(_prepare_masks(plan.masks, batch.shape[2:], self.device))
        if size is not None:
            batch = _resize_shorter(batch, size)
            if plan.masks is not None:
                plan = plan.with_masks(_resize_masks(plan.masks, batch.shape[2:]))
        out = self._generate(batch, plan, alpha, tile, progress)
        if keep_colors:
            out = color.preserve_color(out, batch, out=out)  # ours: converted in place
        if kind == "pil":
            return imageio.tensor_to_pil(out[0])
        out = out.to(device)
        return out[0] if kind == "tensor3" else out

    def _generate(self, batch: torch.Tensor, style, alpha: float, tile: Optional[int] = None,
                  progress: bool = False) -> torch.Tensor:
        """Stylise ``batch`` (B, 3, H, W) with ``style``: a :class:`_Style`,
        or (1 or B, style_dim) codes; in tiles of ``tile`` pixels if given."""
        plan = style if isinstance(style, _Style) else _Style(style)
        if tile is None:
            try:
                memory.check_budget(self.generator, batch,
                                    self.style_encoder if alpha < 1.0 else None)
            except memory.MemoryBudgetError:
                tile = self._auto_tile(batch, plan)
                if tile is None:
                    raise
        height, width = batch.shape[2:]
        stride = self.generator.stride
        minimum = self.generator.min_size
        pad_h = max(-height % stride, minimum - height)
        pad_w = max(-width % stride, minimum - width)
        pad_h += -(height + pad_h) % stride
        pad_w += -(width + pad_w) % stride
        masks = plan.masks
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
            if masks is not None:
                masks = F.pad(masks, (0, pad_w, 0, pad_h), mode=mode)
        if masks is not None:  # the regions at the resolution where AdaIN works
            masks = F.avg_pool2d(masks, stride) if stride > 1 else masks
        count = batch.shape[0]
        with self._autocast():
            params = self.generator.style_params(plan.codes, plan.codes.shape[0])
            if plan.weights is not None:  # mixed at the AdaIN level
                weights = plan.weights.to(params.device, params.dtype)
                params = (weights[:, None] * params).sum(dim=0, keepdim=True)
            if tile is not None:
                out = self._render_tiles(batch, params, masks, alpha, tile, progress)
                return out[:, :, :height, :width]
            content_code = self.generator.encode(batch)
            if masks is not None:
                params = params.unsqueeze(0).expand(count, -1, -1)  # (B, K, P)
            else:
                params = params.expand(count, -1)
            if alpha < 1.0:
                own = self.generator.style_params(self.style_encoder(batch), count)
                own = own.unsqueeze(1) if masks is not None else own
                params = alpha * params + (1.0 - alpha) * own
            if masks is not None:
                out = self.generator.render_regions(content_code, params, masks)
            else:
                out = self.generator.render(content_code, params)
        return out[:, :, :height, :width].float()

    def _check_tile(self, tile, network) -> int:
        """``tile`` for ``network`` (generator or style encoder): checked
        and rounded to its stride by the module that tiles it."""
        if isinstance(network, (AdaINGenerator, VGGStatisticsEncoder)):
            return tiling.check_tile(tile, network)
        return layer_tiling.check_tile(tile, network)

    def _render_tiles(self, batch: torch.Tensor, params: torch.Tensor, masks, alpha: float,
                      tile: int, progress: bool) -> torch.Tensor:
        """The generator's output in tiles: ``params`` (1, P), or (K, P)
        with ``masks`` (one row per region); ``alpha`` blends with the
        content's own style, computed over tiles too."""
        count = batch.shape[0]
        shape = (count, -1) if masks is None else (count, *params.shape)
        if isinstance(self.generator, AdaINGenerator):
            return tiling.tiled_render(self.generator, batch, params.expand(shape), tile,
                                       self._own_style(params, alpha), progress, masks)
        params = params.expand(shape)
        if alpha < 1.0:
            own = self.generator.style_params(self._tiled_own_code(batch, tile, progress), count)
            own = own.unsqueeze(1) if masks is not None else own
            params = alpha * params + (1.0 - alpha) * own
        return layer_tiling.render(self.generator, batch, params, tile, masks, progress)

    def _tiled_own_code(self, batch: torch.Tensor, tile: int, progress: bool) -> torch.Tensor:
        """The content's own style code, its style encoder run in tiles."""
        encoder = self.style_encoder
        try:
            tile = layer_tiling.check_tile(max(tile, layer_tiling.smallest_tile(encoder)), encoder)
        except ValueError as error:
            raise ValueError("alpha, tile: alpha < 1 in tiles needs a style encoder that can be "
                             f"tiled ({error}); stylise whole or with alpha=1") from None
        return layer_tiling.encode_style(encoder, batch, tile, progress)

    def _own_style(self, params: torch.Tensor, alpha: float):
        """For tiles: the ``alpha`` blend with the content's own statistics,
        which pass 1 computes (the adain model's style encoder takes those
        very statistics), or None at ``alpha = 1``."""
        if alpha == 1.0:
            return None
        encoder = self.style_encoder
        if not (isinstance(encoder, VGGStatisticsEncoder) and encoder.layer == self.generator.layer):
            raise ValueError("alpha, tile: alpha < 1 in tiles needs the style encoder of the "
                             "generator's layer; stylise whole or with alpha=1")
        return lambda own: alpha * params + (1.0 - alpha) * own

    def _auto_tile(self, batch: torch.Tensor, plan: "_Style") -> Optional[int]:
        """The largest tile whose work and kept features fit the memory
        budget, when this model and style can be tiled; else None."""
        budget, _ = memory.budget_bytes(batch.device)
        count, _, height, width = batch.shape
        stride = self.generator.stride
        if isinstance(self.generator, AdaINGenerator):
            kept = count * (self.generator.style_dim // 2) * (height // stride) * (width // stride) * 4
            kept = kept if kept <= tiling.IN_MEMORY_FEATURE_BYTES else 0  # else in a file
            halo = tiling.receptive_field(self.generator)
        else:  # layer by layer: stores in memory up to this, then in files
            kept = tiling.IN_MEMORY_FEATURE_BYTES
            halo = layer_tiling.smallest_tile(self.generator)
        if plan.masks is not None:  # the regions at the features' resolution stay in memory
            kept += len(plan.masks) * (height // stride) * (width // stride) * 4
        tile = min(2048, max(height, width) // 2)
        while tile >= halo:  # halving: few estimates, and tiles of similar shape
            side = tile - tile % stride + 2 * halo
            work = memory.estimate_generate_bytes(self.generator, (count, 3, side, side))
            if budget is None or work + kept <= budget:
                return self._check_tile(tile, self.generator)
            tile //= 2
        return None

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


@dataclasses.dataclass(frozen=True)
class _Style:
    """What one content is stylised with: (K, style_dim) codes, and either
    mixing weights (K,) or masks (K, 1, H, W) (unprepared items until
    :meth:`StyleTransferGAN._stylize_one` reads them), or neither (K = 1)."""

    codes: torch.Tensor
    weights: Optional[torch.Tensor] = None
    masks: Optional[object] = None

    def with_masks(self, masks) -> "_Style":
        return dataclasses.replace(self, masks=masks)


def _mix_weights(style_weights, count: int) -> torch.Tensor:
    """``style_weights`` checked and normalised to sum 1."""
    if isinstance(style_weights, torch.Tensor):
        style_weights = style_weights.detach().cpu().reshape(-1).tolist()
    if isinstance(style_weights, (str, bytes)) or not isinstance(style_weights, (list, tuple)):
        raise TypeError(f"style_weights: expected a sequence of numbers, got "
                        f"{type(style_weights).__name__}")
    if len(style_weights) != count:
        raise ValueError(f"style_weights: expected {count} weights (one per style), got "
                         f"{len(style_weights)}")
    values = [validation.non_negative(w, "style_weights") for w in style_weights]
    total = math.fsum(values)
    if not total > 0:
        raise ValueError(f"style_weights: expected weights summing to a positive number, got "
                         f"{list(style_weights)}")
    return torch.tensor([v / total for v in values], dtype=torch.float32)


def _mask_list(masks, count: int) -> list:
    items = _as_list(masks, "masks")
    if len(items) != count:
        raise ValueError(f"masks: expected {count} masks (one per style), got {len(items)}")
    return items


def _load_mask(item, index: int) -> torch.Tensor:
    """One mask as an (H, W) float tensor in [0, 1]."""
    name = f"masks[{index}]"
    if isinstance(item, torch.Tensor):
        validation.tensor(item, name, (2, 3))
        if item.dim() == 3 and item.shape[0] != 1:
            raise ValueError(f"{name}: expected (H, W) or (1, H, W), got shape {tuple(item.shape)}")
        _check_unit_range(item, name)
        return item.reshape(item.shape[-2:]).float()
    if isinstance(item, Image.Image):
        image = item
    elif isinstance(item, (str, os.PathLike)):
        path = pathlib.Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file {str(path)!r}")
        try:
            image = imageio.read_image(path)
        except Exception as exc:
            raise ValueError(f"{name}: cannot read image {str(path)!r} ({exc})") from exc
    else:
        raise TypeError(f"{name}: expected a PIL image, a path or a tensor, got "
                        f"{type(item).__name__}")
    grey = np.asarray(imageio.to_rgb(image).convert("L"), dtype=np.uint8)
    return torch.from_numpy(grey.copy()).float() / 255.0


def _prepare_masks(items: list, size, device) -> torch.Tensor:
    """(K, 1, H, W) masks of the content's ``size``, normalised to sum 1 at
    every pixel."""
    masks = []
    for index, item in enumerate(items):
        mask = _load_mask(item, index)
        if tuple(mask.shape) != tuple(size):
            raise ValueError(f"masks[{index}]: expected the content's size {tuple(size)} "
                             f"(height, width), got {tuple(mask.shape)}")
        masks.append(mask.to(device))
    stack = torch.stack(masks).unsqueeze(1)
    total = stack.sum(dim=0, keepdim=True)
    uncovered = int((total <= 1e-6).sum())
    if uncovered:
        raise ValueError(f"masks: {uncovered} pixel(s) are covered by no mask; every pixel "
                         "needs a positive value in at least one mask (add a background mask)")
    return stack / total


def _resize_masks(masks: torch.Tensor, size) -> torch.Tensor:
    """Masks resized as their content was (bilinear; renormalised)."""
    if tuple(masks.shape[2:]) == tuple(size):
        return masks
    resized = F.interpolate(masks, size=tuple(size), mode="bilinear", align_corners=False)
    resized = resized.clamp_min(0)
    return resized / resized.sum(dim=0, keepdim=True).clamp_min(1e-12)


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
