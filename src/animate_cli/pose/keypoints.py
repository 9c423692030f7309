"""Whole-clip keypoint post-processing: thresholds, valid frames, short-gap interpolation and zero-phase
smoothing (docs/pose-facts.md: "Score scales and thresholds", "Gaps and smoothing").

All arrays are per output frame, in source pixel coordinates:
    kpts (T, 133, 2) float, scores (T, 133) float, status (T,) int8 (EMPTY / DETECTED / INTERPOLATED),
    segment (T,) int: a new value wherever the tracker re-seeded or the footage has a hard cut. Nothing
    here interpolates or smooths across a segment boundary: either side may show a different person.
The clip's keypoints are small (~1.6 MB per 1000 frames), so they are processed as whole arrays;
frames themselves are never held here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EMPTY, DETECTED, INTERPOLATED = 0, 1, 2
BODY17 = slice(0, 17)
TORSO = (5, 6, 11, 12)  # shoulders and hips: visible in almost every frame a person is in
MIN_BODY_POINTS = 4  # fewer confident COCO body points than this and the frame counts as "no person"
SMOOTHED = np.r_[0:23, 91:133]  # body + feet + hands; face landmarks only feed the (smoothed) face box
HAND_IDX = np.r_[91:133]

# One-Euro parameters (Hz), docs/pose-facts.md "Gaps and smoothing"; applied to coordinates divided by the person's scale.
BODY_FILTER = dict(min_cutoff=1.5, beta=0.5, d_cutoff=1.0)
HAND_FILTER = dict(min_cutoff=2.5, beta=1.0, d_cutoff=1.0)


@dataclass(frozen=True)
class Thresholds:
    body: float
    hand: float
    face: float
    rule: str

    def to_dict(self) -> dict:
        return {"body": round(self.body, 6), "hand": round(self.hand, 6), "face": round(self.face, 6), "rule": self.rule}


def auto_thresholds(scores: np.ndarray, has_person: np.ndarray) -> Thresholds:
    """Half the clip's median torso score, for SimCC models whose scores are not on a 0-1 scale (docs/pose-facts.md).

    RTMW peaks are raw logits (reported ~4.5-6.5 on visible points), so Wan's 0.5 would draw every
    occluded limb; scaling by the clip's own torso confidence keeps the "visible" cut model-independent.
    """
    torso = scores[has_person][:, list(TORSO)]
    torso = torso[torso > 0]
    m = float(np.median(torso)) if torso.size else 0.0
    thr = 0.5 * m if m > 0 else math.inf
    return Thresholds(thr, thr, thr, f"auto: 0.5 x clip median torso score ({m:.4g})")


def fixed_thresholds(body: float, hand: float | None = None, face: float | None = None, rule: str = "fixed") -> Thresholds:
    return Thresholds(body, body if hand is None else hand, body if face is None else face, rule)


def valid_frames(scores: np.ndarray, has_person: np.ndarray, thr_body: float) -> np.ndarray:
    """(T,) bool: a tracked person with at least MIN_BODY_POINTS confident COCO body points."""
    return has_person & ((scores[:, BODY17] >= thr_body).sum(axis=1) >= MIN_BODY_POINTS)


def segment_starts(segment: np.ndarray | None, t: int) -> np.ndarray:
    """(T,) bool: True at frames whose segment differs from the previous frame's."""
    if segment is None:
        return np.zeros(t, bool)
    segment = np.asarray(segment)
    return np.r_[False, segment[1:] != segment[:-1]]


def fill_gaps(kpts: np.ndarray, scores: np.ndarray, valid: np.ndarray, max_gap: int,
              segment: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Linearly interpolate keypoints and scores across runs of <= max_gap invalid frames that have a valid
    frame of the same segment on both sides; everything else invalid stays EMPTY (drawn black).
    Returns new arrays and status."""
    kpts, scores = kpts.copy(), scores.copy()
    status = np.where(valid, DETECTED, EMPTY).astype(np.int8)
    seg = np.zeros(len(valid), int) if segment is None else np.asarray(segment)
    idx = np.flatnonzero(valid)
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        gap = b - a - 1
        if gap == 0 or gap > max_gap or seg[a] != seg[b]:
            continue
        w = (np.arange(1, gap + 1) / (gap + 1))[:, None]
        kpts[a + 1 : b] = kpts[a] * (1 - w[..., None]) + kpts[b] * w[..., None]
        scores[a + 1 : b] = scores[a] * (1 - w) + scores[b] * w
        status[a + 1 : b] = INTERPOLATED
    empty = status == EMPTY
    kpts[empty] = np.nan
    scores[empty] = 0.0
    return kpts, scores, status


def one_euro(x: np.ndarray, active: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float,
             starts: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Causal One-Euro filter over time for (T, D) signals; a column restarts wherever active[t, d] is False,
    and every column restarts at frames where starts[t] is True (a new segment)."""
    te = 1.0 / fps

    def alpha(cutoff):
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * te))

    out = x.copy()
    prev = np.zeros(x.shape[1])
    dprev = np.zeros(x.shape[1])
    have = np.zeros(x.shape[1], bool)
    a_d = alpha(d_cutoff)
    for t in range(len(x)):
        if starts is not None and starts[t]:
            have = np.zeros_like(have)
        m = active[t]
        xt = x[t]
        dx = np.where(have, (xt - prev) / te, 0.0)
        edx = a_d * dx + (1 - a_d) * dprev
        a = alpha(min_cutoff + beta * np.abs(edx))
        filt = np.where(have, a * xt + (1 - a) * prev, xt)
        out[t] = np.where(m, filt, xt)
        prev = np.where(m, out[t], 0.0)
        dprev = np.where(m & have, edx, 0.0)
        have = m.copy()
    return out


def zero_phase_one_euro(x: np.ndarray, active: np.ndarray, fps: float, starts: np.ndarray | None = None,
                        **params) -> np.ndarray:  # fmt: skip
    """Forward and backward One-Euro averaged: no lag (a ramp stays a ramp), offline only. `starts` (T,) bool
    marks the first frame of each segment; neither pass carries state across one."""
    fwd = one_euro(x, active, fps, starts=starts, **params)
    # backwards, a segment starting at t means the filter restarts at t-1 (the last frame of the one before)
    ends = None if starts is None else np.r_[np.asarray(starts)[1:], False]
    bwd = one_euro(x[::-1], active[::-1], fps, starts=None if ends is None else ends[::-1], **params)[::-1]
    return np.where(active, (fwd + bwd) / 2, x)


def person_scales(kpts: np.ndarray, scores: np.ndarray, status: np.ndarray, thr: float) -> tuple[float, float]:
    """Median torso length (neck to mid-hip) and hand-box size in pixels, to make filter speeds scale-free."""
    ok = (status != EMPTY) & (scores[:, list(TORSO)] >= thr).all(axis=1)
    if ok.any():
        neck = kpts[ok][:, [5, 6]].mean(axis=1)
        hip = kpts[ok][:, [11, 12]].mean(axis=1)
        body = float(np.median(np.linalg.norm(neck - hip, axis=1)))
    else:
        body = 0.0
    body = body if body > 1 else 100.0
    return body, 0.4 * body  # a hand is roughly 0.4 torso lengths across


def smooth_keypoints(kpts: np.ndarray, scores: np.ndarray, status: np.ndarray, fps: float, thr: Thresholds,
                     segment: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Zero-phase One-Euro on body, feet and hand points (face landmarks are left alone), only through
    frames where a point is confident; resets at gaps and segment starts. Returns new (T, 133, 2)."""
    out = kpts.copy()
    starts = segment_starts(segment, len(kpts))
    body_scale, hand_scale = person_scales(kpts, scores, status, thr.body)
    for idx, point_thr, scale, params in (
        (np.r_[0:23], thr.body, body_scale, BODY_FILTER),
        (HAND_IDX, thr.hand, hand_scale, HAND_FILTER),
    ):
        active = (status != EMPTY)[:, None] & (scores[:, idx] >= point_thr) & np.isfinite(kpts[:, idx]).all(axis=2)
        act2 = np.repeat(active, 2, axis=1)  # (T, 2P): x and y of a point share its activity
        sig = np.nan_to_num(kpts[:, idx].reshape(len(kpts), -1)) / scale
        sm = zero_phase_one_euro(sig, act2, fps, starts=starts, **params) * scale
        out[:, idx] = np.where(act2, sm, kpts[:, idx].reshape(len(kpts), -1)).reshape(len(kpts), len(idx), 2)
    return out
