"""The face step: Wan's face box around the face landmarks, and the 512x512 crop the face encoder sees
(docs/pose-facts.md, "Face box"). `--pose-model wan` uses Wan's own arithmetic (wan/decode.face_box);
`--pose-model rtmw` builds the same box from the confident landmarks of each frame and may smooth it.

Arrays per output frame: kpts (T, 133, 2), scores (T, 133), status (T,) keypoints.EMPTY / DETECTED /
INTERPOLATED; boxes (T, 4) float (x1, y1, x2, y2) in source pixels, NaN = no face.
"""

from __future__ import annotations

import numpy as np

from animate_cli.pose.keypoints import EMPTY, segment_starts, zero_phase_one_euro

FACE68 = slice(23, 91)  # Wan's slice 22..90 minus its first point (the right heel)
FACE_SIZE = 512  # the face encoder's input, a square
FACE_AREA_SCALE = 1.3  # Wan's get_face_bboxes(scale=1.3)
MIN_FACE_POINTS = 20  # of 68 landmarks, for a face box: fewer give unstable boxes
FACE_BOX_FILTER = dict(min_cutoff=1.0, beta=0.3, d_cutoff=1.0)  # One-Euro (Hz) on (cx, cy, log w, log h)


def face_box_float(face_xy: np.ndarray, scale: float = FACE_AREA_SCALE) -> np.ndarray | None:
    """Wan's face box before clipping, as (x1, y1, x2, y2) floats, from (N, 2) landmark pixels:
    the area grows x1.3 at the landmarks' aspect and the extra height goes 3:1 above:below (forehead room).
    None for a degenerate box (a landmark span under 2 px; Wan would divide by zero)."""
    xy = np.asarray(face_xy, dtype=np.float64)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) == 0:
        return None
    min_x, min_y = xy.min(axis=0)
    max_x, max_y = xy.max(axis=0)
    w0, h0 = max_x - min_x, max_y - min_y
    if w0 < 2 or h0 < 2:
        return None
    area = w0 * h0 * scale
    w1, h1 = np.sqrt(area * (w0 / h0)), np.sqrt(area * (h0 / w0))
    dx, dy = (w1 - w0) / 2, (h1 - h0) / 4
    return np.array([min_x - dx, min_y - 3 * dy, max_x + dx, max_y + dy])


def clip_box(box: np.ndarray | None, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Clip to the frame and int-truncate, as Wan does; None if nothing usable is left."""
    if box is None or not np.isfinite(box).all():
        return None
    x1, y1 = int(max(box[0], 0)), int(max(box[1], 0))
    x2, y2 = int(min(box[2], width)), int(min(box[3], height))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return x1, y1, x2, y2


def wan_face_box(
    face_xy: np.ndarray, width: int, height: int, scale: float = FACE_AREA_SCALE
) -> tuple[int, int, int, int] | None:
    """Wan's `get_face_bboxes`: (x1, y1, x2, y2) ints clipped to the frame, or None (degenerate)."""
    return clip_box(face_box_float(face_xy, scale), width, height)


def crop_face(frame: np.ndarray, box: tuple[int, int, int, int] | None, size: int = FACE_SIZE) -> np.ndarray:
    """(size, size, 3) uint8: the box stretched to a square (INTER_LINEAR, aspect not kept, as Wan);
    all black without a box (black is Wan's unconditional face)."""
    import cv2

    if box is None:
        return np.zeros((size, size, 3), np.uint8)
    x1, y1, x2, y2 = box
    return cv2.resize(np.ascontiguousarray(frame[y1:y2, x1:x2]), (size, size), interpolation=cv2.INTER_LINEAR)


def face_boxes(kpts: np.ndarray, scores: np.ndarray, status: np.ndarray, thr_face: float) -> np.ndarray:
    """(T, 4) unclipped float face boxes from the confident landmarks (>= MIN_FACE_POINTS of 68); NaN = no face."""
    boxes = np.full((len(kpts), 4), np.nan)
    for t in np.flatnonzero(status != EMPTY):
        ok = (scores[t, FACE68] >= thr_face) & np.isfinite(kpts[t, FACE68]).all(axis=1)
        if ok.sum() >= MIN_FACE_POINTS:
            box = face_box_float(kpts[t, FACE68][ok])
            if box is not None:
                boxes[t] = box
    return boxes


def smooth_face_boxes(boxes: np.ndarray, fps: float, segment: np.ndarray | None = None) -> np.ndarray:
    """Zero-phase One-Euro on (cx, cy, log w, log h), scale-free via the median box size; removes the zoom
    flicker a per-frame box shows after the 512x512 resize."""
    ok = np.isfinite(boxes).all(axis=1)
    if not ok.any():
        return boxes
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    size = float(np.median(np.sqrt(w[ok] * h[ok])))
    sig = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 / size, (boxes[:, 1] + boxes[:, 3]) / 2 / size,
                    np.log(np.maximum(w, 1e-6)), np.log(np.maximum(h, 1e-6))], axis=1)  # fmt: skip
    sig = np.nan_to_num(sig)
    sm = zero_phase_one_euro(sig, np.repeat(ok[:, None], 4, axis=1), fps, starts=segment_starts(segment, len(boxes)),
                             **FACE_BOX_FILTER)  # fmt: skip
    cx, cy, ws, hs = sm[:, 0] * size, sm[:, 1] * size, np.exp(sm[:, 2]), np.exp(sm[:, 3])
    out = np.stack([cx - ws / 2, cy - hs / 2, cx + ws / 2, cy + hs / 2], axis=1)
    out[~ok] = np.nan
    return out
