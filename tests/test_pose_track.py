"""Tracking, gaps, smoothing and thresholds, with a scripted fake estimator behind the PoseEstimator protocol."""

import numpy as np
import pytest
from support.tiny_pose import canonical_wholebody

from animate_cli import media
from animate_cli.errors import NoPersonDetectedError
from animate_cli.pose import PoseOutputs, PoseSettings, extract_pose
from animate_cli.pose import keypoints as K
from animate_cli.pose.estimator import default_threshold_rule
from animate_cli.pose.track import Tracker, largest


def box(x, y, w, h):
    return np.array([x, y, x + w, y + h], float)


def person_in(b: np.ndarray, score: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """The canonical whole-body pose stretched into box b: (133, 2) pixels, (133,) scores."""
    uv, sc = canonical_wholebody()
    xy = b[:2] + uv * (b[2:] - b[:2])
    return xy, np.where(sc >= 0.5, score, 0.01)


class FakeEstimator:
    """script[t] = list of boxes in frame t; estimate returns the canonical pose inside the given box."""

    det_name, pose_name = "fake-det", "fake-pose"

    def __init__(self, script):
        self.script, self.t, self.estimated = script, 0, []

    def detect(self, frame):
        boxes = self.script[self.t] if self.t < len(self.script) else []
        self.t += 1
        return np.array(boxes, float).reshape(-1, 4)

    def estimate(self, frame, b):
        self.estimated.append(np.array(b))
        return person_in(np.asarray(b))

    def info(self):
        return {"device": "cpu", "providers": {"det": ["fake"], "pose": ["fake"]}}


N = 40  # frames of the shared 25 fps test video: the fps map is the identity, so frame t = script[t]


@pytest.fixture(scope="session")
def video25(tmp_path_factory):
    path = tmp_path_factory.mktemp("fake") / "v25.mp4"
    with media.VideoWriter(path, 160, 96, 25.0) as w:
        for t in range(N):
            f = np.zeros((96, 160, 3), np.uint8)
            f[20:80, 40 + t : 80 + t] = 200
            w.write(f)
    return path


SET = PoseSettings(width=160, height=96, body_thr=0.5)


def run_fake(video, tmp_path, script, settings=SET):
    est = FakeEstimator(script)
    r = extract_pose(video, tmp_path / "out", settings, est, outputs=PoseOutputs(keypoints=True))
    npz = np.load(r.keypoints, allow_pickle=False)
    return r, npz, est


def test_tracker_keeps_its_person_when_another_gets_bigger():
    tr = Tracker(max_lost=5)
    a = box(10, 10, 40, 80)
    for t in range(20):
        b_other = box(100, 5, 30 + 4 * t, 60 + 6 * t)  # grows well past the tracked person
        got = tr.update(np.stack([b_other, a + (t, 0, t, 0)]))
        assert np.allclose(got, a + (t, 0, t, 0))


def test_tracker_waits_then_reseeds():
    tr = Tracker(max_lost=2)
    a, b = box(0, 0, 40, 80), box(200, 0, 60, 100)
    assert np.allclose(tr.update([a]), a)
    assert tr.update([b]) is None and tr.update(np.zeros((0, 4))) is None  # B is not A: a gap, no jump
    assert tr.update([b]) is None
    assert np.allclose(tr.update([b]), b) and tr.reseeds == 1  # lost for > max_lost: re-seed with the largest


def test_largest_uses_wans_strict_rule():
    thin = box(0, 0, 1000, 5)  # huge longer side, tiny area
    assert largest(np.stack([box(0, 0, 50, 100), box(0, 0, 60, 110), thin])) == 2  # area wins among allowed
    assert largest(np.stack([box(0, 0, 50, 100), box(0, 0, 300, 390)])) == 1


def test_gap_fill_and_blank():
    t = 12
    kp = np.zeros((t, 133, 2))
    kp[:, :, 0] = np.arange(t)[:, None] * 10.0
    sc = np.ones((t, 133))
    valid = np.ones(t, bool)
    valid[[3, 4]] = False  # short gap
    valid[7:11] = False  # long gap
    k2, s2, st = K.fill_gaps(kp, sc, valid, max_gap=2)
    assert list(st) == [1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1]
    assert np.allclose(k2[3, :, 0], 30) and np.allclose(k2[4, :, 0], 40)  # linear between frames 2 and 5
    assert np.isnan(k2[8]).all() and (s2[8] == 0).all()


def test_zero_phase_smoothing_has_no_lag_and_resets_at_gaps():
    t = np.arange(100.0)
    x = (t * 0.05)[:, None]  # a ramp in person-scale units
    act = np.ones_like(x, bool)
    fwd = K.one_euro(x, act, 25.0, min_cutoff=1.5, beta=0.0, d_cutoff=1.0)
    zp = K.zero_phase_one_euro(x, act, 25.0, min_cutoff=1.5, beta=0.0, d_cutoff=1.0)
    mid = slice(30, 70)
    assert np.abs(fwd[mid] - x[mid]).mean() > 0.01  # a causal filter lags a ramp...
    assert np.abs(zp[mid] - x[mid]).max() < 1e-4  # ...forward+backward does not (start-up transients only)
    step = np.r_[np.zeros(10), 5.0, np.full(10, 100.0)][:, None]
    act2 = np.ones_like(step, bool)
    act2[10] = False  # a gap between two runs
    out = K.zero_phase_one_euro(step, act2, 25.0, min_cutoff=1.5, beta=0.5, d_cutoff=1.0)
    assert np.allclose(out[:10], 0) and np.allclose(out[11:], 100) and out[10, 0] == 5.0


def test_thresholds_per_model():
    assert default_threshold_rule("vitpose-l-wholebody.onnx") == 0.5
    assert default_threshold_rule("dw-ll_ucoco_384.onnx") == 0.3
    assert default_threshold_rule("rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.onnx") is None  # auto
    sc = np.full((10, 133), 5.0)  # RTMW-like logit scale
    thr = K.auto_thresholds(sc, np.ones(10, bool))
    assert thr.body == thr.hand == 2.5 and "auto" in thr.rule


def test_extract_tracks_one_person_through_a_crowd(video25, tmp_path):
    a = [box(20, 10, 30, 70) + (t / 2, 0, t / 2, 0) for t in range(N)]
    b = [box(100, 5, 20 + t, 50 + 2 * t) for t in range(N)]  # starts smaller, ends much bigger
    r, npz, _ = run_fake(video25, tmp_path, [[b[t], a[t]] for t in range(N)])
    assert r.frames == N and r.detected == N and r.empty == 0
    assert np.allclose(npz["det_boxes"], np.stack(a))  # never swapped to B


def test_extract_interpolates_short_gaps_and_blanks_long_ones(video25, tmp_path):
    a = box(40, 10, 40, 80)
    script = [[a] for _ in range(N)]
    for t in (5, 6, 7):  # 3 frames < 0.3 s at 25 fps: interpolated
        script[t] = []
    for t in range(15, 30):  # 15 frames: left black
        script[t] = []
    r, npz, _ = run_fake(video25, tmp_path, script)
    assert (r.detected, r.interpolated, r.empty) == (N - 18, 3, 15)
    assert list(npz["status"][4:9]) == [1, 2, 2, 2, 1]
    poses = list(media.iter_frames(r.pose_video))
    faces = list(media.iter_frames(r.face_video))
    assert len(poses) == len(faces) == N
    assert poses[20].max() < 20 and faces[20].max() < 20  # blank frames stay black after H.264
    assert poses[6].max() > 100  # the interpolated frame has a skeleton


def test_extract_nobody_raises_and_leaves_nothing(video25, tmp_path):
    with pytest.raises(NoPersonDetectedError):
        run_fake(video25, tmp_path, [[] for _ in range(N)])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_extract_ignores_tiny_boxes_and_seeds_largest(video25, tmp_path):
    small, big = box(10, 10, 20, 40), box(60, 5, 50, 85)
    tiny = box(0, 0, 10, 20)  # under MIN_BOX_PX tall: ignored
    r, npz, est = run_fake(
        video25, tmp_path, [[small, tiny, big] for _ in range(N)], PoseSettings(width=160, height=96, smooth="none", body_thr=0.5)
    )
    assert np.allclose(npz["det_boxes"], big) and len(est.estimated) == N  # one pose call per frame
    assert np.allclose(npz["kpts_smoothed"], npz["kpts"], equal_nan=True)  # --smooth none is per-frame exact


def test_retarget_rescales_limbs_to_the_reference(video25, tmp_path):
    from PIL import Image

    from animate_cli.pose.retarget import retarget_frame

    a = box(40, 10, 40, 80)
    ref = tmp_path / "ref.png"
    Image.fromarray(np.full((96, 160, 3), 200, np.uint8)).save(ref)

    class LongArms(FakeEstimator):
        def estimate(self, frame, b):
            k, s = person_in(np.asarray(b))
            self.estimated.append(b)
            if len(self.estimated) == 1:  # the first call is for the reference image: its arms are 1.5x longer
                k[[7, 9]] = k[5] + (k[[7, 9]] - k[5]) * 1.5
                k[[8, 10]] = k[6] + (k[[8, 10]] - k[6]) * 1.5
            return k, s

    est = LongArms([[a]] + [[a] for _ in range(N)])  # one detection for the reference, then one per frame
    settings = PoseSettings(width=160, height=96, body_thr=0.5, retarget=True, smooth="none", model="rtmw")
    r = extract_pose(video25, tmp_path / "rt", settings, est, ref=ref, outputs=PoseOutputs(keypoints=True))
    meta = __import__("json").loads(r.meta_path.read_text())
    assert np.isclose(meta["retarget"]["limb_ratios"]["l_upper_arm"], 1.5, atol=0.02)
    assert np.isclose(meta["retarget"]["limb_ratios"]["l_thigh"], 1.0, atol=0.02)
    npz = np.load(r.keypoints, allow_pickle=False)
    k, d = npz["kpts"][3], npz["kpts_drawn"][3]
    assert np.isclose(np.linalg.norm(d[7] - d[5]), 1.5 * np.linalg.norm(k[7] - k[5]), rtol=0.03)
    assert np.allclose(d[[5, 6, 11, 12]], k[[5, 6, 11, 12]], atol=0.5)  # torso unchanged, neck stays put
    ident = retarget_frame(k, dict.fromkeys(meta["retarget"]["limb_ratios"], 1.0))
    assert np.allclose(ident, k)
