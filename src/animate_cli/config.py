"""Every number the EverAnimate rollout depends on, and the fixed choices of the options.

The released LoRA was trained for exactly this layout (docs/rollout.md); changing a constant here changes what
the model sees, so each one says why it has its value. The options and the frozen `RunConfig` built from them
are in options.py; stage modules never read the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# --- chunk schedule (docs/rollout.md) -----------------------------------------------------------
CHUNK_FRAMES = 77  # pixel frames generated per DiT call; the VAE-conditioning unit is hard-wired to 77
OVERLAP_FRAMES = 4  # = one latent of the previous chunk, carried as the motion latent
STRIDE_FRAMES = CHUNK_FRAMES - OVERLAP_FRAMES  # 73: chunk c starts at driving frame 73c
ANCHORS = 4  # K identity/anchor latent slots (mask 1) in front of the generated slots
MOTION_LATENTS = 1  # r: raw last latent of chunk c-1 placed in the first generated slot
GENERATED_LATENTS = (CHUNK_FRAMES - 1) // 4 + 1  # 20 latents decode to 1 + 19*4 = 77 frames
LATENT_SLOTS = ANCHORS + GENERATED_LATENTS  # 24 slots per DiT call
MAX_REF_VIEWS = ANCHORS - 1  # extra views fill memory slots before sampled frames (paper: 1 <= m <= K)

# --- sampler (docs/rollout.md) ------------------------------------------------------------------
SHIFT = 5.0  # flow-matching sigma shift used for training and by the official script
STEPS = 20  # Euler steps per chunk; the LoRA was tuned with 20
SEED_STRIDE = 42  # chunk c draws its noise from a CPU generator seeded seed + 42*c (official script)
DEFAULT_PROMPT = "视频中的人在做动作"  # "the person in the video is doing actions": Wan-Animate's training prompt
TEXT_TOKENS = 512  # umT5 context length; diffusers' attention splits image/text context at len-512

# --- video (docs/rollout.md, docs/video-time.md) -------------------------------------------------
FPS = 25  # EverAnimate trains and writes at 25 fps; driving videos are resampled to it
VAE_STRIDE_T = 4  # Wan2.1 VAE: 4x temporal compression (first frame alone)
VAE_STRIDE_S = 8  # 8x spatial compression
PATCH = 2  # DiT patchify 2x2 -> sizes must be multiples of 16
SIZE_MULTIPLE = VAE_STRIDE_S * PATCH
RESOLUTIONS = {"480p": (832, 480), "720p": (1280, 720)}  # landscape (W, H); portrait swaps them
MEMORY_SEED_OFFSET = 7_919  # numpy generator for identity-memory frame picks: seed + this (any fixed prime)

# --- pose models ------------------------------------------------------------------------------------
POSE_MODELS = ("wan", "rtmw")  # wan: Wan2.2-Animate's own YOLOv10m + ViTPose-H, what the model was trained on
# The official ONNX files, relative to the base model folder (weights BASE_DIR), as in the Hub repo
# Wan-AI/Wan2.2-Animate-14B; the pose one may be a folder holding end2end.onnx (+ external data).
WAN_DET_ONNX = "process_checkpoint/det/yolov10m.onnx"
WAN_POSE_ONNX = "process_checkpoint/pose2d/vitpose_h_wholebody.onnx"

# --- overlap of CPU work with the GPU (pipeline, writer) -----------------------------------------
WRITER_QUEUE_FRAMES = CHUNK_FRAMES  # decoded frames waiting for the H.264 thread: one chunk, so a whole decode never blocks
# (at most ~77 x 2.7 MB = 210 MB at 720p, twice that with --side-by-side; host memory stays bounded)
WORKER_STOP_WAIT_S = 5.0  # on failure or Ctrl-C, how long to let a worker thread stop (one pose frame, one
# ffmpeg write) before exiting anyway; the threads are daemons, so they never keep the process alive

# --- writing files (media.files, media.check_video, runner.pipeline) -----------------------------------
# A muxed output's container lasts frames/fps plus at most one AAC frame (1024 samples, 23 ms at 44.1 kHz)
# of padded audio and rounding; a dropped segment (73 frames, 2.9 s) is far outside. 0.1 s = 2.5 frames.
DURATION_TOLERANCE_S = 0.1
FFMPEG_STDERR_LINES = 20  # lines of an encoder's stderr kept for the error message (-v error writes one or two)
FFMPEG_STDERR_JOIN_S = 5.0  # the stderr reader ends when ffmpeg exits; never wait on it forever

# --- LoRA files (docs/weights.md) ---------------------------------------------------------------
LORA_BY_RESOLUTION = {
    "480p": "ckpts/everanimate-v1-lora32/stage2_480p.safetensors",  # default: stage 1 + RFM fine-tune
    "720p": "ckpts/everanimate-v1-lora32/stage3_720p_beta.safetensors",  # beta, continued from stage 2
}

# --- memory and speed options (set up once, where the models are loaded: models.load_models) ----
OFFLOAD_MODES = ("auto", "none", "blocks")  # auto: device.choose picks the fastest mode the memory model fits (footprint.py)
WEIGHTS_DTYPES = ("bf16", "fp8")  # fp8: e4m3 storage of the Linears of the DiT blocks and face adapters, bf16 compute
ATTENTION_CHOICES = ("auto", "sdpa", "flash", "sage")  # auto: fastest *exact* backend installed, never sage

# torch's CUDA caching allocator, set by the CLI unless the user set it (cli.common.default_alloc_conf): expandable
# segments grow one mapping instead of carving fixed-size segments, so memory freed between differently shaped
# activations (and, under --offload blocks, every streamed weight group) is reused instead of fragmenting --
# the gap between reserved and allocated memory that public block-offload runs of this model show
# (footprint.RESERVED_OVER_ALLOCATED). torch's own advice in its out-of-memory message.
CUDA_ALLOC_CONF = "expandable_segments:True"
CUDA_ALLOC_CONF_ENVS = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")

WEIGHTS_ENV = "EVERANIMATE_WEIGHTS_DIR"

# --- the other fixed choices of the options (options.py makes an Enum of each) -------------------------------
DTYPES = ("bf16", "fp32")  # compute precision; bf16 is what the model was trained in, fp32 for CPUs and checks
FITS = ("pad", "crop", "stretch")  # how the reference goes onto a canvas of another aspect (media/canvas.py)
SEAM_FIX_MODES = ("none", "color")  # color: rollout/seamfix.py eases each chunk's colour into the previous one's
POSE_SMOOTH_MODES = ("default", "none")  # rtmw's zero-phase One-Euro filter, or per-frame keypoints
PROGRESS_MODES = ("rich", "json", "none")  # progress.make_reporter


def default_weights_dir() -> Path:
    """Where `download-weights` puts everything and `run` looks first.

    Follows the Hub's conventions: $EVERANIMATE_WEIGHTS_DIR, else next to $HF_HUB_CACHE (the more
    specific "big files go here" setting: <its parent>/everanimate, not inside it, because the Hub's
    cache scanner reports every foreign folder there as a corrupted repo), else $HF_HOME/everanimate,
    else ~/.cache/huggingface/everanimate. (Only this function and the commands look at the environment.)
    """
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    hub_cache = os.environ.get("HF_HUB_CACHE")
    if hub_cache:
        return Path(hub_cache).expanduser().parent / "everanimate"
    hf_home = os.environ.get("HF_HOME")
    base = Path(hf_home).expanduser() if hf_home else Path.home() / ".cache" / "huggingface"
    return base / "everanimate"


def portrait_size(size: tuple[int, int], portrait: bool) -> tuple[int, int]:
    """(W, H) for a landscape preset, swapped when the subject image is portrait."""
    w, h = size
    return (min(w, h), max(w, h)) if portrait else (max(w, h), min(w, h))


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    scale: float = 1.0


ASSUMED_TFLOPS = 400.0  # effective bf16 throughput of one H100/H200-class GPU, used only for the ETA
