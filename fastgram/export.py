"""Export a model's generator and style encoder as standard graphs: ONNX
(run by onnxruntime and other ONNX runtimes) or ``torch.export`` (``.pt2``).

fastgram's generator calls its own registered operators
(``torch.ops.fastgram.*``), which no other runtime knows. Tracing under the
``reference`` backend makes every fastgram op run its plain PyTorch
formula, so the graph holds only standard operators; :func:`export` checks
that none of fastgram's is left and refuses otherwise.

Two graphs are written, so that any style works as it does in Python:

* the generator, ``(content, style_code) -> image``: content (B, 3, H, W)
  in [0, 1] with H and W multiples of the generator's stride and at least
  its minimum size (4 and 8 for the starter model), both dynamic; one style
  code (1, style_dim) for the batch; the output has the content's shape;
* the style encoder, ``style -> style_code``: a (1, 3, H, W) image in
  [0, 1] of any size from twice the encoder's minimum up (8 for the
  starter model; fastgram resizes a style's shorter
  side to ``style_size`` first; do the same to get the same codes).

The numbers a runtime needs (stride, minimum sizes, style size) are stored
with each file: ONNX metadata properties, and ``fastgram.json`` in the
``.pt2`` archive.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Dict

import torch

FORMATS = {"onnx": ".onnx", "torch_export": ".pt2"}
ONNX_OPSET = 18
_EXAMPLE_SIDE = 64  # example inputs to trace with; the exported sides are dynamic


class ExportError(RuntimeError):
    """The traced graph could not be written as standard operators."""


class _GeneratorGraph(torch.nn.Module):
    """What :meth:`StyleTransferGAN.stylize` runs at ``alpha=1`` on an
    already padded batch, as one module with tensor inputs only."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, content: torch.Tensor, style_code: torch.Tensor) -> torch.Tensor:
        params = self.generator.style_params(style_code, content.shape[0])
        return self.generator.render(self.generator.encode(content), params)


def sibling_path(path: pathlib.Path, role: str) -> pathlib.Path:
    """Where the second graph goes: ``model.onnx`` -> ``model.style_encoder.onnx``."""
    return path.with_name(f"{path.stem}.{role}{path.suffix}")


def check_request(path, format: str) -> pathlib.Path:
    """Validate ``path`` and ``format`` before any tracing (which takes
    seconds): the format is known, its optional packages are installed, and
    the path has the format's suffix in an existing folder."""
    if not isinstance(format, str) or format not in FORMATS:
        raise ValueError(f"format: expected one of {sorted(FORMATS)}, got {format!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or a path, got {type(path).__name__}")
    path = pathlib.Path(path)
    suffix = FORMATS[format]
    if path.suffix != suffix:
        raise ValueError(f"path: a {format} file must end in {suffix!r}, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a folder; give a file name ending in {suffix!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: no folder {str(path.parent)!r} to write {path.name!r} in")
    if format == "onnx":
        _require_onnx_packages()
    return path


def _require_onnx_packages() -> None:
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"format: 'onnx' needs the package(s) {', '.join(missing)}; "
                          "install them with pip install 'fastgram[export]'")


def export(gan, path, format: str = "onnx") -> Dict[str, pathlib.Path]:
    """Write ``gan``'s generator to ``path`` and its style encoder beside it
    (:func:`sibling_path`); returns ``{"generator": ..., "style_encoder": ...}``."""
    from fastgram import dispatch

    path = check_request(path, format)
    generator, encoder = gan.generator, gan.style_encoder
    stride, minimum = int(generator.stride), int(generator.min_size)
    info = {
        "fastgram_format": "1",
        "stride": str(stride),
        "min_size": str(minimum),
        "style_min_size": str(2 * int(encoder.min_size)),
        "style_size": str(gan.config.style_size or gan.config.size),
        "style_dim": str(int(generator.style_dim)),
    }
    device = next(generator.parameters()).device
    # A batch of 2: an example batch of 1 would fix the exported batch at 1.
    content = torch.rand(2, 3, _EXAMPLE_SIDE, _EXAMPLE_SIDE, device=device)
    style = torch.rand(1, 3, _EXAMPLE_SIDE, _EXAMPLE_SIDE, device=device)
    Dim = torch.export.Dim
    # H = stride * h with h >= min_size / stride: the graph then holds for
    # exactly the sides the generator accepts.
    blocks_h = Dim("blocks_h", min=-(-minimum // stride), max=16384 // stride)
    blocks_w = Dim("blocks_w", min=-(-minimum // stride), max=16384 // stride)
    generator_shapes = ({0: Dim("batch", min=1, max=1024), 2: stride * blocks_h,
                         3: stride * blocks_w}, None)
    # Twice the encoder's own minimum: at its minimum the deepest features
    # are 1x1, a size torch.export refuses to keep dynamic.
    style_low = 2 * int(encoder.min_size)
    encoder_shapes = ({2: Dim("style_h", min=style_low, max=16384),
                       3: Dim("style_w", min=style_low, max=16384)},)
    targets = {"generator": path, "style_encoder": sibling_path(path, "style_encoder")}
    with torch.no_grad(), dispatch.use_backend("reference"):
        code = encoder(style).float()
        programs = {
            "generator": _trace(_GeneratorGraph(generator).eval(), (content, code),
                                generator_shapes, "generator"),
            "style_encoder": _trace(encoder.eval(), (style,), encoder_shapes, "style_encoder"),
        }
    for role, program in programs.items():
        if format == "onnx":
            _write_onnx(program, targets[role], info, role)
        else:
            torch.export.save(program, targets[role],
                              extra_files={"fastgram.json": json.dumps({**info, "graph": role})})
    return targets


def _trace(module: torch.nn.Module, args: tuple, shapes, role: str):
    try:
        program = torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
    except Exception as exc:
        raise ExportError(f"{role}: torch.export could not trace it ({exc})") from exc
    left = sorted({str(node.target) for node in program.graph.nodes
                   if node.op == "call_function" and str(node.target).startswith("fastgram.")})
    if left:
        raise ExportError(f"{role}: fastgram operators left in the graph after tracing under "
                          f"the reference backend: {', '.join(left)}; other runtimes cannot "
                          "run them")
    return program


def _write_onnx(program, target: pathlib.Path, info: dict, role: str) -> None:
    import onnx

    inputs = ["content", "style_code"] if role == "generator" else ["style"]
    outputs = ["image"] if role == "generator" else ["style_code"]
    # The exporter warns, per file, that torchvision's operators (which
    # fastgram never uses) cannot be registered; only that logger is quietened.
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        onnx_program = torch.onnx.export(program, input_names=inputs, output_names=outputs,
                                         opset_version=ONNX_OPSET, dynamo=True, verbose=False)
    except Exception as exc:
        raise ExportError(f"{role}: the ONNX exporter could not convert it ({exc})") from exc
    finally:
        registry_log.setLevel(level)
    model = onnx_program.model_proto
    for key, value in {**info, "graph": role}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    # Written under a temporary name, then renamed: a failed export never
    # leaves a truncated model where a runtime would pick it up.
    partial = target.with_name(target.name + ".partial")
    try:
        onnx.save_model(model, str(partial))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def read_metadata(path) -> Dict[str, str]:
    """The numbers :func:`export` stored with a graph (ONNX or ``.pt2``)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {entry.key: entry.value for entry in model.metadata_props}
    if path.suffix == ".pt2":
        extra = {"fastgram.json": ""}
        torch.export.load(path, extra_files=extra)
        return json.loads(extra["fastgram.json"]) if extra["fastgram.json"] else {}
    raise ValueError(f"path: expected a .onnx or .pt2 file, got {str(path)!r}")


__all__ = ["FORMATS", "ONNX_OPSET", "ExportError", "export", "read_metadata", "sibling_path"]
