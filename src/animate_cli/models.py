"""Loading the Wan2.2-Animate components from a weights directory (diffusers layout).

Everything is loaded with `from_pretrained(..., torch_dtype=...)` so the model's own fp32-kept
modules stay fp32, and shapes always come from the saved config.json, never from constants here.
The text encoder is loaded only to encode the prompt once and is then dropped (umT5-XXL is
10.6 GiB in bf16; keeping it would cost a 24 GB card the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from animate_cli.errors import WeightsInvalidError


@dataclass
class Models:
    transformer: object  # WanAnimateTransformer3DModel, LoRA fused, eval, on device
    vae: object  # AutoencoderKLWan
    image_encoder: object  # CLIPVisionModel
    device: object  # torch.device
    dtype: object  # torch dtype of transformer/vae/clip compute
    lora_modules: int = 0


def _quiet_loaders() -> None:
    """Our progress bars are the only ones on stderr."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _load(loader, base: Path, sub: str, **kw):
    _quiet_loaders()
    try:
        return loader.from_pretrained(str(base / sub), **kw)
    except (OSError, ValueError, KeyError) as e:
        raise WeightsInvalidError(f"cannot load {sub} from {base / sub}: {str(e).splitlines()[0]}",
                                  hint="re-run `everanimate download-weights` to repair the folder") from None  # fmt: skip


def load_models(base: Path, loras: list[tuple[Path, float]], device: str, dtype: str) -> Models:
    """Transformer (+ fused LoRAs), VAE and CLIP vision encoder, on `device` in `dtype`."""
    import torch
    from diffusers import AutoencoderKLWan, WanAnimateTransformer3DModel
    from transformers import CLIPVisionModel

    from animate_cli import parallel
    from animate_cli.device import torch_dtype
    from animate_cli.lora import apply_lora

    dt = torch_dtype(dtype)
    dev = torch.device(device)
    transformer = _load(WanAnimateTransformer3DModel, base, "transformer", torch_dtype=dt).to(dev).eval()
    patched = 0
    for i, (path, scale) in enumerate(loras):
        patched += apply_lora(transformer, path, scale, adapter_name=f"lora{i}")
    transformer.requires_grad_(False)
    parallel.enable_context_parallel(transformer)  # several ranks (torchrun / --gpus N): split each DiT step; else no-op
    vae = _load(AutoencoderKLWan, base, "vae", torch_dtype=dt).to(dev).eval().requires_grad_(False)
    clip = _load(CLIPVisionModel, base, "image_encoder", torch_dtype=dt).to(dev).eval().requires_grad_(False)
    return Models(transformer, vae, clip, dev, dt, patched)


def encode_prompt(base: Path, prompt: str, device: str, dtype: str, max_tokens: int):
    """umT5 prompt embedding [1, max_tokens, text_dim]; positions past the prompt are zero (as Wan does).

    Loads the tokenizer and text encoder, encodes once, and frees them before returning.
    """
    import gc

    import ftfy
    import torch
    from transformers import AutoTokenizer, UMT5EncoderModel

    from animate_cli.device import torch_dtype

    tok = _load(AutoTokenizer, base, "tokenizer")
    enc = _load(UMT5EncoderModel, base, "text_encoder", torch_dtype=torch_dtype(dtype)).to(device).eval()
    text = " ".join(ftfy.fix_text(prompt).split())  # Wan's prompt cleaning: ftfy + whitespace collapse
    ids = tok([text], padding="max_length", max_length=max_tokens, truncation=True, add_special_tokens=True, return_tensors="pt")
    mask = ids.attention_mask.to(device)
    with torch.inference_mode():
        emb = enc(ids.input_ids.to(device), mask).last_hidden_state
    emb = (emb * mask[..., None].to(emb.dtype)).float().cpu()
    del enc
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
    return emb
