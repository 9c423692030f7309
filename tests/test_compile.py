"""`--compile` has no graph breaks and no recompiles in any memory mode (issue 18), counted on the CPU with
dynamo's eager backend on a 4-block tiny DiT (tests/support/compile_check.py). Before: 25 breaks with FP8 (diffusers'
layerwise-casting hook around each Linear), 4 with block offloading (its onload/offload inside the compiled
call). A compiled step equals an eager one bit for bit (the eager backend runs the traced graph as is)."""

from __future__ import annotations

import pytest
from support import compile_check


@pytest.mark.parametrize(("offload", "weights_dtype"), compile_check.MODES)
def test_no_graph_breaks_no_recompiles(offload, weights_dtype):
    got = compile_check.count_mode(offload, weights_dtype, steps=2)
    assert (got["graph_breaks"], got["recompiles"], got["graphs"]) == (0, 0, 1), got
    assert got["equal_to_eager"]


def test_the_counter_sees_breaks_and_recompiles():
    """The counts are real: a function with a break, called with two dtypes, is counted as such."""
    import torch

    def f(x):
        torch._dynamo.graph_break()
        return x * 2

    g = torch.compile(f, backend="eager")
    with compile_check.counting() as count:
        g(torch.ones(2))
        g(torch.ones(2, dtype=torch.float64))
    assert count.graph_breaks >= 1 and count.recompiles >= 1 and count.break_reasons


def test_diffusers_regional_compile_did_break(monkeypatch):
    """The contrast: diffusers' compile_repeated_blocks (compiling the hook-wrapped call) on FP8 breaks."""
    import torch

    from animate_cli.models import runtime
    from animate_cli.rollout.denoise import denoise_chunk

    tr = compile_check.tiny_dit()
    runtime.cast_blocks_fp8(tr, torch.bfloat16)
    tr.compile_repeated_blocks(backend="eager")
    with compile_check.counting() as count:
        denoise_chunk(tr, compile_check.tiny_chunk(tr), steps=1)
    assert count.graph_breaks >= 20
