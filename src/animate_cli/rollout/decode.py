"""Streaming VAE decode: one chunk's latents -> uint8 frames, one latent at a time.

`AutoencoderKLWan.decode` runs its causal decoder latent by latent but concatenates the whole
pixel video on the device. This loop runs the same decoder calls (same cache, same order; equal to
`vae.decode` bit for bit, see tests) and yields each latent's frames as soon as they exist: 1 frame
for the first latent, 4 for every later one. Each chunk is decoded from a fresh cache (docs/rollout.md:
one concatenated decode would duplicate frames at every seam).

Uses AutoencoderKLWan's private cache attributes (`_feat_map`, `_conv_idx`): diffusers is pinned
to 0.42.x in pyproject.toml and `tests/test_decode.py` guards the equality.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def iter_decode_pixels(vae, latents) -> Iterator:
    """Normalised latents [1, 16, T, h, w] -> pixel pieces [1, 3, n, H, W] in [-1, 1] (n = 1, 4, 4, ...)."""
    import torch

    from animate_cli.rollout.encode import latent_stats

    if vae.config.patch_size is not None:
        from animate_cli.errors import WeightsInvalidError

        raise WeightsInvalidError("this VAE is a patchified Wan2.2 (TI2V) VAE; Wan2.2-Animate uses the Wan2.1 VAE",
                                  hint="re-run `everanimate download-weights --only base`")  # fmt: skip
    mean, std = latent_stats(vae)
    dtype = vae.dtype  # ModelMixin.dtype: the compute dtype, not an fp32-kept module's
    z = (latents.to(mean.device, torch.float32) * std + mean).to(dtype)
    with torch.inference_mode():
        vae.clear_cache()
        try:
            x = vae.post_quant_conv(z)
            for i in range(x.shape[2]):
                vae._conv_idx = [0]
                out = vae.decoder(x[:, :, i : i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=(i == 0))
                yield out.clamp(-1.0, 1.0)
        finally:
            vae.clear_cache()


def to_uint8(pixels) -> np.ndarray:
    """[1, 3, n, H, W] in [-1, 1] -> uint8 [n, H, W, 3], truncating like the official script ((x+1)*127.5)."""
    import torch

    x = ((pixels[0].float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def iter_decode_frames(vae, latents) -> Iterator[np.ndarray]:
    """Normalised latents -> uint8 frames [H, W, 3], one at a time, in order."""
    for piece in iter_decode_pixels(vae, latents):
        yield from to_uint8(piece)
