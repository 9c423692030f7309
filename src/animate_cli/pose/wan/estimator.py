"""Wan2.2-Animate's own pose models (YOLOv10m + ViTPose-H wholebody ONNX) behind the stage's estimator
protocol, and where their files come from.

The arithmetic is in wan.decode (the official preprocessing, reproduced); this module opens the two ONNX
sessions, checks they have the official signatures, and runs one frame at a time:
    select(frame) -> (5,) [x1, y1, x2, y2, score] the official person choice (score -1: the whole frame)
    estimate(frame, box) -> (133, 2) float32 pixels, (133,) float32 heatmap maxima
A model path is a file, or a folder holding end2end.onnx (the Hub's ViTPose-H is such a folder, with its
weights as external data beside it), as the official SimpleOnnxInference accepts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animate_cli import config as C
from animate_cli.errors import DeviceError, WeightsInvalidError, WeightsMissingError
from animate_cli.pose.wan import decode as D

FOLDER_MODEL = "end2end.onnx"  # the file the official code loads from a model folder
HEATMAP_KEYPOINTS = 133  # COCO-WholeBody
WAN_HINT = "run `everanimate download-weights` (it fetches Wan's process_checkpoint), or pass --det-onnx/--pose-onnx"


def model_file(path: Path, what: str) -> Path:
    """The ONNX file behind a --det-onnx/--pose-onnx path: the file itself, or <folder>/end2end.onnx.
    WeightsMissingError (exit 4) when neither exists."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / FOLDER_MODEL
    if not path.is_file():
        raise WeightsMissingError(f"{what} model not found: {path}", hint=WAN_HINT)
    return path


def default_paths(weights_dir: Path) -> tuple[Path, Path]:
    """Where the weights folder keeps the official files (under the base model folder, as in the Hub repo)."""
    from animate_cli.weights import BASE_DIR

    base = Path(weights_dir).expanduser() / BASE_DIR
    return base / C.WAN_DET_ONNX, base / C.WAN_POSE_ONNX


def _session(path: Path, providers: list, what: str):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as e:  # onnxruntime raises its own classes for truncated files, missing external data...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsInvalidError(f"{what} model {path} cannot be loaded (damaged or incomplete): {first[:200]}",
                                  hint=WAN_HINT) from None  # fmt: skip


def _check_signature(session, path: Path, what: str, want_in: tuple[int, int], out_check) -> None:
    """Inputs must be (1, 3, h, w) at the size the official code feeds (it never reads it from the file)."""
    shape = list(session.get_inputs()[0].shape)
    dims = [v for v in shape[2:] if isinstance(v, int)]
    if len(shape) != 4 or (len(dims) == 2 and tuple(dims) != want_in) or (isinstance(shape[1], int) and shape[1] != 3):
        raise WeightsInvalidError(f"{what} model {path.name} takes input {shape}; Wan's pipeline feeds "
                                  f"[1, 3, {want_in[0]}, {want_in[1]}]", hint=WAN_HINT)  # fmt: skip
    out = list(session.get_outputs()[0].shape)
    problem = out_check(out)
    if problem:
        raise WeightsInvalidError(f"{what} model {path.name} outputs {out}; {problem}", hint=WAN_HINT)


def _det_output_problem(shape: list) -> str | None:
    if len(shape) == 3 and isinstance(shape[-1], int) and shape[-1] != 6:
        return "an end-to-end YOLOv10 export with (1, N, 6) rows is needed"
    return None if len(shape) == 3 else "an end-to-end YOLOv10 export with (1, N, 6) rows is needed"


def _pose_output_problem(shape: list) -> str | None:
    if len(shape) != 4:
        return "(1, 133, h, w) heatmaps are needed"
    if isinstance(shape[1], int) and shape[1] != HEATMAP_KEYPOINTS:
        return f"{shape[1]} keypoints; a COCO-WholeBody (133) heatmap model is needed"
    return None


class WanEstimator:
    """YOLOv10m + ViTPose-H exactly as Wan's Pose2d runs them, one frame at a time."""

    def __init__(self, det_onnx: Path, pose_onnx: Path, device: str = "cpu"):
        from animate_cli.pose.estimator import resolve_device

        self.det_path, self.pose_path = model_file(det_onnx, "detector"), model_file(pose_onnx, "pose")
        self.device = resolve_device(device)
        providers: list = ["CPUExecutionProvider"]
        if self.device.startswith("cuda"):
            idx = self.device.partition(":")[2] or "0"
            providers = [("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"]
        self.det = _session(self.det_path, providers, "detector")
        self.pose = _session(self.pose_path, providers, "pose")
        _check_signature(self.det, self.det_path, "detector", D.DET_SIZE, _det_output_problem)
        _check_signature(self.pose, self.pose_path, "pose", D.POSE_SIZE, _pose_output_problem)
        self.providers = {"det": self.det.get_providers(), "pose": self.pose.get_providers()}
        if self.device.startswith("cuda") and any("CUDAExecutionProvider" not in v for v in self.providers.values()):
            raise DeviceError(f"onnxruntime fell back to CPU for the pose models ({self.providers})",
                              hint="check the CUDA/cuDNN libraries onnxruntime-gpu needs, or use --device cpu")  # fmt: skip
        # names as the weights folder calls them (a folder model is named by its folder)
        self.det_name = (self.det_path.parent if self.det_path.name == FOLDER_MODEL else self.det_path).name
        self.pose_name = (self.pose_path.parent if self.pose_path.name == FOLDER_MODEL else self.pose_path).name
        self._det_in, self._pose_in = self.det.get_inputs()[0].name, self.pose.get_inputs()[0].name

    def select(self, frame: np.ndarray) -> np.ndarray:
        """(5,) the official person box of an RGB frame (the whole frame with score -1 when nobody is found)."""
        out = self.det.run(None, {self._det_in: D.detector_input(frame)})[0]
        return D.select_person(D.parse_detections(out, frame.shape[:2]), frame.shape[:2])

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """(N, 4) person boxes (class person, above the confidence, after NMS), for callers that pick their own."""
        out = self.det.run(None, {self._det_in: D.detector_input(frame)})[0]
        d = D.parse_detections(out, frame.shape[:2])
        keep = (d[:, 5] == D.DET_PERSON_CLASS) & (d[:, 4] > D.DET_CONF)
        return d[keep, :4]

    def estimate(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(133, 2) float32 keypoints and (133,) float32 scores of the person in `box` ((4,) or (5,) with score)."""
        box = np.asarray(box, np.float64)
        if len(box) == 4:  # a plain box from detect(): a found person
            box = np.r_[box, 1.0]
        center, scale = D.crop_box(box, frame.shape[:2])
        heat = self.pose.run(None, {self._pose_in: D.pose_input(frame, center, scale)})[0]
        kp = D.decode_heatmaps(heat, center, scale)
        if kp.shape[0] != HEATMAP_KEYPOINTS:
            raise WeightsInvalidError(
                f"{self.pose_name} predicts {kp.shape[0]} keypoints; a COCO-WholeBody (133) model is needed"
            )
        return kp[:, :2], kp[:, 2]

    def info(self) -> dict:
        return {"device": self.device, "providers": self.providers, "det_input_hw": list(D.DET_SIZE),
                "pose_input_hw": list(D.POSE_SIZE), "input_size_from": "Wan's pipeline (fixed 640x640 and 256x192)",
                "pipeline": "Wan2.2-Animate official preprocessing (github Wan-Video/Wan2.2 @42bf4cf), reproduced"}  # fmt: skip
