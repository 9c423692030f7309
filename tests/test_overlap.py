"""Keeping the GPU busy (issue 8, point 6): the pose stage on a worker thread while the models load, the
H.264 writer on its own thread, the ONNX Runtime provider choice, and per-stage timings.

Real tiny weights, real tiny ONNX pose models, real mp4 I/O. Concurrency is shown with events (a stage
that cannot finish unless the other has started), never with timing assertions.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import RecordingReporter, frames_of, make_cfg, run_plan
from typer.testing import CliRunner

from animate_cli import media
from animate_cli.cli import app
from animate_cli.errors import WriteFailedError
from animate_cli.media.writer import SegmentWriter
from animate_cli.runner import pipeline, pose_job

ENV = {"COLUMNS": "300", "NO_COLOR": "1"}
GATE_S = 60  # generous: a gate that times out means the stages ran one after the other


def person_video(path: Path, n: int, person=lambda t: True) -> Path:
    """160x96 (the tiny detector's fixed box is >= 32 px tall there), a bright moving box as the person."""
    w, h = 160, 96
    with media.VideoWriter(path, w, h, 25) as vw:
        for t in range(n):
            f = np.zeros((h, w, 3), np.uint8)
            if person(t):
                f[h // 8 : h - h // 8, w // 2 - 20 + t % 8 : w // 2 + 20 + t % 8] = 220
            vw.write(f)
    return path


@pytest.fixture(scope="module")
def raw(tmp_path_factory, media_dir):
    d = tmp_path_factory.mktemp("raw")
    return {"drive": person_video(d / "drive.mp4", 30), "black": person_video(d / "black.mp4", 10, person=lambda t: False),
            "ref": media_dir / "ref.png"}  # fmt: skip


def raw_cfg(media_dir, weights, out, driving, **kw):
    # RTMW (the tiny set has both models): the sequential comparison below extracts with RTMW's files
    return make_cfg(media_dir, weights, out, frames=kw.pop("frames", 20), driving=driving, pose_video=None, face_video=None,
                    pose_model="rtmw", **kw)  # fmt: skip


def test_pose_thread_overlaps_model_loading_and_gives_the_sequential_frames(tiny_weights, media_dir, raw, tmp_path, monkeypatch):
    from animate_cli import models
    from animate_cli.pose import PoseSettings, extract_pose, find_pose_models

    load_started = threading.Event()
    seen = {"pose_threads": set(), "pose_done_at_load": None}
    real_load = models.load_models

    class GateReporter(RecordingReporter):
        def advance(self, name, n=1):
            if name == "pose":  # the pose stage cannot get past its first frame until the models start loading
                seen["pose_threads"].add(threading.get_ident())
                assert load_started.wait(GATE_S), "model loading did not start while the pose stage ran"
            super().advance(name, n)

    def load(*a, **k):
        seen["pose_done_at_load"] = any(e[:2] == ("stage", "render") for e in reporter.events)
        load_started.set()
        return real_load(*a, **k)

    monkeypatch.setattr(models, "load_models", load)
    reporter = GateReporter()
    out = tmp_path / "threaded.mp4"
    summary = pipeline.run(raw_cfg(media_dir, tiny_weights, out, raw["drive"]), reporter)
    assert seen["pose_done_at_load"] is False  # loading began before the pose stage reached its render pass
    assert seen["pose_threads"] and threading.get_ident() not in seen["pose_threads"]
    t = summary.timings_s
    assert {"pose", "pose_wait", "prompt", "load", "rollout", "rollout_dit", "rollout_outside_dit", "mux", "total"} <= t.keys()
    assert [c["chunk"] for c in t["chunks"]] == [0]
    assert {"frame_reads", "vae_encode", "clip", "dit", "decode", "writer_wait", "save"} <= t["chunks"][0].keys()
    assert summary.pose["device"] == "cpu" and summary.pose["frames"] == 30

    # The sequential path: extract first (on this thread), then run on the given pose/face videos.
    det, pose = find_pose_models(tiny_weights)
    res = extract_pose(raw["drive"], tmp_path / "seq-pose", PoseSettings(width=64, height=32, fps=25.0, device="cpu"), det, pose)
    monkeypatch.setattr(models, "load_models", real_load)
    seq = pipeline.run(make_cfg(media_dir, tiny_weights, tmp_path / "seq.mp4", frames=20, driving=raw["drive"],
                                pose_video=res.pose_video, face_video=res.face_video))  # fmt: skip
    assert np.array_equal(frames_of(seq.output), frames_of(out))
    assert frames_of(out).std() > 1.0


def test_pose_thread_failure_is_the_same_clean_error(tiny_weights, media_dir, raw, tmp_path):
    args = ["run", str(raw["ref"]), str(raw["black"]), "--weights-dir", str(tiny_weights), "--out", str(tmp_path / "o.mp4"),
            "--size", "64x32", "--steps", "1", "--device", "cpu", "--dtype", "fp32", "--frames", "5", "--pose-model", "rtmw", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert "error: no person detected in any frame of" in result.output
    assert '"code": "no_person"' in result.stdout
    assert not any(t.name == "everanimate-pose" and t.is_alive() for t in threading.enumerate())


def test_ctrl_c_during_pose_extraction_exits_130_and_stops_the_pose_thread(tiny_weights, media_dir, raw, tmp_path, monkeypatch):
    from animate_cli import models
    from animate_cli.pose.estimator import RtmlibEstimator

    started, frames = threading.Event(), []
    real_detect = RtmlibEstimator.detect

    def detect(self, frame):
        frames.append(1)
        started.set()
        threading.Event().wait(0.05)  # a slow pose model: extraction would take >= 1.5 s
        return real_detect(self, frame)

    def load(*a, **k):
        assert started.wait(GATE_S)
        raise KeyboardInterrupt  # Ctrl-C while the models load and the pose thread is mid-video

    monkeypatch.setattr(RtmlibEstimator, "detect", detect)
    monkeypatch.setattr(models, "load_models", load)
    args = ["run", str(raw["ref"]), str(raw["drive"]), "--weights-dir", str(tiny_weights), "--out", str(tmp_path / "o.mp4"),
            "--size", "64x32", "--steps", "1", "--device", "cpu", "--dtype", "fp32", "--frames", "5", "--pose-model", "rtmw"]  # fmt: skip
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "Traceback" not in result.output
    assert not any(t.name == "everanimate-pose" and t.is_alive() for t in threading.enumerate())
    assert len(frames) < 30  # cancelled within a frame, not run to the end of the 30-frame video
    cache = tmp_path / ".everanimate-pose-cache"
    assert not list(cache.rglob("pose.json")) and not list(cache.rglob(".pose-partial-*"))


def test_pose_provider_choice(monkeypatch, tiny_weights, raw):
    import onnxruntime as ort

    from animate_cli.pose import PoseSettings
    from animate_cli.pose.estimator import find_pose_models, pose_device
    from animate_cli.pose.stage import cache_key

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert pose_device("cuda:1") == "cuda:1" and pose_device("cpu") == "cpu"
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert pose_device("cuda:0") == "cpu"
    det, pose = find_pose_models(tiny_weights)
    keys = {cache_key(raw["drive"], PoseSettings(width=64, height=32, device=d), det, pose) for d in ("cpu", "cuda:0", "auto")}
    assert len(keys) == 1  # the provider is how, not what: one cache entry
    assert cache_key(raw["drive"], PoseSettings(width=64, height=48), det, pose) not in keys


def test_unusable_cuda_provider_falls_back_to_the_cpu(monkeypatch, tiny_weights, raw, tmp_path):
    from animate_cli.pose import estimator
    from animate_cli.pose.choice import choose_models

    monkeypatch.setattr(estimator, "pose_device", lambda d: "cuda:0")  # CPU onnxruntime: RtmlibEstimator refuses cuda
    cfg = raw_cfg(tmp_path, tiny_weights, tmp_path / "o.mp4", raw["drive"])
    rep = RecordingReporter()
    models = choose_models("rtmw", tiny_weights)
    res = pose_job.extract_for_run(cfg, run_plan(cfg), models, "cuda:0", rep)
    pose_video, n, info = res.pose_video, res.source_frames, res.info
    assert info["device"] == "cpu" and n == 30 and pose_video.exists()
    assert any("warning: pose models on the CPU" in m for m in rep.messages)


# --- the segment writer ------------------------------------------------------------------------------


def clip_frames(n=12, w=64, h=32):
    rng = np.random.default_rng(1)
    return [np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255).astype(np.uint8) for _ in range(n)]


def test_async_writer_writes_the_same_segments_and_reports_each_when_complete(tmp_path):
    frames = clip_frames()
    with media.VideoWriter(tmp_path / "sync.mp4", 64, 32, 25) as vw:
        for f in frames:
            vw.write(f)
    done = []

    def on_done(chunk, path):  # must see a complete file under its real name, and nothing partial
        done.append((chunk, path, path.exists(), path.with_name(path.name + ".partial.mp4").exists()))

    with SegmentWriter(on_done, depth=3) as w:  # a small queue: the caller blocks and resumes
        for c in range(2):
            w.open(tmp_path / f"seg{c}.mp4", 64, 32, 25, c)
            for f in frames:
                w.write(f)
            w.close()
    assert [(c, p.name, e, part) for c, p, e, part in done] == [(0, "seg0.mp4", True, False), (1, "seg1.mp4", True, False)]
    for c in range(2):
        assert np.array_equal(frames_of(tmp_path / f"seg{c}.mp4"), frames_of(tmp_path / "sync.mp4"))


def fake_ffmpeg(tmp_path) -> Path:
    """An ffmpeg that dies (exit 1) a few KB into any encode and is the real one for everything else."""
    exe = tmp_path / "ffmpeg"
    exe.write_text(f'#!/bin/sh\ncase "$*" in *libx264*) head -c 20000 >/dev/null; echo "disk on fire" >&2; exit 1;; esac\n'
                   f'exec {media.ffmpeg_exe()} "$@"\n')  # fmt: skip
    exe.chmod(0o755)
    return exe


def test_writer_failure_is_one_clean_error_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake_ffmpeg(tmp_path)))
    seg = tmp_path / "seg.mp4"
    with pytest.raises(WriteFailedError) as e, SegmentWriter(depth=2) as w:
        w.open(seg, 64, 32, 25, 0)
        for f in clip_frames(200):
            w.write(f)
        w.close()
    assert "\n" not in e.value.message and e.value.message.startswith(f"cannot write {seg}")
    assert "disk on fire" in e.value.message and e.value.exit_code == 6  # ffmpeg's last line, kept
    assert not seg.exists() and not seg.with_name("seg.mp4.partial.mp4").exists()


def test_writer_failure_in_a_run_exits_cleanly(tiny_weights, media_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake_ffmpeg(tmp_path)))
    args = ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--weights-dir", str(tiny_weights),
            "--out", str(tmp_path / "o.mp4"), "--size", "64x32", "--steps", "1", "--device", "cpu", "--dtype", "fp32",
            "--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4"), "--frames", "150"]  # fmt: skip
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 6, result.output
    assert "error: cannot write" in result.output and "disk on fire" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.mp4").exists()
    assert not any(t.name == "everanimate-writer" and t.is_alive() for t in threading.enumerate())


def test_crash_mid_segment_leaves_nothing_complete_looking_and_resume_is_identical(tiny_weights, media_dir, tmp_path):
    import torch

    base = pipeline.run(make_cfg(media_dir, tiny_weights, tmp_path / "base.mp4"))
    out = tmp_path / "crash.mp4"
    code = (
        "import os, signal, sys, torch\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r}); torch.set_num_threads({torch.get_num_threads()})\n"
        "from pathlib import Path\nfrom helpers import make_cfg\nfrom animate_cli import media\nfrom animate_cli.runner import pipeline\n"
        "real = media.VideoWriter.write\n"
        "def write(self, frame):\n"
        "    if self.path.name.startswith('chunk_00001') and self.frames == 10:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)  # a hard crash: no cleanup, no finally\n"
        "    real(self, frame)\n"
        "media.VideoWriter.write = write\n"
        f"pipeline.run(make_cfg(Path({str(media_dir)!r}), Path({str(tiny_weights)!r}), Path({str(out)!r})))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the orphaned ffmpeg too, as in a power cut
    segments = out.with_name(out.name + ".everanimate-state") / "segments"
    names = sorted(p.name for p in segments.iterdir())
    assert "chunk_00000_077.mp4" in names
    assert "chunk_00001_073.mp4" not in names  # the half-written segment never has its real name
    resumed = pipeline.run(make_cfg(media_dir, tiny_weights, out))
    assert np.array_equal(frames_of(resumed.output), frames_of(base.output))


def test_a_mismatching_resume_state_is_refused_before_any_model_loads(tiny_weights, media_dir, tmp_path, monkeypatch):
    from animate_cli import models
    from animate_cli.errors import ResumeMismatchError

    out = tmp_path / "m.mp4"
    pipeline.run(make_cfg(media_dir, tiny_weights, out, frames=5))

    def load(*a, **k):
        raise AssertionError("models loaded for a run that is refused")

    monkeypatch.setattr(models, "load_models", load)
    with pytest.raises(ResumeMismatchError, match="seed"):
        pipeline.run(make_cfg(media_dir, tiny_weights, out, frames=5, seed=3, overwrite=True))
    with pytest.raises(ResumeMismatchError, match="pose_video"):  # given pose videos are hashed up front too
        pipeline.run(make_cfg(media_dir, tiny_weights, out, frames=5, overwrite=True, pose_video=media_dir / "face.mp4"))
