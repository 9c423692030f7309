"""The pose stage: driving video -> pose.mp4 + face.mp4 + pose.json, and its content-addressed cache.

Two streamed passes over the driving video, so memory does not grow with its length (only the
keypoints do, ~1.6 MB per 1000 frames):
  1. decode -> detect hard cuts -> the pose model's person and 133 keypoints, for each source frame the
     time map uses (media.timeline: output frame k shows the source at start + k / fps, by the frames'
     presentation timestamps), over only the span asked for (`frames`: what `run` will read) (scan.py);
  2. whole-clip post-processing on the small arrays (clip.py, then the pose model's `post`: rtmw.py or
     wan/model.py), never across a segment boundary (a tracker re-seed or a hard cut);
  3. decode again -> draw Wan's skeleton, place it on the output canvas, crop the face to 512x512 ->
     H.264 (write.py).
Everything is written into a hidden temporary folder and moved into place at the end (pose.json last),
so a failure never leaves files that look complete.

The cache (`cached_extract_pose`) is keyed without the length: it keeps pass 1's results (scan.npz), so
a later, longer request estimates only the source frames not seen yet, then post-processes and renders
its whole span again (the thresholds, gap filling, smoothing and fit look at the whole span).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animate_cli import media
from animate_cli.errors import BadInputError, NoPersonDetectedError, OutputExistsError
from animate_cli.media import locks
from animate_cli.media.files import writing
from animate_cli.pose import write as out
from animate_cli.pose.choice import PoseModels
from animate_cli.pose.clip import Clip, expand
from animate_cli.pose.estimator import file_sha256
from animate_cli.pose.model import RefPose
from animate_cli.pose.scan import SCAN_FILE, Scan, Span, max_lost, scan_span
from animate_cli.pose.settings import (
    FACE_FILE,
    KEYPOINTS_FILE,
    META_FILE,
    OVERLAY_FILE,
    POSE_FILE,
    PoseOutputs,
    PoseResult,
    PoseSettings,
    validate_settings,
)
from animate_cli.pose.track import largest, tall_enough
from animate_cli.progress import NullReporter, Reporter

if TYPE_CHECKING:
    from animate_cli.pose.estimator import PoseEstimator
    from animate_cli.pose.model import Drawing, PoseModel

PARTIAL_PREFIX = ".pose-partial-"  # hidden folder an extraction writes into before moving files into place
ALL_DEFAULTS = PoseOutputs()  # the whole range, no optional files, nothing replaced


@dataclass(frozen=True)
class _Job:
    driving: Path
    out_dir: Path
    settings: PoseSettings
    ref: Path | None
    outputs: PoseOutputs
    keep_scan: bool  # keep pass 1's results in out_dir (scan.npz) and continue from the ones already there


@dataclass(frozen=True)
class _Passes:
    """Passes 1 and 2 done: everything pass 3 and the files need."""

    span: Span
    scan: Scan
    clip: Clip
    drawing: Drawing
    models: dict  # pose.json "models"
    t_infer: float


def extract_pose(driving: Path, out_dir: Path, settings: PoseSettings, models: PoseModels | PoseEstimator,
                 reporter: Reporter | None = None, *, ref: Path | None = None,
                 outputs: PoseOutputs = ALL_DEFAULTS) -> PoseResult:  # fmt: skip
    """Extract the pose and face control videos of `driving` into `out_dir` (see the module docstring).

    `models`: the two ONNX files to open (pose.choice.PoseModels), or an estimator that is already open (a
    caller extracting several videos keeps one). `ref`: the reference image (needed by settings.retarget).
    Holds the lock of out_dir (locks.py) throughout: a second extraction into the same folder waits for
    the first, then finds its outputs (OutputExistsError unless outputs.overwrite).
    Raises UsageError (settings), BadInputError / NoPersonDetectedError / OutputExistsError, WeightsMissingError.
    """
    reporter = reporter or NullReporter()
    validate_settings(settings, ref)
    job = _Job(Path(driving), Path(out_dir), settings, None if ref is None else Path(ref), outputs, keep_scan=False)
    with locks.hold(job.out_dir, wait=True, log=reporter.log):
        return _extract_locked(job, models, reporter)


def _extract_locked(job: _Job, models: PoseModels | PoseEstimator, reporter: Reporter) -> PoseResult:
    """extract_pose, for a caller that holds the lock of out_dir."""
    _check_folder(job)
    span = _span(job)
    t0 = time.monotonic()
    est = open_estimator(job.settings, models, reporter) if isinstance(models, PoseModels) else models
    model = pose_model(job.settings, est)
    ref = None if job.ref is None else reference_pose(est, job.ref)
    first, lost = int(span.src[0]), max_lost(span.info, job.settings)
    scan = (Scan.load(job.out_dir / SCAN_FILE, first, lost) if job.keep_scan else None) or Scan.begin(first, lost)
    scan = scan_span(span, model.seen, scan, reporter)
    clip = expand(span.src, scan)
    if not clip.has.any():
        raise NoPersonDetectedError(f"no person detected in any frame of {job.driving}",
                                    hint="the driving video needs one clearly visible person")  # fmt: skip
    drawing = model.post(clip, span, job.settings, ref, reporter)
    files = models if isinstance(models, PoseModels) else None
    passes = _Passes(span, scan, clip, drawing, out.models_meta(est, files), time.monotonic() - t0)
    return _write(job, passes, reporter)


def open_estimator(settings: PoseSettings, models: PoseModels, reporter: Reporter) -> PoseEstimator:
    """The onnxruntime sessions of `models` on settings.device (wan: YOLOv10m + ViTPose-H; rtmw: rtmlib)."""
    if settings.model == "wan":
        from animate_cli.pose.wan.estimator import WanEstimator

        return WanEstimator(models.det_onnx, models.pose_onnx, settings.device)
    from animate_cli.pose.estimator import RtmlibEstimator

    est = RtmlibEstimator(models.det_onnx, models.pose_onnx, settings.device)
    if est.fallback:  # --device auto and onnxruntime's CUDA provider could not run: on the CPU instead
        reporter.log(est.fallback)
    return est


def pose_model(settings: PoseSettings, estimator: PoseEstimator) -> PoseModel:
    """The implementation of settings.model on an open estimator."""
    if settings.model == "wan":
        from animate_cli.pose.wan.model import WanModel

        return WanModel(estimator)
    from animate_cli.pose.rtmw import RtmwModel

    return RtmwModel(estimator)


def reference_pose(est: PoseEstimator, ref: Path) -> RefPose:
    """The largest person of the reference image (NoPersonDetectedError without one)."""
    image = media.load_image(ref)
    boxes = tall_enough(est.detect(image))
    if len(boxes) == 0:
        raise NoPersonDetectedError(f"no person detected in the reference image {ref}",
                                    hint="use an image where the whole person is clearly visible")  # fmt: skip
    kpts, scores = est.estimate(image, boxes[largest(boxes)])
    return RefPose(kpts, scores, image.shape[1], image.shape[0])


def _check_folder(job: _Job) -> None:
    """Remove what a killed extraction left; refuse to replace outputs without `overwrite`."""
    for stale in job.out_dir.glob(f"{PARTIAL_PREFIX}*"):  # only the lock holder writes here
        shutil.rmtree(stale, ignore_errors=True)
    existing = [n for n in job.outputs.names() if (job.out_dir / n).exists()]
    if existing and not job.outputs.overwrite:
        raise OutputExistsError(f"{job.out_dir / existing[0]} already exists", hint="pass --overwrite to replace it")


def output_span(info: media.VideoInfo, s: PoseSettings, frames: int | None) -> tuple[np.ndarray, int]:
    """(src, n_total): the source frame of each output frame to extract, and how many output frames the
    whole requested range (settings' start/seconds) has. `frames` caps the extraction (None: all of it)."""
    n_total = info.frames_at(s.fps, s.start, s.seconds)
    n_out = n_total if frames is None else min(int(frames), n_total)
    return info.timeline.source_indices(s.fps, n_out, s.start), n_total


def _span(job: _Job) -> Span:
    s = job.settings
    info = media.probe(job.driving)
    src, n_total = output_span(info, s, job.outputs.frames)
    if len(src) == 0:
        raise BadInputError(
            f"no frames in {job.driving} from {s.start:g} s (it lasts {info.duration:.3f} s; check --start/--seconds)"
        )
    return Span(job.driving, info, src, n_total)


def _write(job: _Job, p: _Passes, reporter: Reporter) -> PoseResult:
    """Pass 3 and the files, into a hidden folder, then moved into place (pose.json last); any file error
    (disk full, read-only) is one line naming the file (media.files.writing), and the hidden folder goes away."""
    out_dir, o = job.out_dir, job.outputs
    tmp = out_dir / f"{PARTIAL_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    try:
        t1 = time.monotonic()
        out.render_pass(p.span, job.settings, p.drawing, tmp, reporter, o.overlay)
        timings = out.Timings(p.t_infer, time.monotonic() - t1)
        if o.keypoints:
            with writing(out_dir / KEYPOINTS_FILE):
                out.save_keypoints(tmp / KEYPOINTS_FILE, p.span, p.clip, p.drawing)
        meta = out.pose_json(p.span, job.settings, p.clip, p.drawing, p.models, timings)
        with writing(out_dir / META_FILE):
            out.write_json(tmp / META_FILE, meta)
            _move_into_place(job, tmp, p.scan)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c = out.counts(p.drawing)
    return PoseResult(out_dir / POSE_FILE, out_dir / FACE_FILE, out_dir / META_FILE, len(p.span.src), job.settings.fps,
                      job.settings.width, job.settings.height, c["detected"], c["interpolated"], c["empty"],
                      out_dir / KEYPOINTS_FILE if o.keypoints else None, out_dir / OVERLAY_FILE if o.overlay else None,
                      complete=p.span.complete, model=meta["pose_model"])  # fmt: skip


def _move_into_place(job: _Job, tmp: Path, scan: Scan) -> None:
    out_dir, names = job.out_dir, job.outputs.names()
    if job.outputs.overwrite:  # drop optional files of an earlier extraction that this one does not replace
        for stale in (KEYPOINTS_FILE, OVERLAY_FILE):
            if stale not in names:
                (out_dir / stale).unlink(missing_ok=True)
    for n in names:
        if n != META_FILE:
            os.replace(tmp / n, out_dir / n)
    if job.keep_scan:
        scan.save(out_dir / SCAN_FILE)  # before pose.json: a scan never claims more than what pose.json can point to
    os.replace(tmp / META_FILE, out_dir / META_FILE)  # last: its presence marks a complete extraction


# --- cache ------------------------------------------------------------------------------------------


def cache_key(driving: Path, settings: PoseSettings, det_onnx: Path, pose_onnx: Path, ref: Path | None = None) -> str:
    """sha256(driving bytes + settings json + model file hashes [+ ref bytes when retargeting])[:16].

    The onnxruntime device is not part of the key (it is always hashed as "cpu"): CPU and CUDA run the same
    model files, and their outputs differ only by float rounding in the convolutions, well below a
    keypoint's SimCC bin. Keeping it out means a pose video is extracted once and reused whichever provider
    ran it (pose.json records which), so a run resumed on another machine finds the same pose video, whose
    digest its resume state checks."""
    h = hashlib.sha256()
    with open(driving, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(replace(settings, device="cpu").to_json().encode())
    for p in map(Path, (det_onnx, pose_onnx)):  # files: choice.choose_models resolves a model folder to its end2end.onnx
        h.update(file_sha256(p).encode())
    if settings.retarget and ref is not None:
        h.update(Path(ref).read_bytes())
    return h.hexdigest()[:16]


def load_result(out_dir: Path) -> PoseResult | None:
    """The PoseResult of a complete extraction in out_dir (pose.json present, both videos decodable with the
    recorded frame count), else None."""
    meta_path = Path(out_dir) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
        pose, face = Path(out_dir) / POSE_FILE, Path(out_dir) / FACE_FILE
        n = int(meta["output"]["frames"])
        w, h = meta["output"]["size"]
        if meta.get("schema") != out.SCHEMA or media.count_frames(pose) != n or media.count_frames(face) != n:
            return None
        c = meta["counts"]
        return PoseResult(pose, face, meta_path, n, float(meta["output"]["fps"]), int(w), int(h),
                          int(c["detected"]), int(c["interpolated"]), int(c["empty"]), cached=True,
                          complete=bool(meta["span"]["complete"]), model=meta.get("pose_model", "rtmw"))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, BadInputError):
        return None


def cached_extract_pose(driving: Path, cache_root: Path, settings: PoseSettings, models: PoseModels,
                        reporter: Reporter | None = None, *, ref: Path | None = None,
                        outputs: PoseOutputs = ALL_DEFAULTS) -> PoseResult:  # fmt: skip
    """extract_pose into cache_root/pose-<key>, for at least the first outputs.frames output frames (None:
    all). An earlier extraction with the same key is reused when it has that many frames (or all there
    are); otherwise pass 1 continues from its scan and the longer span is rendered (replacing the entry)."""
    reporter = reporter or NullReporter()
    driving = Path(driving)
    if not driving.is_file():
        raise BadInputError(f"video not found: {driving}")
    out_dir = Path(cache_root) / f"pose-{cache_key(driving, settings, models.det_onnx, models.pose_onnx, ref)}"
    validate_settings(settings, ref)
    # Runs on other outputs in this folder may want the same key at the same time: one extracts while
    # the others wait for its lock, then find the finished extraction and reuse it.
    with locks.hold(out_dir, wait=True, log=reporter.log):
        done = load_result(out_dir)
        frames = outputs.frames
        if done is not None and (done.complete or (frames is not None and done.frames >= frames)):
            reporter.log(f"pose: reusing {out_dir}")
            return done
        job = _Job(driving, out_dir, settings, None if ref is None else Path(ref), replace(outputs, overwrite=True),
                   keep_scan=True)  # fmt: skip
        return _extract_locked(job, models, reporter)
