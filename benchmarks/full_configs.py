"""Full-size configs of the Wan2.2-Animate-14B model set, shared by `benchmarks/bench_gpu.py` (random
weights on a GPU) and `benchmarks/measure_footprint.py` (fake tensors, no memory). No torch import here.

Each dict is the keyword arguments of the real class's constructor; the sources are cited per entry.
"""

from __future__ import annotations

# diffusers' WanAnimateTransformer3DModel config of Wan-AI/Wan2.2-Animate-14B-Diffusers, as written by
# huggingface/diffusers scripts/convert_wan_to_diffusers.py (model_type "Wan2.2-Animate-14B",
# `diffusers_config`, commit 2843b3d3). Motion-encoder channel
# sizes are left at the class default (WAN_ANIMATE_MOTION_ENCODER_CHANNEL_SIZES), as the script does.
# 17.27 B parameters (a meta-device count), 34.5 GB in bf16.
FULL_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36, latent_channels=16,
    out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280, added_kv_proj_dim=5120, rope_max_seq_len=1024,
    pos_embed_seq_len=None, motion_encoder_size=512, motion_style_dim=512, motion_dim=20, motion_encoder_dim=512,
    face_encoder_hidden_dim=1024, face_encoder_num_heads=4, inject_face_latents_blocks=5,
)  # fmt: skip

# Wan 2.1 VAE: the same script builds `AutoencoderKLWan()` with its defaults and loads Wan2.1_VAE.pth
# into it strictly, so the defaults are the real config (latents_mean/std stay the defaults too).
FULL_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                temperal_downsample=[False, True, True], dropout=0.0)  # fmt: skip

# image_encoder/: CLIPVisionModel of laion/CLIP-ViT-H-14-laion2B-s32B-b79K (the script's source):
# ViT-H/14 at 224 px -> 257 tokens x 1280, the [1, 257, 1280] of rollout.ChunkInputs.clip.
FULL_CLIP = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                 image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5)  # fmt: skip
IMAGE_TOKENS = 257  # CLIP ViT-H/14 at 224 px: 16 x 16 patches + class token

# text_encoder/: the same conversion script loads `UMT5EncoderModel.from_pretrained("google/umt5-xxl")`
# (Wan's umt5-xxl-enc-bf16.pth is that encoder). google/umt5-xxl config.json: d_model 4096, d_ff 10240,
# 24 layers, 64 heads of d_kv 64, vocab 256384, gated-gelu FFN, 32 relative-position buckets (max
# distance 128), untied input/output embeddings (only the encoder and its shared embedding are built here).
FULL_UMT5 = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                 relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
                 layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False)  # fmt: skip
