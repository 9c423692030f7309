"""`everanimate run`, start to finish. The one place where the stages meet:

    check inputs -> weights -> device -> pose -> plan -> resume state -> models + prompt
    -> identity -> for each chunk: encode pose/face/CLIP, denoise in latent space, decode once into
       the chunk's segment, (after chunk 0) build the identity memory, save state
    -> concat segments + driving audio -> output mp4

Host memory does not grow with video length: a chunk's 77 pose/face frames are read for that
chunk only, decoded frames go straight into an H.264 segment writer, and only the few frames the
next chunk needs (last frame for CLIP, the sampled memory frames of chunk 0) are kept.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animate_cli import config as C
from animate_cli import media
from animate_cli.config import RunConfig
from animate_cli.errors import BadInputError, OutputExistsError
from animate_cli.plan import ChunkPlan, make_plan
from animate_cli.progress import NullReporter, Reporter


@dataclass(frozen=True)
class CheckedInputs:
    """Validated inputs, found without loading any model (used by --dry-run too)."""

    ref: np.ndarray  # uint8 [H0, W0, 3] as loaded
    views: tuple[np.ndarray, ...]
    driving: media.VideoInfo
    pose_frames: int | None  # frames in --pose-video (None: extracted later)


@dataclass
class RunSummary:
    output: Path
    frames: int
    fps: int
    size: tuple[int, int]
    chunks: int
    resumed_from_chunk: int
    lora_modules: int
    device: str
    timings_s: dict = field(default_factory=dict)
    pose: dict = field(default_factory=dict)


def check_inputs(cfg: RunConfig) -> CheckedInputs:
    """Every bad input a user can give, reported before anything heavy happens."""
    if cfg.out.exists() and not cfg.overwrite:
        raise OutputExistsError(f"output {cfg.out} already exists", hint="pass --overwrite to replace it, or choose --out")
    if not cfg.out.parent.is_dir():
        raise BadInputError(f"output folder {cfg.out.parent} does not exist")
    if len(cfg.ref_views) > C.MAX_REF_VIEWS:
        raise BadInputError(
            f"at most {C.MAX_REF_VIEWS} --ref-view images (identity memory has {C.ANCHORS} slots, one is the reference)"
        )
    ref = media.load_image(cfg.ref)
    views = tuple(media.load_image(v) for v in cfg.ref_views)
    driving = media.probe(cfg.driving)
    if cfg.frames < 1:
        raise BadInputError("the requested length is zero frames")
    pose_frames = None
    if (cfg.pose_video is None) != (cfg.face_video is None):
        raise BadInputError("--pose-video and --face-video must be given together")
    if cfg.pose_video is not None:
        pose_frames = media.count_frames(cfg.pose_video)
        face_frames = media.count_frames(cfg.face_video)
        if pose_frames == 0:
            raise BadInputError(f"pose video {cfg.pose_video} has no frames")
        if pose_frames != face_frames:
            raise BadInputError(f"pose video has {pose_frames} frames but face video has {face_frames}; they must match")
    elif driving.approx_frames == 0:
        raise BadInputError(f"driving video {cfg.driving} has no frames")
    return CheckedInputs(ref, views, driving, pose_frames)


def _weights_identity(base: Path, loras: list[tuple[Path, float]]) -> dict:
    """Cheap identity of the weights for the resume fingerprint: configs and file names/sizes."""
    files = sorted((str(p.relative_to(base)), p.stat().st_size) for p in base.rglob("*") if p.is_file())
    cfg_text = (base / "transformer" / "config.json").read_text() if (base / "transformer" / "config.json").exists() else ""
    return {
        "files": files,
        "transformer_config": cfg_text,
        "loras": [(Path(p).name, Path(p).stat().st_size, s) for p, s in loras],
    }


def _is_tiny(base: Path) -> bool:
    try:
        return json.loads((base / "transformer" / "config.json").read_text()).get("num_layers", 40) < 40
    except (OSError, ValueError):
        return False


def run(cfg: RunConfig, reporter: Reporter | None = None, *, fresh: bool = False,
        on_chunk_done: Callable[[int], None] | None = None) -> RunSummary:  # fmt: skip
    """Produce cfg.out. `on_chunk_done(c)` is called after chunk c's state is saved (tests use it to interrupt)."""
    reporter = reporter or NullReporter()
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    # 1. Inputs, weights and device, before any model is loaded.
    checked = check_inputs(cfg)
    from animate_cli import weights

    paths = weights.resolve(
        cfg.weights_dir, cfg.resolution, need=("base", "lora") if cfg.pose_video else ("base", "lora", "pose")
    )
    loras = [(paths.lora, 1.0), *((spec.path, spec.scale) for spec in cfg.loras)]
    for p, _ in loras:
        if not Path(p).is_file():
            raise BadInputError(f"LoRA file not found: {p}")
    from animate_cli import device as devmod

    tiny = _is_tiny(paths.base)
    plan_probe = make_plan(cfg.frames, cfg.width, cfg.height, max(1, checked.pose_frames or 1), cfg.steps, cfg.seed)
    need = None if tiny else plan_probe.to_dict()["estimate"]["vram_gib"]
    dev = devmod.choose(cfg.device, cfg.dtype, allow_cpu=tiny or cfg.device == "cpu", need_gib=need)
    if dev.device == "cpu" and not tiny:
        reporter.log("warning: running the 14B model on the CPU; expect days per chunk")

    # 2. Pose and face videos: given, or extracted once and cached next to the resume state.
    state_dir = cfg.resume_dir
    if fresh and state_dir.exists():
        shutil.rmtree(state_dir)
    pose_info: dict = {}
    if cfg.pose_video is not None:
        pose_video, face_video, source_frames = cfg.pose_video, cfg.face_video, checked.pose_frames
    else:
        from animate_cli.pose import PoseSettings, cached_extract_pose

        settings = PoseSettings(width=cfg.width, height=cfg.height, fps=float(C.FPS), device="cpu")
        res = cached_extract_pose(cfg.driving, cfg.out.parent / ".everanimate-pose-cache", settings,
                                  paths.det_onnx, paths.pose_onnx, reporter=reporter)  # fmt: skip
        pose_video, face_video, source_frames = res.pose_video, res.face_video, res.frames
        pose_info = {"frames": res.frames, "detected": res.detected, "interpolated": res.interpolated, "empty": res.empty,
                     "cache": str(res.pose_video.parent), "reused": bool(res.cached)}  # fmt: skip
    timings["pose"] = time.monotonic() - t0
    plan = make_plan(cfg.frames, cfg.width, cfg.height, source_frames, cfg.steps, cfg.seed)

    # 3. Resume state: continue a matching run, refuse a mismatching one.
    from animate_cli import resume

    settings = {
        "ref": resume.file_digest(cfg.ref), "views": [resume.file_digest(v) for v in cfg.ref_views],
        "pose_video": resume.file_digest(pose_video), "face_video": resume.file_digest(face_video),
        "size": [cfg.width, cfg.height], "steps": cfg.steps, "seed": cfg.seed, "prompt": cfg.prompt, "dtype": cfg.dtype,
        "device": dev.device.split(":")[0], "side_by_side": cfg.side_by_side, "weights": _weights_identity(paths.base, loras),
        "layout": [C.CHUNK_FRAMES, C.OVERLAP_FRAMES, C.ANCHORS, C.SHIFT, C.SEED_STRIDE, C.MEMORY_SEED_OFFSET],
    }  # fmt: skip
    state = resume.load_state(state_dir, settings)
    fingerprint = resume.fingerprint(settings)
    start_chunk = min(state.next_chunk, len(plan.chunks)) if state else 0

    # 4. The prompt, encoded once (before the DiT loads, so umT5 and the DiT never share the GPU), then
    #    the models, only when there is something to generate or re-decode.
    t = time.monotonic()
    from animate_cli.models import load_models

    text = None
    reporter.stage("load", 2, "prompt + models")
    if start_chunk < len(plan.chunks):
        text = _prompt_embedding(state_dir, paths.base, cfg.prompt, dev)
    reporter.advance("load")
    missing = [s.index for s in plan.chunks if not resume.segment_path(state_dir, s.index, s.keep).exists()]
    models = None
    if start_chunk < len(plan.chunks) or missing:
        models = load_models(paths.base, loras, dev.device, dev.dtype)
    reporter.advance("load")
    timings["load"] = time.monotonic() - t

    # 5. Roll out the remaining chunks.
    t = time.monotonic()
    if start_chunk < len(plan.chunks):
        _rollout(cfg, plan, checked, models, text, pose_video, face_video, state, start_chunk, fingerprint, settings,
                 state_dir, reporter, on_chunk_done)  # fmt: skip
    timings["rollout"] = time.monotonic() - t

    # 6. The output: every chunk's segment (re-decoding a finished chunk whose kept length changed), then audio.
    t = time.monotonic()
    segments = [_ensure_segment(cfg, plan, c, models, pose_video, state_dir) for c in range(len(plan.chunks))]
    audio = cfg.driving if (cfg.audio and checked.driving.has_audio) else None
    reporter.stage("mux", 1, "writing mp4")
    media.concat_with_audio(segments, cfg.out, plan.frames, C.FPS, audio)
    reporter.advance("mux")
    timings["mux"] = time.monotonic() - t
    timings["total"] = time.monotonic() - t0
    return RunSummary(cfg.out, plan.frames, C.FPS, (cfg.width, cfg.height), len(plan.chunks), start_chunk,
                      models.lora_modules if models else 0, dev.name, {k: round(v, 3) for k, v in timings.items()}, pose_info)  # fmt: skip


def _prompt_embedding(state_dir: Path, base: Path, prompt: str, dev):
    """[1, 512, text_dim] prompt embedding, cached in the state folder so a resumed run skips umT5."""
    from safetensors.torch import load_file, save_file

    from animate_cli.models import encode_prompt

    cache = state_dir / "prompt.safetensors"
    if cache.exists():
        return load_file(str(cache))["text"]
    text = encode_prompt(base, prompt, dev.device, dev.dtype, C.TEXT_TOKENS)
    state_dir.mkdir(parents=True, exist_ok=True)
    save_file({"text": text.contiguous()}, str(cache))
    return text


def _read_chunk_frames(video: Path, indices, fps: float, width: int, height: int) -> np.ndarray:
    """uint8 [77, height, width, 3]: the chunk's driving frames, centre-cropped/resized if needed."""
    frames = media.read_frames_at(video, indices, fps)
    return np.stack([media.center_crop_resize(f, width, height) for f in frames])


def _rollout(cfg, plan: ChunkPlan, checked, models, text, pose_video, face_video, state, start_chunk, fingerprint,
             settings, state_dir, reporter, on_chunk_done):  # fmt: skip
    """The chunk loop. Reads top to bottom as the method: condition, denoise, carry the last latent, decode once."""
    import torch

    from animate_cli import encode, memory, parallel, resume
    from animate_cli.rollout import ChunkInputs, chunk_noise

    tr, vae = models.transformer, models.vae
    face_size = tr.config.motion_encoder_size
    pose_fps = media.probe(pose_video).fps

    # Identity: reference (and extra views) fitted to the output size, each a single-frame latent.
    ref_frame = media.center_crop_resize(checked.ref, cfg.width, cfg.height)
    identity = memory.IdentityInputs(
        ref_latent=encode.vae_encode(vae, ref_frame[None]),
        view_latents=[encode.vae_encode(vae, media.center_crop_resize(v, cfg.width, cfg.height)[None]) for v in checked.views],
        ref_clip=encode.clip_embed(models.image_encoder, ref_frame),
    )
    picks = memory.pick_memory_frames(cfg.seed, len(checked.views))

    if state is None:
        motion, mem, last_frame = None, None, None
    else:
        motion, mem, last_frame = state.last_latent, state.memory, state.last_frame.numpy()

    reporter.stage("chunks", len(plan.chunks), "chunks")
    reporter.advance("chunks", start_chunk)
    for spec in plan.chunks[start_chunk:]:
        c = spec.index
        # 1. Conditioning of this chunk: pose latents, face crops, CLIP image, anchors, motion latent.
        pose_px = _read_chunk_frames(pose_video, spec.driving, pose_fps, cfg.width, cfg.height)
        face_px = _read_chunk_frames(face_video, spec.driving, pose_fps, face_size, face_size)
        inputs = ChunkInputs(
            anchors=identity.chunk0_anchors() if c == 0 else mem,
            motion=None if c == 0 else motion,
            pose=encode.vae_encode(vae, pose_px),
            face=encode.face_pixels(face_px, face_size, models.device, models.dtype),
            clip=identity.ref_clip if c == 0 else encode.clip_embed(models.image_encoder, last_frame),
            text=text,
            noise=chunk_noise(plan.latent_shape(), spec.seed),
        )

        # 2. Denoise all 24 slots (on every rank, with several GPUs); keep the 20 generated latents.
        #    The last one conditions chunk c+1 as is.
        reporter.stage("steps", plan.steps, f"chunk {c + 1}/{len(plan.chunks)}")
        generated = parallel.denoise(tr, inputs, plan.steps, C.SHIFT, on_step=lambda _j: reporter.advance("steps"))
        motion = generated[:, :, -C.MOTION_LATENTS :].clone()
        resume.save_chunk_latents(state_dir, c, generated.to(models.dtype))

        # 3. Decode once, streaming into this chunk's segment; keep only what later chunks need.
        sampled: dict[int, np.ndarray] = {}
        for i, frame in enumerate(_decode_into_segment(cfg, spec, generated, vae, pose_px, state_dir, reporter)):
            if c == 0 and i in picks:
                sampled[i] = frame
            last_frame = frame

        # 4. After chunk 0: the fixed identity memory [views | sampled frames | reference].
        if c == 0:
            mem = memory.build_memory(identity, [encode.vae_encode(vae, sampled[i][None]) for i in picks])

        # 5. Persist everything needed to continue after this chunk.
        state = resume.RunState(c + 1, fingerprint, motion.float().cpu(), mem.float().cpu(),
                                torch.from_numpy(np.ascontiguousarray(last_frame)), settings)  # fmt: skip
        resume.save_state(state_dir, state)
        reporter.advance("chunks")
        if on_chunk_done is not None:
            on_chunk_done(c)


def _decode_into_segment(cfg, spec, latents, vae, pose_px, state_dir, reporter):
    """Decode a chunk's 20 latents (fresh causal cache) into 77 frames, write frames drop..drop+keep
    to the chunk's segment (next to their pose frame with --side-by-side), and yield every frame."""
    from animate_cli import resume
    from animate_cli.decode import iter_decode_frames

    seg = resume.segment_path(state_dir, spec.index, spec.keep)
    seg.parent.mkdir(parents=True, exist_ok=True)
    width = cfg.width * (2 if cfg.side_by_side else 1)
    reporter.stage("decode", C.CHUNK_FRAMES, f"decode {spec.index + 1}")
    with media.VideoWriter(seg, width, cfg.height, C.FPS) as writer:
        for i, frame in enumerate(iter_decode_frames(vae, latents)):
            if spec.drop <= i < spec.drop + spec.keep:
                writer.write(np.concatenate([frame, pose_px[i]], axis=1) if cfg.side_by_side else frame)
            reporter.advance("decode")
            yield frame


def _ensure_segment(cfg, plan: ChunkPlan, c: int, models, pose_video, state_dir) -> Path:
    """Chunk c's segment with the plan's kept length; re-decoded from its saved latents when the
    length changed since it was written (a run extended or shortened after finishing)."""
    from animate_cli import resume

    spec = plan.chunks[c]
    seg = resume.segment_path(state_dir, c, spec.keep)
    if seg.exists():
        return seg
    latents = resume.load_chunk_latents(state_dir, c).to(models.device)
    pose_px = None
    if cfg.side_by_side:
        pose_px = _read_chunk_frames(pose_video, spec.driving, media.probe(pose_video).fps, cfg.width, cfg.height)
    for _ in _decode_into_segment(cfg, spec, latents, models.vae, pose_px, state_dir, NullReporter()):
        pass
    return seg
