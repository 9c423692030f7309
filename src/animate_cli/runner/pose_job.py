"""The pose stage as `run` uses it, on the pose worker thread while the prompt is encoded and the models load:
only the span the plan reads, the chosen pose model, CUDA for onnxruntime when it works, else the CPU."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from animate_cli import config as C
from animate_cli.errors import BadInputError
from animate_cli.options import RunConfig
from animate_cli.progress import Reporter
from animate_cli.rollout.plan import ChunkPlan, driving_frames_read

if TYPE_CHECKING:
    from animate_cli.pose.choice import PoseModels


@dataclass(frozen=True)
class PoseForRun:
    """The control videos a run reads: given (--pose-video/--face-video) or extracted by `extract_for_run`."""

    pose_video: Path
    face_video: Path
    source_frames: int | None  # the driving video's length in output frames (the plan's ping-pong period)
    info: dict  # what the pose stage did, for the run summary ({} when the videos were given)


def extract_for_run(cfg: RunConfig, plan: ChunkPlan, models: PoseModels, run_device: str, reporter: Reporter) -> PoseForRun:
    """The pose stage for `run` (on the pose worker thread): the pose and face videos, into the pose cache.

    `models` (pose.choice) names the pose model and its two ONNX files. Only the span `plan` reads is
    extracted: the requested length rounded up to whole chunks, or the whole driving video when the plan
    ping-pongs through it (its ping-pong period, source_frames, is the driving video's length in output
    frames, whatever the pose video's). ONNX Runtime runs on the run's GPU when its CUDA provider
    is installed; a CUDA provider that cannot start (missing CUDA/cuDNN libraries) falls back to the CPU with
    a warning instead of failing the run."""
    from animate_cli.errors import DeviceError
    from animate_cli.pose import PoseSettings, cached_extract_pose
    from animate_cli.pose.estimator import pose_device

    source_frames = plan.source_frames
    needed = driving_frames_read(plan)
    settings = PoseSettings(width=cfg.width, height=cfg.height, fps=float(C.FPS), device=pose_device(run_device),
                            model=models.model, smooth="none" if models.model == "wan" else "default",
                            retarget=cfg.retarget)  # fmt: skip
    cache = cfg.out.parent / ".everanimate-pose-cache"

    def extract(settings: PoseSettings):
        return cached_extract_pose(cfg.driving, cache, settings, models.det_onnx, models.pose_onnx, reporter=reporter,
                                   frames=needed, ref=cfg.ref if cfg.retarget else None)  # fmt: skip

    try:
        res = extract(settings)
    except DeviceError as e:
        if settings.device == "cpu":
            raise
        reporter.log(f"warning: pose models on the CPU: {e.message}")
        settings = dataclasses.replace(settings, device="cpu")
        res = extract(settings)
    if res.frames < needed:
        raise BadInputError(f"the pose of {cfg.driving} has {res.frames} frames, the plan reads {needed}")
    info = {"model": res.model, "det": Path(models.det_onnx).name, "pose_model_file": Path(models.pose_onnx).name,
            "frames": res.frames, "of": source_frames, "detected": res.detected, "interpolated": res.interpolated,
            "empty": res.empty, "cache": str(res.pose_video.parent), "reused": bool(res.cached), "device": settings.device}  # fmt: skip
    return PoseForRun(res.pose_video, res.face_video, source_frames, info)
