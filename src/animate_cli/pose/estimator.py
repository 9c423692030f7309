"""Person detection + whole-body keypoints behind a small protocol, and the rtmlib adapter.

The stage only needs two calls per frame: `detect` (every person box) and `estimate` (133 COCO-WholeBody
keypoints inside one chosen box), so any detector + keypoint model pair fits and the tracker decides
which box gets the (expensive) pose model. The rtmlib adapter avoids its traps: it never lets
rtmlib download (local ONNX paths only), never lets RTMPose fall back to a whole-frame box, takes the
model input sizes from the ONNX files (declared shape, else metadata, else the model family's known size by
file name; otherwise a weights error, exit 4, naming the file), feeds BGR to YOLOX and RGB to RTMW, keeps rtmlib's prints off
stdout, and checks which onnxruntime providers really run.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path
from typing import Protocol

import numpy as np

from animate_cli.errors import DeviceError, WeightsInvalidError, WeightsMissingError

POSE_SUBDIR = "pose"
DEFAULT_DET = "yolox_m_8xb8-300e_humanart-c2c7a14a.onnx"  # YOLOX-m HumanArt, NMS inside the graph (docs/pose-facts.md)
DEFAULT_POSE = "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.onnx"  # RTMW-l 384x288, 133 keypoints


# ONNX metadata keys that exporters use for the input size (ultralytics: imgsz "[640, 640]"; others input_size).
SIZE_METADATA_KEYS = ("imgsz", "input_size", "img_size", "input_shape")
YOLOX_SMALL_INPUT = 416  # YOLOX-tiny / -nano are trained at 416x416, every larger YOLOX at 640x640
YOLOX_INPUT = 640
# mmpose whole-body models and their DWPose/ViTPose relatives, by file name, when the name has no HxW in it
POSE_FAMILY_HW = (("dw-ll_ucoco_384", (384, 288)), ("vitpose", (256, 192)))


def _ints(text: str) -> list[int]:
    import re

    return [int(v) for v in re.findall(r"\d+", text)]


def model_input_hw(session, path: Path, kind: str) -> tuple[tuple[int, int], str]:
    """(h, w) of an ONNX model's image input and where it came from: the declared shape, else the model's
    metadata, else the model family's known size (from the file name). Symbolic sizes with none of these
    are a WeightsInvalidError naming the file (exit 4: the weights, not the user's input, are the problem)."""
    import re

    shape = list(session.get_inputs()[0].shape)
    if len(shape) == 4 and all(isinstance(v, int) and v > 0 for v in shape[2:]):
        return (int(shape[2]), int(shape[3])), "the ONNX input shape"
    meta = session.get_modelmeta().custom_metadata_map
    for key in SIZE_METADATA_KEYS:
        vals = _ints(meta.get(key, ""))[-2:]
        if len(vals) == 2 or len(vals) == 1:
            h, w = (vals[0], vals[-1])
            if h > 0 and w > 0:
                return (h, w), f"ONNX metadata {key}={meta[key]!r}"
    name = Path(path).name.lower()
    m = re.search(r"(\d{3})x(\d{3})", name)
    if kind == "pose":
        if m:
            return (int(m.group(1)), int(m.group(2))), f"the model family's size in its name ({m.group(0)})"
        for key, hw in POSE_FAMILY_HW:
            if key in name:
                return hw, f"the model family's known size ({key}: {hw[0]}x{hw[1]})"
    elif "yolox" in name:
        side = YOLOX_SMALL_INPUT if ("tiny" in name or "nano" in name) else YOLOX_INPUT
        return (side, side), f"the model family's known size (YOLOX: {side}x{side})"
    raise WeightsInvalidError(
        f"{Path(path).name}: the {kind} model's input size is symbolic ({shape}) and neither its metadata nor its "
        f"file name says which size it was trained at",
        hint="export the ONNX with a fixed input size, or use the file download-weights fetches",
    )


class PoseEstimator(Protocol):
    """frames are HxWx3 uint8 RGB; boxes xyxy source pixels."""

    det_name: str
    pose_name: str

    def detect(self, frame: np.ndarray) -> np.ndarray: ...  # (N, 4); N = 0 means nobody

    def estimate(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...  # (133, 2), (133,)

    def info(self) -> dict: ...  # providers, input sizes: goes into pose.json


def default_threshold_rule(pose_name: str) -> float | None:
    """Per-model score threshold (None = auto; docs/pose-facts.md, "Score scales and thresholds"): ViTPose heatmap maxima are ~0-1 and Wan's 0.5
    was tuned on them; DWPose's own ControlNet code uses 0.3; RTMW's SimCC peaks are uncalibrated logits."""
    name = pose_name.lower()
    if "vitpose" in name:
        return 0.5
    if "rtmw" in name:
        return None
    if "dw" in name or "rtmpose" in name:
        return 0.3
    return None


def find_pose_models(weights_dir: Path) -> tuple[Path, Path]:
    """(detector, pose) ONNX files of the weights folder, through the same completeness check as `run`
    (weights.resolve); WeightsMissingError naming the missing files and the download command."""
    from animate_cli import weights

    paths = weights.resolve(Path(weights_dir).expanduser(), need=("pose",))
    return paths.det_onnx, paths.pose_onnx


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, memoised per (path, size, mtime) so a 200 MB model is read once per process."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when onnxruntime has the CUDA provider, else 'cpu'. 'cuda' without it is an error."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        return "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if device.startswith("cuda") and "CUDAExecutionProvider" not in available:
        raise DeviceError("onnxruntime has no CUDA provider (the CPU `onnxruntime` package is installed)",
                          hint="use --device cpu, or replace onnxruntime with onnxruntime-gpu")  # fmt: skip
    return device


def pose_device(run_device: str) -> str:
    """The onnxruntime device for `everanimate run` on `run_device`: that CUDA device when the run is on CUDA
    and onnxruntime has the CUDA provider (onnxruntime-gpu installed), else 'cpu'. The choice never changes
    the pose cache key (stage.cache_key): it is the same model, only computed elsewhere."""
    if not run_device.startswith("cuda"):
        return "cpu"
    import onnxruntime as ort

    return run_device if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"


class RtmlibEstimator:
    """rtmlib YOLOX + RTMPose (RTMW / DWPose SimCC ONNX) on local files."""

    def __init__(self, det_onnx: Path, pose_onnx: Path, device: str = "cpu"):
        for p in (det_onnx, pose_onnx):
            if not Path(p).is_file():  # rtmlib would otherwise treat the path as a URL and download it
                raise WeightsMissingError(f"pose model not found: {p}", hint="run `everanimate download-weights --only pose`")
        self.device = resolve_device(device)
        self.fallback = None  # with --device auto: why the CUDA provider was given up for the CPU (one warning line)
        try:
            self._open(det_onnx, pose_onnx)
        except DeviceError as e:  # onnxruntime-gpu whose CUDA/cuDNN libraries do not match: auto means "if it works"
            if device != "auto" or self.device == "cpu":
                raise
            self.device, self.fallback = "cpu", f"warning: pose models on the CPU: {e.message}"
            self._open(det_onnx, pose_onnx)

    def _open(self, det_onnx: Path, pose_onnx: Path) -> None:
        """Both onnxruntime sessions on self.device; DeviceError when the CUDA provider does not run them."""
        # rtmlib print()s "load ... with onnxruntime backend": send it to stderr so --json stays one object
        # (the same redirect as cli.common.quiet_stdout; stage modules do not import the CLI layer).
        with contextlib.redirect_stdout(sys.stderr):
            from rtmlib import YOLOX, RTMPose

            try:
                self.det = YOLOX(str(det_onnx), det_mode="human", backend="onnxruntime", device=self.device)
                self.pose = RTMPose(str(pose_onnx), to_openpose=False, backend="onnxruntime", device=self.device)
            except Exception as e:  # noqa: BLE001 - onnxruntime's own Fail/RuntimeError when CUDA cannot start
                if not self.device.startswith("cuda"):
                    raise
                raise DeviceError(f"onnxruntime's CUDA provider failed to start: {str(e).strip().splitlines()[0][:200]}",
                                  hint="check the CUDA/cuDNN libraries onnxruntime-gpu needs, or use --device cpu") from None  # fmt: skip
        # Input sizes come from the files, not rtmlib's defaults (a 384x288 model given (192, 256) decodes garbage).
        (dh, dw), det_from = model_input_hw(self.det.session, det_onnx, "detector")
        (ph, pw), pose_from = model_input_hw(self.pose.session, pose_onnx, "pose")
        self.det.model_input_size = (dh, dw)  # YOLOX: (h, w)
        self.pose.model_input_size = (pw, ph)  # RTMPose: (w, h)
        self.size_from = {"det": det_from, "pose": pose_from}
        self.det_name, self.pose_name = Path(det_onnx).name, Path(pose_onnx).name
        self.providers = {"det": self.det.session.get_providers(), "pose": self.pose.session.get_providers()}
        if self.device.startswith("cuda") and any("CUDAExecutionProvider" not in v for v in self.providers.values()):
            raise DeviceError(f"onnxruntime fell back to CPU for the pose models ({self.providers})",
                              hint="check the CUDA/cuDNN libraries onnxruntime-gpu needs, or use --device cpu")  # fmt: skip
        n_k = self.pose.session.get_outputs()[0].shape[1]
        if isinstance(n_k, int) and n_k != 133:  # a symbolic count is checked on the first real output instead
            raise WeightsMissingError(f"{self.pose_name} predicts {n_k} keypoints; a COCO-WholeBody (133) model is needed")

    def detect(self, frame: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(frame[..., ::-1])  # mmdet YOLOX configs expect BGR (docs/pose-facts.md, "Colour order")
        boxes = self.det(bgr)
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    def estimate(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # RTMW/DWPose configs set bgr_to_rgb=True, so they want RGB; one explicit box, never the empty list
        # (rtmlib would silently run on the whole frame).
        kpts, scores = self.pose(frame, bboxes=[list(map(float, box))])
        if kpts.shape[1] != 133:
            raise WeightsInvalidError(
                f"{self.pose_name} predicts {kpts.shape[1]} keypoints; a COCO-WholeBody (133) model is needed"
            )
        return kpts[0].astype(np.float64), scores[0].astype(np.float64)

    def info(self) -> dict:
        return {"device": self.device, "providers": self.providers,
                "det_input_hw": list(self.det.model_input_size), "pose_input_wh": list(self.pose.model_input_size),
                "input_size_from": self.size_from}  # fmt: skip
