"""Issue 10 defects in the pose stage: no glide across a re-seed or a hard cut, one frame unit in pose.json,
a full progress bar for slow sources, and a warning when the pose model has no face keypoints.

A scripted estimator (tests/test_pose_track.py's FakeEstimator) stands in for rtmlib; videos are real mp4s."""

import json

import numpy as np
import pytest
from helpers import RecordingReporter
from test_pose_track import FakeEstimator, box, person_in

from animate_cli import media
from animate_cli.pose import PoseSettings, extract_pose
from animate_cli.pose import keypoints as K
from animate_cli.pose.track import Tracker


def write_clip(path, n, fps, cut_at=None, w=160, h=96):
    """A grey clip with a moving bright block; from `cut_at` on the scene changes completely (a hard cut)."""
    with media.VideoWriter(path, w, h, fps) as vw:
        for t in range(n):
            after = cut_at is not None and t >= cut_at
            f = np.full((h, w, 3), 200 if after else 30, np.uint8)
            f[20:80, 40 + t % 40 : 80 + t % 40] = 60 if after else 220
            vw.write(f)
    return path


def run(video, tmp_path, script, settings, est_cls=FakeEstimator, reporter=None):
    est = est_cls(script)
    r = extract_pose(video, tmp_path / "out", settings, None, None, estimator=est, save_keypoints=True, reporter=reporter)
    return r, np.load(r.keypoints, allow_pickle=False), json.loads(r.meta_path.read_text())


def test_no_glide_across_a_reseed_at_24fps(tmp_path):
    # Person A on the left for 13 frames, then only person B on the right. At 24 fps the tracker waits
    # 7 processed frames, re-seeds on B at the 8th, and the 8-frame gap was <= max_gap (8 output frames at
    # 25 fps): today the skeleton is interpolated across empty background from A to B.
    n = 30
    video = write_clip(tmp_path / "v24.mp4", n, 24.0)
    a, b = box(5, 10, 30, 80), box(120, 10, 30, 80)
    script = [[a] if t < 13 else [b] for t in range(n)]
    r, npz, meta = run(video, tmp_path, script, PoseSettings(width=160, height=96, body_thr=0.5))
    status = npz["status"]
    assert (status != K.INTERPOLATED).all(), list(status)  # nothing bridges A and B
    seg = npz["segment"]
    first_b = int(np.flatnonzero(np.isclose(npz["det_boxes"][:, 0], 120))[0])
    assert (status[14:first_b] == K.EMPTY).all() and seg[first_b] != seg[12]
    assert meta["tracking"]["reseed_frames"] == [first_b]
    # and smoothing did not pull B's first frame towards A
    assert np.allclose(npz["kpts_smoothed"][first_b, :17], npz["kpts"][first_b, :17], atol=1e-6)


def test_no_interpolation_or_smoothing_across_a_hard_cut(tmp_path):
    # A hard cut at frame 20 (the whole picture changes). Person A is lost for two frames around it and a
    # different person B appears overlapping A's box (IoU > 0.3): the tracker would happily follow, and the
    # 2-frame gap would be interpolated from A to B. A detected cut splits the clip instead.
    n = 40
    video = write_clip(tmp_path / "cut.mp4", n, 25.0, cut_at=20)
    a, b = box(40, 10, 40, 80), box(50, 5, 40, 84)
    script = [[a] if t < 19 else [] if t < 21 else [b] for t in range(n)]
    r, npz, meta = run(video, tmp_path, script, PoseSettings(width=160, height=96, body_thr=0.5))
    assert list(npz["status"][18:22]) == [K.DETECTED, K.EMPTY, K.EMPTY, K.DETECTED]
    assert meta["tracking"]["cut_frames"] == [20]
    assert npz["segment"][21] != npz["segment"][18] and bool(npz["cut"][20])
    assert np.allclose(npz["kpts_smoothed"][21, :17], npz["kpts"][21, :17], atol=1e-6)


def test_smoothing_restarts_at_segment_starts():
    x = np.r_[np.zeros(10), np.full(10, 100.0)][:, None]
    act = np.ones_like(x, bool)
    starts = np.zeros(20, bool)
    starts[10] = True
    out = K.zero_phase_one_euro(x, act, 25.0, min_cutoff=1.5, beta=0.5, d_cutoff=1.0, starts=starts)
    assert np.allclose(out[:10], 0) and np.allclose(out[10:], 100)
    blended = K.zero_phase_one_euro(x, act, 25.0, min_cutoff=1.5, beta=0.5, d_cutoff=1.0)
    assert not np.allclose(blended[9], 0)  # without the split the step leaks across


def test_fill_gaps_never_bridges_two_segments():
    t = 6
    kp = np.zeros((t, 133, 2))
    kp[:, :, 0] = np.arange(t)[:, None] * 10.0
    valid = np.array([1, 1, 0, 0, 1, 1], bool)
    _, _, st = K.fill_gaps(kp, np.ones((t, 133)), valid, 5, segment=np.array([0, 0, 0, 1, 1, 1]))
    assert list(st) == [1, 1, 0, 0, 1, 1]
    _, _, st = K.fill_gaps(kp, np.ones((t, 133)), valid, 5, segment=np.zeros(t, int))
    assert list(st) == [1, 1, 2, 2, 1, 1]


def test_tracker_counts_tracks_and_forgets_at_a_cut():
    tr = Tracker(max_lost=5)
    a = box(0, 0, 40, 80)
    tr.update([a])
    assert tr.track_id == 0
    tr.cut()
    tr.update([a + 3])  # the same place after a cut is a new track: nothing may be carried over it
    assert tr.track_id == 1 and tr.prev is None


def test_progress_reaches_the_end_and_counts_are_output_frames_for_slow_sources(tmp_path):
    # 10 fps source, 20 frames -> 50 output frames at 25 fps. Pass 1 counts the source frames it estimates
    # (each once, however often the output shows it), rendering counts output frames; each bar's total is
    # what it then advances. multi_person_frames counts output frames like every other count.
    video = write_clip(tmp_path / "v10.mp4", 20, 10.0)
    a, other = box(40, 10, 40, 80), box(100, 10, 30, 70)
    rep = RecordingReporter()
    r, npz, meta = run(video, tmp_path, [[a, other] for _ in range(20)], PoseSettings(width=160, height=96, body_thr=0.5),
                       reporter=rep)  # fmt: skip
    assert r.frames == 50
    totals = {e[1]: e[2] for e in rep.events if e[0] == "stage"}
    assert rep.counts["pose"] == totals["pose"] == 20 and rep.counts["render"] == totals["render"] == 50
    assert meta["frames_unit"].startswith("output frames")
    assert meta["tracking"]["multi_person_frames"] == 50
    assert meta["source"]["frames"] == 20


class NoFaceEstimator(FakeEstimator):
    """A body-only model: face landmarks come back with score 0."""

    def estimate(self, frame, b):
        k, s = person_in(np.asarray(b))
        s = s.copy()
        s[23:91] = 0.0
        return k, s


def test_pose_model_without_face_keypoints_warns(tmp_path):
    video = write_clip(tmp_path / "v.mp4", 10, 25.0)
    rep = RecordingReporter()
    r, _, meta = run(video, tmp_path, [[box(40, 10, 40, 80)]] * 10, PoseSettings(width=160, height=96, body_thr=0.5),
                     est_cls=NoFaceEstimator, reporter=rep)  # fmt: skip
    warn = [m for m in rep.messages if "face" in m]
    assert warn and "black" in warn[0] and "expression" in warn[0], rep.messages
    assert ["warning: " + w for w in meta["warnings"]] == warn
    assert max(f.max() for f in media.iter_frames(r.face_video)) < 20


@pytest.mark.parametrize("fps", [25.0])
def test_a_face_in_every_frame_gives_no_warning(tmp_path, fps):
    video = write_clip(tmp_path / "v.mp4", 10, fps)
    rep = RecordingReporter()
    _, _, meta = run(video, tmp_path, [[box(40, 10, 40, 80)]] * 10, PoseSettings(width=160, height=96, body_thr=0.5),
                     reporter=rep)  # fmt: skip
    assert meta["warnings"] == [] and not any("face" in m for m in rep.messages)


def test_pose_is_placed_by_the_persons_extent_not_a_blind_centre_crop(tmp_path):
    # a landscape 160x96 clip, the person at the right edge; a portrait 64x112 canvas. The centre crop keeps
    # columns ~52..107 only: the person would vanish (today's behaviour, still available as fit="crop").
    video = write_clip(tmp_path / "v.mp4", 10, 25.0)
    script = [[box(118, 8, 38, 84)]] * 10
    placed, _, meta = run(video, tmp_path / "p", script, PoseSettings(width=64, height=112, body_thr=0.5))
    cropped, _, _ = run(video, tmp_path / "c", script, PoseSettings(width=64, height=112, body_thr=0.5, fit="crop"))
    pose = next(media.iter_frames(placed.pose_video))
    assert pose.max() > 100 and next(media.iter_frames(cropped.pose_video)).max() < 20
    ys, xs = np.nonzero(pose.max(axis=2) > 40)
    assert xs.min() > 0 and xs.max() < 63 and ys.min() > 0 and ys.max() < 111  # nothing touches the border
    assert meta["fit"]["person_extent_xyxy"][0] > 118 and meta["output"]["size"] == [64, 112]
