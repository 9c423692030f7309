"""Golden data for tests/test_wan_retarget.py: Wan2.2's official retarget run on synthetic keypoint sets.

    git clone https://github.com/Wan-Video/Wan2.2 /tmp/wan && git -C /tmp/wan checkout 42bf4cf
    python scripts/wan_retarget_golden.py --wan /tmp/wan tests/data/wan_retarget

The official code is imported from that checkout (outside this repo, never copied into it); only the
numbers it produces are committed: per case the 133-point inputs and sizes, and the official outputs.
Needs numpy, opencv, pillow and tqdm (the official modules import them). Deterministic (seeded).
"""

import argparse
import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: not in the package
from support.tiny_pose import canonical_wholebody  # noqa: E402

COMMIT = "42bf4cfaa384bc21833865abc2f9e6c0e67233dc"
rng = np.random.default_rng(17)


def person(box, lscore=0.81, rscore=0.93, body_score=0.9):
    """(133, 3) pixel keypoints of the canonical standing person in box (x0, y0, w, h).
    Hands get distinct score levels so the golden data says which hand's data landed in which slot."""
    uv, sc = canonical_wholebody()
    x0, y0, w, h = box
    kp = np.zeros((133, 3))
    kp[:, 0] = x0 + uv[:, 0] * w
    kp[:, 1] = y0 + uv[:, 1] * h
    kp[:, 2] = np.where(sc > 0.5, body_score, sc)
    kp[91:112, 2] = lscore + rng.uniform(0, 0.01, 21)
    kp[112:133, 2] = rscore + rng.uniform(0, 0.01, 21)
    kp[:23, 2] = np.where(sc[:23] > 0.5, body_score + rng.uniform(-0.05, 0.05, 23), sc[:23])
    return kp


def moving(kp0, t, amp=6.0):
    """A short clip: frame 0 is kp0; later frames sway and wave (so every limb angle changes)."""
    out = []
    for i in range(t):
        kp = kp0.copy()
        if i:
            kp[:, :2] += rng.normal(0, amp, (133, 2))
            kp[:, 0] += 4.0 * i
            kp[91:133, :2] += rng.normal(0, amp, 2)  # hands move together with their noise
        out.append(kp)
    return np.stack(out)


def with_arm_and_leg_tweaks(kp, arm=1.0, leg=1.0, shoulder=1.0):
    """Change proportions: scale arms/legs/shoulder width around their parents (pixel arrays)."""
    kp = kp.copy()
    neck = (kp[5, :2] + kp[6, :2]) / 2
    for s in (5, 6):
        kp[s, :2] = neck + (kp[s, :2] - neck) * shoulder
    for sh, el, wr, hand in ((5, 7, 9, slice(91, 112)), (6, 8, 10, slice(112, 133))):
        old_el, old_wr = kp[el, :2].copy(), kp[wr, :2].copy()
        kp[el, :2] = kp[sh, :2] + (old_el - kp[sh, :2]) * arm
        kp[wr, :2] = kp[el, :2] + (old_wr - old_el) * arm
        kp[hand, :2] += kp[wr, :2] - old_wr
    for hip, kn, an, foot in ((11, 13, 15, [17, 18, 19]), (12, 14, 16, [20, 21, 22])):
        old_kn, old_an = kp[kn, :2].copy(), kp[an, :2].copy()
        kp[kn, :2] = kp[hip, :2] + (old_kn - kp[hip, :2]) * leg
        kp[an, :2] = kp[kn, :2] + (old_an - old_kn) * leg
        kp[foot, :2] += kp[an, :2] - old_an
    return kp


def seated(kp):
    """Knees forward at hip height, shins down: a person sitting on a chair, seen from the front-side."""
    kp = kp.copy()
    for hip, kn, an, foot in ((11, 13, 15, [17, 18, 19]), (12, 14, 16, [20, 21, 22])):
        thigh = np.linalg.norm(kp[kn, :2] - kp[hip, :2])
        old_an = kp[an, :2].copy()
        kp[kn, :2] = kp[hip, :2] + (thigh * 0.85, thigh * 0.15)
        kp[an, :2] = kp[kn, :2] + (thigh * 0.05, thigh * 0.95)
        kp[foot, :2] += kp[an, :2] - old_an
    return kp


def case_inputs():
    drv_size, ref_size = (1280, 720), (480, 832)
    base = person((520, 60, 240, 640))
    cases = {}
    cases["ref_taller"] = (moving(base, 5), drv_size, person((90, 20, 300, 800)), ref_size)
    cases["ref_shorter"] = (moving(base, 5), drv_size, person((160, 300, 160, 420)), ref_size)
    r = with_arm_and_leg_tweaks(person((60, 60, 360, 700)), arm=1.25, leg=0.85, shoulder=1.4)
    r[4, :2] = r[2, :2] + (r[4, :2] - r[2, :2]) * 0.4  # head turned: right ear nearer its eye (eye/ear ratio rules)
    r[2, :2] = r[0, :2] + (r[2, :2] - r[0, :2]) * 0.7
    cases["ref_wider"] = (moving(base, 5), drv_size, r, ref_size)
    d = base.copy()
    d[15, 2] = 0.3  # left ankle not confident: no full-body measure, neck placement, hip-based scale
    d[17:20, 2] = 0.2
    cases["missing_foot"] = (moving(d, 5), drv_size, person((90, 40, 300, 760)), ref_size)
    d = base.copy()
    d[91:112, 2] = 0.2  # left hand below the hand threshold (0.4), root included
    d[112:133, 2] = np.where(np.arange(21) % 3 == 0, 0.35, 0.7)  # right hand: root and some points low
    cases["missing_hands"] = (moving(d, 4), drv_size, person((90, 40, 300, 760)), ref_size)
    cases["seated"] = (moving(seated(base), 5), drv_size, seated(person((100, 80, 280, 700))), ref_size)
    d = base.copy()
    d[91:112, :2], d[112:133, :2] = base[112:133, :2].copy(), base[91:112, :2].copy()  # hand data swapped
    cases["crossed_hands"] = (moving(d, 3), drv_size, person((90, 40, 300, 760)), ref_size)
    d = base.copy()
    d[11:23, 2] = 0.1  # hips and legs not confident: a half-body (upper body) driving clip, neck placement
    cases["half_body"] = (moving(d, 4), drv_size, person((60, 60, 360, 1400)), ref_size)
    r = person((90, 40, 300, 760))
    for an, kn, toes in ((15, 13, [17, 18]), (16, 14, [20, 21])):
        calf = np.linalg.norm(r[an, :2] - r[kn, :2])
        r[toes, :2] = r[an, :2] + (0.7 * calf * (1 if an == 15 else -1), 0.1 * calf)  # feet longer than half a calf
    cases["long_feet"] = (moving(base, 4), drv_size, r, ref_size)
    cases["landscape_ref"] = (moving(base, 4), (720, 1280), person((500, 40, 200, 640)), (1280, 720))
    return cases


def official(drv, drv_size, ref, ref_size):
    from pose2d_utils import load_pose_metas_from_kp2ds_seq  # official, from the checkout on sys.path
    from retarget_pose import get_retarget_pose  # official

    w, h = drv_size
    rw, rh = ref_size
    metas = load_pose_metas_from_kp2ds_seq(drv.copy(), width=w, height=h)
    meta0 = load_pose_metas_from_kp2ds_seq(drv[:1].copy(), width=w, height=h)[0]  # pose2d(frames[:1]) in the pipeline
    refer = load_pose_metas_from_kp2ds_seq(ref[None].copy(), width=rw, height=rh)[0]
    out = get_retarget_pose(copy.deepcopy(meta0), copy.deepcopy(refer), copy.deepcopy(metas), None, None)

    def f(a):
        return np.array([[np.nan if v is None else float(v) for v in row] for row in a], dtype=np.float64)

    return {
        "canvas": np.array([[m.width, m.height] for m in out]),
        "body": np.stack([np.asarray(m.kps_body, float) for m in out]),
        "body_p": np.stack([np.asarray(m.kps_body_p, float) for m in out]),
        "lhand": np.stack([f(m.kps_lhand) for m in out]),
        "lhand_p": np.stack([np.asarray(m.kps_lhand_p, float) for m in out]),
        "rhand": np.stack([f(m.kps_rhand) for m in out]),
        "rhand_p": np.stack([np.asarray(m.kps_rhand_p, float) for m in out]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wan", type=Path, required=True, help="a checkout of github.com/Wan-Video/Wan2.2 at COMMIT")
    ap.add_argument("out_dir", type=Path)
    args = ap.parse_args()
    head = subprocess.run(["git", "-C", str(args.wan), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if head and head != COMMIT:
        sys.exit(f"{args.wan} is at {head}, expected {COMMIT}")
    sys.path.insert(0, str(args.wan / "wan/modules/animate/preprocess"))
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {}
    for name, (drv, drv_size, ref, ref_size) in case_inputs().items():
        res = official(drv, drv_size, ref, ref_size)
        np.savez_compressed(
            out_dir / f"{name}.npz",
            driving=drv,
            driving_size=np.array(drv_size),
            ref=ref,
            ref_size=np.array(ref_size),
            **{f"wan_{k}": v for k, v in res.items()},
        )
        index[name] = {"frames": int(len(drv)), "driving_size": list(drv_size), "ref_size": list(ref_size)}
        print(name, res["canvas"][0], np.nanmax(np.abs(res["body"])))
    src = Path(__file__).read_bytes()
    meta = {
        "what": "Wan2.2 official retarget (retarget_pose.get_retarget_pose, animation mode, no Flux edit) on synthetic "
        "COCO-WholeBody-133 keypoints; inputs and outputs of each case in <case>.npz",
        "official_repo": "github.com/Wan-Video/Wan2.2",
        "official_commit": COMMIT,
        "official_files": ["wan/modules/animate/preprocess/retarget_pose.py", "wan/modules/animate/preprocess/pose2d_utils.py"],
        "how": "metas built with the official load_pose_metas_from_kp2ds_seq from the 133-point pixel arrays (driving "
        "frames, its first frame separately as process_pipepline does, the reference); then "
        "get_retarget_pose(meta0, refer, metas, None, None); hand points the official code drops are NaN",
        "arrays": {
            "driving": "(T, 133, 3) x, y px, score",
            "ref": "(133, 3)",
            "wan_body": "(T, 20, 2) reference px",
            "wan_body_p": "(T, 20)",
            "wan_lhand/wan_rhand": "(T, 21, 2) as the official meta labels them",
            "wan_lhand_p/wan_rhand_p": "(T, 21)",
            "wan_canvas": "(T, 2) width, height",
        },
        "generator": "scripts/wan_retarget_golden.py",
        "generator_sha256": hashlib.sha256(src).hexdigest(),
        "numpy": np.__version__,
        "cases": index,
    }
    (out_dir / "golden.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
