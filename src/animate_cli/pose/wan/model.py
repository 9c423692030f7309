"""`--pose-model wan`: Wan2.2-Animate's official per-frame pipeline (docs/pose-parity.md).

Pass 1 takes Wan's own person choice in every frame (no tracker: the pose model sees the whole frame when
nobody is found). Pass 2 applies Wan's rules (frames.py): every frame drawn from its own keypoints (a body
the model did not see reuses the previous one), fixed 0.5 thresholds, the face box from all 68 landmarks,
the drawing letterboxed onto the canvas; with --retarget, Wan's own retarget (retarget.py) drawn straight
onto the canvas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from animate_cli.errors import NoPersonDetectedError
from animate_cli.pose import keypoints as K
from animate_cli.pose.model import Drawing
from animate_cli.pose.scan import Seen
from animate_cli.pose.wan import decode as D
from animate_cli.pose.wan.frames import LetterboxFit, WanFrames, wan_frames

if TYPE_CHECKING:
    from animate_cli.pose.clip import Clip
    from animate_cli.pose.model import RefPose
    from animate_cli.pose.scan import Scan, Span
    from animate_cli.pose.settings import PoseSettings
    from animate_cli.progress import Reporter

PIPELINE = "Wan2.2-Animate official preprocessing (github Wan-Video/Wan2.2 @42bf4cf), reproduced"
THRESHOLD_RULE = "Wan: fixed 0.5 on ViTPose heatmap maxima, body and hands"
FACE_RULE = "wan get_face_bboxes from all 68 landmarks, no score check, unsmoothed (official)"


class PersonSelector(Protocol):
    """A PoseEstimator that also makes Wan's own person choice (wan.estimator.WanEstimator)."""

    det_name: str
    pose_name: str

    def select(self, frame: np.ndarray) -> np.ndarray: ...  # (5,) xyxy + score; score -1: nobody, the whole frame

    def detect(self, frame: np.ndarray) -> np.ndarray: ...

    def estimate(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def info(self) -> dict: ...


@dataclass(frozen=True)
class WanDrawn:
    """WanFrames on a fixed fit, as pass 3 asks for them."""

    wan: WanFrames
    fit: LetterboxFit

    def pose_frame(self, k: int) -> np.ndarray:
        return self.wan.pose_frame(k, self.fit)

    def face_frame(self, k: int, frame: np.ndarray) -> np.ndarray:
        return self.wan.face_frame(k, frame)


class WanModel:
    name = "wan"

    def __init__(self, estimator: PersonSelector):
        self.estimator = estimator

    def seen(self, frame: np.ndarray, scan: Scan) -> Seen:
        box = self.estimator.select(frame)
        kpts, scores = self.estimator.estimate(frame, box)
        return Seen(box, kpts.astype(np.float32), scores.astype(np.float32), int(box[4] > 0), 0)

    def post(self, clip: Clip, span: Span, settings: PoseSettings, ref: RefPose | None, reporter: Reporter) -> Drawing:
        """Wan's rules; face crops always come from the driving frames, only the drawing is retargeted."""
        s, info = settings, span.info
        thr = K.fixed_thresholds(D.KPT_THR, rule=THRESHOLD_RULE)
        wan = wan_frames(clip.kpts, clip.scores, info.width, info.height)
        if not (wan.body20()[:, :, 2] >= thr.body).any():
            raise NoPersonDetectedError(f"no person detected in any frame of {span.driving} (no body point scores >= 0.5)",
                                        hint="the driving video needs one clearly visible person")  # fmt: skip
        fit = LetterboxFit(info.width, info.height, s.width, s.height)
        drawn, retarget = clip.kpts, None
        if s.retarget:  # the skeleton in canvas pixels, drawn without a fit
            from animate_cli.pose.wan.retarget import retarget_clip

            r = retarget_clip(clip.kpts, clip.scores, clip.has, (info.width, info.height), ref, (s.width, s.height))
            drawn, retarget = r.kpts, r.info
            wan = dataclasses.replace(wan_frames(r.kpts, r.scores, s.width, s.height), face_boxes=wan.face_boxes)
            fit = LetterboxFit(s.width, s.height, s.width, s.height)
        face = np.array([[np.nan] * 4 if b is None else b for b in wan.face_boxes], np.float64)
        if wan.reused.any():  # (counted on the drawn skeleton)
            reporter.log(f"pose: no body seen in {int(wan.reused.sum())} frames; the previous frame's body is drawn "
                         "there (Wan's rule)")  # fmt: skip
        model_meta = {"wan": {"pipeline": PIPELINE, "no_detection_frames": np.flatnonzero(~clip.found).tolist(),
                              "body_reused_frames": np.flatnonzero(wan.reused).tolist()}}  # fmt: skip
        face_meta = {"rule": FACE_RULE, "frames_with_face": int(np.isfinite(face).all(axis=1).sum())}
        status = np.full(len(clip.kpts), K.DETECTED, np.int8)
        # every frame is drawn; "detected" counts the frames where the detector found someone
        return Drawing(thr, status, clip.has, clip.kpts, clip.scores, drawn, face, fit, WanDrawn(wan, fit),
                       int(clip.found.sum()), face_meta, model_meta, {"wan_body": wan.body20(), "body_reused": wan.reused},
                       retarget=retarget)  # fmt: skip
