"""Shared helpers for the run tests (plain functions; fixtures live in conftest.py)."""

from pathlib import Path

import numpy as np

from animate_cli import media
from animate_cli.config import RunConfig

SIZE = (64, 32)


def make_cfg(media_dir: Path, weights: Path, out: Path, frames: int = 160, **kw) -> RunConfig:
    base = dict(ref=media_dir / "ref.png", driving=media_dir / "driving.mp4", out=out, frames=frames, width=SIZE[0],
                height=SIZE[1], weights_dir=weights, pose_video=media_dir / "pose.mp4", face_video=media_dir / "face.mp4",
                device="cpu", dtype="fp32", steps=2)  # fmt: skip
    base.update(kw)
    return RunConfig(**base)


def frames_of(path: Path) -> np.ndarray:
    return np.stack(list(media.iter_frames(path)))


def chunk_latents(state_dir: Path, c: int):
    from animate_cli.resume import load_chunk_latents

    return load_chunk_latents(state_dir, c)


def load_bench_gpu():
    """benchmarks/bench_gpu.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_gpu", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
