"""Long work (timing, rendering, muxing) runs one job at a time in a worker thread; the page polls
its progress. Progress comes from the job itself (``job.update``) and, while a backend runs, from
the tqdm bar it shows (the backends' ``progress=True`` bars), so no backend needs a callback."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import FolaiError
from .session import new_id

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    session: str
    kind: str
    state: str = "queued"  # queued | running | done | error
    stage: str = "waiting for the previous job"
    progress: float | None = None  # 0..1, or None when unknown
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def update(self, stage: str | None = None, progress: float | None = None) -> None:
        if stage is not None:
            self.stage = stage
        self.progress = progress

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "stage": self.stage,
            "progress": self.progress,
            "error": self.error,
            "result": self.result if self.state == "done" else None,
            "elapsed": round((self.finished or time.time()) - self.started, 3),
        }


def readable_error(e: BaseException) -> str:
    """One sentence for the page: a FolaiError's own message, else the type and message."""
    if isinstance(e, FolaiError):
        return str(e)
    if isinstance(e, MemoryError):
        return "the machine ran out of memory for this job; try a shorter video"
    return f"internal error: {type(e).__name__}: {e}"


class _TqdmWatch:
    """While a job runs, mirror the newest active tqdm bar into the job's progress."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            from tqdm.std import tqdm
        except ImportError:  # pragma: no cover
            return
        while not self._stop.wait(0.2):
            try:
                bars = [b for b in list(tqdm._instances) if getattr(b, "total", None)]
            except Exception:  # the set may change while we copy it
                continue
            if bars:
                bar = bars[-1]
                frac = min(1.0, max(0.0, float(bar.n) / float(bar.total)))
                self.job.progress = frac
                if bar.desc:
                    self.job.stage = f"{self.job.stage.split(':')[0]}: {bar.desc.rstrip(': ')}"

    def __enter__(self) -> "_TqdmWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


class JobRunner:
    """One worker thread; jobs are kept (the last 50) so the page can read their results.

    The worker is a daemon thread, so stopping the studio (Ctrl+C) never waits for a long render."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="folai-studio-job", daemon=True)
        self._worker.start()

    def _work(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            body()

    def submit(self, session: str, kind: str, fn: Callable[[Job], dict[str, Any] | None]) -> Job:
        job = Job(new_id(), session, kind)
        with self._lock:
            self._jobs[job.id] = job
            if len(self._jobs) > 50:
                for jid in list(self._jobs)[: len(self._jobs) - 50]:
                    if self._jobs[jid].state in ("done", "error"):
                        del self._jobs[jid]

        def body() -> None:
            job.state, job.stage, job.started = "running", kind, time.time()
            try:
                with _TqdmWatch(job):
                    job.result = fn(job) or {}
                job.state, job.progress = "done", 1.0
                job.stage = "done"
            except BaseException as e:  # reported to the page, never raised into the pool
                if not isinstance(e, FolaiError):
                    log.exception("studio job %s failed", kind)
                job.error = readable_error(e)
                job.state = "error"
                job.stage = "failed"
            finally:
                job.finished = time.time()

        self._queue.put(body)
        return job

    def get(self, session: str, jid: str) -> Job:
        with self._lock:
            job = self._jobs[jid]
        if job.session != session:
            raise KeyError(jid)
        return job

    def shutdown(self) -> None:
        """Drop queued jobs and let the worker end after the current one (idempotent)."""
        if not self._worker.is_alive():
            return
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._queue.put(None)
