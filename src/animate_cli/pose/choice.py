"""Which pose model makes the pose video, and from which files.

    choose_models(requested, weights_dir, det_onnx, pose_onnx) -> PoseModels

`wan` (Wan2.2-Animate's own YOLOv10m + ViTPose-H, what the DiT was trained on) is the default when its
files are there; without them, and unless the user asked for `wan`, RTMW is used and `note` says so in one
line. `--det-onnx` / `--pose-onnx` replace either file (a file, or a folder holding end2end.onnx). Nothing
here opens a model: damaged files surface when the estimator loads them (WeightsInvalidError, exit 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from animate_cli import config as C
from animate_cli.errors import UsageError, WeightsMissingError


@dataclass(frozen=True)
class PoseModels:
    model: str  # "wan" | "rtmw"
    det_onnx: Path
    pose_onnx: Path
    note: str | None = None  # a one-line warning when the default fell back to RTMW


def _wan_files(weights_dir: Path, det_onnx: Path | None, pose_onnx: Path | None) -> tuple[Path, Path, list[Path]]:
    """(det, pose, missing): the given paths or the weights folder's, each resolved to its ONNX file."""
    from animate_cli.pose.wan.estimator import FOLDER_MODEL, default_paths

    d_det, d_pose = default_paths(weights_dir)
    out, missing = [], []
    for given, default in ((det_onnx, d_det), (pose_onnx, d_pose)):
        p = Path(given if given is not None else default).expanduser()
        f = p / FOLDER_MODEL if p.is_dir() else p
        out.append(f)
        if not f.is_file():
            missing.append(f)
    return out[0], out[1], missing


def choose_models(requested: str | None, weights_dir: Path, det_onnx: Path | None = None,
                  pose_onnx: Path | None = None) -> PoseModels:  # fmt: skip
    """The pose model and its two files. `requested` None means the default (wan if present, else rtmw).
    WeightsMissingError (exit 4) when the chosen model's files are not there."""
    if requested is not None and requested not in C.POSE_MODELS:
        raise UsageError(f"--pose-model must be one of {', '.join(C.POSE_MODELS)}, got {requested!r}")
    if requested != "rtmw":
        det, pose, missing = _wan_files(weights_dir, det_onnx, pose_onnx)
        if not missing:
            return PoseModels("wan", det, pose)
        if requested == "wan" or det_onnx is not None or pose_onnx is not None:
            from animate_cli.pose.wan.estimator import WAN_HINT

            raise WeightsMissingError(f"Wan pose model not found: {', '.join(map(str, missing))}", hint=WAN_HINT)
    if det_onnx is not None and pose_onnx is not None:
        return PoseModels("rtmw", Path(det_onnx), Path(pose_onnx))
    from animate_cli.pose.estimator import find_pose_models

    det, pose = find_pose_models(weights_dir)
    det, pose = (Path(det_onnx) if det_onnx else det), (Path(pose_onnx) if pose_onnx else pose)
    note = None
    if requested is None:
        note = ("the official Wan pose models (YOLOv10m + ViTPose-H, what the model was trained on) are not in "
                f"{Path(weights_dir).expanduser()}; using RTMW (download-weights fetches them; --pose-model rtmw "
                "silences this)")  # fmt: skip
    return PoseModels("rtmw", det, pose, note)
