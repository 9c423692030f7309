"""Exact pinned host allocations for `--offload blocks`, set up and then checked with a probe tensor.

Why: `Tensor.pin_memory()` allocates through torch's CUDA host allocator (the CachingHostAllocator), which
rounds a request up to a power of two while it is at most `pinned_max_round_threshold_mb`
(ATen/core/CachingHostAllocator.h, torch 2.13; default: no limit). Group offloading pins every weight
separately, so a 5120 x 13824 bf16 FFN weight (135 MiB) takes 256 MiB: 47.9 GiB of pinned RAM for the
32.2 GiB DiT (25.4 for 17.2 with FP8). We set the threshold to 1 MiB -- but torch accepts any key of its
allocator settings silently (an unknown or misspelt one too), so setting it proves nothing. The first pin of
the run is therefore a probe of a known size just above a power of two: the host allocator's statistics say
how many bytes it handed out for it. Where rounding persists, the memory model predicts with the rounded
sizes (footprint.predict(pinned_rounded=True)) and `auto` chooses with them; the run says so once.

Called from device.choose on CUDA, before the memory mode is chosen (CUDA is initialised there anyway);
`runtime.offload_blocks` calls it again and gets the cached answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

PINNED_ROUND_THRESHOLD_MB = 1  # above this, pinned allocations are exact (biases and norms below it still round)
# A probe just above a power of two: exact it takes 3.06 MiB, rounded 4 MiB (31 % more); far above the 1 MiB
# threshold, far below anything that could fail to pin.
PROBE_BYTES = 3 * 2**20 + 64 * 2**10
EXACT_WITHIN = 1.05  # handed-out bytes / requested at most this: exact (allows the allocator's alignment)
STAT_KEY = "active_bytes.current"  # torch.cuda.host_memory_stats(): bytes of the blocks handed out right now


@dataclass(frozen=True)
class PinnedSizes:
    exact: bool  # False: rounded, or not verifiable (then assumed rounded: the safe prediction)
    requested: int  # probe bytes asked for
    handed_out: int | None  # bytes the allocator handed out for it (None: no statistics)
    note: str  # one line for the run's log ("" when exact)

    def to_dict(self) -> dict:
        return {"exact": self.exact, "requested": self.requested, "handed_out": self.handed_out, "note": self.note}


def set_round_threshold() -> bool:
    """Ask torch to size pinned allocations above PINNED_ROUND_THRESHOLD_MB exactly; False where this torch has
    no allocator-settings call (the setting being accepted does not mean it is honoured: see check_pinned_sizes)."""
    import torch

    try:
        torch._C._accelerator_setAllocatorSettings(f"pinned_max_round_threshold_mb:{PINNED_ROUND_THRESHOLD_MB}")
    except (AttributeError, RuntimeError):
        return False
    return True


def judge(requested: int, handed_out: int | None) -> PinnedSizes:
    """Exact, rounded or unknown, from what the allocator handed out for a probe of `requested` bytes."""
    if handed_out is None or handed_out <= 0:
        return PinnedSizes(False, requested, handed_out, "could not verify that pinned host memory is sized exactly "
                           "(no host-allocator statistics); host RAM for --offload blocks is predicted with power-of-two sizes")  # fmt: skip
    if handed_out <= requested * EXACT_WITHIN:
        return PinnedSizes(True, requested, handed_out, "")
    return PinnedSizes(False, requested, handed_out, f"torch rounds pinned host memory up ({requested} bytes took {handed_out}); "
                       "host RAM for --offload blocks is predicted with the rounded sizes")  # fmt: skip


@cache
def check_pinned_sizes() -> PinnedSizes:
    """Set the threshold, pin a probe, and judge the bytes the host allocator handed out for it (cached: the
    answer holds for the process). Needs CUDA (pinned memory is CUDA's)."""
    import torch

    set_round_threshold()
    try:
        before = torch.cuda.host_memory_stats().get(STAT_KEY)
        probe = torch.empty(PROBE_BYTES, dtype=torch.uint8).pin_memory()
        after = torch.cuda.host_memory_stats().get(STAT_KEY)
    except RuntimeError:  # no CUDA host allocator to ask: unverifiable, predicted rounded
        return judge(PROBE_BYTES, None)
    del probe  # back to the allocator's cache (3-4 MiB), reused by the first weight of that size class
    handed = None if before is None or after is None else after - before
    return judge(PROBE_BYTES, handed)
