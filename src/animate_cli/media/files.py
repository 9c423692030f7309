"""Writing files so that a failure is one clear line and leaves nothing half-written under a real name.

Every file a run writes (segments, resume state, preview, output, pose cache) goes through here or
through the encoder/concat in `media`: data goes to a temporary name first, is flushed (and read back,
for videos), and only then renamed into place. An `OSError` while writing becomes a
`WriteFailedError` (exit 6) naming the file and the reason in words: no space (ENOSPC), quota
(EDQUOT), read-only filesystem (EROFS), folder gone (ENOENT), permission (EACCES/EPERM), or the
system's own text for anything else. ffmpeg reports the same conditions only as text on stderr, so
`errno_in_text` maps its last line back to the errno.

The temporary file is removed on every exit path (exception, Ctrl-C); a SIGKILL can leave one, which
the next run removes before it starts (`runner.pipeline` cleans its state folder).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from animate_cli.errors import OutOfSpaceError, WriteFailedError

# errno -> the few words the one-line error uses; anything else uses os.strerror
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the filesystem is read-only",
    errno.ENOENT: "its folder no longer exists",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
_SPACE = {errno.ENOSPC, errno.EDQUOT}
_DETAIL_CHARS = 200  # a writer's message is quoted up to this length: the error stays one readable line


def mount_of(path: Path) -> Path:
    """The mount point of the filesystem holding `path` (or its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    dev = p.stat().st_dev
    while p != p.parent and p.parent.stat().st_dev == dev:
        p = p.parent
    return p


def free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged writer on the filesystem of `path` (nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def errno_in_text(text: str) -> int | None:
    """The errno whose system message appears in `text` (ffmpeg prints strerror, not numbers)."""
    low = text.lower()
    for code in (*_REASONS, errno.EIO, errno.EFBIG):
        if os.strerror(code).lower() in low:
            return code
    return None


def write_failure(path: Path, err: OSError | int | None = None, detail: str | None = None) -> WriteFailedError:
    """The one-line error for a file that could not be written. `err`: the OSError or errno (None:
    unknown, e.g. a video that did not read back whole); `detail`: what the writer said (ffmpeg's last
    line), appended in parentheses. Out of space is an `OutOfSpaceError`."""
    code = err.errno if isinstance(err, OSError) else err
    if code is None and detail:
        code = errno_in_text(detail)
    path = Path(path)
    detail = _tidy(detail)
    if code == errno.ENOENT and path.parent.exists():  # the file itself vanished, not its folder
        reason = "it was removed while being written"
    elif code is not None:
        reason = _REASONS.get(code) or os.strerror(code).lower()
    else:
        reason, detail = detail or "it did not read back whole", ""
    message = f"cannot write {path}: {reason}" + (f" ({detail})" if detail else "")
    try:
        mount = mount_of(path)
    except OSError:
        mount = None
    cls = OutOfSpaceError if code in _SPACE else WriteFailedError
    action = _action(code, path, mount)
    return cls(message, hint=f"{action} and run the same command again", path=path, reason=reason, mount=mount,
               action=action)  # fmt: skip


def _tidy(detail: str | None) -> str:
    """The last line of a writer's message, without ffmpeg's '[out#0/mp4 @ 0x55…] ' context prefix."""
    lines = (detail or "").strip().splitlines()
    line = re.sub(r"\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", lines[-1]) if lines else ""
    return line[:_DETAIL_CHARS]


def _action(code: int | None, path: Path, mount: Path | None) -> str:
    """What the user does about it, completed by "and run the same command again"."""
    where = mount or path.parent
    if code in _SPACE:
        return f"free some space on {where}"
    if code == errno.EROFS:
        return f"remount {where} read-write"
    if code == errno.ENOENT:
        return f"make {path.parent} available again (was {where} unmounted or the folder deleted?)"
    if code in (errno.EACCES, errno.EPERM):
        return f"make {path.parent} writable for this user"
    return f"check the disk {where}"


@contextlib.contextmanager
def writing(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """Turn an OSError inside the block into the one-line error for `path` (or for the file the error
    names, when it names one other than `tmp`); remove `tmp` when the block fails in any way (the rename
    into place is the caller's last act inside the block)."""
    try:
        yield
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                Path(tmp).unlink(missing_ok=True)
        named = Path(e.filename) if isinstance(e.filename, str) and e.filename != str(tmp) else None
        raise write_failure(named or path, e) from None
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via `<name>.tmp` + fsync + rename: `path` is either the old or the new file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with writing(path, tmp):
        path.parent.mkdir(exist_ok=True)  # never parents: a vanished folder is an error, not re-created
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def make_dirs(path: Path) -> None:
    """mkdir of a folder inside an existing one, with the one-line error (read-only, or the parent
    vanished: never re-created behind the user's back)."""
    with writing(path):
        Path(path).mkdir(exist_ok=True)


def remove_stale(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """Delete files matching `patterns` directly in `folder` (a killed run's temporaries); returns them."""
    gone = []
    for pattern in patterns:
        for p in Path(folder).glob(pattern):
            if p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    gone.append(p)
    return gone
