"""What `everanimate batch` shows: the live view of the list (rich), its events as JSON lines, the plan of
`--dry-run` and the closing summary. The state it draws is batch/status.py's."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from animate_cli.batch.status import BatchStatus
from animate_cli.cli.common import err_console
from animate_cli.progress import format_eta

REFRESH_PER_S = 4  # the live view redraws at most this often: events come per denoising step


class BatchView:
    """The `emit` of every worker's events: --progress rich (counts, ETA, one line per worker), json (each event
    as one JSON line on stderr, with "t"), none (nothing). Thread-safe: a worker's pose prefetch emits too."""

    def __init__(self, mode: str, status: BatchStatus):
        self.mode, self.status = mode, status
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._live = None

    def __enter__(self) -> BatchView:
        if self.mode == "rich":
            from rich.live import Live

            self._live = Live(self._render(), console=err_console(), refresh_per_second=REFRESH_PER_S, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            if not self._live.console.is_terminal:  # a log file: the last picture ends its line, like a terminal's
                self._live.console.line()

    def __call__(self, event: dict) -> None:
        with self._lock:
            settled = self.status.feed(event)
            if self.mode == "json":
                line = json.dumps({**event, "t": round(time.monotonic() - self.t0, 3)}, ensure_ascii=False, default=str)
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            elif self._live is not None:
                self._say(event, settled)
                self._live.update(self._render())

    def note(self, message: str) -> None:
        """A line above the live view (or plain on stderr); nothing with --progress json or none."""
        if self._live is not None:
            self._live.console.print(message, markup=False, highlight=False)
        elif self.mode == "rich":
            err_console().print(message, markup=False, highlight=False)

    def _say(self, event: dict, settled: bool) -> None:
        kind = event.get("event")
        where = f"line {event['line']} ({Path(str(event.get('out', ''))).name})" if "line" in event else event["worker"]
        if kind == "job_end" and not settled:
            return
        if kind == "job_end" and event["status"] == "failed":
            self._live.console.print(f"{where}: failed (exit {event['exit_code']}): {event.get('message')}", markup=False)
        elif kind == "job_end" and event["status"] == "done":
            self._live.console.print(f"{where}: done, {event.get('frames')} frames in {event.get('wall_s')} s", markup=False)
        elif kind == "log":
            self._live.console.print(f"{where}: {event['message']}", markup=False, highlight=False)

    def _render(self):
        from rich.table import Table

        s = self.status
        grid = Table.grid(padding=(0, 2))
        head = (f"jobs: {s.done} done · {s.failed} failed · {s.running} running · {s.left} to go"
                + (f" · {s.skipped} already made" if s.skipped else "") + f"   {format_eta(s.eta_s())}")  # fmt: skip
        grid.add_row(head)
        for w in s.workers.values():
            if w.line is None:  # between jobs, or come back for jobs others hold
                grid.add_row(f"  {w.worker}: {'idle' if s.left == 0 else 'waiting for jobs other workers hold'}")
                continue
            where = f"  {w.worker}: line {w.line} {Path(w.out).name}"
            if w.chunks:
                where += f"  chunk {min(w.chunk + 1, w.chunks)}/{w.chunks}"
                if w.steps:
                    where += f"  step {w.step}/{w.steps}"
            elif w.stage:
                where += f"  {w.stage}"
            grid.add_row(where)
        return grid


def print_invalid(lines: list[str]) -> None:
    console = err_console()
    for line in lines:
        console.print(line, markup=False, highlight=False)


def print_summary(result: dict) -> None:
    console = err_console()
    c = result["counts"]
    console.print(f"{c['done']} done, {c['failed']} failed, {c['skipped']} already made, {c['taken']} made by other "
                  f"workers, {c['invalid']} invalid", markup=False, highlight=False)  # fmt: skip
    for j in result["jobs"]:
        if j["status"] in ("failed", "invalid"):
            console.print(f"  line {j['line']}: {j['status']} (exit {j['exit_code']}): {j.get('message')}", markup=False,
                          highlight=False)  # fmt: skip
    for w in result["workers"]:
        console.print(f"  worker {w['id']}: {w['jobs_done']} jobs, models loaded {w['model_loads']}x", markup=False,
                      highlight=False)  # fmt: skip


def print_plan(report: dict) -> None:
    """`batch --dry-run`: one line per job, the totals, then the readiness of the whole list."""
    console = err_console()
    for j in report["jobs"]:
        where = f"line {j['line']}: {Path(j['out']).name or '-'}"
        if j["status"] == "planned":
            w, h = j["size"]
            console.print(f"{where}: {j['frames']} frames, {w}x{h}, {j['chunks']} chunks, ~{j['gpu_minutes']} GPU min",
                          markup=False, highlight=False)  # fmt: skip
        elif j["status"] == "made":
            console.print(f"{where}: already made (skipped)", markup=False, highlight=False)
        else:
            console.print(f"{where}: {j['status']} (exit {j['exit_code']}): {j.get('message')}", markup=False, highlight=False)
    t = report["totals"]
    console.print(f"total: {t['jobs']} jobs to run, {t['frames']} frames, {t['chunks']} chunks, ~{t['gpu_minutes']} GPU "
                  "minutes (one GPU; divide by the workers)", markup=False, highlight=False)  # fmt: skip
    code = report["exit_code"]
    console.print("ready to run: yes" if code == 0 else f"ready to run: no (exit {code})", markup=False)
    for item in report["readiness"]:
        ok = item["status"] == "ok"
        console.print(f"  {'ok ' if ok else 'NO '} {item['name']:<8} {item['message']}", markup=False, highlight=False)
        if item.get("fix"):
            console.print(f"  {'':3} {'':<8} {'note' if ok else 'fix'}: {item['fix']}", markup=False, highlight=False)
