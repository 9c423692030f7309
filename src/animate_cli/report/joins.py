"""Where a video's chunks start: from the run's own record when there is one, else the user's list, else the
77/73-frame rule of the rollout plan (rollout/plan.py).

Sources, in order, for `--chunks auto`:
  1. the sidecar `<stem>.chunks.json` a run writes next to its output (the plan's kept frame ranges);
  2. the run's resume state folder (`<output>.everanimate-state/segments/chunk_NNNNN_KKK.mp4`: KKK frames kept);
  3. the rule: chunk 0 keeps 77 frames, every later chunk 73.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from animate_cli import config as C
from animate_cli.errors import UsageError
from animate_cli.report import settings as S
from animate_cli.rollout.plan import num_chunks_for


@dataclass(frozen=True)
class ChunkLayout:
    frames: int  # frames in the video
    starts: tuple[int, ...]  # first output frame of each chunk; starts[0] == 0
    source: str  # where the layout came from (for the report)
    seam_fix: str = "none"  # what the run that wrote the video used

    @property
    def joins(self) -> tuple[int, ...]:
        """First frame of every chunk after the first: the pair (j-1, j) crosses a join."""
        return self.starts[1:]

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """[start, end) of every chunk."""
        return list(zip(self.starts, (*self.starts[1:], self.frames), strict=True))

    def with_frames(self, frames: int) -> ChunkLayout:
        """The same joins for a video of `frames` frames (joins at or beyond the end dropped)."""
        return ChunkLayout(frames, tuple(s for s in self.starts if s < frames) or (0,), self.source, self.seam_fix)


def rule_layout(frames: int) -> ChunkLayout:
    """The rollout plan's layout: chunk 0 keeps CHUNK_FRAMES, later chunks STRIDE_FRAMES each."""
    n = num_chunks_for(max(frames, 1))
    starts = (0, *(C.CHUNK_FRAMES + C.STRIDE_FRAMES * (c - 1) for c in range(1, n)))
    return ChunkLayout(frames, starts, f"the {C.CHUNK_FRAMES}/{C.STRIDE_FRAMES}-frame rule")


def parse_chunks(text: str, frames: int) -> ChunkLayout | None:
    """`--chunks`: 'auto' -> None; 'N,M,...' -> the frames where chunks 1, 2, ... start. UsageError otherwise."""
    if text.strip().lower() == "auto":
        return None
    try:
        joins = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--chunks must be auto or frame numbers like 77,150,223, got {text!r}") from None
    if not joins or any(b <= a for a, b in zip([0, *joins], joins, strict=False)):
        raise UsageError(f"--chunks {text}: join frames must be increasing and above 0")
    if joins[-1] >= frames:
        raise UsageError(f"--chunks {text}: frame {joins[-1]} is past the end of the video ({frames} frames)")
    return ChunkLayout(frames, (0, *joins), "--chunks")


def write_sidecar(video: Path, bounds: list[tuple[int, int]], fps: float, seam_fix: str) -> Path:
    """<stem>.chunks.json: the run's kept frame ranges per chunk (what `inspect` reads back)."""
    path = S.sidecar_path(video)
    data = {"schema": S.SIDECAR_SCHEMA, "video": Path(video).name, "fps": fps, "frames": bounds[-1][1],
            "chunks": [list(b) for b in bounds], "seam_fix": seam_fix}  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return path


def _from_sidecar(video: Path) -> ChunkLayout | None:
    path = S.sidecar_path(video)
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != S.SIDECAR_SCHEMA:
            return None
        bounds = [(int(a), int(b)) for a, b in data["chunks"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not bounds or bounds[0][0] != 0 or any(a[1] != b[0] for a, b in zip(bounds, bounds[1:], strict=False)):
        return None
    return ChunkLayout(
        bounds[-1][1], tuple(a for a, _ in bounds), f"the run's record {path.name}", data.get("seam_fix") or "none"
    )


SEGMENT_RE = re.compile(r"chunk_(\d{5})_(\d{3})\.mp4")


def _from_state(video: Path, frames: int) -> ChunkLayout | None:
    """Kept frames per chunk from the segment names in the default state folder, when they add up to `frames`."""
    seg_dir = Path(video).with_name(Path(video).name + ".everanimate-state") / "segments"
    keeps: dict[int, set[int]] = {}
    for p in seg_dir.glob("chunk_*.mp4") if seg_dir.is_dir() else ():
        m = SEGMENT_RE.fullmatch(p.name)
        if m:
            keeps.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not keeps or sorted(keeps) != list(range(len(keeps))):
        return None
    starts, written = [], 0
    for c in range(len(keeps)):
        left = frames - written
        keep = left if left in keeps[c] else max(keeps[c])  # a run shortened or extended: the length that fits
        starts.append(written)
        written += keep
    if written != frames:
        return None
    return ChunkLayout(frames, tuple(starts), f"the run's state folder {seg_dir.parent.name}")


def find_layout(video: Path, frames: int, chunks: str = "auto", slack: int = 0) -> ChunkLayout:
    """The chunk layout of `video` (`frames` long): --chunks, else the run's record, else the rule. `slack`:
    how far the run's record may be from `frames` (a count estimated from the container's duration)."""
    given = parse_chunks(chunks, frames)
    if given is not None:
        return given
    side = _from_sidecar(video)
    if side is not None and abs(side.frames - frames) <= slack:
        return side.with_frames(frames) if slack else side
    return _from_state(video, frames) or rule_layout(frames)
