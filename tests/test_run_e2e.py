"""`everanimate run` end to end on the tiny weights: real mp4 in and out, determinism, resume, extension.

Three chunks (160 frames = 77 + 73 + 10) at 64x32 with 2 steps keep each run to a few seconds.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import frames_of, make_cfg

from animate_cli import media
from animate_cli.runner import pipeline


def test_console_script_end_to_end(tiny_weights, media_dir, tmp_path):
    out = tmp_path / "cli.mp4"
    exe = Path(sys.executable).with_name("everanimate")
    cmd = [str(exe), "run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--pose-video", str(media_dir / "pose.mp4"),
           "--face-video", str(media_dir / "face.mp4"), "--seconds", "6.4", "--size", "64x32", "--steps", "2", "--device", "cpu",
           "--dtype", "fp32", "--weights-dir", str(tiny_weights), "--out", str(out), "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert summary["ok"] and summary["frames"] == 160 and summary["chunks"] == 3 and summary["lora_modules"] == 20
    assert summary["memory_mode"] == {
        "offload": "none",
        "weights_dtype": "bf16",
        "predicted_gpu_gib": None,
        "predicted_host_gib": None,
        "measured_peak_gpu_gib": None,
    }  # CPU: no model, no peak
    info = media.probe(out)
    assert (info.width, info.height, info.fps) == (64, 32, 25.0)
    assert media.count_frames(out) == 160
    assert info.has_audio  # the driving video's tone, padded with silence past its 1.6 s
    assert abs(info.duration - 6.4) < 0.1


def test_same_inputs_give_identical_frames(tiny_run, tiny_weights, media_dir, tmp_path):
    frames_a = tiny_run.frames
    out = tmp_path / "b.mp4"
    pipeline.run(make_cfg(media_dir, tiny_weights, out))
    frames_b = frames_of(out)
    assert frames_a.shape == (160, 32, 64, 3)
    assert np.array_equal(frames_a, frames_b)
    assert frames_a.std() > 1.0  # not a blank video


def test_interrupted_run_resumes_to_identical_frames(tiny_run, tiny_weights, media_dir, tmp_path):
    frames_a = tiny_run.frames
    out = tmp_path / "r.mp4"
    cfg = make_cfg(media_dir, tiny_weights, out)

    def crash(c):
        if c == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.run(cfg, on_chunk_done=crash)
    assert not out.exists()
    state = json.loads((cfg.resume_dir / "state.json").read_text())
    assert state["next_chunk"] == 2
    summary = pipeline.run(cfg)
    assert summary.resumed_from_chunk == 2
    assert np.array_equal(frames_of(out), frames_a)


def test_longer_run_extends_a_finished_one(tiny_run, tiny_weights, media_dir, tmp_path):
    frames_a = tiny_run.frames
    out = tmp_path / "e.mp4"
    pipeline.run(make_cfg(media_dir, tiny_weights, out))
    summary = pipeline.run(make_cfg(media_dir, tiny_weights, out, frames=230, overwrite=True))
    assert summary.resumed_from_chunk == 3 and summary.chunks == 4
    frames = frames_of(out)
    assert len(frames) == 230
    assert np.array_equal(frames[:160], frames_a)  # the trimmed last chunk was re-decoded, not regenerated


def test_changed_settings_refuse_to_resume(tiny_weights, media_dir, tmp_path):
    from animate_cli.errors import ResumeMismatchError

    out = tmp_path / "m.mp4"
    cfg = make_cfg(media_dir, tiny_weights, out, frames=20)
    pipeline.run(cfg)
    with pytest.raises(ResumeMismatchError, match="seed"):
        pipeline.run(make_cfg(media_dir, tiny_weights, out, frames=20, seed=5, overwrite=True))
    summary = pipeline.run(make_cfg(media_dir, tiny_weights, out, frames=20, seed=5, overwrite=True), fresh=True)
    assert summary.resumed_from_chunk == 0


def test_odd_reference_images_work(tiny_weights, media_dir, tmp_path):
    from PIL import Image

    rgb = np.asarray(Image.open(media_dir / "ref.png").convert("RGB"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    for name in ("rgba.png", "gray.png", "deep.png"):
        img = media.load_image(tmp_path / name)
        assert img.dtype == np.uint8 and img.shape == (*rgb.shape[:2], 3)
    assert abs(int(media.load_image(tmp_path / "deep.png")[10, 10, 0]) - int(rgb[10, 10, 0])) <= 1  # scaled, not clipped
    summary = pipeline.run(make_cfg(media_dir, tiny_weights, tmp_path / "o.mp4", frames=10, ref=tmp_path / "deep.png",
                                    ref_views=(tmp_path / "rgba.png", tmp_path / "gray.png")))  # fmt: skip
    assert media.count_frames(summary.output) == 10
    assert torch.get_num_threads() >= 1


def test_raw_driving_video_uses_the_pose_stage_and_its_cache(tiny_weights, media_dir, tmp_path):
    from support.tiny_wan import draw_person

    driving = tmp_path / "person.mp4"  # a figure the tiny Wan pose models (the default pose model) see
    with media.VideoWriter(driving, 160, 120, 25.0) as w:
        for t in range(40):
            f = np.zeros((120, 160, 3), np.uint8)
            draw_person(f, 70 + t, 10, 100)
            w.write(f)
    first = pipeline.run(make_cfg(media_dir, tiny_weights, tmp_path / "p1.mp4", frames=30, pose_video=None, face_video=None,
                                  driving=driving))  # fmt: skip
    assert first.pose["reused"] is False and first.pose["frames"] == 40  # 1.6 s driving video at 25 fps
    assert first.pose["model"] == "wan" and first.pose["detected"] == 40
    cache = Path(first.pose["cache"])
    assert cache.parent == tmp_path / ".everanimate-pose-cache"
    assert (cache / "pose.mp4").exists() and (cache / "face.mp4").exists() and (cache / "pose.json").exists()
    assert media.count_frames(first.output) == 30
    second = pipeline.run(make_cfg(media_dir, tiny_weights, tmp_path / "p2.mp4", frames=30, pose_video=None, face_video=None,
                                   driving=driving))  # fmt: skip
    assert second.pose["reused"] is True and second.pose["cache"] == first.pose["cache"] and second.pose["model"] == "wan"


def test_side_by_side_and_no_audio(tiny_weights, media_dir, tmp_path):
    out = tmp_path / "sbs.mp4"
    pipeline.run(make_cfg(media_dir, tiny_weights, out, frames=12, side_by_side=True, audio=False))
    info = media.probe(out)
    assert (info.width, info.height) == (128, 32) and not info.has_audio
    frame = frames_of(out)[5]
    pose = media.center_crop_resize(media.read_frames_at(media_dir / "pose.mp4", [5])[0], 64, 32)
    assert np.abs(frame[:, 64:].astype(int) - pose.astype(int)).mean() < 8  # right panel is the pose frame


def test_bf16_run(tiny_weights, media_dir, tmp_path):
    """bf16 is the real default: diffusers keeps some transformer modules in fp32, which must not leak into inputs."""
    summary = pipeline.run(make_cfg(media_dir, tiny_weights, tmp_path / "bf16.mp4", frames=10, dtype="bf16"))
    assert summary.lora_modules == 20
    frames = frames_of(summary.output)
    assert len(frames) == 10 and frames.std() > 1.0
