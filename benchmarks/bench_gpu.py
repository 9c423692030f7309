"""GPU benchmark of the EverAnimate rollout on full-size random weights (`make bench-gpu`; issue 5).

Builds Wan2.2-Animate-14B's transformer, the Wan 2.1 VAE and the ViT-H/14 CLIP encoder from their
real configs (embedded below, with sources) with random bf16 weights -- nothing is downloaded --
and times the library's own code path, not a copy of it:

    per chunk   encode.vae_encode (77 pose frames), encode.face_pixels, encode.clip_embed,
                rollout.chunk_noise, rollout.denoise_chunk (per step, via on_step),
                decode.iter_decode_frames (streamed decode of the 20 latents to 77 uint8 frames)
    per run     reference encode + CLIP, identity memory (memory.build_memory) after chunk 0

Only `--steps` DiT steps (default 3) are timed per chunk; the chunk's DiT time is extrapolated to
the real 20 steps as setup + 20 x median step (the report says so in `extrapolation`). Beside it,
diffusers' stock `WanAnimatePipeline` segment loop runs on the same modules and the same number of
output frames (it decodes and re-encodes the carried frame between segments), with the same
extrapolation; the ratio ours/stock is per output second. The prompt is a random [1, 512, 4096]
embedding passed to both (umT5 is excluded: both encode the prompt once per run).

FLOPs per DiT step: `dit_flops` from the config and token count (the issue's "~2.1 PFLOP per step
at 480p over 37,440 tokens"), cross-checked by torch's FlopCounterMode on a meta-device copy of the
model (no memory, no device time). The bf16 matmul peak is measured in the same run (8192^3).

Memory/speed axes (issue 8): `--offload none,blocks`, `--weights-dtype bf16,fp8`, `--attention auto,sdpa,
flash,sage` and `--compile` (each combination also compiled). The first combination runs the full
report above; every other one is set up on freshly built models through `runtime.prepare` (as
`models.load_models` does after loading; here the random DiT is built in bf16 and cast afterwards, with no
LoRA, where the loader streams the checkpoint in already cast) and times one chunk at the first resolution: s/step and peak VRAM per
combination in `combos`. A combination the machine cannot run (blocks or flash on a CPU, an
uninstalled attention package) gets its error in its row.

On a CPU (no CUDA) it runs the tiny configs of `tests/support/tiny_models.py` at tiny sizes:
a check that the harness works end to end, not a performance figure. VRAM fields are then null and
peak RSS is reported instead; goals are judged (pass/fail) only for the full config on CUDA.

Writes one JSON report (default benchmarks/results/<utc>-<commit>-<device>-<config>.json).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from full_configs import FULL_CLIP, FULL_TRANSFORMER, FULL_VAE, IMAGE_TOKENS

from animate_cli import config as C

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the tiny model builders (not in the package)

# --- full-size configs ---------------------------------------------------------------------------
# One shared copy (with sources) in benchmarks/full_configs.py; the memory model uses the same.
# Tiny CLIP as in tests/support/tiny_models.write_tiny_base (image_dim 4 of the tiny transformer).
TINY_CLIP = dict(hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=4,
                 intermediate_size=16, patch_size=1)  # fmt: skip
TINY_SIZES = {"480p": (64, 32), "720p": (96, 48)}  # (W, H), multiples of 16; the CPU check only

PEAK_GOALS = {"dit_fraction_of_peak": 0.60, "outside_dit_fraction": 0.05, "ours_over_stock": 0.90,
              "vram_no_offload_gb": 60.0, "vram_group_offload_gb": 24.0}  # fmt: skip


# --- FLOPs ---------------------------------------------------------------------------------------
def dit_tokens(cfg: dict, width: int, height: int, slots: int = C.LATENT_SLOTS) -> int:
    p_t, p_h, p_w = cfg["patch_size"]
    h, w = height // C.VAE_STRIDE_S, width // C.VAE_STRIDE_S
    return (slots // p_t) * (h // p_h) * (w // p_w)


def dit_flops(cfg: dict, width: int, height: int, slots: int = C.LATENT_SLOTS,
              text_tokens: int = C.TEXT_TOKENS, image_tokens: int = IMAGE_TOKENS) -> dict:  # fmt: skip
    """Model FLOPs of one DiT forward (one Euler step, no CFG), by part. A multiply-add counts 2.

    Per block over L tokens, width d: self-attn q,k,v,o 8d^2 L; cross-attn q,o 4d^2 L and its k,v on
    the 512 text + 257 image context tokens (image k,v through add_k/add_v); FFN 4 d ffn L; attention
    scores + weighted sum 4 L^2 d (self) and 4 L (512 + 257) d (cross). Every `inject_face_latents_blocks`-th
    block adds a face-adapter cross-attention (q, out over L; k, v over 5 face tokens per latent frame).
    Left out (FlopCounterMode counts them; see `counted_flops`): patch/pose embeddings, the motion
    encoder's convolutions on 77 face frames (~3 TFLOP at 512 px, run again every step), the output head.
    """
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    f, n = cfg["ffn_dim"], cfg["num_layers"]
    image_dim = cfg.get("added_kv_proj_dim") or d
    length = dit_tokens(cfg, width, height, slots)
    ctx = text_tokens + image_tokens
    face_blocks = n // cfg["inject_face_latents_blocks"]
    face_tokens = slots * (cfg["face_encoder_num_heads"] + 1)
    parts = {
        "linear": n * length * (8 * d * d + 4 * d * d + 4 * d * f),
        "linear_context": n * 4 * d * (d * text_tokens + image_dim * image_tokens),
        "self_attention": n * 4 * length * length * d,
        "cross_attention": n * 4 * length * ctx * d,
        "face_adapter": face_blocks * (4 * d * d * (length + face_tokens) + 4 * length * (cfg["face_encoder_num_heads"] + 1) * d),
    }  # fmt: skip
    return {"tokens": length, "total": sum(parts.values()), "parts": parts}


def counted_flops(cfg: dict, width: int, height: int, face_frames: int = C.CHUNK_FRAMES) -> int:
    """FLOPs of one forward counted by torch's FlopCounterMode on a meta-device model (no memory used).

    Runs through `rollout.everanimate_layout`, i.e. the K-anchor layout our chunks use.
    """
    import torch
    from diffusers import WanAnimateTransformer3DModel
    from torch.utils.flop_counter import FlopCounterMode

    from animate_cli.rollout.denoise import everanimate_layout

    with torch.device("meta"):  # fp32 on meta: FLOPs do not depend on the dtype, and nothing is cast
        tr = WanAnimateTransformer3DModel(**cfg)
    h, w, k, s = height // C.VAE_STRIDE_S, width // C.VAE_STRIDE_S, C.ANCHORS, cfg["motion_encoder_size"]
    kw = dict(device="meta", dtype=torch.float32)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), everanimate_layout(tr, k), counter:
        tr(hidden_states=torch.empty(1, cfg["in_channels"], C.LATENT_SLOTS, h, w, **kw),
           timestep=torch.ones(1, device="meta"), encoder_hidden_states=torch.empty(1, C.TEXT_TOKENS, cfg["text_dim"], **kw),
           encoder_hidden_states_image=torch.empty(1, IMAGE_TOKENS, cfg["image_dim"], **kw),
           pose_hidden_states=torch.empty(1, cfg["latent_channels"], C.LATENT_SLOTS - 1, h, w, **kw),
           face_pixel_values=torch.empty(1, 3, face_frames, s, s, **kw), return_dict=False)  # fmt: skip
    return int(counter.get_total_flops())


# --- device helpers ------------------------------------------------------------------------------
def _cuda(device) -> bool:
    return str(device).startswith("cuda")


def sync(device) -> None:
    import torch

    if _cuda(device):
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def phase(device, out: dict, key: str):
    """Wall time of a block, device-synchronised on both ends; peak VRAM of the block on CUDA."""
    import torch

    sync(device)
    if _cuda(device):
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    yield
    sync(device)
    out.setdefault(key, []).append(time.perf_counter() - t)
    if _cuda(device):
        out.setdefault(key + "_peak_bytes", []).append(torch.cuda.max_memory_allocated(device))


class StepClock:
    """Per-step wall times of a denoising loop without touching its code: a forward pre-hook on the
    transformer marks each step's start (after a device sync), and the loop's own step callback
    (`on_step` of denoise_chunk, `callback_on_step_end` of the stock pipeline) marks its end, so a
    step covers the DiT forward plus the sampler update. Time before the first start is setup.
    """

    def __init__(self, transformer, device):
        self.device, self.starts, self.steps = device, [], []
        self._handle = transformer.register_forward_pre_hook(self._start)

    def _start(self, *_):
        sync(self.device)
        self.starts.append(time.perf_counter())

    def end(self, *_):
        sync(self.device)
        self.steps.append(time.perf_counter() - self.starts[-1])
        return {}  # callback_on_step_end must return a dict

    def close(self):
        self._handle.remove()


def matmul_peak(device, dtype, n: int | None = None, iters: int = 20) -> dict:
    """Dense matmul rate on random data (never zeros: they run faster), after warm-up; CUDA events on GPU."""
    import torch

    n = n or (8192 if _cuda(device) else 512)
    g = torch.Generator(device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    if _cuda(device):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(iters):
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        times = []
        for _ in range(max(3, iters // 4)):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "median_s": med, "tflops": 2 * n**3 / med / 1e12}


def build_random(factory, device, dtype, seed: int):
    """A module with random weights, built the way from_pretrained loads one: parameters start on the
    meta device (accelerate.init_empty_weights; buffers such as RoPE tables and blur kernels are real)
    and are then created directly on `device`. A 14B model costs seconds, never a full fp32 init.
    Modules the class keeps in fp32 (`_keep_in_fp32_modules`) stay fp32, as from_pretrained does.
    """
    import torch
    from accelerate import init_empty_weights
    from accelerate.utils import set_module_tensor_to_device

    with init_empty_weights():
        model = factory()
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    torch.manual_seed(seed)
    for name, p in list(model.named_parameters()):
        dt = torch.float32 if any(k in name.split(".") for k in keep) else dtype
        t = torch.empty(p.shape, dtype=dt, device=device)
        if p.ndim >= 2:  # std 1/sqrt(fan_in) keeps activations bounded through 40 blocks
            t.normal_(0.0, float(np.prod(p.shape[1:])) ** -0.5)
        elif name.endswith(("weight", "gamma")):
            t.fill_(1.0)
        else:
            t.zero_()
        set_module_tensor_to_device(model, name, device, value=t, dtype=dt)  # without dtype it casts back to fp32
    return model.to(device).eval().requires_grad_(False)


def build_models(kind: str, device, dtype, transformer: dict | None = None) -> dict:
    """Random transformer, VAE and CLIP of `kind` (full | tiny); `transformer` overrides transformer config keys
    (gpu_check.py builds a 4-block full-width DiT this way)."""
    from diffusers import AutoencoderKLWan, WanAnimateTransformer3DModel
    from support import tiny_models
    from transformers import CLIPVisionConfig, CLIPVisionModel

    tcfg = {**(FULL_TRANSFORMER if kind == "full" else tiny_models.TRANSFORMER_CONFIG), **(transformer or {})}
    vcfg = FULL_VAE if kind == "full" else tiny_models.VAE_CONFIG
    ccfg = FULL_CLIP if kind == "full" else TINY_CLIP
    out, t = {}, time.perf_counter()
    out["transformer"] = build_random(lambda: WanAnimateTransformer3DModel(**tcfg), device, dtype, 0)
    out["vae"] = build_random(lambda: AutoencoderKLWan(**vcfg), device, dtype, 1)
    out["clip"] = build_random(lambda: CLIPVisionModel(CLIPVisionConfig(**ccfg)), device, dtype, 2)
    sync(device)
    out["build_s"] = time.perf_counter() - t
    out["configs"] = {"transformer": tcfg, "vae": vcfg, "clip": ccfg}
    out["params"] = {k: sum(p.numel() for p in out[k].parameters()) for k in ("transformer", "vae", "clip")}
    out["bytes"] = {k: sum(p.numel() * p.element_size() for p in out[k].parameters()) for k in ("transformer", "vae", "clip")}
    return out


# --- our rollout ---------------------------------------------------------------------------------
def bench_ours(models: dict, width: int, height: int, steps: int, chunks: int, real_steps: int, device, dtype, text) -> dict:
    """Time `chunks` chunks of the real per-chunk code path at width x height; see the module docstring."""
    from animate_cli.rollout import encode, memory
    from animate_cli.rollout.decode import iter_decode_frames
    from animate_cli.rollout.denoise import ChunkInputs, chunk_noise, denoise_chunk

    tr, vae, clip = models["transformer"], models["vae"], models["clip"]
    face_size = tr.config.motion_encoder_size
    rng = np.random.default_rng(0)  # random frames, never zeros: they can run faster than real data

    def frames(n, w, h):
        return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)

    latent_shape = (1, 16, C.LATENT_SLOTS, height // C.VAE_STRIDE_S, width // C.VAE_STRIDE_S)
    ref = frames(1, width, height)[0]

    # Warm-up (kernel loading, cuBLAS/cuDNN handles, allocator growth), not timed.
    warm_lat = encode.vae_encode(vae, frames(5, width, height))
    warm = ChunkInputs(anchors=warm_lat[:, :, :1].repeat(1, 1, C.ANCHORS, 1, 1), motion=None,
                       pose=encode.vae_encode(vae, frames(C.CHUNK_FRAMES, width, height)),
                       face=encode.face_pixels(frames(C.CHUNK_FRAMES, face_size, face_size), face_size, device, dtype),
                       clip=encode.clip_embed(clip, ref), text=text, noise=chunk_noise(latent_shape, 0))  # fmt: skip
    denoise_chunk(tr, warm, steps=1)
    for _ in iter_decode_frames(vae, warm_lat):
        pass
    del warm, warm_lat
    gc.collect()

    once: dict = {}
    with phase(device, once, "ref_encode_clip"):
        identity = memory.IdentityInputs(
            ref_latent=encode.vae_encode(vae, ref[None]), view_latents=[], ref_clip=encode.clip_embed(clip, ref)
        )
    picks = memory.pick_memory_frames(0, 0)
    per: dict = {}
    step_times: list[float] = []
    setups: list[float] = []
    motion = mem = last = None
    for c in range(chunks):
        pose_px, face_px = frames(C.CHUNK_FRAMES, width, height), frames(C.CHUNK_FRAMES, face_size, face_size)
        with phase(device, per, "pose_encode"):
            pose = encode.vae_encode(vae, pose_px)
        with phase(device, per, "face_pixels"):
            face = encode.face_pixels(face_px, face_size, device, dtype)
        with phase(device, per, "clip_embed"):
            clip_states = encode.clip_embed(clip, ref if c == 0 else last)
        with phase(device, per, "noise"):
            noise = chunk_noise(latent_shape, c * C.SEED_STRIDE)
        inputs = ChunkInputs(anchors=identity.chunk0_anchors() if c == 0 else mem, motion=motion, pose=pose, face=face,
                             clip=clip_states, text=text, noise=noise)  # fmt: skip
        clock = StepClock(tr, device)
        try:
            with phase(device, per, "dit"):
                t0 = time.perf_counter()
                generated = denoise_chunk(tr, inputs, steps=steps, on_step=clock.end)
        finally:
            clock.close()
        step_times += clock.steps
        setups.append(clock.starts[0] - t0)  # conditioning tensors built and moved to the device
        motion = generated[:, :, -C.MOTION_LATENTS :].clone()
        sampled = {}
        with phase(device, per, "decode"):
            for i, frame in enumerate(iter_decode_frames(vae, generated)):
                if c == 0 and i in picks:
                    sampled[i] = frame
                last = frame
        if c == 0:
            with phase(device, once, "memory_build"):
                mem = memory.build_memory(identity, [encode.vae_encode(vae, sampled[i][None]) for i in picks])
        del inputs, generated, pose, face, noise

    step = statistics.median(step_times)
    setup = statistics.median(setups)
    mean = {k: statistics.mean(v) for k, v in per.items() if not k.endswith("_peak_bytes")}
    other_keys = ("face_pixels", "clip_embed", "noise")
    dit_chunk = setup + real_steps * step
    chunk = dit_chunk + mean["pose_encode"] + mean["decode"] + sum(mean[k] for k in other_keys)
    frames_out = C.CHUNK_FRAMES + (chunks - 1) * C.STRIDE_FRAMES
    total = chunks * chunk + sum(sum(v) for k, v in once.items() if not k.endswith("_peak_bytes"))
    peaks = {k[: -len("_peak_bytes")]: max(v) for k, v in {**per, **once}.items() if k.endswith("_peak_bytes")}
    res = {
        "size": [width, height],
        "tokens": dit_tokens(tr.config, width, height),
        "chunks": chunks,
        "steps_timed_per_chunk": steps,
        "dit_step_s": step,
        "dit_step_s_all": step_times,
        "dit_setup_s": setup,
        "dit_chunk_s": dit_chunk,
        "pose_encode_chunk_s": mean["pose_encode"],
        "decode_chunk_s": mean["decode"],
        "other_chunk_s": sum(mean[k] for k in other_keys) + setup,
        "other_parts_s": {k: mean[k] for k in other_keys} | {"dit_setup": setup},
        "chunk_s": chunk,
        "outside_dit_fraction": (chunk - real_steps * step) / chunk,
        "once_per_run_s": {k: sum(v) for k, v in once.items() if not k.endswith("_peak_bytes")},
        "output_frames": frames_out,
        "total_s": total,
        "s_per_output_second": total / (frames_out / C.FPS),
        "peak_vram_bytes": max(peaks.values()) if peaks else None,
        "peak_vram_bytes_by_phase": peaks or None,
    }
    return res


# --- diffusers' stock pipeline -------------------------------------------------------------------
def bench_stock(models: dict, width: int, height: int, frames_out: int, steps: int, real_steps: int, device, text) -> dict:
    """diffusers' WanAnimatePipeline on the same modules and the same number of output frames.

    Its scheduler is the Hub repo's (UniPC, flow sigmas, shift 5). It gets the reference as a PIL image
    (it encodes and CLIP-embeds it once) and PIL pose/face videos it preprocesses itself; making those
    PIL images is not timed. Steps beyond `steps` are extrapolated per segment with its median step.
    """
    import torch
    from diffusers import UniPCMultistepScheduler, WanAnimatePipeline
    from PIL import Image
    from transformers import CLIPImageProcessor

    tr, vae, clip = models["transformer"], models["vae"], models["clip"]
    size, face = clip.config.image_size, tr.config.motion_encoder_size
    pipe = WanAnimatePipeline(
        tokenizer=None, text_encoder=None, vae=vae, image_encoder=clip, transformer=tr,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=C.SHIFT),
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(1)
    ref = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    pose = [Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for _ in range(frames_out)]
    faces = [Image.fromarray(rng.integers(0, 256, (face, face, 3), dtype=np.uint8)) for _ in range(frames_out)]

    def call(n_frames, n_steps, clock):
        return pipe(image=ref, pose_video=pose[:n_frames], face_video=faces[:n_frames], prompt_embeds=text.to(device, tr.dtype), height=height, width=width,
                    num_inference_steps=n_steps, guidance_scale=1.0, generator=torch.Generator("cpu").manual_seed(0),
                    output_type="np", callback_on_step_end=clock.end).frames[0]  # fmt: skip

    clock = StepClock(tr, device)
    try:
        call(C.CHUNK_FRAMES, 1, clock)  # warm-up: one segment, one step
        clock.starts.clear()
        clock.steps.clear()
        gc.collect()
        if _cuda(device):
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        t0 = time.perf_counter()
        out = call(frames_out, steps, clock)
        sync(device)
        total = time.perf_counter() - t0
    finally:
        clock.close()
    segments = len(clock.steps) // steps
    step = statistics.median(clock.steps)
    total_real = total + segments * (real_steps - steps) * step
    return {
        "output_frames": len(out),
        "segments": segments,
        "steps_timed_per_segment": steps,
        "dit_step_s": step,
        "dit_step_s_all": clock.steps,
        "measured_s": total,
        "total_s": total_real,
        "s_per_output_second": total_real / (len(out) / C.FPS),
        "peak_vram_bytes": torch.cuda.max_memory_allocated(device) if _cuda(device) else None,
        "scheduler": "UniPCMultistepScheduler(flow_prediction, use_flow_sigmas, flow_shift=5)",
    }


# --- memory/speed combinations (issue 8) -----------------------------------------------------------
AXES = {"offload": ("none", "blocks"), "weights_dtype": ("bf16", "fp8"), "attention": ("auto", "sdpa", "flash", "sage")}


def prepare_models(models: dict, combo: dict, device, dtype_name: str) -> dict:
    """Set up `combo` on freshly built models through the library's one set-up path (runtime.prepare,
    as models.load_models does). Returns what was set up; raises UsageError for a combination this
    machine cannot run (blocks or flash on a CPU, an uninstalled attention package)."""
    import torch

    from animate_cli.errors import UsageError
    from animate_cli.models import LoadOptions, runtime
    from animate_cli.models.attention import resolve_attention
    from animate_cli.models.footprint import clip_resident

    if combo["offload"] == "blocks" and not _cuda(device):
        raise UsageError("--offload blocks needs a CUDA device")
    cap = tuple(torch.cuda.get_device_capability(device)) if _cuda(device) else None
    attention = resolve_attention(combo["attention"], str(device), dtype_name, cap)
    if combo["offload"] == "blocks":  # offloaded weights start in host memory, as load_models leaves them
        resident_clip = clip_resident(combo["offload"], combo["weights_dtype"])
        for k in ("transformer", "vae") if resident_clip else ("transformer", "vae", "clip"):
            models[k].to("cpu")
        torch.cuda.empty_cache()
    opts = LoadOptions(device=str(device), dtype=dtype_name, offload=combo["offload"], weights_dtype=combo["weights_dtype"],
                       attention=attention, compile=combo["compile"])  # fmt: skip
    prepared = runtime.prepare(models["transformer"], models["vae"], models["clip"], opts)
    if _cuda(device):
        models["resident_vram_bytes"] = torch.cuda.memory_allocated(device)
    return {"attention": prepared.attention, "fp8_linear_layers": prepared.fp8_modules, "timer": prepared.timer}


def combo_row(combo: dict, setup: dict | None, res: dict | None, resolution: str, error: str | None = None) -> dict:
    row = {**combo, "resolution": resolution, "error": error}
    if setup:
        timer = setup["timer"]
        row |= {"attention_backend": setup["attention"], "fp8_linear_layers": setup["fp8_linear_layers"],
                "compile_s": timer.compile_seconds() if timer else None}  # fmt: skip
    if res:
        row |= {k: res[k] for k in ("dit_step_s", "dit_step_s_all", "chunk_s", "pose_encode_chunk_s", "decode_chunk_s",
                                    "peak_vram_bytes", "peak_vram_bytes_by_phase")}  # fmt: skip
    return row


# --- report --------------------------------------------------------------------------------------
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device) -> dict:
    import diffusers
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
           "transformers": transformers.__version__, "cuda": torch.version.cuda, "host": platform.node(),
           "cpu_threads": torch.get_num_threads()}  # fmt: skip
    if _cuda(device):
        p = torch.cuda.get_device_properties(device)
        env |= {"device": p.name, "device_memory_bytes": p.total_memory, "sm_count": p.multi_processor_count,
                "capability": f"{p.major}.{p.minor}", "cudnn": torch.backends.cudnn.version()}  # fmt: skip
    else:
        env |= {"device": f"CPU ({platform.processor() or platform.machine()})"}
    return env


def judge(value, target: float, le: bool, applies: bool) -> dict:
    ok = None if (value is None or not applies) else (value <= target if le else value >= target)
    return {"value": value, "target": f"{'<=' if le else '>='} {target}", "pass": ok}


def goals(report: dict, applies: bool) -> dict:
    r480 = report["ours"].get("480p")
    off = min((c["peak_vram_bytes"] for c in report.get("combos", []) if c["offload"] == "blocks" and c.get("peak_vram_bytes")
               and c["weights_dtype"] == "bf16" and c["resolution"] == "480p"), default=None)  # fmt: skip
    gb = 1e9  # the issue's "GB" taken as 10^9 bytes (the stricter reading)
    vram = r480["peak_vram_bytes"] / gb if r480 and r480["peak_vram_bytes"] is not None else None
    return {
        "dit_step_480p_fraction_of_peak": judge(
            r480 and r480["fraction_of_peak"], PEAK_GOALS["dit_fraction_of_peak"], False, applies
        ),
        "outside_dit_fraction_480p": judge(
            r480 and r480["outside_dit_fraction"], PEAK_GOALS["outside_dit_fraction"], True, applies
        ),
        "ours_over_stock_per_output_second": judge(report.get("ours_over_stock"), PEAK_GOALS["ours_over_stock"], True, applies),
        "peak_vram_480p_no_offload_gb": judge(vram, PEAK_GOALS["vram_no_offload_gb"], True, applies),
        "peak_vram_480p_group_offload_gb": judge(
            off / gb if off else None,
            PEAK_GOALS["vram_group_offload_gb"],
            True,
            applies,
        ),
    }


def write_report(report: dict, out: Path | None, commit: str | None, suffix: str) -> Path:
    """Write the JSON report to `out`, or to benchmarks/results/<utc>-<commit>-<device>-<suffix>.json."""
    if out is None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        dev_name = "".join(ch if ch.isalnum() else "-" for ch in report["environment"]["device"]).strip("-")[:40]
        out = ROOT / "benchmarks" / "results" / f"{stamp}-{(commit or 'nocommit')[:10]}-{dev_name}-{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["full", "tiny"], help="default: full on CUDA, tiny on CPU")
    ap.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    ap.add_argument("--resolutions", default="480p,720p", help="comma-separated presets (config.RESOLUTIONS)")
    ap.add_argument("--size", help="WxH for every resolution instead of the presets (tiny default 64x32)")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], help="model dtype; default bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--steps", type=int, default=3, help="DiT steps timed per chunk; extrapolated to --real-steps")
    ap.add_argument("--real-steps", type=int, default=C.STEPS)
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--skip-stock", action="store_true", help="do not run diffusers' WanAnimatePipeline")
    ap.add_argument("--offload", default="none", help="offload modes to compare, comma-separated: none,blocks")
    ap.add_argument("--weights-dtype", default="bf16", help="DiT weight storage to compare: bf16,fp8")
    ap.add_argument("--attention", default="auto", help="attention backends to compare: auto,sdpa,flash,sage")
    ap.add_argument("--compile", action="store_true", help="also time every combination with regional compile")
    ap.add_argument("--no-flop-count", action="store_true", help="skip the meta-device FlopCounterMode cross-check")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on CPU, torch's default on CUDA)")
    ap.add_argument("--commit", help="git commit to record when .git is not available")
    ap.add_argument(
        "--out", type=Path, help="JSON report path (default benchmarks/results/<utc>-<commit>-<device>-<config>.json)"
    )
    a = ap.parse_args(argv)
    axes = {k: [v.strip() for v in getattr(a, k).split(",") if v.strip()] for k in AXES}
    for k, values in axes.items():
        if not values or any(v not in AXES[k] for v in values):
            ap.error(f"--{k.replace('_', '-')} takes a comma-separated subset of {','.join(AXES[k])}")
    combos = [dict(offload=o, weights_dtype=w, attention=at, compile=c) for o in axes["offload"] for w in axes["weights_dtype"]
              for at in axes["attention"] for c in ((False, True) if a.compile else (False,))]  # fmt: skip

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if _cuda(device) and ":" not in device:
        device = f"cuda:{torch.cuda.current_device()}"
    kind = a.config or ("full" if _cuda(device) else "tiny")
    if a.threads or not _cuda(device):
        # Tiny CPU ops are dominated by OpenMP synchronisation: one thread runs them up to 40x faster
        # than two on a loaded machine (measured on the 2-core CI box), and the CPU run is only a check.
        torch.set_num_threads(a.threads or 1)
    # bf16 is what runs on the GPU; CPUs are slow at bf16 convolutions, so the tiny CPU check defaults to fp32.
    dtype_name = a.dtype or ("bf16" if _cuda(device) else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    resolutions = [r.strip() for r in a.resolutions.split(",") if r.strip()]
    sizes = {}
    for r in resolutions:
        if a.size:
            sizes[r] = tuple(int(v) for v in a.size.lower().split("x"))
        else:
            sizes[r] = C.RESOLUTIONS[r] if kind == "full" else TINY_SIZES[r]
    commit = a.commit or git_commit()
    t_start = time.perf_counter()
    log = lambda msg: print(f"[bench-gpu {time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    report: dict = {"schema": 1, "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "commit": commit,
                    "config_kind": kind, "dtype": dtype_name, "environment": environment(device),
                    "settings": {"resolutions": sizes, "steps_timed": a.steps, "real_steps": a.real_steps, "chunks": a.chunks,
                                 "combinations": combos},
                    "extrapolation": f"only {a.steps} DiT steps are timed per chunk/segment; chunk DiT time = setup + "
                                     f"{a.real_steps} x median step (stock: measured + segments x ({a.real_steps} - {a.steps}) x median step)",
                    "excluded": ["prompt encoding (umT5): a random [1, 512, 4096] embedding is given to both",
                                 "reading pose/face frames from mp4 and writing the H.264 segment (synthetic uint8 frames instead)",
                                 "model loading (random weights are built in place)"]}  # fmt: skip
    log(f"device {report['environment']['device']}, config {kind}, sizes {sizes}")
    report["matmul_peak"] = matmul_peak(device, dtype)
    log(f"{dtype_name} matmul peak {report['matmul_peak']['tflops']:.1f} TFLOP/s (n={report['matmul_peak']['n']})")

    # The memory model's prediction for each combination at the full-size presets (footprint.py, no torch): the
    # table this benchmark prints without a GPU, and on one the figure each measured peak is compared with.
    report["predicted"] = predicted_rows(resolutions, combos)
    models = build_models(kind, device, dtype)
    setup = prepare_models(models, combos[0], device, dtype_name)  # the first combination runs the full report
    report["models"] = {
        "build_s": models["build_s"],
        "params": models["params"],
        "bytes": models["bytes"],
        "configs": models["configs"],
    }
    if _cuda(device):
        report["models"]["resident_vram_bytes"] = models["resident_vram_bytes"]
    log(f"built random models in {models['build_s']:.1f}s: transformer {models['params']['transformer'] / 1e9:.3f} B params")

    tcfg = models["configs"]["transformer"]
    report["flops_full_config"] = {r: dit_flops(FULL_TRANSFORMER, *C.RESOLUTIONS[r]) for r in C.RESOLUTIONS}
    text = torch.randn(1, C.TEXT_TOKENS, tcfg["text_dim"], generator=torch.Generator().manual_seed(3))
    report["ours"] = {}
    for r, (w, h) in sizes.items():
        log(f"ours {r} {w}x{h}: {a.chunks} chunk(s), {a.steps} timed step(s) each")
        res = bench_ours(models, w, h, a.steps, a.chunks, a.real_steps, device, dtype, text)
        fl = dit_flops(tcfg, w, h)
        res["flops_per_step_analytic"] = fl["total"]
        res["flops_parts"] = fl["parts"]
        res["flops_per_step_counted"] = None if a.no_flop_count else counted_flops(tcfg, w, h)
        flops = res["flops_per_step_counted"] or fl["total"]
        res["achieved_tflops"] = flops / res["dit_step_s"] / 1e12
        res["fraction_of_peak"] = res["achieved_tflops"] / report["matmul_peak"]["tflops"]
        report["ours"][r] = res
        log(f"  step {res['dit_step_s']:.3f}s ({res['achieved_tflops']:.1f} TFLOP/s, {100 * res['fraction_of_peak']:.0f}% of peak), "
            f"chunk {res['chunk_s']:.2f}s, outside DiT {100 * res['outside_dit_fraction']:.1f}%")  # fmt: skip

    stock_res = "480p" if "480p" in sizes else next(iter(sizes))
    if not a.skip_stock:
        w, h = sizes[stock_res]
        frames_out = report["ours"][stock_res]["output_frames"]
        log(f"stock WanAnimatePipeline {stock_res}: {frames_out} frames, {a.steps} timed step(s) per segment")
        report["stock"] = bench_stock(models, w, h, frames_out, a.steps, a.real_steps, device, text) | {"resolution": stock_res}
        report["ours_over_stock"] = report["ours"][stock_res]["s_per_output_second"] / report["stock"]["s_per_output_second"]
        log(
            f"  stock {report['stock']['s_per_output_second']:.2f} s per output second; ours/stock {report['ours_over_stock']:.3f}"
        )
    # Every other combination: fresh random models, set up the library's way, one chunk at the first resolution.
    res0 = next(iter(sizes))
    report["combos"] = [combo_row(combos[0], setup, report["ours"][res0], res0)]
    for combo in combos[1:]:
        log(f"combination {combo} at {res0}: 1 chunk, {a.steps} timed step(s)")
        del models, setup
        gc.collect()
        if _cuda(device):
            torch.cuda.empty_cache()
        models, setup, res, error = build_models(kind, device, dtype), None, None, None
        try:
            setup = prepare_models(models, combo, device, dtype_name)
            res = bench_ours(models, *sizes[res0], a.steps, 1, a.real_steps, device, dtype, text)
        except Exception as e:  # noqa: BLE001 -- a combination this machine cannot run is recorded, the rest stands
            error = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        report["combos"].append(combo_row(combo, setup, res, res0, error))

    if not _cuda(device):
        report["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    report["goals"] = goals(report, applies=_cuda(device) and kind == "full" and "480p" in sizes and not a.size)
    report["wall_s"] = time.perf_counter() - t_start

    out = write_report(report, a.out, commit, kind)
    print_summary(report)
    print(f"report: {out}")
    return report


def predicted_rows(resolutions: list[str], combos: list[dict]) -> list[dict]:
    """footprint.predict for every (preset, offload, weights dtype) the run asks for: full-size 14B figures."""
    from animate_cli.models import footprint

    rows, seen = [], set()
    for r in resolutions:
        w, h = C.RESOLUTIONS[r]
        for c in combos:
            key = (r, c["offload"], c["weights_dtype"])
            if key in seen:
                continue
            seen.add(key)
            need = footprint.predict(w, h, c["offload"], c["weights_dtype"])
            rows.append({"resolution": r, "offload": c["offload"], "weights_dtype": c["weights_dtype"],
                         "gpu_gib": need.gpu_gib, "host_gib": need.host_gib, "relative_speed": need.relative_speed})  # fmt: skip
    return rows


def print_summary(report: dict) -> None:
    gib = 2**30
    print("predicted by the memory model (footprint.py) for the full-size model, whatever this device is:")
    print(f"{'res':6} {'offload':8} {'weights':7} {'peak VRAM':>10} {'host RAM':>9} {'speed':>6}")
    for p in report.get("predicted", []):
        print(f"{p['resolution']:6} {p['offload']:8} {p['weights_dtype']:7} {p['gpu_gib']:8.1f} G {p['host_gib']:7.1f} G "
              f"{p['relative_speed']:5.2f}x")  # fmt: skip
    print(
        f"{report['environment']['device']} | config {report['config_kind']} | {report['dtype']} | matmul peak {report['matmul_peak']['tflops']:.1f} TFLOP/s"
    )
    print(f"{'res':6} {'tokens':>7} {'step s':>8} {'TFLOP/s':>8} {'%peak':>6} {'DiT/chunk s':>11} {'pose enc':>8} {'decode':>7} "
          f"{'other':>7} {'chunk s':>8} {'outside':>7} {'peak GiB':>8}")  # fmt: skip
    for r, x in report["ours"].items():
        vram = f"{x['peak_vram_bytes'] / gib:8.1f}" if x["peak_vram_bytes"] is not None else f"{'-':>8}"
        print(f"{r:6} {x['tokens']:7d} {x['dit_step_s']:8.3f} {x['achieved_tflops']:8.2f} {100 * x['fraction_of_peak']:6.1f} "
              f"{x['dit_chunk_s']:11.2f} {x['pose_encode_chunk_s']:8.3f} {x['decode_chunk_s']:7.3f} {x['other_chunk_s']:7.3f} "
              f"{x['chunk_s']:8.2f} {100 * x['outside_dit_fraction']:6.1f}% {vram}")  # fmt: skip
    if report.get("stock"):
        s = report["stock"]
        print(f"stock {s['resolution']}: {s['segments']} segment(s), step {s['dit_step_s']:.3f}s, {s['s_per_output_second']:.2f} s/output-s; "
              f"ours/stock per output second {report['ours_over_stock']:.3f}")  # fmt: skip
    if report.get("peak_rss_bytes"):
        print(f"peak RSS {report['peak_rss_bytes'] / 2**20:.0f} MiB (CPU run: VRAM fields are null)")
    for k, g in report["goals"].items():
        v = g["value"]
        print(
            f"goal {k:36} {'-' if v is None else f'{v:.3f}':>8} {g['target']:>8}  {'n/a' if g['pass'] is None else ('PASS' if g['pass'] else 'FAIL')}"
        )
    print(f"{'offload':8} {'weights':7} {'attention':14} {'compile':>7} {'res':5} {'step s':>8} {'peak GiB':>8}  note")
    for c in report.get("combos", []):
        att = f"{c['attention']}->{c.get('attention_backend') or '?'}"
        peak = f"{c['peak_vram_bytes'] / gib:8.2f}" if c.get("peak_vram_bytes") is not None else f"{'-':>8}"
        step = f"{c['dit_step_s']:8.3f}" if c.get("dit_step_s") is not None else f"{'-':>8}"
        note = c["error"] or (f"compile {c['compile_s']:.1f} s" if c.get("compile_s") is not None else "")
        print(
            f"{c['offload']:8} {c['weights_dtype']:7} {att:14} {'on' if c['compile'] else 'off':>7} {c['resolution']:5} {step} {peak}  {note}"
        )
    full = report["flops_full_config"]
    print(
        "full-config DiT FLOPs per step: "
        + ", ".join(f"{r} {v['total'] / 1e15:.3f} PFLOP ({v['tokens']} tokens)" for r, v in full.items())
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
