"""Loading the Wan2.2-Animate components from a weights directory (diffusers layout).

The VAE, CLIP and umT5 are loaded with `from_pretrained(..., torch_dtype=...)` so the model's own
fp32-kept modules stay fp32; the DiT is built tensor by tensor by dit_stream, which follows the same
dtype rules. Shapes always come from the saved config.json, never from constants here.
The text encoder is loaded only to encode the prompt once and is then dropped (umT5-XXL is
10.6 GiB in bf16; keeping it would cost a 24 GB card the run).

`LoadOptions` carries every memory/speed choice (already resolved: offload none|blocks, an
attention backend name); `runtime.prepare` sets them up here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from animate_cli.errors import WeightsInvalidError

if TYPE_CHECKING:  # heavy libraries stay out of `import animate_cli`
    import torch
    from diffusers import AutoencoderKLWan, WanAnimateTransformer3DModel
    from transformers import CLIPVisionModel

    from animate_cli.models.lora import LoraReport
    from animate_cli.models.runtime import Prepared


@dataclass(frozen=True)
class LoadOptions:
    """How to load: decided once by pipeline.run (device.choose, attention.resolve_attention)."""

    device: str = "cpu"  # "cuda:0" or "cpu": where the models compute
    dtype: str = "bf16"  # compute dtype ("bf16" | "fp32")
    offload: str = "none"  # "none": resident; "blocks": diffusers group offloading (never "auto" here)
    weights_dtype: str = "bf16"  # "fp8": e4m3 storage of the Linear weights of the DiT blocks and face adapters
    attention: str = "native"  # diffusers attention backend name (never "auto" here)
    compile: bool = False  # regional compile of the repeated transformer blocks


@dataclass
class Models:
    transformer: WanAnimateTransformer3DModel  # LoRA fused, eval, on device (or offloaded)
    vae: AutoencoderKLWan
    image_encoder: CLIPVisionModel
    device: torch.device  # where the models compute (device.execution_device of each)
    dtype: torch.dtype  # compute dtype of transformer/vae/clip
    lora_modules: int = 0
    options: LoadOptions = field(default_factory=LoadOptions)
    prepared: Prepared | None = None  # attention backend used, FP8 layer count, compile timer
    loras: list[LoraReport] = field(default_factory=list)  # per file, in fuse order

    def summary(self) -> dict:
        """The memory/speed settings in effect, for the run summary and --json."""
        timer = getattr(self.prepared, "timer", None)
        compile_s = timer.compile_seconds() if timer else None
        return {"offload": self.options.offload, "weights_dtype": self.options.weights_dtype,
                "attention": getattr(self.prepared, "attention", self.options.attention), "compile": self.options.compile,
                "compile_s": None if compile_s is None else round(compile_s, 3),
                "fp8_linear_layers": getattr(self.prepared, "fp8_modules", 0)}  # fmt: skip


def quiet_loaders() -> None:
    """Our progress bars are the only ones on stderr."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def load_component(loader, base: Path, sub: str, **kw):
    quiet_loaders()
    try:
        return loader.from_pretrained(str(base / sub), **kw)
    except (OSError, ValueError, KeyError) as e:
        raise WeightsInvalidError(f"cannot load {sub} from {base / sub}: {str(e).splitlines()[0]}",
                                  hint="re-run `everanimate download-weights` to repair the folder") from None  # fmt: skip


def load_models(base: Path, loras: list[tuple[Path, float]], options: LoadOptions) -> Models:
    """Transformer (+ fused LoRAs), VAE and CLIP vision encoder, set up as `options` says.

    Resident models go to the device (the DiT tensor by tensor, fused and cast on the way: dit_stream);
    offloaded ones (`blocks`: the DiT, the VAE, CLIP with bf16) stay in host memory, where group
    offloading keeps them. Then `runtime.prepare`: FP8 hooks (already set up by dit_stream), offload
    (or move), attention, compile.
    """
    import torch
    from diffusers import AutoencoderKLWan
    from transformers import CLIPVisionModel

    from animate_cli.models import parallel, runtime
    from animate_cli.models.device import torch_dtype
    from animate_cli.models.dit_stream import load_dit
    from animate_cli.models.footprint import clip_resident

    dt = torch_dtype(options.dtype)
    dev = torch.device(options.device)
    home = dev if options.offload == "none" else torch.device("cpu")
    # VAE and CLIP first: each passes through host RAM on its way to the GPU before the DiT takes its share.
    # With `blocks` the VAE is offloaded; CLIP too with bf16 weights, resident with FP8 (footprint.clip_resident).
    clip_home = dev if clip_resident(options.offload, options.weights_dtype) else home
    vae = load_component(AutoencoderKLWan, base, "vae", torch_dtype=dt).to(home).eval().requires_grad_(False)
    clip = load_component(CLIPVisionModel, base, "image_encoder", torch_dtype=dt).to(clip_home).eval().requires_grad_(False)
    # The DiT is built tensor by tensor from its checkpoint (dit_stream), each weight fused with its LoRAs on
    # the compute device and stored in its storage dtype on its way to `home`: the GPU for a resident model
    # (the host never holds it), host RAM for an offloaded one (where group offloading keeps it). Neither
    # host nor GPU ever holds the bf16 DiT of an FP8 run, and every mode fuses with the same arithmetic, so
    # `--offload` never changes the weights. (from_pretrained + peft, lora.apply_lora, would also leave the
    # fused weights as copy-on-write pages of the mapped checkpoint, which are not freed once pinned.)
    transformer, reports = load_dit(base, loras, dt, fp8=options.weights_dtype == "fp8", home=home, work=dev)
    # Several ranks (torchrun / --gpus N): split each DiT step (parallel.py); a no-op for one process. Before
    # runtime.prepare, so the attention backend it sets is checked against context parallelism by diffusers.
    parallel.enable_context_parallel(transformer)
    prepared = runtime.prepare(transformer, vae, clip, options)
    return Models(transformer, vae, clip, dev, dt, sum(r.modules for r in reports), options, prepared, reports)


def encode_prompt(base: Path, prompt: str, options: LoadOptions, max_tokens: int):
    """umT5 prompt embedding [1, max_tokens, text_dim]; positions past the prompt are zero (as Wan does).

    Loads the tokenizer and text encoder, encodes once, and frees them before returning. With
    offload "blocks" the encoder stays in host memory and its layers visit the GPU one at a time.
    """
    import gc

    import ftfy
    import torch
    from transformers import AutoTokenizer, UMT5EncoderModel

    from animate_cli.models import runtime
    from animate_cli.models.device import torch_dtype

    device = options.device
    tok = load_component(AutoTokenizer, base, "tokenizer")
    # Resident on CUDA: loaded straight into GPU memory (10.6 GiB of host RAM spared, footprint._host_phases).
    direct = options.offload == "none" and str(device).startswith("cuda")
    kw = {"device_map": torch.device(device)} if direct else {}
    enc = load_component(UMT5EncoderModel, base, "text_encoder", torch_dtype=torch_dtype(options.dtype), **kw).eval()
    if options.offload == "blocks":
        runtime.offload_text_encoder(enc, device)
    else:
        enc = enc.to(device)  # a no-op after device_map
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
