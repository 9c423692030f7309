"""The pose stage: driving video -> pose.mp4 + face.mp4 + pose.json, and its content-addressed cache.

Two streamed passes over the driving video, so memory does not grow with its length (only the
keypoints do, ~1.6 MB per 1000 frames):
  1. decode -> detect hard cuts -> detect -> track one person -> 133 keypoints, for each source frame
     the time map uses (media.timeline: output frame k shows the source at start + k / fps, by the
     frames' presentation timestamps), over only the span asked for (`frames`: what `run` will read);
  2. whole-clip post-processing (thresholds, gaps, smoothing, face boxes, retarget) on the small arrays,
     never across a segment boundary (a tracker re-seed or a hard cut: the person may have changed);
  3. decode again -> draw Wan's skeleton at source resolution, place it on the output canvas by the
     person's extent over the clip (geometry.person_fit), crop the face to 512x512 -> H.264.
pose.json counts output frames (at the output fps) everywhere except under "source" and "frame_map".
Everything is written into a hidden temporary folder and moved into place at the end (pose.json last),
so a failure never leaves files that look complete.

The cache (`cached_extract_pose`) is keyed without the length: it keeps pass 1's results (pose.scan), so
a later, longer request estimates only the source frames not seen yet, then post-processes and renders
its whole span again (the thresholds, gap filling, smoothing and fit look at the whole span).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from animate_cli import config as C
from animate_cli import media
from animate_cli.errors import BadInputError, NoPersonDetectedError, OutputExistsError, UsageError
from animate_cli.media import locks
from animate_cli.media.files import writing
from animate_cli.pose import keypoints as K
from animate_cli.pose.estimator import PoseEstimator, default_threshold_rule, file_sha256
from animate_cli.pose.geometry import center_crop_fit, person_fit
from animate_cli.pose.render import FACE68, FACE_SIZE, clip_box, crop_face, draw_overlay, draw_wan_pose, to_wan_meta
from animate_cli.pose.scan import SCAN_FILE, Scan
from animate_cli.pose.settings import FIT_MODES, MAX_SIDE, MIN_SIDE, SMOOTH_MODES, PoseResult, PoseSettings
from animate_cli.progress import NullReporter, Reporter

SCHEMA = "everanimate.pose/3"  # /3: frames mapped by timestamps, partial spans (span, scan.npz); /2: segments, person fit
POSE_FILE, FACE_FILE, META_FILE = "pose.mp4", "face.mp4", "pose.json"
KEYPOINTS_FILE, OVERLAY_FILE = "keypoints.npz", "debug_overlay.mp4"
PARTIAL_PREFIX = ".pose-partial-"  # hidden folder an extraction writes into before moving files into place
MIN_BOX_PX = 32  # detections shorter than this are too small for a usable skeleton (spec §10)
# Hard-cut detector on consecutive ~64 px grey thumbnails: a cut to another shot changes most of the
# picture at once, while a person moving, entering or leaving changes only the part they cover.
CUT_THUMB_W = 64
CUT_PIXEL_DIFF = 30.0  # a thumbnail pixel "changed" when its grey level moved by more than this (of 255)
CUT_CHANGED_FRACTION = 0.5  # a cut when more than this share of the thumbnail changed


def validate_settings(settings: PoseSettings, ref: Path | None) -> None:
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


def _pick_largest_person(est: PoseEstimator, image: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from animate_cli.pose.track import largest

    boxes = est.detect(image)
    boxes = boxes[(boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_PX] if len(boxes) else boxes
    if len(boxes) == 0:
        raise NoPersonDetectedError(
            f"no person detected in {what}", hint="use an image where the whole person is clearly visible"
        )
    box = boxes[largest(boxes)]
    kpts, scores = est.estimate(image, box)
    return box, kpts, scores


def _thumb(frame: np.ndarray) -> np.ndarray:
    """A ~64 px wide grey thumbnail (float32), by striding: enough to see a hard cut, cheap on 4K frames."""
    step = max(1, frame.shape[1] // CUT_THUMB_W)
    return frame[::step, ::step].mean(axis=2, dtype=np.float32)


def _infer_pass(driving: Path, src: np.ndarray, s: PoseSettings, info: media.VideoInfo, est: PoseEstimator,
                reporter: Reporter, scan: Scan | None) -> Scan:  # fmt: skip
    """Pass 1 over source frames src[0]..src[-1], continuing `scan` (pose.scan) where it stopped. Estimates
    only the frames `src` uses and not estimated yet; progress counts exactly those.

    `epoch` changes at every hard cut and every (re-)seed of the tracker; output frames of different epochs
    are never interpolated or smoothed into each other."""
    if scan is None:
        scan = Scan.begin(int(src[0]), _max_lost(info, s))
    todo = {int(i) for i in np.unique(src) if i > scan.last}
    if not todo:
        return scan  # every frame the span uses was estimated by an earlier request
    reporter.stage("pose", len(todo), "detecting poses")
    tracker = scan.tracker

    def process(i: int, frame: np.ndarray) -> None:
        if getattr(est, "wan", False):  # Wan's pipeline: its own person choice every frame, no tracker
            box = est.select(frame)  # (5,): score -1 = nobody found, the pose model sees the whole frame
            kpts, scores = est.estimate(frame, box)
            scan.results[i] = (box, kpts.astype(np.float32), scores.astype(np.float32), int(box[4] > 0), 0)
            return
        boxes = est.detect(frame)
        boxes = boxes[(boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_PX] if len(boxes) else boxes
        box = tracker.update(boxes)
        epoch = tracker.track_id + len(scan.cuts)  # both only grow: a new value at every seed and every cut
        if box is None:
            scan.results[i] = (None, None, None, len(boxes), epoch)
        else:
            kpts, scores = est.estimate(frame, box)
            scan.results[i] = (box, kpts.astype(np.float32), scores.astype(np.float32), len(boxes), epoch)

    for i, frame in media.iter_source_frames(driving, scan.last + 1, int(src[-1])):
        thumb = _thumb(frame)
        if scan.thumb is not None and (np.abs(thumb - scan.thumb) > CUT_PIXEL_DIFF).mean() > CUT_CHANGED_FRACTION:
            scan.cuts.append(i)  # the picture changed almost entirely between i-1 and i: a hard cut
            tracker.cut()
        scan.thumb, scan.last = thumb, i
        if i in todo:
            process(i, frame)
            reporter.advance("pose")
    return scan


def _max_lost(info: media.VideoInfo, s: PoseSettings) -> int:
    """Frames the tracker waits for a lost person before re-seeding (max_gap_sec at the slower of the two rates)."""
    return max(1, round(s.max_gap_sec * min(info.fps, s.fps)))


def _expand(src: np.ndarray, results: dict, cuts: list[int]):
    """Per output frame: keypoints, scores, box, has-person, segment, reseed and cut flags."""
    t = len(src)
    kpts = np.full((t, 133, 2), np.nan, np.float64)
    scores = np.zeros((t, 133), np.float64)
    boxes = np.full((t, 4), np.nan)
    has = np.zeros(t, bool)
    found = np.zeros(t, bool)  # the detector found someone (Wan's box: score > 0; otherwise: a box at all)
    segment = np.zeros(t, np.int64)
    multi = 0
    for k, i in enumerate(src):
        box, kp, sc, n_cand, epoch = results[int(i)]
        segment[k] = epoch
        multi += n_cand > 1
        if box is not None:
            kpts[k], scores[k], boxes[k], has[k] = kp, sc, box[:4], True
            found[k] = len(box) < 5 or box[4] > 0
    cut_src = np.asarray(cuts, np.int64)
    # output frame k follows a cut when a cut source frame lies in (src[k-1], src[k]]
    cut = np.r_[False, [bool(((cut_src > a) & (cut_src <= b)).any()) for a, b in zip(src[:-1], src[1:], strict=True)]]
    # a re-seed: the first frame of a person whose segment differs from the previous person's (not after a cut)
    reseed = np.zeros(t, bool)
    last_seg, cut_since = None, False
    for k in range(t):
        cut_since |= bool(cut[k])
        if has[k]:
            if last_seg is not None and segment[k] != last_seg and not cut_since:
                reseed[k] = True
            last_seg, cut_since = segment[k], False
    return kpts, scores, boxes, has, segment, reseed, cut, int(multi), found


def output_span(info: media.VideoInfo, s: PoseSettings, frames: int | None) -> tuple[np.ndarray, int]:
    """(src, n_total): the source frame of each output frame to extract, and how many output frames the
    whole requested range (settings' start/seconds) has. `frames` caps the extraction (None: all of it)."""
    n_total = info.frames_at(s.fps, s.start, s.seconds)
    n_out = n_total if frames is None else min(int(frames), n_total)
    return info.timeline.source_indices(s.fps, n_out, s.start), n_total


def _thresholds(s: PoseSettings, pose_name: str, scores: np.ndarray, has: np.ndarray) -> K.Thresholds:
    if s.body_thr is not None:
        return K.fixed_thresholds(s.body_thr, s.hand_thr, rule="set by the caller")
    fixed = default_threshold_rule(pose_name)
    if fixed is not None:
        return K.fixed_thresholds(fixed, s.hand_thr, rule=f"model default for {pose_name}")
    thr = K.auto_thresholds(scores, has)
    return thr if s.hand_thr is None else K.Thresholds(thr.body, s.hand_thr, thr.face, thr.rule)


def output_names(out_dir: Path, save_keypoints: bool, debug_overlay: bool) -> list[str]:
    names = [POSE_FILE, FACE_FILE, META_FILE]
    return names + ([KEYPOINTS_FILE] if save_keypoints else []) + ([OVERLAY_FILE] if debug_overlay else [])


def extract_pose(driving: Path, out_dir: Path, settings: PoseSettings, det_onnx: Path | None, pose_onnx: Path | None,
                 reporter: Reporter | None = None, ref: Path | None = None, overwrite: bool = False, **opts) -> PoseResult:  # fmt: skip
    """Extract the pose and face control videos of `driving` into `out_dir` (see the module docstring).

    `estimator` replaces the rtmlib models (tests); otherwise det_onnx/pose_onnx must be local files.
    Holds the lock of out_dir (locks.py) throughout: a second extraction into the same folder waits for
    the first, then finds its outputs (OutputExistsError unless `overwrite`).
    Raises UsageError (settings), BadInputError / NoPersonDetectedError / OutputExistsError, WeightsMissingError.
    """
    reporter = reporter or NullReporter()
    validate_settings(settings, ref)
    with locks.hold(Path(out_dir), wait=True, log=reporter.log):
        return _extract_locked(driving, out_dir, settings, det_onnx, pose_onnx, reporter, ref, overwrite, **opts)


def _extract_locked(driving: Path, out_dir: Path, settings: PoseSettings, det_onnx: Path | None, pose_onnx: Path | None,
                    reporter: Reporter, ref: Path | None = None, overwrite: bool = False, *,
                    estimator: PoseEstimator | None = None, save_keypoints: bool = False,
                    debug_overlay: bool = False, frames: int | None = None, keep_scan: bool = False) -> PoseResult:  # fmt: skip
    """extract_pose, for a caller that holds the lock of out_dir. `frames`: extract only the first this many
    output frames (None: the whole range). `keep_scan`: keep pass 1's results in out_dir (pose.scan) and
    continue from the ones already there."""
    s = settings
    driving, out_dir = Path(driving), Path(out_dir)
    for stale in out_dir.glob(f"{PARTIAL_PREFIX}*"):  # left by a killed extraction (only the lock holder writes here)
        shutil.rmtree(stale, ignore_errors=True)
    names = output_names(out_dir, save_keypoints, debug_overlay)
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{out_dir / existing[0]} already exists", hint="pass --overwrite to replace it")
    info = media.probe(driving)
    src, n_total = output_span(info, s, frames)
    if len(src) == 0:
        raise BadInputError(
            f"no frames in {driving} from {s.start:g} s (it lasts {info.duration:.3f} s; check --start/--seconds)"
        )
    t0 = time.monotonic()
    if estimator is None and s.model == "wan":
        from animate_cli.pose.wan_estimator import WanEstimator

        estimator = WanEstimator(det_onnx, pose_onnx, s.device)
    elif estimator is None:
        from animate_cli.pose.estimator import RtmlibEstimator

        estimator = RtmlibEstimator(det_onnx, pose_onnx, s.device)
        if estimator.fallback:  # --device auto and onnxruntime's CUDA provider could not run: on the CPU instead
            reporter.log(estimator.fallback)
    ref_pose = None
    if ref is not None:
        ref_img = media.load_image(ref)
        ref_pose = _pick_largest_person(estimator, ref_img, f"the reference image {ref}") + (ref_img.shape[:2],)

    # 1. detect, track, estimate (streamed)
    scan = Scan.load(out_dir / SCAN_FILE, int(src[0]), _max_lost(info, s)) if keep_scan else None
    scan = _infer_pass(driving, src, s, info, estimator, reporter, scan)
    t_infer = time.monotonic() - t0
    kpts, scores, det_boxes, has, segment, reseed, cut, multi, found = _expand(src, scan.results, scan.cuts)
    if not has.any():
        raise NoPersonDetectedError(f"no person detected in any frame of {driving}",
                                    hint="the driving video needs one clearly visible person")  # fmt: skip

    # 2. whole-clip post-processing on the small keypoint arrays
    wan = None
    if getattr(estimator, "wan", False):  # Wan's pipeline: per frame, fixed 0.5, letterboxed (wan_frames)
        thr, valid, kpts_s, scores_g, status, face, warnings, draw_kpts, retarget_info, fit, wan = _post_wan(
            driving, s, info, kpts, scores, has, ref_pose, reporter
        )
    else:
        thr, valid, kpts_s, scores_g, status, face, warnings, draw_kpts, retarget_info, fit = _post_rtmw(
            driving, s, info, estimator, kpts, scores, has, segment, ref_pose, reporter
        )
    max_gap = round(s.max_gap_sec * s.fps)

    # 3. render + encode (streamed) into a hidden folder, then move into place; any file error (disk full,
    #    read-only) is one line naming the file (media.files.writing), and the hidden folder goes away
    tmp = out_dir / f"{PARTIAL_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    try:
        t1 = time.monotonic()
        written = _render_pass(
            driving, s, info, src, draw_kpts, scores_g, status, face, thr, fit, tmp, debug_overlay, reporter, wan
        )
        t_render = time.monotonic() - t1
        counts = {"detected": int((status == K.DETECTED).sum()), "interpolated": int((status == K.INTERPOLATED).sum()),
                  "empty": int((status == K.EMPTY).sum())}  # fmt: skip
        if wan is not None:  # every frame is drawn; "detected" counts frames where the detector found someone
            counts["detected"] = int(found.sum())
        if save_keypoints:
            with writing(out_dir / KEYPOINTS_FILE), open(tmp / KEYPOINTS_FILE, "wb") as f:
                np.savez(f, kpts=kpts.astype(np.float32), scores=scores.astype(np.float32),
                         kpts_smoothed=kpts_s.astype(np.float32), kpts_drawn=draw_kpts.astype(np.float32),
                         valid=valid, interp=status == K.INTERPOLATED, status=status, det_boxes=det_boxes.astype(np.float32),
                         face_boxes=face.astype(np.float32), src_index=src, segment=segment, reseed=reseed,
                         cut=cut, **({} if wan is None else {"wan_body": wan.body20(), "body_reused": wan.reused}))  # fmt: skip
        meta = {
            "schema": SCHEMA,
            "frames_unit": "output frames (at output.fps), numbered from 0; only keys under 'source' and "
                           "'frame_map' count source frames",
            "source": {"path": str(driving.resolve()), "size": [info.width, info.height], **info.timeline.to_dict(),
                       "start_s": s.start, "seconds": s.seconds},
            "span": {"frames": written, "of": n_total, "complete": written == n_total,
                     "rule": "only the first 'frames' of the 'of' output frames the range has were extracted (what the "
                             "request needed); a longer request continues pass 1 from scan.npz and renders again"},
            "output": {"fps": s.fps, "frames": written, "size": [s.width, s.height], "face_size": [FACE_SIZE, FACE_SIZE],
                       "pose_video": POSE_FILE, "face_video": FACE_FILE, "codec": "h264 yuv420p", "crf": s.crf},
            "frame_map": {"rule": "output frame k shows the source frame whose presentation time is nearest to start_s + "
                                  "k / fps_out (seconds from the first frame; exact ties to the even frame); "
                                  "n_out = int(duration_s * fps_out) over the range (media.timeline)",
                          "source_index": src.tolist(),
                          "source_time_s": np.round(info.timeline.times[src], 6).tolist()},
            "fit": {**fit.to_dict(), "draw_resolution": "source", "interpolation": "linear"},
            "face": {"rule": "wan get_face_bboxes (area x1.3, 3:1 above:below), clipped; confident landmarks only",
                     "min_landmarks": K.MIN_FACE_POINTS, "frames_with_face": int(np.isfinite(face).all(axis=1).sum())}
                    if wan is None else
                    {"rule": "wan get_face_bboxes from all 68 landmarks, no score check, unsmoothed (official)",
                     "frames_with_face": int(np.isfinite(face).all(axis=1).sum())},
            "pose_model": s.model if wan is None else "wan",
            **({} if wan is None else {"wan": {
                "pipeline": "Wan2.2-Animate official preprocessing (github Wan-Video/Wan2.2 @42bf4cf), reproduced",
                "no_detection_frames": np.flatnonzero(~found).tolist(),
                "body_reused_frames": np.flatnonzero(wan.reused).tolist()}}),
            "models": _models_meta(estimator, det_onnx, pose_onnx),
            "thresholds": thr.to_dict(),
            "tracking": {"rule": "seed largest (Wan strict), follow by IoU >= 0.3 of a constant-velocity prediction; "
                                 "never interpolate or smooth across a re-seed or a hard cut",
                         "max_gap_frames": max_gap, "min_box_px": MIN_BOX_PX, "multi_person_frames": multi,
                         "reseed_frames": np.flatnonzero(reseed).tolist(), "cut_frames": np.flatnonzero(cut).tolist(),
                         "segments": int(len(np.unique(segment[status != K.EMPTY]))),
                         "cut_rule": f"> {CUT_CHANGED_FRACTION:g} of a grey thumbnail changes by > {CUT_PIXEL_DIFF:g}/255 "
                                     "between consecutive source frames"},
            "warnings": warnings,
            "smoothing": {"mode": s.smooth, **({} if s.smooth == "none" else {
                "keypoints": {"filter": "zero-phase one-euro", "body": K.BODY_FILTER, "hands": K.HAND_FILTER},
                "face_box": {"filter": "zero-phase one-euro on (cx, cy, log w, log h)", **K.FACE_BOX_FILTER}})},
            "retarget": retarget_info,
            "counts": {**counts, "frames": written},
            "settings": asdict(s),
            "timings_s": {"infer": round(t_infer, 3), "render": round(t_render, 3),
                          "fps": round(written / max(t_infer + t_render, 1e-9), 2)},
            "versions": _versions(),
        }  # fmt: skip
        with writing(out_dir / META_FILE):
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
            if overwrite:  # drop optional files of an earlier extraction that this one does not replace
                for stale in (KEYPOINTS_FILE, OVERLAY_FILE):
                    if stale not in names:
                        (out_dir / stale).unlink(missing_ok=True)
            for n in names:
                if n != META_FILE:
                    os.replace(tmp / n, out_dir / n)
            if keep_scan:
                scan.save(out_dir / SCAN_FILE)  # before pose.json: a scan never claims more than what pose.json can point to
            os.replace(tmp / META_FILE, out_dir / META_FILE)  # last: its presence marks a complete extraction
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PoseResult(out_dir / POSE_FILE, out_dir / FACE_FILE, out_dir / META_FILE, written, s.fps, s.width, s.height,
                      counts["detected"], counts["interpolated"], counts["empty"],
                      out_dir / KEYPOINTS_FILE if save_keypoints else None,
                      out_dir / OVERLAY_FILE if debug_overlay else None, complete=written == n_total, model=meta["pose_model"])  # fmt: skip


def _post_rtmw(driving, s: PoseSettings, info, estimator, kpts, scores, has, segment, ref_pose, reporter):
    """Thresholds, gaps, smoothing, face boxes, retarget and the person fit of the rtmw path."""
    thr = _thresholds(s, estimator.pose_name, scores, has)
    valid = K.valid_frames(scores, has, thr.body)
    if not valid.any():
        raise NoPersonDetectedError(
            f"no frame of {driving} has a usable skeleton (fewer than {K.MIN_BODY_POINTS} confident body points)"
        )
    max_gap = round(s.max_gap_sec * s.fps)
    kpts_g, scores_g, status = K.fill_gaps(kpts, scores, valid, max_gap, segment)
    kpts_s = kpts_g if s.smooth == "none" else K.smooth_keypoints(kpts_g, scores_g, status, s.fps, thr, segment)
    face = K.face_boxes(kpts_s, scores_g, status, thr.face)
    if s.smooth != "none":
        face = K.smooth_face_boxes(face, s.fps, segment)
    warnings = _face_warnings(estimator.pose_name, scores, status, face)
    for w in warnings:
        reporter.log(f"warning: {w}")
    draw_kpts, retarget_info = kpts_s, None
    if s.retarget:
        from animate_cli.pose.retarget import retarget_sequence

        draw_kpts, retarget_info = retarget_sequence(kpts_s, scores_g, status, thr, ref_pose)
    if s.fit == "crop":
        fit = center_crop_fit(info.width, info.height, s.width, s.height)
    else:
        fit = person_fit(info.width, info.height, s.width, s.height, _drawn_points(draw_kpts, scores_g, status, thr))

    return thr, valid, kpts_s, scores_g, status, face, warnings, draw_kpts, retarget_info, fit


def _post_wan(driving, s: PoseSettings, info, kpts, scores, has, ref_pose, reporter):
    """Wan's official rules (pose.wan_frames): every frame drawn from its own keypoints (a body the model did
    not see reuses the previous one), fixed 0.5 thresholds, the face box from all 68 landmarks, letterbox."""
    from animate_cli.pose import wan_decode as D
    from animate_cli.pose.wan_frames import LetterboxFit, wan_frames

    thr = K.fixed_thresholds(D.KPT_THR, rule="Wan: fixed 0.5 on ViTPose heatmap maxima, body and hands")
    status = np.full(len(kpts), K.DETECTED, np.int8)
    wan = wan_frames(kpts, scores, info.width, info.height)  # face boxes (and, without retarget, the drawing)
    if not (wan.body20()[:, :, 2] >= thr.body).any():
        raise NoPersonDetectedError(f"no person detected in any frame of {driving} (no body point scores >= 0.5)",
                                    hint="the driving video needs one clearly visible person")  # fmt: skip
    fit = LetterboxFit(info.width, info.height, s.width, s.height)
    draw_kpts, retarget_info = kpts, None
    if s.retarget:  # Wan's own retarget (pose.wan_retarget): the skeleton in canvas pixels, drawn without a fit
        from animate_cli.pose.wan_retarget import retarget_clip

        draw_kpts, draw_sc, retarget_info = retarget_clip(kpts, scores, has, (info.width, info.height), ref_pose,
                                                          (s.width, s.height))  # fmt: skip
        drawn = wan_frames(draw_kpts, draw_sc, s.width, s.height)
        # face crops still come from the driving frames (the face boxes above); only the drawing is retargeted
        wan = dataclasses.replace(drawn, face_boxes=wan.face_boxes)
        fit = LetterboxFit(s.width, s.height, s.width, s.height)
    face = np.array([[np.nan] * 4 if b is None else b for b in wan.face_boxes], np.float64)
    if wan.reused.any():  # (counted on the drawn skeleton)
        reporter.log(
            f"pose: no body seen in {int(wan.reused.sum())} frames; the previous frame's body is drawn there (Wan's rule)"
        )
    return thr, has, kpts, scores, status, face, [], draw_kpts, retarget_info, fit, wan


def _drawn_points(kpts: np.ndarray, scores: np.ndarray, status: np.ndarray, thr: K.Thresholds) -> np.ndarray:
    """(N, 2) every keypoint the renderer will draw over the clip (body, feet, hands above threshold)."""
    seen = status != K.EMPTY
    body = kpts[seen][:, :23][scores[seen][:, :23] >= thr.body]
    hands = kpts[seen][:, 91:][scores[seen][:, 91:] >= thr.hand]
    return np.concatenate([body.reshape(-1, 2), hands.reshape(-1, 2)])


def _face_warnings(pose_name: str, scores: np.ndarray, status: np.ndarray, face: np.ndarray) -> list[str]:
    """Say so when face.mp4 will be black throughout, and what that does to the animation."""
    seen = status != K.EMPTY
    effect = ("face.mp4 will be all black, which is the model's 'no face' input: the generated face will not follow "
              "the driving expressions (mouth, eyes), only the pose")  # fmt: skip
    if seen.any() and not (scores[seen][:, FACE68] > 0).any():
        return [f"the pose model {pose_name} predicts no face keypoints; {effect}"]
    if seen.any() and not np.isfinite(face).all(axis=1).any():
        return [f"no face was found in any frame (turned away, covered or too small); {effect}"]
    return []


def _render_pass(
    driving, s, info, src, kpts, scores, status, face, thr, fit, tmp: Path, debug_overlay: bool, reporter, wan=None
) -> int:
    """Pass 3: decode again and write pose/face (and overlay) frames; returns the frame count.
    `wan` (pose.wan_frames.WanFrames) draws and crops by Wan's rules instead."""
    from contextlib import ExitStack

    reporter.stage("render", len(src), "rendering pose + face")
    black_pose = np.zeros((s.height, s.width, 3), np.uint8)
    # The overlay's background: the frame placed like the pose, or centre-cropped when the pose is not in
    # source pixels (Wan's retarget draws on the canvas directly).
    in_source_px = (fit.src_w, fit.src_h) == (info.width, info.height)
    bg = fit if in_source_px else center_crop_fit(info.width, info.height, s.width, s.height)
    with ExitStack() as stack:
        pose_w = stack.enter_context(media.VideoWriter(tmp / POSE_FILE, s.width, s.height, s.fps, crf=s.crf))
        face_w = stack.enter_context(media.VideoWriter(tmp / FACE_FILE, FACE_SIZE, FACE_SIZE, s.fps, crf=s.crf))
        over_w = stack.enter_context(media.VideoWriter(tmp / OVERLAY_FILE, s.width, s.height, s.fps)) if debug_overlay else None
        k = 0
        for i, frame in media.iter_source_frames(driving, int(src[0]), int(src[-1])):
            while k < len(src) and src[k] == i:
                if wan is not None:
                    pose = wan.pose_frame(k, fit)
                elif status[k] == K.EMPTY:
                    pose = black_pose
                else:
                    canvas = np.zeros((fit.src_h, fit.src_w, 3), np.uint8)  # Wan draws at the source (or retarget) size
                    draw_wan_pose(canvas, to_wan_meta(kpts[k], scores[k]), thr.body, thr.hand)
                    pose = fit.apply(canvas)
                pose_w.write(pose)
                face_w.write(
                    wan.face_frame(k, frame) if wan is not None else crop_face(frame, clip_box(face[k], info.width, info.height))
                )
                if over_w is not None:
                    fb = face[k]
                    fb_out = None if not np.isfinite(fb).all() else bg.points(fb.reshape(2, 2)).reshape(4)
                    over_w.write(draw_overlay(bg.apply(frame), pose, fb_out))
                reporter.advance("render")
                k += 1
            if k >= len(src):
                break
        if k < len(src):
            raise BadInputError(f"{driving} decoded differently on the second pass ({k} of {len(src)} frames)")
        assert pose_w.frames == face_w.frames == len(src), (pose_w.frames, face_w.frames, len(src))
    return len(src)


def _models_meta(est: PoseEstimator, det_onnx: Path | None, pose_onnx: Path | None) -> dict:
    out = {"det": {"name": est.det_name}, "pose": {"name": est.pose_name}, **est.info()}
    for key, p in (("det", det_onnx), ("pose", pose_onnx)):
        if p is not None and Path(p).is_file():
            out[key].update(path=str(Path(p).resolve()), sha256=file_sha256(Path(p)))
    return out


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from animate_cli import __version__

    out = {"everanimate": __version__}
    for pkg in ("rtmlib", "onnxruntime", "onnxruntime-gpu", "opencv-python"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


# --- cache ------------------------------------------------------------------------------------------


def cache_key(driving: Path, settings: PoseSettings, det_onnx: Path, pose_onnx: Path, ref: Path | None = None) -> str:
    """sha256(driving bytes + settings json + model file hashes [+ ref bytes when retargeting])[:16].

    The onnxruntime device is not part of the key (it is hashed as "cpu", so keys made before `run` used
    CUDA stay valid): CPU and CUDA run the same model files, and their outputs differ only by float
    rounding in the convolutions, well below a keypoint's SimCC bin. Keeping it out means a pose video
    is extracted once and reused whichever provider ran it (pose.json records which), so a run resumed
    on another machine finds the same pose video, whose digest its resume state checks."""
    h = hashlib.sha256()
    with open(driving, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(replace(settings, device="cpu").to_json().encode())
    for p in map(Path, (det_onnx, pose_onnx)):
        if p.is_dir():  # a model folder (end2end.onnx + external weights, as the Hub's ViTPose-H)
            from animate_cli.pose.wan_estimator import FOLDER_MODEL, model_digest

            h.update(model_digest(p / FOLDER_MODEL).encode())
        else:
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
        if meta.get("schema") != SCHEMA or media.count_frames(pose) != n or media.count_frames(face) != n:
            return None
        c = meta["counts"]
        return PoseResult(pose, face, meta_path, n, float(meta["output"]["fps"]), int(w), int(h),
                          int(c["detected"]), int(c["interpolated"]), int(c["empty"]), cached=True,
                          complete=bool(meta["span"]["complete"]), model=meta.get("pose_model", "rtmw"))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, BadInputError):
        return None


def cached_extract_pose(driving: Path, cache_root: Path, settings: PoseSettings, det_onnx: Path, pose_onnx: Path,
                        reporter: Reporter | None = None, ref: Path | None = None, frames: int | None = None,
                        **opts) -> PoseResult:  # fmt: skip
    """extract_pose into cache_root/pose-<key>, for at least the first `frames` output frames (None: all).
    An earlier extraction with the same key is reused when it has that many frames (or all there are);
    otherwise pass 1 continues from its scan and the longer span is rendered."""
    reporter = reporter or NullReporter()
    driving = Path(driving)
    if not driving.is_file():
        raise BadInputError(f"video not found: {driving}")
    out_dir = Path(cache_root) / f"pose-{cache_key(driving, settings, det_onnx, pose_onnx, ref)}"
    validate_settings(settings, ref)
    # Runs on other outputs in this folder may want the same key at the same time: one extracts while
    # the others wait for its lock, then find the finished extraction and reuse it.
    with locks.hold(out_dir, wait=True, log=reporter.log):
        done = load_result(out_dir)
        if done is not None and (done.complete or (frames is not None and done.frames >= frames)):
            reporter.log(f"pose: reusing {out_dir}")
            return done
        return _extract_locked(driving, out_dir, settings, det_onnx, pose_onnx, reporter, ref, overwrite=True,
                               frames=frames, keep_scan=True, **opts)  # fmt: skip
