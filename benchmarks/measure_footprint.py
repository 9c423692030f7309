"""Measure the GPU memory of every stage of a run by executing the real modules at full size on fake
tensors (torch FakeTensorMode): shapes, dtypes and storages exist, data does not, so a 14B model and a
37k-token DiT step cost seconds of CPU and no memory. Produces the table `animate_cli.models.footprint` ships
(`scripts/make_footprint_table.py` writes src/animate_cli/footprint_table.json).

What is measured (fake CPU tensors, see FAKE_DEVICE; only fake tensors are counted, so the real uint8
frames handed to encode.* are not, which matches the GPU where their upload is freed before the VAE runs):
    activations  peak of live storage bytes created during one call of our own code path, per phase:
                 prompt (umT5-XXL, 512 tokens), clip (encode.clip_embed of one frame), vae_encode_pose
                 (encode.vae_encode of 77 pose frames), dit_step (rollout.denoise_chunk, one Euler step,
                 K=4 anchors + motion slot, 77 face frames of 512 px), decode (decode.iter_decode_pixels of
                 20 latents + the GPU half of decode.to_uint8). Inputs of the call are counted, weights not.
    weights      counted structurally from the module tree (meta device), per dtype as from_pretrained
                 loads them (bf16, `_keep_in_fp32_modules` in fp32), with FP8 (1 byte) for exactly the
                 nn.Linear layers inside the DiT's `blocks` (what models.load_models casts); grouped as
                 diffusers 0.42.1 block-level group offloading groups them (see `offload_groups`), with
                 the pinned-host size of every tensor (torch's pinned allocator rounds each allocation up
                 to a power of two by default: CachingHostAllocator.h, `pinned_max_round_threshold`).
Byte counts follow torch.cuda.max_memory_allocated: each storage rounded up to 512 bytes.
"""

from __future__ import annotations

import contextlib
import weakref

import numpy as np
from full_configs import FULL_CLIP, FULL_TRANSFORMER, FULL_UMT5, FULL_VAE, IMAGE_TOKENS

from animate_cli import config as C

CUDA_BLOCK = 512  # the CUDA caching allocator rounds every allocation up to a multiple of 512 bytes
# Fake CPU tensors, not fake CUDA ones: torch 2.13's FakeTensorMode does create fake CUDA tensors on a CPU-only
# build, but indexing assignment (`cond[:, :, :k] = anchors` in rollout.build_condition) takes a CUDA device guard
# in the Python binding and fails with "not linked with support for cuda devices". Memory is the same on either
# device; the one CUDA-specific choice that matters, the attention kernel, is made explicitly (flash_attention_mode).
FAKE_DEVICE = "cpu"


def _round_cuda(n: int) -> int:
    return -(-n // CUDA_BLOCK) * CUDA_BLOCK


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else n


# --- live-bytes accounting ----------------------------------------------------------------------
def live_bytes_mode(device_type: str = FAKE_DEVICE):
    """A TorchDispatchMode that sums the storage bytes of live fake tensors on `device_type` allocated by ops run
    under it (each new output storage, once; views and in-place results are not new), freed by a weakref finalizer on the
    storage (torch keeps a storage's Python object alive as long as the storage lives). `.peak` is the
    maximum of the running sum; `.largest` the biggest single storage (bytes, shape)."""
    from torch._subclasses.fake_tensor import FakeTensor  # noqa: PLC2701 (no public path in torch)
    from torch.utils._python_dispatch import TorchDispatchMode  # noqa: PLC2701 (no public path in torch)
    from torch.utils._pytree import tree_leaves  # noqa: PLC2701 (no public path in torch)

    class LiveBytes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live: dict[int, int] = {}
            self.now = self.peak = 0
            self.largest: tuple[int, tuple] = (0, ())

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            # An output sharing an input's storage (a view, an in-place op) allocated nothing: never count it,
            # or a view of a weight (F.linear's transpose) would add the weight's bytes as an activation.
            inputs = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, FakeTensor)}
            out = func(*args, **kwargs)
            for t in tree_leaves(out):
                if isinstance(t, FakeTensor) and t.device.type == device_type:
                    self._track(t, inputs)
            return out

        def _track(self, t, inputs: set[int]) -> None:
            st = t.untyped_storage()
            key = st._cdata
            if key in self.live or key in inputs:
                return
            n = _round_cuda(st.nbytes())
            self.live[key] = n
            self.now += n
            self.peak = max(self.peak, self.now)
            if n > self.largest[0]:
                self.largest = (n, tuple(t.shape))
            weakref.finalize(st, self._free, key)

        def _free(self, key: int) -> None:
            self.now -= self.live.pop(key, 0)

    return LiveBytes()


def flash_attention_mode():
    """Route F.scaled_dot_product_attention to the fused kernels' own ops.

    Why: the sdpa front door picks a kernel by asking the device; on fake tensors that question has no real
    answer. Where it decomposes (autograd, other torch versions) it takes the math path, which materialises
    the [B, H, L, L] score matrix (37,440^2 x 40 heads at 480p: 100+ GiB); torch 2.13 instead hands the whole
    `aten.scaled_dot_product_attention` to the fake mode, whose meta function returns only the output. On the
    GPU the DiT, CLIP and VAE run flash / memory-efficient / cuDNN attention, whose memory is the output plus
    a [B, H, L] fp32 logsumexp. So the call is made to those ops explicitly, making the estimate that of the
    fused kernels whatever the fake dispatcher would do: no mask, head dim <= 256, half precision -> the flash
    op (`aten._scaled_dot_product_flash_attention`); otherwise (umT5's position-bias mask, the VAE's single
    384-wide head) -> the memory-efficient op. Both have meta kernels, so fake tensors go through them.
    """
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    def fused(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if attn_mask is None and query.shape[-1] <= 256 and query.dtype in (torch.bfloat16, torch.float16):
            return torch.ops.aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, scale=scale)[0]
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = torch.zeros(attn_mask.shape, dtype=query.dtype, device=query.device).masked_fill(~attn_mask, -1e4)
        if attn_mask is not None:
            attn_mask = attn_mask.to(query.dtype).expand(query.shape[0], query.shape[1], query.shape[2], key.shape[2])
        return torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, attn_mask, False, dropout_p, is_causal, scale=scale
        )[0]

    class FlashAttention(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.scaled_dot_product_attention:
                return fused(*args, **(kwargs or {}))
            return func(*args, **(kwargs or {}))

    return FlashAttention()


@contextlib.contextmanager
def measuring(route_attention: bool = True):
    """Fake tensors on FAKE_DEVICE + (optionally) the attention routing + live-byte tracking; yields the tracker."""
    import torch

    tracker = live_bytes_mode()
    attn = flash_attention_mode() if route_attention else contextlib.nullcontext()
    with fake_mode(), attn, tracker, torch.inference_mode():
        yield tracker


_FAKE = None


def fake_mode():
    """One FakeTensorMode for everything (fake modules and their inputs must share it). Real CPU tensors
    (torch.from_numpy of our uint8 frames) are allowed in and become fake on their first op."""
    global _FAKE
    if _FAKE is None:
        from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: PLC2701 (no public path in torch)

        _FAKE = FakeTensorMode(allow_non_fake_inputs=True)
    return _FAKE


# --- models -------------------------------------------------------------------------------------
def _dtype_for(name: str, keep: list[str], dtype):
    import torch

    return torch.float32 if any(k in name.split(".") for k in keep) else dtype


def meta_model(kind: str):
    """The full-size model on the meta device, floating tensors in the dtypes from_pretrained(torch_dtype=bf16)
    gives them (bf16; the modules the library keeps in fp32 stay fp32; integer buffers unchanged)."""
    import torch

    with torch.device("meta"):
        if kind == "dit":
            from diffusers import WanAnimateTransformer3DModel

            m = WanAnimateTransformer3DModel(**FULL_TRANSFORMER)
        elif kind == "vae":
            from diffusers import AutoencoderKLWan

            m = AutoencoderKLWan(**FULL_VAE)
        elif kind == "clip":
            from transformers import CLIPVisionConfig, CLIPVisionModel

            m = CLIPVisionModel(CLIPVisionConfig(**FULL_CLIP, attn_implementation="sdpa"))
        elif kind == "umt5":
            from transformers import UMT5Config, UMT5EncoderModel

            m = UMT5EncoderModel(UMT5Config(**FULL_UMT5, attn_implementation="sdpa"))
        else:
            raise ValueError(kind)
    # diffusers keeps `_keep_in_fp32_modules` in fp32 for any torch_dtype; transformers only for fp16, except
    # `_keep_in_fp32_modules_strict` (umT5 lists its FFN `wo` as the non-strict kind: bf16 when loaded in bf16).
    strict = getattr(m, "_keep_in_fp32_modules_strict", None)
    keep = list((strict if kind in ("clip", "umt5") else getattr(m, "_keep_in_fp32_modules", None)) or [])
    for name, t in [*m.named_parameters(), *m.named_buffers()]:
        if t.is_floating_point():
            t.data = t.data.to(_dtype_for(name, keep, torch.bfloat16))
    return m.eval().requires_grad_(False)


def fake_model(kind: str):
    """meta_model(kind) with every parameter and buffer a fake tensor on FAKE_DEVICE (same shapes and dtypes)."""
    m = meta_model(kind)
    with fake_mode():
        return m.to_empty(device=FAKE_DEVICE)


# --- weights, structurally ------------------------------------------------------------------------
def _fp8_names(kind: str) -> set[str]:
    """Qualified names of the parameters stored in FP8: what runtime.cast_blocks_fp8 (diffusers' layerwise
    casting with our skip pattern) casts, read off a meta model it was applied to."""
    import torch

    from animate_cli.models.runtime import cast_blocks_fp8

    model = meta_model(kind)
    cast_blocks_fp8(model, torch.bfloat16)
    return {n for n, p in model.named_parameters() if p.dtype == torch.float8_e4m3fn}


def _tensor_bytes(t, fp8: bool) -> int:
    return t.numel() * (1 if fp8 else t.element_size())


def offload_groups(model) -> list[tuple[str, list[str]]]:
    """The groups diffusers 0.42.1 `_apply_group_offloading_block_level` builds with num_blocks_per_group=1
    (forced to 1 when use_stream=True) and no `block_modules`: every direct child that is a ModuleList or
    Sequential contributes one group per element (named `<child>.<i>`); everything else -- the other direct
    children and the root's own parameters/buffers -- forms one "unmatched" group, which is moved without a
    stream (synchronously, no pinned copy), onloaded when the model's forward starts and offloaded when it
    ends. Returns (group name, qualified tensor names) in module order, the unmatched group last.
    For CLIPVisionModel, AutoencoderKLWan and UMT5EncoderModel no direct child is a list, so the whole model
    is one unmatched group: resident exactly while it runs.
    """
    import torch

    groups, unmatched = [], []
    for cname, child in model.named_children():
        if isinstance(child, torch.nn.ModuleList | torch.nn.Sequential):
            for i, block in enumerate(child):
                names = [f"{cname}.{i}.{n}" for n, _ in [*block.named_parameters(), *block.named_buffers()]]
                groups.append((f"{cname}.{i}", names))
        else:
            unmatched += [f"{cname}.{n}" for n, _ in [*child.named_parameters(), *child.named_buffers()]]
    unmatched += [n for n, _ in [*model.named_parameters(recurse=False), *model.named_buffers(recurse=False)]]
    groups.append(("unmatched", unmatched))
    return groups


def weight_table(kind: str) -> dict:
    """Bytes of a model's weights (bf16 as loaded; and, for the DiT, with the Linears
    runtime.cast_blocks_fp8 casts in FP8), per offload group,
    with the pinned-host bytes of the streamed groups."""
    import torch

    model = meta_model(kind)
    tensors = dict([*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)])
    seen: set[int] = set()  # tied weights (umT5's shared embedding = encoder.embed_tokens) count once
    fp8 = _fp8_names(kind) if kind == "dit" else set()
    out = {"bf16": 0, "fp8": 0, "groups": []}
    for gname, names in offload_groups(model):
        g = {"name": gname, "bf16": 0, "fp8": 0, "pinned_bf16": 0, "pinned_fp8": 0}
        for n in names:
            t = tensors[n]
            if id(t) in seen:
                continue
            seen.add(id(t))
            b16, b8 = _tensor_bytes(t, False), _tensor_bytes(t, n in fp8)
            g["bf16"] += _round_cuda(b16)
            g["fp8"] += _round_cuda(b8)
            g["pinned_bf16"] += _pow2(b16)
            g["pinned_fp8"] += _pow2(b8)
        out["bf16"] += g["bf16"]
        out["fp8"] += g["fp8"]
        out["groups"].append(g)
    if kind == "dit":
        # layerwise casting upcasts one Linear to bf16 for its forward and casts it back after: the largest
        # such Linear in bf16 plus its fresh fp8 copy is the transient the FP8 modes add to a DiT step.
        sizes = [sum(_tensor_bytes(p, False) for p in m.parameters(recurse=False))
                 for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and f"{n}.weight" in fp8]  # fmt: skip
        out["fp8_cast_transient"] = _round_cuda(max(sizes)) + _round_cuda(max(sizes) // 2)
    else:
        out["groups"] = [g for g in out["groups"] if g["bf16"]]
    if kind == "umt5":
        out["offloaded_peak"] = _umt5_offloaded_peak(model)
    return out


def _umt5_offloaded_peak(model) -> int:
    """GPU weight bytes of umT5 under runtime.offload_text_encoder (block level on `encoder`, no stream): the
    encoder's unmatched group (the shared token embedding, the final norm) plus its largest block, the one
    on the GPU while it runs."""
    tensors = dict([*model.encoder.named_parameters(), *model.encoder.named_buffers()])  # shared weight once
    sizes = {g: sum(_round_cuda(_tensor_bytes(tensors[n], False)) for n in names if n in tensors)
             for g, names in offload_groups(model.encoder)}  # fmt: skip
    return sizes.pop("unmatched") + max(sizes.values())


# --- activations, by running our code on fake tensors ---------------------------------------------
# Each phase returns (peak activation bytes, (bytes, shape) of its largest single tensor).
Peak = tuple[int, tuple[int, tuple]]


def dit_step(tr, width: int, height: int, order: list | None = None) -> Peak:
    """Peak activation bytes of one rollout.denoise_chunk step at (width, height), chunk >= 1 layout
    (K = 4 anchors, a motion latent), 77 face frames. Appends the executed group order to `order`."""
    import torch

    from animate_cli.rollout.denoise import ChunkInputs, denoise_chunk

    h, w = height // C.VAE_STRIDE_S, width // C.VAE_STRIDE_S
    s = tr.config.motion_encoder_size
    handles = []
    if order is not None:
        for name in ("blocks", "face_adapter"):
            for i, m in enumerate(getattr(tr, name)):
                handles.append(m.register_forward_pre_hook(lambda *_a, _n=f"{name}.{i}": order.append(_n)))
    f32, bf16 = dict(device=FAKE_DEVICE, dtype=torch.float32), dict(device=FAKE_DEVICE, dtype=torch.bfloat16)
    try:
        with measuring() as mem:
            inputs = ChunkInputs(
                anchors=torch.empty(1, 16, C.ANCHORS, h, w, **f32), motion=torch.empty(1, 16, C.MOTION_LATENTS, h, w, **f32),
                pose=torch.empty(1, 16, C.GENERATED_LATENTS, h, w, **f32), face=torch.empty(1, 3, C.CHUNK_FRAMES, s, s, **bf16),
                clip=torch.empty(1, IMAGE_TOKENS, FULL_CLIP["hidden_size"], **bf16),
                text=torch.empty(1, C.TEXT_TOKENS, FULL_TRANSFORMER["text_dim"], **f32),
                noise=torch.empty(1, 16, C.LATENT_SLOTS, h, w, **f32),
            )  # fmt: skip
            denoise_chunk(tr, inputs, steps=1)
    finally:
        for hd in handles:
            hd.remove()
    return mem.peak, mem.largest


def vae_encode_pose(vae, width: int, height: int) -> Peak:
    """Peak activation bytes of encode.vae_encode on one chunk's 77 pose frames."""
    from animate_cli.rollout.encode import vae_encode

    frames = np.zeros((C.CHUNK_FRAMES, height, width, 3), np.uint8)
    with measuring() as mem:
        vae_encode(vae, frames)
    return mem.peak, mem.largest


def decode(vae, width: int, height: int) -> Peak:
    """Peak activation bytes of the streamed decode of 20 latents (decode.iter_decode_pixels) and the GPU half
    of decode.to_uint8 (float, scale, clamp, uint8) applied to each piece before it goes to the host."""
    import torch

    from animate_cli.rollout.decode import iter_decode_pixels

    h, w = height // C.VAE_STRIDE_S, width // C.VAE_STRIDE_S
    with measuring() as mem:
        latents = torch.empty(1, 16, C.GENERATED_LATENTS, h, w, device=FAKE_DEVICE, dtype=torch.float32)
        for piece in iter_decode_pixels(vae, latents):
            frames = ((piece[0].float() + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0)
            del piece, frames
    return mem.peak, mem.largest


def clip(image_encoder, width: int, height: int) -> Peak:
    """Peak activation bytes of encode.clip_embed on one W x H frame."""
    from animate_cli.rollout.encode import clip_embed

    with measuring() as mem:
        clip_embed(image_encoder, np.zeros((height, width, 3), np.uint8))
    return mem.peak, mem.largest


def prompt(enc) -> Peak:
    """Peak activation bytes of models.encode_prompt's umT5 call on 512 tokens (plus its masking and fp32 cast)."""
    import torch

    with measuring() as mem:
        ids = torch.zeros(1, C.TEXT_TOKENS, dtype=torch.long, device=FAKE_DEVICE)
        mask = torch.ones(1, C.TEXT_TOKENS, dtype=torch.long, device=FAKE_DEVICE)
        emb = enc(ids, mask).last_hidden_state
        (emb * mask[..., None].to(emb.dtype)).float()
    return mem.peak, mem.largest


def measure(sizes: list[tuple[int, int]]) -> dict:
    """The whole table: weights (size-independent) and per-size activation peaks for each phase."""
    import diffusers
    import torch

    weights = {k: weight_table(k) for k in ("dit", "vae", "clip", "umt5")}
    tr, vae, image_encoder, enc = (fake_model(k) for k in ("dit", "vae", "clip", "umt5"))
    order: list[str] = []
    points = []
    const = {"prompt": prompt(enc)[0]}  # neither depends on the output size (512 tokens; CLIP resizes to 224)
    for width, height in sizes:
        tokens = C.LATENT_SLOTS * (height // C.VAE_STRIDE_S // C.PATCH) * (width // C.VAE_STRIDE_S // C.PATCH)
        dit_peak, largest = dit_step(tr, width, height, order if not points else None)
        points.append({
            "size": [width, height], "tokens": tokens,
            "activations": {"prompt": const["prompt"], "clip": clip(image_encoder, width, height)[0],
                            "vae_encode_pose": vae_encode_pose(vae, width, height)[0], "dit_step": dit_peak,
                            "decode": decode(vae, width, height)[0]},
            "dit_largest_tensor_bytes": largest[0],
        })  # fmt: skip
    cfg = FULL_TRANSFORMER
    return {
        "about": "GPU/host memory model inputs, measured by benchmarks/measure_footprint.py "
        "(real modules, full size, fake tensors). Regenerate: python scripts/make_footprint_table.py",
        "torch": torch.__version__.split("+")[0], "diffusers": diffusers.__version__, "fake_device": FAKE_DEVICE,
        "dit": {"num_layers": cfg["num_layers"], "dim": cfg["num_attention_heads"] * cfg["attention_head_dim"],
                "ffn_dim": cfg["ffn_dim"], "inject_face_latents_blocks": cfg["inject_face_latents_blocks"],
                "face_heads": cfg["face_encoder_num_heads"], "execution_order": order},
        "weights": weights,
        "points": points,
    }  # fmt: skip
