"""Seam and drift figures from a Scan and a ChunkLayout: small dicts that go into the report JSON as they are.

Seam (per join j, the pair of frames j-1 -> j): for each of luminance, colour and structure, the change across
the join is compared with the same change over the SEAM_WINDOW pairs on each side inside the two chunks (the
join's own fix range excluded). The comparison is a robust z-score, (change - median) / (1.4826 MAD + floor),
so a join in a fast dance scores like any other frame of that dance, and one bad neighbour cannot hide it.
A join is flagged when some feature's z is >= SEAM_Z_FLAG and its excess over the median is visible.

Drift (per chunk): mean CIELAB colour, brightness and contrast (spread of L*) of the chunk against chunk 0
(and against the reference image when given): ΔE76, ΔL*, and the contrast ratio.
"""

from __future__ import annotations

import numpy as np

from animate_cli.report import settings as S
from animate_cli.report.colour import delta_e
from animate_cli.report.joins import ChunkLayout
from animate_cli.report.scan import Scan


def _robust(x: float, base: np.ndarray, floor: float) -> tuple[float, float, float]:
    """(typical, excess, z) of a change against its baseline changes."""
    med = float(np.median(base))
    spread = S.MAD_TO_SIGMA * float(np.median(np.abs(base - med))) + floor
    return med, x - med, float(min((x - med) / spread, S.SEAM_Z_CAP))


def seam_figures(scan: Scan, layout: ChunkLayout, fps: float) -> list[dict]:
    """One dict per join (see the module docstring)."""
    t_all = scan.frames
    fix_span = S.SEAM_FIX_FRAMES
    excluded = np.zeros(t_all + 1, bool)
    excluded[0] = True
    for j in layout.joins:
        excluded[max(0, j - 1) : min(t_all, j + fix_span + 1)] = True
    out = []
    for c, j in enumerate(layout.joins, start=1):
        lo, hi = max(1, j - S.SEAM_WINDOW), min(t_all, j + fix_span + 1 + S.SEAM_WINDOW)
        idx = np.array([t for t in range(lo, hi) if not excluded[t]], int)
        entry: dict = {"join": c, "frame": j, "seconds": round(j / fps, 3), "chunks": [c - 1, c], "baseline_pairs": len(idx)}
        zs, zs_fixed, flagged, flagged_fixed = [], [], False, False
        ease = range(j, min(t_all, j + fix_span + 1))
        for k, (name, (_, floor, visible)) in enumerate(S.SEAM_FEATURES.items()):
            base = scan.changes[idx, k] if len(idx) else np.zeros(1)
            x = float(scan.changes[j, k])
            med, excess, z = _robust(x, base, floor)
            # with the fix replayed: the largest change over the pairs it altered (it spreads the step over them)
            xf = max((float(scan.fixed_changes[t][k]) for t in ease if t in scan.fixed_changes), default=x)
            _, excess_f, z_f = _robust(xf, base, floor)
            entry[name] = {"change": round(x, 4), "typical": round(med, 4), "excess": round(excess, 4), "z": round(z, 2),
                           "with_fix": {"change": round(xf, 4), "excess": round(excess_f, 4), "z": round(z_f, 2)}}  # fmt: skip
            enough = len(idx) >= S.SEAM_MIN_BASELINE
            flagged |= enough and z >= S.SEAM_Z_FLAG and excess >= visible
            flagged_fixed |= enough and z_f >= S.SEAM_Z_FLAG and excess_f >= visible
            zs.append(z)
            zs_fixed.append(z_f)
        entry |= {"score": round(max(zs), 2), "flagged": bool(flagged), "score_with_fix": round(max(zs_fixed), 2),
                  "flagged_with_fix": bool(flagged_fixed)}  # fmt: skip
        out.append(entry)
    return out


def drift_figures(scan: Scan, layout: ChunkLayout, ref_lab: np.ndarray | None = None,
                  person_lab: dict[int, np.ndarray] | None = None) -> list[dict]:  # fmt: skip
    """One dict per chunk: its colour statistics and their distance to chunk 0's (and the reference's). With
    `person_lab` (chunk -> mean colour inside the person boxes the pose models found), the comparison with the
    reference's person region uses the output's person region too; otherwise whole frames."""
    out = []
    lab0 = std0 = None
    for c, (a, b) in enumerate(layout.bounds):
        lab = scan.stats[a:b, :3].mean(axis=0)
        l_std = float(scan.stats[a:b, 3].mean())
        if c == 0:
            lab0, std0 = lab, l_std
        entry = {"chunk": c, "frames": [a, b], "lab_mean": [round(float(v), 3) for v in lab], "l_std": round(l_std, 3),
                 "delta_e_vs_chunk0": round(delta_e(lab, lab0), 3), "brightness_vs_chunk0": round(float(lab[0] - lab0[0]), 3),
                 "contrast_vs_chunk0": round(l_std / max(std0, 1e-6), 4)}  # fmt: skip
        if ref_lab is not None:
            mine = person_lab.get(c, lab) if person_lab else lab
            entry |= {
                "delta_e_vs_ref": round(delta_e(mine, ref_lab), 3),
                "brightness_vs_ref": round(float(mine[0] - ref_lab[0]), 3),
            }
        out.append(entry)
    return out


def drift_series(scan: Scan, layout: ChunkLayout) -> np.ndarray:
    """(T,) ΔE of each frame's mean colour against chunk 0's mean colour, for the plot."""
    a, b = layout.bounds[0]
    lab0 = scan.stats[a:b, :3].mean(axis=0)
    return np.linalg.norm(scan.stats[:, :3] - lab0, axis=1)


def headline(seams: list[dict], drift: list[dict], identity: dict | None, pose: dict | None) -> dict:
    """The few numbers the run summary and --json carry."""
    worst = max(seams, key=lambda s: s["score"], default=None)
    out = {
        "joins": len(seams),
        "flagged_joins": [s["frame"] for s in seams if s["flagged"]],
        "flagged_joins_with_fix": [s["frame"] for s in seams if s["flagged_with_fix"]],
        "worst_join": None if worst is None else {"frame": worst["frame"], "score": worst["score"]},
        "max_drift_delta_e": max((d["delta_e_vs_chunk0"] for d in drift), default=0.0),
        "last_chunk_brightness_vs_chunk0": drift[-1]["brightness_vs_chunk0"] if drift else 0.0,
    }
    if identity and identity.get("available"):
        out["identity_mean"] = identity["mean"]
        out["identity_min_chunk"] = identity["min_chunk"]
    if pose and pose.get("available"):
        out["pose_pck_mean"] = pose["mean"]
    return out
