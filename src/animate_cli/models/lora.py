"""LoRA files in every Wan-14B layout in use -> per-tensor patches of WanAnimateTransformer3DModel.

Layouts (real key names and where they come from: docs/loras.md):
  official / DiffSynth  `blocks.N.self_attn.q.lora_A.default.weight` (EverAnimate's release)
  ComfyUI / kohya       `diffusion_model.blocks.N.self_attn.q.lora_down.weight` + `.alpha`, or
                        `lora_unet_blocks_N_self_attn_q.lora_down.weight` (dots written as underscores)
  peft / diffusers      `transformer.blocks.N.attn1.to_q.lora_A.weight` (+ `.lora_B.bias`)
  lightx2v / Lightning  the ComfyUI names plus `.diff` (a whole-weight delta: q/k RMSNorms, the cross-attention
                        norm, image-embedder norms), `.diff_b` (a bias delta) and `blocks.N.diff_m` (a delta
                        of the block's modulation), on modules inside and outside the blocks.

Module names in Wan's original layout are mapped onto the diffusers model by diffusers' own checkpoint
conversion (`convert_wan_transformer_to_diffusers`, through weights.convert.convert_tensor), the function that
converts the base checkpoint: it covers every module of the Animate model -- the swapped norms (Wan's `norm3`
is diffusers' `norm2`), the face adapter (whose `linear1_kv` it splits into to_k / to_v), the motion encoder.
diffusers' LoRA entry point (`WanAnimatePipeline.lora_state_dict`) is not used: it drops the norms' `.diff`
tensors without a word and knows no face-adapter keys (docs/loras.md measures it).

`plan` places every tensor of every file (or names it) before the checkpoint is read; dit_stream fuses the
patches as each weight streams by. `apply_lora` is the peft route diffusers users take for block LoRA pairs,
kept as the independent reference dit_stream is tested against bit for bit.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from animate_cli.errors import WeightsInvalidError

if TYPE_CHECKING:
    import torch

# A file may carry a few tensors for modules the Animate transformer lacks (named in the summary and skipped);
# more than this share means the file was made for another model (exit 4). Every layout in docs/loras.md
# places all of its tensors on Animate, so any share above zero is already unusual.
UNPLACED_SHARE_LIMIT = 0.05
SHOWN_KEYS = 3  # unplaced key names shown in a summary line / an error
MAX_KOHYA_READINGS = 4096  # dotted readings tried for one kohya name (Wan's longest module paths need under 100)

# DiffSynth/Wan block module -> diffusers module (docs/loras.md); the reference route (convert_keys) uses it.
MODULE_MAP = {
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v", "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k", "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0",
    "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2",
}  # fmt: skip
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer.", "model.")
KOHYA_PREFIX = "lora_unet_"
# module.(lora_A|lora_B|lora_down|lora_up)[.adapter].(weight|bias)  |  module.(alpha|diff|diff_b)  |  module.diff_m
_PAIR = re.compile(r"^(.+?)\.(lora_A|lora_B|lora_down|lora_up)(?:\.(?!weight$|bias$)[A-Za-z_]\w*)?\.(weight|bias)$")
_SINGLE = re.compile(r"^(.+)\.(alpha|diff|diff_b|diff_m)$")
# Names only the diffusers layout uses: a file holding any of them is read as diffusers-named (no conversion).
_DIFFUSERS_ONLY = re.compile(r"(^|\.)(attn1|attn2|ffn\.net|condition_embedder|proj_out|scale_shift_table)(\.|$)")
_KIND = {"lora_down": "A", "lora_A": "A", "lora_up": "B", "lora_B": "B"}


@dataclass(frozen=True)
class Patch:
    """One change to one model tensor, fused by dit_stream.fuse: `lora`: + scale * (B @ A) (reshaped to the
    tensor: a conv LoRA's factors are flattened); `diff`: + scale * b (a `.diff`, `.diff_b` or `.diff_m`)."""

    kind: str  # "lora" | "diff"
    b: torch.Tensor
    scale: float
    a: torch.Tensor | None = None


@dataclass
class LoraReport:
    """The accounting of one file: every tensor placed, or named here."""

    file: str
    scale: float
    tensors_in: int = 0
    modules: int = 0  # model modules (or bare parameters such as a modulation table) it patches
    unplaced: list[str] = field(default_factory=list)  # its keys with no target in this transformer, sorted

    def to_dict(self) -> dict:
        return {"file": self.file, "scale": self.scale, "tensors_in": self.tensors_in, "modules_patched": self.modules,
                "keys_not_placed": len(self.unplaced), "first_not_placed": self.unplaced[:SHOWN_KEYS]}  # fmt: skip

    def line(self) -> str:
        return summary_line(self.to_dict())


def summary_line(entry: dict) -> str:
    """One line of the run summary for a LoRA, from its --json entry (LoraReport.to_dict)."""
    shown = ", ".join(entry["first_not_placed"])
    rest = (
        f"; {entry['keys_not_placed']} keys not placed (first: {shown})" if entry["keys_not_placed"] else "; every tensor placed"
    )
    return (f"LoRA {Path(entry['file']).name} x{entry['scale']:g}: {entry['tensors_in']} tensors, "
            f"{entry['modules_patched']} modules patched{rest}")  # fmt: skip


@dataclass
class _Module:
    """The tensors of one LoRA module (a module path of the file) and the keys they came from."""

    parts: dict = field(default_factory=dict)  # "A", "B", "bias", "alpha", "diff", "diff_b", "diff_m" -> tensor
    keys: list[str] = field(default_factory=list)


def read_lora(path: Path) -> dict:
    """Every tensor of a LoRA file as a view of its memory mapping: clean file pages the kernel can drop and read
    again, not a copy in anonymous memory (a 738 MB rank-64 file costs no host RAM of its own: docs/loras.md)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    except Exception as e:  # safetensors raises several types for a bad header
        raise WeightsInvalidError(f"cannot read LoRA file {path}: {e}") from None


def strip_prefix(key: str) -> str:
    """A key without its loader prefix (`diffusion_model.`, `transformer.`, ...); kohya's prefix stays."""
    for p in PREFIXES:
        if key.startswith(p):
            return key[len(p) :]
    return key


def group_modules(state: dict) -> tuple[dict[str, _Module], list[str]]:
    """{module path: its tensors} and the keys that fit no LoRA naming at all."""
    modules: dict[str, _Module] = {}
    odd: list[str] = []
    for key, tensor in state.items():
        name = strip_prefix(key)
        if m := _PAIR.match(name):
            module, kind, leaf = m.groups()
            part = "bias" if leaf == "bias" else _KIND[kind]
            if leaf == "bias" and part != "B":
                odd.append(key)
                continue
        elif m := _SINGLE.match(name):
            module, part = m.groups()
        else:
            odd.append(key)
            continue
        entry = modules.setdefault(module, _Module())
        entry.parts[part] = tensor
        entry.keys.append(key)
    return modules, odd


def kohya_readings(module: str) -> list[str]:
    """`lora_unet_blocks_0_self_attn_q` -> every dotted reading: an underscore next to a number is a dot,
    any other may be either (tried in order; the caller keeps the first that names a model tensor)."""
    segs = module.removeprefix(KOHYA_PREFIX).split("_")
    joins = [["."] if a.isdigit() or b.isdigit() else ["_", "."] for a, b in itertools.pairwise(segs)]
    if math.prod(len(j) for j in joins) > MAX_KOHYA_READINGS:
        return []  # no Wan module name has that many words: named as not placed
    out = []
    for choice in itertools.product(*joins):
        out.append(segs[0] + "".join(j + s for j, s in zip(choice, segs[1:], strict=True)))
    return out


class Targets:
    """Model tensor names for a file's module paths, in its layout (diffusers-named, or Wan's original names
    converted by diffusers' checkpoint conversion); `slots`: the model's {tensor name: shape}."""

    def __init__(self, slots: dict[str, tuple], diffusers_named: bool):
        self.slots, self.diffusers_named = slots, diffusers_named

    def convert(self, module: str, leaf: str, tensor) -> dict:
        """{model tensor name: the part of `tensor` it gets}, or {} when a name is not in the model."""
        if self.diffusers_named:
            out = {f"{module}.{leaf}": tensor}
        else:
            from animate_cli.weights.convert import convert_tensor

            out = convert_tensor(f"{module}.{leaf}", tensor)
        return out if out and all(k in self.slots for k in out) else {}

    def resolve(self, module: str, leaf: str, tensor) -> dict:
        if not module.startswith(KOHYA_PREFIX):
            return self.convert(module, leaf, tensor)
        for reading in kohya_readings(module):
            if out := self.convert(reading, leaf, tensor):
                return out
        return {}


_PARTS = (("A", "weight"), ("diff", "weight"), ("diff_b", "bias"), ("bias", "bias"), ("diff_m", "modulation"))


def _module_patches(module: str, entry: _Module, targets: Targets, scale: float, dtype) -> dict[str, list[Patch]]:
    """The patches one module path of a file adds: every part of it lands, or none does ({}: its keys are named
    as not placed). `diff_m` is a delta of the block's bare `modulation` parameter."""
    p, out = entry.parts, {}
    if ("A" in p) != ("B" in p) or ("alpha" in p and "A" not in p) or ("bias" in p and "B" not in p):
        return {}  # half a pair
    for part, leaf in _PARTS:
        if part not in p:
            continue
        placed = targets.resolve(module, leaf, p["B"] if part == "A" else p[part])  # B is split like the weight
        if not placed:
            return {}
        for name, piece in placed.items():
            if part == "A":
                factor = float(p["alpha"].float().item()) / p["A"].shape[0] if "alpha" in p else 1.0
                patch = Patch("lora", piece.to(dtype), scale * factor, p["A"].to(dtype))
            else:
                patch = Patch("diff", piece, scale)
            out.setdefault(name, []).append(patch)
    return out


def check_shapes(patches: dict[str, list[Patch]], slots: dict[str, tuple], path: Path) -> None:
    """Every patch fits its tensor (a LoRA made for another model size fails here, before any checkpoint read)."""
    for name, ps in patches.items():
        shape = tuple(slots[name])
        for q in ps:
            if q.kind == "lora":
                ok = q.a.dim() >= 2 and q.b.dim() >= 2 and q.b.shape[1] == q.a.shape[0]
                got = (q.b.shape[0], *q.a.shape[1:]) if ok else tuple(q.b.shape)
                numel = q.b.shape[0] * q.a[0].numel() if ok else -1
                ok = ok and numel == math.prod(shape) and q.b.shape[0] == shape[0]
            else:
                got, ok = tuple(q.b.shape), q.b.numel() == math.prod(shape)
            if not ok:
                raise WeightsInvalidError(f"LoRA {path.name}: a delta of shape {got} does not fit {name} of shape {shape}",
                                          hint="the LoRA was made for another model size")  # fmt: skip


def plan_file(path: Path, scale: float, slots: dict[str, tuple], dtype) -> tuple[dict[str, list[Patch]], LoraReport]:
    """One file's patches ({model tensor name: [Patch]}) and its accounting; WeightsInvalidError (exit 4) when
    nothing lands or more than UNPLACED_SHARE_LIMIT of its tensors have no target (naming the first)."""
    state = read_lora(path)
    report = LoraReport(str(path), float(scale), tensors_in=len(state))
    if not state:
        raise WeightsInvalidError(f"LoRA file {path} contains no tensors")
    modules, odd = group_modules(state)
    diffusers_named = any(_DIFFUSERS_ONLY.search(m) for m in modules)
    targets, patches, unplaced, touched = Targets(slots, diffusers_named), {}, list(odd), set()
    for module, entry in modules.items():
        got = _module_patches(module, entry, targets, float(scale), dtype)
        if not got:
            unplaced += entry.keys
        for name, ps in got.items():
            patches.setdefault(name, []).extend(ps)
            touched.add(name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name)
    report.unplaced, report.modules = sorted(unplaced), len(touched)
    first = ", ".join(report.unplaced[:SHOWN_KEYS])
    if not patches:
        raise WeightsInvalidError(f"LoRA {path.name}: none of its {len(state)} tensors has a place in the Wan2.2-Animate "
                                  f"transformer (first keys: {first})",
                                  hint="a LoRA for another model? see docs/loras.md for the layouts read")  # fmt: skip
    if len(unplaced) > UNPLACED_SHARE_LIMIT * len(state):
        raise WeightsInvalidError(f"LoRA {path.name}: {len(unplaced)} of {len(state)} tensors have no place in the "
                                  f"Wan2.2-Animate transformer (first: {first})",
                                  hint="a LoRA for another model? see docs/loras.md for the layouts read")  # fmt: skip
    check_shapes(patches, slots, path)
    return patches, report


def plan(loras: list[tuple[Path, float]], slots: dict[str, tuple], dtype) -> tuple[dict[str, list[Patch]], list[LoraReport]]:
    """Every file's patches, merged in file order (a tensor patched by two files gets both, in order)."""
    merged: dict[str, list[Patch]] = {}
    reports = []
    for path, scale in loras:
        patches, report = plan_file(Path(path), scale, slots, dtype)
        for name, ps in patches.items():
            merged.setdefault(name, []).extend(ps)
        reports.append(report)
    return merged, reports


# --- the reference route (peft), for EverAnimate's own block LoRA pairs -----------------------------------------
_KEY = re.compile(
    r"^(?:diffusion_model\.|transformer\.|model\.)?blocks\.(\d+)\.(.+?)\.(lora_A|lora_B|lora_down|lora_up|alpha)(?:\.[A-Za-z_]\w*)?(?:\.weight)?$"
)


def convert_keys(state: dict) -> dict:
    """Block LoRA pairs (official / DiffSynth / diffusers names) -> `blocks.N.<diffusers module>.lora_{A,B}.weight`,
    alpha folded into B as alpha/rank. Raises WeightsInvalidError naming the first key it cannot map."""
    out, alphas = {}, {}
    diffusers_names = set(MODULE_MAP.values())
    for key, tensor in state.items():
        m = _KEY.match(key)
        if not m:
            raise WeightsInvalidError(f"LoRA key {key!r} is not a Wan transformer-block LoRA tensor")
        block, module, kind = m.groups()
        target = MODULE_MAP.get(module, module if module in diffusers_names else None)
        if target is None:
            raise WeightsInvalidError(
                f"LoRA key {key!r} targets module {module!r}, which the EverAnimate transformer does not have"
            )
        name = f"blocks.{block}.{target}"
        if kind == "alpha":
            alphas[name] = float(tensor.float().item())
            continue
        kind = {"lora_down": "lora_A", "lora_up": "lora_B"}.get(kind, kind)
        out[f"{name}.{kind}.weight"] = tensor
    for name, alpha in alphas.items():
        b = out[f"{name}.lora_B.weight"]
        out[f"{name}.lora_B.weight"] = b * (alpha / b.shape[1])  # peft will use lora_alpha = r, i.e. scale 1
    return out


def apply_lora(transformer, path: Path, scale: float = 1.0, adapter_name: str = "everanimate") -> int:
    """Load, verify, fuse at `scale` and unload one LoRA file. Returns the number of patched modules."""
    state = convert_keys(read_lora(path))
    modules = {k.rsplit(".lora_", 1)[0] for k in state}
    if not modules:
        raise WeightsInvalidError(f"LoRA file {path} contains no tensors")
    device, dtype = transformer.device, transformer.dtype  # not the first parameter: scale_shift_table stays fp32
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    try:
        transformer.load_lora_adapter(state, adapter_name=adapter_name, prefix=None)
    except (ValueError, RuntimeError, KeyError) as e:
        raise WeightsInvalidError(f"LoRA {path.name} does not fit this transformer: {str(e).splitlines()[0]}") from None
    landed = {
        name for name, mod in transformer.named_modules() if hasattr(mod, "lora_A") and adapter_name in getattr(mod, "lora_A", {})
    }
    missing = sorted(modules - landed)
    if missing or adapter_name not in getattr(transformer, "peft_config", {}):
        raise WeightsInvalidError(
            f"LoRA {path.name}: {len(missing)} of {len(modules)} modules did not load (first: {missing[:1]})",
            hint="the file's key names do not match the Wan2.2-Animate transformer",
        )
    transformer.fuse_lora(lora_scale=scale, adapter_names=[adapter_name])
    transformer.unload_lora()
    return len(modules)
