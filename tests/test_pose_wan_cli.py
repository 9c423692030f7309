"""`--pose-model wan|rtmw`, `--det-onnx` / `--pose-onnx`: which model runs, the fallback to RTMW, and the
one-line errors for missing, partial or damaged Wan pose models (exit 4) and wrong flag combinations (exit 2)."""

import json
import shutil

import numpy as np
import pytest
from support import tiny_pose, tiny_wan
from typer.testing import CliRunner

from animate_cli import config as C
from animate_cli import media
from animate_cli.cli import app
from animate_cli.errors import ExitCode
from animate_cli.pose.choice import choose_models

ENV = {"COLUMNS": "300"}
BASE = "wan2.2-animate-14b"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("wancli")
    both = root / "both"  # Wan's and RTMW's models, as download-weights lays them out
    tiny_pose.write_tiny_pose_models(both / "pose")
    wan = tiny_wan.write_wan_models(both / BASE)
    rtmw_only = root / "rtmw_only"
    tiny_pose.write_tiny_pose_models(rtmw_only / "pose")
    clip = root / "clip.mp4"
    with media.VideoWriter(clip, 320, 240, 25.0) as w:
        for t in range(6):
            f = np.zeros((240, 320, 3), np.uint8)
            tiny_wan.draw_person(f, 150 + 3 * t, 20, 200)
            w.write(f)
    return {"both": both, "rtmw_only": rtmw_only, "empty": root / "empty", "wan": wan, "clip": clip, "root": root}


def cli(*args):
    return CliRunner().invoke(app, ["extract-pose", *map(str, args)], env=ENV)


def one_line_error(r, code):
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    return [ln for ln in r.output.splitlines() if ln.startswith("error:")]


def test_default_is_wan_when_its_models_are_there(assets, tmp_path):
    assert choose_models(None, assets["both"]).model == "wan"
    r = cli(assets["clip"], "--weights-dir", assets["both"], "--out", tmp_path / "o", "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["pose_model"] == "wan"
    meta = json.loads((tmp_path / "o" / "pose.json").read_text())
    assert meta["pose_model"] == "wan" and meta["settings"]["smooth"] == "none"
    assert meta["fit"]["rule"].startswith("letterbox") and meta["thresholds"]["body"] == 0.5


def test_default_falls_back_to_rtmw_with_one_warning(assets, tmp_path):
    m = choose_models(None, assets["rtmw_only"])
    assert m.model == "rtmw" and "using RTMW" in m.note
    r = cli(assets["clip"], "--weights-dir", assets["rtmw_only"], "--out", tmp_path / "o", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert sum("using RTMW" in ln for ln in r.output.splitlines()) == 1
    assert json.loads((tmp_path / "o" / "pose.json").read_text())["pose_model"] == "rtmw"


def test_rtmw_on_request_needs_no_wan_models(assets, tmp_path):
    assert choose_models("rtmw", assets["both"]).model == "rtmw"
    r = cli(assets["clip"], "--weights-dir", assets["both"], "--pose-model", "rtmw", "--out", tmp_path / "o",
            "--device", "cpu", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["pose_model"] == "rtmw"


def test_explicit_wan_without_its_models_is_a_weights_error(assets, tmp_path):
    lines = one_line_error(cli(assets["clip"], "--weights-dir", assets["rtmw_only"], "--pose-model", "wan",
                               "--out", tmp_path / "o"), ExitCode.WEIGHTS)  # fmt: skip
    assert len(lines) == 1 and "Wan pose model not found" in lines[0] and C.WAN_DET_ONNX in lines[0]
    assert not (tmp_path / "o").exists()


def test_det_and_pose_onnx_accept_a_file_or_a_folder_with_end2end(assets, tmp_path):
    folder = tmp_path / "vitpose_h_wholebody.onnx"  # the Hub's layout: a folder named like a file
    folder.mkdir()
    shutil.copy(assets["wan"]["pose"], folder / "end2end.onnx")
    r = cli(assets["clip"], "--weights-dir", assets["empty"], "--det-onnx", assets["wan"]["det"], "--pose-onnx", folder,
            "--out", tmp_path / "o", "--device", "cpu", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "o" / "pose.json").read_text())
    assert meta["pose_model"] == "wan" and meta["models"]["pose"]["name"] == "vitpose_h_wholebody.onnx"
    lines = one_line_error(
        cli(
            assets["clip"],
            "--pose-model",
            "wan",
            "--det-onnx",
            assets["wan"]["det"],
            "--pose-onnx",
            tmp_path,
            "--out",
            tmp_path / "o2",
        ),
        ExitCode.WEIGHTS,
    )  # a folder without end2end.onnx
    assert len(lines) == 1 and "end2end.onnx" in lines[0]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "wrong_signature", "missing_external_data"])
def test_partial_or_damaged_wan_model_is_exit_4_in_one_line(damage, assets, tmp_path):
    det, pose = tmp_path / "det.onnx", tmp_path / "pose.onnx"
    shutil.copy(assets["wan"]["det"], det)
    data = assets["wan"]["pose"].read_bytes()
    if damage == "truncated":
        pose.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        pose.write_bytes(b"not an onnx file" * 100)
    elif damage == "empty":
        pose.write_bytes(b"")
    elif damage == "wrong_signature":  # an RTMW file given as the Wan pose model
        shutil.copy(next((assets["rtmw_only"] / "pose").glob("rtmw*.onnx")), pose)
    else:  # a model folder whose external weights file is gone (an interrupted download)
        import onnx

        pose = tmp_path / "folder"
        pose.mkdir()
        model = onnx.load(str(assets["wan"]["pose"]))
        onnx.save(model, str(pose / "end2end.onnx"), save_as_external_data=True, location="weights.bin",
                  size_threshold=0)  # fmt: skip
        (pose / "weights.bin").unlink()
    lines = one_line_error(cli(assets["clip"], "--pose-model", "wan", "--det-onnx", det, "--pose-onnx", pose,
                               "--out", tmp_path / "o", "--device", "cpu"), ExitCode.WEIGHTS)  # fmt: skip
    assert len(lines) == 1 and ("pose model" in lines[0])


@pytest.mark.parametrize("flags", [["--smooth", "default"], ["--kpt-thr", "0.3"]])
def test_wan_is_per_frame_with_fixed_thresholds(flags, assets, tmp_path):
    lines = one_line_error(cli(assets["clip"], "--weights-dir", assets["both"], "--pose-model", "wan", *flags,
                               "--out", tmp_path / "o"), ExitCode.USAGE)  # fmt: skip
    assert len(lines) == 1 and "rtmw only" in lines[0]


def test_unknown_pose_model_is_a_usage_error(assets, tmp_path):
    lines = one_line_error(cli(assets["clip"], "--pose-model", "openpose", "--out", tmp_path / "o"), ExitCode.USAGE)
    assert len(lines) == 1 and "wan, rtmw" in lines[0]


def test_the_pose_cache_key_includes_the_model(assets, tmp_path):
    from animate_cli.pose import PoseSettings
    from animate_cli.pose.stage import cache_key

    wan = choose_models("wan", assets["both"])
    a = cache_key(assets["clip"], PoseSettings(model="wan", smooth="none"), wan.det_onnx, wan.pose_onnx)
    b = cache_key(assets["clip"], PoseSettings(model="rtmw", smooth="none"), wan.det_onnx, wan.pose_onnx)
    assert a != b


def test_wan_mode_never_blacks_out_and_reuses_the_last_body(assets, tmp_path):
    clip = tmp_path / "leave.mp4"
    with media.VideoWriter(clip, 320, 240, 25.0) as w:
        for t in range(8):
            f = np.zeros((240, 320, 3), np.uint8)
            if t < 4:
                tiny_wan.draw_person(f, 150, 20, 200)
            w.write(f)
    r = cli(clip, "--weights-dir", assets["both"], "--out", tmp_path / "o", "--device", "cpu", "--save-keypoints", "--json")
    assert r.exit_code == 0, r.output
    res, npz = json.loads(r.stdout), np.load(tmp_path / "o" / "keypoints.npz")
    assert res["counts"] == {"detected": 4, "interpolated": 0, "empty": 0}
    assert npz["body_reused"].tolist() == [False] * 4 + [True] * 4
    pose = np.stack(list(media.iter_frames(tmp_path / "o" / "pose.mp4")))
    assert (pose[4:].max(axis=(1, 2, 3)) > 100).all()  # the last seen body stays drawn (its hands do not: Wan's rule)
    np.testing.assert_array_equal(npz["wan_body"][4:], np.repeat(npz["wan_body"][3:4], 4, axis=0))
