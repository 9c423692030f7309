"""The report's numbers, each with the reason for its value, and its output names.

Units: L*, a*, b* are CIELAB (L* 0..100; a ΔE of about 2.3 is the just-noticeable colour difference);
frames count output frames at the video's frame rate; "pairs" are consecutive frames (t-1, t), stored at t.
"""

from __future__ import annotations

from pathlib import Path

from animate_cli import config as C

# --seam-fix color: its numbers live with the ease (rollout/seamfix.py); the report replays it and subsamples
# frames for its statistics the same way
from animate_cli.rollout.seamfix import (  # noqa: F401
    SEAM_FIX_FLOOR,
    SEAM_FIX_FRAMES,
    SEAM_FIX_GAIN_LIMITS,
    SEAM_FIX_HISTORY,
    SEAM_FIX_MOTION_FACTOR,
    SEAM_FIX_STATS_PIXELS,
)

SCHEMA = "everanimate.report/1"
SIDECAR_SCHEMA = "everanimate.chunks/1"

# --- the streamed scan ------------------------------------------------------------------------------------
ANALYSIS_WIDTH = 160  # frames are scaled (area) to this width by ffmpeg: global colour and coarse structure survive,
#                       and a 2-minute 480p clip moves ~50x less data through the pipe than at full size
SSIM_WINDOW = 7  # px of the analysis frame: the usual SSIM window (Wang et al. 2004), ~4 % of the width
SSIM_C2 = (0.03 * 100.0) ** 2  # SSIM's contrast constant (K2 = 0.03) for L* in 0..100

# --- seams: a join against the motion around it ---------------------------------------------------------
SEAM_WINDOW = 16  # pairs on each side of a join that describe "normal" motion (0.64 s at 25 fps each side)
SEAM_MIN_BASELINE = 6  # fewer baseline pairs than this (very short chunks): the join is reported but never flagged
MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation of a normal distribution
SEAM_Z_FLAG = 6.0  # robust z above which a join stands out from its surroundings (a 6-sigma event is ~1e-9 by chance)
SEAM_Z_CAP = 99.0  # scores are capped so a perfectly still clip (MAD ~ 0) does not print 1e9
# Noise floors added to the spread (H.264 at CRF 16 moves frame means by ~0.1 L* on a still picture) and the
# least excess that counts as visible: a still clip must not flag an invisible 0.3 L* flicker.
SEAM_FEATURES = {
    # name: (what it measures, noise floor, visible excess)
    "luminance": ("|change of the mean L*| between consecutive frames (L* units)", 0.15, 1.0),
    "colour": ("change of the mean (a*, b*) colour between consecutive frames (ΔE units)", 0.15, 1.0),
    "structure": ("1 - SSIM contrast-structure term of downscaled L* between consecutive frames", 0.002, 0.03),
}

SEAM_FIX_MODES = C.SEAM_FIX_MODES

# --- identity and pose adherence (pose models) -------------------------------------------------------------
PEOPLE_FPS = 2.0  # output frames per second the pose models look at: faces and poses change slowly against chunks
FACE_SIZE = 64  # face crops are compared at 64x64: enough for colour and gradient layout, blind to compression
HIST_BINS = 8  # per CIELAB axis: a joint 8x8x8 colour histogram of the face
HOG_CELLS = 4  # 4x4 cells of gradient-orientation histograms over the face
HOG_BINS = 9  # unsigned orientations, 20 degrees each (Dalal & Triggs 2005)
PCK_ALPHA = 0.3  # a keypoint matches when within 0.3 torso lengths of the driving one (both skeletons normalised)
PCK_POINTS = tuple(range(17))  # the COCO body points (hands and face are too small to judge at this rate)
TORSO = (5, 6, 11, 12)  # shoulders and hips: centre and size of a skeleton

# --- the picture -------------------------------------------------------------------------------------------
SHEET_JOINS = 6  # the worst joins shown as before/after pairs (a 2-minute video has 41 joins)
SHEET_THUMB_WIDTH = 280  # px per frame in the contact sheet
FIGURE_WIDTH_IN = 12.0
FIGURE_DPI = 100


def report_paths(video: Path) -> tuple[Path, Path]:
    """(<stem>.report.json, <stem>.report.png) next to the video."""
    video = Path(video)
    return video.with_name(video.stem + ".report.json"), video.with_name(video.stem + ".report.png")


def sidecar_path(video: Path) -> Path:
    """<stem>.chunks.json next to the video: the run's chunk layout, for `inspect` later."""
    video = Path(video)
    return video.with_name(video.stem + ".chunks.json")
