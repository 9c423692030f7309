"""Pass 1: the source frames of the span, in order -> one person's keypoints per frame, kept so that a longer
request continues where a shorter one stopped.

`scan_span` walks the source frames the span covers: a hard-cut test between every two consecutive frames,
and the pose model's person and keypoints (`model.PoseModel.seen`) on the frames the output uses. Everything it
carries from one frame to the next is in `Scan`: the per-frame results, the cuts, the last frame's thumbnail
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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animate_cli import media
from animate_cli.pose.track import Tracker

if TYPE_CHECKING:
    from animate_cli.pose.settings import PoseSettings
    from animate_cli.progress import Reporter

SCAN_FILE = "scan.npz"
VERSION = 2  # bump when what pass 1 computes per frame changes, so old scans are not continued
# Hard-cut detector on consecutive ~64 px grey thumbnails: a cut to another shot changes most of the
# picture at once, while a person moving, entering or leaving changes only the part they cover.
CUT_THUMB_W = 64
CUT_PIXEL_DIFF = 30.0  # a thumbnail pixel "changed" when its grey level moved by more than this (of 255)
CUT_CHANGED_FRACTION = 0.5  # a cut when more than this share of the thumbnail changed


@dataclass(frozen=True)
class Seen:
    """What pass 1 found in one source frame."""

    box: np.ndarray | None  # xyxy source pixels (+ the detector's score for wan); None: nobody tracked
    kpts: np.ndarray | None  # (133, 2) float32 source pixels
    scores: np.ndarray | None  # (133,) float32
    candidates: int  # person boxes the detector offered (wan: 1 when its choice is a real detection, else 0)
    epoch: int  # a new value at every tracker (re-)seed and every hard cut


@dataclass(frozen=True)
class Span:
    """The output frames one extraction covers, as source frames of the driving video."""

    driving: Path
    info: media.VideoInfo
    src: np.ndarray  # (n,) the source index each output frame shows (media.timeline)
    total: int  # output frames of the whole requested range (src may cover only its start)

    @property
    def complete(self) -> bool:
        return len(self.src) == self.total


@dataclass
class Scan:
    first: int  # source index of the span's first frame: where the scan began
    last: int  # last source index scanned (first - 1 before any)
    tracker: Tracker
    results: dict[int, Seen] = field(default_factory=dict)  # source index -> what pass 1 found there
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
                box=np.asarray([nan(5) if r.box is None else _box5(r.box) for r in rows], np.float64).reshape(-1, 5),
                kpts=np.asarray([nan((133, 2)) if r.kpts is None else r.kpts for r in rows], np.float32).reshape(-1, 133, 2),
                scores=np.asarray([np.zeros(133, np.float32) if r.scores is None else r.scores for r in rows], np.float32).reshape(-1, 133),
                n_cand=np.asarray([r.candidates for r in rows], np.int64), epoch=np.asarray([r.epoch for r in rows], np.int64),
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
                results = {int(i): _seen(z, j) for j, i in enumerate(z["idx"])}
                thumb = z["thumb"].copy() if z["thumb"].size else None
                return cls(meta[0], meta[1], tracker, results, [int(c) for c in z["cuts"]], thumb)
        except (OSError, ValueError, KeyError, IndexError):
            return None


def _seen(z, j: int) -> Seen:
    """Row j of a loaded scan.npz."""
    box = z["box"][j]
    found = bool(np.isfinite(box[:4]).all())
    box = box[:4] if np.isnan(box[4]) else box  # rtmw's 4-value boxes; wan's keep their score
    return Seen(box.copy() if found else None, z["kpts"][j].copy() if found else None,
                z["scores"][j].copy() if found else None, int(z["n_cand"][j]), int(z["epoch"][j]))  # fmt: skip


def _box5(box) -> np.ndarray:
    """A result's box as 5 values: xyxy and the detector's score (NaN when the box has none)."""
    b = np.asarray(box, np.float64)
    return b if len(b) == 5 else np.append(b[:4], np.nan)


def _box_or_nan(box: np.ndarray | None) -> np.ndarray:
    return np.full(4, np.nan) if box is None else np.asarray(box, np.float64)


def _none_or_box(arr: np.ndarray) -> np.ndarray | None:
    return None if not np.isfinite(arr).all() else np.asarray(arr, np.float64).copy()


def max_lost(info: media.VideoInfo, s: PoseSettings) -> int:
    """Frames the tracker waits for a lost person before re-seeding (max_gap_sec at the slower of the two rates)."""
    return max(1, round(s.max_gap_sec * min(info.fps, s.fps)))


def thumb(frame: np.ndarray) -> np.ndarray:
    """A ~64 px wide grey thumbnail (float32), by striding: enough to see a hard cut, cheap on 4K frames."""
    step = max(1, frame.shape[1] // CUT_THUMB_W)
    return frame[::step, ::step].mean(axis=2, dtype=np.float32)


def is_cut(before: np.ndarray | None, after: np.ndarray) -> bool:
    """The picture changed almost entirely between two consecutive thumbnails: a hard cut."""
    return before is not None and bool((np.abs(after - before) > CUT_PIXEL_DIFF).mean() > CUT_CHANGED_FRACTION)


def scan_span(span: Span, seen: Callable[[np.ndarray, Scan], Seen], scan: Scan, reporter: Reporter) -> Scan:
    """Pass 1 over source frames src[0]..src[-1], continuing `scan` where it stopped. `seen` (the pose
    model's) estimates only the frames the span uses and not estimated yet; progress counts exactly those."""
    todo = {int(i) for i in np.unique(span.src) if i > scan.last}
    if not todo:
        return scan  # every frame the span uses was estimated by an earlier request
    reporter.stage("pose", len(todo), "detecting poses")
    for i, frame in media.iter_source_frames(span.driving, scan.last + 1, int(span.src[-1])):
        small = thumb(frame)
        if is_cut(scan.thumb, small):
            scan.cuts.append(i)
            scan.tracker.cut()
        scan.thumb, scan.last = small, i
        if i in todo:
            scan.results[i] = seen(frame, scan)
            reporter.advance("pose")
    return scan
