"""The pose stage: driving video -> pose.mp4 + face.mp4 + pose.json, and its content-addressed cache.

Two streamed passes over the driving video, so memory does not grow with its length (only the
keypoints do, ~1.6 MB per 1000 frames):
  1. decode -> detect hard cuts -> detect -> track one person -> 133 keypoints, for each source frame
     the fps map uses;
  2. whole-clip post-processing (thresholds, gaps, smoothing, face boxes, retarget) on the small arrays,
     never across a segment boundary (a tracker re-seed or a hard cut: the person may have changed);
  3. decode again -> draw Wan's skeleton at source resolution, place it on the output canvas by the
     person's extent over the clip (geometry.person_fit), crop the face to 512x512 -> H.264.
pose.json counts output frames (at the output fps) everywhere except under "source" and "frame_map".
Everything is written into a hidden temporary folder and moved into place at the end (pose.json last),
so a failure never leaves files that look complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from animate_cli import media
from animate_cli.errors import BadInputError, NoPersonDetectedError, OutputExistsError, UsageError
from animate_cli.media import locks
from animate_cli.pose import keypoints as K
from animate_cli.pose.estimator import PoseEstimator, default_threshold_rule, file_sha256
from animate_cli.pose.geometry import center_crop_fit, frame_index_map, output_frame_count, person_fit, source_index
from animate_cli.pose.render import FACE68, FACE_SIZE, clip_box, crop_face, draw_overlay, draw_wan_pose, to_wan_meta
from animate_cli.pose.settings import FIT_MODES, MAX_SIDE, MIN_SIDE, SMOOTH_MODES, PoseResult, PoseSettings
from animate_cli.pose.track import Tracker
from animate_cli.progress import NullReporter, Reporter

SCHEMA = "everanimate.pose/2"  # /2: segments (no glide across re-seeds/cuts), person-extent fit
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


def _infer_pass(driving: Path, s: PoseSettings, info: media.VideoInfo, est: PoseEstimator, reporter: Reporter):
    """Pass 1. Returns (n_in, {source index: (box | None, kpts, scores, n_candidates, epoch)}, cut source indices).

    `epoch` changes at every hard cut and every (re-)seed of the tracker; output frames of different epochs
    are never interpolated or smoothed into each other."""
    fps_in = info.fps
    max_lost = max(1, round(s.max_gap_sec * min(fps_in, s.fps)))
    tracker = Tracker(max_lost)
    results: dict[int, tuple] = {}
    cuts: list[int] = []
    approx = output_frame_count(max(1, round(min(info.duration - s.start, s.seconds or 1e18) * fps_in)), fps_in, s.fps)
    reporter.stage("pose", approx or None, "detecting poses")

    def process(i: int, frame: np.ndarray) -> None:
        boxes = est.detect(frame)
        boxes = boxes[(boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_PX] if len(boxes) else boxes
        box = tracker.update(boxes)
        epoch = tracker.track_id + len(cuts)  # both only grow: a new value at every seed and every cut
        if box is None:
            results[i] = (None, None, None, len(boxes), epoch)
        else:
            kpts, scores = est.estimate(frame, box)
            results[i] = (box, kpts.astype(np.float32), scores.astype(np.float32), len(boxes), epoch)

    k = 0  # next output frame whose source frame we have not reached yet
    n_in = 0
    last = prev_thumb = None
    for i, frame in enumerate(media.iter_frames(driving, start_time=s.start, duration=s.seconds)):
        n_in = i + 1
        thumb = _thumb(frame)
        if prev_thumb is not None and (np.abs(thumb - prev_thumb) > CUT_PIXEL_DIFF).mean() > CUT_CHANGED_FRACTION:
            cuts.append(i)  # the picture changed almost entirely between i-1 and i: a hard cut
            tracker.cut()
        prev_thumb = thumb
        uses = 0
        while source_index(k, None, fps_in, s.fps) == i:
            k += 1
            uses += 1
        if uses:
            process(i, frame)
            reporter.advance("pose", uses)
        last = frame
    if n_in == 0:
        raise BadInputError(f"no frames decoded from {driving}" + (" (check --start/--seconds)" if s.start or s.seconds else ""))
    n_out = output_frame_count(n_in, fps_in, s.fps)
    if k < n_out:  # the map's tail is clipped to the last source frame (sources slower than the output fps)
        if (n_in - 1) not in results:
            process(n_in - 1, last)
        reporter.advance("pose", n_out - k)
    return n_in, results, cuts


def _expand(n_in: int, fps_in: float, s: PoseSettings, results: dict, cuts: list[int]):
    """Per output frame: source index, keypoints, scores, box, has-person, segment, reseed and cut flags."""
    src = frame_index_map(n_in, fps_in, s.fps)
    t = len(src)
    kpts = np.full((t, 133, 2), np.nan, np.float64)
    scores = np.zeros((t, 133), np.float64)
    boxes = np.full((t, 4), np.nan)
    has = np.zeros(t, bool)
    segment = np.zeros(t, np.int64)
    multi = 0
    for k, i in enumerate(src):
        box, kp, sc, n_cand, epoch = results[int(i)]
        segment[k] = epoch
        multi += n_cand > 1
        if box is not None:
            kpts[k], scores[k], boxes[k], has[k] = kp, sc, box, True
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
    return src, kpts, scores, boxes, has, segment, reseed, cut, int(multi)


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
                    debug_overlay: bool = False) -> PoseResult:  # fmt: skip
    """extract_pose, for a caller that holds the lock of out_dir."""
    s = settings
    driving, out_dir = Path(driving), Path(out_dir)
    for stale in out_dir.glob(f"{PARTIAL_PREFIX}*"):  # left by a killed extraction (only the lock holder writes here)
        shutil.rmtree(stale, ignore_errors=True)
    names = output_names(out_dir, save_keypoints, debug_overlay)
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{out_dir / existing[0]} already exists", hint="pass --overwrite to replace it")
    info = media.probe(driving)
    t0 = time.monotonic()
    if estimator is None:
        from animate_cli.pose.estimator import RtmlibEstimator

        estimator = RtmlibEstimator(det_onnx, pose_onnx, s.device)
        if estimator.fallback:  # --device auto and onnxruntime's CUDA provider could not run: on the CPU instead
            reporter.log(estimator.fallback)
    ref_pose = None
    if ref is not None:
        ref_img = media.load_image(ref)
        ref_pose = _pick_largest_person(estimator, ref_img, f"the reference image {ref}") + (ref_img.shape[:2],)

    # 1. detect, track, estimate (streamed)
    n_in, results, cuts = _infer_pass(driving, s, info, estimator, reporter)
    t_infer = time.monotonic() - t0
    src, kpts, scores, det_boxes, has, segment, reseed, cut, multi = _expand(n_in, info.fps, s, results, cuts)
    if not has.any():
        raise NoPersonDetectedError(f"no person detected in any frame of {driving}",
                                    hint="the driving video needs one clearly visible person")  # fmt: skip

    # 2. whole-clip post-processing on the small keypoint arrays
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

    # 3. render + encode (streamed) into a hidden folder, then move into place
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{PARTIAL_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        t1 = time.monotonic()
        written = _render_pass(driving, s, info, src, draw_kpts, scores_g, status, face, thr, fit, tmp, debug_overlay, reporter)
        t_render = time.monotonic() - t1
        counts = {"detected": int((status == K.DETECTED).sum()), "interpolated": int((status == K.INTERPOLATED).sum()),
                  "empty": int((status == K.EMPTY).sum())}  # fmt: skip
        if save_keypoints:
            with open(tmp / KEYPOINTS_FILE, "wb") as f:
                np.savez(f, kpts=kpts.astype(np.float32), scores=scores.astype(np.float32),
                         kpts_smoothed=kpts_s.astype(np.float32), kpts_drawn=draw_kpts.astype(np.float32),
                         valid=valid, interp=status == K.INTERPOLATED, status=status, det_boxes=det_boxes.astype(np.float32),
                         face_boxes=face.astype(np.float32), src_index=src, segment=segment, reseed=reseed,
                         cut=cut)  # fmt: skip
        meta = {
            "schema": SCHEMA,
            "frames_unit": "output frames (at output.fps), numbered from 0; only keys under 'source' and "
                           "'frame_map' count source frames",
            "source": {"path": str(driving.resolve()), "fps": info.fps, "frames": n_in, "size": [info.width, info.height],
                       "start_s": s.start, "seconds": s.seconds},
            "output": {"fps": s.fps, "frames": written, "size": [s.width, s.height], "face_size": [FACE_SIZE, FACE_SIZE],
                       "pose_video": POSE_FILE, "face_video": FACE_FILE, "codec": "h264 yuv420p", "crf": s.crf},
            "frame_map": {"rule": "n_out = floor(n_in * fps_out / fps_in); src[k] = min(round_half_even(k / fps_out * fps_in), n_in - 1)",
                          "first": src[:8].tolist(), "last": int(src[-1])},
            "fit": {**fit.to_dict(), "draw_resolution": "source", "interpolation": "linear"},
            "face": {"rule": "wan get_face_bboxes (area x1.3, 3:1 above:below), clipped; confident landmarks only",
                     "min_landmarks": K.MIN_FACE_POINTS, "frames_with_face": int(np.isfinite(face).all(axis=1).sum())},
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
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
        if overwrite:  # drop optional files of an earlier extraction that this one does not replace
            for stale in (KEYPOINTS_FILE, OVERLAY_FILE):
                if stale not in names:
                    (out_dir / stale).unlink(missing_ok=True)
        for n in names:
            if n != META_FILE:
                os.replace(tmp / n, out_dir / n)
        os.replace(tmp / META_FILE, out_dir / META_FILE)  # last: its presence marks a complete extraction
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PoseResult(out_dir / POSE_FILE, out_dir / FACE_FILE, out_dir / META_FILE, written, s.fps, s.width, s.height,
                      counts["detected"], counts["interpolated"], counts["empty"],
                      out_dir / KEYPOINTS_FILE if save_keypoints else None,
                      out_dir / OVERLAY_FILE if debug_overlay else None)  # fmt: skip


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


def _render_pass(driving, s, info, src, kpts, scores, status, face, thr, fit, tmp: Path, debug_overlay: bool, reporter) -> int:
    """Pass 3: decode again and write pose/face (and overlay) frames; returns the frame count."""
    from contextlib import ExitStack

    reporter.stage("render", len(src), "rendering pose + face")
    black_pose = np.zeros((s.height, s.width, 3), np.uint8)
    with ExitStack() as stack:
        pose_w = stack.enter_context(media.VideoWriter(tmp / POSE_FILE, s.width, s.height, s.fps, crf=s.crf))
        face_w = stack.enter_context(media.VideoWriter(tmp / FACE_FILE, FACE_SIZE, FACE_SIZE, s.fps, crf=s.crf))
        over_w = stack.enter_context(media.VideoWriter(tmp / OVERLAY_FILE, s.width, s.height, s.fps)) if debug_overlay else None
        k = 0
        for i, frame in enumerate(media.iter_frames(driving, start_time=s.start, duration=s.seconds)):
            while k < len(src) and src[k] == i:
                if status[k] == K.EMPTY:
                    pose = black_pose
                else:
                    canvas = np.zeros((info.height, info.width, 3), np.uint8)  # Wan draws at the source size
                    draw_wan_pose(canvas, to_wan_meta(kpts[k], scores[k]), thr.body, thr.hand)
                    pose = fit.apply(canvas)
                pose_w.write(pose)
                face_w.write(crop_face(frame, clip_box(face[k], info.width, info.height)))
                if over_w is not None:
                    fb = face[k]
                    fb_out = None if not np.isfinite(fb).all() else fit.points(fb.reshape(2, 2)).reshape(4)
                    over_w.write(draw_overlay(fit.apply(frame), pose, fb_out))
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
    for p in (det_onnx, pose_onnx):
        h.update(file_sha256(Path(p)).encode())
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
                          int(c["detected"]), int(c["interpolated"]), int(c["empty"]), cached=True)  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, BadInputError):
        return None


def cached_extract_pose(driving: Path, cache_root: Path, settings: PoseSettings, det_onnx: Path, pose_onnx: Path,
                        reporter: Reporter | None = None, ref: Path | None = None, **opts) -> PoseResult:  # fmt: skip
    """extract_pose into cache_root/pose-<key>, reusing a complete earlier extraction with the same key."""
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
        if done is not None:
            reporter.log(f"pose: reusing {out_dir}")
            return done
        return _extract_locked(driving, out_dir, settings, det_onnx, pose_onnx, reporter, ref, overwrite=True, **opts)
