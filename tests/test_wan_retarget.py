"""`--retarget` with the wan pose model equals Wan2.2's official retarget (golden numbers in tests/data/wan_retarget/,
made by scripts/wan_retarget_golden.py from the official functions at the commit recorded in golden.json).

Tolerance: 1e-6 px on the body (float64 arithmetic in another order: the measured difference is ~4e-13 px);
hands exactly (both sides int-truncate), with the same dropped points; scores exactly.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from test_pose_track import FakeEstimator, box, person_in

from animate_cli.pose.render import LHAND, RHAND
from animate_cli.pose.wan import retarget as W

DATA = Path(__file__).parent / "data" / "wan_retarget"
GOLDEN = json.loads((DATA / "golden.json").read_text())
CASES = sorted(GOLDEN["cases"])
BODY_TOL_PX = 1e-6


def run_case(name: str):
    z = np.load(DATA / f"{name}.npz", allow_pickle=False)
    drv, ref = z["driving"], z["ref"]
    r = W.retarget(drv[..., :2], drv[..., 2], tuple(z["driving_size"]), ref[:, :2], ref[:, 2], tuple(z["ref_size"]))
    return z, r


def official_slot(z, hand_scores: np.ndarray) -> str:
    """Which official meta slot holds this hand's data: the golden hands carry distinct score levels, and both
    sides keep the driving scores, so the scores identify the data (the official meta swaps the labels)."""
    slots = [k for k in ("lhand", "rhand") if np.array_equal(z[f"wan_{k}_p"], hand_scores)]
    assert len(slots) == 1, slots
    return slots[0]


def test_golden_data_records_the_official_commit():
    assert GOLDEN["official_commit"].startswith("42bf4cf") and len(GOLDEN["official_commit"]) == 40
    assert len(CASES) >= 8


@pytest.mark.parametrize("name", CASES)
def test_matches_the_official_retarget(name):
    z, r = run_case(name)
    body, body_p = W.body20(r.kpts, r.scores)
    assert np.abs(body - z["wan_body"]).max() < BODY_TOL_PX
    assert np.array_equal(body_p, z["wan_body_p"])
    for sl in (LHAND, RHAND):
        xy, p = r.kpts[:, sl], r.scores[:, sl]
        slot = official_slot(z, p)
        assert np.array_equal(np.isnan(xy), np.isnan(z[f"wan_{slot}"])), "different hand points dropped"
        assert np.array_equal(np.nan_to_num(xy), np.nan_to_num(z[f"wan_{slot}"]))
    assert (z["wan_canvas"] == z["ref_size"]).all()  # the official output is drawn on the reference's canvas


# Each rule of the official code is exercised by at least one golden case (otherwise the parity above
# would not cover it).
def test_cases_cover_the_scale_and_placement_rules():
    info = {n: run_case(n)[1].info for n in CASES}
    assert info["ref_taller"]["scale"] < 1 < info["ref_shorter"]["scale"]
    assert info["ref_taller"]["scale_measure"] == "nose to mid-ankle" and info["ref_taller"]["placement"] == "ground"
    assert info["missing_foot"]["scale_measure"] == "nose to mid-hip"
    assert info["missing_foot"]["body_flag"] == "three_quarter_body" and info["missing_foot"]["placement"] == "neck"
    assert info["half_body"]["scale_measure"] == "frame area" and info["half_body"]["body_flag"] == "half_body"
    assert info["seated"]["body_flag"] == "full_body"


def test_long_reference_feet_are_capped_at_half_the_calf():
    z, r = run_case("long_feet")
    body, _ = W.body20(r.kpts, r.scores)
    for ankle, toe, knee in ((W.R_ANKLE, W.R_TOE, 9), (W.L_ANKLE, W.L_TOE, 12)):
        foot = np.linalg.norm(body[:, toe] - body[:, ankle], axis=-1)
        calf = np.linalg.norm(body[:, ankle] - body[:, knee], axis=-1)
        assert (foot <= W.FOOT_TO_CALF * calf + 1e-9).all()
        assert np.isclose(foot, W.FOOT_TO_CALF * calf).mean() >= 0.5  # the cap binds (the reference's feet are long)


def test_crossed_hands_follow_the_swap_guard_and_weak_hand_points_are_dropped():
    z, r = run_case("crossed_hands")
    # the right hand's data sits at the left wrist: the official code attaches it to the left wrist's delta,
    # which is also where its meta labels it "left"
    assert official_slot(z, r.scores[:, RHAND]) == "rhand"
    z, r = run_case("ref_taller")
    assert official_slot(z, r.scores[:, RHAND]) == "lhand"  # the usual case: the official labels are swapped
    z, r = run_case("missing_hands")
    drv = z["driving"]
    weak = drv[:, 91:133, 2] < W.HAND_SCORE
    assert weak.any() and not weak.all()
    assert np.isnan(r.kpts[:, 91:133][weak]).all() and (r.scores[:, 91:133][weak] == 0).all()
    assert np.isfinite(r.kpts[:, 91:133][~weak]).all()


def test_ratios_follow_the_pair_eye_and_ear_rules():
    _, r = run_case("ref_wider")
    ratio = np.array(r.info["limb_ratios"])
    for i, j in W.PAIRED_LIMBS + (W.EYE_LIMBS, W.EAR_LIMBS):
        assert ratio[i] == ratio[j]
    assert ratio[2] > 1.1 and ratio[7] < 0.95  # the reference's longer arms and shorter legs came through


def test_reference_equal_to_the_first_frame_keeps_its_shape():
    z = np.load(DATA / "ref_taller.npz", allow_pickle=False)
    drv = z["driving"]
    w, h = map(int, z["driving_size"])
    r = W.retarget(drv[..., :2], drv[..., 2], (w, h), drv[0, :, :2], drv[0, :, 2], (w, h))
    body, _ = W.body20(r.kpts, r.scores)
    ref_body, _ = W.body20(drv[..., :2], drv[..., 2])
    assert r.info["scale"] == 1.0 and np.allclose(r.info["limb_ratios"], 1.0)
    # The measured frame keeps its shape and x, but Wan stands the rebuilt ankle on the reference's
    # ankle-toe midpoint: with the reference equal to the frame, it sinks by half the lower foot's drop.
    b0 = ref_body[0]
    sink = max((b0[W.R_ANKLE, 1] + b0[W.R_TOE, 1]) / 2, (b0[W.L_ANKLE, 1] + b0[W.L_TOE, 1]) / 2) - max(
        b0[W.R_ANKLE, 1], b0[W.L_ANKLE, 1]
    )
    assert sink > 1
    assert np.abs(body[0] - (b0 + (0, sink))).max() < 1e-9


def test_canvas_letterboxes_the_reference():
    z = np.load(DATA / "landscape_ref.npz", allow_pickle=False)
    drv, ref = z["driving"], z["ref"]
    args = (drv[..., :2], drv[..., 2], tuple(z["driving_size"]), ref[:, :2], ref[:, 2])
    plain = W.retarget(*args, tuple(z["ref_size"]))
    # a 1280x720 reference into a 832x480 canvas: scale 0.65, 832x468, 6 px bars above and below
    assert W.reference_fit((1280, 720), (832, 480)) == (0.65, 832, 468, 0, 6)
    boxed = W.retarget_to_canvas(*args, tuple(z["ref_size"]), (832, 480))
    b_plain, _ = W.body20(plain.kpts, plain.scores)
    b_boxed, _ = W.body20(boxed.kpts, boxed.scores)
    # The same skeleton, scaled and shifted, up to the official int() of the scaled reference size (< 1 px).
    assert np.abs(b_boxed - (b_plain * 0.65 + (0, 6))).max() < 1.0
    assert boxed.info["canvas"]["offset"] == [0, 6]


# --- through the pose stage ----------------------------------------------------------------------


class WanFakeEstimator(FakeEstimator):
    """The scripted estimator on the wan path: one person chosen per frame (score 1), as the official detector does."""

    def select(self, frame):
        boxes = self.detect(frame)
        return np.append(boxes[0], 1.0) if len(boxes) else np.array([0.0, 0.0, frame.shape[1], frame.shape[0], -1.0])

    def estimate(self, frame, b):
        return super().estimate(frame, np.asarray(b)[:4])


def test_pose_stage_runs_wans_retarget_onto_the_canvas(tmp_path):
    from PIL import Image

    from animate_cli import media
    from animate_cli.pose import PoseOutputs, PoseSettings, extract_pose

    video = tmp_path / "drv.mp4"
    with media.VideoWriter(video, 160, 96, 25.0) as w:
        for t in range(8):
            f = np.zeros((96, 160, 3), np.uint8)
            f[10:90, 60 + t : 100 + t] = 200
            w.write(f)
    ref = tmp_path / "ref.png"
    Image.fromarray(np.full((200, 100, 3), 200, np.uint8)).save(ref)  # portrait reference, 100x200
    est = WanFakeEstimator([[box(10, 20, 80, 170)]] + [[box(60 + t, 8, 40, 84)] for t in range(8)])
    settings = PoseSettings(width=96, height=160, retarget=True, smooth="none", model="wan")
    r = extract_pose(video, tmp_path / "out", settings, est, ref=ref, outputs=PoseOutputs(keypoints=True))
    meta = json.loads(r.meta_path.read_text())
    rt = meta["retarget"]
    assert rt["rule"].startswith("Wan2.2 get_retarget_pose") and rt["measured_frame"] == 0
    assert rt["canvas"] == {"rule": rt["canvas"]["rule"], "size": [96, 160], "scale": 0.8, "offset": [8, 0]}
    npz = np.load(r.keypoints, allow_pickle=False)
    ref_k, ref_s = person_in(box(10, 20, 80, 170))
    expect = W.retarget_to_canvas(npz["kpts_smoothed"], npz["scores"], (160, 96), ref_k, ref_s, (100, 200), (96, 160))
    assert np.allclose(npz["kpts_drawn"], expect.kpts, equal_nan=True)
    # the reference's feet are on the ground: the skeleton stands where the reference stands, not where the driver does
    body, _ = W.body20(npz["kpts_drawn"][0], npz["scores"][0])
    ref_body, _ = W.body20(ref_k * 0.8 + (8, 0), ref_s)
    # (within a pixel: Wan int-truncates the scaled reference size, and keypoints.npz is float32)
    assert abs(body[[W.R_HIP, W.L_HIP], 0].mean() - ref_body[[W.R_HIP, W.L_HIP], 0].mean()) < 1.0
    pose = next(iter(media.iter_frames(r.pose_video)))
    assert pose.shape == (160, 96, 3) and pose.max() > 100


def test_unknown_pose_model_is_a_usage_error(tmp_path):
    from animate_cli.errors import UsageError
    from animate_cli.pose import PoseSettings, extract_pose

    with pytest.raises(UsageError, match="pose model must be one of wan, rtmw"):
        extract_pose(tmp_path / "x.mp4", tmp_path / "out", PoseSettings(model="openpose"), None)
