"""Identity and pose adherence: the pose stage's models run on sampled output frames (PEOPLE_FPS).

For each sampled frame the detector's largest person gets 133 whole-body keypoints (pose.estimator); the
face box is Wan's box around the confident face landmarks (pose.face.face_box_float), the same box the
pose stage crops face.mp4 with.

Identity (no downloaded model): the face crop, resized to FACE_SIZE, is described by
  * a joint CIELAB colour histogram (HIST_BINS per axis): skin tone, hair and eye colour, lighting;
  * a HOG-like descriptor (HOG_CELLS x HOG_CELLS cells of HOG_BINS gradient orientations): where the
    edges of eyes, brows, mouth and hair line lie.
Similarity = mean of histogram intersection and cosine of the gradient descriptors, 1.0 for the same crop.
It measures whether the face keeps the reference's colours and layout, not who the person is: a change of
skin tone, make-up, hair or lighting lowers it, and so does a head turned far away from the reference's.

Pose adherence: the output's and the driving video's body keypoints (COCO 17) at the same output frame,
each skeleton centred on its torso and divided by its torso length, so placement and scale on the canvas do
not count; the share of points confident in both that lie within PCK_ALPHA torso lengths (PCK).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animate_cli import media
from animate_cli.errors import EverAnimateError
from animate_cli.progress import NullReporter, Reporter
from animate_cli.report import settings as S
from animate_cli.report.colour import to_lab

MIN_BOX_PX = 32  # as the pose stage: smaller detections give no usable skeleton
MIN_FACE_POINTS = 20  # of 68 face landmarks, as the pose stage's face box


@dataclass
class Person:
    kpts: np.ndarray  # (133, 2) pixels of the frame
    scores: np.ndarray  # (133,)
    thr: float  # this frame's confidence cut (half its median torso score, the pose stage's auto rule)
    box: np.ndarray  # (4,) person box xyxy
    face: tuple[np.ndarray, np.ndarray] | None  # face descriptor (histogram, gradients), None without a face
    colour: np.ndarray  # (3,) mean CIELAB inside the person box


def load_estimator(weights_dir: Path, device: str = "cpu"):
    """(estimator, None) when the pose models are installed, else (None, why not)."""
    from animate_cli.pose import find_pose_models

    try:
        det, pose = find_pose_models(weights_dir)
        from animate_cli.pose.estimator import RtmlibEstimator

        # rtmlib prints "load ... with onnxruntime backend" (the estimator sends it to stderr): at the end of a run
        # with --progress json, stderr must hold only events, so it is dropped here
        with contextlib.redirect_stderr(io.StringIO()):
            return RtmlibEstimator(det, pose, device), None
    except EverAnimateError as e:
        return None, e.message
    except ImportError as e:
        return None, f"the pose extra is not installed ({e.name})"


def face_descriptor(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(HIST_BINS^3,) colour histogram summing to 1, (HOG_CELLS^2 * HOG_BINS,) unit gradient descriptor."""
    from PIL import Image

    face = np.asarray(Image.fromarray(crop).resize((S.FACE_SIZE, S.FACE_SIZE), Image.BILINEAR))
    lab = to_lab(face).reshape(-1, 3)
    edges = (np.linspace(0, 100, S.HIST_BINS + 1), np.linspace(-60, 60, S.HIST_BINS + 1), np.linspace(-60, 60, S.HIST_BINS + 1))
    hist, _ = np.histogramdd(np.clip(lab, [0, -60, -60], [100, 60, 60]), bins=edges)
    hist = hist.ravel() / max(hist.sum(), 1)
    gy, gx = np.gradient(to_lab(face)[..., 0].astype(np.float64))
    mag, ang = np.hypot(gx, gy), np.mod(np.degrees(np.arctan2(gy, gx)), 180.0)
    cell = S.FACE_SIZE // S.HOG_CELLS
    b = np.minimum((ang / (180.0 / S.HOG_BINS)).astype(int), S.HOG_BINS - 1)
    hog = np.zeros((S.HOG_CELLS, S.HOG_CELLS, S.HOG_BINS))
    cy, cx = np.mgrid[0 : S.FACE_SIZE, 0 : S.FACE_SIZE] // cell
    np.add.at(hog, (cy.ravel(), cx.ravel(), b.ravel()), mag.ravel())
    hog = hog.ravel()
    return hist, hog / max(float(np.linalg.norm(hog)), 1e-9)


def face_similarity(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """0..1: mean of colour-histogram intersection and gradient-descriptor cosine."""
    return float(0.5 * np.minimum(a[0], b[0]).sum() + 0.5 * max(0.0, float(a[1] @ b[1])))


def look(est, frame: np.ndarray) -> Person | None:
    """The largest person in `frame` with keypoints, face descriptor and colour; None when nobody is found."""
    from animate_cli.pose.face import FACE68, clip_box, face_box_float
    from animate_cli.pose.track import largest

    boxes = est.detect(frame)
    boxes = boxes[(boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_PX] if len(boxes) else boxes
    if len(boxes) == 0:
        return None
    box = boxes[largest(boxes)]
    kpts, scores = est.estimate(frame, box)
    torso = scores[list(S.TORSO)]
    thr = 0.5 * float(np.median(torso)) if (torso > 0).any() else np.inf
    h, w = frame.shape[:2]
    face = None
    ok = (scores[FACE68] >= thr) & np.isfinite(kpts[FACE68]).all(axis=1)
    if ok.sum() >= MIN_FACE_POINTS:
        fb = clip_box(face_box_float(kpts[FACE68][ok]), w, h)
        if fb is not None:
            face = face_descriptor(np.ascontiguousarray(frame[fb[1] : fb[3], fb[0] : fb[2]]))
    pb = clip_box(box, w, h)
    region = frame if pb is None else frame[pb[1] : pb[3], pb[0] : pb[2]]
    step = max(1, int(np.sqrt(region.shape[0] * region.shape[1] / S.SEAM_FIX_STATS_PIXELS)))
    colour = to_lab(region[::step, ::step]).reshape(-1, 3).mean(axis=0).astype(np.float64)
    return Person(kpts, scores, thr, np.asarray(box, np.float64), face, colour)


def sample_people(video: Path, est, video_fps: float, reporter: Reporter | None = None,
                  total: int | None = None) -> list[tuple[int, Person | None]]:  # fmt: skip
    """(output frame index, Person or None) for every round(fps / PEOPLE_FPS)-th frame (streamed, frames not kept)."""
    reporter = reporter or NullReporter()
    step = max(1, round(video_fps / S.PEOPLE_FPS))
    reporter.stage("people", total and (total + step - 1) // step, "pose models on the output")
    out = []
    for j, frame in enumerate(media.iter_frames(video, every=step)):
        out.append((j * step, look(est, frame)))
        reporter.advance("people")
    return out


def driving_people(
    driving: Path, est, out_frames: list[int], fps: float, reporter: Reporter | None = None
) -> dict[int, Person | None]:
    """{output frame: the driving video's Person at that frame} for `out_frames` of an output at `fps`. The
    driving video is put on the output's clock by its frame timestamps, as every stage reads it
    (media.timeline), and read ping-pong past its end as the rollout plan does (rollout.plan.pingpong);
    streamed, frames not kept."""
    from animate_cli.rollout.plan import pingpong

    reporter = reporter or NullReporter()
    info = media.probe(driving)
    src = info.timeline.source_indices(fps, max(1, info.frames_at(fps)))
    source_of = {k: int(src[pingpong(k, len(src))]) for k in out_frames}
    need = set(source_of.values())
    reporter.stage("driving", len(need), "pose models on the driving video")
    seen: dict[int, Person | None] = {}
    if need:
        for i, frame in media.iter_source_frames(driving, min(need), max(need)):
            if i in need:
                seen[i] = look(est, frame)
                reporter.advance("driving")
    return {k: seen.get(i) for k, i in source_of.items()}


def _normalised(p: Person) -> tuple[np.ndarray, np.ndarray] | None:
    """(17, 2) body points centred on the torso and divided by the torso length, (17,) confident mask."""
    idx = list(S.PCK_POINTS)
    conf = p.scores[idx] >= p.thr
    t = list(S.TORSO)
    if not (p.scores[t] >= p.thr).all():
        return None
    shoulders, hips = p.kpts[[5, 6]].mean(axis=0), p.kpts[[11, 12]].mean(axis=0)
    length = float(np.linalg.norm(shoulders - hips))
    if length < 1.0:
        return None
    return (p.kpts[idx] - p.kpts[t].mean(axis=0)) / length, conf


def pck(out: Person, drv: Person) -> float | None:
    """Share of body points confident in both within PCK_ALPHA torso lengths; None when a torso is missing."""
    a, b = _normalised(out), _normalised(drv)
    if a is None or b is None:
        return None
    both = a[1] & b[1]
    if not both.any():
        return None
    return float((np.linalg.norm(a[0][both] - b[0][both], axis=1) <= S.PCK_ALPHA).mean())
