"""EverAnimate LoRA files: official key names -> diffusers module names; and the peft route to fuse them.

The released files use DiffSynth's WanModel names (`blocks.N.self_attn.q.lora_A.default.weight`).
diffusers does not recognise them and, given them raw, silently loads nothing (spec §5.5). We
rename every key ourselves (`convert_keys`, used by dit_stream, which fuses each weight as it is
read). `apply_lora` is the route diffusers users take -- load the adapter with peft, check that
every tensor landed on a module, fuse at the requested scale, remove the peft layers -- kept as the
reference dit_stream is tested against bit for bit (what DiffSynth does with `alpha=1`)."""

from __future__ import annotations

import re
from pathlib import Path

from animate_cli.errors import WeightsInvalidError

# DiffSynth/Wan module -> diffusers WanAnimateTransformer3DModel module (spec §5.4)
MODULE_MAP = {
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v", "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k", "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0",
    "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2",
}  # fmt: skip
_KEY = re.compile(
    r"^(?:diffusion_model\.|transformer\.|model\.)?blocks\.(\d+)\.(.+?)\.(lora_A|lora_B|lora_down|lora_up|alpha)(?:\.[A-Za-z_]\w*)?(?:\.weight)?$"
)


def convert_keys(state: dict) -> dict:
    """Official / DiffSynth / diffusers-named LoRA tensors -> `blocks.N.<diffusers module>.lora_{A,B}.weight`.

    Accepts an optional `diffusion_model.`/`transformer.` prefix, an adapter token after lora_A/B
    (e.g. `.default`), `lora_down/lora_up`, and `alpha` entries (folded into B as alpha/rank).
    Raises WeightsInvalidError naming the first key that maps to no known module.
    """
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


def read_lora(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises several types for a bad header
        raise WeightsInvalidError(f"cannot read LoRA file {path}: {e}") from None


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
