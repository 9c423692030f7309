"""`batch --workers N`: N worker processes on this machine, each on its own GPU, one job list.

Each worker is the same `everanimate batch` command with `--workers 1`, started with CUDA_VISIBLE_DEVICES
naming one GPU (several workers share GPUs round-robin when N exceeds them), so it loads the models once
on `cuda:0` of its own view. A worker writes its events (batch/events.py) as JSON lines to a pipe
this process reads; its last event carries its results, which are merged here into one summary. Workers
coordinate only through the job claims on disk (claims.py), exactly as workers on other machines do.

Signals: Ctrl-C (SIGINT) or SIGTERM (a scheduler stopping the job) to this process is passed on to each
worker once (the workers have their own process group, so a terminal's Ctrl-C reaches only this process). Each saves its job's state and exits 130 / 143,
and this process exits with the same code once they are gone.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from animate_cli.errors import SigTerm

EVENTS_FD_ENV = "EVERANIMATE_BATCH_EVENTS_FD"  # tells a worker process the pipe of its events (cli/batch.py reads it)
STARTED_AT_ENV = "EVERANIMATE_BATCH_STARTED_AT"  # the batch's start (epoch seconds), shared by its workers
WORKER_EXIT_WAIT_S = 60.0  # after passing on a signal: a worker saves its state within a chunk's step or two


@dataclass
class WorkerProc:
    proc: subprocess.Popen
    read_fd: int
    buffer: bytes = b""
    end: dict | None = None  # its worker_end event
    events: list = field(default_factory=list)


def default_workers(device: str) -> int:
    """One per GPU this process may use (CUDA_VISIBLE_DEVICES respected), 1 without a GPU or on the CPU."""
    return max(1, len(gpu_ids(device)))


def gpu_ids(device: str) -> list[str]:
    """The CUDA_VISIBLE_DEVICES entries the workers are given, one each; [] on the CPU."""
    if device == "cpu":
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [t.strip() for t in env.split(",") if t.strip() and t.strip() != "-1"]
    from animate_cli.models.device import nvidia_smi_gpus

    return [str(g.index) for g in nvidia_smi_gpus() or ()]


def run_workers(n: int, child_args: list[str], device: str, on_event: Callable[[dict], None],
                started_at: float) -> tuple[list[dict], list[int]]:  # fmt: skip
    """Start n workers (`python -m animate_cli batch <child_args> --workers 1`), pass every event to
    `on_event` as it comes, and return (each worker's worker_end event, each worker's exit code)."""
    gpus = gpu_ids(device)
    workers = [_start(child_args, gpus[k % len(gpus)] if gpus else None, started_at) for k in range(n)]
    try:
        _pump(workers, on_event)
    except KeyboardInterrupt as exc:
        sig = signal.SIGTERM if isinstance(exc, SigTerm) else signal.SIGINT
        for w in workers:
            if w.proc.poll() is None:
                w.proc.send_signal(sig)
        for w in workers:
            try:
                w.proc.wait(WORKER_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                w.proc.kill()
        raise
    codes = [w.proc.wait() for w in workers]
    return [w.end for w in workers if w.end is not None], codes


def _start(child_args: list[str], gpu: str | None, started_at: float) -> WorkerProc:
    read_fd, write_fd = os.pipe()
    env = {**os.environ, EVENTS_FD_ENV: str(write_fd), STARTED_AT_ENV: repr(started_at)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    cmd = [sys.executable, "-m", "animate_cli", "batch", *child_args, "--workers", "1"]
    try:
        # its own process group: a terminal's Ctrl-C reaches this process only, which passes it on once (a second
        # signal during a worker's clean-up could cut it short)
        proc = subprocess.Popen(cmd, env=env, pass_fds=(write_fd,), stdin=subprocess.DEVNULL, process_group=0)
    finally:
        os.close(write_fd)  # the worker holds the only write end: its exit is our end of file
    return WorkerProc(proc, read_fd)


def _pump(workers: list[WorkerProc], on_event: Callable[[dict], None]) -> None:
    sel = selectors.DefaultSelector()
    for w in workers:
        sel.register(w.read_fd, selectors.EVENT_READ, w)
    open_count = len(workers)
    try:
        while open_count:
            for key, _ in sel.select():
                w: WorkerProc = key.data
                chunk = os.read(w.read_fd, 1 << 16)
                if not chunk:
                    sel.unregister(w.read_fd)
                    os.close(w.read_fd)
                    open_count -= 1
                    continue
                w.buffer += chunk
                *lines, w.buffer = w.buffer.split(b"\n")
                for raw in lines:
                    _deliver(w, raw, on_event)
    finally:
        sel.close()


def _deliver(w: WorkerProc, raw: bytes, on_event: Callable[[dict], None]) -> None:
    try:
        event = json.loads(raw)
    except ValueError:
        return
    if event.get("event") == "worker_end":
        w.end = event
    on_event(event)


class PipeEmitter:
    """A worker's side of the pipe: one JSON line per event (written whole; the parent reads by line)."""

    def __init__(self, fd: int):
        self.stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()  # the run's segment writer thread reports its preview while the main thread steps

    def __call__(self, event: dict) -> None:
        line = json.dumps(event, ensure_ascii=False, default=str) + "\n"
        try:
            with self._lock:
                self.stream.write(line)
                self.stream.flush()
        except BrokenPipeError:  # the parent is gone; the worker finishes its job and the records tell the rest
            pass
