"""Streamed decode (spec §7): equal to vae.decode, 1 + 4(T-1) frames, fresh cache per chunk."""

import torch
from support.tiny_models import VAE_CONFIG

from animate_cli.rollout.decode import iter_decode_frames, iter_decode_pixels, to_uint8
from animate_cli.rollout.encode import latent_stats


def _vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(**VAE_CONFIG).eval()


def test_streamed_decode_equals_vae_decode():
    vae = _vae()
    z = torch.randn(1, 16, 20, 4, 8)
    pieces = list(iter_decode_pixels(vae, z))
    assert [p.shape[2] for p in pieces] == [1] + [4] * 19
    mean, std = latent_stats(vae)
    with torch.no_grad():
        ref = vae.decode(z * std + mean).sample
    streamed = torch.cat(pieces, dim=2)
    assert streamed.shape == ref.shape == (1, 3, 77, 32, 64)
    assert torch.equal(streamed, ref)


def test_each_call_starts_from_a_fresh_cache():
    vae = _vae()
    z1, z2 = torch.randn(1, 16, 3, 4, 8), torch.randn(1, 16, 3, 4, 8)
    first = list(iter_decode_frames(vae, z2))
    list(iter_decode_frames(vae, z1))  # a different chunk in between must not leak into the next decode
    again = list(iter_decode_frames(vae, z2))
    assert len(first) == 9 and all((a == b).all() for a, b in zip(first, again, strict=True))


def test_uint8_conversion_truncates_like_the_official_script():
    px = torch.tensor([-1.0, 0.0, 0.999, 1.0]).view(1, 1, 1, 1, 4).repeat(1, 3, 1, 1, 1)
    assert to_uint8(px)[0, 0, :, 0].tolist() == [0, 127, 254, 255]


def test_wrong_vae_kind_is_a_weights_error():
    import pytest
    from diffusers import AutoencoderKLWan

    from animate_cli.errors import WeightsInvalidError

    vae = AutoencoderKLWan(**VAE_CONFIG, patch_size=2).eval()
    with pytest.raises(WeightsInvalidError, match="Wan2.1 VAE"):
        next(iter_decode_pixels(vae, torch.randn(1, 16, 1, 4, 8)))
