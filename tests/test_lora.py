"""LoRA keys (spec §5): the official naming patches all 10 modules per block; anything else fails loudly."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from support.tiny_models import LORA_MODULES, TRANSFORMER_CONFIG, write_official_lora

from animate_cli.errors import WeightsInvalidError
from animate_cli.models.lora import MODULE_MAP, apply_lora, convert_keys


@pytest.fixture()
def transformer():
    from diffusers import WanAnimateTransformer3DModel

    torch.manual_seed(0)
    return WanAnimateTransformer3DModel(**TRANSFORMER_CONFIG).eval()


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_official_naming_patches_every_module_with_b_at_a(tmp_path, transformer):
    path = tmp_path / "stage2_480p.safetensors"
    n = write_official_lora(path, TRANSFORMER_CONFIG)
    assert n == TRANSFORMER_CONFIG["num_layers"] * len(LORA_MODULES) == 20
    raw = load_file(str(path))
    assert "blocks.0.self_attn.q.lora_A.default.weight" in raw
    before = _weights(transformer)
    assert apply_lora(transformer, path) == 20
    after = _weights(transformer)
    for block in range(2):
        for off, diff in MODULE_MAP.items():
            a = raw[f"blocks.{block}.{off}.lora_A.default.weight"].float()
            b = raw[f"blocks.{block}.{off}.lora_B.default.weight"].float()
            key = f"blocks.{block}.{diff}.weight"
            torch.testing.assert_close(after[key] - before[key], b @ a, atol=1e-5, rtol=1e-4)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert len(changed) == 20  # exactly the 20 target weights, nothing else
    assert not any("lora" in name for name, _ in transformer.named_modules())  # peft layers unloaded


def test_prefix_and_down_up_variants_convert(tmp_path):
    a, b = torch.randn(2, 24), torch.randn(24, 2)
    for key_a, key_b in [
        ("diffusion_model.blocks.1.cross_attn.o.lora_A.weight", "diffusion_model.blocks.1.cross_attn.o.lora_B.weight"),
        ("blocks.1.cross_attn.o.lora_down.weight", "blocks.1.cross_attn.o.lora_up.weight"),
        ("transformer.blocks.1.attn2.to_out.0.lora_A.weight", "transformer.blocks.1.attn2.to_out.0.lora_B.weight"),
    ]:
        out = convert_keys({key_a: a, key_b: b})
        assert set(out) == {"blocks.1.attn2.to_out.0.lora_A.weight", "blocks.1.attn2.to_out.0.lora_B.weight"}


def test_alpha_is_folded_into_b():
    a, b = torch.ones(4, 24), torch.ones(24, 4)
    out = convert_keys(
        {"blocks.0.ffn.0.lora_A.weight": a, "blocks.0.ffn.0.lora_B.weight": b, "blocks.0.ffn.0.alpha": torch.tensor(2.0)}
    )
    assert torch.allclose(out["blocks.0.ffn.net.0.proj.lora_B.weight"], b * 0.5)


def test_unknown_names_fail_loudly(tmp_path, transformer):
    bad = tmp_path / "bad.safetensors"
    save_file({"blocks.0.self_attn.k_img.lora_A.default.weight": torch.zeros(2, 24),
               "blocks.0.self_attn.k_img.lora_B.default.weight": torch.zeros(24, 2)}, str(bad))  # fmt: skip
    with pytest.raises(WeightsInvalidError, match="k_img"):
        apply_lora(transformer, bad)
    junk = tmp_path / "junk.safetensors"
    save_file({"unet.down.0.lora_A.weight": torch.zeros(2, 2)}, str(junk))
    with pytest.raises(WeightsInvalidError, match="not a Wan transformer-block"):
        apply_lora(transformer, junk)


def test_modules_that_do_not_exist_fail(tmp_path, transformer):
    far = tmp_path / "far.safetensors"  # block 7 does not exist in a 2-block model
    save_file({"blocks.7.self_attn.q.lora_A.default.weight": torch.zeros(2, 24),
               "blocks.7.self_attn.q.lora_B.default.weight": torch.zeros(24, 2)}, str(far))  # fmt: skip
    with pytest.raises(WeightsInvalidError):
        apply_lora(transformer, far)


def test_wrong_shapes_fail(tmp_path, transformer):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"blocks.0.self_attn.q.lora_A.default.weight": torch.zeros(2, 99),
               "blocks.0.self_attn.q.lora_B.default.weight": torch.zeros(24, 2)}, str(wrong))  # fmt: skip
    with pytest.raises(WeightsInvalidError):
        apply_lora(transformer, wrong)


def test_unreadable_file_fails(tmp_path, transformer):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsInvalidError, match="cannot read LoRA"):
        apply_lora(transformer, p)
