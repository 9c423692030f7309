"""The pose stage's input settings and result: small frozen dataclasses other stages depend on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from animate_cli import config as C

MAX_SIDE = 4096  # larger pose videos are almost certainly a typo (and would not fit the DiT anyway)
MIN_SIDE = 32
SMOOTH_MODES = ("default", "none")
FIT_MODES = ("person", "crop")  # person: keep the driving person's extent inside the canvas; crop: blind centre crop


@dataclass(frozen=True)
class PoseSettings:
    """Everything that changes the output; hashed into the cache key (see `cache_key`)."""

    width: int = 832
    height: int = 480
    fps: float = float(C.FPS)
    start: float = 0.0  # seconds into the driving video
    seconds: float | None = None  # None: to the end
    smooth: str = "default"  # "default": zero-phase One-Euro on keypoints and face box; "none": per-frame (Wan parity)
    retarget: bool = False  # rescale limbs to the reference person's proportions (needs ref)
    device: str = "cpu"  # onnxruntime device: cpu | cuda | cuda:N | auto
    body_thr: float | None = None  # None: the pose model's default rule (estimator.default_threshold_rule)
    hand_thr: float | None = None  # None: same as body
    max_gap_sec: float = 0.3  # gaps without a person up to this long are interpolated, longer ones stay black
    crf: int = 16  # H.264 quality of pose/face videos; 16 keeps the black background < 20 after decoding
    fit: str = "person"  # how the source frame goes onto the width x height canvas (FIT_MODES); rtmw only
    # "wan": Wan2.2-Animate's official YOLOv10m + ViTPose-H pipeline, per frame, letterboxed (smooth must be
    # "none", thresholds fixed at Wan's 0.5; with retarget, Wan's own retarget, wan_retarget.py); "rtmw":
    # rtmlib's RTMW with our tracking and smoothing
    model: str = "rtmw"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class PoseResult:
    pose_video: Path
    face_video: Path
    meta_path: Path
    frames: int
    fps: float
    width: int
    height: int
    detected: int
    interpolated: int
    empty: int
    keypoints: Path | None = None  # keypoints.npz with save_keypoints=True
    overlay: Path | None = None  # debug_overlay.mp4 with debug_overlay=True
    cached: bool = False  # True when cached_extract_pose reused an earlier extraction
    complete: bool = True  # False: only the first `frames` output frames of the requested range were extracted
    model: str = "rtmw"  # which pose model made it (config.POSE_MODELS)
