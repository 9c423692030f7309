"""The chunk plan: which driving frames each chunk reads, which decoded frames it keeps, and the
latent shapes it works on. Pure Python (no torch) so `--dry-run` and the rollout share one truth.

Schedule (docs/rollout.md): chunk c covers global frames [73c, 73c+77). Chunk 0 keeps all 77 decoded
frames; chunk c >= 1 drops its first 4 (they repeat chunk c-1's last latent) and keeps 73. The
last chunk is trimmed so the output has exactly the requested number of frames. Driving frames
beyond the end of the driving video are read ping-pong: 0..N-1, N-2..1, 0..N-1, ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from animate_cli import config as C
from animate_cli.options import RunConfig


def num_chunks_for(frames: int) -> int:
    """Smallest chunk count whose kept frames (77 + 73(n-1)) cover `frames` output frames."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if frames <= C.CHUNK_FRAMES:
        return 1
    return 1 + math.ceil((frames - C.CHUNK_FRAMES) / C.STRIDE_FRAMES)


def pingpong(global_index: int, num_source: int) -> int:
    """Map a global driving index onto a source video of `num_source` frames, bouncing at the ends."""
    if num_source <= 1:
        return 0
    period = 2 * num_source - 2
    i = global_index % period
    return i if i < num_source else period - i


@dataclass(frozen=True)
class ChunkSpec:
    index: int
    start: int  # first global frame this chunk generates (73c)
    driving: tuple[int, ...]  # 77 source-frame indices into the driving (pose/face) video
    drop: int  # decoded frames dropped at the start: 0 for chunk 0, 4 afterwards
    keep: int  # decoded frames written after the drop (the last chunk may be trimmed)
    seed: int  # CPU generator seed of this chunk's noise

    @property
    def out_start(self) -> int:
        """Index in the output video of this chunk's first kept frame."""
        return self.start + self.drop


@dataclass(frozen=True)
class ChunkPlan:
    frames: int  # exact output length
    width: int
    height: int
    source_frames: int  # the driving video's length in output frames (25 fps): the ping-pong period
    steps: int
    seed: int
    chunks: tuple[ChunkSpec, ...]

    @property
    def latent_hw(self) -> tuple[int, int]:
        return self.height // C.VAE_STRIDE_S, self.width // C.VAE_STRIDE_S

    @property
    def tokens_per_call(self) -> int:
        h, w = self.latent_hw
        return C.LATENT_SLOTS * (h // C.PATCH) * (w // C.PATCH)

    def latent_shape(self, slots: int = C.LATENT_SLOTS) -> tuple[int, int, int, int, int]:
        h, w = self.latent_hw
        return (1, 16, slots, h, w)

    def to_dict(self) -> dict:
        h, w = self.latent_hw
        return {
            "frames": self.frames,
            "fps": C.FPS,
            "seconds": round(self.frames / C.FPS, 3),
            "size": [self.width, self.height],
            "chunks": len(self.chunks),
            "steps": self.steps,
            "seed": self.seed,
            "source_frames": self.source_frames,
            "pingpong": self.chunks[-1].start + C.CHUNK_FRAMES > self.source_frames,
            "latent_shape": list(self.latent_shape()),
            "tokens_per_call": self.tokens_per_call,
            "chunk_table": [
                {"chunk": c.index, "out_frames": [c.out_start, c.out_start + c.keep], "seed": c.seed} for c in self.chunks
            ],
            "estimate": estimate(self),
            "latent_hw": [h, w],
        }


def make_plan(frames: int, width: int, height: int, source_frames: int, steps: int = C.STEPS, seed: int = 0) -> ChunkPlan:
    """Build the plan for `frames` output frames driven by a `source_frames`-long pose video."""
    if width % C.SIZE_MULTIPLE or height % C.SIZE_MULTIPLE:
        raise ValueError(f"size {width}x{height} must be a multiple of {C.SIZE_MULTIPLE} in both dimensions")
    if source_frames < 1:
        raise ValueError("the driving video has no frames")
    n = num_chunks_for(frames)
    chunks = []
    written = 0
    for c in range(n):
        start = c * C.STRIDE_FRAMES
        drop = 0 if c == 0 else C.OVERLAP_FRAMES
        keep = min(C.CHUNK_FRAMES - drop, frames - written)
        written += keep
        driving = tuple(pingpong(start + i, source_frames) for i in range(C.CHUNK_FRAMES))
        chunks.append(ChunkSpec(c, start, driving, drop, keep, seed + C.SEED_STRIDE * c))
    assert written == frames, (written, frames)
    return ChunkPlan(frames, width, height, source_frames, steps, seed, tuple(chunks))


def plan_for(cfg: RunConfig, source_frames: int) -> ChunkPlan:
    """The plan of a run: cfg's length, size, steps and seed, ping-ponging over `source_frames` control frames."""
    return make_plan(cfg.frames, cfg.width, cfg.height, max(1, source_frames), cfg.steps, cfg.seed)


def driving_frames_read(plan: ChunkPlan) -> int:
    """How many driving (pose/face) frames from the start the plan reads: every chunk reads all 77 of its
    frames, the trimmed last one too, so this is the requested length rounded up to whole chunks, or the
    whole driving video when the plan ping-pongs through it."""
    return max(max(c.driving) for c in plan.chunks) + 1


# --- rough time estimate for --dry-run (no torch); memory comes from animate_cli.models.footprint --------
# 14B-class DiT: 40 blocks, width 5120, ffn 13824 (the FLOPs of the block linears and self-attention).
DIT_BLOCK_PARAMS = 40 * (4 * 5120 * 5120 * 2 + 2 * 5120 * 13824)  # self+cross attn q,k,v,o and the FFN


def estimate(plan: ChunkPlan) -> dict:
    tokens = plan.tokens_per_call
    flops_step = 2 * DIT_BLOCK_PARAMS * tokens + 40 * 4 * tokens * tokens * 5120
    step_s = flops_step / (C.ASSUMED_TFLOPS * 1e12)
    total_s = step_s * plan.steps * len(plan.chunks) * 1.05  # + ~5% VAE encode/decode and CLIP
    from animate_cli.models import footprint

    return {  # all resident, bf16; --dry-run replaces it by the mode a run would use (follow_mode)
        "vram_gib": round(footprint.predict(plan.width, plan.height, "none", "bf16").gpu_gib, 1),
        "offload": "none",
        "weights_dtype": "bf16",
        "dit_tflop_per_step": round(flops_step / 1e12, 1),
        "seconds_per_step": round(step_s, 2),
        "total_minutes": round(total_s / 60, 1),
        "assumes": f"one GPU at {C.ASSUMED_TFLOPS:.0f} TFLOP/s effective bf16",
    }


def follow_mode(est: dict, mode: dict | None) -> dict:
    """`estimate` for the memory mode a run would use (device.estimate_mode): its predicted peak VRAM, and the DiT
    step slowed by its relative speed (block transfers, FP8 casts). Unchanged (all resident, bf16) without one."""
    if mode is None:
        return est
    speed = mode["relative_speed"] or 1.0
    return {**est, "vram_gib": round(mode["gpu_gib"], 1), "seconds_per_step": round(est["seconds_per_step"] / speed, 2),
            "total_minutes": round(est["total_minutes"] / speed, 1), "offload": mode["offload"],
            "weights_dtype": mode["weights_dtype"], "memory_mode_why": mode["why"]}  # fmt: skip
