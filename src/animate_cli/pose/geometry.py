"""Where pose frames come from in space: the person fit and the centre-crop fit.

(Time is media.timeline's: output frame k shows the source frame nearest to start + k / fps by presentation
timestamps, which is Wan's index map on constant-rate input; docs/pose-facts.md, "Frame timing".)

Space: the pose is drawn at the source resolution, as Wan does, and then placed on the output canvas:
by default (`person_fit`) scaled and moved so the driving person's extent over the whole clip stays
inside the canvas (animate_cli.media.canvas.person_placement); `center_crop_fit` is the blind centre crop of
`media.center_crop_resize` (DiffSynth's crop_and_resize), kept as the "crop" setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animate_cli.media.canvas import Placement, person_extent, person_placement


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


@dataclass(frozen=True)
class PlacedFit:
    """Any scale + offset onto the canvas (areas outside the source come out black)."""

    src_w: int
    src_h: int
    place: Placement
    extent: tuple[float, float, float, float] | None  # the person's box over the clip, source pixels

    @property
    def width(self) -> int:
        return self.place.width

    @property
    def height(self) -> int:
        return self.place.height

    def points(self, xy: np.ndarray) -> np.ndarray:
        return self.place.points(xy)

    def apply(self, img: np.ndarray, interpolation: str = "linear") -> np.ndarray:
        import cv2

        interp = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}[interpolation]
        return cv2.warpAffine(img, self.place.matrix(), (self.width, self.height), flags=interp,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # fmt: skip

    def to_dict(self) -> dict:
        return {"rule": "scaled and placed so the driving person's keypoint extent over the whole clip (+5% of its larger side) stays "
                        "inside the canvas; centre-crop zoom when it fits, never smaller than letterbox",
                "source_size": [self.src_w, self.src_h],
                "person_extent_xyxy": None if self.extent is None else [round(v, 2) for v in self.extent],
                **self.place.to_dict()}  # fmt: skip


def person_fit(src_w: int, src_h: int, width: int, height: int, points: np.ndarray) -> PlacedFit:
    """The default pose fit: `points` (N, 2) are every drawn keypoint of the clip (NaN rows ignored)."""
    extent = person_extent(points)
    return PlacedFit(src_w, src_h, person_placement(src_w, src_h, width, height, extent), extent)
