"""Pinned host sizes are checked at the first pin, not assumed (issue 18): a probe tensor's handed-out bytes
say whether torch honoured `pinned_max_round_threshold_mb`. Where it did not (a torch that accepts the
setting silently, or one without host-allocator statistics), `--offload blocks` is predicted -- and `auto`
chooses -- with the rounded sizes, and the run says so once. The allocator is a fake (tests/helpers.py):
this machine's torch has no CUDA host allocator."""

from __future__ import annotations

import pytest
import torch
from helpers import FakeHostAllocator

from animate_cli.errors import DeviceError
from animate_cli.models import device as devmod
from animate_cli.models import footprint as F
from animate_cli.models import pinned, runtime


@pytest.fixture()
def gpu_24gb(monkeypatch):
    total = 24564 * 2**20
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (total - 400 * 2**20, total))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA GeForce RTX 4090")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


@pytest.mark.parametrize(("alloc", "exact"), [(dict(), True), (dict(honours=False), False), (dict(stats=False), False),
                                              (dict(raises=True), False)])  # fmt: skip
def test_the_probe_judges_what_the_allocator_handed_out(monkeypatch, alloc, exact):
    fake = FakeHostAllocator(**alloc).install(monkeypatch)
    got = pinned.check_pinned_sizes()
    assert fake.settings == [f"pinned_max_round_threshold_mb:{pinned.PINNED_ROUND_THRESHOLD_MB}"]
    assert got.exact is exact and got.requested == pinned.PROBE_BYTES
    if alloc.get("stats", True):
        assert got.handed_out == (pinned.PROBE_BYTES if exact else 4 * 2**20)
    assert (got.note == "") is exact and "\n" not in got.note
    assert pinned.check_pinned_sizes() is got  # asked once per process


def test_rounding_raises_the_blocks_prediction_to_the_rounded_figures():
    for wd in F.WEIGHTS_DTYPES:
        exact = F.predict(832, 480, "blocks", wd)
        rounded = F.predict(832, 480, "blocks", wd, pinned_rounded=True)
        groups = F.table()["weights"]["dit"]["groups"]
        extra = sum(g[f"pinned_{wd}"] - g[wd] for g in groups if g["name"] != "unmatched") / F.GIB
        assert rounded.host_phases["run"] == pytest.approx(exact.host_phases["run"] + extra, abs=0.02)
        assert rounded.gpu_gib == exact.gpu_gib
        assert F.predict(832, 480, "none", wd, pinned_rounded=True) == F.predict(832, 480, "none", wd)  # nothing pinned
    assert F.predict(832, 480, "blocks", "bf16", pinned_rounded=True).host_gib > 50  # issue 18's ~52 GiB, not 36.9


def test_auto_chooses_with_the_rounded_figure_and_says_so_once(gpu_24gb, monkeypatch):
    exact = F.predict(832, 480, "blocks", "bf16").host_gib
    rounded = F.predict(832, 480, "blocks", "bf16", pinned_rounded=True).host_gib
    host = (exact + rounded) / 2  # enough RAM for exact pinned copies, not for rounded ones
    FakeHostAllocator().install(monkeypatch)
    dev = devmod.choose("cuda", "bf16", allow_cpu=False, size=(832, 480), host_gib=host)
    assert (dev.offload, dev.notes) == ("blocks", ())
    assert dev.memory_mode["predicted_host_gib"] == exact and dev.memory_mode["pinned_sizes"]["exact"] is True

    FakeHostAllocator(honours=False).install(monkeypatch)
    with pytest.raises(DeviceError, match="no memory mode fits") as e:
        devmod.choose("cuda", "bf16", allow_cpu=False, size=(832, 480), host_gib=host)
    assert f"blocks/bf16 {F.predict(832, 480, 'blocks', 'bf16').gpu_gib:.1f} GiB GPU + {rounded:.1f} GiB host" in e.value.message
    dev = devmod.choose("cuda", "bf16", allow_cpu=False, size=(832, 480), host_gib=rounded + 1)
    assert dev.memory_mode["predicted_host_gib"] == rounded
    assert len(dev.notes) == 1 and "rounds pinned host memory up" in dev.notes[0]


def test_offload_blocks_checks_before_the_first_weight_is_pinned(monkeypatch):
    """runtime.offload_blocks asks pinned.check_pinned_sizes before pinning anything (cached, so once)."""
    order = []
    monkeypatch.setattr(pinned, "check_pinned_sizes", lambda: order.append("check"))
    monkeypatch.setattr(runtime, "pin_in_place", lambda tensors: order.append("pin") or 0)
    import diffusers.hooks

    monkeypatch.setattr(diffusers.hooks, "apply_group_offloading", lambda module, **kw: order.append("offload"))
    m = torch.nn.Module()
    m.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])
    runtime.offload_blocks(m, m, None, "cuda:0")  # a torch.device("cuda:0") needs no GPU; nothing here touches one
    assert order == ["check", "pin", "offload"] * 2  # per model, before its first pin (the answer is cached)
