"""Pass 1's results so far, kept in the pose cache so that a longer request continues where a shorter one stopped.

Pass 1 (stage._infer_pass) walks the source frames of the span in order: a hard-cut test between every two
consecutive frames, and detection + tracking + keypoints on the frames the output uses. Everything it
carries from one frame to the next is here: the per-frame results, the cuts, the last frame's thumbnail
and the tracker's state. Saved as scan.npz (plain arrays, no pickle); a request for more output frames
loads it and scans on from `last + 1`, so the frames already estimated are never estimated again, and the
result is the same as one scan of the longer span (the tracker sees the same frames in the same order).

Arrays in scan.npz, m = source frames estimated so far:
    idx (m,) int64 source index | box (m, 5) xyxy + the detector's score (the wan pose model's person choice;
    NaN for rtmw, whose tracker keeps no score), xyxy NaN when nobody was tracked | kpts (m, 133, 2)
    scores (m, 133) | n_cand (m,) int64 | epoch (m,) int64 | cuts (c,) int64 source indices
    thumb (h, w) float32 or (0, 0) | meta (7,) int64: first, last, max_lost, lost, reseeds, track_id, version
    trk_last, trk_prev (4,) float64, NaN when None
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animate_cli.pose.track import Tracker

SCAN_FILE = "scan.npz"
VERSION = 2  # bump when what pass 1 computes per frame changes, so old scans are not continued


@dataclass
class Scan:
    first: int  # source index of the span's first frame: where the scan began
    last: int  # last source index scanned (first - 1 before any)
    tracker: Tracker
    results: dict[int, tuple] = field(default_factory=dict)  # index -> (box | None, kpts, scores, n_candidates, epoch)
    cuts: list[int] = field(default_factory=list)  # source indices that start a new shot
    thumb: np.ndarray | None = None  # the last scanned frame's thumbnail, for the cut test of the next one

    @classmethod
    def begin(cls, first: int, max_lost: int) -> Scan:
        return cls(first, first - 1, Tracker(max_lost))

    def save(self, path: Path) -> None:
        idx = np.asarray(sorted(self.results), np.int64)
        rows = [self.results[int(i)] for i in idx]
        nan = lambda shape: np.full(shape, np.nan, np.float32)  # noqa: E731
        t = self.tracker
        with open(path, "wb") as f:
            np.savez(
                f, idx=idx,
                box=np.asarray([nan(5) if r[0] is None else _box5(r[0]) for r in rows], np.float64).reshape(-1, 5),
                kpts=np.asarray([nan((133, 2)) if r[1] is None else r[1] for r in rows], np.float32).reshape(-1, 133, 2),
                scores=np.asarray([np.zeros(133, np.float32) if r[2] is None else r[2] for r in rows], np.float32).reshape(-1, 133),
                n_cand=np.asarray([r[3] for r in rows], np.int64), epoch=np.asarray([r[4] for r in rows], np.int64),
                cuts=np.asarray(self.cuts, np.int64), thumb=np.zeros((0, 0), np.float32) if self.thumb is None else self.thumb,
                meta=np.asarray([self.first, self.last, t.max_lost, t.lost, t.reseeds, t.track_id, VERSION], np.int64),
                trk_last=_box_or_nan(t.last), trk_prev=_box_or_nan(t.prev),
            )  # fmt: skip

    @classmethod
    def load(cls, path: Path, first: int, max_lost: int) -> Scan | None:
        """The saved scan when it began at `first` with the same tracker setting; None otherwise or unreadable."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = [int(v) for v in z["meta"]]
                if meta[6] != VERSION or meta[0] != first or meta[2] != max_lost:
                    return None
                tracker = Tracker(max_lost)
                tracker.lost, tracker.reseeds, tracker.track_id = meta[3], meta[4], meta[5]
                tracker.last, tracker.prev = _none_or_box(z["trk_last"]), _none_or_box(z["trk_prev"])
                results = {}
                for j, i in enumerate(z["idx"]):
                    box = z["box"][j]
                    found = bool(np.isfinite(box[:4]).all())
                    box = box[:4] if np.isnan(box[4]) else box  # rtmw's 4-value boxes; wan's keep their score
                    results[int(i)] = (box.copy() if found else None, z["kpts"][j].copy() if found else None,
                                       z["scores"][j].copy() if found else None, int(z["n_cand"][j]), int(z["epoch"][j]))  # fmt: skip
                thumb = z["thumb"].copy() if z["thumb"].size else None
                return cls(meta[0], meta[1], tracker, results, [int(c) for c in z["cuts"]], thumb)
        except (OSError, ValueError, KeyError, IndexError):
            return None


def _box5(box) -> np.ndarray:
    """A result's box as 5 values: xyxy and the detector's score (NaN when the box has none)."""
    b = np.asarray(box, np.float64)
    return b if len(b) == 5 else np.append(b[:4], np.nan)


def _box_or_nan(box: np.ndarray | None) -> np.ndarray:
    return np.full(4, np.nan) if box is None else np.asarray(box, np.float64)


def _none_or_box(arr: np.ndarray) -> np.ndarray | None:
    return None if not np.isfinite(arr).all() else np.asarray(arr, np.float64).copy()
