"""What the chunk loop works on, gathered once by the orchestrator (runner/pipeline.py) and passed whole.

Every memory/speed choice (offload, FP8, attention, compile, context parallelism) is already inside
`models`, set up where the models were loaded; the loop never sees a flag for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from animate_cli.media import VideoInfo
from animate_cli.options import RunConfig
from animate_cli.progress import Reporter
from animate_cli.rollout.plan import ChunkPlan
from animate_cli.rollout.resume import ResumePoint

if TYPE_CHECKING:
    import torch

    from animate_cli.models import Models


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


class FrameWriter(Protocol):
    """Where a chunk's kept frames go: media.writer.SegmentWriter (H.264 segments on its own thread), or
    rollout.seamfix.SeamFixWriter in front of it."""

    wait_s: float  # how long the caller has waited on the writer so far

    def open(self, path: Path, width: int, height: int, fps: float, chunk: int) -> None: ...

    def write(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def wait(self) -> None: ...


@dataclass
class RunContext:
    """One `run`'s rollout: the loaded models, the plan, checked inputs, resume state, writer and reporter."""

    cfg: RunConfig
    plan: ChunkPlan
    inputs: CheckedInputs
    models: Models  # transformer (LoRA fused, runtime set up), vae, image_encoder, device, dtype
    text: torch.Tensor | None  # [1, 512, text_dim] prompt embedding (None when nothing is left to generate)
    control: ControlVideos
    resume: ResumePoint
    writer: FrameWriter
    reporter: Reporter
    on_chunk_done: Callable[[int], None] | None = None  # after chunk c's state is saved (an exception here stops the run)
