"""Graph breaks and recompiles of `--compile` (regional compile of the DiT's blocks), per memory mode (docs/gpu-check.md).

A graph break splits the compiled block into pieces run with Python in between; a recompile past dynamo's limit
(8 per code object) makes it give up and run eager -- both silently. `count_mode` sets a DiT up the way
`runtime.prepare` does for --compile (FP8 storage, traceable FP8 Linears, the blocks' own forward compiled,
then group offloading) and counts what dynamo does over a few denoising steps, with dynamo's `eager` backend
(tracing only, no code generation: seconds on a CPU). tests/test_compile.py keeps the counts at zero;
benchmarks/gpu_check.py (d) counts again on a GPU with the real backend and times it.

Group offloading on the CPU runs without its CUDA stream (diffusers refuses one there): the same hooks
around each block, only the copies are synchronous.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

MODES = (("none", "bf16"), ("none", "fp8"), ("blocks", "bf16"), ("blocks", "fp8"))
TINY_BLOCKS = 4  # enough blocks to show a per-block recompile (one graph must serve them all)


@dataclass
class CompileCount:
    graph_breaks: int = 0
    recompiles: int = 0
    graphs: int = 0  # graphs dynamo built (1 = the whole block forward in one piece)
    break_reasons: list = field(default_factory=list)  # first line of each distinct reason
    recompile_reasons: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@contextmanager
def counting():
    """Count dynamo's graph breaks, recompiles and graphs inside the block (dynamo is reset first)."""
    import torch

    dynamo = torch._dynamo  # torch's own compiler front end; its counters are the public way to see breaks
    dynamo.reset()
    counters = dynamo.utils.counters
    counters.clear()
    dynamo.utils.clear_compilation_metrics()
    out = CompileCount()
    yield out
    breaks = counters["graph_break"]
    out.graph_breaks = sum(breaks.values())
    out.break_reasons = sorted({k.strip().splitlines()[0][:200] for k in breaks})
    recompiled = [m for m in dynamo.utils.get_compilation_metrics() if m.recompile_reason]
    out.recompiles = len(recompiled)
    out.recompile_reasons = sorted({str(m.recompile_reason).strip().splitlines()[0][:200] for m in recompiled})
    out.graphs = int(counters["stats"].get("unique_graphs", 0))


def tiny_dit(num_layers: int = TINY_BLOCKS, seed: int = 0):
    """The tiny test DiT (tiny_models.TRANSFORMER_CONFIG) with `num_layers` blocks, random bf16 weights, eval."""
    import torch
    from diffusers import WanAnimateTransformer3DModel

    from .tiny_models import TRANSFORMER_CONFIG

    torch.manual_seed(seed)
    cfg = dict(TRANSFORMER_CONFIG, num_layers=num_layers)
    return WanAnimateTransformer3DModel(**cfg).to(torch.bfloat16).eval().requires_grad_(False)


def tiny_chunk(transformer, h: int = 2, w: int = 4, text_tokens: int = 8, seed: int = 0):
    """Random ChunkInputs for `transformer` at a latent h x w (tiny sizes; float32 as the rollout gives them)."""
    import torch

    from animate_cli import config as C
    from animate_cli.rollout.denoise import ChunkInputs, chunk_noise

    c, g = transformer.config, torch.Generator().manual_seed(seed)
    s = c.motion_encoder_size

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    return ChunkInputs(anchors=rand(1, c.latent_channels, C.ANCHORS, h, w), motion=None,
                       pose=rand(1, c.latent_channels, C.GENERATED_LATENTS, h, w), face=rand(1, 3, C.CHUNK_FRAMES, s, s),
                       clip=rand(1, 257, c.image_dim), text=rand(1, text_tokens, c.text_dim),
                       noise=chunk_noise((1, c.latent_channels, C.LATENT_SLOTS, h, w), seed))  # fmt: skip


def set_up(transformer, offload: str, weights_dtype: str, device: str = "cpu", **compile_kwargs) -> None:
    """runtime.prepare's order for --compile on one DiT: FP8 storage, traceable FP8 Linears, compiled block
    forwards, then group offloading (streamed on CUDA; synchronous on the CPU)."""
    import torch
    from diffusers.hooks import apply_group_offloading

    from animate_cli.models import runtime

    if weights_dtype == "fp8":
        runtime.cast_blocks_fp8(transformer, torch.bfloat16)
    runtime.traceable_fp8(transformer)
    runtime.compile_blocks(transformer, **compile_kwargs)
    if offload == "blocks":
        cuda = device.startswith("cuda")
        apply_group_offloading(transformer, onload_device=torch.device(device), offload_device=torch.device("cpu"),
                               offload_type="block_level", num_blocks_per_group=1, use_stream=cuda, non_blocking=cuda)  # fmt: skip
    elif device != "cpu":
        transformer.to(device)


def count_mode(offload: str, weights_dtype: str, steps: int = 2, backend: str = "eager") -> dict:
    """Counts for one memory mode on the CPU, and whether the compiled steps equal eager ones bit for bit."""
    import torch

    from animate_cli.models import runtime
    from animate_cli.rollout.denoise import denoise_chunk

    eager = tiny_dit()
    if weights_dtype == "fp8":
        runtime.cast_blocks_fp8(eager, torch.bfloat16)
    want = denoise_chunk(eager, tiny_chunk(eager), steps=steps)
    tr = tiny_dit()
    set_up(tr, offload, weights_dtype, backend=backend)
    with counting() as count:
        got = denoise_chunk(tr, tiny_chunk(tr), steps=steps)
    return {"offload": offload, "weights_dtype": weights_dtype, "blocks": TINY_BLOCKS, "steps": steps, **count.to_dict(),
            "equal_to_eager": bool(torch.equal(want, got))}  # fmt: skip
