"""`--retarget` with `--pose-model wan`: Wan2.2-Animate's own retarget (docs/wan-pose.md), written anew.

The official code (github Wan-Video/Wan2.2 @42bf4cf, `wan/modules/animate/preprocess/retarget_pose.py`,
called by `process_pipepline.py` as `get_retarget_pose(first driving frame, reference, all frames)`)
works on Wan's 20-point body (OpenPose-18 + two toes, render.BODY_FROM_COCO_*). What it does, and so
what this module does:

1. Scale s = driving person height / reference person height, both measured nose to mid-ankle when
   nose and both ankles score > 0.5 in both images, else nose to mid-hip (same rule), else
   sqrt(driving frame area / reference image area). The reference is measured in a space scaled by s
   (its size int-truncated, as the official code does), so every ratio below compares equal heights.
2. Body flag of each image: "full" (both ankles and hips score >= 0.4 and lie inside the frame),
   "three-quarter" (hips only) or "half"; the pair takes the lower of the two.
3. Limb ratio = reference limb length (scaled space) / driving limb length, measured on the first
   driving frame; a left/right pair takes the larger ratio of the two, both eye limbs take their mean,
   both ear limbs take their mean (the neck-to-nose limb keeps its own).
4. Every frame is rebuilt from the neck outwards: each limb keeps its driving direction and gets
   length x ratio; a foot (ankle to toe) is capped at 0.5 x the rebuilt calf.
5. Placement: with a full body on both sides the rebuilt first frame stands on the reference's ground
   (lower ankle-toe midpoint of the reference against the lower rebuilt ankle) and is centred on the
   reference's mid-hip; otherwise its neck goes onto the reference's neck. Then everything is divided
   by s, which gives reference-image pixels.
6. Hands: each hand is scaled about its root point by (shoulder ratio / s) and moved with its wrist;
   when the hand's root scores >= 0.4 the root is put exactly on the rebuilt wrist. A hand whose root
   lies nearer the other wrist is attached to that wrist instead (Wan's left/right swap guard). Hand
   points under 0.4 are dropped; kept ones are int-truncated to pixels, as the official code does.

Input arrays are COCO-WholeBody-133 in source pixels: driving (T, 133, 2) + (T, 133) of a frame of
drv_size (w, h); reference (133, 2) + (133,) of an image of ref_size (w, h). Output: (T, 133, 2) in
reference pixels + (T, 133) scores, written back so that render.to_wan_meta gives the official body and
hands: shoulders/elbows/... directly, each toe pair shifted so its mean is the retargeted toe, dropped
hand points NaN with score 0. Heels and face landmarks, which Wan's renderer never draws, follow their
ankle / the nose scaled by 1/s (the official code drops them; our keypoints.npz keeps something sane).

Where this differs from the official code, and why:
* The official code's "point missing" branches (a body point that is None: symmetric limb repair,
  one-wrist hand rules) cannot run in its own pipeline, whose body points are always numbers (low
  scores included), so they are not reproduced.
* A zero-length driving limb, where the official code divides by zero, gets the shoulder ratio (its own
  rule for a limb it cannot measure).
* Hands keep their own COCO slots (left hand data in 91..111). The official meta swaps the two labels
  (a pair of swapped assignments in get_scaled_pose); Wan draws both hands in the same colours, so only
  the draw order of two overlapping hands differs.
* The first frame's extra x correction of the official code is zero whenever the measured frame is the
  first frame (as in its pipeline and here), so it is not carried.
Checked against the official functions on synthetic cases: tests/data/wan_retarget/, tests/test_wan_retarget.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from animate_cli.pose.render import BODY_FROM_COCO_A, BODY_FROM_COCO_B, LHAND, RHAND

if TYPE_CHECKING:
    from animate_cli.pose.model import RefPose

# Wan's limbSeq as 0-based (parent, child) body indices, parents first: the rebuild order.
LIMB_SEQ = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
            (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (13, 18), (10, 19))  # fmt: skip
NECK, R_WRIST, L_WRIST, R_HIP, L_HIP, R_ANKLE, L_ANKLE, L_TOE, R_TOE = 1, 4, 7, 8, 11, 10, 13, 18, 19
# Limb indices (positions in LIMB_SEQ) the rules below name.
R_CALF, L_CALF, L_FOOT, R_FOOT = 8, 11, 17, 18
PAIRED_LIMBS = ((0, 1), (2, 4), (3, 5), (6, 9), (7, 10), (8, 11), (17, 18))  # left/right pairs: the larger ratio
EYE_LIMBS, EAR_LIMBS = (13, 15), (14, 16)  # nose->eye and eye->ear: the mean of the two
SCALE_SCORE = 0.5  # nose/ankle/hip score (strictly above) for the height measure (official literal)
BODY_FLAG_SCORE = 0.4  # ankle/hip score (at least) for the full/three-quarter body flags (official default)
HAND_SCORE = 0.4  # hand points under this are dropped (official `threshold=0.4` of get_scaled_pose)
FOOT_TO_CALF = 0.5  # a rebuilt foot is at most this times the rebuilt calf (official "foot_lower_leg_ratio")
FULL, THREE_QUARTER, HALF = 2, 1, 0
FLAG_NAMES = {FULL: "full_body", THREE_QUARTER: "three_quarter_body", HALF: "half_body"}


@dataclass(frozen=True)
class WanRetarget:
    kpts: np.ndarray  # (T, 133, 2) reference-image pixels
    scores: np.ndarray  # (T, 133)
    info: dict  # for pose.json


def body20(kpts: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 133, 2) + (..., 133) -> Wan body (..., 20, 2) + (..., 20) (render.to_wan_meta's rule)."""
    a, b = list(BODY_FROM_COCO_A), list(BODY_FROM_COCO_B)
    return (kpts[..., a, :] + kpts[..., b, :]) / 2, (scores[..., a] + scores[..., b]) / 2


def _height(b: np.ndarray, p: np.ndarray, feet: tuple[int, int]) -> float | None:
    if p[0] > SCALE_SCORE and p[feet[0]] > SCALE_SCORE and p[feet[1]] > SCALE_SCORE:
        return float(abs((b[feet[0], 1] + b[feet[1], 1]) / 2 - b[0, 1]))
    return None


def global_scale(src_b, src_p, src_size, dst_b, dst_p, dst_size) -> tuple[float, str]:
    """Driving / reference person height (ankles, else hips), else the frames' area ratio."""
    for feet, what in (((R_ANKLE, L_ANKLE), "nose to mid-ankle"), ((R_HIP, L_HIP), "nose to mid-hip")):
        hs, hd = _height(src_b, src_p, feet), _height(dst_b, dst_p, feet)
        if hs is not None and hd:
            return hs / hd, what
    return float(np.sqrt(src_size[0] * src_size[1]) / np.sqrt(dst_size[0] * dst_size[1])), "frame area"


def body_flag(b: np.ndarray, p: np.ndarray, height: float) -> int:
    def ok(i: int) -> bool:
        return bool(b[i, 1] / height <= 1 and p[i] >= BODY_FLAG_SCORE)

    hips = ok(R_HIP) and ok(L_HIP)
    if hips and ok(R_ANKLE) and ok(L_ANKLE):
        return FULL
    return THREE_QUARTER if hips else HALF


def _lengths(b: np.ndarray) -> np.ndarray:
    """(..., 20, 2) -> (..., 19) limb lengths in LIMB_SEQ order."""
    d = np.stack([b[..., p, :] - b[..., c, :] for p, c in LIMB_SEQ], axis=-2)
    return np.hypot(d[..., 0], d[..., 1])


def limb_ratios(src_b: np.ndarray, dst_b_scaled: np.ndarray) -> np.ndarray:
    """(19,) reference / driving limb lengths after Wan's pair, eye and ear rules."""
    src_len, dst_len = _lengths(src_b), _lengths(dst_b_scaled)
    ok = src_len > 0
    ratio = np.where(ok, dst_len / np.where(ok, src_len, 1.0), np.nan)
    if not ok.all():  # a limb it cannot measure gets the mean shoulder ratio (official rule for unmeasured limbs)
        fallback = (ratio[0] + ratio[1]) / 2 if ok[0] and ok[1] else 1.0
        ratio = np.where(ok, ratio, fallback)
    for i, j in PAIRED_LIMBS:
        ratio[i] = ratio[j] = max(ratio[i], ratio[j])
    for i, j in (EYE_LIMBS, EAR_LIMBS):
        ratio[i] = ratio[j] = (ratio[i] + ratio[j]) / 2
    return ratio


def rebuild(b: np.ndarray, ratio: np.ndarray, cap_feet: bool) -> np.ndarray:
    """(..., 20, 2) -> same shape: limbs from the neck outwards, each with its direction and length x ratio."""
    length = _lengths(b) * ratio
    if cap_feet:
        for foot, calf in ((R_FOOT, R_CALF), (L_FOOT, L_CALF)):
            length[..., foot] = np.minimum(length[..., foot], length[..., calf] * FOOT_TO_CALF)
    out = b.copy()
    for k, (p, c) in enumerate(LIMB_SEQ):
        d = b[..., p, :] - b[..., c, :]
        # The official code goes through degrees and back; the same path keeps the last bits equal.
        ang = np.radians(np.degrees(np.arctan2(d[..., 1], d[..., 0])))
        out[..., c, 0] = out[..., p, 0] - length[..., k] * np.cos(ang)
        out[..., c, 1] = out[..., p, 1] - length[..., k] * np.sin(ang)
    return out


def _place_hand(h: np.ndarray, hp: np.ndarray, factor: float, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One hand (21, 2) + (21,): scaled about its root, moved by delta, int-truncated; weak points dropped."""
    keep = hp >= HAND_SCORE
    xy = np.trunc(h[0] + (h - h[0]) * factor + delta)
    return np.where(keep[:, None], xy, np.nan), np.where(keep, hp, 0.0)


def _placement(flag: int, anchor: np.ndarray, dst_scaled: np.ndarray) -> np.ndarray:
    """The offset that puts the rebuilt first frame on the reference: on its ground, centred on its mid-hip
    (both full bodies), else neck onto neck."""
    if flag != FULL:
        return anchor[NECK] - dst_scaled[NECK]
    ground = max((dst_scaled[R_ANKLE, 1] + dst_scaled[R_TOE, 1]) / 2, (dst_scaled[L_ANKLE, 1] + dst_scaled[L_TOE, 1]) / 2)
    return np.array([(anchor[R_HIP, 0] + anchor[L_HIP, 0]) / 2 - (dst_scaled[R_HIP, 0] + dst_scaled[L_HIP, 0]) / 2,
                     max(anchor[R_ANKLE, 1], anchor[L_ANKLE, 1]) - ground])  # fmt: skip


def _with_body(kpts: np.ndarray, body: np.ndarray, src_all: np.ndarray, s: float) -> np.ndarray:
    """The 133 points with the retargeted body-20 written back (see the module docstring); hands unchanged."""
    out = kpts.copy()
    a, b = np.asarray(BODY_FROM_COCO_A), np.asarray(BODY_FROM_COCO_B)
    direct = a == b
    out[:, a[direct]] = body[:, direct]
    for toe in (L_TOE, R_TOE):  # a toe pair moves together so its mean lands on the retargeted toe
        out[:, [a[toe], b[toe]]] += (body[:, toe] - src_all[:, toe])[:, None]
    for heel, ankle in ((19, 15), (22, 16)):
        out[:, heel] = out[:, ankle] + (kpts[:, heel] - kpts[:, ankle]) / s
    out[:, 23:91] = out[:, 0:1] + (kpts[:, 23:91] - kpts[:, 0:1]) / s
    return out


def retarget(kpts: np.ndarray, scores: np.ndarray, drv_size: tuple[int, int], ref_kpts: np.ndarray,
             ref_scores: np.ndarray, ref_size: tuple[int, int]) -> WanRetarget:  # fmt: skip
    """The official retarget of every driving frame onto the reference person (see the module docstring).
    The first frame is the one measured, as in the official pipeline. Sizes are (width, height) in px."""
    kpts, scores = np.asarray(kpts, np.float64), np.asarray(scores, np.float64)
    ref_kpts, ref_scores = np.asarray(ref_kpts, np.float64), np.asarray(ref_scores, np.float64)
    (sw, sh), (rw, rh) = drv_size, ref_size
    src_all, _ = body20(kpts, scores)
    src_b, src_p = body20(kpts[0], scores[0])
    dst_b, dst_p = body20(ref_kpts, ref_scores)

    s, measure = global_scale(src_b, src_p, (sw, sh), dst_b, dst_p, (rw, rh))
    ws, hs = int(rw * s), int(rh * s)  # the reference canvas in the scaled space, int-truncated as the official code
    dst_scaled = dst_b / (rw, rh) * (ws, hs)
    flag = min(body_flag(dst_b, dst_p, rh), body_flag(src_b, src_p, sh))
    ratio = limb_ratios(src_b, dst_scaled)
    delta = _placement(flag, rebuild(src_b, ratio, cap_feet=False), dst_scaled)
    body = (rebuild(src_all, ratio, cap_feet=True) - delta) / s
    out, out_scores = _with_body(kpts, body, src_all, s), scores.copy()
    factor = max(ratio[0], ratio[1]) / s
    for t in range(len(kpts)):
        wrists = {R_WRIST: src_all[t, R_WRIST], L_WRIST: src_all[t, L_WRIST]}
        hands = {R_WRIST: (kpts[t, RHAND], scores[t, RHAND]), L_WRIST: (kpts[t, LHAND], scores[t, LHAND])}
        deltas = {}
        for w, (h, hp) in hands.items():
            deltas[w] = body[t, w] - wrists[w]
            if hp[0] >= HAND_SCORE:  # a confident root goes exactly onto the rebuilt wrist
                deltas[w] = deltas[w] + wrists[w] - h[0]
        # Swap guard: the right hand's root (or (-w, -h) for a dropped root, as the official code computes
        # it) nearer the left wrist than the right one -> each hand is attached to the other wrist's delta.
        r_root = kpts[t, RHAND][0] if scores[t, RHAND][0] >= HAND_SCORE else np.array([-float(sw), -float(sh)])
        swap = np.hypot(*(wrists[R_WRIST] - r_root)) > np.hypot(*(wrists[L_WRIST] - r_root))
        for w, sl in ((R_WRIST, RHAND), (L_WRIST, LHAND)):
            other = L_WRIST if w == R_WRIST else R_WRIST
            out[t, sl], out_scores[t, sl] = _place_hand(*hands[w], factor, deltas[other if swap else w])

    info = {"rule": "Wan2.2 get_retarget_pose (@42bf4cf): scale to the reference person, ground/neck placement, "
                    "pair max / eye-ear mean ratios, foot <= 0.5 calf, hands by the shoulder ratio",
            "scale": round(float(s), 6), "scale_measure": measure, "body_flag": FLAG_NAMES[flag],
            "placement": "ground" if flag == FULL else "neck", "reference_size": [int(rw), int(rh)],
            "limb_ratios": [round(float(r), 4) for r in ratio]}  # fmt: skip
    return WanRetarget(out, out_scores, info)


class RefFit(NamedTuple):
    """The reference image letterboxed into the canvas with Wan's padding_resize arithmetic."""

    scale: float
    width: int  # fitted size
    height: int
    pad_x: int
    pad_y: int


def reference_fit(ref_size: tuple[int, int], canvas_size: tuple[int, int]) -> RefFit:
    (rw, rh), (w, h) = ref_size, canvas_size
    if rh / rw > h / w:
        fw = int(h / rh * rw)
        return RefFit(h / rh, fw, h, int((w - fw) / 2), 0)
    fh = int(w / rw * rh)
    return RefFit(w / rw, w, fh, 0, int((h - fh) / 2))


def retarget_to_canvas(kpts: np.ndarray, scores: np.ndarray, drv_size: tuple[int, int], ref_kpts: np.ndarray,
                       ref_scores: np.ndarray, ref_size: tuple[int, int], canvas_size: tuple[int, int]) -> WanRetarget:  # fmt: skip
    """What the pose stage calls for `--retarget` with the wan pose model: canvas pixels out.

    Wan retargets onto the reference resized to the output size and draws on that canvas. Here the
    reference keypoints are first put into the reference's letterbox inside our canvas (our canvas
    size rule may give another aspect than the reference's); the retarget runs in that space and the
    result is shifted by the padding, so the skeleton is drawn straight onto the output canvas."""
    k, fw, fh, px, py = reference_fit(ref_size, canvas_size)
    r = retarget(kpts, scores, drv_size, np.asarray(ref_kpts, np.float64) * k, ref_scores, (fw, fh))
    out = r.kpts + (px, py)
    info = {**r.info, "canvas": {"rule": "reference letterboxed into the canvas (Wan padding_resize), pose drawn there",
                                 "size": [int(canvas_size[0]), int(canvas_size[1])], "scale": round(k, 6),
                                 "offset": [px, py]}}  # fmt: skip
    return WanRetarget(out, r.scores, info)


def retarget_clip(kpts: np.ndarray, scores: np.ndarray, seen: np.ndarray, drv_size: tuple[int, int], ref: RefPose,
                  canvas_size: tuple[int, int]) -> WanRetarget:  # fmt: skip
    """The pose stage's entry: (T, 133, 2) + (T, 133) driving keypoints, seen (T,) bool (frames with a person)
    and the reference image's person -> canvas-pixel keypoints and scores for every frame, and the pose.json
    summary. The measured frame is the first seen one: frame 0 with the wan pose model, which never leaves a
    frame empty (as in Wan's pipeline)."""
    first = int(np.flatnonzero(seen)[0])
    r = retarget_to_canvas(kpts[first:], scores[first:], drv_size, ref.kpts, ref.scores, (ref.width, ref.height),
                           canvas_size)  # fmt: skip
    out_k = np.concatenate([np.asarray(kpts[:first], np.float64), r.kpts])
    out_s = np.concatenate([np.asarray(scores[:first], np.float64), r.scores])
    return WanRetarget(out_k, out_s, {**r.info, "measured_frame": first})
