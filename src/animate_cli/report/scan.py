"""The one streamed pass over a video that the seam and drift figures need.

Each frame is read at ANALYSIS_WIDTH (ffmpeg scales it), turned into CIELAB, and reduced to six numbers
(mean and spread of L*, a*, b*); consecutive frames give three changes (luminance, colour, structure). Only
the previous frame is held, so memory does not grow with the video's length: the per-frame numbers are
kept in compact arrays (9 doubles a frame, ~200 KB for two minutes).

The same pass also replays `--seam-fix color` (seamfix.ColourEaser) on the analysis frames at each join and
records the changes the corrected frames would have, so the report can show the figures with and without it.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animate_cli import media
from animate_cli.errors import BadInputError
from animate_cli.progress import NullReporter, Reporter
from animate_cli.report import settings as S
from animate_cli.report.colour import lab_stats, pair_changes, to_lab
from animate_cli.rollout.seamfix import ColourEaser


@dataclass
class Scan:
    frames: int
    stats: np.ndarray  # (T, 6) mean L*, a*, b*, std L*, a*, b* per frame
    changes: np.ndarray  # (T, 3) luminance, colour, structure change of pair (t-1, t); row 0 is NaN
    fixed_changes: dict[int, np.ndarray] = field(default_factory=dict)  # pair t -> (3,) with --seam-fix color replayed
    fix_corrections: list[tuple[int, float]] = field(default_factory=list)  # (chunk, step) the replay corrected


def scan_video(path: Path, joins: Sequence[int], expected_frames: int | None = None, reporter: Reporter | None = None,
               width: int = S.ANALYSIS_WIDTH) -> Scan:  # fmt: skip
    """Stream `path` once (see the module docstring) at `width` (never more than the video's own width, so a
    small video is not blown up). `joins`: first frames of chunks 1, 2, ... ."""
    reporter = reporter or NullReporter()
    reporter.stage("scan", expected_frames, "measuring frames")
    stats, changes = array("d"), array("d")
    join_chunk = {j: c for c, j in enumerate(joins, start=1)}
    easer = ColourEaser()
    fixed_changes: dict[int, np.ndarray] = {}
    prev = prev_fixed = None  # (stats, L* image) of the previous frame, as read and as the replayed fix made it
    t = -1
    for t, frame in enumerate(media.iter_frames(path, width=width)):
        lab = to_lab(frame)
        now = (lab_stats(lab), lab[..., 0])
        stats.extend(now[0])
        changes.extend(pair_changes(prev[0], now[0], prev[1], now[1]) if prev else (np.nan,) * 3)
        if t == 0 or t in join_chunk:
            easer.start(join_chunk.get(t, 0))
        fixed = easer(frame)
        if fixed is frame:
            now_fixed = now
        else:
            lab_f = to_lab(fixed)
            now_fixed = (lab_stats(lab_f), lab_f[..., 0])
        if prev is not None and (now_fixed is not now or prev_fixed is not prev):
            fixed_changes[t] = np.array(pair_changes(prev_fixed[0], now_fixed[0], prev_fixed[1], now_fixed[1]))
        prev, prev_fixed = now, now_fixed
        reporter.advance("scan")
    frames = t + 1
    if frames == 0:
        raise BadInputError(f"no frames decoded from {path}")
    return Scan(frames, np.frombuffer(stats).reshape(frames, 6), np.frombuffer(changes).reshape(frames, 3),
                fixed_changes, easer.corrections)  # fmt: skip
