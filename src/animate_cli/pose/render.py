"""Wan2.2-Animate's pose renderer, reproduced pixel for pixel (docs/pose-facts.md, "Renderer").

The DiT was trained on skeletons drawn by Wan's `draw_aapose_by_meta_new` (stickwidth 'v2'); any
difference in colour, width or draw order is a distribution shift the model never saw. So this
module follows that code exactly: dimmed ellipse-polygon limbs, then full-colour joints, then the
left hand, then the right hand, all with OpenCV's default 8-connected primitives on an RGB canvas.

Coordinates are pixels of the canvas being drawn on. Arrays: body (20, 2) + body_score (20,),
hands (21, 2) + (21,) each, face (68, 2) + (68,).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from animate_cli.pose.face import FACE68

# Wan idx -> COCO-WholeBody-133 pair averaged for it (docs/pose-facts.md, "Keypoint layout"). Neck = mid-shoulders;
# toes = big+small toe.
BODY_FROM_COCO_A = (0, 6, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 17, 20)
BODY_FROM_COCO_B = (0, 5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 18, 21)
LHAND = slice(91, 112)
RHAND = slice(112, 133)

# 19 limbs in Wan's draw order, as (a, b) Wan body indices (Wan's table is 1-based).
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (13, 18), (10, 19))  # fmt: skip
# Limb i uses COLORS[i] (zip by position: the left foot gets #17, the right foot #18); joint j uses COLORS[j].
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85), (200, 200, 0), (100, 100, 0))  # fmt: skip
LIMB_DIM = 0.6
HAND_EDGES = tuple((0 if j % 4 == 0 else f * 4 + j % 4, f * 4 + j % 4 + 1) for f in range(5) for j in range(4))
# matplotlib.colors.hsv_to_rgb(i/20, 1, 1) * 255 as floats: cv2 rounds them exactly as it did for Wan.
HAND_COLORS = tuple(tuple(c * 255.0 for c in colorsys.hsv_to_rgb(i / 20.0, 1.0, 1.0)) for i in range(20))
HAND_JOINT_COLOR = (0, 0, 255)  # blue on an RGB canvas
HAND_EPS = 0.01  # Wan draws a hand point only when its int-truncated x and y are > 0.01


@dataclass
class WanMeta:
    """One person in Wan's layout, pixel coordinates of the canvas it will be drawn on."""

    body: np.ndarray  # (20, 2)
    body_score: np.ndarray  # (20,)
    lhand: np.ndarray  # (21, 2)
    lhand_score: np.ndarray  # (21,)
    rhand: np.ndarray  # (21, 2)
    rhand_score: np.ndarray  # (21,)
    face: np.ndarray  # (68, 2)
    face_score: np.ndarray  # (68,)

    def mapped(self, fn) -> WanMeta:
        """The same meta with every point array passed through fn ((N, 2) -> (N, 2))."""
        return WanMeta(fn(self.body), self.body_score, fn(self.lhand), self.lhand_score, fn(self.rhand),
                       self.rhand_score, fn(self.face), self.face_score)  # fmt: skip


def to_wan_meta(kpts: np.ndarray, scores: np.ndarray) -> WanMeta:
    """COCO-WholeBody-133 (133, 2) + (133,) -> Wan meta, following `split_kp2ds_for_aa` (docs/pose-facts.md).

    Neck and toes are the mean of two points, scores included (Wan's neck score is the mean, not the min).
    """
    kpts = np.asarray(kpts, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    a, b = list(BODY_FROM_COCO_A), list(BODY_FROM_COCO_B)
    return WanMeta(
        body=(kpts[a] + kpts[b]) / 2, body_score=(scores[a] + scores[b]) / 2,
        lhand=kpts[LHAND].copy(), lhand_score=scores[LHAND].copy(),
        rhand=kpts[RHAND].copy(), rhand_score=scores[RHAND].copy(),
        face=kpts[FACE68].copy(), face_score=scores[FACE68].copy(),
    )  # fmt: skip


def stick_widths(height: int, width: int) -> tuple[int, int]:
    """Wan 'v2' body half-width sw and hand line width hw for a canvas: 480p -> (1, 1), 720p -> (2, 1), 1080p -> (4, 2)."""
    sw = max(int(min(height, width) / 200) - 1, 1)
    return sw, max(sw // 2, 1)


def draw_wan_pose(canvas: np.ndarray, meta: WanMeta, thr_body: float = 0.5, thr_hand: float = 0.5,
                  sw: int | None = None, hw: int | None = None) -> np.ndarray:  # fmt: skip
    """Draw one person onto an HxWx3 uint8 RGB canvas in place (and return it), exactly as Wan does."""
    import cv2

    h, w = canvas.shape[:2]
    dsw, dhw = stick_widths(h, w)
    sw = dsw if sw is None else sw
    hw = dhw if hw is None else hw
    body, score = meta.body, meta.body_score
    for (i, j), color in zip(LIMBS, COLORS, strict=False):
        if score[i] < thr_body or score[j] < thr_body:
            continue
        # Wan names x "Y" and y "X": the ellipse centre is the int-truncated midpoint, the half-length is
        # int(length / 2) and the angle int(degrees(atan2(dy, dx))), sampled every 1 degree.
        (x1, y1), (x2, y2) = body[i], body[j]
        length = ((y1 - y2) ** 2 + (x1 - x2) ** 2) ** 0.5  # Wan's expression (not hypot), same last bit
        angle = math.degrees(math.atan2(y1 - y2, x1 - x2))
        poly = cv2.ellipse2Poly((int((x1 + x2) / 2), int((y1 + y2) / 2)), (int(length / 2), sw), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, [int(float(c) * LIMB_DIM) for c in color])
    for j, color in enumerate(COLORS):
        if score[j] < thr_body:
            continue
        cv2.circle(canvas, (int(body[j, 0]), int(body[j, 1])), sw, color, thickness=-1)
    for pts, sc in ((meta.lhand, meta.lhand_score), (meta.rhand, meta.rhand_score)):
        _draw_hand(canvas, pts, sc, thr_hand, hw)
    return canvas


def _draw_hand(canvas: np.ndarray, pts: np.ndarray, sc: np.ndarray, thr: float, hw: int) -> None:
    import cv2

    for (a, b), color in zip(HAND_EDGES, HAND_COLORS, strict=True):
        if sc[a] < thr or sc[b] < thr:
            continue
        x1, y1, x2, y2 = int(pts[a, 0]), int(pts[a, 1]), int(pts[b, 0]), int(pts[b, 1])
        if x1 > HAND_EPS and y1 > HAND_EPS and x2 > HAND_EPS and y2 > HAND_EPS:
            cv2.line(canvas, (x1, y1), (x2, y2), color, thickness=hw)
    for (x, y), s in zip(pts, sc, strict=True):
        if s < thr:
            continue
        x, y = int(x), int(y)
        if x > HAND_EPS and y > HAND_EPS:
            cv2.circle(canvas, (x, y), hw, HAND_JOINT_COLOR, thickness=-1)


def draw_overlay(frame: np.ndarray, pose: np.ndarray, face_box_xyxy: np.ndarray | None) -> np.ndarray:
    """Debug view: the source frame (already fitted) darkened, the pose pixels on top, the face box in white."""
    import cv2

    out = (frame.astype(np.uint16) * 3 // 5).astype(np.uint8)
    mask = pose.max(axis=2) > 0
    out[mask] = pose[mask]
    if face_box_xyxy is not None and np.isfinite(face_box_xyxy).all():
        x1, y1, x2, y2 = (int(round(v)) for v in face_box_xyxy)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 255), 1)
    return out
