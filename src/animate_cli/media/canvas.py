"""The output canvas and how pictures land on it. Pure numpy arithmetic on sizes and boxes (no torch, no cv2,
no PIL): `media.fit_image` and `pose.geometry.Fit` do the pixel work with what this module decides.

* `choose_canvas`: the output size. Wan2.2-Animate / EverAnimate were trained on native aspect ratios at about
  400k pixels (multiples of 16), so by default the canvas follows the reference image: the multiple-of-16 size
  closest to its aspect with about the preset's pixel count (480p: 832x480 = 399,360 px; 720p: 1280x720).
  An explicit --size wins; then the reference is fitted with --fit (default pad, see FIT_DEFAULT).
* `image_placement`: crop / pad / stretch a WxH picture onto the canvas (the reference and its extra views).
* `person_placement`: scale and place the driving video on the canvas so the driving person's extent over
  the whole clip stays inside it (a blind centre crop cuts off a person who is off-centre or tall).

A `Placement` maps continuous image coordinates u (pixel i covers [i, i+1)) by u' = s * u + o per axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MULTIPLE = 16  # VAE stride 8 x DiT patch 2
# Aspect ratios beyond 3:1 (or 1:3) are clamped: far outside what the model saw in training, and a canvas
# following a 1600x48 strip would be ~3650x112. The reference is then fitted to the clamped canvas with --fit.
MAX_ASPECT = 3.0
AREA_WEIGHT = 0.5  # size choice: |log aspect error| + 0.5 |log area ratio| -> aspect first, pixel budget close
# When the canvas comes from the reference itself, the leftover aspect difference (< ~2% after rounding to
# multiples of 16) is absorbed by a stretch: invisible, and no bars or cropped pixels.
SAME_ASPECT_TOLERANCE = 0.02
FITS = ("pad", "crop", "stretch")
# pad keeps the whole reference undistorted: the reference is the identity, and cropping can cut off the
# head or feet while stretching changes body proportions the model then reproduces. Wan's own preprocessing
# pads too (padding_resize, black bars).
FIT_DEFAULT = "pad"
PERSON_MARGIN = 0.05  # room kept around the driving person's keypoint extent, as a share of its larger side


@dataclass(frozen=True)
class Canvas:
    width: int
    height: int
    fit: str  # how the reference goes onto it: pad | crop | stretch
    rule: str  # one line for the plan: where the size came from

    def to_dict(self) -> dict:
        return {"size": [self.width, self.height], "reference_fit": self.fit, "rule": self.rule,
                "pose_fit": "scaled and placed by the driving person's extent over the whole clip"}  # fmt: skip


def canvas_size(ref_w: int, ref_h: int, preset: tuple[int, int]) -> tuple[int, int]:
    """(W, H), multiples of 16, closest to the reference aspect (clamped to MAX_ASPECT) at about preset W*H px."""
    area = preset[0] * preset[1]
    aspect = min(max(ref_w / ref_h, 1 / MAX_ASPECT), MAX_ASPECT)
    best, best_key = None, None
    h_ideal = math.sqrt(area / aspect)
    for h in range(max(MULTIPLE, int(h_ideal * 0.7) // MULTIPLE * MULTIPLE), int(h_ideal * 1.3) + 2 * MULTIPLE, MULTIPLE):
        w = max(MULTIPLE, round(aspect * h / MULTIPLE) * MULTIPLE)
        key = abs(math.log(w / h / aspect)) + AREA_WEIGHT * abs(math.log(w * h / area))
        if best_key is None or key < best_key - 1e-12:
            best, best_key = (w, h), key
    return best


def choose_canvas(ref_w: int, ref_h: int, preset: tuple[int, int], preset_name: str, size: tuple[int, int] | None,
                  fit: str | None) -> Canvas:  # fmt: skip
    """The run's canvas: --size if given, else from the reference (see the module docstring)."""
    if fit is not None and fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    ref_aspect = ref_w / ref_h
    if size is not None:
        w, h = size
        same = abs(math.log(w / h / ref_aspect)) <= SAME_ASPECT_TOLERANCE
        chosen = fit or ("stretch" if same else FIT_DEFAULT)
        why = "same aspect as the reference" if same and fit is None else f"--fit {chosen}" if fit else f"default fit {chosen}"
        return Canvas(w, h, chosen, f"--size {w}x{h} ({why}; reference {ref_w}x{ref_h})")
    w, h = canvas_size(ref_w, ref_h, preset)
    clamped = not (1 / MAX_ASPECT <= ref_aspect <= MAX_ASPECT)
    if clamped:
        chosen = fit or FIT_DEFAULT
        rule = (f"{preset_name} pixel budget at the {MAX_ASPECT:g}:1 aspect limit (reference {ref_w}x{ref_h} is "
                f"{max(ref_aspect, 1 / ref_aspect):.1f}:1; fit {chosen})")  # fmt: skip
    else:
        chosen = fit or "stretch"
        rule = f"{preset_name} pixel budget ({preset[0]}x{preset[1]}) at the reference's aspect ({ref_w}x{ref_h})"
    return Canvas(w, h, chosen, rule)


@dataclass(frozen=True)
class Placement:
    """u' = s * u + o per axis, continuous coordinates; the canvas is width x height."""

    sx: float
    sy: float
    ox: float
    oy: float
    width: int
    height: int

    def points(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) pixel-index coordinates (pixel centres at integers) -> canvas pixel-index coordinates."""
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] + 0.5) * self.sx + self.ox - 0.5
        out[..., 1] = (out[..., 1] + 0.5) * self.sy + self.oy - 0.5
        return out

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix in pixel-index coordinates (what cv2.warpAffine takes)."""
        return np.array([[self.sx, 0.0, 0.5 * self.sx + self.ox - 0.5], [0.0, self.sy, 0.5 * self.sy + self.oy - 0.5]])

    def to_dict(self) -> dict:
        return {"scale": [round(self.sx, 6), round(self.sy, 6)], "offset": [round(self.ox, 3), round(self.oy, 3)],
                "output_size": [self.width, self.height],
                "point_map": "x' = (x + 0.5) * sx + ox - 0.5, y' = (y + 0.5) * sy + oy - 0.5"}  # fmt: skip


def image_placement(src_w: int, src_h: int, width: int, height: int, fit: str) -> Placement:
    """crop: cover the canvas, centred (the overflow is cut); pad: contain it, centred (bars);
    stretch: scale each axis to the canvas."""
    if fit == "stretch":
        return Placement(width / src_w, height / src_h, 0.0, 0.0, width, height)
    if fit not in ("crop", "pad"):
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    s = (max if fit == "crop" else min)(width / src_w, height / src_h)
    return Placement(s, s, (width - s * src_w) / 2, (height - s * src_h) / 2, width, height)


def pad_box(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of the picture inside the canvas for fit=pad, whole pixels, at least 1x1."""
    s = min(width / src_w, height / src_h)
    w, h = max(1, min(width, round(src_w * s))), max(1, min(height, round(src_h * s)))
    return (width - w) // 2, (height - h) // 2, w, h


def person_extent(points: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) continuous box around (N, 2) pixel-index points (NaN rows ignored); None if none."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return None
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0) + 1.0
    return float(x0), float(y0), float(x1), float(y1)


def person_placement(src_w: int, src_h: int, width: int, height: int,
                     extent: tuple[float, float, float, float] | None) -> Placement:  # fmt: skip
    """Scale and place a src_w x src_h video on the canvas so `extent` (the person over the whole clip, in
    source pixels) is inside it with PERSON_MARGIN around it.

    The scale starts from a centre crop's (fills the canvas, as before), shrinks as far as needed for the
    person to fit, but never below the letterbox scale (the whole frame visible); the placement moves the
    centre-crop window the least distance that brings the person inside. No extent -> centre crop."""
    s_cover = max(width / src_w, height / src_h)
    s_contain = min(width / src_w, height / src_h)
    if extent is None:
        return image_placement(src_w, src_h, width, height, "crop")
    x0, y0, x1, y1 = extent
    m = PERSON_MARGIN * max(x1 - x0, y1 - y0)  # strokes and the head above the eyes need room on every side
    # nothing is drawn outside the source frame: moving the window past its edge would only add black
    x0, y0, x1, y1 = max(x0 - m, 0.0), max(y0 - m, 0.0), min(x1 + m, float(src_w)), min(y1 + m, float(src_h))
    s_fit = min(width / max(x1 - x0, 1e-6), height / max(y1 - y0, 1e-6))
    s = max(min(s_cover, s_fit), s_contain)

    def place(lo: float, hi: float, src: int, out: int) -> float:
        o = (out - s * src) / 2  # centred, as a centre crop
        a, b = s * lo + o, s * hi + o
        if b - a > out:  # the person is larger than the canvas even at the letterbox scale: centre them
            return out / 2 - s * (lo + hi) / 2
        if a < 0:
            return o - a
        if b > out:
            return o - (b - out)
        return o

    return Placement(s, s, place(x0, x1, src_w, width), place(y0, y1, src_h, height), width, height)
