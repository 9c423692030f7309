"""Pass 1's per-source-frame results laid out per output frame: the arrays pass 2 post-processes.

All arrays are per output frame k (the source frame span.src[k]), in source pixels. A segment is a run of
frames that may show the same person: it changes at every tracker (re-)seed and every hard cut, and pass 2
never interpolates or smooths across a change (docs/pose-facts.md, "One person").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animate_cli.pose.scan import Scan


@dataclass(frozen=True)
class Clip:
    kpts: np.ndarray  # (T, 133, 2) float64, NaN where nobody was tracked
    scores: np.ndarray  # (T, 133) float64, 0 where nobody was tracked
    boxes: np.ndarray  # (T, 4) the tracked person's box, NaN where none
    has: np.ndarray  # (T,) bool: a person was tracked (wan: always; its pose model sees the whole frame)
    found: np.ndarray  # (T,) bool: the detector found someone (wan: its box's score > 0)
    segment: np.ndarray  # (T,) int64 (see the module docstring)
    reseed: np.ndarray  # (T,) bool: a person's first frame in a new segment that no cut explains
    cut: np.ndarray  # (T,) bool: a hard cut lies between this output frame and the previous one
    multi: int  # frames where the detector offered more than one person


def expand(src: np.ndarray, scan: Scan) -> Clip:
    """The scan's results for the output frames showing source frames `src`."""
    t = len(src)
    kpts = np.full((t, 133, 2), np.nan, np.float64)
    scores = np.zeros((t, 133), np.float64)
    boxes = np.full((t, 4), np.nan)
    has = np.zeros(t, bool)
    found = np.zeros(t, bool)
    segment = np.zeros(t, np.int64)
    multi = 0
    for k, i in enumerate(src):
        seen = scan.results[int(i)]
        segment[k] = seen.epoch
        multi += seen.candidates > 1
        if seen.box is not None:
            kpts[k], scores[k], boxes[k], has[k] = seen.kpts, seen.scores, seen.box[:4], True
            found[k] = len(seen.box) < 5 or seen.box[4] > 0
    cut = _cut_flags(src, scan.cuts)
    return Clip(kpts, scores, boxes, has, found, segment, _reseeds(has, segment, cut), cut, int(multi))


def _cut_flags(src: np.ndarray, cuts: list[int]) -> np.ndarray:
    """(T,) bool: output frame k follows a cut when a cut source frame lies in (src[k-1], src[k]]."""
    cut_src = np.asarray(cuts, np.int64)
    return np.r_[False, [bool(((cut_src > a) & (cut_src <= b)).any()) for a, b in zip(src[:-1], src[1:], strict=True)]]


def _reseeds(has: np.ndarray, segment: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """(T,) bool: the first frame of a person whose segment differs from the previous person's, with no cut
    since (a cut explains the change by itself)."""
    reseed = np.zeros(len(has), bool)
    last_seg, cut_since = None, False
    for k in range(len(has)):
        cut_since |= bool(cut[k])
        if has[k]:
            if last_seg is not None and segment[k] != last_seg and not cut_since:
                reseed[k] = True
            last_seg, cut_since = segment[k], False
    return reseed
