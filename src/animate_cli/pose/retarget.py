"""`--retarget`: give the driving skeleton the reference person's body proportions (after Wan's
`get_retarget_pose`, simplified; docs/pose-facts.md, "Retarget").

1. Measure both people: the reference image and the first detected driving frame.
2. Global scale s = driving height / reference height (nose to mid-ankle, else nose to mid-hip), so the
   result keeps the driver's overall size and position and only the proportions change.
3. Per limb ratio = s * reference length / driving length; left/right pairs take the max of the pair
   (Wan); limbs not confident in either image get the mean shoulder ratio; ratios are clamped to 0.5-2.
4. Every frame is rebuilt from the neck outwards: each limb keeps its driving direction, its length is
   multiplied by its ratio. Hands and face move rigidly with their wrist / nose, scaled by the forearm /
   head ratio.
Works on COCO-WholeBody-133 arrays (T, 133, 2) in source pixels, before conversion to Wan's layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from animate_cli.pose import keypoints as K

if TYPE_CHECKING:
    from animate_cli.pose.model import RefPose

NECK = -1  # virtual point: mid-shoulders, the root (Wan rebuilds from the neck)
# (parent, child, limb name); children after parents. COCO: 5/6 shoulders, 7/8 elbows, 9/10 wrists, 11/12 hips ...
EDGES = (
    (NECK, 5, "l_shoulder"), (NECK, 6, "r_shoulder"), (NECK, 0, "neck_nose"), (0, 1, "l_eye"), (0, 2, "r_eye"),
    (1, 3, "l_ear"), (2, 4, "r_ear"), (5, 7, "l_upper_arm"), (7, 9, "l_forearm"), (6, 8, "r_upper_arm"),
    (8, 10, "r_forearm"), (NECK, 11, "l_torso"), (NECK, 12, "r_torso"), (11, 13, "l_thigh"), (13, 15, "l_calf"),
    (12, 14, "r_thigh"), (14, 16, "r_calf"), (15, 17, "l_foot"), (15, 18, "l_foot"), (15, 19, "l_heel"),
    (16, 20, "r_foot"), (16, 21, "r_foot"), (16, 22, "r_heel"),
)  # fmt: skip
PAIRS = ("shoulder", "eye", "ear", "upper_arm", "forearm", "torso", "thigh", "calf", "foot", "heel")
RATIO_RANGE = (0.5, 2.0)


def _pt(k: np.ndarray, i: int) -> np.ndarray:
    return (k[5] + k[6]) / 2 if i == NECK else k[i]


def _conf(s: np.ndarray, i: int, thr: float) -> bool:
    return bool(s[5] >= thr and s[6] >= thr) if i == NECK else bool(s[i] >= thr)


def _height(k: np.ndarray, s: np.ndarray, thr: float) -> float | None:
    if s[0] < thr:
        return None
    for a, b in ((15, 16), (11, 12)):  # ankles, else hips (Wan's fallback order)
        if s[a] >= thr and s[b] >= thr:
            return float(abs((k[a, 1] + k[b, 1]) / 2 - k[0, 1]))
    return None


def limb_ratios(drv_k, drv_s, ref_k, ref_s, thr: float) -> tuple[dict[str, float], float]:
    hd, hr = _height(drv_k, drv_s, thr), _height(ref_k, ref_s, thr)
    if hd and hr:
        scale = hd / hr
    else:  # no head-to-feet measure: compare shoulder widths
        scale = float(np.linalg.norm(drv_k[5] - drv_k[6]) / max(np.linalg.norm(ref_k[5] - ref_k[6]), 1e-6))
    raw: dict[str, list[float]] = {}
    for p, c, name in EDGES:
        if not (_conf(drv_s, p, thr) and _conf(drv_s, c, thr) and _conf(ref_s, p, thr) and _conf(ref_s, c, thr)):
            continue
        d = np.linalg.norm(_pt(drv_k, c) - _pt(drv_k, p))
        r = np.linalg.norm(_pt(ref_k, c) - _pt(ref_k, p))
        if d > 1e-3:
            raw.setdefault(name, []).append(scale * r / d)
    ratios = {n: float(np.mean(v)) for n, v in raw.items()}
    for part in PAIRS:  # Wan: a left/right pair takes the larger ratio of the two
        both = [ratios[f"{side}_{part}"] for side in "lr" if f"{side}_{part}" in ratios]
        if both:
            for side in "lr":
                ratios[f"{side}_{part}"] = max(both)
    shoulders = [ratios[n] for n in ("l_shoulder", "r_shoulder") if n in ratios]
    fallback = float(np.mean(shoulders)) if shoulders else 1.0
    out = {name: float(np.clip(ratios.get(name, fallback), *RATIO_RANGE)) for _, _, name in EDGES}
    return out, scale


def retarget_frame(k: np.ndarray, ratios: dict[str, float]) -> np.ndarray:
    """(133, 2) -> (133, 2): limbs rescaled from the neck outwards, hands/face carried along."""
    new = k.copy()
    neck = _pt(k, NECK)
    placed = {NECK: neck}
    for p, c, name in EDGES:
        placed[c] = placed[p] + (_pt(k, c) - _pt(k, p)) * ratios[name]
        new[c] = placed[c]
    for wrist, hand, forearm in ((9, slice(91, 112), "l_forearm"), (10, slice(112, 133), "r_forearm")):
        new[hand] = new[wrist] + (k[hand] - k[wrist]) * ratios[forearm]
    head = (ratios["l_eye"] + ratios["r_eye"]) / 2
    new[23:91] = new[0] + (k[23:91] - k[0]) * head
    return new


def retarget_sequence(kpts: np.ndarray, scores: np.ndarray, status: np.ndarray, thr: K.Thresholds,
                      ref: RefPose) -> tuple[np.ndarray, dict]:  # fmt: skip
    """Retarget every non-empty frame to the reference person; returns new (T, 133, 2) and a summary for pose.json."""
    from animate_cli.errors import NoPersonDetectedError

    ref_k, ref_s = ref.kpts, ref.scores
    anchor = np.flatnonzero(status == K.DETECTED)
    if len(anchor) == 0:
        raise NoPersonDetectedError("no detected driving frame to measure for --retarget")
    a = int(anchor[0])
    if not (ref_s[[5, 6]] >= thr.body).all() or not (scores[a, [5, 6]] >= thr.body).all():
        raise NoPersonDetectedError("--retarget needs both shoulders visible in the reference image and the first driving frame")
    ratios, scale = limb_ratios(kpts[a], scores[a], np.asarray(ref_k, float), np.asarray(ref_s, float), thr.body)
    out = kpts.copy()
    for t in np.flatnonzero(status != K.EMPTY):
        out[t] = retarget_frame(kpts[t], ratios)
    info = {"rule": "limb lengths x (s x ref / driving) from the neck outwards, pairs take the max (after Wan)",
            "anchor_frame": a, "global_scale": round(scale, 6), "limb_ratios": {n: round(r, 4) for n, r in ratios.items()}}  # fmt: skip
    return out, info
