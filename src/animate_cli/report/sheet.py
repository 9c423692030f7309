"""`<stem>.report.png`: the figures over time and the worst joins as before/after frames.

Top, over the video's time with every chunk boundary dotted: seam score at each join (robust z; red when
flagged; grey rings: with --seam-fix color), colour drift against chunk 0 (ΔE, and ΔL* brightness), face
identity and pose adherence (per sampled frame, with each chunk's mean). Below: for the worst joins, the
last frame before and the first frame after, with the join's score. matplotlib (Agg, no display), imported here only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animate_cli import media
from animate_cli.report import settings as S
from animate_cli.report.joins import ChunkLayout

FLAG_COLOUR, OK_COLOUR, FIX_COLOUR = "#d62728", "#1f77b4", "#7f7f7f"


def _thumb(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    width = S.SHEET_THUMB_WIDTH
    return np.asarray(Image.fromarray(frame).resize((width, max(1, round(h * width / w))), Image.BILINEAR))


def _feature_label(seam: dict) -> str:
    name = max(S.SEAM_FEATURES, key=lambda k: seam[k]["z"])
    unit = {"luminance": "L*", "colour": "ΔE", "structure": ""}[name]
    return f"{name} +{seam[name]['excess']:.2f} {unit}".rstrip()


def _series_panel(ax, data: dict | None, what: str, layout: ChunkLayout, fps: float) -> None:
    if not data or not data.get("available"):
        reason = (data or {}).get("reason", "not measured")
        ax.text(0.5, 0.5, f"{what}: not measured ({reason})", ha="center", va="center", transform=ax.transAxes,
                fontsize=9, color="#555555", wrap=True)  # fmt: skip
        ax.set_yticks([])
        return
    pts = np.array(data["series"], float).reshape(-1, 2)
    if len(pts):
        ax.plot(pts[:, 0] / fps, pts[:, 1], ".", ms=3, color="#9ecae1", label="sampled frame")
    for c in data["per_chunk"]:
        if c["value"] is not None:
            a, b = layout.bounds[c["chunk"]]
            ax.hlines(c["value"], a / fps, b / fps, color=OK_COLOUR, lw=2)
    ax.set_ylim(0, 1.05)


def draw(png: Path, video: Path, fps: float, layout: ChunkLayout, seams: list[dict], drift: np.ndarray,
         brightness: np.ndarray, identity: dict | None, pose: dict | None, title: str) -> Path:  # fmt: skip
    """Write the PNG (atomically) and return its path."""
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

    worst = sorted(seams, key=lambda s: -s["score"])[: S.SHEET_JOINS]
    wanted = [i for s in worst for i in (s["frame"] - 1, s["frame"])]
    frames = [_thumb(f) for f in media.read_frames_at(video, wanted)] if wanted else []
    sheet_rows = (len(worst) + 1) // 2
    aspect = frames[0].shape[0] / (2 * frames[0].shape[1]) if frames else 0.3  # height/width of one before|after pair
    pair_h = S.FIGURE_WIDTH_IN * 0.455 * aspect + 0.35  # two pairs side by side, plus a title line
    plot_h, gap_h = 1.25, 0.45  # each plot and the title space above it (inches)
    spacer = 0.5  # between the x-axis label and the sheet's heading
    height = 0.5 + 4 * (plot_h + gap_h) + spacer + gap_h + sheet_rows * pair_h + 0.2
    fig = Figure(figsize=(S.FIGURE_WIDTH_IN, height), dpi=S.FIGURE_DPI)
    gs = GridSpec(5 + sheet_rows, 2, figure=fig, height_ratios=[plot_h] * 4 + [spacer] + [pair_h - 0.35] * sheet_rows,
                  hspace=gap_h / plot_h, wspace=0.05, left=0.05, right=0.99, top=1 - 0.75 / height,
                  bottom=0.2 / height)  # fmt: skip
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    axes = [fig.add_subplot(gs[0, :])]
    axes += [fig.add_subplot(gs[i, :], sharex=axes[0]) for i in range(1, 4)]
    t = np.arange(len(drift)) / fps
    end = max(len(drift), 1) / fps

    ax = axes[0]
    for s in seams:
        x = s["frame"] / fps
        colour = FLAG_COLOUR if s["flagged"] else OK_COLOUR
        ax.vlines(x, 0, s["score"], color=colour, lw=1.5)
        ax.plot(x, s["score"], "o", color=colour, ms=5)
        ax.plot(x, s["score_with_fix"], "o", mfc="none", mec=FIX_COLOUR, ms=7)
    ax.axhline(S.SEAM_Z_FLAG, ls="--", lw=0.8, color=FLAG_COLOUR)
    top = max([S.SEAM_Z_FLAG * 1.6, *(s["score"] * 1.15 for s in seams)])
    ax.set_ylim(min([0.0, *(s["score"] for s in seams)]), top)
    ax.set_ylabel("robust z", fontsize=8)
    ax.set_title("seam: change across each join vs the motion around it (robust z; red = flagged, ring = with --seam-fix color)",
                 fontsize=9, loc="left")  # fmt: skip

    ax = axes[1]
    ax.plot(t, drift, lw=0.8, color="#ff7f0e", label="colour ΔE vs chunk 0")
    ax.plot(t, brightness, lw=0.8, color="#2ca02c", label="brightness ΔL* vs chunk 0")
    ax.axhline(0, lw=0.5, color="#999999")
    ax.legend(fontsize=7, loc="upper left", frameon=False, ncol=2)
    ax.set_ylabel("ΔE, ΔL*", fontsize=8)
    ax.set_title("drift: each frame's mean colour against chunk 0's", fontsize=9, loc="left")

    _series_panel(axes[2], identity, "identity", layout, fps)
    axes[2].set_title("identity: face similarity to the reference face (colour histogram + gradients; 1 = same)",
                      fontsize=9, loc="left")  # fmt: skip
    _series_panel(axes[3], pose, "pose adherence", layout, fps)
    axes[3].set_title(f"pose adherence: share of body keypoints within {S.PCK_ALPHA:g} torso lengths of the driving pose (PCK)",
                      fontsize=9, loc="left")  # fmt: skip
    for ax in axes:
        for j in layout.joins:
            ax.axvline(j / fps, ls=":", lw=0.7, color="#999999")
        ax.set_xlim(0, end)
        ax.tick_params(labelsize=7)
    axes[2].set_ylabel("similarity", fontsize=8)
    axes[3].set_ylabel("PCK", fontsize=8)
    axes[3].set_xlabel("seconds (dotted: chunk boundaries)", fontsize=8)
    for ax in axes[:3]:
        ax.tick_params(labelbottom=False)

    if worst:
        head = fig.add_subplot(gs[4, :])
        head.axis("off")
        head.text(0, 0, f"worst {len(worst)} of {len(seams)} joins: last frame before | first frame after",
                  fontsize=10, va="bottom", transform=head.transAxes)  # fmt: skip
    for n, s in enumerate(worst):
        ax = fig.add_subplot(gs[5 + n // 2, n % 2])
        before, after = frames[2 * n], frames[2 * n + 1]
        gap = np.full((before.shape[0], 6, 3), 255, np.uint8)
        ax.imshow(np.concatenate([before, gap, after], axis=1))
        ax.set_xticks([])
        ax.set_yticks([])
        flag = "  FLAGGED" if s["flagged"] else ""
        ax.set_title(f"#{n + 1} join {s['join']}: frame {s['frame'] - 1} | {s['frame']} ({s['seconds']:.2f} s)   score "
                     f"{s['score']:.1f} ({_feature_label(s)}){flag}", fontsize=8, loc="left",
                     color=FLAG_COLOUR if s["flagged"] else "black")  # fmt: skip
    tmp = png.with_name(png.name + ".partial.png")
    fig.savefig(tmp, format="png")
    tmp.replace(png)
    return png
