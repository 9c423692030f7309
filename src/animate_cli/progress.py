"""Progress reporting as a tiny protocol, so stage modules never touch rich.

A stage announces itself with `stage(name, total)` and then calls `advance(name)`; `artifact(kind,
path)` names a file the user can look at now (the rollout's preview after each chunk). The CLI
renders these as rich bars on stderr or as JSON lines (`--progress json`); tests use
`RecordingReporter` to check what happened.

`StepClock` turns the same events into an ETA from measured step times. It relies on the names the
chunk loop (rollout/loop.py) uses: a "chunks" stage advanced once per finished chunk, and a
"steps" stage per chunk advanced once per denoising step.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

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


class RecordingReporter:
    """Keeps every event; `counts[name]` is how far a stage advanced."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.counts: dict[str, int] = {}
        self.messages: list[str] = []

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self.events.append(("stage", name, total, description))
        self.counts[name] = 0

    def advance(self, name: str, n: int = 1) -> None:
        self.events.append(("advance", name, n))
        self.counts[name] = self.counts.get(name, 0) + n

    def log(self, message: str) -> None:
        self.messages.append(message)

    def artifact(self, kind: str, path: Path, **info) -> None:
        self.events.append(("artifact", kind, Path(path), info))


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
