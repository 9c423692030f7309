"""`--seam-fix color`: ease each new chunk's colour toward the previous chunk's last frame over a few frames.

A chunk starts from the previous one's last latent, but the model may settle on a slightly different
colour balance; the join then shows a one-frame colour or brightness step. The correction is a per-RGB-
channel affine map (mean and contrast of the new chunk's first kept frame -> those of the previous chunk's
last frame), applied in full to the first kept frame and faded out linearly over SEAM_FIX_FRAMES frames,
so the step becomes a drift too slow to see. It is applied only when the step stands out from how much
the colour moved over the previous chunk's last frames: a clean join leaves the frames bit-identical.

    ease_colour(frame, source, target, weight) -> frame        the pure map (stats are (2, 3): mean, std)
    ColourEaser: the per-stream state (start(chunk) at each chunk, then one call per written frame)
    SeamFixWriter: wraps the run's segment writer so the frames pass through a ColourEaser on their way

It changes frames during generation, so it lives with the rollout; the report (report/scan.py) replays it on
a finished video to show which joins it would correct.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from animate_cli.rollout.context import FrameWriter

SEAM_FIX_FRAMES = 8  # a new chunk's colour is eased back to its own over 8 frames (0.32 s): each frame moves 1/8
SEAM_FIX_HISTORY = 8  # the previous chunk's last frames whose stats-changes say how much colour moves anyway
SEAM_FIX_MOTION_FACTOR = 3.0  # a join's colour change must exceed 3x the median recent change to be corrected
SEAM_FIX_FLOOR = 0.75  # ... and 0.75 grey levels: below that nothing is visible and a clean video stays bit-equal
SEAM_FIX_GAIN_LIMITS = (0.5, 2.0)  # contrast corrections beyond x0.5..x2 are content changes, not a colour seam
SEAM_FIX_STATS_PIXELS = 20_000  # frames are subsampled by striding to about this many pixels for their statistics


def channel_stats(frame: np.ndarray) -> np.ndarray:
    """(2, 3) float64: per-RGB-channel mean and standard deviation of a frame, on a strided subsample."""
    h, w = frame.shape[:2]
    step = max(1, int(np.sqrt(h * w / SEAM_FIX_STATS_PIXELS)))
    px = frame[::step, ::step].reshape(-1, 3).astype(np.float64)
    return np.stack([px.mean(axis=0), px.std(axis=0)])


def ease_colour(frame: np.ndarray, source: np.ndarray, target: np.ndarray, weight: float) -> np.ndarray:
    """uint8 HxWx3: `frame` moved `weight` (0..1) of the way from statistics `source` to `target` ((2, 3) each)."""
    if weight <= 0:
        return frame
    lo, hi = SEAM_FIX_GAIN_LIMITS
    gain = np.clip(target[1] / np.maximum(source[1], 1e-3), lo, hi)
    x = frame.astype(np.float32)
    mapped = (x - source[0].astype(np.float32)) * gain.astype(np.float32) + target[0].astype(np.float32)
    return np.clip(np.rint(x + np.float32(weight) * (mapped - x)), 0, 255).astype(np.uint8)


class ColourEaser:
    """One output stream. Call `start(chunk)` before a chunk's first kept frame, then `__call__` on each frame
    in order. `corrections` lists (chunk, step in grey levels) for every join it corrected."""

    def __init__(self, frames: int = SEAM_FIX_FRAMES):
        self.frames = frames
        self.recent: deque[np.ndarray] = deque(maxlen=SEAM_FIX_HISTORY + 1)  # stats of the last frames written
        self.chunk: int | None = None
        self.history: list[np.ndarray] = []  # the previous chunk's last stats, while a chunk is starting
        self.correction: tuple[np.ndarray, np.ndarray] | None = None
        self.k = 0
        self.corrections: list[tuple[int, float]] = []

    def seed(self, last_frame: np.ndarray, chunk: int) -> None:
        """A resumed run: `last_frame` is the last written frame of `chunk` (no history of motion before it)."""
        self.recent = deque([channel_stats(last_frame)], maxlen=SEAM_FIX_HISTORY + 1)
        self.chunk = chunk

    def start(self, chunk: int) -> None:
        follows = self.chunk is not None and chunk == self.chunk + 1
        self.history = list(self.recent) if follows else []  # a chunk re-decoded out of order: nothing to match
        self.recent.clear()
        self.chunk, self.correction, self.k = chunk, None, 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        stats = channel_stats(frame)
        if self.k == 0 and self.history:
            target = self.history[-1]
            step = float(np.abs(stats[0] - target[0]).max())
            means = np.array([h[0] for h in self.history])
            motion = float(np.median(np.abs(np.diff(means, axis=0)).max(axis=1))) if len(means) > 1 else 0.0
            if step > SEAM_FIX_MOTION_FACTOR * motion + SEAM_FIX_FLOOR:
                self.correction = (stats, target)
                self.corrections.append((self.chunk, round(step, 2)))
        if self.correction is not None and self.k < self.frames:
            frame = ease_colour(frame, *self.correction, 1.0 - self.k / self.frames)
            stats = channel_stats(frame)
        self.k += 1
        self.recent.append(stats)
        return frame


class SeamFixWriter:
    """The run's SegmentWriter with every frame passed through a ColourEaser first. With --side-by-side only
    the first `content_width` columns (the animation, not the pose panel) are corrected."""

    def __init__(self, inner: FrameWriter, easer: ColourEaser, content_width: int):
        self.inner, self.easer, self.content_width = inner, easer, content_width

    def open(self, path: Path, width: int, height: int, fps: float, chunk: int) -> None:
        self.inner.open(path, width, height, fps, chunk)
        self.easer.start(chunk)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[1] > self.content_width:
            frame = np.concatenate([self.easer(frame[:, : self.content_width]), frame[:, self.content_width :]], axis=1)
        else:
            frame = self.easer(frame)
        self.inner.write(frame)

    def __getattr__(self, name):  # close, wait, wait_s, abort: the inner writer's
        return getattr(self.inner, name)


def fixing_writer(writer: FrameWriter, content_width: int, last_frame: np.ndarray | None = None,
                  last_chunk: int = -1) -> SeamFixWriter:  # fmt: skip
    """`writer` behind a fresh ColourEaser; a resumed run passes the last frame written before it (of chunk `last_chunk`)."""
    easer = ColourEaser()
    if last_frame is not None:
        easer.seed(last_frame[:, :content_width], last_chunk)
    return SeamFixWriter(writer, easer, content_width)
