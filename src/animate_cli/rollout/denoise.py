"""One EverAnimate chunk on the Wan2.2-Animate DiT, in latent space (docs/rollout.md).

A chunk is one DiT rollout over 24 latent slots:

    slot:      0 .. K-1        K            K+1 .. K+19
    noisy x:   noise           noise        noise                  (all 24 slots are denoised)
    mask:      1               0            0
    cond:      anchors         motion       0 (literal zeros)
    pose:      -               pose lat 0   pose lat 1..19
    face:      zero frames     face step 0  face steps 1..19

K = 4 anchors: 4 x the reference latent in chunk 0, the fixed identity memory afterwards.
The motion slot holds the raw last generated latent of the previous chunk (zeros in chunk 0); it
is never decoded and re-encoded. DiT input channels are [16 noisy | 4 mask | 16 cond].

diffusers' WanAnimateTransformer3DModel hard-codes one reference slot (pose added at [1:], one
zero face frame). `everanimate_layout` generalises that to K with two forward hooks, registered only
while our chunks run (tests/test_rollout_invariants.py checks the slots, mask, pose and face layout).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from animate_cli import config as C

if TYPE_CHECKING:
    import torch


@dataclass
class ChunkInputs:
    """Everything one DiT rollout needs. Latents are normalised, float32; shapes for 480p (h=60, w=104)."""

    anchors: torch.Tensor  # [1, 16, K, h, w]
    motion: torch.Tensor | None  # [1, 16, 1, h, w] raw last latent of chunk c-1; None in chunk 0 (-> zeros)
    pose: torch.Tensor  # [1, 16, 20, h, w] VAE latents of this chunk's 77 pose frames
    face: torch.Tensor  # [1, 3, 77, S, S] face crops in [-1, 1], S = motion_encoder_size (512)
    clip: torch.Tensor  # [1, 257, 1280] CLIP penultimate states of the reference / previous last frame
    text: torch.Tensor  # [1, 512, 4096] prompt embedding (encoded once per run)
    noise: torch.Tensor  # [1, 16, 24, h, w] float32 from a CPU generator seeded seed + 42c


def flow_sigmas(steps: int = C.STEPS, shift: float = C.SHIFT) -> list[float]:
    """Shifted flow-matching sigmas shift*s / (1 + (shift-1)*s), s = linspace(1, 0, steps+1)[:-1]; then 0."""
    s = [1.0 - i / steps for i in range(steps)]
    return [shift * v / (1.0 + (shift - 1.0) * v) for v in s] + [0.0]


def chunk_noise(shape: tuple[int, ...], seed: int):
    """Chunk noise drawn on the CPU (float32) so the same seed gives the same video on any device."""
    import torch

    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)


def build_condition(anchors, motion, generated: int = C.GENERATED_LATENTS):
    """y = [mask (4 ch) | cond (16 ch)] over K + 20 slots -> [1, 20, K+20, h, w].

    mask is 1 on the K anchor slots only; the motion slot is an *unmasked* conditioning input.
    cond is [anchors | motion (or zeros) | 19 literal zero latents], not VAE-encoded black frames.
    """
    import torch

    b, ch, k, h, w = anchors.shape
    cond = torch.zeros(b, ch, k + generated, h, w, dtype=anchors.dtype, device=anchors.device)
    cond[:, :, :k] = anchors
    if motion is not None:
        cond[:, :, k : k + motion.shape[2]] = motion
    mask = torch.zeros(b, 4, k + generated, h, w, dtype=anchors.dtype, device=anchors.device)
    mask[:, :, :k] = 1.0
    return torch.cat([mask, cond], dim=1)


@contextmanager
def everanimate_layout(transformer, anchors: int = C.ANCHORS):
    """Make the stock forward use K anchor slots: pose at [K:], K zero face-motion frames.

    The caller passes pose latents padded in front with K-1 zero frames (so the stock shape check
    `pose + 1 == slots` passes). Hook 1 zeroes the embedded padding frames, removing the conv bias
    they would add to slots 1..K-1. Hook 2 prepends K-1 zero frames to the face encoder output; the
    stock forward then prepends its own one, giving K zero frames before the 20 real ones.
    """
    import torch

    pad = anchors - 1

    def pose_hook(module, args, out):
        out = out.clone()
        out[:, :, :pad] = 0
        return out

    def face_hook(module, args, out):  # out: [B, 20, heads+1, dim]
        return torch.cat([out.new_zeros(out.shape[0], pad, *out.shape[2:]), out], dim=1)

    handles = [transformer.pose_patch_embedding.register_forward_hook(pose_hook),
               transformer.face_encoder.register_forward_hook(face_hook)]  # fmt: skip
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def denoise_chunk(transformer, inputs: ChunkInputs, steps: int = C.STEPS, shift: float = C.SHIFT,
                  on_step: Callable[[int], None] | None = None):  # fmt: skip
    """Flow-matching Euler over all K+20 slots, no CFG. Returns the 20 generated latents [1, 16, 20, h, w] (float32).

    Timesteps fed to the DiT are rounded to bf16 (1000, 988, 980, ...), as in training; the Euler
    update itself uses the exact sigmas and runs in float32.
    """
    import torch

    from animate_cli.models.device import execution_device

    # Not the first parameter's device: under group offloading it is in host memory between steps.
    # Not its dtype: loaded in bf16, the first parameter is `scale_shift_table`, which diffusers keeps
    # in fp32 (_keep_in_fp32_modules); ModelMixin.dtype skips those and gives the compute dtype
    # (with FP8 storage, the layerwise-casting compute dtype).
    dev, dtype = execution_device(transformer), transformer.dtype
    k = inputs.anchors.shape[2]
    y = build_condition(inputs.anchors.to(dev), None if inputs.motion is None else inputs.motion.to(dev)).to(dtype)
    pose = inputs.pose.to(dev, dtype)
    pose = torch.cat([pose.new_zeros(*pose.shape[:2], k - 1, *pose.shape[3:]), pose], dim=2)
    face, clip, text = inputs.face.to(dev, dtype), inputs.clip.to(dev, dtype), inputs.text.to(dev, dtype)
    x = inputs.noise.to(dev, torch.float32)
    sig = flow_sigmas(steps, shift)
    with torch.inference_mode(), everanimate_layout(transformer, k):
        for j in range(steps):
            t = torch.tensor([1000.0 * sig[j]], device=dev).to(torch.bfloat16).float()
            v = transformer(hidden_states=torch.cat([x.to(dtype), y], dim=1), timestep=t, encoder_hidden_states=text,
                            encoder_hidden_states_image=clip, pose_hidden_states=pose, face_pixel_values=face,
                            return_dict=False)[0]  # fmt: skip
            x = x + (sig[j + 1] - sig[j]) * v.float()
            if on_step is not None:
                on_step(j)
    return x[:, :, k:]
