"""One batch worker: one Animator (the models load once), the jobs one after the other.

For each job in list order the worker takes the job's claim (claims.py). Without it (another worker has
the job) the job is left for later; with it:
  - the output exists and reads back whole (every frame, the right duration: what `run` checks of every
    output) -> skipped (or, when another worker finished it since this worker started, "taken");
  - another worker failed it since this worker started -> reported failed with that worker's exit code and
    message, not tried again (the next batch command tries it again);
  - else it runs as a normal `run` (own state folder, resume, lock, report): a failure (unreadable video, no
    person, disk full) is recorded with its exit code and one-line message, and the worker goes on.
While a job's rollout runs, the next job's pose is extracted on a thread (Animator.prepare_pose).
After its pass the worker comes back to the jobs others had, until each is done or failed: one whose
worker died is free again and is resumed from its last saved chunk. It polls them with a bounded sleep.
Ctrl-C / SIGTERM leave `run` with the job's state saved and end the worker (KeyboardInterrupt goes up).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from animate_cli import config as C
from animate_cli.batch import claims
from animate_cli.batch.events import Emit, JobReporter
from animate_cli.batch.jobs import Job
from animate_cli.errors import EverAnimateError, ExitCode, FolderBusyError, WeightsInvalidError, WeightsMissingError

if TYPE_CHECKING:
    from animate_cli.runner.animator import Animator

REVISIT_POLL_S = 2.0  # how often a worker looks again at jobs others hold: a job's chunk takes minutes, a lock check ~1 ms


@dataclass
class JobResult:
    """One job's entry of the summary (`--json` "jobs")."""

    line: int
    out: str
    status: str  # done | failed | skipped | invalid | taken
    exit_code: int | None = None
    frames: int | None = None
    wall_s: float | None = None
    worker: str | None = None  # who ran it (this worker or, for taken/failed by another, that one)
    message: str | None = None  # the one-line error of a failed or invalid job
    resumed_from_chunk: int | None = None  # a done job that continued saved state: the first chunk it generated

    def to_dict(self) -> dict:
        return asdict(self)


def finished(job: Job, animator: Animator) -> bool:
    """The job's output exists and reads back whole, as `run` checks every output: the planned frames, of the
    planned size, lasting what they make at 25 fps."""
    from animate_cli import media

    if not job.out.is_file():
        return False
    try:
        cfg = animator.config(job.ref, job.driving, job.out, **job.options)
    except EverAnimateError:  # its inputs are unreadable now: not made (its run will say why)
        return False
    return media.check_video(job.out, cfg.frames, (cfg.frame_width, cfg.height), fps=C.FPS)[1] is None


class Worker:
    def __init__(self, animator: Animator, worker_id: str, emit: Emit, started_at: float | None = None):
        self.animator, self.id, self.emit = animator, worker_id, emit
        self.host = socket.gethostname()
        self.started_at = time.time() if started_at is None else started_at  # wall clock: records are compared across nodes
        self.jobs_done = 0
        self._prefetch: tuple[Job, threading.Thread] | None = None
        self._warned = False

    def run_all(self, jobs: list[Job]) -> list[JobResult]:
        """Every job's result, in list order."""
        self.emit({"event": "worker", "worker": self.id, "host": self.host, "pid": _pid()})
        results: dict[int, JobResult] = {}
        later: list[Job] = []
        for i, job in enumerate(jobs):
            result = self._attempt(job, following=jobs[i + 1 :])
            if result is None:
                later.append(job)
            else:
                results[job.line] = result
        while later:
            time.sleep(REVISIT_POLL_S)
            still = []
            for job in later:
                result = self._attempt(job, following=[])
                if result is None:
                    still.append(job)
                else:
                    results[job.line] = result
            later = still
        return [results[j.line] for j in jobs]

    def summary(self, results: list[JobResult]) -> dict:
        return {"id": self.id, "host": self.host, "model_loads": self.animator.model_loads, "jobs_done": self.jobs_done}

    def _attempt(self, job: Job, following: list[Job]) -> JobResult | None:
        """The job's result, or None when someone else has it now."""
        try:
            with claims.claim(job.out, log=self._warn_once) as folder:
                return self._claimed(job, folder, following)
        except claims.JobBusy:
            return None

    def _claimed(self, job: Job, folder, following: list[Job]) -> JobResult | None:
        done = claims.read_record(folder, claims.DONE)
        if finished(job, self.animator):
            if done and done.get("at", 0) >= self.started_at:  # made since we started, by another worker
                return self._decided(JobResult(job.line, str(job.out), "taken", 0, done.get("frames"), done.get("wall_s"),
                                               done.get("worker")))  # fmt: skip
            return self._decided(JobResult(job.line, str(job.out), "skipped", 0))
        failed = claims.read_record(folder, claims.FAILED)
        if failed and failed.get("at", 0) >= self.started_at:  # another worker of this batch failed it: once is enough
            return self._decided(JobResult(job.line, str(job.out), "failed", failed.get("exit_code"),
                                           worker=failed.get("worker"), message=failed.get("message")))  # fmt: skip
        claims.clear_record(folder, claims.FAILED)
        claims.clear_record(folder, claims.DONE)
        return self._run(job, folder, following)

    def _run(self, job: Job, folder, following: list[Job]) -> JobResult | None:
        self._join_prefetch(job)
        self.emit({"event": "job_start", "worker": self.id, "line": job.line, "out": str(job.out)})
        reporter = JobReporter(self.emit, self.id, job.line, job.out,
                               on_stage=lambda name: self._start_prefetch(name, following))  # fmt: skip
        t0 = time.monotonic()
        try:
            summary = self.animator.run(job.ref, job.driving, job.out, reporter=reporter, **job.options)
        except FolderBusyError:  # a plain `run` of the same output holds its state folder: come back later
            self._end(job, t0, status="waiting", message="in use by another run; coming back to it")
            return None
        except (WeightsMissingError, WeightsInvalidError):  # the worker's problem, not the job's: every job would fail
            raise
        except EverAnimateError as e:
            return self._failed(job, folder, t0, int(e.exit_code), e.code, e.message)
        except Exception as e:  # noqa: BLE001 - a bug in one job must not stop the list; it is reported like any failure
            message = f"unexpected error: {type(e).__name__}: {e}".splitlines()[0]
            return self._failed(job, folder, t0, int(ExitCode.BUG), "error", message)
        wall = round(time.monotonic() - t0, 3)
        claims.write_record(folder, claims.DONE, {"worker": self.id, "host": self.host, "frames": summary.frames, "wall_s": wall})
        self.jobs_done += 1
        return self._end(job, t0, status="done", exit_code=0, frames=summary.frames,
                         resumed_from_chunk=summary.resumed_from_chunk)  # fmt: skip

    def _failed(self, job: Job, folder, t0: float, exit_code: int, code: str, message: str) -> JobResult:
        record = {"worker": self.id, "host": self.host, "exit_code": exit_code, "code": code, "message": message}
        with contextlib.suppress(EverAnimateError):  # the disk that failed the job may refuse the record; the summary has it
            claims.write_record(folder, claims.FAILED, record)
        return self._end(job, t0, status="failed", exit_code=exit_code, message=message)

    def _decided(self, result: JobResult) -> JobResult:
        """A job settled without running it (made before, or made or failed by another worker): said, for the view."""
        self.emit({"event": "job_end", **result.to_dict()})
        return result

    def _end(self, job: Job, t0: float, **fields) -> JobResult:
        """The result of a job this worker ran (fields: JobResult's), said as a job_end event."""
        result = JobResult(job.line, str(job.out), wall_s=round(time.monotonic() - t0, 3), worker=self.id, **fields)
        self.emit({"event": "job_end", **result.to_dict()})
        return result

    def _warn_once(self, message: str) -> None:
        """A filesystem without locks says so at every claim: once per worker is enough."""
        if not self._warned:
            self._warned = True
            self.emit({"event": "log", "worker": self.id, "message": message})

    # --- the next job's pose, during this job's rollout ------------------------------------------------

    def _start_prefetch(self, stage: str, following: list[Job]) -> None:
        if stage != "chunks" or self._prefetch is not None:
            return
        nxt = next((j for j in following if not j.out.exists()), None)
        if nxt is None or nxt.options.get("pose_video") is not None:
            return
        thread = threading.Thread(target=self._prepare, args=(nxt,), name=f"pose-prefetch-{nxt.line}", daemon=True)
        self._prefetch = (nxt, thread)
        thread.start()

    def _prepare(self, job: Job) -> None:
        # only a head start: the job's own run meets (and reports) any problem of its pose
        with contextlib.suppress(Exception):
            self.animator.prepare_pose(job.ref, job.driving, job.out, **job.options)

    def _join_prefetch(self, job: Job) -> None:
        """Before a job runs: wait for its own pose prefetch (its result is in the cache the run reads)."""
        if self._prefetch is not None and self._prefetch[0].line == job.line:
            self._prefetch[1].join()
        if self._prefetch is not None and not self._prefetch[1].is_alive():
            self._prefetch = None


def _pid() -> int:
    import os

    return os.getpid()
