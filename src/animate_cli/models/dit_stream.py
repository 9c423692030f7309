"""The DiT built tensor by tensor from its safetensors shards, LoRAs fused and FP8 cast as each weight is read.

Why not `from_pretrained` + peft (lora.apply_lora) + layerwise casting: that path holds the whole bf16 DiT
(32.2 GiB) before a single weight is cast, so `--weights-dtype fp8` needed 36 GiB of host RAM to end up with
a 17 GiB model; and in host RAM (`--offload blocks`) safetensors' tensors are views of a private mapping of
the checkpoint, so peft's in-place fuse turns them into copy-on-write pages that stay allocated as long as any
other tensor of the shard is alive -- after they were pinned, too (measured: `make bench-load`). Here the
model is first built without weights (meta parameters; real non-persistent buffers such as the RoPE
tables), diffusers' layerwise casting is set up on that empty model when FP8 is asked for, which gives every
parameter its storage dtype by diffusers' own rules, and each checkpoint tensor then goes through

    read (a view of the mapped file) -> dtype from_pretrained would give it (bf16, or fp32 for the modules
    the class keeps in fp32) -> + every LoRA delta, in order, on the `work` device (a new tensor) ->
    storage dtype (fp8 for cast Linears) -> home

so at most one tensor, in its read and fused forms, exists beside the finished part of the model
(footprint._host_phases: `load`). The result is the same tensors, bit for bit, that from_pretrained + peft
fuse (+ runtime.cast_blocks_fp8) produce on the CPU (tests/test_dit_stream.py compares every parameter and
buffer; on the GPU the fuse's fp32 product may round differently in the last bit). Tensors that need no
change stay views of the mapped file: clean, file-backed pages.

The LoRA delta is peft's arithmetic on the CPU: (B @ A) in fp32 times the scale, rounded to the weight's
dtype, then added in that dtype; A and B are first rounded to the model dtype, as lora.apply_lora does.
Whole-tensor deltas (`.diff`, `.diff_b`, `.diff_m` of lightx2v-style files) are added in fp32 and rounded
once. Every LoRA file is placed by lora.plan (each key mapped onto a model tensor or named) before the first
checkpoint byte is read; a LoRA adds no pass over the checkpoint and no host copy of the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from animate_cli.errors import WeightsInvalidError

if TYPE_CHECKING:
    import torch

    from animate_cli.models.lora import Patch

SINGLE_FILE = "diffusion_pytorch_model.safetensors"
INDEX_FILE = "diffusion_pytorch_model.safetensors.index.json"


def shard_files(folder: Path) -> list[Path]:
    """The checkpoint files of a diffusers model folder, in the index's order (one file when unsharded)."""
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise WeightsInvalidError(f"unreadable checkpoint index {index}: {e!r}") from None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise WeightsInvalidError(f"checkpoint index {index}: weight_map is not a map of tensor names to files")
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise WeightsInvalidError(f"{folder} lacks checkpoint shard {missing[0]}",
                                      hint="re-run `everanimate download-weights` to repair the folder")  # fmt: skip
        return [folder / n for n in names]
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    raise WeightsInvalidError(f"{folder} has no {SINGLE_FILE} or {INDEX_FILE}",
                              hint="re-run `everanimate download-weights` to repair the folder")  # fmt: skip


def fuse(weight, patches: list[Patch]):
    """weight + every patch, in order. A LoRA is added as peft merges on the CPU (the fp32 product B @ A times the
    scale, rounded to the weight's dtype, then added; a conv LoRA's factors flattened); a `.diff` / `.diff_b` /
    `.diff_m` is added in fp32 and rounded once. Shapes were checked by lora.plan before the checkpoint was read."""
    import torch

    for p in patches:
        if p.kind == "lora":
            a, b = p.a.to(weight.device, torch.float32), p.b.to(weight.device, torch.float32)
            weight = weight + ((b.flatten(1) @ a.flatten(1)) * p.scale).reshape(weight.shape).to(weight.dtype)
        else:
            delta = p.b.to(weight.device, torch.float32).reshape(weight.shape) * p.scale
            weight = (weight.float() + delta).to(weight.dtype)
    return weight


def _loaded_dtype(name: str, keep_fp32: list[str], dtype):
    """The dtype from_pretrained(torch_dtype=dtype) gives a floating tensor: fp32 inside `_keep_in_fp32_modules`."""
    import torch

    return torch.float32 if any(k in name.split(".") for k in keep_fp32) else dtype


def empty_model(folder: Path, dtype):
    """The class built from config.json with meta parameters and real (CPU) non-persistent buffers."""
    from accelerate import init_empty_weights
    from diffusers import WanAnimateTransformer3DModel

    try:
        config = WanAnimateTransformer3DModel.load_config(str(folder))
        with init_empty_weights(include_buffers=False):
            model = WanAnimateTransformer3DModel.from_config(config)
    except (OSError, ValueError, TypeError, KeyError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise WeightsInvalidError(f"cannot build the transformer from {folder / 'config.json'}: {first}",
                                  hint="re-run `everanimate download-weights` to repair the folder") from None  # fmt: skip
    keep = list(model._keep_in_fp32_modules or [])
    for name, p in model.named_parameters():
        if p.is_floating_point():
            p.data = p.data.to(_loaded_dtype(name, keep, dtype))
    for name, buf in model.named_buffers():  # from_pretrained leaves these as built, except the dtype cast
        if buf.is_floating_point():
            buf.data = buf.data.to(_loaded_dtype(name, keep, dtype))
    return model.eval().requires_grad_(False), keep


def _assign(model, name: str, tensor) -> None:
    import torch

    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner)
    if leaf in module._parameters:
        module._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[leaf] = tensor


@dataclass
class _Stream:
    """What streaming one checkpoint needs: the empty model's tensor slots, the LoRA patches still to fuse,
    the devices, and the names of checkpoint tensors the model has no place for."""

    model: torch.nn.Module
    slots: dict  # tensor name -> (storage dtype, shape); removed as each is assigned
    keep: list[str]  # _keep_in_fp32_modules
    patches: dict  # tensor name -> [lora.Patch]; removed as each is fused
    dtype: torch.dtype
    home: torch.device
    work: torch.device
    extra: list[str] = field(default_factory=list)


def load_dit(base: Path, loras: list[tuple[Path, float]], dtype, *, fp8: bool, home, work=None) -> tuple:
    """WanAnimateTransformer3DModel from `base/transformer`, every LoRA fused, eval, no grad.

    dtype: compute dtype (torch.bfloat16 / float32). fp8: set up runtime.cast_blocks_fp8's layerwise casting
    and store those Linears in FP8 as they are read. home: device every tensor ends on (the GPU for a resident
    model, the CPU for an offloaded one). work: device the LoRA fuse and the casts run on (default: home).
    Checkpoint tensors the config has no place for are skipped, as from_pretrained skips them.
    Returns (model, [lora.LoraReport] in file order). Raises WeightsInvalidError on a checkpoint or LoRA that
    does not fit the config (every LoRA is placed and its shapes checked before the checkpoint is read).
    """
    import torch

    from animate_cli.models import lora, runtime

    folder = base / "transformer"
    files = shard_files(folder)
    model, keep = empty_model(folder, dtype)
    if fp8:
        runtime.cast_blocks_fp8(model, dtype)  # on the empty model: only dtypes and hooks, no data yet
    slots = {n: (t.dtype, tuple(t.shape)) for n, t in model.state_dict(keep_vars=True).items()}
    patches, reports = lora.plan(loras, {n: shape for n, (_, shape) in slots.items()}, dtype)
    stream = _Stream(model, slots, keep, patches, dtype, torch.device(home), torch.device(work or home))
    with torch.no_grad():
        for path in files:
            _stream_file(stream, path)
    missing = sorted(slots)  # every key is removed from `slots` as it is assigned
    if missing:
        extra = stream.extra
        also = f"; it holds {len(extra)} the config does not (first: {extra[0]})" if extra else ""
        raise WeightsInvalidError(f"the transformer checkpoint lacks {len(missing)} tensors (first: {missing[0]}){also}",
                                  hint="re-run `everanimate download-weights` to repair the folder")  # fmt: skip
    for name, buf in list(model.named_buffers()):  # the non-persistent ones (RoPE tables) were built on the CPU
        _assign(model, name, buf.to(stream.home))
    return model, reports


def _stream_file(s: _Stream, path: Path) -> None:
    """Every tensor of one shard: read, to its loaded dtype, + its LoRA patches (on `work`), to its storage
    dtype, home. A tensor that needs no change stays a view of the mapped file."""
    from safetensors import safe_open

    ignored = tuple(getattr(s.model, "_keys_to_ignore_on_load_unexpected", None) or ())
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as e:  # safetensors raises several types for a bad header
        raise WeightsInvalidError(f"cannot read {path}: {e}",
                                  hint="re-run `everanimate download-weights` to repair the folder") from None  # fmt: skip
    with handle:
        for key in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
            if key not in s.slots:
                if not any(re.search(p, key) for p in ignored):  # from_pretrained's known extras
                    s.extra.append(key)
                continue
            storage, shape = s.slots.pop(key)
            t = handle.get_tensor(key)
            if tuple(t.shape) != shape:
                raise WeightsInvalidError(f"{path.name}: {key} has shape {tuple(t.shape)}, the config says {shape}",
                                          hint="the transformer folder does not match its config.json")  # fmt: skip
            if t.is_floating_point():
                if key in s.patches or storage != t.dtype:  # arithmetic on the compute device
                    t = t.to(s.work)
                t = t.to(_loaded_dtype(key, s.keep, s.dtype))
                if key in s.patches:
                    t = fuse(t, s.patches.pop(key))  # each LoRA patch is freed once fused
                t = t.to(storage)
            _assign(s.model, key, t.to(s.home))
