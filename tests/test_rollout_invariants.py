"""The rollout invariants of issue 2, checked by instrumenting the real diffusers modules during a
3-chunk run: DiT input layout, mask, anchors, raw motion latent, zero padding, pose and face slots,
timesteps, noise seeds, CLIP inputs, which VAE encodes happen, one decode per latent, one prompt encode.
"""

import numpy as np
import pytest
import torch
from helpers import make_cfg

from animate_cli import config as C
from animate_cli import models
from animate_cli.rollout import denoise, encode
from animate_cli.rollout.decode import iter_decode_frames
from animate_cli.rollout.resume import load_chunk_latents
from animate_cli.runner import pipeline

STEPS = 2


@pytest.fixture(scope="module")
def trace(tiny_weights, media_dir, tmp_path_factory):
    rec = {"dit": [], "face": [], "pose_emb": [], "encode": [], "decoder_calls": 0, "seeds": [], "clip_frames": [], "prompts": 0}
    mp = pytest.MonkeyPatch()
    real_load, real_prompt, real_noise, real_clip = (
        models.load_models,
        models.encode_prompt,
        denoise.chunk_noise,
        encode.clip_embed,
    )

    def load(*a, **k):
        m = real_load(*a, **k)
        tr, vae = m.transformer, m.vae

        def dit_pre(mod, args, kwargs):
            rec["dit"].append({k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in kwargs.items()})

        tr.register_forward_pre_hook(dit_pre, with_kwargs=True)
        tr.face_adapter[0].register_forward_pre_hook(lambda mod, args: rec["face"].append(args[1].detach().clone()))
        # runs after rollout's own hook (registered later, per chunk) -> capture in the block input instead:
        tr.blocks[0].register_forward_pre_hook(lambda mod, args: rec["pose_emb"].append(args[0].detach().clone()))
        real_encode = vae.encode

        def enc(x, *aa, **kk):
            rec["encode"].append(tuple(x.shape))
            return real_encode(x, *aa, **kk)

        vae.encode = enc
        real_decoder_forward = vae.decoder.forward

        def dec(*aa, **kk):
            rec["decoder_calls"] += 1
            return real_decoder_forward(*aa, **kk)

        vae.decoder.forward = dec
        rec["models"] = m
        return m

    def prompt(*a, **k):
        rec["prompts"] += 1
        return real_prompt(*a, **k)

    def noise(shape, seed):
        rec["seeds"].append(seed)
        return real_noise(shape, seed)

    def clip(enc_model, frame):
        rec["clip_frames"].append(frame.copy())
        return real_clip(enc_model, frame)

    mp.setattr(models, "load_models", load)
    mp.setattr(models, "encode_prompt", prompt)
    mp.setattr(denoise, "chunk_noise", noise)
    mp.setattr(encode, "clip_embed", clip)
    out = tmp_path_factory.mktemp("inv") / "inv.mp4"
    cfg = make_cfg(media_dir, tiny_weights, out, frames=160, ref_views=(media_dir / "view1.png",), steps=STEPS)
    rec["summary"] = pipeline.run(cfg)
    rec["cfg"] = cfg
    mp.undo()
    return rec


def _slots(call):
    return call["hidden_states"]  # [1, 36, 24, h, w]


def test_dit_input_layout_and_mask(trace):
    assert len(trace["dit"]) == 3 * STEPS
    for call in trace["dit"]:
        x = _slots(call)
        assert x.shape[1] == 36 and x.shape[2] == C.LATENT_SLOTS == 24
        mask = x[:, 16:20]
        assert torch.all(mask[:, :, : C.ANCHORS] == 1) and torch.all(mask[:, :, C.ANCHORS :] == 0)
        assert torch.all(x[:, 20:36, C.ANCHORS + 1 :] == 0)  # 19 literal zero latents
        assert call["pose_hidden_states"].shape[2] == 23  # K-1 padding frames + 20 pose latents
        assert call["encoder_hidden_states"].shape[1] == C.TEXT_TOKENS


def test_anchors_chunk0_is_reference_then_fixed_memory(trace):
    dit = trace["dit"]
    c0, c1, c2 = _slots(dit[0]), _slots(dit[STEPS]), _slots(dit[2 * STEPS])
    ref_slot = c0[:, 20:36, 0]
    for k in range(C.ANCHORS):
        assert torch.equal(c0[:, 20:36, k], ref_slot)
    assert torch.all(c0[:, 20:36, C.ANCHORS] == 0)  # no motion latent in chunk 0
    assert torch.equal(c1[:, 20:36, : C.ANCHORS], c2[:, 20:36, : C.ANCHORS])  # memory fixed after chunk 0
    assert torch.equal(c1[:, 20:36, C.ANCHORS - 1], ref_slot)  # reference latent last
    assert not torch.equal(c1[:, 20:36, 0], ref_slot)  # first slot: the user's extra view
    # K=4 with one extra view -> 2 sampled frames of chunk 0, each a single-frame encode (checked below)


def test_motion_slot_is_raw_last_latent_of_previous_chunk(trace):
    state = trace["cfg"].resume_dir
    for c in (1, 2):
        prev = load_chunk_latents(state, c - 1)[:, :, -1]
        cond = _slots(trace["dit"][c * STEPS])[:, 20:36, C.ANCHORS]
        assert torch.equal(cond, prev.to(cond.dtype))


def test_pose_only_on_generated_slots_and_k_zero_face_frames(trace, tiny_weights):
    from diffusers import WanAnimateTransformer3DModel

    tr = trace["models"].transformer
    # Token embeddings per slot = patch(x) + pose. Recompute patch(x) alone and compare slot-wise.
    call = trace["dit"][0]
    emb = trace["pose_emb"][0]  # [1, tokens, dim] after patch + pose
    with torch.no_grad():
        patched = tr.patch_embedding(call["hidden_states"]).flatten(2).transpose(1, 2)
    per_slot = (emb - patched).reshape(1, C.LATENT_SLOTS, -1, emb.shape[-1])
    assert torch.all(per_slot[:, : C.ANCHORS] == 0)  # no pose, not even the conv bias, on anchor slots
    assert torch.all(per_slot[:, C.ANCHORS :].abs().sum(dim=(2, 3)) > 0)
    assert isinstance(tr, WanAnimateTransformer3DModel)
    for motion_vec in trace["face"]:
        assert motion_vec.shape[1] == C.LATENT_SLOTS
        assert torch.all(motion_vec[:, : C.ANCHORS] == 0) and motion_vec[:, C.ANCHORS :].abs().sum() > 0


def test_timesteps_sigmas_and_noise_seeds(trace):
    sig = denoise.flow_sigmas(STEPS, C.SHIFT)
    got = [float(call["timestep"][0]) for call in trace["dit"][:STEPS]]
    want = [float(torch.tensor(1000 * s).to(torch.bfloat16).float()) for s in sig[:STEPS]]
    assert got == want
    assert sig[0] == 1.0 and abs(sig[1] - 5 * 0.5 / (1 + 4 * 0.5)) < 1e-12
    assert trace["seeds"] == [0, 42, 84]
    twenty = denoise.flow_sigmas(20)
    assert [round(s, 5) for s in twenty[:3]] == [1.0, 0.98958, 0.97826] and round(twenty[19], 5) == 0.20833


def test_vae_encodes_only_reference_views_memory_frames_and_pose(trace):
    shapes = trace["encode"]
    singles = [s for s in shapes if s[2] == 1]
    poses = [s for s in shapes if s[2] == C.CHUNK_FRAMES]
    assert len(poses) == 3  # one 77-frame pose encode per chunk
    assert len(singles) == 1 + 1 + 2  # reference, one extra view, two sampled memory frames
    assert len(shapes) == len(singles) + len(poses)  # nothing decoded is re-encoded to carry over


def test_each_latent_decoded_exactly_once_and_prompt_encoded_once(trace):
    assert trace["decoder_calls"] == 3 * C.GENERATED_LATENTS
    assert trace["prompts"] == 1


def test_clip_sees_reference_then_previous_last_frame(trace):
    cfg, m = trace["cfg"], trace["models"]
    frames = trace["clip_frames"]
    assert len(frames) == 3
    assert frames[0].shape == (cfg.height, cfg.width, 3)
    for c in (1, 2):
        last = list(iter_decode_frames(m.vae, load_chunk_latents(cfg.resume_dir, c - 1)))[-1]
        assert np.array_equal(frames[c], last)
