"""Pass 3 and the files: decode again -> pose.mp4 + face.mp4 (+ debug_overlay.mp4), keypoints.npz, pose.json.

pose.json counts output frames (at the output fps) everywhere except under "source" and "frame_map".
"""

from __future__ import annotations

import contextlib
import json
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animate_cli import media
from animate_cli.errors import BadInputError
from animate_cli.pose import keypoints as K
from animate_cli.pose.estimator import file_sha256
from animate_cli.pose.face import FACE_BOX_FILTER, FACE_SIZE
from animate_cli.pose.geometry import center_crop_fit
from animate_cli.pose.render import draw_overlay
from animate_cli.pose.scan import CUT_CHANGED_FRACTION, CUT_PIXEL_DIFF
from animate_cli.pose.settings import FACE_FILE, OVERLAY_FILE, POSE_FILE
from animate_cli.pose.track import MIN_BOX_PX

if TYPE_CHECKING:
    from animate_cli.pose.choice import PoseModels
    from animate_cli.pose.clip import Clip
    from animate_cli.pose.estimator import PoseEstimator
    from animate_cli.pose.model import CanvasFit, Drawing
    from animate_cli.pose.scan import Span
    from animate_cli.pose.settings import PoseSettings
    from animate_cli.progress import Reporter

SCHEMA = "everanimate.pose/3"  # bump when pose.json or the videos change meaning: the cache reuses only this one
FRAMES_UNIT = "output frames (at output.fps), numbered from 0; only keys under 'source' and 'frame_map' count source frames"
SPAN_RULE = ("only the first 'frames' of the 'of' output frames the range has were extracted (what the request "
             "needed); a longer request continues pass 1 from scan.npz and renders again")  # fmt: skip
FRAME_MAP_RULE = ("output frame k shows the source frame whose presentation time is nearest to start_s + k / fps_out "
                  "(seconds from the first frame; exact ties to the even frame); n_out = int(duration_s * fps_out) "
                  "over the range (media.timeline)")  # fmt: skip
TRACKING_RULE = ("seed largest (Wan strict), follow by IoU >= 0.3 of a constant-velocity prediction; never "
                 "interpolate or smooth across a re-seed or a hard cut")  # fmt: skip


@dataclass(frozen=True)
class Timings:
    infer: float  # seconds: opening the models, passes 1 and 2
    render: float  # seconds: pass 3


def render_pass(span: Span, s: PoseSettings, drawing: Drawing, folder: Path, reporter: Reporter, overlay: bool) -> None:
    """Pass 3: decode the span again and write pose.mp4, face.mp4 (and debug_overlay.mp4) into `folder`."""
    src = span.src
    reporter.stage("render", len(src), "rendering pose + face")
    with ExitStack() as stack:
        pose_w = stack.enter_context(media.VideoWriter(folder / POSE_FILE, s.width, s.height, s.fps, crf=s.crf))
        face_w = stack.enter_context(media.VideoWriter(folder / FACE_FILE, FACE_SIZE, FACE_SIZE, s.fps, crf=s.crf))
        over = None
        if overlay:
            over = _Overlay(stack.enter_context(media.VideoWriter(folder / OVERLAY_FILE, s.width, s.height, s.fps)),
                            _overlay_fit(span, s, drawing), drawing.face)  # fmt: skip
        k = 0
        for i, frame in media.iter_source_frames(span.driving, int(src[0]), int(src[-1])):
            while k < len(src) and src[k] == i:
                pose = drawing.frames.pose_frame(k)
                pose_w.write(pose)
                face_w.write(drawing.frames.face_frame(k, frame))
                if over is not None:
                    over.write(k, frame, pose)
                reporter.advance("render")
                k += 1
            if k >= len(src):
                break
        if k < len(src):
            raise BadInputError(f"{span.driving} decoded differently on the second pass ({k} of {len(src)} frames)")
        assert pose_w.frames == face_w.frames == len(src), (pose_w.frames, face_w.frames, len(src))


def _overlay_fit(span: Span, s: PoseSettings, drawing: Drawing) -> CanvasFit:
    """The overlay's background: the frame placed like the pose, or centre-cropped when the pose is not in
    source pixels (Wan's retarget draws on the canvas directly)."""
    fit, info = drawing.fit, span.info
    in_source_px = (fit.src_w, fit.src_h) == (info.width, info.height)
    return fit if in_source_px else center_crop_fit(info.width, info.height, s.width, s.height)


@dataclass(frozen=True)
class _Overlay:
    """debug_overlay.mp4: the placed frame darkened, the pose on top, the face box in white."""

    writer: media.VideoWriter
    bg: CanvasFit
    face: np.ndarray  # (T, 4) source pixels

    def write(self, k: int, frame: np.ndarray, pose: np.ndarray) -> None:
        fb = self.face[k]
        fb_out = None if not np.isfinite(fb).all() else self.bg.points(fb.reshape(2, 2)).reshape(4)
        self.writer.write(draw_overlay(self.bg.apply(frame), pose, fb_out))


def save_keypoints(path: Path, span: Span, clip: Clip, drawing: Drawing) -> None:
    """keypoints.npz: every per-frame array of passes 1 and 2 (float32 coordinates)."""
    d = drawing
    with open(path, "wb") as f:
        np.savez(f, kpts=clip.kpts.astype(np.float32), scores=clip.scores.astype(np.float32),
                 kpts_smoothed=d.kpts.astype(np.float32), kpts_drawn=d.drawn.astype(np.float32), valid=d.valid,
                 interp=d.status == K.INTERPOLATED, status=d.status, det_boxes=clip.boxes.astype(np.float32),
                 face_boxes=d.face.astype(np.float32), src_index=span.src, segment=clip.segment, reseed=clip.reseed,
                 cut=clip.cut, **d.npz_extra)  # fmt: skip


def counts(drawing: Drawing) -> dict[str, int]:
    status = drawing.status
    return {"detected": drawing.detected, "interpolated": int((status == K.INTERPOLATED).sum()),
            "empty": int((status == K.EMPTY).sum())}  # fmt: skip


def pose_json(span: Span, s: PoseSettings, clip: Clip, drawing: Drawing, models: dict, timings: Timings) -> dict:
    """pose.json's content."""
    d, n = drawing, len(span.src)
    return {
        "schema": SCHEMA,
        "frames_unit": FRAMES_UNIT,
        "source": _source(span, s),
        "span": {"frames": n, "of": span.total, "complete": span.complete, "rule": SPAN_RULE},
        "output": {"fps": s.fps, "frames": n, "size": [s.width, s.height], "face_size": [FACE_SIZE, FACE_SIZE],
                   "pose_video": POSE_FILE, "face_video": FACE_FILE, "codec": "h264 yuv420p", "crf": s.crf},
        "frame_map": {"rule": FRAME_MAP_RULE, "source_index": span.src.tolist(),
                      "source_time_s": np.round(span.info.timeline.times[span.src], 6).tolist()},
        "fit": {**d.fit.to_dict(), "draw_resolution": "source", "interpolation": "linear"},
        "face": d.face_meta,
        "pose_model": s.model,
        **d.model_meta,
        "models": models,
        "thresholds": d.thresholds.to_dict(),
        "tracking": _tracking(s, clip, d),
        "warnings": d.warnings,
        "smoothing": _smoothing(s),
        "retarget": d.retarget,
        "counts": {**counts(d), "frames": n},
        "settings": asdict(s),
        "timings_s": {"infer": round(timings.infer, 3), "render": round(timings.render, 3),
                      "fps": round(n / max(timings.infer + timings.render, 1e-9), 2)},
        "versions": _versions(),
    }  # fmt: skip


def write_json(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta, indent=2, default=_json_default))


def _source(span: Span, s: PoseSettings) -> dict:
    info = span.info
    return {"path": str(span.driving.resolve()), "size": [info.width, info.height], **info.timeline.to_dict(),
            "start_s": s.start, "seconds": s.seconds}  # fmt: skip


def _tracking(s: PoseSettings, clip: Clip, d: Drawing) -> dict:
    return {"rule": TRACKING_RULE, "max_gap_frames": s.max_gap_frames, "min_box_px": MIN_BOX_PX,
            "multi_person_frames": clip.multi, "reseed_frames": np.flatnonzero(clip.reseed).tolist(),
            "cut_frames": np.flatnonzero(clip.cut).tolist(),
            "segments": int(len(np.unique(clip.segment[d.status != K.EMPTY]))),
            "cut_rule": f"> {CUT_CHANGED_FRACTION:g} of a grey thumbnail changes by > {CUT_PIXEL_DIFF:g}/255 "
                        "between consecutive source frames"}  # fmt: skip


def _smoothing(s: PoseSettings) -> dict:
    if s.smooth == "none":
        return {"mode": s.smooth}
    return {"mode": s.smooth, "keypoints": {"filter": "zero-phase one-euro", "body": K.BODY_FILTER, "hands": K.HAND_FILTER},
            "face_box": {"filter": "zero-phase one-euro on (cx, cy, log w, log h)", **FACE_BOX_FILTER}}  # fmt: skip


def models_meta(est: PoseEstimator, models: PoseModels | None) -> dict:
    """pose.json "models": names, and the files' paths and digests when the stage opened them itself."""
    out = {"det": {"name": est.det_name}, "pose": {"name": est.pose_name}, **est.info()}
    files = (None, None) if models is None else (models.det_onnx, models.pose_onnx)
    for key, p in zip(("det", "pose"), files, strict=True):
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
