"""onnxruntime-gpu whose CUDA provider cannot run (CUDA/cuDNN libraries that do not match) under `--device auto`:
the pose models run on the CPU with one warning line, in `extract-pose` and in `run`; an explicit `--device cuda`
stays a one-line error (exit 5). onnxruntime is the real CPU package with its provider list and session
constructor monkeypatched: the provider is offered, then either silently dropped (what onnxruntime-gpu does when
it cannot load libcudnn) or the session refuses to start."""

from __future__ import annotations

import json

import pytest
from test_pose_stage import cli, pose_assets  # noqa: F401 - the fixture

CUDA_PROVIDERS = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture(params=["dropped", "raises"])
def broken_cuda(request, monkeypatch):
    import onnxruntime as ort

    real = ort.InferenceSession
    asked = []

    def session(*args, providers=None, **kw):
        wanted = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        asked.append(wanted)
        if "CUDAExecutionProvider" in wanted:
            if request.param == "raises":
                raise RuntimeError("Failed to load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: "
                                   "cannot open shared object file: No such file or directory")  # fmt: skip
            return real(*args, providers=["CPUExecutionProvider"], **kw)  # onnxruntime's own silent fallback
        return real(*args, providers=providers, **kw)

    monkeypatch.setattr(ort, "get_available_providers", lambda: CUDA_PROVIDERS)
    monkeypatch.setattr(ort, "InferenceSession", session)
    return asked


def test_extract_pose_auto_falls_back_to_the_cpu_with_one_warning(pose_assets, broken_cuda, tmp_path):  # noqa: F811
    out = tmp_path / "auto"
    r = cli(pose_assets["drive"], "--out", out, "--weights-dir", pose_assets["weights"], "--size", "64x48", "--device", "auto")
    assert r.exit_code == 0, r.output
    assert ["CUDAExecutionProvider"] in broken_cuda and ["CPUExecutionProvider"] in broken_cuda  # tried, then the CPU
    warnings = [line for line in r.output.splitlines() if "pose models on the CPU" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert json.loads((out / "pose.json").read_text())["models"]["device"] == "cpu"


def test_extract_pose_explicit_cuda_stays_a_one_line_error(pose_assets, broken_cuda, tmp_path):  # noqa: F811
    r = cli(pose_assets["drive"], "--out", tmp_path / "cuda", "--weights-dir", pose_assets["weights"], "--size", "64x48",
            "--device", "cuda")  # fmt: skip
    assert r.exit_code == 5, r.output
    assert "Traceback" not in r.output and "onnxruntime" in r.output
    assert not (tmp_path / "cuda" / "pose.mp4").exists()


def test_run_on_cuda_falls_back_to_the_cpu_for_pose_with_one_warning(tiny_weights, media_dir, broken_cuda, tmp_path):
    """`run`'s pose stage on a CUDA run (pose_device gives cuda:0 when onnxruntime offers CUDA)."""
    from helpers import RecordingReporter, make_cfg, run_plan

    from animate_cli.pose.choice import choose_models
    from animate_cli.runner import pose_job

    cfg = make_cfg(media_dir, tiny_weights, tmp_path / "o.mp4", frames=20, pose_video=None, face_video=None)
    rep = RecordingReporter()
    res = pose_job.extract_for_run(cfg, run_plan(cfg), choose_models("rtmw", tiny_weights), "cuda:0", rep)
    pose_video, n, info = res.pose_video, res.source_frames, res.info
    assert info["device"] == "cpu" and pose_video.exists() and n > 0
    assert sum("pose models on the CPU" in m for m in rep.messages) == 1
