"""The state of a whole batch, fed with the workers' events (batch/events.py): jobs done / failed / running,
each worker's job and chunk, and an ETA for the list from measured chunk times. The rich view (cli/) draws
it; nothing here draws."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

ETA_CHUNKS = 20  # recent chunk times the ETA uses (median): forgets a first chunk slowed by loading and compiling


@dataclass
class WorkerLine:
    worker: str
    host: str = ""
    line: int | None = None  # the job it is on (None: idle or waiting for jobs others hold)
    out: str = ""
    stage: str = ""
    chunk: int = 0
    chunks: int | None = None
    step: int = 0
    steps: int | None = None


@dataclass
class BatchStatus:
    total: int  # valid jobs in the list
    done: int = 0
    failed: int = 0
    skipped: int = 0  # already made before this batch started
    workers: dict[str, WorkerLine] = field(default_factory=dict)
    chunk_times: list[float] = field(default_factory=list)
    chunks_per_job: list[int] = field(default_factory=list)
    finished_lines: set = field(default_factory=set)

    def feed(self, event: dict) -> bool:
        """Take one event; True when it settled a job not settled before (each job counts once, however many
        workers report on it)."""
        kind, wid = event.get("event"), event.get("worker")
        if wid is None or kind == "worker_end":
            return False
        w = self.workers.setdefault(wid, WorkerLine(wid))
        if kind == "worker":
            w.host = event.get("host", "")
        elif kind == "job_start":
            self.workers[wid] = WorkerLine(wid, w.host, event["line"], event["out"])
        elif kind == "stage":
            w.stage = event["name"]
            if event["name"] == "chunks":
                w.chunks, w.chunk = event.get("total"), 0
                if event.get("total"):
                    self.chunks_per_job.append(int(event["total"]))
            elif event["name"] == "steps":
                w.steps, w.step = event.get("total"), 0
        elif kind == "step":
            w.step = event.get("step", 0)
        elif kind == "chunk_done":
            w.chunk = event["chunk"] + 1
            if event.get("chunk_s") is not None:
                self.chunk_times = (self.chunk_times + [float(event["chunk_s"])])[-ETA_CHUNKS:]
        elif kind == "job_end":
            if w.line == event["line"]:
                self.workers[wid] = WorkerLine(wid, w.host)
            return self._job_end(event)
        return False

    def _job_end(self, event: dict) -> bool:
        status = event["status"]
        if event["line"] in self.finished_lines or status not in ("done", "taken", "failed", "skipped"):
            return False
        self.finished_lines.add(event["line"])
        if status == "skipped":
            self.skipped += 1
        elif status == "failed":
            self.failed += 1
        else:  # done here or, taken, by a worker elsewhere
            self.done += 1
        return True

    @property
    def running(self) -> int:
        return sum(1 for w in self.workers.values() if w.line is not None)

    @property
    def left(self) -> int:
        return max(0, self.total - self.done - self.failed - self.skipped - self.running)

    def eta_s(self) -> float | None:
        """Seconds until the list is done at the measured pace: the chunks left of the running jobs and of the
        jobs not started (at the mean chunk count seen so far), shared by the workers. None before a chunk is timed."""
        if not self.chunk_times:
            return None
        per_job = statistics.fmean(self.chunks_per_job) if self.chunks_per_job else 1.0
        running_left = sum((w.chunks or per_job) - w.chunk for w in self.workers.values() if w.line is not None)
        chunks_left = running_left + self.left * per_job
        workers = max(1, len(self.workers))
        return chunks_left * statistics.median(self.chunk_times) / workers
