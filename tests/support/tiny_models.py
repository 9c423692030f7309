"""Tiny random Wan2.2-Animate model set, written in the same on-disk layout `download-weights`
produces, so tests and the demo fallback run the real loaders on it.

Built with the real diffusers/transformers classes (tiny configs follow diffusers' own Wan-Animate
tests) and saved with `save_pretrained` (safetensors). The EverAnimate LoRA is written with the
official key naming `blocks.N.<module>.lora_{A,B}.default.weight` for all 10 target modules per block.
"""

from __future__ import annotations

from pathlib import Path

BASE_DIRNAME = "wan2.2-animate-14b"
LORA_RANK = 2

TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, latent_channels=16,
    out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", image_dim=4, rope_max_seq_len=32,
    motion_encoder_channel_sizes={"4": 16, "8": 16, "16": 16}, motion_encoder_size=16, motion_style_dim=8,
    motion_dim=4, motion_encoder_dim=16, face_encoder_hidden_dim=16, face_encoder_num_heads=2,
    inject_face_latents_blocks=2,
)  # fmt: skip
VAE_CONFIG = dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
# Official EverAnimate module names (DiffSynth WanModel) per block (docs/model-facts.md, LoRA target modules).
LORA_MODULES = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
                "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")  # fmt: skip


def tiny_tokenizer():
    """A umT5-style (Unigram + Metaspace) tokenizer trained in memory: no download, no sentencepiece."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    corpus = ["a person is dancing", "the person walks to the left", "blurry, low quality", "视频中的人在做动作"] * 8
    tk = Tokenizer(models.Unigram())
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=64, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    tk.train_from_iterator(corpus, trainer)
    return T5TokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)


def lora_shapes(transformer_config: dict) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each EverAnimate LoRA target module."""
    inner = transformer_config["num_attention_heads"] * transformer_config["attention_head_dim"]
    ffn = transformer_config["ffn_dim"]
    shapes = {m: (inner, inner) for m in LORA_MODULES}
    shapes["ffn.0"] = (inner, ffn)
    shapes["ffn.2"] = (ffn, inner)
    return shapes


def write_official_lora(path: Path, transformer_config: dict, rank: int = LORA_RANK, seed: int = 1, scale: float = 0.2) -> int:
    """Random LoRA with the released file's key naming; returns the number of modules."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i in range(transformer_config["num_layers"]):
        for m, (fin, fout) in lora_shapes(transformer_config).items():
            sd[f"blocks.{i}.{m}.lora_A.default.weight"] = (torch.randn(rank, fin, generator=g) * scale).to(torch.bfloat16)
            sd[f"blocks.{i}.{m}.lora_B.default.weight"] = (torch.randn(fout, rank, generator=g) * scale).to(torch.bfloat16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return len(sd) // 2


def write_tiny_base(base: Path, seed: int = 0) -> Path:
    """transformer/, vae/, text_encoder/, tokenizer/, image_encoder/ under `base` (diffusers layout)."""
    import torch
    from diffusers import AutoencoderKLWan, WanAnimateTransformer3DModel
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    WanAnimateTransformer3DModel(**TRANSFORMER_CONFIG).save_pretrained(base / "transformer")
    torch.manual_seed(seed + 1)
    AutoencoderKLWan(**VAE_CONFIG).save_pretrained(base / "vae")
    torch.manual_seed(seed + 2)
    te = UMT5EncoderModel(UMT5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                     relative_attention_num_buckets=8)).eval()  # fmt: skip
    te.save_pretrained(base / "text_encoder")
    tiny_tokenizer().save_pretrained(base / "tokenizer")
    torch.manual_seed(seed + 3)
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2,
                                            image_size=4, intermediate_size=16, patch_size=1)).eval()  # fmt: skip
    clip.save_pretrained(base / "image_encoder")
    return base


def write_tiny_weights(root: Path, with_pose: bool = True) -> Path:
    """The whole tiny set in download-weights' layout; `root/.complete` marks success."""
    from animate_cli import config as C

    root = Path(root)
    write_tiny_base(root / BASE_DIRNAME)
    for i, rel in enumerate(C.LORA_BY_RESOLUTION.values()):
        write_official_lora(root / "everanimate" / rel, TRANSFORMER_CONFIG, seed=1 + i)
    if with_pose:
        from . import tiny_pose

        tiny_pose.write_tiny_pose_models(root / "pose")
        from . import tiny_wan

        tiny_wan.write_wan_models(root / BASE_DIRNAME)  # Wan's process_checkpoint: the default pose model
    (root / ".complete").write_text("tiny random weights for tests; not a real model\n")
    return root
