"""Shared helpers for the run tests (plain functions; fixtures live in conftest.py)."""

from pathlib import Path

import numpy as np

from animate_cli import media
from animate_cli.options import RunConfig

SIZE = (64, 32)


def make_cfg(media_dir: Path, weights: Path, out: Path, frames: int = 160, **kw) -> RunConfig:
    base = dict(ref=media_dir / "ref.png", driving=media_dir / "driving.mp4", out=out, frames=frames, width=SIZE[0],
                height=SIZE[1], weights_dir=weights, pose_video=media_dir / "pose.mp4", face_video=media_dir / "face.mp4",
                device="cpu", dtype="fp32", steps=2)  # fmt: skip
    base.update(kw)
    return RunConfig(**base)


class RecordingReporter:
    """A progress.Reporter that keeps every event; `counts[name]` is how far a stage advanced."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.counts: dict[str, int] = {}
        self.messages: list[str] = []

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self.events.append(("stage", name, total, description))
        self.counts[name] = 0

    def advance(self, name: str, n: int = 1) -> None:
        self.events.append(("advance", name, n))
        self.counts[name] = self.counts.get(name, 0) + n

    def log(self, message: str) -> None:
        self.messages.append(message)

    def artifact(self, kind: str, path: Path, **info) -> None:
        self.events.append(("artifact", kind, Path(path), info))


def run_plan(cfg: RunConfig):
    """The chunk plan pipeline.run makes for cfg (for calling a stage such as pose_job.extract_for_run alone):
    its ping-pong period is the given pose video's length, else the driving video's."""
    from animate_cli import config as C
    from animate_cli.rollout.plan import plan_for

    return plan_for(cfg, media.probe(cfg.pose_video or cfg.driving).frames_at(C.FPS))


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


class FakeHostAllocator:
    """torch's CUDA host (pinned) allocator as models.pinned sees it, on a CPU build of torch.

    `pin_memory()` hands out a block of the request rounded up to a power of two, unless the
    `pinned_max_round_threshold_mb` setting was given and honoured and the request is above it (torch's
    CachingHostAllocator rule); `host_memory_stats()` reports the bytes handed out. `honours=False` is a
    torch that accepts the setting silently and keeps rounding; `stats=False` one without statistics.
    """

    def __init__(self, honours: bool = True, stats: bool = True, raises: bool = False):
        self.honours, self.has_stats, self.raises = honours, stats, raises
        self.threshold_mb, self.active, self.settings = None, 0, []

    def set_settings(self, text: str) -> None:
        self.settings.append(text)
        if self.raises:
            raise RuntimeError("unknown allocator setting")
        key, _, value = text.partition(":")
        if self.honours and key == "pinned_max_round_threshold_mb":
            self.threshold_mb = int(value)

    def pin(self, t):
        size = t.numel() * t.element_size()
        exact = self.threshold_mb is not None and size > self.threshold_mb * 2**20
        self.active += size if exact else 1 << (size - 1).bit_length()
        return t.clone()

    def stats(self) -> dict:
        return {"active_bytes.current": self.active, "allocated_bytes.current": self.active} if self.has_stats else {}

    def install(self, monkeypatch):
        import torch

        from animate_cli.models import pinned

        monkeypatch.setattr(torch._C, "_accelerator_setAllocatorSettings", self.set_settings)
        monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t, device=None: self.pin(t))
        monkeypatch.setattr(torch.cuda, "host_memory_stats", self.stats)
        pinned.check_pinned_sizes.cache_clear()  # the answer is cached per process: ask this allocator
        return self
