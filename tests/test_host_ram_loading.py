"""Host-RAM behaviour of the loader (issue 8): pin in place before group offloading, the DiT streamed
tensor by tensor to its home (the GPU when resident), umT5 loaded straight to the GPU.

This machine's torch is a CPU build: `Tensor.pin_memory()` needs a CUDA host allocator, and there is no
CUDA device to load to. So `FakePinning` replaces `torch.Tensor.pin_memory` / `is_pinned` with a fake that
marks tensors by storage address and follows torch's documented semantics (a pinned tensor's
`pin_memory()` is the tensor itself; otherwise a new copy), and counts the copies it makes. The grouping
and diffusers' `_init_cpu_param_dict` are diffusers' real code; only pinning itself is faked.
"""

import pytest
import torch
from torch.multiprocessing.reductions import StorageWeakRef

from animate_cli import models
from animate_cli.models import LoadOptions, dit_stream, runtime


class FakePinning:
    def __init__(self):
        self.pinned_ptrs, self.copies = set(), 0
        self.sources = []  # weak references to the storage each copy was made from
        self.max_extra = 0  # most pageable originals still alive, beside their pinned copy, when a copy is made

    def is_pinned(self, t, device=None):
        return t.untyped_storage().data_ptr() in self.pinned_ptrs

    def pin_memory(self, t, device=None):
        if self.is_pinned(t):
            return t
        self.max_extra = max(self.max_extra, sum(not ref.expired() for ref in self.sources))
        self.sources.append(StorageWeakRef(t.untyped_storage()))
        copy = t.clone()
        self.pinned_ptrs.add(copy.untyped_storage().data_ptr())
        self.copies += 1
        return copy

    def install(self, monkeypatch):
        fake = self
        monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t, device=None: fake.pin_memory(t, device))
        monkeypatch.setattr(torch.Tensor, "is_pinned", lambda t, device=None: fake.is_pinned(t, device))
        return self


def _model():
    """Like the DiT: a ModuleList of blocks (streamed groups) plus unmatched embeddings and a buffer."""
    torch.manual_seed(0)
    m = torch.nn.Module()
    m.embed = torch.nn.Linear(4, 8)
    m.blocks = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8)) for _ in range(3))
    for b in m.blocks:
        b.register_buffer("freqs", torch.randn(8))
    m.head = torch.nn.Linear(8, 2)
    return m


def test_pin_in_place_pins_the_streamed_tensors_one_at_a_time(monkeypatch):
    m = _model()
    streamed = list(runtime.streamed_tensors(m))
    block_ids = {id(t) for b in m.blocks for t in (*b.parameters(), *b.buffers())}
    assert {id(t) for t in streamed} == block_ids and len(streamed) == 3 * 5  # 2 + 2 params + 1 buffer per block
    values = [t.detach().clone() for t in streamed]
    fake = FakePinning().install(monkeypatch)

    assert runtime.pin_in_place(streamed) == len(streamed)
    assert all(fake.is_pinned(t) for t in streamed) and fake.copies == len(streamed)
    assert all(torch.equal(t, v) for t, v in zip(streamed, values, strict=True))
    # Each pageable original was freed before the next tensor was pinned: one extra tensor at most, ever.
    assert fake.max_extra == 0 and all(ref.expired() for ref in fake.sources)
    # Unmatched parameters stay pageable (diffusers moves that group synchronously and never pins it).
    assert not any(fake.is_pinned(p) for p in (*m.embed.parameters(), *m.head.parameters()))
    assert runtime.pin_in_place(streamed) == 0  # idempotent


def _group(module):
    from diffusers.hooks.group_offloading import ModuleGroup

    # A stream group built on the CPU: any non-None stream makes diffusers build its pinned cpu_param_dict.
    cpu = torch.device("cpu")
    return ModuleGroup(modules=[module], offload_device=cpu, onload_device=cpu, offload_leader=module, stream=object())


@pytest.mark.parametrize("pinned_first", [True, False])
def test_diffusers_reuses_pinned_storage_instead_of_copying(monkeypatch, pinned_first):
    """With pin-in-place, diffusers' real `_init_cpu_param_dict` maps every tensor to our very storage
    (no second copy); without it (the contrast), it makes one pinned copy per tensor."""
    block = _model().blocks[0]
    tensors = [*block.parameters(), *block.buffers()]
    fake = FakePinning().install(monkeypatch)
    if pinned_first:
        runtime.pin_in_place(tensors)
    before = fake.copies
    group = _group(block)
    assert len(group.cpu_param_dict) == len(tensors)
    same = [group.cpu_param_dict[t].untyped_storage().data_ptr() == t.untyped_storage().data_ptr() for t in tensors]
    if pinned_first:
        assert all(same) and fake.copies == before
    else:  # every original alive beside its copy: the whole group twice in host RAM
        assert not any(same) and fake.copies == before + len(tensors) and fake.max_extra == len(tensors) - 1


def test_offload_blocks_pins_before_group_offloading(tiny_weights, monkeypatch):
    import diffusers.hooks

    from animate_cli import weights

    paths = weights.resolve(tiny_weights, "480p", need=("base",))
    m = models.load_models(paths.base, [], LoadOptions(device="cpu", dtype="fp32"))
    fake = FakePinning().install(monkeypatch)
    monkeypatch.setattr(torch._C, "_accelerator_setAllocatorSettings", lambda s: None)
    seen = []

    def record(module, **kw):
        blocks = kw.get("block_modules", getattr(module, "_group_offload_block_modules", None))
        streamed = list(runtime.streamed_tensors(module, blocks))
        seen.append((type(module).__name__, len(streamed), all(fake.is_pinned(t) for t in streamed)))

    monkeypatch.setattr(diffusers.hooks, "apply_group_offloading", record)
    runtime.offload_blocks(m.transformer, m.vae, m.image_encoder, "cuda:0")  # only a torch.device here
    assert [s[0] for s in seen] == ["WanAnimateTransformer3DModel", "AutoencoderKLWan", "CLIPVisionModel"]
    assert all(n > 0 and pinned for _, n, pinned in seen), seen
    assert fake.copies == sum(n for _, n, _ in seen)


def test_every_mode_streams_the_dit_to_its_home(tiny_weights, monkeypatch):
    """No CUDA here: load_dit is recorded and the `.to()` moves are no-ops; the device is CUDA. The DiT never
    goes through from_pretrained (which would build it whole on the host, and whose in-place peft fuse leaves
    copy-on-write pages of the mapped checkpoint behind): it streams to the GPU when resident, to host RAM
    when offloaded, and its LoRA is fused on the GPU either way."""
    from diffusers import WanAnimateTransformer3DModel

    from animate_cli import weights

    paths = weights.resolve(tiny_weights, "480p", need=("base",))
    calls = []
    monkeypatch.setattr(WanAnimateTransformer3DModel, "from_pretrained", classmethod(lambda cls, *a, **k: calls.append(k)))
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)
    monkeypatch.setattr(runtime, "prepare", lambda *a: None)
    streamed = []
    real_load_dit = dit_stream.load_dit

    def fake_load_dit(base, loras, dtype, *, fp8, home, work=None):
        streamed.append((fp8, str(home), str(work)))
        return real_load_dit(base, loras, dtype, fp8=fp8, home=torch.device("cpu"))

    monkeypatch.setattr(dit_stream, "load_dit", fake_load_dit)
    for offload, wd, want in (("none", "bf16", (False, "cuda:0", "cuda:0")), ("none", "fp8", (True, "cuda:0", "cuda:0")),
                              ("blocks", "bf16", (False, "cpu", "cuda:0")), ("blocks", "fp8", (True, "cpu", "cuda:0"))):  # fmt: skip
        streamed.clear()
        models.load_models(paths.base, [], LoadOptions(device="cuda:0", dtype="bf16", offload=offload, weights_dtype=wd))
        assert streamed == [want], (offload, wd)
    assert calls == []


def test_streamed_tensors_go_to_their_home_one_by_one(tiny_weights):
    """home=meta stands in for the GPU: every tensor is moved there as it is read, none stays on the CPU
    (the RoPE tables and other non-persistent buffers are built on the CPU; load_models moves them)."""
    from animate_cli import weights

    paths = weights.resolve(tiny_weights, "480p", need=("base", "lora"))
    model, _ = dit_stream.load_dit(paths.base, [(paths.lora, 1.0)], torch.bfloat16, fp8=True,
                                   home=torch.device("meta"), work=torch.device("cpu"))  # fmt: skip
    sd = model.state_dict()
    assert sd and all(t.is_meta for t in sd.values())
    assert {t.dtype for t in sd.values()} >= {torch.float8_e4m3fn, torch.bfloat16, torch.float32}


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("offload", "device", "want"), [("none", "cuda:0", True), ("blocks", "cuda:0", False), ("none", "cpu", False)]
)
def test_resident_umt5_on_cuda_loads_straight_to_the_gpu(tiny_weights, monkeypatch, offload, device, want):
    from transformers import UMT5EncoderModel

    from animate_cli import weights

    paths = weights.resolve(tiny_weights, "480p", need=("base",))
    calls = []

    def fake_from_pretrained(cls, path, **kw):
        calls.append(kw)
        raise _Stop  # nothing can run on a CUDA device here; the call is what this test checks

    monkeypatch.setattr(UMT5EncoderModel, "from_pretrained", classmethod(fake_from_pretrained))
    monkeypatch.setattr(runtime, "offload_text_encoder", lambda *a: None)
    with pytest.raises(_Stop):
        models.encode_prompt(paths.base, "x", LoadOptions(device=device, dtype="bf16", offload=offload), 8)
    assert ("device_map" in calls[0]) is want
    if want:
        assert calls[0]["device_map"] == torch.device("cuda:0")
