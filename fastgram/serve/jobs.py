"""Stylisation jobs run one at a time on a worker thread, each with a state
and progress the page polls; results are PNG bytes kept in memory (the
newest :data:`KEEP` jobs)."""

from __future__ import annotations

import collections
import concurrent.futures
import io
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

KEEP = 16


@dataclass
class Job:
    id: str
    state: str = "queued"  # queued, running, done, failed
    stage: str = "waiting for the model"
    progress: float = 0.0
    error: Optional[str] = None
    png: Optional[bytes] = None
    size: Optional[tuple] = None
    started: float = field(default_factory=time.monotonic)
    seconds: Optional[float] = None

    def status(self) -> dict:
        return {"id": self.id, "state": self.state, "stage": self.stage,
                "progress": round(self.progress, 3), "error": self.error,
                "width": self.size[0] if self.size else None,
                "height": self.size[1] if self.size else None, "seconds": self.seconds}


class JobQueue:
    """Runs ``work(job, report)`` for each submitted job; ``report(stage,
    progress)`` updates what :meth:`get` shows. One worker: the model is
    shared, and one CPU-heavy stylisation at a time is the fastest anyway."""

    def __init__(self):
        self._jobs: "collections.OrderedDict[str, Job]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fastgram-serve")

    def submit(self, work: Callable) -> Job:
        job = Job(uuid.uuid4().hex)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, work: Callable) -> None:
        def report(stage: str, progress: float) -> None:
            job.stage, job.progress = stage, progress

        job.state = "running"
        try:
            image = work(report)
            buffer = io.BytesIO()
            report("encoding the PNG", 0.95)
            image.save(buffer, format="PNG")
            job.png, job.size = buffer.getvalue(), image.size
            job.stage, job.progress, job.state = "done", 1.0, "done"
        except Exception as exc:  # shown on the page; the server keeps running
            job.error = " ".join(str(exc).split()) or type(exc).__name__
            job.state, job.stage = "failed", "failed"
        finally:
            job.seconds = round(time.monotonic() - job.started, 2)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
