"""How the loaded models store weights and compute: FP8 storage, group offloading, attention backend,
regional compile. Set up once, by `models.load_models` (and the GPU benchmark), in this order:

    LoRA fused (dit_stream.py) -> FP8 layerwise casting -> compile (the blocks' own forward) -> group offloading
    -> attention backend

LoRA first, because fusing into FP8 or offloaded weights would lose precision or fail (an FP8 DiT is
fused and cast weight by weight as it is read, dit_stream.py, which sets the casting up on the empty
model: the same order, one tensor at a time, and `cast_blocks_fp8` then only counts); casting before
offloading, so the pinned host copies are FP8 too (half the host RAM and half the bytes streamed per
block). The chunk loop never sees any of this: it asks `device.execution_device(module)` where to
put its inputs, and diffusers' hooks do the rest.

Which attention backend (models/attention.py) and whether the pinned allocator sizes exactly (models/pinned.py)
are decided before loading; this module sets them up. No torch import at module level.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from functools import cache

# FP8 storage for the Linear layers of the repeated parts of the DiT: the 40 transformer blocks (40 x ~0.4 B
# params) and the 8 face-adapter cross-attentions (8 x ~0.1 B), 98 % of its weight bytes. diffusers' default skip
# list (patch_embed, norm, proj_in/out, plus this class's patch_embedding, condition_embedder, norm) would
# still cast the motion encoder, face encoder and embeddings, which are small and run once per step at the
# model's input; this pattern skips every module whose name does not start with `blocks` or `face_adapter`.
FP8_SKIP_PATTERN = r"^(?!(?:blocks|face_adapter)\b)\w"


class ForwardTimer:
    """Wall time of each forward of a module, device-synchronised at both ends.

    With --compile the first DiT forward also traces and compiles the blocks; compile time is
    reported as the first forward minus the median of the later ones (so it also holds the one-off
    warm-up a first forward has anyway: kernel loading, allocator growth, under offload the
    synchronous first pass; well under a second against a compile of tens of seconds).
    """

    def __init__(self, module, device):
        self.device, self.times, self._t = device, [], 0.0
        self._handles = [module.register_forward_pre_hook(self._start), module.register_forward_hook(self._end)]

    def _sync(self):
        import torch

        if str(self.device).startswith("cuda"):
            torch.cuda.synchronize(self.device)

    def _start(self, *_):
        self._sync()
        self._t = time.perf_counter()

    def _end(self, *_):
        self._sync()
        self.times.append(time.perf_counter() - self._t)

    def compile_seconds(self) -> float | None:
        if len(self.times) < 2:
            return None
        return max(0.0, self.times[0] - statistics.median(self.times[1:]))


@dataclass
class Prepared:
    """What `prepare` set up (for the run summary)."""

    attention: str  # diffusers backend name actually set ("native", "flash", "_flash_3", "sage")
    fp8_modules: int  # Linear layers stored in FP8
    timer: ForwardTimer | None  # forward times of the DiT, with --compile


def cast_blocks_fp8(transformer, compute_dtype) -> int:
    """FP8 (e4m3) storage for the Linear layers of the blocks and face adapters; computed in `compute_dtype`.

    Returns the number of FP8 layers. Each layer is upcast just before its forward and cast back after.
    A model already set up (dit_stream.load_dit casts as it loads) keeps its hooks and is only counted.
    """
    import torch

    if not fp8_layers(transformer):
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype,
                                             skip_modules_pattern=(FP8_SKIP_PATTERN,))  # fmt: skip
    return fp8_layers(transformer)


def fp8_layers(transformer) -> int:
    """How many Linear layers of `transformer` store their weight in FP8."""
    import torch

    return sum(1 for m in transformer.modules() if isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float8_e4m3fn)


def offload_blocks(transformer, vae, image_encoder, device) -> None:
    """diffusers group offloading: each model's weights live in pinned host memory and are on the GPU only
    while their part runs. `image_encoder` None: CLIP stays resident (footprint.clip_resident).

    Block level everywhere, one block per group, on a side CUDA stream that prefetches the next block
    while the current one computes (non-blocking copies from pinned memory). Block level rather than
    leaf level: one transfer per transformer block instead of one synchronisation per Linear/conv,
    and leaf level would save nothing that matters here (activations, not weights, are the VAE's
    and CLIP's peak). The VAE uses its class's own groups (encoder, decoder and the two quant convs
    separately: decoding never holds the encoder); CLIP's 32 layers are reached through
    vision_model.encoder.layers. Parameters outside any block list (the DiT's embeddings, motion
    and face encoders, output head) form one group loaded with the model's forward.
    """
    import torch
    from diffusers.hooks import apply_group_offloading

    from animate_cli.models.pinned import check_pinned_sizes

    kw = dict(onload_device=torch.device(device), offload_device=torch.device("cpu"), offload_type="block_level",
              num_blocks_per_group=1, use_stream=True, non_blocking=True, low_cpu_mem_usage=False)  # fmt: skip
    # VAE: block_modules from AutoencoderKLWan._group_offload_block_modules (diffusers' default when none given)
    models = [(transformer, {}), (vae, {})]
    if image_encoder is not None:
        models.append((image_encoder, {"block_modules": ["vision_model", "encoder"]}))
    for module, extra in models:
        blocks = extra.get("block_modules", getattr(module, "_group_offload_block_modules", None))
        if kw["onload_device"].type == "cuda":  # pinned host memory is CUDA's; onto the CPU there is nothing to pin
            check_pinned_sizes()  # exact sizes before the first weight is pinned (cached: device.choose checked)
            pin_in_place(streamed_tensors(module, blocks))  # before diffusers builds its groups: see pin_in_place
        apply_group_offloading(module, **kw, **extra)


def streamed_tensors(module, block_modules=None):
    """The parameters and buffers that diffusers' block-level offloading with a stream keeps pinned host
    copies of: those of every block of a ModuleList/Sequential child, recursing into the children named in
    `block_modules` (diffusers' `_apply_group_offloading_block_level` grouping rule). The rest forms each
    level's "unmatched" group, which is moved synchronously and never pinned: pinning it would be lost at its
    first offload (`.to(cpu)` makes a pageable copy) while the caching host allocator kept the pinned block.
    """
    import torch

    for name, child in module.named_children():
        if block_modules and name in block_modules:
            yield from streamed_tensors(child, block_modules)
        elif isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
            for block in child:
                yield from block.parameters()
                yield from block.buffers()


def pin_in_place(tensors) -> int:
    """Move each tensor's storage to pinned host memory, one tensor at a time; returns how many moved.

    Why: diffusers 0.42.1 pins a copy of every stream group's tensors while building the groups
    (`ModuleGroup._init_cpu_param_dict` -> `_to_cpu`: `tensor.data.cpu().pin_memory()`) and only releases
    the pageable originals when it offloads them afterwards, so the whole DiT would be in host RAM twice.
    Replacing `.data` by its pinned copy frees each pageable tensor as soon as its copy exists (peak: one
    tensor). diffusers then reuses our storage instead of copying: `.data.cpu()` of a CPU tensor is the
    tensor itself, and `Tensor.pin_memory()` returns the tensor itself when it is already pinned
    (aten/src/ATen/native/Memory.cpp: `if (self.is_pinned(device)) return self;`), so its cpu_param_dict
    holds our pinned storage and nothing is allocated twice.
    """
    moved = 0
    for t in tensors:
        if not t.is_pinned():
            t.data = t.data.pin_memory()
            moved += 1
    return moved


def offload_text_encoder(text_encoder, device) -> None:
    """umT5 under block-level group offloading, without streams: it runs once per run (its embedding is
    cached), so prefetching would buy nothing while pinning its 10.6 GiB of host memory would cost
    seconds. Applied to the encoder stack, whose `block` list holds the 24 layers; the shared
    embedding (tied to `encoder.embed_tokens`) moves with the stack's own group.
    """
    import torch
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(text_encoder.encoder, onload_device=torch.device(device), offload_device=torch.device("cpu"),
                           offload_type="block_level", num_blocks_per_group=1, use_stream=False)  # fmt: skip


# --- regional compile --------------------------------------------------------------------------------
# Two diffusers mechanisms would break the compiled blocks into pieces (counted on the CPU with dynamo's eager backend
# on a 4-block tiny DiT, tests/test_compile.py; docs/gpu-check.md): FP8 layerwise casting, 25 graph breaks (its hook
# casts the module's parameters with `module.to()` around each Linear, which dynamo cannot trace: `nn.Parameter()`),
# and block offloading, 4 (its onload/offload are `torch.compiler.disable`d, and `compile_repeated_blocks` compiles
# the hook-wrapped `Module.__call__`, so they would run inside the compiled call). Both stay out of the graph: FP8
# Linears cast their weight inside their own forward (a traceable op, fused by inductor), and only the block's own
# forward is compiled, before the offload hooks wrap it. 0 breaks and 0 recompiles in every mode.
LAYERWISE_CASTING_HOOK = "layerwise_casting"  # diffusers.hooks.layerwise_casting's hook name (0.42)


@cache
def _cast_linear():
    """The CastLinear class (built on first use: no torch import at module level)."""
    import torch

    class CastLinear(torch.nn.Linear):
        """A Linear stored in FP8 that casts its weight (and bias) to `compute_dtype` inside forward: the
        arithmetic of diffusers' layerwise casting (upcast, F.linear), without mutating parameters."""

        compute_dtype = None

        def forward(self, x):
            bias = None if self.bias is None else self.bias.to(self.compute_dtype)
            return torch.nn.functional.linear(x, self.weight.to(self.compute_dtype), bias)

    return CastLinear


def traceable_fp8(transformer) -> int:
    """Swap diffusers' layerwise-casting hook on every FP8 Linear for a cast inside its forward (for compile).
    Same numbers: both upcast the stored FP8 weight to the compute dtype and call F.linear. Returns how many."""
    import torch

    cast_linear, n = _cast_linear(), 0
    for m in transformer.modules():
        registry = getattr(m, "_diffusers_hook", None)
        if type(m) is not torch.nn.Linear or registry is None or list(registry.hooks) != [LAYERWISE_CASTING_HOOK]:
            continue
        compute = registry.hooks[LAYERWISE_CASTING_HOOK].compute_dtype
        del m.forward, m._diffusers_hook  # the hook's wrapper (an instance attribute) and its registry
        m.__class__ = cast_linear
        m.compute_dtype = compute
        n += 1
    return n


def compile_blocks(transformer, **kwargs) -> int:
    """torch.compile the forward of every repeated block (the class's `_repeated_blocks`, as diffusers'
    `compile_repeated_blocks`), underneath any hook applied afterwards. One graph serves every block: dynamo
    lifts each block's parameters to graph inputs instead of recompiling per block. Returns how many."""
    import torch

    names, n = set(transformer._repeated_blocks), 0
    for m in transformer.modules():
        if type(m).__name__ in names:
            m.forward = torch.compile(m.forward, **kwargs)
            n += 1
    return n


def set_attention(transformer, backend: str) -> None:
    """Route the DiT's attention through diffusers' dispatcher (native is its default already)."""
    if backend == "native":
        return
    import diffusers

    level = diffusers.utils.logging.get_verbosity()
    diffusers.utils.logging.set_verbosity_error()  # "attention backends are experimental" is not for our users
    try:
        transformer.set_attention_backend(backend)
    finally:
        diffusers.utils.logging.set_verbosity(level)


def prepare(transformer, vae, image_encoder, options) -> Prepared:
    """Set up `options` (a models.LoadOptions with resolved offload and attention) on loaded models.

    Resident models (all with `offload == "none"`; CLIP where footprint.clip_resident says) must already be
    on options.device, offloaded ones on the CPU.
    """
    import torch

    from animate_cli.models.device import EXECUTION_DEVICE_ATTR, torch_dtype
    from animate_cli.models.footprint import clip_resident

    fp8 = 0
    if options.weights_dtype == "fp8":
        fp8 = cast_blocks_fp8(transformer, torch_dtype(options.dtype))
    if options.compile:  # before offloading, so its hooks stay outside the compiled blocks (compile_blocks)
        traceable_fp8(transformer)
        compile_blocks(transformer)
    if options.offload == "none":
        transformer.to(options.device)  # a no-op: models.load_models put it there
    else:
        resident = clip_resident(options.offload, options.weights_dtype)
        offload_blocks(transformer, vae, None if resident else image_encoder, options.device)
    for module in (transformer, vae, image_encoder):
        setattr(module, EXECUTION_DEVICE_ATTR, torch.device(options.device))
    set_attention(transformer, options.attention)
    timer = None
    if options.compile:
        timer = ForwardTimer(transformer, options.device)
    return Prepared(options.attention, fp8, timer)
