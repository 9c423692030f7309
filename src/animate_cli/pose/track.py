"""Follow one person through the clip (docs/pose-facts.md, "One person").

Wan keeps the largest box in every frame, so the skeleton jumps to whoever is biggest. We seed with
Wan's "largest" rule, then follow that person by IoU against a constant-velocity prediction of their
box; if they are lost we wait (frames become gaps) rather than jump to someone else, and re-seed only
after `max_lost` frames. Boxes are (4,) xyxy pixels; candidates (N, 4).

Every seed starts a new track (`track_id` counts them): the stage never interpolates or smooths across a
change of track, because a re-seed may well be a different person (the skeleton would glide across the
background from one to the other). `cut()` forgets the person at a hard cut in the footage.
"""

from __future__ import annotations

import numpy as np

IOU_ACCEPT = 0.3
STRICT_SIDE = 0.4  # Wan's strict mode: ignore boxes whose longer side is < 0.4x the largest longer side
MIN_BOX_PX = 32  # detections shorter than this are too small for a usable skeleton


def tall_enough(boxes: np.ndarray) -> np.ndarray:
    """The (N, 4) candidate boxes at least MIN_BOX_PX tall."""
    return boxes[(boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_PX] if len(boxes) else boxes


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box against (N, 4) boxes -> (N,)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def largest(boxes: np.ndarray) -> int:
    """Index of Wan's choice: the largest area among boxes not much shorter than the tallest/widest."""
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    areas = np.where(sides >= STRICT_SIDE * sides.max(), areas, -1.0)
    return int(np.argmax(areas))


class Tracker:
    """Call `update(candidates)` once per frame, in order; it returns the chosen box or None."""

    def __init__(self, max_lost: int):
        self.max_lost = max_lost
        self.last: np.ndarray | None = None
        self.prev: np.ndarray | None = None  # the box before `last`, for the velocity
        self.lost = 0
        self.reseeds = 0
        self.track_id = -1  # incremented at every seed; -1 until the first person is seen

    def cut(self) -> None:
        """A hard cut: whoever is seen next is a new track, with no velocity carried over."""
        self.last, self.prev, self.lost = None, None, 0

    def predict(self) -> np.ndarray | None:
        if self.last is None:
            return None
        if self.prev is None:
            return self.last
        return self.last + (self.last - self.prev) * (1 + self.lost)

    def update(self, boxes: np.ndarray) -> np.ndarray | None:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        pred = self.predict()
        if pred is not None and self.lost > self.max_lost:
            pred, self.last, self.prev = None, None, None  # lost for too long: forget them and re-seed
            self.reseeds += 1
        if len(boxes) == 0:
            self.lost += 1
            return None
        if pred is None:
            choice = largest(boxes)
            self.track_id += 1
        else:
            ious = iou(pred, boxes)
            ok = np.flatnonzero(ious >= IOU_ACCEPT)
            if len(ok) == 0:
                self.lost += 1
                return None
            # highest IoU; near-ties (within 1e-6) go to the candidate whose centre is closest to the prediction
            best = ok[ious[ok] >= ious[ok].max() - 1e-6]
            centre = lambda b: (b[..., :2] + b[..., 2:]) / 2  # noqa: E731
            choice = int(best[np.argmin(np.linalg.norm(centre(boxes[best]) - centre(pred), axis=1))])
        box = boxes[choice]
        self.prev = self.last if self.lost == 0 else None  # no velocity across a gap
        self.last = box
        self.lost = 0
        return box
