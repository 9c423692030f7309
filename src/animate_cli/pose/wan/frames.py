"""What Wan's official pipeline draws and crops, per output frame, from the raw 133-point keypoints.

No smoothing, no interpolation, no black frames: each frame is its own (Wan's load_pose_metas_from_kp2ds_seq),
except that a frame whose body decodes entirely off-frame (every body point with a negative x or y: the
pose model saw nobody) reuses the previous frame's body (hands and face stay its own). The face box comes
from all 68 landmarks by Wan's rule, unsmoothed; the skeleton is drawn at the source size and letterboxed
onto the output canvas (padding_resize), whose size follows our own canvas rule.

Arrays per output frame: kpts (T, 133, 2), scores (T, 133) as the estimator returned them (float32 values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animate_cli.pose.render import WanMeta, draw_wan_pose
from animate_cli.pose.wan import decode as D


@dataclass
class WanFrames:
    """Per output frame: Wan's normalised parts after the body-reuse rule, and the face box."""

    width: int  # source frame size: the drawing canvas and the normalisation
    height: int
    parts: list[dict[str, np.ndarray]]
    face_boxes: list[tuple[int, int, int, int] | None]  # (x1, y1, x2, y2) as Wan computes it (see wan.decode.face_box)
    reused: np.ndarray  # (T,) bool: the body is the previous frame's

    def meta(self, k: int) -> WanMeta:
        """Frame k in source pixels, denormalised as Wan's AAPoseMeta.from_humanapi_meta does (float64 of the
        float32 normalised values times the frame size, so int truncation in the renderer matches)."""
        p = self.parts[k]
        px = lambda a: a[:, :2] * (self.width, self.height)  # noqa: E731
        face = p["face"][1:]
        return WanMeta(px(p["body"]), p["body"][:, 2], px(p["lhand"]), p["lhand"][:, 2], px(p["rhand"]),
                       p["rhand"][:, 2], px(face), face[:, 2])  # fmt: skip

    def pose_frame(self, k: int, fit: LetterboxFit) -> np.ndarray:
        canvas = np.zeros((self.height, self.width, 3), np.uint8)
        draw_wan_pose(canvas, self.meta(k), D.KPT_THR, D.KPT_THR)
        return fit.apply(canvas)

    def face_frame(self, k: int, frame: np.ndarray) -> np.ndarray:
        return D.face_crop(frame, self.face_boxes[k])

    def body20(self) -> np.ndarray:
        """(T, 20, 3) [x/W, y/H, score] after the reuse rule."""
        return np.stack([p["body"] for p in self.parts])


def wan_frames(kpts: np.ndarray, scores: np.ndarray, width: int, height: int) -> WanFrames:
    """Build WanFrames from per-output-frame keypoints (module docstring). Before any frame has a body,
    a missing one stays as decoded (its scores are <= 0, so nothing is drawn; Wan's own code would stop)."""
    parts, faces, reused = [], [], []
    last = None
    for k in range(len(kpts)):
        kp2d = np.concatenate([kpts[k].astype(np.float32), scores[k].astype(np.float32)[:, None]], axis=1)
        p = D.normalised_parts(kp2d, width, height)
        gone = D.body_missing(p["body"])
        if gone and last is not None:
            p["body"] = last
        reused.append(gone and last is not None)
        last = p["body"]
        parts.append(p)
        faces.append(D.face_box(p["face"], width, height))
    return WanFrames(width, height, parts, faces, np.array(reused, bool))


@dataclass(frozen=True)
class LetterboxFit:
    """Wan's padding_resize of a source-size image onto the output canvas: aspect kept, centred, black bars."""

    src_w: int
    src_h: int
    width: int
    height: int

    def _scale_pad(self) -> tuple[float, float, float]:
        if (self.src_h / self.src_w) > (self.height / self.width):
            nw = int(self.height / self.src_h * self.src_w)
            return nw / self.src_w, int((self.width - nw) / 2), 0
        nh = int(self.width / self.src_w * self.src_h)
        return nh / self.src_h, 0, int((self.height - nh) / 2)

    def apply(self, img: np.ndarray, interpolation: str = "linear") -> np.ndarray:
        return D.letterbox(img, self.height, self.width)

    def points(self, xy: np.ndarray) -> np.ndarray:
        """Source pixels -> output pixels (for the debug overlay; pixel-centre convention)."""
        s, px, py = self._scale_pad()
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] + 0.5) * s - 0.5 + px
        out[..., 1] = (out[..., 1] + 0.5) * s - 0.5 + py
        return out

    def to_dict(self) -> dict:
        s, px, py = self._scale_pad()
        return {"rule": "letterbox: drawn at the source size, then Wan's padding_resize (aspect kept, centred, black bars, "
                        "INTER_LINEAR)", "source_size": [self.src_w, self.src_h], "scale": round(s, 6),
                "pad_xy": [px, py], "output_size": [self.width, self.height]}  # fmt: skip
