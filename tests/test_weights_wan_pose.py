"""download-weights for Wan's own pose models (YOLOv10m file + ViTPose-H folder with external weights), and the
structural ONNX check that makes a partial or damaged pose model a one-line exit 4. Offline: test_weights' fake Hub."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from test_weights import CLI_ENV, ONNX, FakeHub, folder_model, online  # noqa: F401  (online: a fixture)
from typer.testing import CliRunner

from animate_cli import weights as W
from animate_cli.cli import app
from animate_cli.errors import ExitCode, WeightsInvalidError, WeightsMissingError
from animate_cli.weights.onnx_check import onnx_problem

WAN_REPO = "Wan-AI/Wan2.2-Animate-14B"
pytestmark = pytest.mark.usefixtures("online")  # the fake Hub counts as reachable


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def guard(*a, **k):
        raise RuntimeError("network access in tests")

    monkeypatch.setattr(socket.socket, "connect", guard)


def download_pose(root, hub=None):
    hub = hub or FakeHub()
    return W.download(W.DownloadRequest(root, ("pose",), "480p"), fetch=hub), hub


def test_wans_pose_models_land_in_the_official_layout(tmp_path):
    report, hub = download_pose(tmp_path)
    assert report.complete
    det, folder = tmp_path / "pose" / W.WAN_DET_ONNX, tmp_path / "pose" / W.WAN_POSE_DIR
    assert det.read_bytes() == ONNX
    files = folder_model()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files  # end2end.onnx and every weight file
    assert sorted(p for p in hub.downloads if p.startswith(W.WAN_POSE_DIR)) == sorted(f"{W.WAN_POSE_DIR}/{n}" for n in files)
    paths = W.resolve(tmp_path, need=("pose",), pose_model="wan")
    assert paths.det_onnx == det and paths.pose_onnx == folder / "end2end.onnx"
    assert W.resolve(tmp_path, need=("pose",)).pose_onnx == tmp_path / "pose" / W.POSE_ONNX  # rtmw unchanged
    rec = json.loads((tmp_path / "everanimate-weights.json").read_text())["repos"]["wan_original"]["files"]
    assert rec[f"pose/{W.WAN_POSE_DIR}"]["size"] == sum(len(b) for b in files.values())
    # the same pinned commit as every other file of that repo (the base shards come from it too)
    assert {c[2] for c in hub.calls if c[1] == WAN_REPO and c[0] != "commit"} == {rec[f"pose/{W.WAN_DET_ONNX}"]["commit"]}
    again = FakeHub(error=RuntimeError("complete: must not touch the Hub"))
    assert download_pose(tmp_path, again)[0].fetched == [] and again.calls == []


def test_only_the_chosen_pose_models_are_required(tmp_path):
    download_pose(tmp_path)
    shutil.rmtree(tmp_path / "pose" / W.WAN_POSE_DIR)
    assert W.resolve(tmp_path, need=("pose",), pose_model="rtmw").det_onnx.is_file()  # rtmw users are not blocked
    with pytest.raises(WeightsMissingError) as e:
        W.resolve(tmp_path, need=("pose",), pose_model="wan")
    assert f"pose/{W.WAN_POSE_DIR}" in e.value.message and "--only pose" in e.value.hint


def test_interrupted_folder_download_resumes_file_by_file(tmp_path):
    n_before = len([it for it in W.pose_items() if it.how != "folder"])  # the single files come first
    hub = FakeHub(fail_on_download=n_before + 3)  # interrupted at the folder's third file: two are done
    with pytest.raises(KeyboardInterrupt):
        download_pose(tmp_path, hub)
    done = [p for p in hub.downloads[:-1] if p.startswith(W.WAN_POSE_DIR)]
    assert len(done) == 2
    first = tmp_path / "pose" / done[0]
    first.write_bytes(first.read_bytes()[:10])  # and one of them was cut short after all
    report, hub2 = download_pose(tmp_path)
    again = [p for p in hub2.downloads if p.startswith(W.WAN_POSE_DIR)]
    assert report.complete and done[1] not in again and done[0] in again
    assert len(again) == len(folder_model()) - 1
    assert onnx_problem(tmp_path / "pose" / W.WAN_POSE_DIR) is None


def test_a_truncated_download_of_a_folder_file_is_refused(tmp_path):
    content = FakeHub().content
    name = next(p for p in content[WAN_REPO] if p.startswith(W.WAN_POSE_DIR) and not p.endswith("end2end.onnx"))

    class Short(FakeHub):
        def download(self, repo_id, path, revision, local_dir):
            got = super().download(repo_id, path, revision, local_dir)
            if path == name:
                got.write_bytes(got.read_bytes()[:-4])
            return got

    with pytest.raises(WeightsInvalidError) as e:
        download_pose(tmp_path, Short(content))
    assert "the Hub lists" in e.value.message and e.value.exit_code == ExitCode.WEIGHTS
    assert not (tmp_path / "pose" / name).exists()


def _damage(root, how):
    det, folder = root / "pose" / W.WAN_DET_ONNX, root / "pose" / W.WAN_POSE_DIR
    weight = sorted(p for p in folder.iterdir() if p.name != "end2end.onnx")[0]
    graph = folder / "end2end.onnx"
    if how == "det truncated":
        det.write_bytes(det.read_bytes()[:-1])
    elif how == "det wrong size":  # still a whole ModelProto, but not the file that was downloaded
        det.write_bytes(ONNX + b"\x12\x03abc")
    elif how == "det not onnx":
        det.write_bytes(b"<html>rate limited</html>")
    elif how == "weight truncated":
        weight.write_bytes(weight.read_bytes()[:8])
    elif how == "weight missing":
        weight.unlink()
    elif how == "graph truncated":
        graph.write_bytes(graph.read_bytes()[:-7])
    elif how == "graph missing":
        graph.unlink()
    return {"det": f"pose/{W.WAN_DET_ONNX}"}.get(how.split()[0], f"pose/{W.WAN_POSE_DIR}")


DAMAGE = ("det truncated", "det wrong size", "det not onnx", "weight truncated", "weight missing", "graph truncated",
          "graph missing")  # fmt: skip


@pytest.mark.parametrize("how", DAMAGE)
def test_a_partial_or_damaged_pose_model_is_a_one_line_exit_4(tmp_path, how):
    download_pose(tmp_path)
    rel = _damage(tmp_path, how)
    problems = dict(W.problems(tmp_path, parts=("pose",), pose_model="wan"))
    assert list(problems) == [rel], problems
    with pytest.raises(WeightsMissingError) as e:
        W.resolve(tmp_path, need=("pose",), pose_model="wan")
    assert e.value.exit_code == ExitCode.WEIGHTS and "\n" not in e.value.message and rel in e.value.message
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--only", "pose", "--check", "--json"], env=CLI_ENV)
    out = json.loads(r.stdout)
    assert r.exit_code == 4 and [p["path"] for p in out["problems"]] == [rel]
    assert out["fix"] == f"everanimate download-weights --dir {tmp_path} --only pose"
    # and the fix works: the damaged model is fetched anew (a file) or completed (the folder)
    report, hub = download_pose(tmp_path)
    assert report.complete and W.problems(tmp_path, parts=("pose",)) == [] and hub.downloads


def test_onnx_check_messages(tmp_path):
    m = tmp_path / "m.onnx"
    m.write_bytes(ONNX)
    assert onnx_problem(m) is None
    m.write_bytes(b"\x08\x07\x3a\x10abc")
    assert "truncated" in onnx_problem(m)
    m.write_bytes(b"\x08\x07")
    assert onnx_problem(m) == "not an ONNX model (no graph)"
    m.write_bytes(b"PK\x03\x04zip")
    assert onnx_problem(m) == "not an ONNX model"
    m.write_bytes(ONNX + b"\x00\x00")
    assert onnx_problem(m).startswith("damaged: no ONNX field at byte 4")
    assert onnx_problem(tmp_path / "absent.onnx") == "missing"
    (tmp_path / "folder.onnx").mkdir()
    assert onnx_problem(tmp_path / "folder.onnx") == "end2end.onnx missing"


def test_extract_pose_with_a_truncated_pose_model_is_a_one_line_exit_4(tmp_path):
    import numpy as np
    from support.tiny_pose import write_tiny_pose_models

    from animate_cli import media

    models = write_tiny_pose_models(tmp_path / "weights" / "pose")
    models["pose"].write_bytes(models["pose"].read_bytes()[:-1000])  # an interrupted copy, starts like an ONNX
    video = tmp_path / "v.mp4"
    with media.VideoWriter(video, 64, 48, 25.0) as w:
        w.write(np.zeros((48, 64, 3), np.uint8))
    r = CliRunner().invoke(app, ["extract-pose", str(video), "--out", str(tmp_path / "o"), "--weights-dir",
                                 str(tmp_path / "weights"), "--json"], env=CLI_ENV)  # fmt: skip
    err = json.loads(r.stdout)["error"]
    assert r.exit_code == 4 and err["code"] == "weights_missing" and "\n" not in err["message"]
    assert "truncated" in err["message"] and W.POSE_ONNX in err["message"]
