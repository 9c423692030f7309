"""The pose model interface: what differs between `--pose-model rtmw` and `--pose-model wan`.

A `PoseModel` answers two questions, and the shared steps do the rest (scan.scan_span, clip.expand,
write.render_pass, write.pose_json):
    seen(frame, scan) -> Seen         pass 1: the person and their 133 keypoints in one source frame
    post(clip, span, settings, ref, reporter) -> Drawing
                                      pass 2: whole-clip rules -> what every output frame draws and crops
Implementations (stage.pose_model picks one): rtmw.RtmwModel (our tracking, thresholds, gap filling, smoothing, person fit) and
wan.model.WanModel (Wan2.2-Animate's official per-frame pipeline, docs/pose-parity.md). Both run on a
`PoseEstimator` (estimator.py): a person detector and a whole-body keypoint model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from animate_cli.pose.clip import Clip
    from animate_cli.pose.estimator import PoseEstimator
    from animate_cli.pose.keypoints import Thresholds
    from animate_cli.pose.scan import Scan, Seen, Span
    from animate_cli.pose.settings import PoseSettings
    from animate_cli.progress import Reporter


class CanvasFit(Protocol):
    """How a drawing canvas of src_w x src_h lands on the width x height output canvas (geometry.Fit,
    geometry.PlacedFit, wan.frames.LetterboxFit)."""

    src_w: int
    src_h: int

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def apply(self, img: np.ndarray, interpolation: str = "linear") -> np.ndarray: ...

    def points(self, xy: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict: ...


class Frames(Protocol):
    """Pass 3's pictures of output frame k."""

    def pose_frame(self, k: int) -> np.ndarray: ...  # (height, width, 3) uint8 skeleton on black

    def face_frame(self, k: int, frame: np.ndarray) -> np.ndarray: ...  # (512, 512, 3) uint8 from the source frame


@dataclass(frozen=True)
class Drawing:
    """Pass 2's result: what pass 3 draws and crops, and what keypoints.npz and pose.json record of it."""

    thresholds: Thresholds
    status: np.ndarray  # (T,) int8 keypoints.EMPTY / DETECTED / INTERPOLATED
    valid: np.ndarray  # (T,) bool: frames whose own keypoints were usable
    kpts: np.ndarray  # (T, 133, 2) after gap filling and smoothing (keypoints.npz kpts_smoothed)
    scores: np.ndarray  # (T, 133) after gap filling
    drawn: np.ndarray  # (T, 133, 2) what the skeleton is drawn from (retargeted, or kpts)
    face: np.ndarray  # (T, 4) float face boxes in source pixels, NaN without a face
    fit: CanvasFit  # drawing canvas -> output canvas
    frames: Frames
    detected: int  # pose.json counts.detected
    face_meta: dict  # pose.json "face"
    model_meta: dict = field(default_factory=dict)  # extra top-level pose.json entries of the model
    npz_extra: dict = field(default_factory=dict)  # extra keypoints.npz arrays of the model
    retarget: dict | None = None  # pose.json "retarget"
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RefPose:
    """The reference image's person, for --retarget."""

    kpts: np.ndarray  # (133, 2) image pixels
    scores: np.ndarray  # (133,)
    width: int
    height: int


class PoseModel(Protocol):
    name: str  # config.POSE_MODELS: pose.json "pose_model"
    estimator: PoseEstimator

    def seen(self, frame: np.ndarray, scan: Scan) -> Seen: ...

    def post(self, clip: Clip, span: Span, settings: PoseSettings, ref: RefPose | None, reporter: Reporter) -> Drawing: ...
