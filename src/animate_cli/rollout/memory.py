"""Identity memory (docs/rollout.md): the K anchor latents every chunk after the first is conditioned on.

Chunk 0 is anchored on K copies of the reference latent. After chunk 0 the memory becomes
[extra views..., frames sampled from chunk 0..., reference], K entries, fixed for the rest of the
run. Each entry is encoded on its own as a single-frame latent. The frame picks come from a
seeded numpy generator (the official script leaves numpy unseeded; we seed it so runs repeat).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from animate_cli import config as C

if TYPE_CHECKING:
    import torch


@dataclass
class IdentityInputs:
    ref_latent: torch.Tensor  # [1, 16, 1, h, w] normalised latent of the reference (fitted to W x H)
    view_latents: list[torch.Tensor]  # up to K-1 entries of [1, 16, 1, h, w]: the user's extra views
    ref_clip: torch.Tensor  # [1, 257, 1280] CLIP states of the reference, the CLIP input of chunk 0
    picks: list[int] = field(default_factory=list)  # chunk 0's frames that join the memory (pick_memory_frames)

    def chunk0_anchors(self, k: int = C.ANCHORS) -> torch.Tensor:
        """[1, 16, K, h, w]: the reference latent repeated K times."""
        return self.ref_latent.repeat(1, 1, k, 1, 1)


def pick_memory_frames(seed: int, n_views: int, k: int = C.ANCHORS, chunk_frames: int = C.CHUNK_FRAMES) -> list[int]:
    """Sorted distinct indices into chunk 0's decoded frames (1..76; frame 0 excluded), K-1-views of them."""
    n = k - 1 - n_views
    if n <= 0:
        return []
    rng = np.random.default_rng(seed + C.MEMORY_SEED_OFFSET)
    return sorted(int(i) for i in rng.choice(np.arange(1, chunk_frames), size=n, replace=False))


def build_memory(identity: IdentityInputs, sampled_latents: list[torch.Tensor], k: int = C.ANCHORS) -> torch.Tensor:
    """[views..., sampled frames..., reference] concatenated along time -> [1, 16, K, h, w]."""
    import torch

    entries = [*identity.view_latents, *sampled_latents, identity.ref_latent]
    if len(entries) != k:
        raise ValueError(f"identity memory needs {k} entries, got {len(entries)}")
    return torch.cat(entries, dim=2)
