"""What the chunk loop works on, gathered once by the orchestrator (runner/pipeline.py) and passed whole.

Every memory/speed choice (offload, FP8, attention, compile, context parallelism) is already inside
`models`, set up where the models were loaded; the loop never sees a flag for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animate_cli.media import VideoInfo
from animate_cli.options import RunConfig
from animate_cli.progress import Reporter
from animate_cli.rollout.plan import ChunkPlan


@dataclass(frozen=True)
class CheckedInputs:
    """Validated inputs, found without loading any model (used by --dry-run too)."""

    ref: np.ndarray  # uint8 [H0, W0, 3] as loaded
    views: tuple[np.ndarray, ...]  # uint8 [Hi, Wi, 3] each, the --ref-view images
    driving: VideoInfo
    pose_frames: int | None  # output frames (at C.FPS) --pose-video covers, by its timestamps (None: extracted later)


@dataclass(frozen=True)
class ControlVideos:
    """The pose and face control videos every chunk reads its 77 frames from (pose.mp4 at the canvas size,
    face.mp4 of 512x512 crops); each is read by its own timestamps (media.timeline)."""

    pose: Path
    face: Path


@dataclass(frozen=True)
class ResumePoint:
    """Where the rollout starts and what it saves after each chunk (rollout/resume.py, spec §8)."""

    state_dir: Path
    state: object | None  # resume.RunState of the last finished chunk, None for a fresh start
    start_chunk: int
    fingerprint: str
    settings: dict  # what must match for a saved state to be continued


@dataclass
class RunContext:
    """One `run`'s rollout: the loaded models, the plan, checked inputs, resume state, writer and reporter."""

    cfg: RunConfig
    plan: ChunkPlan
    inputs: CheckedInputs
    models: object  # models.Models: transformer (LoRA fused, runtime set up), vae, image_encoder, device, dtype
    text: object  # [1, 512, text_dim] prompt embedding (None when nothing is left to generate)
    control: ControlVideos
    resume: ResumePoint
    writer: object  # media.writer.SegmentWriter: H.264 segments encoded on its own thread
    reporter: Reporter
    on_chunk_done: Callable[[int], None] | None = None  # after chunk c's state is saved (tests interrupt here)
