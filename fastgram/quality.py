"""How good a stylisation is: metrics on (output, content, style) images and
:func:`evaluate`, which runs a model over content x style pairs.

Images are RGB tensors in [0, 1], (3, H, W) or (1, 3, H, W). The metrics
(each returns a float):

* :func:`gram_ratio`: ``D(output) / D(content)`` with
  ``D(X) = sum over relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of
  mean((G_X - G_S)^2)``, ``G = F F^T / (C H W)`` (:func:`fastgram.ops.gram_matrix`)
  on the Caffe ImageNet VGG19 (``VGG19Features(weights="imagenet")``), the
  style ``S`` first resized to the output's pixel count (aspect kept).
  Below 1: the output is closer in style to ``S`` than the photo was;
  the unchanged photo scores exactly 1.
* :func:`content_distance`: ``mean((relu4_2(output) - relu4_2(content))^2)``
  on the same network (Caffe scale: inputs are 0-255 BGR).
* :func:`ssim`: SSIM (Wang et al., 2004) of the output's luminance to the
  content's, ``Y = 0.299 R + 0.587 G + 0.114 B`` in [0, 1]; 11 x 11 Gaussian
  window with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, ``L = 1``, the mean of
  the SSIM map over the positions where the window fits ("valid").
* :func:`histogram_distance`: per RGB channel a 32-bin histogram of [0, 1]
  normalised to sum 1; the L1 distance of the two histograms divided by 2
  (the total-variation distance, in [0, 1]), averaged over the channels.
  0 for images with the same colour distribution, 1 when no channel shares
  a bin.
* :func:`lattice_score`: how strongly a lattice of period ``p`` (default 4,
  the generator's stride) shows in the luminance spectrum:
  ``A = |FFT2(Y - mean(Y))|``; at each lattice frequency
  ``(round(H k / p), round(W l / p))``, ``k, l`` in ``0 .. p-1`` except
  ``(0, 0)``, the peak (the largest ``A`` in the 3 x 3 bins around it, so a
  side that is not a multiple of ``p`` still finds it) divided by the median
  of ``A`` over the 9 x 9 bins around it less those 3 x 3 (indices wrap, as
  the spectrum does); the score is the largest ratio. Natural photos score
  about 2-6 at 512 px; a faint dot lattice (amplitude 0.03) raises it to 35-650.

:func:`evaluate` resizes each content image to ``long_side`` on its longer
side, stylises it at that size, resizes the style to the output's pixel
count, and reports every metric per pair with the stylise time, plus the
means. ``baseline=True`` also scores the identity model (output = content):
Gram ratio 1, content distance 0, SSIM 1, and the photos' own lattice scores.
"""

from __future__ import annotations

import math
import os
import pathlib
import statistics
import time
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from fastgram import ops, validation
from fastgram.nn.vgg import VGG19Features

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
LUMA = (0.299, 0.587, 0.114)
METRICS = ("gram_ratio", "content_distance", "ssim", "histogram_distance", "lattice_score")
PAIRINGS = ("all", "zip")
THUMBNAIL = 256

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
HISTOGRAM_BINS = 32
LATTICE_PERIOD = 4
LATTICE_WINDOW = 9  # the neighbourhood a lattice peak is compared with...
LATTICE_PEAK = 3  # ...less the bins around the peak itself

_VGG_CACHE: Dict[str, VGG19Features] = {}


# -- inputs --------------------------------------------------------------------


def _image(value, name: str, *, min_side: int = 1) -> torch.Tensor:
    """``value`` as a (1, 3, H, W) tensor, checked: RGB, in [0, 1], big enough."""
    validation.tensor(value, name, (3, 4))
    if value.dim() == 3:
        value = value.unsqueeze(0)
    if value.shape[0] != 1 or value.shape[1] != 3:
        raise ValueError(f"{name}: expected one RGB image, (3, H, W) or (1, 3, H, W), "
                         f"got shape {tuple(value.shape)}")
    if min(value.shape[2:]) < min_side:
        raise ValueError(f"{name}: expected height and width of at least {min_side}, "
                         f"got shape {tuple(value.shape)}")
    low, high = (float(v) for v in torch.aminmax(value.detach()))
    if not (0.0 <= low and high <= 1.0):  # NaN fails too
        hint = "; divide 0-255 images by 255" if high > 1.0 else ""
        raise ValueError(f"{name}: expected values in [0, 1], got values from {low:g} to "
                         f"{high:g}{hint}")
    return value


def _same_size(value: torch.Tensor, name: str, reference: torch.Tensor, reference_name: str):
    if value.shape[2:] != reference.shape[2:]:
        raise ValueError(f"{name}: expected the size of {reference_name}, "
                         f"{tuple(reference.shape[2:])}, got {tuple(value.shape[2:])}")


def luminance(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """``Y = 0.299 R + 0.587 G + 0.114 B`` of an RGB image, (H, W) in [0, 1], float64."""
    image = _image(image, name)[0].double()
    weights = torch.tensor(LUMA, dtype=torch.float64, device=image.device).view(3, 1, 1)
    return (image * weights).sum(0)


def resize(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """A (1, 3, H, W) image resized to ``size`` (bicubic, antialiased when
    shrinking, clamped to [0, 1]); the same tensor when already that size."""
    size = (int(size[0]), int(size[1]))
    if tuple(image.shape[2:]) == size:
        return image
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False,
                         antialias=True).clamp_(0, 1)


def long_side_size(height: int, width: int, long_side: int) -> Tuple[int, int]:
    """(height, width) scaled so the longer side is ``long_side``, aspect kept."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def area_size(height: int, width: int, area: int) -> Tuple[int, int]:
    """(height, width) scaled to about ``area`` pixels, aspect kept. A size
    already of that area (after rounding) is returned unchanged."""
    scale = math.sqrt(area / (height * width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def style_at_area_of(style: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``style`` (1, 3, h, w) resized to the pixel count of ``output``, aspect kept."""
    height, width = output.shape[2:]
    return resize(style, area_size(style.shape[2], style.shape[3], height * width))


# -- VGG19 metrics ---------------------------------------------------------------


def feature_extractor(device="cpu") -> VGG19Features:
    """The Caffe ImageNet VGG19 (relu1_1..relu5_1 and relu4_2) the metrics
    use, built once per device and kept."""
    device = torch.device(device)
    key = str(device)
    if key not in _VGG_CACHE:
        _VGG_CACHE[key] = VGG19Features(layers=LAYERS, weights="imagenet").to(device)
    return _VGG_CACHE[key]


def _vgg(vgg, like: torch.Tensor) -> VGG19Features:
    if vgg is None:
        return feature_extractor(like.device)
    if not isinstance(vgg, VGG19Features):
        raise TypeError(f"vgg: expected a fastgram.nn.VGG19Features, got {type(vgg).__name__}")
    missing = [name for name in LAYERS if name not in vgg.layers]
    if missing:
        raise ValueError(f"vgg: lacks the layers {missing}; build it with layers={LAYERS} "
                         "(or use quality.feature_extractor())")
    if vgg.weights != "imagenet":
        raise ValueError(f"vgg: the metrics are defined on weights='imagenet', got {vgg.weights!r}")
    return vgg


@torch.no_grad()
def features(image: torch.Tensor, vgg: Optional[VGG19Features] = None,
             name: str = "image") -> Dict[str, torch.Tensor]:
    """The VGG19 activations the metrics use: ``{layer: (1, C, h, w)}``."""
    image = _image(image, name, min_side=16)
    vgg = _vgg(vgg, image)
    device = vgg.input_shift.device
    return vgg(image.to(device, torch.float32))


def _grams(feats: Mapping[str, torch.Tensor]) -> List[torch.Tensor]:
    # G = F F^T / (C H W): gram_matrix's normalize=True.
    return [ops.gram_matrix(feats[name].float(), normalize=True) for name in STYLE_LAYERS]


def _gram_distance(grams: Sequence[torch.Tensor], style_grams: Sequence[torch.Tensor]) -> float:
    return float(sum(torch.mean((g.double() - s.double()) ** 2) for g, s in
                     zip(grams, style_grams)))


def gram_distance(image: torch.Tensor, style: torch.Tensor, *,
                  vgg: Optional[VGG19Features] = None) -> float:
    """``D(image) = sum over relu1_1..relu5_1 of mean((G_image - G_style)^2)``;
    ``style`` is used at the size given (see :func:`style_at_area_of`)."""
    image = _image(image, "image", min_side=16)
    style = _image(style, "style", min_side=16)
    return _gram_distance(_grams(features(image, vgg, "image")),
                          _grams(features(style, vgg, "style")))


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0.0:  # the content already has the style's Gram matrices
        return 1.0 if numerator == 0.0 else math.inf
    return numerator / denominator


def gram_ratio(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor, *,
               vgg: Optional[VGG19Features] = None) -> float:
    """``gram_distance(output) / gram_distance(content)`` against ``style``
    resized to the output's pixel count. 1 for ``output = content``; ``inf``
    when the content has the style's Gram matrices exactly and the output
    does not."""
    output = _image(output, "output", min_side=16)
    content = _image(content, "content", min_side=16)
    style = style_at_area_of(_image(style, "style", min_side=16), output)
    style_grams = _grams(features(style, vgg, "style"))
    return _ratio(_gram_distance(_grams(features(output, vgg, "output")), style_grams),
                  _gram_distance(_grams(features(content, vgg, "content")), style_grams))


def content_distance(output: torch.Tensor, content: torch.Tensor, *,
                     vgg: Optional[VGG19Features] = None) -> float:
    """``mean((relu4_2(output) - relu4_2(content))^2)``; same sizes."""
    output = _image(output, "output", min_side=16)
    content = _image(content, "content", min_side=16)
    _same_size(content, "content", output, "output")
    return _content_distance(features(output, vgg, "output"), features(content, vgg, "content"))


def _content_distance(output_feats, content_feats) -> float:
    a, b = output_feats[CONTENT_LAYER].double(), content_feats[CONTENT_LAYER].double()
    return float(torch.mean((a - b) ** 2))


# -- image metrics ---------------------------------------------------------------


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(output: torch.Tensor, content: torch.Tensor) -> float:
    """SSIM of the luminance of ``output`` to that of ``content`` (same
    sizes, at least 11 x 11); 1 for identical images, at most 1."""
    output = _image(output, "output", min_side=SSIM_WINDOW)
    content = _image(content, "content", min_side=SSIM_WINDOW)
    _same_size(content, "content", output, "output")
    x = luminance(output, "output")[None, None]
    y = luminance(content, "content")[None, None].to(x.device)
    g = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, x)

    def blur(t):  # separable Gaussian, valid positions only
        t = F.conv2d(t, g.view(1, 1, -1, 1))
        return F.conv2d(t, g.view(1, 1, 1, -1))

    c1, c2 = (SSIM_K1 * 1.0) ** 2, (SSIM_K2 * 1.0) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def _histograms(image: torch.Tensor, bins: int) -> torch.Tensor:
    channels = image[0].double().reshape(3, -1)
    hist = torch.stack([torch.histc(c, bins=bins, min=0.0, max=1.0) for c in channels])
    return hist / hist.sum(1, keepdim=True)


def histogram_distance(image: torch.Tensor, style: torch.Tensor, *,
                       bins: int = HISTOGRAM_BINS) -> float:
    """Mean over R, G, B of half the L1 distance between the ``bins``-bin
    normalised histograms of ``image`` and ``style`` (any sizes): 0 for the
    same colour distribution, 1 when no channel shares a bin."""
    validation.integer(bins, "bins", minimum=2)
    image = _image(image, "image")
    style = _image(style, "style")
    a, b = _histograms(image, bins), _histograms(style, bins).to(image.device)
    return float(((a - b).abs().sum(1) / 2).mean())


def lattice_score(image: torch.Tensor, *, period: int = LATTICE_PERIOD) -> float:
    """The largest ratio of a period-``period`` lattice peak in the luminance
    spectrum to the median of the spectrum around it (see the module's
    docstring); natural photos score about 2-6 at 512 px."""
    validation.integer(period, "period", minimum=2)
    image = _image(image, "image", min_side=LATTICE_WINDOW)
    height, width = image.shape[2:]
    if min(height, width) < 2 * period:
        raise ValueError(f"period: expected at most half the shorter side "
                         f"({min(height, width) // 2}) of image, got {period}")
    y = luminance(image)
    spectrum = torch.fft.fft2(y - y.mean()).abs()
    half, peak_half = LATTICE_WINDOW // 2, LATTICE_PEAK // 2
    offsets = torch.arange(-half, half + 1, device=spectrum.device)
    centre = offsets.abs() <= peak_half
    ring = ~(centre[:, None] & centre[None, :])
    best = 0.0
    for k in range(period):
        for l in range(period):
            if k == 0 and l == 0:
                continue
            rows = (round(height * k / period) + offsets) % height
            cols = (round(width * l / period) + offsets) % width
            window = spectrum[rows][:, cols]
            peak = float(window[centre][:, centre].max())
            background = float(window[ring].median())
            score = math.inf if background == 0.0 else peak / background
            if background == 0.0 and peak == 0.0:
                score = 0.0
            best = max(best, score)
    return best


# -- evaluation ---------------------------------------------------------------------


class IdentityModel:
    """The reference model: returns the content unchanged (Gram ratio 1)."""

    name = "identity"

    def stylize(self, content, style=None, **_):
        return content


ImageSpec = Union[str, os.PathLike, torch.Tensor, "PIL.Image.Image"]  # noqa: F821


def _load(item, name: str) -> torch.Tensor:
    from PIL import Image

    from fastgram import imageio

    if isinstance(item, torch.Tensor):
        return _image(item, name).detach().float().cpu()
    if isinstance(item, Image.Image):
        return imageio.pil_to_tensor(item).unsqueeze(0)
    if isinstance(item, (str, os.PathLike)):
        path = pathlib.Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file {str(path)!r}")
        try:
            return imageio.pil_to_tensor(imageio.read_image(path)).unsqueeze(0)
        except Exception as exc:
            raise ValueError(f"{name}: cannot read image {str(path)!r} ({exc})") from exc
    raise TypeError(f"{name}: expected a path, a PIL image or a tensor, got "
                    f"{type(item).__name__}")


def _named(items, what: str) -> List[Tuple[str, torch.Tensor]]:
    """``[(name, (1, 3, H, W) tensor, label for errors)]`` from paths, PIL images, tensors,
    ``(name, image)`` pairs or a ``{name: image}`` mapping."""
    if isinstance(items, Mapping):
        entries = list(items.items())
    elif isinstance(items, (str, os.PathLike, torch.Tensor)) or not isinstance(items, Iterable):
        raise TypeError(f"{what}: expected a sequence of images or a {{name: image}} mapping, "
                        f"got {type(items).__name__}")
    else:
        entries = []
        for i, item in enumerate(items):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                entries.append(item)
            elif isinstance(item, (str, os.PathLike)):
                entries.append((pathlib.Path(item).stem, item))
            else:
                entries.append((f"{what.rstrip('s')}{i}", item))
    if not entries:
        raise ValueError(f"{what}: expected at least one image")
    named, seen = [], {}
    for i, (name, item) in enumerate(entries):
        seen[name] = seen.get(name, 0) + 1
        unique = name if seen[name] == 1 else f"{name}_{seen[name]}"
        label = f"{what}[{i}]"
        named.append((unique, _load(item, label), label))
    return named


def _pairs(contents, styles, pairs: str):
    validation.one_of(pairs, "pairs", PAIRINGS)
    if pairs == "zip":
        if len(contents) != len(styles):
            raise ValueError(f"pairs: 'zip' needs as many styles as contents, got "
                             f"{len(contents)} content and {len(styles)} style images")
        return list(zip(contents, styles))
    return [(c, s) for c in contents for s in styles]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model_output(model, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.stylize(content, style=style)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model: stylize returned a {type(out).__name__}, expected a tensor")
    if out.dim() == 3:
        out = out.unsqueeze(0)
    if tuple(out.shape) != tuple(content.shape):
        raise ValueError(f"model: stylize returned shape {tuple(out.shape)} for a content of "
                         f"shape {tuple(content.shape)}; expected the same shape")
    try:
        return _image(out.float(), "output")
    except ValueError as exc:
        raise ValueError(f"model: stylize returned an unusable image ({exc})") from None


def _summary(records: List[dict]) -> dict:
    mean = {}
    for key in (*METRICS, "stylize_seconds"):
        values = [r[key] for r in records if r[key] is not None and math.isfinite(r[key])]
        mean[key] = statistics.fmean(values) if values else None
    lattice = [r["lattice_score"] for r in records]
    return {"mean": mean, "max_lattice_score": max(lattice)}


def _thumbnail(image: torch.Tensor, size: int) -> torch.Tensor:
    """``image`` fitted into a white ``size`` x ``size`` tile, aspect kept."""
    height, width = image.shape[2:]
    h, w = long_side_size(height, width, size)
    small = resize(image.float().cpu(), (h, w))[0]
    tile = torch.ones(3, size, size)
    top, left = (size - h) // 2, (size - w) // 2
    tile[:, top:top + h, left:left + w] = small
    return tile


def evaluate(model, contents, styles, *, long_side: int = 512, grid_path=None,
             pairs: str = "all", baseline: bool = False, period: int = LATTICE_PERIOD,
             device=None, thumbnail: int = THUMBNAIL, warmup: bool = True) -> dict:
    """Score ``model`` on content x style pairs.

    Args:
        model: anything with ``stylize(content, style=style) -> tensor``
            taking (1, 3, H, W) RGB in [0, 1] and returning the same shape
            (e.g. :class:`fastgram.StyleTransferGAN`, or :class:`IdentityModel`).
        contents, styles: paths, PIL images, (3, H, W) / (1, 3, H, W)
            tensors, ``(name, image)`` pairs, or a ``{name: image}``
            mapping. Paths are named by their stem.
        long_side: each content is resized to this on its longer side and
            stylised at that size; each style is resized to the output's pixel
            count (aspect kept) and passed to the model at that size.
        grid_path: when given, writes a PNG there: one row per pair, content
            | style | output, each fitted into a ``thumbnail`` px tile.
        pairs: ``"all"`` (every content with every style) or ``"zip"``
            (the i-th content with the i-th style).
        baseline: also score the identity model (output = content).
        period: the lattice period of :func:`lattice_score`.
        device: where the metrics run and the images are sent; default the
            model's ``device`` attribute, else the CPU.
        warmup: stylise the first pair once untimed first, so one-time costs
            (kernel builds, allocations) do not count in its time.

    Returns:
        Plain data (``json.dumps`` takes it): ``pairs`` (per pair: content,
        style, height, width, each metric of :data:`METRICS`,
        ``gram_distance_output``/``gram_distance_content`` and
        ``stylize_seconds``), ``mean`` (the mean of each over the pairs),
        ``max_lattice_score``, the settings, ``grid`` (the path or None) and,
        with ``baseline``, ``baseline`` (the same for the identity model).
    """
    if not callable(getattr(model, "stylize", None)):
        raise TypeError(f"model: expected an object with a stylize(content, style=...) method, "
                        f"got {type(model).__name__}")
    validation.integer(long_side, "long_side", minimum=16)
    validation.integer(thumbnail, "thumbnail", minimum=8)
    validation.integer(period, "period", minimum=2)
    validation.boolean(baseline, "baseline")
    validation.boolean(warmup, "warmup")
    if grid_path is not None and not isinstance(grid_path, (str, os.PathLike)):
        raise TypeError(f"grid_path: expected a path or None, got {type(grid_path).__name__}")
    device = torch.device(device if device is not None else getattr(model, "device", "cpu"))
    content_images = _named(contents, "contents")
    style_images = _named(styles, "styles")
    selected = _pairs(content_images, style_images, pairs)
    vgg = feature_extractor(device)

    records, identity, rows = [], [], []
    prepared: Dict[str, tuple] = {}  # content name -> (image, features, grams, lattice)
    for index, ((content_name, content_full, content_label),
                (style_name, style_full, style_label)) in enumerate(selected):
        if content_name not in prepared:
            size = long_side_size(*content_full.shape[2:], long_side)
            content = resize(content_full, size).to(device)
            feats = features(content, vgg, content_label)
            prepared[content_name] = (content, feats, _grams(feats), lattice_score(content, period=period))
        content, content_feats, content_grams, content_lattice = prepared[content_name]
        style = style_at_area_of(style_full, content).to(device)
        style_grams = _grams(features(style, vgg, style_label))
        if warmup and index == 0:
            _model_output(model, content, style)
        _synchronize(device)
        started = time.perf_counter()
        output = _model_output(model, content, style)
        _synchronize(device)
        seconds = time.perf_counter() - started
        output_feats = features(output, vgg, "output")
        d_content = _gram_distance(content_grams, style_grams)
        d_output = _gram_distance(_grams(output_feats), style_grams)
        height, width = content.shape[2:]
        common = {"content": content_name, "style": style_name,
                  "height": int(height), "width": int(width)}
        records.append({
            **common,
            "gram_ratio": _ratio(d_output, d_content),
            "gram_distance_output": d_output,
            "gram_distance_content": d_content,
            "content_distance": _content_distance(output_feats, content_feats),
            "ssim": ssim(output, content),
            "histogram_distance": histogram_distance(output, style),
            "lattice_score": lattice_score(output, period=period),
            "stylize_seconds": seconds,
        })
        if baseline:
            identity.append({
                **common,
                "gram_ratio": _ratio(d_content, d_content),
                "gram_distance_output": d_content,
                "gram_distance_content": d_content,
                "content_distance": 0.0,
                "ssim": ssim(content, content),
                "histogram_distance": histogram_distance(content, style),
                "lattice_score": content_lattice,
                "stylize_seconds": 0.0,
            })
        if grid_path is not None:
            rows.append([_thumbnail(t, thumbnail) for t in (content, style, output)])

    result = {
        "model": getattr(model, "name", type(model).__name__),
        "long_side": long_side,
        "pairs_mode": pairs,
        "period": period,
        "device": str(device),
        "pairs": records,
        **_summary(records),
        "grid": None,
    }
    if baseline:
        result["baseline"] = {"model": IdentityModel.name, "pairs": identity, **_summary(identity)}
    if grid_path is not None:
        from fastgram import imageio

        written = imageio.save_image(imageio.image_grid(rows), grid_path)
        result["grid"] = str(written)
    return _json_safe(result)


def _json_safe(value):
    """Non-finite floats (an infinite ratio) as None, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


__all__ = [
    "IdentityModel", "METRICS", "area_size", "content_distance", "evaluate", "feature_extractor",
    "features", "gram_distance", "gram_ratio", "histogram_distance", "lattice_score",
    "long_side_size", "luminance", "resize", "ssim", "style_at_area_of",
]
