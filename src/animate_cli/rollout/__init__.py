"""The rollout stage: the chunk plan, identity memory, pixel->latent encoding, one chunk's denoise, the streamed decode and resume state."""
