"""The bf16 original -> diffusers transformer conversion, on a tiny WanAnimateTransformer3DModel, and
the completeness check against the tiny model set `scripts/make_tiny_weights.py` writes."""

from __future__ import annotations

import json
import re

import pytest
import torch

from animate_cli import weights as W
from animate_cli.weights.convert import convert_shard, write_index

TINY = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "in_channels": 12,
    "latent_channels": 4,
    "out_channels": 4,
    "text_dim": 16,
    "freq_dim": 256,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "image_dim": 16,
    "rope_max_seq_len": 32,
    "motion_encoder_channel_sizes": {"4": 16, "8": 16, "16": 16},
    "motion_encoder_size": 16,
    "motion_style_dim": 8,
    "motion_dim": 4,
    "motion_encoder_dim": 16,
    "face_encoder_hidden_dim": 16,
    "face_encoder_num_heads": 2,
    "inject_face_latents_blocks": 2,
}  # diffusers' own test config


def to_original(sd: dict) -> dict:
    """diffusers names -> the original Wan-Animate names (the inverse of diffusers' converter).

    Only a fixture: the test first checks that diffusers' converter maps it back exactly.
    """
    motion = {
        "motion_synthesis_weight": "dec.direction.weight",
        "conv_in.weight": "enc.net_app.convs.0.0.weight",
        "conv_in.act_fn.bias": "enc.net_app.convs.0.1.bias",
        "conv_out.weight": "enc.net_app.convs.8.weight",
    }
    for i in range(7):
        c = f"enc.net_app.convs.{i + 1}"
        motion |= {
            f"res_blocks.{i}.conv1.weight": f"{c}.conv1.0.weight",
            f"res_blocks.{i}.conv1.act_fn.bias": f"{c}.conv1.1.bias",
            f"res_blocks.{i}.conv2.weight": f"{c}.conv2.1.weight",
            f"res_blocks.{i}.conv2.act_fn.bias": f"{c}.conv2.2.bias",
            f"res_blocks.{i}.conv_skip.weight": f"{c}.skip.1.weight",
        }
    prefixes = [
        ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
        ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
        ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
        ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
        ("condition_embedder.time_proj", "time_projection.1"),
        ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
        ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
        ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
        ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
        ("motion_encoder.motion_network", "motion_encoder.enc.fc"),
        ("scale_shift_table", "head.modulation"),
        ("proj_out", "head.head"),
    ]
    block = [
        (".attn1.", ".self_attn."),
        (".attn2.", ".cross_attn."),
        (".to_q.", ".q."),
        (".to_k.", ".k."),
        (".to_v.", ".v."),
        (".to_out.0.", ".o."),
        (".add_k_proj.", ".k_img."),
        (".add_v_proj.", ".v_img."),
        (".norm_added_k.", ".norm_k_img."),
        (".ffn.net.0.proj.", ".ffn.0."),
        (".ffn.net.2.", ".ffn.2."),
        (".scale_shift_table", ".modulation"),
        (".norm2.", ".norm3."),
    ]
    out = {}
    for k, v in sd.items():
        if k.startswith("motion_encoder.") and k.removeprefix("motion_encoder.") in motion:
            out["motion_encoder." + motion[k.removeprefix("motion_encoder.")]] = (
                v.reshape(1, -1, 1, 1) if k.endswith("bias") else v
            )
        elif m := re.fullmatch(r"face_adapter\.(\d+)\.(to_\w+|norm_\w)\.(\w+)", k):
            i, mod, p = m.groups()
            if mod == "to_k":  # to_k and to_v are halves of one linear1_kv
                out[f"face_adapter.fuser_blocks.{i}.linear1_kv.{p}"] = torch.cat([v, sd[k.replace(".to_k.", ".to_v.")]])
            elif mod != "to_v":
                name = {"to_q": "linear1_q", "to_out": "linear2", "norm_q": "q_norm", "norm_k": "k_norm"}[mod]
                out[f"face_adapter.fuser_blocks.{i}.{name}.{p}"] = v
        elif m := re.fullmatch(r"face_encoder\.(conv1_local|conv2|conv3)\.(\w+)", k):
            out[f"face_encoder.{m[1]}.conv.{m[2]}"] = v
        else:
            for a, b in prefixes:
                if k.startswith(a):
                    k = b + k[len(a) :]
            if k.startswith("blocks."):
                for a, b in block:
                    k = k.replace(a, b)
            out[k] = v
    return out


@pytest.fixture(scope="module")
def tiny_transformer():
    from diffusers import WanAnimateTransformer3DModel

    torch.manual_seed(0)
    model = WanAnimateTransformer3DModel(**TINY)
    return model, {k: v.to(torch.bfloat16).clone() for k, v in model.state_dict().items()}


def test_streamed_conversion_equals_diffusers_and_loads(tmp_path, tiny_transformer):
    from diffusers import WanAnimateTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from safetensors.torch import save_file

    model, sd = tiny_transformer
    orig = to_original(sd)
    assert any(k.endswith("linear1_kv.weight") for k in orig) and any(".convs.0.1.bias" in k for k in orig)
    reference = convert_wan_transformer_to_diffusers(dict(orig))  # diffusers, whole checkpoint at once
    assert reference.keys() == sd.keys() and all(torch.equal(reference[k], sd[k]) for k in sd)

    # Three original-layout shards; the first holds face_encoder tensors but no face_adapter tensor, the
    # case where a naive per-shard call of diffusers' converter gets the names wrong.
    keys = list(orig)
    face = [k for k in keys if k.startswith("face_encoder.")]
    rest = [k for k in keys if k not in face]
    groups = [face + rest[:10], rest[10:60], rest[60:]]
    naive = convert_wan_transformer_to_diffusers({k: orig[k] for k in groups[0]})
    assert not naive.keys() <= sd.keys()  # why weights_convert adds its probe tensors

    folder = tmp_path / "base" / "transformer"
    shards = []
    for i, group in enumerate(groups):
        src = tmp_path / f"orig-{i}.safetensors"
        save_file({k: orig[k].contiguous() for k in group}, str(src))
        shards.append(W.TRANSFORMER_SHARD.format(i=i + 1, n=len(groups)))
        names = convert_shard(src, folder / shards[-1])
        assert set(names) <= sd.keys()
    (folder / "config.json").write_text(json.dumps(dict(model.config), default=list))
    ref_index = tmp_path / "reference.json"
    ref_index.write_text(json.dumps({"weight_map": {k: "x" for k in sd}}))
    index = write_index(folder, shards, W.TRANSFORMER_INDEX, reference=ref_index)
    assert set(index["weight_map"]) == set(sd)
    assert not list(folder.glob("*.partial"))

    loaded = WanAnimateTransformer3DModel.from_pretrained(tmp_path / "base", subfolder="transformer", torch_dtype=torch.bfloat16)
    got = loaded.state_dict()
    assert got.keys() == sd.keys()
    assert all(torch.equal(got[k].float(), sd[k].float()) for k in sd)  # bit-exact (some modules load as fp32)

    ref_index.write_text(json.dumps({"weight_map": {**{k: "x" for k in sd}, "blocks.9.extra": "x"}}))
    with pytest.raises(ValueError, match="1 missing"):
        write_index(folder, shards, W.TRANSFORMER_INDEX, reference=ref_index)


def test_download_converts_shard_by_shard(tmp_path, tiny_transformer, monkeypatch):
    """download() with the real converter: original shards in, diffusers shards + index out, staging gone."""
    import huggingface_hub.constants
    from safetensors.torch import save
    from test_weights import FakeHub, hub_content

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _, sd = tiny_transformer
    orig = to_original(sd)
    keys = list(orig)
    content = hub_content()
    wan_orig, wan_diff = content["Wan-AI/Wan2.2-Animate-14B"], content["Wan-AI/Wan2.2-Animate-14B-Diffusers"]
    for i in range(4):
        wan_orig[W.TRANSFORMER_SHARD.format(i=i + 1, n=4)] = save({k: orig[k].contiguous() for k in keys[i::4]})
    wan_diff[f"transformer/{W.TRANSFORMER_INDEX}"] = json.dumps({"weight_map": {k: "x" for k in sd}}).encode()
    report = W.download(W.DownloadRequest(tmp_path, ("base",)), fetch=FakeHub(content))
    assert report.complete and not (tmp_path / W.STAGING_DIR).exists()
    index = json.loads((tmp_path / W.BASE_DIR / "transformer" / W.TRANSFORMER_INDEX).read_text())
    assert set(index["weight_map"]) == set(sd)


def test_tiny_weights_pass_the_same_completeness_check(tmp_path):
    from support.tiny_models import write_tiny_weights

    root = write_tiny_weights(tmp_path / "tiny")
    # the tiny set holds the rtmw pose stand-ins only (the wan ones come with the wan pose stage)
    assert W.problems(root, "480p", W.DEFAULT_PARTS, pose_model="rtmw") == []
    assert W.problems(root, "720p", W.DEFAULT_PARTS, pose_model="rtmw") == []
    paths = W.resolve(root, "480p", need=W.DEFAULT_PARTS)
    assert paths.base == root / W.BASE_DIR and paths.lora.is_file() and paths.det_onnx.is_file() and paths.pose_onnx.is_file()
