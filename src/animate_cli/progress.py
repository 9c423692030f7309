"""Progress reporting as a tiny protocol, so stage modules never touch rich.

A stage announces itself with `stage(name, total)` and then calls `advance(name)`; `artifact(kind,
path)` names a file the user can look at now (the rollout's preview after each chunk). `make_reporter`
gives the renderers of `--progress`: rich bars on stderr (RichReporter; rich is imported only when one
draws) or JSON lines (JsonReporter), or nothing.

`StepClock` turns the same events into an ETA from measured step times. It relies on the names the
chunk loop (rollout/loop.py) uses: a "chunks" stage advanced once per finished chunk, and a
"steps" stage per chunk advanced once per denoising step.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn

ETA_WINDOW = 40  # recent step times the ETA uses (median): forgets the slow first steps (warm-up, compilation)


class Reporter(Protocol):
    def stage(self, name: str, total: int | None, description: str = "") -> None: ...

    def advance(self, name: str, n: int = 1) -> None: ...

    def log(self, message: str) -> None: ...

    def artifact(self, kind: str, path: Path, **info) -> None: ...


class NullReporter:
    def stage(self, name: str, total: int | None, description: str = "") -> None:
        pass

    def advance(self, name: str, n: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def artifact(self, kind: str, path: Path, **info) -> None:
        pass


class StepClock:
    """ETA of the chunk loop from measured times, fed with the reporter's events.

    remaining = (steps left in this chunk + steps of the chunks after it) x median recent step time
              + chunks left x mean per-chunk overhead (conditioning, decode, saving: a chunk's wall
                time minus its steps), once one chunk has been timed.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.chunks_total = self.chunks_done = 0
        self.steps_per_chunk = self.steps_done = 0
        self.step_times: list[float] = []
        self.overheads: list[float] = []
        self._last = self._chunk_start = None
        self._chunk_steps_s = 0.0
        self.in_chunk = False

    def stage(self, name: str, total: int | None) -> None:
        now = self.clock()
        if name == "chunks":
            self.chunks_total, self.chunks_done, self._chunk_start = total or 0, 0, now
        elif name == "steps":
            self.steps_per_chunk, self.steps_done, self._last, self.in_chunk = total or 0, 0, now, True

    def advance(self, name: str, n: int = 1) -> bool:
        """Feed one advance; True when it finished a timed chunk (not the resume skip)."""
        now = self.clock()
        if name == "steps" and self._last is not None:
            dt = (now - self._last) / max(n, 1)
            self.step_times.extend([dt] * n)
            self.step_times = self.step_times[-ETA_WINDOW:]
            self._chunk_steps_s += now - self._last
            self._last, self.steps_done = now, self.steps_done + n
            return False
        if name == "chunks":
            finished = self.in_chunk
            if finished and self._chunk_start is not None:
                self.overheads.append(max(0.0, now - self._chunk_start - self._chunk_steps_s))
            self.chunks_done += n
            self._chunk_start, self._chunk_steps_s, self.in_chunk = now, 0.0, False
            return finished
        return False

    def eta_s(self) -> float | None:
        """Seconds until the last chunk is done; None before the first step was timed."""
        if not self.step_times or not self.chunks_total:
            return None
        left = self.chunks_total - self.chunks_done
        if left <= 0:
            return 0.0
        steps_left = (left - 1) * self.steps_per_chunk + (
            self.steps_per_chunk - self.steps_done if self.in_chunk else self.steps_per_chunk
        )
        overhead = statistics.fmean(self.overheads) if self.overheads else 0.0
        return steps_left * statistics.median(self.step_times) + left * overhead


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA …"
    s = int(round(seconds))
    return f"ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# --- the renderers of --progress ------------------------------------------------------------------------------


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


class RichReporter:
    """Renders the Reporter protocol as rich progress bars on stderr (disabled when quiet). The chunk
    loop's line carries the ETA from measured step times and the name of the latest preview."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress = None
        self._tasks: dict[str, int] = {}
        self._clock = StepClock()
        self._preview: Path | None = None

    def __enter__(self) -> RichReporter:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,  # fmt: skip
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), _eta_column(), console=err_console(), transient=False)  # fmt: skip
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self._clock.stage(name, total)
        if self._progress is None:
            return
        desc = description or name
        if name in self._tasks:
            self._progress.reset(self._tasks[name], total=total, description=desc)
        else:
            fields = {"eta": format_eta(None)} if name == "chunks" else {}
            self._tasks[name] = self._progress.add_task(desc, total=total, **fields)

    def advance(self, name: str, n: int = 1) -> None:
        self._clock.advance(name, n)
        if self._progress is not None and name in self._tasks:
            self._progress.advance(self._tasks[name], n)
            if name in ("steps", "chunks") and "chunks" in self._tasks:
                self._progress.update(self._tasks["chunks"], eta=format_eta(self._clock.eta_s()))

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        elif self.enabled:
            err_console().print(message, markup=False, highlight=False)

    def artifact(self, kind: str, path: Path, **info) -> None:
        if self._progress is not None and "chunks" in self._tasks:  # the preview while running, the output at the end
            self._progress.update(self._tasks["chunks"], description=f"chunks ({kind}: {Path(path).name})")


def _eta_column() -> ProgressColumn:
    """Our ETA where a task has one (the chunk loop), rich's own estimate elsewhere."""
    from rich.progress import TimeRemainingColumn
    from rich.text import Text

    class EtaColumn(TimeRemainingColumn):
        def render(self, task):
            if "eta" in task.fields:
                return Text(task.fields["eta"], style="progress.remaining")
            return super().render(task)

    return EtaColumn()


class JsonReporter:
    """--progress json: the Reporter protocol as one JSON object per line on stderr, for GUIs and scripts.

    Events (every line has "event" and "t", seconds since start):
      stage      {name, total, description}            a stage starts (chunks, steps, decode, pose, load, mux)
      step       {chunk, step, steps, eta_s}           one denoising step of the current chunk finished
      progress   {name, done, total}                   any other stage advanced
      preview    {path, chunks}                        the preview mp4 now holds this many finished chunks
      output     {path}                                the output is written (the preview is removed)
      chunk_done {chunk, chunks, eta_s, preview}       a chunk is finished and saved (preview: latest path)
      log        {message}
      done       {...the run summary}                  the output is written
      error      {code, message, hint, exit_code}      the run failed (emitted by run_command)
    """

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream
        self.t0 = time.monotonic()
        self._clock = StepClock()
        self._done: dict[str, int] = {}
        self._total: dict[str, int | None] = {}
        self._preview: str | None = None
        # The segment writer thread reports the preview while the main thread reports steps: one line at a time.
        self._lock = threading.Lock()

    def __enter__(self) -> JsonReporter:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def emit(self, event: str, **data) -> None:
        line = json.dumps({"event": event, "t": round(time.monotonic() - self.t0, 3), **data}, ensure_ascii=False, default=str)
        stream = self.stream or sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self._clock.stage(name, total)
        self._done[name], self._total[name] = 0, total
        self.emit("stage", name=name, total=total, description=description or name)

    def advance(self, name: str, n: int = 1) -> None:
        finished = self._clock.advance(name, n)
        self._done[name] = self._done.get(name, 0) + n
        eta = self._clock.eta_s()
        eta = None if eta is None else round(eta, 1)
        if name == "steps":
            self.emit("step", chunk=self._clock.chunks_done, step=self._done[name], steps=self._total.get(name), eta_s=eta)
        elif name == "chunks" and finished:
            self.emit("chunk_done", chunk=self._done[name] - 1, chunks=self._total.get(name), eta_s=eta, preview=self._preview)
        else:
            self.emit("progress", name=name, done=self._done[name], total=self._total.get(name))

    def log(self, message: str) -> None:
        self.emit("log", message=message)

    def artifact(self, kind: str, path: Path, **info) -> None:
        if kind == "preview":
            self._preview = str(path)
        self.emit(kind, path=str(path), **info)


def make_reporter(mode: str) -> RichReporter | JsonReporter:
    """--progress rich|json|none (checked by options.py) -> a reporter (a context manager)."""
    if mode == "json":
        return JsonReporter()
    if mode in ("rich", "none"):
        return RichReporter(enabled=mode == "rich")
    raise ValueError(f"progress mode must be rich, json or none, got {mode!r}")
