"""`--pose-model rtmw`: rtmlib's detector + RTMW keypoints with our own whole-clip rules.

Pass 1 follows one person with the tracker (track.py). Pass 2: score thresholds (keypoints.py), short gaps
interpolated, zero-phase smoothing unless `smooth` is "none", face boxes from the confident landmarks,
the optional retarget (retarget.py), and the fit of the source-size drawing onto the output canvas
(geometry.py: the person's extent over the clip, or a blind centre crop). Never across a segment boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from animate_cli.errors import NoPersonDetectedError
from animate_cli.pose import keypoints as K
from animate_cli.pose.estimator import default_threshold_rule
from animate_cli.pose.face import FACE68, MIN_FACE_POINTS, clip_box, crop_face, face_boxes, smooth_face_boxes
from animate_cli.pose.geometry import center_crop_fit, person_fit
from animate_cli.pose.model import Drawing
from animate_cli.pose.render import draw_wan_pose, to_wan_meta
from animate_cli.pose.scan import Seen
from animate_cli.pose.track import tall_enough

if TYPE_CHECKING:
    from animate_cli.pose.clip import Clip
    from animate_cli.pose.estimator import PoseEstimator
    from animate_cli.pose.geometry import Fit, PlacedFit
    from animate_cli.pose.model import RefPose
    from animate_cli.pose.scan import Scan, Span
    from animate_cli.pose.settings import PoseSettings
    from animate_cli.progress import Reporter

FACE_RULE = "wan get_face_bboxes (area x1.3, 3:1 above:below), clipped; confident landmarks only"
NO_FACE_EFFECT = ("face.mp4 will be all black, which is the model's 'no face' input: the generated face will not "
                  "follow the driving expressions (mouth, eyes), only the pose")  # fmt: skip


@dataclass(frozen=True)
class RtmwFrames:
    """Wan's renderer on our keypoints at the source size, placed by the fit; the face crop from the frame."""

    kpts: np.ndarray  # (T, 133, 2) drawn
    scores: np.ndarray
    status: np.ndarray
    face: np.ndarray  # (T, 4) float boxes, source pixels
    thresholds: K.Thresholds
    fit: Fit | PlacedFit
    src_size: tuple[int, int]  # (width, height) of the source frames

    def pose_frame(self, k: int) -> np.ndarray:
        fit = self.fit
        if self.status[k] == K.EMPTY:
            return np.zeros((fit.height, fit.width, 3), np.uint8)
        canvas = np.zeros((fit.src_h, fit.src_w, 3), np.uint8)  # Wan draws at the source size
        draw_wan_pose(canvas, to_wan_meta(self.kpts[k], self.scores[k]), self.thresholds.body, self.thresholds.hand)
        return fit.apply(canvas)

    def face_frame(self, k: int, frame: np.ndarray) -> np.ndarray:
        return crop_face(frame, clip_box(self.face[k], *self.src_size))


class RtmwModel:
    name = "rtmw"

    def __init__(self, estimator: PoseEstimator):
        self.estimator = estimator

    def seen(self, frame: np.ndarray, scan: Scan) -> Seen:
        """The tracked person of one frame (nobody when the tracker lost them or waits to re-seed)."""
        boxes = tall_enough(self.estimator.detect(frame))
        box = scan.tracker.update(boxes)
        epoch = scan.tracker.track_id + len(scan.cuts)  # both only grow: a new value at every seed and every cut
        if box is None:
            return Seen(None, None, None, len(boxes), epoch)
        kpts, scores = self.estimator.estimate(frame, box)
        return Seen(box, kpts.astype(np.float32), scores.astype(np.float32), len(boxes), epoch)

    def post(self, clip: Clip, span: Span, settings: PoseSettings, ref: RefPose | None, reporter: Reporter) -> Drawing:
        """Thresholds, gaps, smoothing, face boxes, retarget and the person fit."""
        s = settings
        thr = _thresholds(s, self.estimator.pose_name, clip.scores, clip.has)
        valid = K.valid_frames(clip.scores, clip.has, thr.body)
        if not valid.any():
            raise NoPersonDetectedError(f"no frame of {span.driving} has a usable skeleton (fewer than "
                                        f"{K.MIN_BODY_POINTS} confident body points)")  # fmt: skip
        kpts, scores, status = K.fill_gaps(clip.kpts, clip.scores, valid, s.max_gap_frames, clip.segment)
        if s.smooth != "none":
            kpts = K.smooth_keypoints(kpts, scores, status, s.fps, thr, clip.segment)
        face = face_boxes(kpts, scores, status, thr.face)
        if s.smooth != "none":
            face = smooth_face_boxes(face, s.fps, clip.segment)
        warnings = _face_warnings(self.estimator.pose_name, clip.scores, status, face)
        for w in warnings:
            reporter.log(f"warning: {w}")
        drawn, retarget = kpts, None
        if s.retarget:
            from animate_cli.pose.retarget import retarget_sequence

            drawn, retarget = retarget_sequence(kpts, scores, status, thr, ref)
        info = span.info
        if s.fit == "crop":
            fit = center_crop_fit(info.width, info.height, s.width, s.height)
        else:
            fit = person_fit(info.width, info.height, s.width, s.height, _drawn_points(drawn, scores, status, thr))
        frames = RtmwFrames(drawn, scores, status, face, thr, fit, (info.width, info.height))
        face_meta = {"rule": FACE_RULE, "min_landmarks": MIN_FACE_POINTS, "frames_with_face": _with_face(face)}
        return Drawing(thr, status, valid, kpts, scores, drawn, face, fit, frames, int((status == K.DETECTED).sum()),
                       face_meta, retarget=retarget, warnings=warnings)  # fmt: skip


def _with_face(face: np.ndarray) -> int:
    return int(np.isfinite(face).all(axis=1).sum())


def _thresholds(s: PoseSettings, pose_name: str, scores: np.ndarray, has: np.ndarray) -> K.Thresholds:
    if s.body_thr is not None:
        return K.fixed_thresholds(s.body_thr, s.hand_thr, rule="set by the caller")
    fixed = default_threshold_rule(pose_name)
    if fixed is not None:
        return K.fixed_thresholds(fixed, s.hand_thr, rule=f"model default for {pose_name}")
    thr = K.auto_thresholds(scores, has)
    return thr if s.hand_thr is None else K.Thresholds(thr.body, s.hand_thr, thr.face, thr.rule)


def _drawn_points(kpts: np.ndarray, scores: np.ndarray, status: np.ndarray, thr: K.Thresholds) -> np.ndarray:
    """(N, 2) every keypoint the renderer will draw over the clip (body, feet, hands above threshold)."""
    seen = status != K.EMPTY
    body = kpts[seen][:, :23][scores[seen][:, :23] >= thr.body]
    hands = kpts[seen][:, 91:][scores[seen][:, 91:] >= thr.hand]
    return np.concatenate([body.reshape(-1, 2), hands.reshape(-1, 2)])


def _face_warnings(pose_name: str, scores: np.ndarray, status: np.ndarray, face: np.ndarray) -> list[str]:
    """Say so when face.mp4 will be black throughout, and what that does to the animation."""
    seen = status != K.EMPTY
    if seen.any() and not (scores[seen][:, FACE68] > 0).any():
        return [f"the pose model {pose_name} predicts no face keypoints; {NO_FACE_EFFECT}"]
    if seen.any() and not np.isfinite(face).all(axis=1).any():
        return [f"no face was found in any frame (turned away, covered or too small); {NO_FACE_EFFECT}"]
    return []
