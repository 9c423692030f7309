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
from typing import TYPE_CHECKING

import numpy as np

from animate_cli import media
from animate_cli.errors import EverAnimateError
from animate_cli.progress import NullReporter, Reporter
from animate_cli.report import settings as S
from animate_cli.report.colour import to_lab

if TYPE_CHECKING:
    from animate_cli.pose.estimator import RtmlibEstimator
    from animate_cli.report.joins import ChunkLayout

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
    colour = mean_lab(region).astype(np.float64)
    return Person(kpts, scores, thr, np.asarray(box, np.float64), face, colour)


def mean_lab(image: np.ndarray) -> np.ndarray:
    """(3,) mean CIELAB of `image`, read on a grid of about SEAM_FIX_STATS_PIXELS pixels (a mean needs no more)."""
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / S.SEAM_FIX_STATS_PIXELS)))
    return to_lab(image[::step, ::step]).reshape(-1, 3).mean(axis=0)


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


# --- the report's identity and pose sections --------------------------------------------------------------
IDENTITY_MEASURE = "face colour histogram intersection + gradient-orientation cosine, averaged (0..1)"
PCK_MEASURE = (f"PCK: share of COCO body points within {S.PCK_ALPHA:g} torso lengths of the driving pose, "
               "both skeletons centred on the torso and scaled by its length")  # fmt: skip


@dataclass(frozen=True)
class PeopleJob:
    """The video the pose models look at, and what it is compared with."""

    video: Path
    fps: float
    frames: int  # as the scan counted them
    layout: ChunkLayout
    driving: Path | None  # pose adherence is measured against it
    ref_img: np.ndarray | None  # identity is measured against its face


@dataclass(frozen=True)
class PeopleFigures:
    """The report's identity and pose sections, and the person colours the drift section compares."""

    identity: dict
    pose: dict
    ref_lab: np.ndarray | None = None  # mean colour inside the reference's person box
    person_lab: dict[int, np.ndarray] | None = None  # chunk -> mean colour inside the output's person boxes

    @classmethod
    def off(cls, reason: str, **detail: str | None) -> PeopleFigures:
        section = {"available": False, "reason": reason, **detail}
        return cls(section, section)


class _ChunkOf:
    """The chunk of an output frame (a frame past the scanned end counts in the last chunk)."""

    def __init__(self, layout: ChunkLayout, frames: int) -> None:
        self.count = len(layout.starts)
        self._of = np.searchsorted(np.asarray(layout.starts), np.arange(frames), side="right") - 1
        self._last = frames - 1

    def __call__(self, k: int) -> int:
        return self._of[min(k, self._last)]


def measure_people(est: RtmlibEstimator, job: PeopleJob, reporter: Reporter) -> PeopleFigures:
    """Identity (against the --ref face, else the first face in the video) and pose adherence (against
    `job.driving`) on the sampled frames, per chunk."""
    samples = sample_people(job.video, est, job.fps, reporter, job.frames)
    ref_person = look(est, job.ref_img) if job.ref_img is not None else None
    chunk_of = _ChunkOf(job.layout, job.frames)
    identity = _identity(samples, ref_person, job.ref_img is not None, chunk_of)
    if job.driving is None:
        pose = {"available": False, "reason": "no --driving video"}
    else:
        drv = driving_people(job.driving, est, [k for k, p in samples if p is not None], job.fps, reporter)
        values = []
        for k, p in samples:
            d = drv.get(k)
            score = pck(p, d) if (p is not None and d is not None) else None
            if score is not None:
                values.append((k, score))
        pose = _section(values, PCK_MEASURE, chunk_of, len(samples))
    if ref_person is None:
        return PeopleFigures(identity, pose)
    colours: dict[int, list] = {}
    for k, p in samples:
        if p is not None:
            colours.setdefault(int(chunk_of(k)), []).append(p.colour)
    person_lab = {c: np.mean(v, axis=0) for c, v in colours.items()} or None
    return PeopleFigures(identity, pose, ref_person.colour, person_lab)


def _identity(samples: list[tuple[int, Person | None]], ref_person: Person | None, has_ref: bool,
              chunk_of: _ChunkOf) -> dict:  # fmt: skip
    ref_face = ref_person.face if ref_person is not None else None
    where = "the --ref image's face"
    if ref_face is None:
        ref_face = next((p.face for _, p in samples if p is not None and p.face is not None), None)
        where = "the first face found in the video" + (" (none found in --ref)" if has_ref else "")
    values = [] if ref_face is None else [(k, face_similarity(p.face, ref_face)) for k, p in samples
                                          if p is not None and p.face is not None]  # fmt: skip
    return _section(values, IDENTITY_MEASURE, chunk_of, len(samples), {"reference": where})


def _section(values: list[tuple[int, float]], measure: str, chunk_of: _ChunkOf, samples: int,
             extra: dict | None = None) -> dict:  # fmt: skip
    """One measure's section: its mean, its worst chunk, each chunk's mean and every sampled value."""
    chunks = []
    for c in range(chunk_of.count):
        v = [x for k, x in values if chunk_of(k) == c]
        chunks.append({"chunk": c, "value": round(float(np.mean(v)), 4) if v else None, "samples": len(v)})
    means = [c["value"] for c in chunks if c["value"] is not None]
    worst = min((c for c in chunks if c["value"] is not None), key=lambda c: c["value"], default=None)
    return {"available": bool(values), "measure": measure, "sample_fps": S.PEOPLE_FPS, "samples": samples,
            "measured": len(values), "mean": round(float(np.mean(means)), 4) if means else None,
            "min_chunk": worst and {"chunk": worst["chunk"], "value": worst["value"]},
            "per_chunk": chunks, "series": [[k, round(v, 4)] for k, v in values], **(extra or {}),
            **({} if values else {"reason": "no face or person found in the sampled frames"})}  # fmt: skip
