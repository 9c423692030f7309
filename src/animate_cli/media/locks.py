"""One folder, one writer: an exclusive OS lock on the folders that runs write into.

`hold(folder, ...)` takes `flock(LOCK_EX)` on `folder/.everanimate-lock` and keeps it for the
duration of the `with` block. The lock belongs to the open file, not to the file's existence: when
the process ends in any way (exit, Ctrl-C, SIGTERM, `kill -9`, a lost node) the kernel drops it, so
there is never a stale lock to clean up by hand (a file left by a killed process is just reused).
The holder removes the file as the last thing it does before releasing; a process that then locks
the removed file notices (the path no longer names the file it locked) and locks the path anew, so
removal never admits two holders. While a run holds it, the file stays (`--fresh` empties the folder
around it): deleting it then would let a newcomer lock a new file next to the held one. Our fd
is not inherited by child processes (Python opens files close-on-exec), so an ffmpeg child that
outlives us cannot keep the folder locked.

After acquiring, the holder writes its pid, host and start time into the file; that text is only
for the message the next process shows ("in use by pid 123 on node7 since 05:58 UTC"), never used
to decide anything.

Filesystems: on a local disk this is exact. On NFS, Linux maps flock to NFS byte-range locks, which
work across nodes when the server supports locking (NFSv4, or NFSv3 with lockd; not with the
`nolock` mount option, where locks are node-local). Lustre honours flock across nodes only when
mounted with `-o flock`. Where the filesystem refuses locks outright we warn and continue unlocked
rather than make the folder unusable (see README, "On a cluster").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from animate_cli.errors import EverAnimateError

LOCK_NAME = ".everanimate-lock"
# errno values meaning "this filesystem does not do flock" (Lustre without -o flock: ENOSYS; some
# FUSE/SMB mounts: EOPNOTSUPP/ENOLCK); any other error is a real I/O error and is raised.
_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def holder(folder: Path) -> str:
    """'pid 123 on node7 since 2026-11-21 05:58:01 UTC' as written by the current holder (best effort)."""
    try:
        info = json.loads((Path(folder) / LOCK_NAME).read_text())
        return f"pid {info['pid']} on {info['host']} since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # the holder is between taking the lock and writing it
        return "another process (pid not yet recorded)"


def _record_self(fd: int) -> None:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}).encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def _open_locked(path: Path, busy: Callable[[str], EverAnimateError] | None, wait: bool, log) -> tuple[int, bool]:
    """(fd, locked) for `path`, retrying when the file we locked was removed by a holder releasing it."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the folder was removed between mkdir and open by a holder releasing it
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = holder(path.parent)
                if not wait:
                    raise busy(who) if busy else BlockingIOError(f"{path.parent} is locked by {who}") from None
                if log is not None:
                    log(f"waiting for {path.parent} to be released by {who}")
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                os.close(fd)
                raise
            if log is not None:
                log(f"warning: cannot lock {path.parent} ({os.strerror(exc.errno)}); make sure no other run uses it")
            return fd, False
        except BaseException:
            os.close(fd)
            raise
        try:
            mine = os.stat(path)
            current = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
                return fd, True
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def hold(folder: Path, busy: Callable[[str], EverAnimateError] | None = None, *, wait: bool = False,
         log: Callable[[str], None] | None = None) -> Iterator[Path]:  # fmt: skip
    """Hold the exclusive lock of `folder` (created if needed) inside the block; yields the lock file.

    If another process holds it: raise `busy(who)` at once (who: "pid N on HOST since T"), or with
    `wait=True` (`busy` unused) log a line and block until it is released (Ctrl-C / SIGTERM still interrupt).
    On release the lock file is removed, and the folder too when this call created it and left it
    empty, so a finished run leaves no lock file and one that failed before writing leaves no folder.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    created = not folder.exists()
    try:
        fd, locked = _open_locked(path, busy, wait, log)
    except PermissionError:
        fd, locked = None, False  # a folder we may not write to cannot be written by us either
    except OSError as e:  # read-only filesystem, no space for the lock file, a parent gone: one line, exit 6
        from animate_cli.media.files import write_failure

        raise write_failure(path, e) from None
    if fd is None:
        yield path
        return
    try:
        if locked:
            _record_self(fd)
        yield path
    finally:
        if locked:  # last act of the holder: nothing is written after this
            with contextlib.suppress(OSError):
                path.unlink()  # a waiter that then locks this file sees the path no longer names it, and retries
                if created and not any(folder.iterdir()):
                    folder.rmdir()
        os.close(fd)  # releases the lock (the kernel does the same if the process dies first)


def clear_except_lock(folder: Path) -> None:
    """Delete everything in a folder we hold the lock of, except the lock file itself (`--fresh`)."""
    for child in Path(folder).iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink(missing_ok=True)
