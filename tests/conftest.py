"""Test-suite setup: offline Hub, no sockets, 2 threads, and session-scoped tiny assets.

Nothing here downloads anything: the tiny model set is written by the same code as
`scripts/make_tiny_weights.py`, in download-weights' layout, and the media are synthetic.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import socket  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

if TYPE_CHECKING:
    from animate_cli.options import RunConfig
    from animate_cli.runner.pipeline import RunSummary

# benchmarks/ holds the full-size configs and the footprint measurement (full_configs, measure_footprint) that
# tests check; tests/ itself (support.*, helpers) is on sys.path through pytest's rootdir-relative imports.
sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """ffmpeg and onnxruntime use pipes and files; any socket connect is a test bug."""

    def guard(*args, **kwargs):
        raise RuntimeError("network access attempted in tests")

    monkeypatch.setattr(socket.socket, "connect", guard)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EVERANIMATE_GPU_TESTS") != "1":
        skip = pytest.mark.skip(reason="set EVERANIMATE_GPU_TESTS=1 on a CUDA machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """The complete tiny model set (base, both LoRAs, pose ONNX) in download-weights' layout."""
    import torch

    torch.set_num_threads(2)
    from support.tiny_models import write_tiny_weights

    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


def stick_figure(h: int, w: int, phase: float, bg=(0, 0, 0)) -> np.ndarray:
    """A moving stick person (head, torso, swinging limbs) on a plain background, uint8 [h, w, 3]."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    cx, top = w // 2, h // 6
    yy, xx = np.mgrid[0:h, 0:w]
    r = max(2, h // 12)
    img[(yy - top) ** 2 + (xx - cx) ** 2 <= r * r] = (230, 180, 150)
    img[top + r : top + h // 2, max(0, cx - 2) : cx + 2] = (40, 90, 200)
    swing = int(np.sin(phase) * w / 8)
    for k in range(h // 3):
        y = top + h // 2 + k
        if y < h:
            for s in (-1, 1):
                x = int(np.clip(cx + s * (k // 2) + swing * s * k // max(1, h // 3), 0, w - 1))
                img[y, max(0, x - 1) : x + 2] = (200, 60, 60)
    return img


def write_video(path: Path, frames, fps: float = 25.0, audio_seconds: float | None = None) -> Path:
    """Write frames to an H.264 mp4; optionally mux a sine tone of `audio_seconds`."""
    import subprocess

    from animate_cli.media import VideoWriter, ffmpeg_exe

    frames = list(frames)
    h, w = frames[0].shape[:2]
    silent = path.with_name(path.stem + ".silent.mp4") if audio_seconds else path
    with VideoWriter(silent, w, h, fps) as wr:
        for f in frames:
            wr.write(f)
    if audio_seconds:
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(silent), "-f", "lavfi", "-i",
                        f"sine=frequency=440:duration={audio_seconds}", "-c:v", "copy", "-c:a", "aac", str(path)],
                       check=True)  # fmt: skip
        silent.unlink()
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """ref.png (landscape person), pose.mp4 + face.mp4 (40 frames), driving.mp4 (40 frames, 1.6 s, with audio)."""
    from PIL import Image

    d = tmp_path_factory.mktemp("media")
    Image.fromarray(stick_figure(48, 80, 0.0, bg=(240, 240, 240))).save(d / "ref.png")
    Image.fromarray(stick_figure(48, 80, 1.0, bg=(200, 220, 240))).save(d / "view1.png")
    n = 40
    write_video(d / "pose.mp4", (stick_figure(32, 64, i / 4) for i in range(n)))
    write_video(d / "face.mp4", (np.full((64, 64, 3), (i * 6) % 255, np.uint8) for i in range(n)))
    write_video(d / "driving.mp4", (stick_figure(48, 80, i / 4, bg=(90, 90, 90)) for i in range(n)), audio_seconds=n / 25)
    return d


@dataclass(frozen=True)
class TinyRun:
    cfg: RunConfig
    summary: RunSummary
    frames: np.ndarray  # the output's decoded frames, read-only


@pytest.fixture(scope="session")
def tiny_run(tiny_weights, media_dir, tmp_path_factory) -> TinyRun:
    """One plain run with helpers.make_cfg's defaults (160 frames = 3 chunks, 64x32, 2 steps, its report written),
    shared by the tests that compare with it (test_run_e2e, test_report_run, test_overlap). Read it, never write
    into its folder: its state is what an extension or a resume of it would read."""
    from helpers import frames_of, make_cfg

    from animate_cli.runner import pipeline

    cfg = make_cfg(media_dir, tiny_weights, tmp_path_factory.mktemp("tiny_run") / "a.mp4")
    summary = pipeline.run(cfg)
    frames = frames_of(cfg.out)
    frames.flags.writeable = False
    return TinyRun(cfg, summary, frames)
