"""Wan2.2-Animate's official pose preprocessing, step by step, as pure numpy/OpenCV functions.

Reproduces `wan/modules/animate/preprocess/` of github Wan-Video/Wan2.2 at commit 42bf4cf (pose2d.py,
pose2d_utils.py, utils.py, process_pipepline.py), written anew from reading it. The arithmetic (dtypes, the
order of operations, int truncation, OpenCV calls) follows the official code on purpose: the skeleton is
drawn from int-truncated coordinates, so a last-bit difference in a keypoint can move a limb by a pixel.
tests/test_pose_wan_parity.py holds it to outputs the official functions produced (docs/pose-parity.md).

Shapes: frames HxWx3 uint8; detector input (1, 3, 640, 640) float32, output (1, 300, 6) rows
[x1, y1, x2, y2, score, class] in 640x640 pixels; pose input (1, 3, 256, 192) float32, output heatmaps
(1, 133, 64, 48); keypoints (133, 3) float32 [x, y, score] in frame pixels.
"""

from __future__ import annotations

import contextlib

import numpy as np

from animate_cli.errors import WeightsInvalidError

DET_SIZE = (640, 640)  # (h, w): YOLOv10m's input; the frame is stretched to it (no letterbox), as Wan does
DET_CONF = 0.05  # Wan's threshold_conf: boxes below are dropped before NMS
DET_IOU = 0.5  # Wan's NMS IoU threshold (cv2.dnn.NMSBoxes, across all classes)
DET_PERSON_CLASS = 0  # Wan keeps class ids c with c + 1 in cat_id=[1]: COCO's person
STRICT_SIDE = 0.4  # Wan's threshold_bbox_shape_ratio: strict mode skips boxes whose longer side is < 0.4x the best's
MIN_BOX_SIDE = 10  # ViTPose.preprocess runs on the whole frame when the box is narrower or shorter than this
POSE_SIZE = (256, 192)  # (h, w): ViTPose-H wholebody's input
POSE_RESCALE = 1.25  # the person box is enlarged by this before the crop (bbox_from_detector)
SCALE_UNIT = 200.0  # mmpose's legacy box scale unit: scales are stored /200 and multiplied back
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])  # RGB statistics, applied to a BGR crop (see pose_input)
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
DARK_KERNEL = 11  # Gaussian kernel of the unbiased (DARK) decode: sigma 2, the heatmaps' training sigma
LOG_FLOOR = 1e-10  # DARK takes the log of the blurred heatmap, floored here
KPT_THR = 0.5  # Wan draws body and hand points whose heatmap maximum is >= 0.5 (draw_aapose_by_meta_new)
FACE_SIZE = 512  # face crops are stretched to 512x512 (INTER_LINEAR), the face encoder's input
FACE_AREA_SCALE = 1.3  # get_face_bboxes(scale=1.3): the landmark box's area grows 1.3x
# COCO-WholeBody-133 -> Wan's body-20: the mean of two points (neck = mid-shoulders, toes = big + small toe)
BODY_A = [0, 6, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 17, 20]
BODY_B = [0, 5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 18, 21]
FACE_SLICE = slice(22, 91)  # Wan keeps 69 points from the right heel; the face box drops the first (68 landmarks)


# --- detector -----------------------------------------------------------------------------------------


def detector_input(frame_rgb: np.ndarray) -> np.ndarray:
    """(1, 3, 640, 640) float32: the RGB frame stretched to 640x640 (INTER_LINEAR), /255.

    Wan's Pose2d turns its RGB frames into BGR and its detector's read_img turns them back, so YOLO sees RGB."""
    import cv2

    img = cv2.resize(np.ascontiguousarray(frame_rgb), (DET_SIZE[1], DET_SIZE[0]))
    return (np.array(img) / 255.0).transpose(2, 0, 1).astype(np.float32)[None]


def parse_detections(output: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Wan's Yolo.postprocess for end-to-end (N, 6) output: (M, 6) float64 rows [x1, y1, x2, y2, score, class]
    in frame pixels, int-truncated boxes, after confidence 0.05 and NMS 0.5 (OpenCV's, class-agnostic),
    in NMS order (score descending)."""
    import cv2

    rows = np.squeeze(np.asarray(output))
    if rows.ndim == 1:
        rows = rows[None]
    if rows.ndim != 2 or rows.shape[-1] != 6:
        raise WeightsInvalidError(f"the detector's output has shape {list(np.shape(output))}; an end-to-end "
                                  "YOLOv10 export with (1, N, 6) rows is needed")  # fmt: skip
    h, w = frame_hw
    keep = rows[:, 4] >= DET_CONF
    scores, classes = rows[keep, 4], rows[keep, 5]
    boxes = rows[:, :4][keep]  # float32, like the model output: the scaling below rounds as Wan's does
    # Wan runs on numpy < 2, where a float64 scalar times a float32 array computes in float32: same here
    boxes[:, [0, 2]] *= np.float32(np.float64(w) / DET_SIZE[1])
    boxes[:, [1, 3]] *= np.float32(np.float64(h) / DET_SIZE[0])
    boxes[:, 2] = boxes[:, 2] - boxes[:, 0]  # xywh for NMS, truncated to ints as Wan's astype(int32)
    boxes[:, 3] = boxes[:, 3] - boxes[:, 1]
    xywh = boxes.astype(np.int32).tolist()
    sc, cl = scores.tolist(), classes.tolist()
    keep_idx = cv2.dnn.NMSBoxes(xywh, sc, DET_CONF, DET_IOU)
    out = [[x, y, x + bw, y + bh, sc[i], cl[i]] for i in np.asarray(keep_idx, dtype=int).reshape(-1)
           for x, y, bw, bh in [xywh[i]]]  # fmt: skip
    return np.array(out, dtype=np.float64).reshape(-1, 6)


def select_person(dets: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Wan's Yolo.process_results with select_type 'max', strict mode, one person: (5,) [x1, y1, x2, y2, score].

    Person boxes above the confidence are walked in NMS order; a box wins when its area beats the best so far
    and its longer side is at least 0.4x the current reference side (first the longest person box, then the
    winner's own side: Wan updates the reference as it goes, so the walk order matters). Nobody: the whole
    frame with score -1, which makes ViTPose run on the full frame."""
    h, w = frame_hw
    person = [d for d in dets if d[5] == DET_PERSON_CLASS and d[4] > DET_CONF]
    if not person:
        return np.array([0.0, 0.0, 1.0 * w, 1.0 * h, -1.0])
    ref_side = max(max(d[2] - d[0], d[3] - d[1]) for d in person)
    best, best_area = None, h * w * -10
    for d in person:
        area = (d[2] - d[0]) * (d[3] - d[1])
        side = max(d[2] - d[0], d[3] - d[1])
        if area > best_area:
            if side < ref_side * STRICT_SIDE:
                continue
            best, best_area, ref_side = d, area, side
    return np.asarray(best[:5], dtype=np.float64)


# --- ViTPose crop -------------------------------------------------------------------------------------


def _crop_transform(center: np.ndarray, scale: float) -> np.ndarray:
    """The 3x3 frame -> crop matrix of the legacy crop (pose2d_utils.get_transform, no rotation)."""
    res_h, res_w = POSE_SIZE
    h = SCALE_UNIT * scale
    w = h / (res_h / float(res_w))
    t = np.zeros((3, 3))
    t[0, 0] = float(res_w) / w
    t[1, 1] = float(res_h) / h
    t[0, 2] = res_w * (-float(center[0]) / w + 0.5)
    t[1, 2] = res_h * (-float(center[1]) / h + 0.5)
    t[2, 2] = 1
    return t


def _crop_corner(pt: tuple[int, int], center: np.ndarray, scale: float) -> np.ndarray:
    """A crop corner (1-based, as the legacy code) mapped back to frame pixels, rounded half to even."""
    inv = np.linalg.inv(_crop_transform(center, scale))
    p = np.dot(inv, np.array([pt[0] - 1, pt[1] - 1, 1.0]).T)
    return np.array([round(p[0]), round(p[1])], dtype=int) + 1


def crop_box(box: np.ndarray, frame_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(center (2,), scale (2,)) of ViTPose's crop for a detector box (bbox_from_detector): the box's centre;
    the box forced to 3:4 around it and enlarged 1.25x, in units of 200 px. A box with score <= 0 or a side
    under 10 px is replaced by the whole frame."""
    h, w = frame_hw
    if box is None or box[-1] <= 0 or (box[2] - box[0]) < MIN_BOX_SIDE or (box[3] - box[1]) < MIN_BOX_SIDE:
        box = np.array([0, 0, w, h])
    aspect = POSE_SIZE[0] / float(POSE_SIZE[1])
    center = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
    size = max((box[2] - box[0]) * aspect, box[3] - box[1])
    scale = np.array([size / aspect, size]) / SCALE_UNIT
    scale *= POSE_RESCALE
    return center, scale


def pose_input(frame_rgb: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(1, 3, 256, 192) float32: the crop, cut at integer corners with zero padding outside the frame, resized
    (INTER_LINEAR, float32) and ImageNet-normalised.

    Colour order: Wan's Pose2d.load_images converts its RGB frames with COLOR_BGR2RGB, i.e. swaps them to BGR,
    and ViTPose gets that BGR crop normalised with the RGB mean/std. We reproduce the swap: the official model
    was run this way, and parity is the point of this mode."""
    import cv2

    bgr = np.ascontiguousarray(frame_rgb[..., ::-1])
    s = max(scale)
    ul = _crop_corner((1, 1), center, s) - 1
    br = _crop_corner((POSE_SIZE[1] + 1, POSE_SIZE[0] + 1), center, s) - 1
    patch = np.zeros((br[1] - ul[1], br[0] - ul[0], 3), dtype=np.float32)
    fh, fw = bgr.shape[:2]
    dst_x = max(0, -ul[0]), min(br[0], fw) - ul[0]
    dst_y = max(0, -ul[1]), min(br[1], fh) - ul[1]
    src_x = max(0, ul[0]), min(fw, br[0])
    src_y = max(0, ul[1]), min(fh, br[1])
    # a crop wholly outside the frame gives mismatched slices: Wan's try/except then keeps the all-zero patch
    with contextlib.suppress(ValueError):
        patch[dst_y[0] : dst_y[1], dst_x[0] : dst_x[1]] = bgr[src_y[0] : src_y[1], src_x[0] : src_x[1]]
    if patch.size == 0:  # Wan's cv2.resize would raise here; an empty crop sees nothing
        patch = np.zeros((*POSE_SIZE, 3), np.float32)
    img = cv2.resize(patch, (POSE_SIZE[1], POSE_SIZE[0]))
    norm = (img / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return norm.transpose(2, 0, 1).astype(np.float32)[None]


# --- heatmap decode -----------------------------------------------------------------------------------


def _modulate(heatmaps: np.ndarray) -> np.ndarray:
    """DARK's Gaussian modulation (pose2d_utils._gaussian_blur): each (H, W) map blurred with an 11x11 kernel
    inside a zero border, rescaled to its original maximum. (K, H, W) float32 -> new array."""
    import cv2

    border = (DARK_KERNEL - 1) // 2
    k, h, w = heatmaps.shape
    out = heatmaps.copy()
    for j in range(k):
        peak = np.max(out[j])
        padded = np.zeros((h + 2 * border, w + 2 * border), dtype=np.float32)
        padded[border:-border, border:-border] = out[j].copy()
        padded = cv2.GaussianBlur(padded, (DARK_KERNEL, DARK_KERNEL), 0)
        out[j] = padded[border:-border, border:-border].copy()
        with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero map becomes NaN, as Wan's does
            out[j] *= peak / np.max(out[j])
    return out


def _taylor_step(logmap: np.ndarray, xy: np.ndarray) -> None:
    """One second-order Taylor step (DARK) at integer peak xy of a float32 log heatmap, in place; only where
    the 5x5 neighbourhood is inside the map and the Hessian is not singular.

    The precision follows Wan's code under the numpy < 2 it pins: a difference of two map values is float32,
    anything a Python number touches becomes float64, and the float32 xy takes the float64 step."""
    h, w = logmap.shape
    px, py = int(xy[0]), int(xy[1])
    if not (1 < px < w - 2 and 1 < py < h - 2):
        return
    m = logmap
    f64 = np.float64
    dx = 0.5 * f64(m[py, px + 1] - m[py, px - 1])
    dy = 0.5 * f64(m[py + 1, px] - m[py - 1, px])
    dxx = 0.25 * (f64(m[py, px + 2]) - 2 * f64(m[py, px]) + f64(m[py, px - 2]))
    dxy = 0.25 * f64(m[py + 1, px + 1] - m[py - 1, px + 1] - m[py + 1, px - 1] + m[py - 1, px - 1])
    dyy = 0.25 * (f64(m[py + 2, px]) - 2 * f64(m[py, px]) + f64(m[py - 2, px]))
    if dxx * dyy - dxy**2 != 0:
        inv = np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]]))
        offset = -inv @ np.array([[dx], [dy]])
        xy += np.squeeze(np.array(offset.T), axis=0)


def decode_heatmaps(heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(1, K, H, W) heatmaps of one crop -> (K, 3) float32 [x, y, score] in frame pixels.

    Wan's keypoints_from_heatmaps(unbiased=True, use_udp=False): the argmax (a map whose maximum is <= 0 gives
    (-1, -1)), refined by DARK (log of the modulated map, one Taylor step), mapped back with the non-UDP
    transform x = px * box_w / W + cx - box_w / 2. The score is the raw heatmap maximum."""
    hm = np.asarray(heatmaps)
    if hm.ndim != 4 or hm.shape[0] != 1:
        raise WeightsInvalidError(f"the pose model's output has shape {list(hm.shape)}; (1, 133, h, w) heatmaps are needed")
    _, k, h, w = hm.shape
    flat = hm.reshape(k, -1)
    idx = np.argmax(flat, 1)
    peak = np.amax(flat, 1).reshape(k, 1)
    xy = np.tile(idx.reshape(k, 1), (1, 2)).astype(np.float32)
    xy[:, 0] = xy[:, 0] % w
    xy[:, 1] = xy[:, 1] // w
    xy = np.where(np.tile(peak, (1, 2)) > 0.0, xy, -1)
    logmaps = np.log(np.maximum(_modulate(hm[0].copy()), LOG_FLOOR))
    for j in range(k):
        _taylor_step(logmaps[j], xy[j])
    box = scale * SCALE_UNIT  # Wan passes scale * 200 and transform_preds uses it as the box size in pixels
    f32 = np.float32  # numpy < 2 (Wan's pin): float64 scalars meet the float32 array as float32
    out = np.ones_like(xy)
    out[:, 0] = xy[:, 0] * f32(box[0] / w) + f32(center[0]) - f32(box[0] * 0.5)
    out[:, 1] = xy[:, 1] * f32(box[1] / h) + f32(center[1]) - f32(box[1] * 0.5)
    return np.concatenate([out, peak], axis=1)


# --- per-frame keypoints -> what gets drawn and cropped -----------------------------------------------


def normalised_parts(kp2d: np.ndarray, width: int, height: int) -> dict[str, np.ndarray]:
    """Wan's split_kp2ds_for_aa on coordinates divided by the frame size (float32, as Wan's arrays):
    body (20, 3), lhand (21, 3), rhand (21, 3), face (69, 3) [x / W, y / H, score]."""
    kps = np.asarray(kp2d, dtype=np.float32).copy()
    kps[:, 0] /= width
    kps[:, 1] /= height
    return {"body": (kps[BODY_A] + kps[BODY_B]) / 2, "lhand": kps[91:112].copy(), "rhand": kps[112:133].copy(),
            "face": kps[FACE_SLICE].copy()}  # fmt: skip


def body_missing(body: np.ndarray) -> bool:
    """Wan's 'reuse the previous body' test: every body point has a negative x or y (normalised). This is what
    a crop with no person gives: every heatmap maximum <= 0 decodes to (-1, -1) before the back-transform."""
    return bool(body[:, :2].min(axis=1).max() < 0)


def face_box(face_norm: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Wan's get_face_bboxes (the utils.py definition that wins): from all 68 landmarks, no score check, the
    box's area grows 1.3x at its own aspect, the extra height goes 3:1 above:below, each side clipped to the
    frame on one end only, int-truncated. Returns (x1, y1, x2, y2), which can be inverted or negative when
    the landmarks are off the frame (Wan then slices with Python's negative-index rules: see face_crop);
    None where Wan's own arithmetic fails (a zero-width or zero-height landmark set gives NaN)."""
    pts = face_norm[1:, :2] * (width, height)
    min_x, min_y = np.min(pts, axis=0)
    max_x, max_y = np.max(pts, axis=0)
    w0, h0 = max_x - min_x, max_y - min_y
    with np.errstate(divide="ignore", invalid="ignore"):
        area = w0 * h0 * FACE_AREA_SCALE
        w1 = np.sqrt(area * (w0 / h0))
        h1 = np.sqrt(area * (h0 / w0))
    dx, dy = (w1 - w0) / 2, (h1 - h0) / 4
    vals = (max(min_x - dx, 0), max(min_y - 3 * dy, 0), min(max_x + dx, width), min(max_y + dy, height))
    if not all(np.isfinite(v) for v in vals):
        return None
    x1, y1, x2, y2 = (int(v) for v in vals)
    return x1, y1, x2, y2


def face_crop(frame: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """(512, 512, 3) uint8: frame[y1:y2, x1:x2] stretched to 512x512 (INTER_LINEAR), as Wan crops, with
    Python slicing exactly as Wan's (a negative end counts from the far edge). All black where Wan's code
    would stop with an error instead (no box, or an empty slice): black is the model's 'no face' input."""
    import cv2

    if box is None:
        return np.zeros((FACE_SIZE, FACE_SIZE, 3), np.uint8)
    x1, y1, x2, y2 = box
    patch = frame[y1:y2, x1:x2]
    if patch.size == 0:
        return np.zeros((FACE_SIZE, FACE_SIZE, 3), np.uint8)
    return cv2.resize(np.ascontiguousarray(patch), (FACE_SIZE, FACE_SIZE))


def letterbox(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Wan's padding_resize: keep the aspect, fit inside height x width (INTER_LINEAR), centre, black bars.
    The fitted side is int-truncated, so a same-aspect image can gain a black row or column, as in Wan's."""
    import cv2

    oh, ow = img.shape[:2]
    out = np.zeros((height, width, img.shape[2]), np.uint8)
    if (oh / ow) > (height / width):
        nw = int(height / oh * ow)
        pad = int((width - nw) / 2)
        out[:, pad : pad + nw] = cv2.resize(img, (nw, height), interpolation=cv2.INTER_LINEAR)
    else:
        nh = int(width / ow * oh)
        pad = int((height - nh) / 2)
        out[pad : pad + nh] = cv2.resize(img, (width, nh), interpolation=cv2.INTER_LINEAR)
    return out
