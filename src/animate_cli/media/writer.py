"""H.264 segment writing on a worker thread, so encoding overlaps the next chunk's work.

The chunk loop hands decoded frames to `SegmentWriter.write`, which only queues them (a bounded
queue: at most `config.WRITER_QUEUE_FRAMES` frames wait, so host memory stays bounded); one thread
feeds them to ffmpeg (`media.VideoWriter`) segment after segment, in order. A segment appears under
its real name only when its encoder exited 0 and `<name>.partial.mp4` read back with every frame at
the right size (media.VideoWriter), and `on_done(chunk, path)` is called right after that, on the
writer thread: everything that treats a segment as done (the final concat, a preview) sees only
complete files. A crash while a segment is still queued or being encoded leaves at most a
`.partial.mp4`, which resume never mistakes for a segment: it re-decodes the chunk from its saved
latents (rollout.loop.ensure_segment), as it does for a segment that no longer reads back whole.

A writer failure (ffmpeg dies, disk full) stops the thread, removes the partial file and is raised
in the caller's thread, as one line (media.files.write_failure: exit 6, the file and the reason), at
its next `write`/`close`/`wait`; the caller never blocks on a queue nobody drains. `abort()` (the run
failed or was interrupted) drops what is queued.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from animate_cli import config as C
from animate_cli import media
from animate_cli.errors import EverAnimateError, WriteFailedError

_POLL_S = 0.1  # how often a blocked caller re-checks whether the writer thread failed


class SegmentWriteError(WriteFailedError):
    """The writer thread failed for a reason that is not a file error (exit 6 all the same: the run
    continues with the same command once the cause is fixed)."""


class _Open:
    def __init__(self, path: Path, width: int, height: int, fps: float, chunk: int):
        self.path, self.width, self.height, self.fps, self.chunk = path, width, height, fps, chunk


_CLOSE = object()
_STOP = object()


class SegmentWriter:
    """One writer thread for all segments of a run. Use as a context manager: a clean exit waits for
    every segment to be closed, an exception aborts (queued frames dropped, partial file removed)."""

    def __init__(self, on_done: Callable[[int, Path], None] | None = None, depth: int = C.WRITER_QUEUE_FRAMES):
        self.on_done = on_done
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self.wait_s = 0.0  # time the caller spent blocked (queue full, final wait): what the loop waited on

    # --- caller side ------------------------------------------------------------------------------

    def open(self, path: Path, width: int, height: int, fps: float, chunk: int) -> None:
        """Start segment `chunk` at `path`; frames written until `close()` go into it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="everanimate-writer", daemon=True)
            self._thread.start()
        self._put(_Open(Path(path), width, height, fps, chunk))

    def write(self, frame: np.ndarray) -> None:
        self._put(frame)

    def close(self) -> None:
        """Queue the end of the current segment; returns at once (the thread closes and renames it)."""
        self._put(_CLOSE)

    def wait(self) -> None:
        """Block until every queued segment is closed and renamed; raise the writer's error if it failed."""
        if self._thread is None:
            return
        self._put(_STOP)
        t = time.monotonic()
        while self._thread.is_alive():
            self._thread.join(_POLL_S)
        self.wait_s += time.monotonic() - t
        self._thread = None
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop now: drop queued frames, remove the partial file of the segment being written."""
        self._abort.set()
        if self._thread is not None:
            self._drain()
            self._thread.join(C.WORKER_STOP_WAIT_S)  # a daemon thread: never keeps the process alive
            self._thread = None

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.wait()
        else:
            self.abort()

    def _put(self, item) -> None:
        self._raise_if_failed()
        t = time.monotonic()
        while True:
            try:
                self._q.put(item, timeout=_POLL_S)
                break
            except queue.Full:
                self._raise_if_failed()
                if self._thread is None or not self._thread.is_alive():  # used after abort(): never wait forever
                    raise SegmentWriteError("the segment writer was stopped") from None
        self.wait_s += time.monotonic() - t

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            e = self._error
            if isinstance(e, EverAnimateError):
                raise e
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise SegmentWriteError(f"writing a video segment failed: {first}",
                                    hint="check free disk space; run the same command again to continue") from None  # fmt: skip

    def _drain(self) -> None:
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                return

    # --- writer thread ----------------------------------------------------------------------------

    def _work(self) -> None:
        current: media.VideoWriter | None = None
        chunk = -1
        try:
            while not self._abort.is_set():
                try:
                    item = self._q.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if item is _STOP:
                    return
                if isinstance(item, _Open):
                    current, chunk = media.VideoWriter(item.path, item.width, item.height, item.fps), item.chunk
                elif item is _CLOSE:
                    path, current = current.close(), None
                    if self.on_done is not None:
                        self.on_done(chunk, path)
                else:
                    current.write(item)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread, which raises it
            self._error = e
            self._drain()  # unblock a caller waiting on a full queue
        finally:
            if current is not None:
                current.abort()
