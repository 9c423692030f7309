"""End to end: tiny ONNX files with rtmlib's real I/O signature drive the real rtmlib classes through
`everanimate extract-pose`, the stage's cache, and the bad-input paths."""

import json
import os

import numpy as np
import pytest
from support.tiny_pose import write_tiny_pose_models
from typer.testing import CliRunner

from animate_cli import media
from animate_cli.cli import app
from animate_cli.pose import PoseModels, PoseSettings, cached_extract_pose, find_pose_models

ENV = {"COLUMNS": "300"}


def write_video(path, n, fps, w, h, person=lambda t: True):
    with media.VideoWriter(path, w, h, fps) as vw:
        for t in range(n):
            f = np.zeros((h, w, 3), np.uint8)
            if person(t):
                f[h // 8 : h - h // 8, w // 2 - w // 8 + t : w // 2 + w // 8 + t] = 220
            vw.write(f)
    return path


@pytest.fixture(scope="session")
def pose_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose")
    write_tiny_pose_models(root / "weights" / "pose")
    return {
        "weights": root / "weights",
        "drive": write_video(root / "drive.mp4", 40, 30.0, 320, 240, person=lambda t: not 10 <= t <= 12),
        "portrait": write_video(root / "portrait.mp4", 10, 25.0, 240, 320),
        "black": write_video(root / "black.mp4", 10, 25.0, 320, 240, person=lambda t: False),
    }


def cli(*args):
    return CliRunner().invoke(app, ["extract-pose", *map(str, args)], env=ENV)


def test_tiny_models_have_rtmlibs_signature(pose_assets):
    import onnxruntime as ort

    det, pose = find_pose_models(pose_assets["weights"])
    d = ort.InferenceSession(str(det), providers=["CPUExecutionProvider"])
    p = ort.InferenceSession(str(pose), providers=["CPUExecutionProvider"])
    assert d.get_inputs()[0].shape == [1, 3, 640, 640] and [o.shape for o in d.get_outputs()] == [[1, 1, 5], [1, 1]]
    assert p.get_inputs()[0].shape == [1, 3, 384, 288]
    assert [o.shape for o in p.get_outputs()] == [[1, 133, 576], [1, 133, 768]]


def test_extract_pose_cli_end_to_end(pose_assets, tmp_path):
    out = tmp_path / "out"
    r = cli(pose_assets["drive"], "--out", out, "--weights-dir", pose_assets["weights"], "--device", "cpu",
            "--json", "--save-keypoints", "--debug-overlay")  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1  # rtmlib's "load ... backend" chatter went to stderr
    res = json.loads(lines[0])
    assert res["ok"] and res["frames"] == 33 and res["size"] == [832, 480]  # 40 frames @30 -> 33 @25
    assert res["counts"] == {"detected": 30, "interpolated": 3, "empty": 0}  # the 3 black frames are a short gap
    pose, face = media.probe(out / "pose.mp4"), media.probe(out / "face.mp4")
    assert (pose.width, pose.height, face.width, face.height) == (832, 480, 512, 512)
    assert pose.fps == face.fps == 25.0
    assert media.count_frames(out / "pose.mp4") == media.count_frames(out / "face.mp4") == 33
    assert media.count_frames(out / "debug_overlay.mp4") == 33
    frame = next(media.iter_frames(out / "pose.mp4"))
    assert frame[:, :200].max() == 0 and frame[:, -200:].max() == 0  # background exactly black after encoding
    assert (frame.max(axis=2) > 20).sum() > 1000  # and a skeleton in the middle
    meta = json.loads((out / "pose.json").read_text())
    assert meta["source"]["mean_fps"] == 30.0 and meta["source"]["frames"] == 40
    assert meta["output"]["frames"] == 33 and meta["frame_map"]["source_index"][:4] == [0, 1, 2, 4]
    assert meta["span"] == {**meta["span"], "frames": 33, "of": 33, "complete": True}
    # the centre crop (zoom 832/320 = 2.6) would cut the tiny model's person at the feet: zoomed out to keep them
    assert 480 / 240 <= meta["fit"]["scale"][0] < 832 / 320 and meta["fit"]["person_extent_xyxy"][3] > 212
    assert len(meta["models"]["pose"]["sha256"]) == 64 and meta["models"]["providers"]["pose"] == ["CPUExecutionProvider"]
    assert meta["thresholds"]["body"] == 0.5 and meta["counts"]["interpolated"] == 3
    npz = np.load(out / "keypoints.npz", allow_pickle=False)
    assert npz["kpts"].shape == (33, 133, 2) and npz["src_index"].shape == (33,)
    assert not [p for p in out.iterdir() if p.name.startswith(".") or "partial" in p.name]
    # a second run refuses to overwrite, --overwrite replaces
    assert cli(pose_assets["drive"], "--out", out, "--weights-dir", pose_assets["weights"]).exit_code == 3
    assert (
        cli(
            pose_assets["drive"], "--out", out, "--weights-dir", pose_assets["weights"], "--seconds", "0.4", "--overwrite"
        ).exit_code
        == 0
    )
    assert media.count_frames(out / "pose.mp4") == 10 and not (out / "keypoints.npz").exists()


def test_portrait_driving_gives_portrait_pose(pose_assets, tmp_path):
    r = cli(pose_assets["portrait"], "--out", tmp_path / "p", "--weights-dir", pose_assets["weights"], "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["size"] == [480, 832]


@pytest.mark.parametrize(
    ("args", "code", "err"),
    [
        (["--size", "832x479"], 2, "usage"),
        (["--size", "100000x480"], 2, "usage"),
        (["--retarget"], 2, "usage"),
        (["--smooth", "heavy"], 2, "usage"),
    ],
)
def test_bad_flags(pose_assets, tmp_path, args, code, err):
    r = cli(pose_assets["drive"], "--out", tmp_path / "o", "--weights-dir", pose_assets["weights"], "--json", *args)
    assert r.exit_code == code and json.loads(r.stdout)["error"]["code"] == err
    assert not (tmp_path / "o").exists()


def test_bad_inputs(pose_assets, tmp_path):
    garbage = tmp_path / "bad.mp4"
    garbage.write_bytes(os.urandom(2000))
    empty_ref = tmp_path / "ref.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 48, 3), np.uint8)).save(empty_ref)
    cases = [
        ([garbage], "bad_input"),
        ([tmp_path / "missing.mp4"], "bad_input"),
        ([pose_assets["black"]], "no_person"),
        ([pose_assets["drive"], "--ref", empty_ref], "no_person"),
        ([pose_assets["drive"], "--start", "100"], "bad_input"),  # past the end: zero frames
    ]
    for i, (args, code) in enumerate(cases):
        out = tmp_path / f"o{i}"
        r = cli(*args, "--out", out, "--weights-dir", pose_assets["weights"], "--json")
        assert r.exit_code == 3, (args, r.output)
        assert json.loads(r.stdout)["error"]["code"] == code
        assert not out.exists() or not list(out.iterdir())  # nothing that looks complete, no leftovers
    r = cli(pose_assets["drive"], "--out", tmp_path / "w", "--weights-dir", tmp_path / "nowhere", "--json")
    hint = json.loads(r.stdout)["error"]["hint"]
    assert r.exit_code == 4 and "download-weights" in hint and "--only pose" in hint


def test_cache_reuses_complete_and_redoes_incomplete(pose_assets, tmp_path):
    models = PoseModels("rtmw", *find_pose_models(pose_assets["weights"]))
    s = PoseSettings(width=256, height=192, seconds=0.5)
    a = cached_extract_pose(pose_assets["drive"], tmp_path, s, models)
    assert not a.cached and a.pose_video.parent.name.startswith("pose-") and a.frames == 12
    stamp = a.meta_path.stat().st_mtime_ns
    b = cached_extract_pose(pose_assets["drive"], tmp_path, s, models)
    assert b.cached and b.pose_video == a.pose_video and b.meta_path.stat().st_mtime_ns == stamp
    c = cached_extract_pose(
        pose_assets["drive"], tmp_path, PoseSettings(width=256, height=192, seconds=0.5, smooth="none"), models
    )
    assert c.pose_video.parent != a.pose_video.parent  # other settings, other key
    a.face_video.unlink()  # an interrupted/damaged cache entry is extracted again
    d = cached_extract_pose(pose_assets["drive"], tmp_path, s, models)
    assert not d.cached and d.face_video.is_file() and media.count_frames(d.face_video) == 12
