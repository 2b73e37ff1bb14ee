"""What a training run shows and writes: a progress line on a terminal,
``metrics.jsonl``, sample grids and, when installed, TensorBoard."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Dict, Optional

from fastgram import imageio

SHOWN = ("loss_d", "loss_g", "content", "style")


class Reporter:
    """Everything is a no-op when ``enabled`` is false (ranks other than 0).

    The progress line is drawn only on a TTY and not when ``quiet``; the
    files are written either way.
    """

    def __init__(self, out_dir, *, enabled: bool = True, quiet: bool = False,
                 tensorboard: bool = False, stream=None):
        self.out_dir = pathlib.Path(out_dir)
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.show_progress = enabled and not quiet and self.stream.isatty()
        self._writer = _tensorboard_writer(self.out_dir) if enabled and tensorboard else None
        self.notices: list = []
        self._total = 0
        self._started = time.perf_counter()

    def start(self, total: int, step: int) -> None:
        self._total = total
        self._started = time.perf_counter()
        self._first_step = step

    def progress(self, step: int, metrics: Dict[str, float]) -> None:
        if not self.show_progress:
            return
        rate = (step - self._first_step) / max(time.perf_counter() - self._started, 1e-9)
        width = 24
        filled = int(width * step / max(self._total, 1))
        shown = " ".join(f"{k}={metrics[k]:.3g}" for k in SHOWN if k in metrics)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {step}/{self._total} "
            f"{rate:.2f} it/s {shown}"
        )
        self.stream.flush()

    def notice(self, message: str) -> None:
        """One line on the stream (stderr), whatever ``quiet`` says: the run
        does something the user may not expect. Kept in :attr:`notices`."""
        if not self.enabled:
            return
        self.notices.append(message)
        self.stream.write(f"fastgram: {message}\n")
        self.stream.flush()

    def forget_after(self, step: int) -> None:
        """Drop the records of ``metrics.jsonl`` after ``step``: a resumed run
        repeats those steps and logs them again. A record torn by a kill is
        dropped too. The file is replaced atomically."""
        path = self.out_dir / "metrics.jsonl"
        if not self.enabled or not path.is_file():
            return
        kept, dropped = [], 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                keep = int(json.loads(line)["step"]) <= step
            except (ValueError, KeyError, TypeError):
                keep = False
            if keep:
                kept.append(line)
            else:
                dropped += 1
        if dropped:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
            os.replace(tmp, path)

    def log(self, step: int, metrics: Dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": time.time(), **metrics}
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._writer.add_scalar(key, value, step)

    def save_grid(self, rows, step: int) -> Optional[pathlib.Path]:
        if not self.enabled:
            return None
        grid = imageio.image_grid(rows)
        path = imageio.save_image(grid, self.out_dir / "samples" / f"step_{step:06d}.png")
        imageio.save_image(grid, self.out_dir / "samples" / "latest.png")
        if self._writer is not None:
            self._writer.add_image("samples", grid, step)
        return path

    def close(self) -> None:
        if self.show_progress:
            self.stream.write("\n")
            self.stream.flush()
        if self._writer is not None:
            self._writer.flush()


def _tensorboard_writer(out_dir: pathlib.Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))
