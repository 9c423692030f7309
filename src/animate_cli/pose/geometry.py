"""Where pose frames come from in time and space: the fps index map and the centre-crop fit.

Time (pose spec §1.6, Wan's nearest-timestamp rule for constant-frame-rate input):
    n_out = floor(n_in * fps_out / fps_in);  src(k) = min(round(k * fps_in / fps_out), n_in - 1)
The map is monotonic, so both decode passes can stream the source once and emit each source frame
as many times as it is used (0, 1 or more).

Space: `run` fits the reference image and every driving frame with `media.center_crop_resize`
(centre-crop to the target aspect, then resize). The pose is drawn at the source resolution, as Wan
does, and then fitted with the same crop box, so the skeleton lines up with what `run` feeds the DiT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def output_frame_count(n_in: int, fps_in: float, fps_out: float) -> int:
    """Wan's n_out = int(n_in / fps_in * fps_out); at least one frame when the source has any."""
    if n_in <= 0:
        return 0
    return max(1, int(n_in / fps_in * fps_out + 1e-9))


def source_index(k: int, n_in: int | None, fps_in: float, fps_out: float) -> int:
    """Source frame shown at output frame k (nearest timestamp, clipped to the last frame)."""
    i = int(np.round(k / fps_out * fps_in))  # the same float expression and half-to-even rounding as Wan
    return i if n_in is None else min(i, n_in - 1)


def frame_index_map(n_in: int, fps_in: float, fps_out: float) -> np.ndarray:
    """(n_out,) int64 source index for each output frame."""
    n_out = output_frame_count(n_in, fps_in, fps_out)
    return np.array([source_index(k, n_in, fps_in, fps_out) for k in range(n_out)], dtype=np.int64)


@dataclass(frozen=True)
class Fit:
    """Centre-crop box (x0, y0, cw, ch) in source pixels, and the output size it is resized to."""

    src_w: int
    src_h: int
    x0: int
    y0: int
    cw: int
    ch: int
    width: int
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        return self.width / self.cw, self.height / self.ch

    def points(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) source pixel coordinates to output pixel coordinates (pixel-centre convention)."""
        sx, sy = self.scale
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] - self.x0 + 0.5) * sx - 0.5
        out[..., 1] = (out[..., 1] - self.y0 + 0.5) * sy - 0.5
        return out

    def apply(self, img: np.ndarray, interpolation: str = "linear") -> np.ndarray:
        """Crop and resize an HxWx3 image. Pose frames use INTER_LINEAR, as Wan's padding_resize does."""
        import cv2

        crop = img[self.y0 : self.y0 + self.ch, self.x0 : self.x0 + self.cw]
        if (self.cw, self.ch) == (self.width, self.height):
            return np.ascontiguousarray(crop)
        interp = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}[interpolation]
        return cv2.resize(crop, (self.width, self.height), interpolation=interp)

    def to_dict(self) -> dict:
        return {"rule": "center-crop to the target aspect, then resize (media.center_crop_resize)",
                "source_size": [self.src_w, self.src_h], "crop_xywh": [self.x0, self.y0, self.cw, self.ch],
                "scale": [round(s, 6) for s in self.scale], "output_size": [self.width, self.height],
                "point_map": "x' = (x - x0 + 0.5) * sx - 0.5, y' = (y - y0 + 0.5) * sy - 0.5"}  # fmt: skip


def center_crop_fit(src_w: int, src_h: int, width: int, height: int) -> Fit:
    """The crop box `media.center_crop_resize` uses (same arithmetic; a test keeps them equal)."""
    if (src_w, src_h) == (width, height):
        return Fit(src_w, src_h, 0, 0, src_w, src_h, width, height)
    scale = max(width / src_w, height / src_h)
    cw, ch = round(width / scale), round(height / scale)
    return Fit(src_w, src_h, (src_w - cw) // 2, (src_h - ch) // 2, cw, ch, width, height)
