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
    from animate_cli.rollout.resume import load_chunk_latents

    return load_chunk_latents(state_dir, c)


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cli_in_fresh_interpreter(args: list[str]) -> tuple[list[str], dict]:
    """Run the CLI with `args` in a new Python process; (its stdout lines, a probe of what it imported and its
    exit code) -- for checking that a command (e.g. `run --dry-run`) never imports torch or diffusers."""
    import json
    import os
    import subprocess
    import sys

    code = ("import sys, json\nfrom animate_cli.cli import app\ntry:\n    app(sys.argv[1:])\n"
            "except SystemExit as e:\n    code = e.code\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'diffusers': 'diffusers' in sys.modules, 'code': code}))\n")  # fmt: skip
    env = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    return lines[:-1], json.loads(lines[-1])
