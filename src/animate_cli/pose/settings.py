"""The pose stage's input settings and result: small frozen dataclasses other stages depend on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from animate_cli import config as C
from animate_cli.errors import UsageError

MAX_SIDE = 4096  # larger pose videos are almost certainly a typo (and would not fit the DiT anyway)
MIN_SIDE = 32
SMOOTH_MODES = ("default", "none")
FIT_MODES = ("person", "crop")  # person: keep the driving person's extent inside the canvas; crop: blind centre crop
POSE_FILE, FACE_FILE, META_FILE = "pose.mp4", "face.mp4", "pose.json"
KEYPOINTS_FILE, OVERLAY_FILE = "keypoints.npz", "debug_overlay.mp4"


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
    # "none", thresholds fixed at Wan's 0.5; with retarget, Wan's own retarget, pose.wan.retarget); "rtmw":
    # rtmlib's RTMW with our tracking and smoothing
    model: str = "rtmw"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def max_gap_frames(self) -> int:
        """Output frames a gap without a person may last and still be interpolated (longer ones stay black)."""
        return round(self.max_gap_sec * self.fps)


@dataclass(frozen=True)
class PoseOutputs:
    """What one extraction writes into its folder besides pose.mp4, face.mp4 and pose.json."""

    frames: int | None = None  # only the first this many output frames of the range (None: all of them)
    keypoints: bool = False  # also keypoints.npz
    overlay: bool = False  # also debug_overlay.mp4 (skeleton and face box over the video)
    overwrite: bool = False  # replace the files of an earlier extraction (the cache always replaces)

    def names(self) -> list[str]:
        """The files this extraction writes."""
        return [POSE_FILE, FACE_FILE, META_FILE] + [KEYPOINTS_FILE] * self.keypoints + [OVERLAY_FILE] * self.overlay


def validate_settings(settings: PoseSettings, ref: Path | None) -> None:
    """UsageError (one line) for settings no extraction can honour."""
    s = settings
    if not (MIN_SIDE <= s.width <= MAX_SIDE and MIN_SIDE <= s.height <= MAX_SIDE):
        raise UsageError(f"pose size {s.width}x{s.height} is out of range ({MIN_SIDE}..{MAX_SIDE} per side)")
    if s.width % 16 or s.height % 16:
        raise UsageError(f"pose size {s.width}x{s.height} must be a multiple of 16 in both dimensions (the DiT patchifies 16 px)")
    if not 1 <= s.fps <= 240:
        raise UsageError(f"fps must be between 1 and 240, got {s.fps}")
    if s.start < 0 or (s.seconds is not None and s.seconds <= 0):
        raise UsageError("--start must be >= 0 and --seconds > 0")
    if s.smooth not in SMOOTH_MODES:
        raise UsageError(f"smooth must be one of {', '.join(SMOOTH_MODES)}, got {s.smooth!r}")
    if s.fit not in FIT_MODES:
        raise UsageError(f"fit must be one of {', '.join(FIT_MODES)}, got {s.fit!r}")
    if s.retarget and ref is None:
        raise UsageError("--retarget needs --ref (the reference image whose proportions to use)")
    if s.max_gap_sec < 0:
        raise UsageError("max_gap_sec must be >= 0")
    if s.model not in C.POSE_MODELS:
        raise UsageError(f"pose model must be one of {', '.join(C.POSE_MODELS)}, got {s.model!r}")
    if s.model == "wan" and (s.smooth != "none" or s.body_thr is not None or s.hand_thr is not None):
        raise UsageError("--pose-model wan works per frame with Wan's fixed 0.5 thresholds, as the official pipeline: "
                         "--smooth and --kpt-thr apply to rtmw only")  # fmt: skip


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
