"""The chunk loop (docs/rollout.md): condition, denoise in latent space, carry the last latent, decode once.

    run_chunks(ctx) -> laps          # every chunk from ctx.resume.start_chunk to the end of ctx.plan
    ensure_segment(ctx, c) -> path   # chunk c's H.264 segment, re-decoded from its saved latents if needed

A chunk is 77 frames = 20 generated latents plus 4 conditioning slots. The last generated latent of
chunk c conditions chunk c+1 as is: nothing is decoded and re-encoded to carry over. Each chunk's
latents are decoded exactly once, and the kept frames go to the segment writer's thread. Host memory
does not grow with the video: only the frames the next chunk needs are kept (the last frame for CLIP;
chunk 0's sampled memory frames).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animate_cli import config as C
from animate_cli import media
from animate_cli.progress import NullReporter, Reporter
from animate_cli.rollout.context import RunContext

if TYPE_CHECKING:
    import torch

    from animate_cli.rollout.denoise import ChunkInputs
    from animate_cli.rollout.memory import IdentityInputs
    from animate_cli.rollout.plan import ChunkSpec
    from animate_cli.rollout.resume import RunState
    from animate_cli.rollout.timing import Laps


@dataclass
class Carry:
    """What a chunk hands to the next: its last latent, the identity memory (fixed after chunk 0), its last frame."""

    motion: torch.Tensor | None = None  # [1, 16, 1, h, w]: the motion latent of the next chunk
    memory: torch.Tensor | None = None  # [1, 16, K, h, w]
    last_frame: np.ndarray | None = None  # uint8 [H, W, 3]: the CLIP input of the next chunk

    @classmethod
    def resumed(cls, state: RunState | None) -> Carry:
        if state is None:
            return cls()
        return cls(state.last_latent, state.memory, state.last_frame.numpy())


def run_chunks(ctx: RunContext) -> list[dict]:
    """Roll out the remaining chunks of ctx.plan; returns each chunk's laps (seconds per step, see timing)."""
    import torch

    from animate_cli.rollout import distributed, resume
    from animate_cli.rollout.timing import Laps

    plan, models, reporter = ctx.plan, ctx.models, ctx.reporter
    sync = torch.cuda.synchronize if models.device.type == "cuda" else None
    identity = identity_inputs(ctx)
    carry = Carry.resumed(ctx.resume.state)
    reporter.stage("chunks", len(plan.chunks), "chunks")
    reporter.advance("chunks", ctx.resume.start_chunk)
    chunk_times = []
    for spec in plan.chunks[ctx.resume.start_chunk :]:
        laps = Laps(sync)
        # 1. Conditioning of this chunk: pose latents, face crops, CLIP image, anchors, motion latent.
        inputs, pose_px = chunk_inputs(ctx, spec, identity, carry, laps)
        # 2. Denoise all 24 slots (on every rank, with several GPUs); keep the 20 generated latents.
        #    The last one conditions chunk c+1 as is.
        reporter.stage("steps", plan.steps, f"chunk {spec.index + 1}/{len(plan.chunks)}")
        generated = distributed.denoise(models.transformer, inputs, plan.steps, C.SHIFT,
                                        on_step=lambda _j: reporter.advance("steps"))  # fmt: skip
        laps.mark("dit")
        carry.motion = generated[:, :, -C.MOTION_LATENTS :].clone()
        resume.save_chunk_latents(ctx.resume.state_dir, spec.index, generated.to(models.dtype))
        laps.mark("save")
        # 3-4. Decode once into the segment; after chunk 0, the fixed identity memory.
        decode_and_remember(ctx, spec, generated, pose_px, carry, identity, laps)
        # 5. Persist everything needed to continue after this chunk (its segment may still be encoding:
        #    until it is renamed, a resumed run re-decodes it from the latents saved above).
        save_carry(ctx, spec.index, carry)
        laps.mark("save")
        chunk_times.append({"chunk": spec.index, **laps.s})
        reporter.advance("chunks")
        if ctx.on_chunk_done is not None:
            ctx.on_chunk_done(spec.index)
    return chunk_times


def identity_inputs(ctx: RunContext) -> IdentityInputs:
    """The reference (and extra views) fitted to the canvas (cfg.fit: pad/crop/stretch), each a single-frame
    latent, the reference's CLIP states, and which of chunk 0's frames join the identity memory."""
    from animate_cli.rollout import encode, memory

    cfg, vae = ctx.cfg, ctx.models.vae
    ref_frame = media.fit_image(ctx.inputs.ref, cfg.width, cfg.height, cfg.fit)
    return memory.IdentityInputs(
        ref_latent=encode.vae_encode(vae, ref_frame[None]),
        view_latents=[encode.vae_encode(vae, media.fit_image(v, cfg.width, cfg.height, cfg.fit)[None]) for v in ctx.inputs.views],
        ref_clip=encode.clip_embed(ctx.models.image_encoder, ref_frame),
        picks=memory.pick_memory_frames(cfg.seed, len(ctx.inputs.views)),
    )  # fmt: skip


def chunk_inputs(ctx: RunContext, spec: ChunkSpec, identity: IdentityInputs, carry: Carry,
                 laps: Laps) -> tuple[ChunkInputs, np.ndarray]:  # fmt: skip
    """What the DiT is conditioned on for chunk `spec`, and the chunk's pose frames (for --side-by-side)."""
    from animate_cli.rollout import encode
    from animate_cli.rollout.denoise import ChunkInputs, chunk_noise

    cfg, models, c = ctx.cfg, ctx.models, spec.index
    face_size = models.transformer.config.motion_encoder_size
    pose_px = read_chunk_frames(ctx.control.pose, spec.driving, (cfg.width, cfg.height))
    face_px = read_chunk_frames(ctx.control.face, spec.driving, (face_size, face_size))
    laps.mark("frame_reads")
    pose_latents = encode.vae_encode(models.vae, pose_px)
    laps.mark("vae_encode")
    clip = identity.ref_clip if c == 0 else encode.clip_embed(models.image_encoder, carry.last_frame)
    laps.mark("clip")
    inputs = ChunkInputs(
        anchors=identity.chunk0_anchors() if c == 0 else carry.memory,
        motion=None if c == 0 else carry.motion,
        pose=pose_latents,
        face=encode.face_pixels(face_px, face_size, models.device, models.dtype),
        clip=clip,
        text=ctx.text,
        noise=chunk_noise(ctx.plan.latent_shape(), spec.seed),
    )
    laps.mark("face_noise")
    return inputs, pose_px


def decode_and_remember(ctx: RunContext, spec: ChunkSpec, generated: torch.Tensor, pose_px: np.ndarray, carry: Carry,
                        identity: IdentityInputs, laps: Laps) -> None:  # fmt: skip
    """Decode the chunk once, handing its kept frames to the segment writer thread; keep only what later chunks
    need (the last frame; after chunk 0, the identity memory built from its sampled frames)."""
    from animate_cli.rollout import encode, memory

    sampled: dict[int, np.ndarray] = {}
    waited = ctx.writer.wait_s
    for i, frame in enumerate(decode_into_segment(ctx, spec, generated, pose_px, ctx.reporter)):
        if spec.index == 0 and i in identity.picks:
            sampled[i] = frame
        carry.last_frame = frame
    laps.mark("decode")
    laps.move("decode", "writer_wait", ctx.writer.wait_s - waited)
    if spec.index == 0:  # the fixed identity memory [views | sampled frames | reference]
        latents = [encode.vae_encode(ctx.models.vae, sampled[i][None]) for i in identity.picks]
        carry.memory = memory.build_memory(identity, latents)
        laps.mark("vae_encode")


def save_carry(ctx: RunContext, chunk: int, carry: Carry) -> None:
    """The resume state after `chunk`: what the next chunk needs, under the run's fingerprint."""
    import torch

    from animate_cli.rollout import resume

    state = resume.RunState(chunk + 1, ctx.resume.fingerprint, carry.motion.float().cpu(), carry.memory.float().cpu(),
                            torch.from_numpy(np.ascontiguousarray(carry.last_frame)), ctx.resume.settings)  # fmt: skip
    resume.save_state(ctx.resume.state_dir, state)


def read_chunk_frames(video: Path, indices: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    """uint8 [77, height, width, 3]: the chunk's control frames, centre-cropped/resized to size (w, h).

    `indices` count output frames (C.FPS): index k shows `video` at k / C.FPS s from its first frame, by its
    timestamps (media.timeline), so pose and face videos of any frame rate, or a variable one, stay in time."""
    src = media.probe(video).timeline.source_at(np.asarray(indices, np.int64), float(C.FPS))
    frames = media.read_frames_at(video, src.tolist())
    return np.stack([media.center_crop_resize(f, size[0], size[1]) for f in frames])


def decode_into_segment(ctx: RunContext, spec: ChunkSpec, latents: torch.Tensor, pose_px: np.ndarray | None,
                        reporter: Reporter) -> Iterator[np.ndarray]:  # fmt: skip
    """Decode a chunk's 20 latents (fresh causal cache) into 77 frames, queue frames drop..drop+keep for
    the chunk's segment on the writer (next to their pose frame with --side-by-side), and yield every frame."""
    from animate_cli.media.files import make_dirs
    from animate_cli.rollout import resume
    from animate_cli.rollout.decode import iter_decode_frames

    cfg = ctx.cfg
    seg = resume.segment_path(ctx.resume.state_dir, spec.index, spec.keep)
    make_dirs(seg.parent)  # one line (exit 6) when the state folder is read-only or gone; never re-created
    reporter.stage("decode", C.CHUNK_FRAMES, f"decode {spec.index + 1}")
    ctx.writer.open(seg, cfg.frame_width, cfg.height, C.FPS, spec.index)
    for i, frame in enumerate(iter_decode_frames(ctx.models.vae, latents)):
        if spec.drop <= i < spec.drop + spec.keep:
            ctx.writer.write(np.concatenate([frame, pose_px[i]], axis=1) if cfg.side_by_side else frame)
        reporter.advance("decode")
        yield frame
    ctx.writer.close()


def ensure_segment(ctx: RunContext, c: int) -> Path:
    """Chunk c's segment with the plan's kept length; re-decoded from its saved latents when the length
    changed since it was written (a run extended or shortened after finishing), the run stopped before
    its writer renamed it, or it did not read back whole on resume (its damaged file was removed).
    The path is complete on disk only after `ctx.writer.wait()`."""
    from animate_cli.rollout import resume

    spec = ctx.plan.chunks[c]
    seg = resume.segment_path(ctx.resume.state_dir, c, spec.keep)
    if seg.exists():
        return seg
    latents = resume.load_chunk_latents(ctx.resume.state_dir, c).to(ctx.models.device)
    pose_px = None
    if ctx.cfg.side_by_side:
        pose_px = read_chunk_frames(ctx.control.pose, spec.driving, (ctx.cfg.width, ctx.cfg.height))
    for _ in decode_into_segment(ctx, spec, latents, pose_px, NullReporter()):
        pass
    return seg
