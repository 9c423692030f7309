"""What a batch worker tells whoever shows the progress: one dict per event, each naming the worker and (for
a job's events) the job's line and output. A worker process writes them as JSON lines on a pipe to its
parent (batch/pool.py); a lone worker hands them to the view directly. The same dicts are what
`batch --progress json` prints, one per line on stderr.

Events:
  worker      {worker, host, pid}                                   a worker started
  job_start   {worker, line, out}                                   a worker took a job
  stage       {worker, line, out, name, total, description}         a stage of the job's run started
  step        {worker, line, out, chunk, step, steps}               one denoising step finished
  chunk_done  {worker, line, out, chunk, chunks, chunk_s}           a chunk is saved (chunk_s: its wall time)
  progress    {worker, line, out, name, done, total}                any other stage advanced
  log         {worker, line, out, message}
  preview / output {worker, line, out, path, ...}
  job_end     {worker, line, out, status, exit_code, frames, wall_s, message, resumed_from_chunk}: the job is
              settled for this worker (status as in --json), or "waiting" (a plain `run` holds it; later again)
  worker_end  {worker, host, model_loads, jobs_done, jobs: [job entries as in --json]}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

Emit = Callable[[dict], None]


class JobReporter:
    """The Reporter protocol of one job's run, as events carrying the job's line and output.
    `on_stage(name)` lets the worker act when the run reaches a stage (the rollout: prefetch the next pose)."""

    def __init__(self, emit: Emit, worker: str, line: int, out: Path, on_stage: Callable[[str], None] | None = None):
        self.emit, self.on_stage = emit, on_stage
        self.base = {"worker": worker, "line": line, "out": str(out)}
        self._done: dict[str, int] = {}
        self._total: dict[str, int | None] = {}
        self._chunk_t0 = time.monotonic()
        self._stepped = False  # a chunk is timed only if it ran steps (not a resumed run's skipped chunks)

    def _send(self, event: str, **data) -> None:
        self.emit({"event": event, **self.base, **data})

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self._done[name], self._total[name] = 0, total
        if name == "chunks":
            self._chunk_t0, self._stepped = time.monotonic(), False
        elif name == "steps":
            self._stepped = True
        self._send("stage", name=name, total=total, description=description or name)
        if self.on_stage is not None:
            self.on_stage(name)

    def advance(self, name: str, n: int = 1) -> None:
        self._done[name] = self._done.get(name, 0) + n
        if name == "steps":
            self._send("step", chunk=self._done.get("chunks", 0), step=self._done[name], steps=self._total.get(name))
        elif name == "chunks":
            if n == 0:
                return
            now = time.monotonic()
            chunk_s = round(now - self._chunk_t0, 3) if self._stepped else None
            self._chunk_t0, self._stepped = now, False
            self._send("chunk_done", chunk=self._done[name] - 1, chunks=self._total.get(name), chunk_s=chunk_s)
        else:
            self._send("progress", name=name, done=self._done[name], total=self._total.get(name))

    def log(self, message: str) -> None:
        self._send("log", message=message)

    def artifact(self, kind: str, path: Path, **info) -> None:
        self._send(kind, path=str(path), **info)
