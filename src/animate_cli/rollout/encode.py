"""Pixel -> model-space conversions shared by the memory and rollout stages.

Latents here are always *normalised* Wan latents, (mu - mean_c) / std_c, float32 on the model's
execution device (`device.execution_device`: where it computes, even when offloaded), shaped
[1, 16, T, H/8, W/8]. Frames come in as uint8 numpy arrays [T, H, W, 3].
"""

from __future__ import annotations

import numpy as np

# OpenAI CLIP normalisation (the ViT-H/14 image encoder was trained with it)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_model_pixels(frames: np.ndarray, device, dtype):
    """uint8 [T, H, W, 3] -> [1, 3, T, H, W] in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(device)
    x = x.permute(3, 0, 1, 2).unsqueeze(0).to(torch.float32) / 127.5 - 1.0
    return x.to(dtype)


def latent_stats(vae):
    """Per-channel mean and std, shaped [1, C, 1, 1, 1], float32 on the VAE device."""
    import torch

    from animate_cli.models.device import execution_device

    dev = execution_device(vae)
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32, device=dev).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32, device=dev).view(1, -1, 1, 1, 1)
    return mean, std


def vae_encode(vae, frames: np.ndarray):
    """uint8 [T, H, W, 3] -> normalised latent [1, 16, 1 + (T-1)//4, H/8, W/8] (posterior mode, fresh cache)."""
    import torch

    from animate_cli.models.device import execution_device

    dtype = vae.dtype  # ModelMixin.dtype: the compute dtype, not an fp32-kept module's
    x = to_model_pixels(frames, execution_device(vae), dtype)
    with torch.inference_mode():
        mu = vae.encode(x).latent_dist.mode()
    mean, std = latent_stats(vae)
    return (mu.float() - mean) / std


def clip_embed(image_encoder, frame: np.ndarray):
    """CLIP penultimate hidden states [1, N, C] of one uint8 frame [H, W, 3].

    Squash-resize (no crop) with bicubic interpolation to the encoder's input size, as the official
    pipeline does (docs/rollout.md): the repo's centre-cropping CLIPImageProcessor would cut the person.
    """
    import torch
    import torch.nn.functional as F

    from animate_cli.models.device import execution_device

    dev, dtype = execution_device(image_encoder), image_encoder.dtype
    size = image_encoder.config.image_size
    x = to_model_pixels(frame[None], dev, torch.float32)[:, :, 0]  # [1, 3, H, W] in [-1, 1]
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=dev).view(1, 3, 1, 1)
    x = ((x - mean) / std).to(dtype)
    with torch.inference_mode():
        out = image_encoder(pixel_values=x, output_hidden_states=True)
    return out.hidden_states[-2]


def face_pixels(frames: np.ndarray, size: int, device, dtype):
    """Face crops uint8 [T, S0, S0, 3] -> [1, 3, T, size, size] in [-1, 1] (the motion encoder's input)."""
    from animate_cli.media import center_crop_resize

    if frames.shape[1:3] != (size, size):
        frames = np.stack([center_crop_resize(f, size, size) for f in frames])
    return to_model_pixels(frames, device, dtype)
