"""Tiny ONNX stand-ins for the pose models, with rtmlib's real I/O signature (rtmlib 0.0.16).

* detector (YOLOX-m HumanArt layout, NMS inside the graph): `input` (1, 3, 640, 640) float ->
  `dets` (1, N, 5) [x1, y1, x2, y2, score] in 640-letterbox pixels, `labels` (1, N) int64.
  The boxes are fixed; the score is (max pixel - 114) / 100, so a frame with a bright person scores
  > 0.3 (rtmlib keeps it) while an all-black frame scores 0 (rtmlib's 114-grey letterbox padding
  alone never passes): "nobody" is testable with a black video.
* pose (RTMW-l 384x288 layout): `input` (1, 3, 384, 288) -> `simcc_x` (1, 133, 576), `simcc_y`
  (1, 133, 768), constant peaks at a standing whole-body pose, so decoded keypoints are known.

Random-free and ~1 MB each. `onnx` is a dev dependency and is imported only here, lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DET_INPUT = (640, 640)  # (h, w)
POSE_INPUT = (384, 288)  # (h, w)
SIMCC_SPLIT = 2  # SimCC bins per input pixel
PEAK = 1.0  # SimCC peak of a confident point -> rtmlib score 1.0
LOW_PEAK = 0.05  # heels: present but below any threshold

# A standing person facing the camera, in (u, v) fractions of the pose crop (COCO left = image right).
_BODY = {0: (0.50, 0.14), 1: (0.52, 0.12), 2: (0.48, 0.12), 3: (0.55, 0.13), 4: (0.45, 0.13), 5: (0.62, 0.25),
         6: (0.38, 0.25), 7: (0.68, 0.40), 8: (0.32, 0.40), 9: (0.70, 0.53), 10: (0.30, 0.53), 11: (0.57, 0.55),
         12: (0.43, 0.55), 13: (0.58, 0.72), 14: (0.42, 0.72), 15: (0.58, 0.88), 16: (0.42, 0.88),
         17: (0.61, 0.91), 18: (0.63, 0.90), 19: (0.57, 0.90), 20: (0.39, 0.91), 21: (0.37, 0.90), 22: (0.43, 0.90)}  # fmt: skip


def canonical_wholebody() -> tuple[np.ndarray, np.ndarray]:
    """(133, 2) (u, v) in [0, 1] of the person crop and (133,) scores: body, feet, 68 face points on an
    oval around the nose, two fanned hands hanging from the wrists. Used by the tiny model and by tests."""
    uv = np.zeros((133, 2))
    sc = np.full(133, PEAK)
    for k, p in _BODY.items():
        uv[k] = p
    sc[[19, 22]] = LOW_PEAK
    a = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    uv[23:91] = np.stack([0.50 + 0.045 * np.cos(a), 0.145 + 0.055 * np.sin(a)], axis=1)
    for root, start, side in ((9, 91, 1.0), (10, 112, -1.0)):
        uv[start] = uv[root] + (0.0, 0.02)
        for f in range(5):
            ang = np.deg2rad(60 + 15 * f) if side > 0 else np.deg2rad(120 - 15 * f)
            for j in range(4):
                r = 0.025 + 0.012 * j
                uv[start + 1 + 4 * f + j] = uv[start] + (r * np.cos(ang), r * np.sin(ang))
    return uv, sc


def _simcc(uv: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = POSE_INPUT
    sx = np.zeros((1, 133, w * SIMCC_SPLIT), np.float32)
    sy = np.zeros((1, 133, h * SIMCC_SPLIT), np.float32)
    ix = np.clip(np.round(uv[:, 0] * w * SIMCC_SPLIT).astype(int), 0, w * SIMCC_SPLIT - 1)
    iy = np.clip(np.round(uv[:, 1] * h * SIMCC_SPLIT).astype(int), 0, h * SIMCC_SPLIT - 1)
    sx[0, np.arange(133), ix] = scores
    sy[0, np.arange(133), iy] = scores
    return sx, sy


def _save(graph, path: Path, metadata: dict[str, str] | None = None) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="everanimate-tiny")
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


def write_tiny_detector(path: Path, boxes: list[tuple[float, float, float, float]] | None = None,
                        input_dims: list | None = None, metadata: dict[str, str] | None = None) -> Path:  # fmt: skip
    """YOLOX-with-NMS stand-in; `boxes` in 640x640 letterbox pixels (default: one person). `input_dims` overrides
    the declared input shape (e.g. symbolic ["batch", 3, "height", "width"]); `metadata` sets ONNX metadata_props."""
    from onnx import TensorProto, helper, numpy_helper

    boxes = boxes or [(200.0, 40.0, 440.0, 440.0)]
    n = len(boxes)
    consts = {
        "boxes": np.asarray(boxes, np.float32).reshape(1, n, 4),
        "base": np.array(114.0, np.float32),
        "div": np.array(100.0, np.float32),
        "ones": np.ones((1, n, 1), np.float32),
        "labels_c": np.zeros((1, n), np.int64),
    }
    nodes = [
        helper.make_node("ReduceMax", ["input"], ["mx"], keepdims=0),
        helper.make_node("Sub", ["mx", "base"], ["d"]),
        helper.make_node("Div", ["d", "div"], ["s"]),
        helper.make_node("Mul", ["ones", "s"], ["score"]),  # (1, n, 1)
        helper.make_node("Concat", ["boxes", "score"], ["dets"], axis=2),
        helper.make_node("Identity", ["labels_c"], ["labels"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_yolox_nms",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_dims or [1, 3, *DET_INPUT])],
        [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, n, 5]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, [1, n])],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
    )  # fmt: skip
    return _save(graph, Path(path), metadata)


def write_tiny_pose(path: Path, input_dims: list | None = None, metadata: dict[str, str] | None = None) -> Path:
    """RTMW-l-384x288 stand-in: constant SimCC peaks at `canonical_wholebody()` (+ 0 x mean(input)).
    `input_dims` / `metadata` as for `write_tiny_detector`."""
    from onnx import TensorProto, helper, numpy_helper

    uv, sc = canonical_wholebody()
    sx, sy = _simcc(uv, sc)
    consts = {"cx": sx, "cy": sy, "zero": np.array(0.0, np.float32)}
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),  # ties the outputs to the input
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["cx", "z"], ["simcc_x"]),
        helper.make_node("Add", ["cy", "z"], ["simcc_y"]),
    ]
    h, w = POSE_INPUT
    graph = helper.make_graph(
        nodes, "tiny_rtmw_simcc",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_dims or [1, 3, h, w])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, 133, w * SIMCC_SPLIT]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, 133, h * SIMCC_SPLIT])],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
    )  # fmt: skip
    return _save(graph, Path(path), metadata)


def write_tiny_pose_models(directory: Path, det_name: str | None = None, pose_name: str | None = None) -> dict[str, Path]:
    """Write both files into `directory` (default names: the real models' names) -> {"det": Path, "pose": Path}."""
    from animate_cli.pose.estimator import DEFAULT_DET, DEFAULT_POSE

    directory = Path(directory)
    return {"det": write_tiny_detector(directory / (det_name or DEFAULT_DET)),
            "pose": write_tiny_pose(directory / (pose_name or DEFAULT_POSE))}  # fmt: skip
