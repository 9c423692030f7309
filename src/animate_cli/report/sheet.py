"""`<stem>.report.png`: the figures over time and the worst joins as before/after frames.

Top, over the video's time with every chunk boundary dotted: seam score at each join (robust z; red when
flagged; grey rings: with --seam-fix color), colour drift against chunk 0 (ΔE, and ΔL* brightness), face
identity and pose adherence (per sampled frame, with each chunk's mean). Below: for the worst joins, the
last frame before and the first frame after, with the join's score. matplotlib (Agg, no display), imported here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animate_cli import media
from animate_cli.report import settings as S
from animate_cli.report.joins import ChunkLayout

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

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


def _series_panel(ax: Axes, data: dict | None, what: str, layout: ChunkLayout, fps: float) -> None:
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


@dataclass(frozen=True)
class Sheet:
    """What the picture shows."""

    video: Path  # the worst joins' frames are read from it
    fps: float
    layout: ChunkLayout
    seams: list[dict]  # figures.seam_figures
    drift: np.ndarray  # (T,) ΔE of each frame's mean colour against chunk 0's
    brightness: np.ndarray  # (T,) ΔL* of each frame against chunk 0's mean
    identity: dict | None
    pose: dict | None
    title: str


def draw(png: Path, sheet: Sheet) -> Path:
    """Write the PNG (atomically) and return its path."""
    worst = sorted(sheet.seams, key=lambda s: -s["score"])[: S.SHEET_JOINS]
    wanted = [i for s in worst for i in (s["frame"] - 1, s["frame"])]
    frames = [_thumb(f) for f in media.read_frames_at(sheet.video, wanted)] if wanted else []
    fig, gs = _figure(sheet.title, (len(worst) + 1) // 2, frames)
    axes = [fig.add_subplot(gs[0, :])]
    axes += [fig.add_subplot(gs[i, :], sharex=axes[0]) for i in range(1, 4)]
    _seam_panel(axes[0], sheet.seams, sheet.fps)
    _drift_panel(axes[1], sheet)
    _series_panel(axes[2], sheet.identity, "identity", sheet.layout, sheet.fps)
    axes[2].set_title("identity: face similarity to the reference face (colour histogram + gradients; 1 = same)",
                      fontsize=9, loc="left")  # fmt: skip
    _series_panel(axes[3], sheet.pose, "pose adherence", sheet.layout, sheet.fps)
    axes[3].set_title(f"pose adherence: share of body keypoints within {S.PCK_ALPHA:g} torso lengths of the driving pose (PCK)",
                      fontsize=9, loc="left")  # fmt: skip
    _time_axes(axes, sheet)
    if worst:
        head = fig.add_subplot(gs[4, :])
        head.axis("off")
        head.text(0, 0, f"worst {len(worst)} of {len(sheet.seams)} joins: last frame before | first frame after",
                  fontsize=10, va="bottom", transform=head.transAxes)  # fmt: skip
    for n, s in enumerate(worst):
        _join_pair(fig.add_subplot(gs[5 + n // 2, n % 2]), n, s, frames[2 * n], frames[2 * n + 1])
    tmp = png.with_name(png.name + ".partial.png")
    fig.savefig(tmp, format="png")
    tmp.replace(png)
    return png


def _figure(title: str, sheet_rows: int, frames: list[np.ndarray]) -> tuple[Figure, GridSpec]:
    """The figure and its grid: four plots over time, a spacer with the sheet's heading, then the rows of
    before|after pairs, each row as high as its thumbnails."""
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

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
    return fig, gs


def _seam_panel(ax: Axes, seams: list[dict], fps: float) -> None:
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


def _drift_panel(ax: Axes, sheet: Sheet) -> None:
    t = np.arange(len(sheet.drift)) / sheet.fps
    ax.plot(t, sheet.drift, lw=0.8, color="#ff7f0e", label="colour ΔE vs chunk 0")
    ax.plot(t, sheet.brightness, lw=0.8, color="#2ca02c", label="brightness ΔL* vs chunk 0")
    ax.axhline(0, lw=0.5, color="#999999")
    ax.legend(fontsize=7, loc="upper left", frameon=False, ncol=2)
    ax.set_ylabel("ΔE, ΔL*", fontsize=8)
    ax.set_title("drift: each frame's mean colour against chunk 0's", fontsize=9, loc="left")


def _time_axes(axes: list[Axes], sheet: Sheet) -> None:
    """The four plots share the video's time: chunk boundaries dotted, one x label at the bottom."""
    end = max(len(sheet.drift), 1) / sheet.fps
    for ax in axes:
        for j in sheet.layout.joins:
            ax.axvline(j / sheet.fps, ls=":", lw=0.7, color="#999999")
        ax.set_xlim(0, end)
        ax.tick_params(labelsize=7)
    axes[2].set_ylabel("similarity", fontsize=8)
    axes[3].set_ylabel("PCK", fontsize=8)
    axes[3].set_xlabel("seconds (dotted: chunk boundaries)", fontsize=8)
    for ax in axes[:3]:
        ax.tick_params(labelbottom=False)


def _join_pair(ax: Axes, n: int, s: dict, before: np.ndarray, after: np.ndarray) -> None:
    """The `n`-th worst join `s`: the last frame before it beside the first frame after it."""
    gap = np.full((before.shape[0], 6, 3), 255, np.uint8)
    ax.imshow(np.concatenate([before, gap, after], axis=1))
    ax.set_xticks([])
    ax.set_yticks([])
    flag = "  FLAGGED" if s["flagged"] else ""
    ax.set_title(f"#{n + 1} join {s['join']}: frame {s['frame'] - 1} | {s['frame']} ({s['seconds']:.2f} s)   score "
                 f"{s['score']:.1f} ({_feature_label(s)}){flag}", fontsize=8, loc="left",
                 color=FLAG_COLOUR if s["flagged"] else "black")  # fmt: skip
