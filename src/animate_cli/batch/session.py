"""One `everanimate batch` command start to finish, without the terminal: the worker in this process or N
worker processes, their results merged into the one summary `--json` prints, and the exit code."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from animate_cli.batch.events import Emit
from animate_cli.batch.jobs import Job, JobList
from animate_cli.batch.worker import JobResult, Worker
from animate_cli.errors import EverAnimateError, ExitCode


@dataclass
class BatchOutcome:
    jobs: list[dict]  # one entry per row (valid or not), in file order
    workers: list[dict]  # {id, host, model_loads, jobs_done}
    exit_code: int

    def counts(self) -> dict:
        out = {s: 0 for s in ("done", "failed", "skipped", "taken", "invalid")}
        for j in self.jobs:
            out[j["status"]] = out.get(j["status"], 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"jobs": self.jobs, "workers": self.workers, "counts": self.counts(), "exit_code": self.exit_code}


def worker_id() -> str:
    """host:pid names a worker uniquely on a cluster sharing one list."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


def run_here(job_list: JobList, model_options: dict, emit: Emit, started_at: float | None = None) -> BatchOutcome:
    """One worker in this process: load once (on the first job that needs the models), run the list."""
    from animate_cli.runner.animator import Animator

    with Animator(**model_options) as animator:
        worker = Worker(animator, worker_id(), emit, started_at)
        results = worker.run_all(job_list.jobs)
        info = worker.summary(results)
    emit({"event": "worker_end", "worker": info["id"], **info, "jobs": [r.to_dict() for r in results]})
    return outcome(job_list, [[r.to_dict() for r in results]], [info])


def run_pool(job_list: JobList, n: int, child_args: list[str], device: str, emit: Emit,
             started_at: float | None = None) -> BatchOutcome:  # fmt: skip
    """n worker processes on this machine (batch/pool.py), their events passed to `emit`."""
    from animate_cli.batch import pool
    from animate_cli.errors import Interrupted, Terminated

    ends, codes = pool.run_workers(n, child_args, device, emit, time.time() if started_at is None else started_at)
    for code in codes:  # a worker stopped by a signal (its job's state is saved): the batch stops the same way
        if code == ExitCode.TERMINATED:
            raise Terminated("terminated (SIGTERM)", hint="run the same command again to continue")
        if code == ExitCode.INTERRUPTED:
            raise Interrupted("interrupted", hint="run the same command again to continue")
    stopped = [c if c > 0 else int(ExitCode.BUG) for c in codes if c != 0]  # a signal's death (< 0) is no exit code
    if not ends:  # every worker stopped before its summary (missing weights, no GPU): each printed why
        raise WorkersStopped(f"all {n} workers stopped (exit {stopped[0] if stopped else 1}); their errors are above",
                             stopped[0] if stopped else int(ExitCode.BUG))  # fmt: skip
    infos = [{k: e[k] for k in ("id", "host", "model_loads", "jobs_done")} for e in ends]
    result = outcome(job_list, [e["jobs"] for e in ends], infos)
    if len(ends) < n and stopped:  # one stopped early; the others took its jobs, but the batch was not clean
        result.exit_code = result.exit_code or stopped[0]
    return result


class WorkersStopped(EverAnimateError):
    code = "workers_stopped"

    def __init__(self, message: str, exit_code: int):
        super().__init__(message, hint="fix what they say and run the same command again")
        self.exit_code = ExitCode(exit_code) if exit_code in iter(ExitCode) else ExitCode.BUG


def outcome(job_list: JobList, per_worker: list[list[dict]], workers: list[dict]) -> BatchOutcome:
    """Every row's entry, the workers' views of each job merged: the worker that ran it wins; else a failure
    another worker recorded; else skipped; else taken (another process, not ours, made it)."""
    by_line: dict[int, list[dict]] = {}
    for results in per_worker:
        for r in results:
            by_line.setdefault(r["line"], []).append(r)
    ours = {w["id"] for w in workers}
    entries: dict[int, dict] = {}
    for job in job_list.jobs:
        views = by_line.get(job.line, [])
        entries[job.line] = _merge(job, views, ours)
    for bad in job_list.invalid:
        entries[bad.line] = JobResult(bad.line, bad.out, "invalid", int(ExitCode.USAGE), message=bad.message).to_dict()
    jobs = [entries[line] for line in sorted(entries)]
    failing = [j for j in jobs if j["status"] == "failed"]
    missing = [j for j in jobs if j["status"] == "pending"]
    if failing:
        code = failing[0]["exit_code"] or int(ExitCode.BUG)
    else:  # a job no worker reported (its worker died without a summary) is not done
        code = int(ExitCode.BUG) if missing else int(ExitCode.OK)
    return BatchOutcome(jobs, workers, int(code))


def _merge(job: Job, views: list[dict], ours: set) -> dict:
    def rank(v: dict) -> int:
        if v["status"] in ("done", "failed") and v.get("worker") in ours:
            return 0
        return {"failed": 1, "done": 1, "taken": 2, "skipped": 3}.get(v["status"], 4)

    if not views:
        return JobResult(job.line, str(job.out), "pending").to_dict()
    best = dict(min(views, key=rank))
    if best["status"] == "skipped" and any(v["status"] == "taken" for v in views):
        best = dict(next(v for v in views if v["status"] == "taken"))
    if best["status"] == "done" and best.get("worker") not in ours:
        best["status"] = "taken"
    best["out"] = str(job.out)
    return best


def invalid_lines(job_list: JobList) -> list[str]:
    """One line per bad row: 'jobs.csv line 4: <every problem of the row>'."""
    name = Path(job_list.path).name
    return [f"{name} line {b.line}: {b.message}" for b in job_list.invalid]
