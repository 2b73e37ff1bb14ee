"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (a job
scheduler, ``kill``, ``torchrun`` passing on a signal).

The first signal only asks the loop to stop: the step in progress finishes,
a checkpoint is written at that step and :class:`TrainingInterrupted` is
raised. A second signal aborts at once (the last checkpoint on disk is
complete, since checkpoints are written atomically).
"""

from __future__ import annotations

import signal
import threading
from typing import Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint.

    A KeyboardInterrupt, so code that already handles Ctrl-C keeps working;
    ``signum`` is the signal and ``step`` the step the checkpoint holds.
    """

    def __init__(self, message: str, signum: int, step: int):
        super().__init__(message)
        self.signum = signum
        self.step = step


class StopRequests:
    """While entered, SIGINT and SIGTERM set :attr:`signum` instead of
    interrupting; a second one raises KeyboardInterrupt at once. Outside the
    main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            self._restore()
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborted at once")
        self.signum = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()
