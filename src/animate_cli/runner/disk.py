"""A run's disk: the space check before the rollout, and what a write failure tells the user.

`check_space` compares what the run still has to write (runner.readiness.disk_needs: the remaining
chunks' latents and segments, the output and its preview, the pose cache) with the free space of each
filesystem involved, and stops before any model loads when it clearly cannot fit (no safety margin:
the dry run's readiness list is the cautious one). On a resumed run the H.264 rate is the one measured
on the segments already written, not the assumption.

`explain` turns any `WriteFailedError` of the run into the one line plus a hint of the form
"free at least 12.5 MB on /data and run the same command again: it continues from chunk 3 of 8",
reading the chunk from the saved state, so the user knows nothing finished is lost.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from animate_cli.errors import OutOfSpaceError, WriteFailedError
from animate_cli.media.files import free_bytes, mount_of
from animate_cli.rollout import resume
from animate_cli.runner import readiness
from animate_cli.runner.readiness import RunWrites

_PREFLIGHT = "not enough space"  # the reason of check_space's error (its hint already says how much to free)
_SEGMENT_NAME = re.compile(r"chunk_\d{5}_(\d{3})\.mp4")  # resume.segment_path: the name records the kept frames


def measured_bytes_per_frame(state_dir: Path) -> float | None:
    """Mean H.264 bytes per frame of the segments already in the state folder (None when there are none)."""
    size = frames = 0
    for seg in (state_dir / "segments").glob("chunk_*.mp4"):
        m = _SEGMENT_NAME.fullmatch(seg.name)
        if m and int(m[1]) > 0:
            size, frames = size + seg.stat().st_size, frames + int(m[1])
    return size / frames if frames else None


def needs(w: RunWrites) -> dict[int, readiness.DiskNeed]:
    return readiness.disk_needs(w, resume.saved_next_chunk(w.state_dir), measured_bytes_per_frame(w.state_dir))


def check_space(w: RunWrites, free=None) -> None:
    """OutOfSpaceError (exit 6) when a filesystem has less free space than the run still has to write on it."""
    free = free or free_bytes
    for need in needs(w).values():
        have = free(need.path)
        if need.bytes > have:
            mount = mount_of(need.path)
            action = f"free at least {_mb(need.bytes - have)} on {mount} (or choose --out / --state-dir on a larger disk)"
            raise OutOfSpaceError(
                f"not enough space on {mount} for the {' and '.join(need.labels)}: ~{_mb(need.bytes)} to write, "
                f"{_mb(have)} free",
                hint=f"{action} and run the same command again: {continues(w)}", path=need.path, mount=mount,
                reason=_PREFLIGHT, action=action,
            )  # fmt: skip


def explain(e: WriteFailedError, w: RunWrites, free=None) -> WriteFailedError:
    """`e` with the hint a user of `run` needs: how much to free where (out of space), and which chunk the
    same command continues from."""
    free = free or free_bytes
    action = e.action or "fix the cause"
    if isinstance(e, OutOfSpaceError) and e.mount is not None and e.reason != _PREFLIGHT:  # check_space's is exact
        dev_needs = [n for n in needs(w).values() if mount_of(n.path) == Path(e.mount)]
        short = sum(n.bytes for n in dev_needs) * readiness.DISK_MARGIN - free(e.mount)
        if short > 0:
            action = f"free at least {_mb(short)} on {e.mount}"
    e.hint = f"{action} and run the same command again: {continues(w)}"
    return e


def continues(w: RunWrites) -> str:
    k = min(resume.saved_next_chunk(w.state_dir), w.chunks)
    if k >= w.chunks:
        return f"all {w.chunks} chunks are saved, it only writes the video"
    return f"it continues from chunk {k + 1} of {w.chunks}" if k else f"it starts at chunk 1 of {w.chunks}"


def _mb(n: float) -> str:
    """Bytes as MB (GB from 1 GB), rounded up: 'free at least' must never say less than is needed."""
    if n >= 1e9:
        return f"{math.ceil(n / 1e7) / 100:.2f} GB"
    return f"{math.ceil(max(n, 1) / 1e5) / 10:.1f} MB"
