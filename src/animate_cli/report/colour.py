"""Pure numpy colour and structure measures on small frames: sRGB -> CIELAB, per-frame colour statistics,
and SSIM's contrast-structure term. Frames are HxWx3 uint8 RGB; nothing here holds more than two frames.
"""

from __future__ import annotations

import numpy as np

from animate_cli.report import settings as S

# sRGB (D65) -> linear light, once for all 256 code values.
_C = np.arange(256) / 255.0
SRGB_TO_LINEAR = np.where(_C <= 0.04045, _C / 12.92, ((_C + 0.055) / 1.055) ** 2.4).astype(np.float32)
# linear sRGB -> XYZ (IEC 61966-2-1), each row divided by the D65 white so white maps to (1, 1, 1).
_M = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
RGB_TO_XYZN = (_M / np.array([0.95047, 1.0, 1.08883])[:, None]).astype(np.float32)
_EPS = (6 / 29) ** 3


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 sRGB -> [..., 3] float32 CIELAB (D65): L* in 0..100, a*/b* roughly -100..100."""
    xyz = SRGB_TO_LINEAR[rgb] @ RGB_TO_XYZN.T
    f = np.where(xyz > _EPS, np.cbrt(np.maximum(xyz, _EPS)), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_stats(lab: np.ndarray) -> np.ndarray:
    """(6,) float64: mean L*, a*, b* and their standard deviations over the frame."""
    flat = lab.reshape(-1, 3).astype(np.float64)
    return np.concatenate([flat.mean(axis=0), flat.std(axis=0)])


def _box_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over every k x k window that fits (valid region), by summed-area table."""
    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def structure_change(a: np.ndarray, b: np.ndarray) -> float:
    """1 - mean SSIM contrast-structure term of two L* images (H, W): 0 for the same texture, towards 1 as
    edges move or appear. The luminance term is left out on purpose: brightness has its own figure."""
    k = min(S.SSIM_WINDOW, *a.shape)
    a, b = a.astype(np.float64), b.astype(np.float64)
    ma, mb = _box_mean(a, k), _box_mean(b, k)
    va = np.maximum(_box_mean(a * a, k) - ma * ma, 0)
    vb = np.maximum(_box_mean(b * b, k) - mb * mb, 0)
    cov = _box_mean(a * b, k) - ma * mb
    cs = (2 * cov + S.SSIM_C2) / (va + vb + S.SSIM_C2)
    return float(1.0 - cs.mean())


def pair_changes(prev_stats: np.ndarray, stats: np.ndarray, prev_l: np.ndarray, l_now: np.ndarray) -> tuple[float, float, float]:
    """(luminance, colour, structure) change between two consecutive frames (see settings.SEAM_FEATURES)."""
    d_l = abs(stats[0] - prev_stats[0])
    d_c = float(np.hypot(stats[1] - prev_stats[1], stats[2] - prev_stats[2]))
    return float(d_l), d_c, structure_change(prev_l, l_now)


def delta_e(lab1, lab2) -> float:
    """CIE76 ΔE between two mean colours (L*, a*, b*)."""
    return float(np.linalg.norm(np.asarray(lab1, np.float64)[:3] - np.asarray(lab2, np.float64)[:3]))
