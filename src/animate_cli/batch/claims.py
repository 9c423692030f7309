"""Who runs which job: a claim is an OS lock (media/locks.py) on the job's claim folder, held for the job's
whole run by the worker running it, and the records a worker leaves there when the job ends.

Why a claim folder next to the output and not only the state folder's own lock (which `run` takes too, so a
plain `run` of the same output is still kept out): a run checks its inputs before it takes that lock, so a
job that fails there (an unreadable video) would be tried by every worker; the failure has to be written
somewhere every worker looks under a lock; and `--fresh` empties the state folder around its lock. The
claim folder is `<out folder>/.everanimate-batch/<out name>/`; like every lock here it dies with its holder
(exit, kill -9, a lost node), so a job whose worker died is free for the next worker, and its saved chunks
are in its state folder. On shared storage it is as good as the filesystem's flock (README, "On a cluster").

Records (JSON, written atomically while holding the claim):
  done.json    {worker, host, at, frames, wall_s}            the worker that finished the job
  failed.json  {worker, host, at, exit_code, code, message}  the last failure; a worker that started
                                                              before `at` does not try the job again
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from animate_cli.errors import EverAnimateError
from animate_cli.media import locks

CLAIMS_DIR = ".everanimate-batch"
DONE, FAILED = "done.json", "failed.json"


class JobBusy(EverAnimateError):
    """Another worker (or a plain `run`) holds the job."""

    code = "taken"


def claim_folder(out: Path) -> Path:
    return Path(out).parent / CLAIMS_DIR / Path(out).name


@contextlib.contextmanager
def claim(out: Path, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the job's claim inside the block (yields its folder), or raise JobBusy at once. `log` hears the
    warning of a filesystem that refuses locks (then nothing keeps two workers off one job)."""
    folder = claim_folder(out)
    with locks.hold(folder, lambda who: JobBusy(f"{out} is being made by {who}"), log=log):
        yield folder


def write_record(folder: Path, name: str, data: dict) -> None:
    from animate_cli.media.files import atomic_write_bytes

    atomic_write_bytes(Path(folder) / name, json.dumps({**data, "at": time.time()}).encode())


def read_record(folder: Path, name: str) -> dict | None:
    try:
        data = json.loads((Path(folder) / name).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clear_record(folder: Path, name: str) -> None:
    (Path(folder) / name).unlink(missing_ok=True)
