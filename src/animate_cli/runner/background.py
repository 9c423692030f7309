"""A stage on a worker thread (the pose stage of `run`, while the prompt is encoded and the models load).

    with BackgroundJob("pose", fn, reporter) as job:   # fn(reporter) runs on a daemon thread
        ...work on the calling thread...
        value = job.result()                           # join; re-raises fn's exception unchanged

Errors surface unchanged: `result()` re-raises the worker's exception object itself (same type,
same one-line message, so the same exit code). Cancellation is cooperative: the job's reporter
raises `Cancelled` from its next `stage`/`advance` once the job is cancelled, and a stage reports
progress at least once per frame, so it stops within one frame. Leaving the `with` block by an
exception (a failure of the caller, Ctrl-C) cancels the job and waits at most
`config.WORKER_STOP_WAIT_S` for it; the thread is a daemon, so it never keeps the process alive.
Joins poll, so Ctrl-C reaches the calling thread while it waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from animate_cli import config as C
from animate_cli.progress import NullReporter, Reporter

T = TypeVar("T")
_POLL_S = 0.1


class Cancelled(Exception):
    """Raised inside a cancelled job (never seen by the caller, whose own exception wins)."""


class _CancellableReporter:
    def __init__(self, inner: Reporter, cancelled: threading.Event):
        self.inner, self.cancelled = inner, cancelled

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self._check()
        self.inner.stage(name, total, description)

    def advance(self, name: str, n: int = 1) -> None:
        self._check()
        self.inner.advance(name, n)

    def log(self, message: str) -> None:
        self.inner.log(message)


class BackgroundJob(Generic[T]):
    def __init__(self, name: str, fn: Callable[[Reporter], T], reporter: Reporter):
        self.name = name
        self.started_at = self.finished_at = 0.0
        self.wait_s = 0.0  # how long result() blocked the caller
        self._cancel = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._reporter = _CancellableReporter(reporter, self._cancel)
        self._fn = fn
        self._thread = threading.Thread(target=self._work, name=f"everanimate-{name}", daemon=True)

    def _work(self) -> None:
        try:
            self._value = self._fn(self._reporter)
        except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread by result()
            self._error = e
        finally:
            self.finished_at = time.monotonic()

    def start(self) -> BackgroundJob[T]:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    @property
    def duration_s(self) -> float:
        """The job's own wall time (so far, while it runs)."""
        return (self.finished_at or time.monotonic()) - self.started_at

    def failed(self) -> bool:
        return not self._thread.is_alive() and self._error is not None

    def result(self) -> T:
        t = time.monotonic()
        while self._thread.is_alive():
            self._thread.join(_POLL_S)
        self.wait_s += time.monotonic() - t
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> None:
        self._cancel.set()
        self._thread.join(C.WORKER_STOP_WAIT_S)

    def __enter__(self) -> BackgroundJob[T]:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.cancel()


def done_job(name: str, value: T) -> BackgroundJob[T]:
    """A job whose result is already known (e.g. pose videos given on the command line)."""
    return BackgroundJob(name, lambda _r: value, NullReporter())
