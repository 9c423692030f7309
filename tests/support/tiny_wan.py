"""Tiny ONNX stand-ins for Wan2.2-Animate's official pose models, with their I/O signatures (docs/wan-pose.md).

* detector (YOLOv10m end-to-end): `images` (1, 3, 640, 640) RGB/255 -> `output0` (1, 300, 6) rows
  [x1, y1, x2, y2, score, class] in 640x640 pixels. A "person" is reddish (R - B > 0.15, B - R would not
  do: the colour order matters): for each of a fixed set of windows (the whole frame, sliding strips)
  the row is the bounding box of the reddish pixels in it, scored by how densely they fill that box, so a box
  spanning two people scores low and one cut by its window's inner edge scores 0. One more row, class 2, boxes greenish pixels (G - R > 0.15): a non-person
  the class filter must drop (and that class-agnostic NMS may let suppress a person). Unused rows are zeros.
* pose (ViTPose-H wholebody): `input` (1, 3, 256, 192) ImageNet-normalised -> `output` (1, 133, 64, 48)
  heatmaps. Each keypoint k has a fixed Gaussian prior around its place in a standing person's crop
  (tiny_pose.canonical_wholebody) times the blurred ReLU(w_k . colour + b_k) of the 4x4-pooled input: the peak
  moves with the image content and its height (the score Wan thresholds at 0.5) depends on the colour
  there. Body points answer the red of the person's channel order as Wan feeds it (BGR), hands a yellow,
  the face a skin tone, so hands and faces appear or not with the picture; crop, resize, normalisation and
  channel order all change the output.

No randomness at run time (per-keypoint gains come from a fixed seed and are stored in the file); each file
is < 2 MB. `onnx` is a dev dependency, imported lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DET_HW = (640, 640)
POSE_HW = (256, 192)
HEAT_HW = (64, 48)
DET_ROWS = 300
RED_MARGIN = 0.15  # a detector "person" pixel: R - B above this (on the /255 scale)
GREEN_MARGIN = 0.15  # the non-person object: G - R above this
FILL_FLOOR = 0.32  # box score = clip(4 x (fill - 0.32), 0, 0.95): a box mostly empty (two people apart) scores 0
FILL_GAIN = 4.0
PRIOR_SIGMA = 3.0  # heatmap pixels; wide enough that image content moves the peak, narrow enough to stay local
POOL = 4  # input pixels per heatmap pixel (256x192 -> 64x48)
STRIP = 40  # detector windows are unions of 40 px strips (1/16 of the input), so per-strip sums are computed once
# (w over the three input channels as the model receives them, bias): responses ~0.8 on the matching colour
# fed in BGR order (Wan's ViTPose input), ~0 on black; the same pixel fed as RGB answers much less.
BODY_W, BODY_B = (0.0, 0.0, 0.5), -0.15  # channel 2 (= R in BGR) above ~120/255: the red person (dark or green: 0)
HAND_W, HAND_B = (0.0, 0.2, 0.2), 0.1  # channels 1 and 2 high: yellow
FACE_W, FACE_B = (-0.15, 0.1, 0.2), 0.3  # R > G > B: a skin tone


def _windows() -> list[tuple[int, int, int, int]]:
    """(x0, x1, y0, y1) detector windows in 640 px: the whole frame, then full-height strips 1/2, 3/8 and 1/4
    of the frame wide, sliding by 1/16 (people stand side by side; some strip holds each one uncut)."""
    out = [(0, DET_HW[1], 0, DET_HW[0])]
    step = STRIP
    for width in (DET_HW[1] // 2, DET_HW[1] * 3 // 8, DET_HW[1] // 4):
        out += [(x0, x0 + width, 0, DET_HW[0]) for x0 in range(0, DET_HW[1] - width + 1, step)]
    return out


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="everanimate-tiny-wan")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


class _Graph:
    """A few helpers over onnx.helper so the window loop reads like the maths."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, kind: str, *inputs: str, **attrs) -> str:
        from onnx import helper

        self.n += 1
        name = f"t{self.n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [name], **attrs))
        return name

    def slice(self, x: str, starts, ends, axes) -> str:
        return self.op("Slice", x, self.const(starts, np.int64), self.const(ends, np.int64), self.const(axes, np.int64))

    def channel(self, x: str, c: int) -> str:
        return self.slice(x, [c], [c + 1], [1])  # (1, 1, H, W)


def _mask_stats(g: _Graph, mask: str) -> tuple[str, str, str]:
    """Per-strip summaries of a (1, 1, 640, 640) mask, computed once: `on` pixels (mask > 0) as column
    profile (640,), per-strip row profiles (640, 16) and per-strip counts (16,); strips are 40 px wide, so
    every window (edges on multiples of 40) is a union of strips."""
    on = g.op("Cast", g.op("Greater", mask, g.const(0.0)), to=1)
    cols = g.op("ReduceMax", on, axes=[0, 1, 2], keepdims=0)  # (640,)
    strips = g.op("Reshape", on, g.const([DET_HW[0], DET_HW[1] // STRIP, STRIP], np.int64))  # (640, 16, 40)
    rows = g.op("ReduceMax", strips, axes=[2], keepdims=0)  # (640, 16)
    counts = g.op("ReduceSum", strips, g.const([0, 2], np.int64), keepdims=0)  # (16,)
    return cols, rows, counts


def _box_row(g: _Graph, stats: tuple[str, str, str], win: tuple[int, int, int, int], cls: float) -> str:
    """(1, 1, 6) [x1, y1, x2, y2, score, cls] of the mask's pixels inside a full-height window."""
    cols_all, rows_all, counts_all = stats
    x0, x1, _, _ = win
    a, b = x0 // STRIP, x1 // STRIP
    cols = g.op("Unsqueeze", g.slice(cols_all, [x0], [x1], [0]), g.const([0], np.int64))  # (1, w)
    rows = g.op(
        "Unsqueeze", g.op("ReduceMax", g.slice(rows_all, [a], [b], [1]), axes=[1], keepdims=0), g.const([0], np.int64)
    )  # (1, 640)
    first_x = g.op("Cast", g.op("ArgMax", cols, axis=1, keepdims=1), to=1)  # (1, 1)
    last_x = g.op("Cast", g.op("ArgMax", cols, axis=1, keepdims=1, select_last_index=1), to=1)
    first_y = g.op("Cast", g.op("ArgMax", rows, axis=1, keepdims=1), to=1)
    last_y = g.op("Cast", g.op("ArgMax", rows, axis=1, keepdims=1, select_last_index=1), to=1)
    bx1, by1 = g.op("Add", first_x, g.const(float(x0))), first_y
    bx2, by2 = g.op("Add", last_x, g.const(float(x0) + 1.0)), g.op("Add", last_y, g.const(1.0))
    area = g.op("Mul", g.op("Sub", bx2, bx1), g.op("Sub", by2, by1))
    count = g.op("ReduceSum", g.slice(counts_all, [a], [b], [0]), g.const([0], np.int64), keepdims=1)  # (1,)
    fill = g.op("Div", g.op("Reshape", count, g.const([1, 1], np.int64)), area)
    score = g.op("Clip", g.op("Mul", g.op("Sub", fill, g.const(FILL_FLOOR)), g.const(FILL_GAIN)), g.const(0.0), g.const(0.95))
    # a window edge inside the frame that has mask pixels on both sides cuts someone in two: score 0
    for edge in (x0, x1):
        if 0 < edge < DET_HW[1]:
            both = g.op("ReduceMin", g.slice(cols_all, [edge - 1], [edge + 1], [0]), keepdims=1)  # (1,)
            keep = g.op("Reshape", g.op("Sub", g.const(1.0), both), g.const([1, 1], np.int64))
            score = g.op("Mul", score, keep)
    row = g.op("Concat", bx1, by1, bx2, by2, score, g.const([[cls]]), axis=1)  # (1, 6)
    return g.op("Unsqueeze", row, g.const([0], np.int64))


def write_wan_detector(path: Path) -> Path:
    """The YOLOv10m stand-in (module docstring) at `path`."""
    from onnx import TensorProto, helper

    g = _Graph()
    r, gr, b = g.channel("images", 0), g.channel("images", 1), g.channel("images", 2)
    red = g.op("Relu", g.op("Sub", g.op("Sub", r, b), g.const(RED_MARGIN)))
    green = g.op("Relu", g.op("Sub", g.op("Sub", gr, r), g.const(GREEN_MARGIN)))
    red_stats, green_stats = _mask_stats(g, red), _mask_stats(g, green)
    rows = [_box_row(g, red_stats, w, 0.0) for w in _windows()]
    rows.append(_box_row(g, green_stats, (0, DET_HW[1], 0, DET_HW[0]), 2.0))
    pad = g.const(np.zeros((1, DET_ROWS - len(rows), 6)))
    out = g.op("Concat", *rows, pad, axis=1)
    g.nodes.append(helper.make_node("Identity", [out], ["output0"]))
    graph = helper.make_graph(
        g.nodes, "tiny_yolov10_e2e",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *DET_HW])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, DET_ROWS, 6])],
        initializer=g.inits,
    )  # fmt: skip
    return _save(graph, path)


def _priors() -> np.ndarray:
    """(133, 64, 48) float32 Gaussian priors at the canonical keypoints of a standing person's crop."""
    from .tiny_pose import canonical_wholebody

    uv, _ = canonical_wholebody()
    hh, ww = HEAT_HW
    ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float64)
    cx, cy = uv[:, 0] * ww, uv[:, 1] * hh
    d2 = (xs[None] - cx[:, None, None]) ** 2 + (ys[None] - cy[:, None, None]) ** 2
    return np.exp(-d2 / (2 * PRIOR_SIGMA**2)).astype(np.float32)


def _colour_weights() -> tuple[np.ndarray, np.ndarray]:
    """(133, 3, 1, 1) weights and (133,) biases of the 1x1 colour response: body / hands / face groups, each
    keypoint's gain varied by a fixed seed (0.8-1.2) so scores straddle the 0.5 threshold differently."""
    w = np.zeros((133, 3), np.float32)
    b = np.zeros(133, np.float32)
    for idx, (wk, bk) in ((np.r_[0:23], (BODY_W, BODY_B)), (np.r_[91:133], (HAND_W, HAND_B)),
                          (np.r_[23:91], (FACE_W, FACE_B))):  # fmt: skip
        w[idx], b[idx] = wk, bk
    gain = np.random.default_rng(17).uniform(0.8, 1.2, 133).astype(np.float32)
    return (w * gain[:, None]).reshape(133, 3, 1, 1), b * gain


def write_wan_pose(path: Path) -> Path:
    """The ViTPose-H wholebody stand-in (module docstring) at `path`."""
    from onnx import TensorProto, helper

    g = _Graph()
    pooled = g.op("AveragePool", "input", kernel_shape=[POOL, POOL], strides=[POOL, POOL])  # (1, 3, 64, 48)
    w, b = _colour_weights()
    resp = g.op("Relu", g.op("Conv", pooled, g.const(w), g.const(b)))  # (1, 133, 64, 48)
    # blurred after the ReLU, so the zero padding adds nothing: an empty crop stays exactly 0 (Wan's "no body")
    k1 = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
    blur = np.tile((np.outer(k1, k1) / 256.0).astype(np.float32), (133, 1, 1, 1))  # (133, 1, 5, 5), per keypoint
    smooth = g.op("Conv", resp, g.const(blur), group=133, pads=[2, 2, 2, 2])
    heat = g.op("Mul", smooth, g.const(_priors()[None]))
    g.nodes.append(helper.make_node("Identity", [heat], ["output"]))
    graph = helper.make_graph(
        g.nodes, "tiny_vitpose_wholebody",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *POSE_HW])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 133, *HEAT_HW])],
        initializer=g.inits,
    )  # fmt: skip
    return _save(graph, path)


def write_wan_models(base_dir: Path) -> dict[str, Path]:
    """Both files where the weights folder keeps the official ones (config.WAN_DET_ONNX / WAN_POSE_ONNX under
    the base model folder) -> {"det": Path, "pose": Path}."""
    from animate_cli import config as C

    base_dir = Path(base_dir)
    return {"det": write_wan_detector(base_dir / C.WAN_DET_ONNX), "pose": write_wan_pose(base_dir / C.WAN_POSE_ONNX)}


# --- synthetic people the stand-ins respond to --------------------------------------------------------

PERSON_RED = (200, 60, 40)  # RGB: R - B well above RED_MARGIN
HAND_YELLOW = (230, 200, 40)
SKIN = (230, 170, 140)
HAIR = (70, 45, 30)  # the back of a head: the face group answers ~0.3, under Wan's 0.5
OBJECT_GREEN = (40, 200, 60)


def draw_person(frame: np.ndarray, cx: float, top: float, height: float, face: bool = True, hands: bool = True) -> None:
    """Draw a chunky standing figure in place on an RGB uint8 frame: head (skin, or hair when `face` is
    False: turned away), red torso, arms and legs, yellow hands. `cx`, `top`, `height` in pixels."""
    import cv2

    u = height / 8.0  # head height units
    pt = lambda dx, dy: (int(round(cx + dx * u)), int(round(top + dy * u)))  # noqa: E731
    thick = max(2, int(round(0.55 * u)))
    cv2.rectangle(frame, pt(-1.1, 1.2), pt(1.1, 4.2), PERSON_RED, -1)  # torso
    for side in (-1, 1):
        cv2.line(frame, pt(0.9 * side, 1.5), pt(1.7 * side, 3.0), PERSON_RED, thick)  # upper arm
        cv2.line(frame, pt(1.7 * side, 3.0), pt(1.9 * side, 4.3), PERSON_RED, thick)  # forearm
        cv2.line(frame, pt(0.6 * side, 4.1), pt(0.7 * side, 6.0), PERSON_RED, thick)  # thigh
        cv2.line(frame, pt(0.7 * side, 6.0), pt(0.75 * side, 7.8), PERSON_RED, thick)  # shin
        if hands:
            cv2.circle(frame, pt(1.95 * side, 4.6), max(2, int(round(0.35 * u))), HAND_YELLOW, -1)
    cv2.ellipse(frame, pt(0, 0.6), (int(round(0.5 * u)), int(round(0.62 * u))), 0, 0, 360, SKIN if face else HAIR, -1)
