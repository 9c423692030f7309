"""Community LoRA layouts (docs/loras.md): stand-ins with the real files' key names, shapes scaled to a tiny
model, fused by the streamed loader; every tensor lands where the independent formula says, or is named."""

import pytest
import torch
from lora_layouts import BLOCK_LINEARS, LAYOUTS, expected_weights, standin
from safetensors.torch import save_file
from support.tiny_models import TRANSFORMER_CONFIG

from animate_cli.errors import WeightsInvalidError
from animate_cli.models import dit_stream, lora

SCALE = 0.7


def _write_base(folder, **extra):
    from diffusers import WanAnimateTransformer3DModel

    torch.manual_seed(0)
    WanAnimateTransformer3DModel(**TRANSFORMER_CONFIG, **extra).save_pretrained(folder / "transformer")
    return folder


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """`kv`: the tiny model with the image K/V projections of the 14B (added_kv_proj_dim); `plain`: without."""
    root = tmp_path_factory.mktemp("lora_formats")
    return {
        "kv": _write_base(root / "kv", added_kv_proj_dim=TRANSFORMER_CONFIG["image_dim"]),
        "plain": _write_base(root / "plain"),
    }


def _load(base, loras, dtype=torch.float32):
    return dit_stream.load_dit(base, loras, dtype, fp8=False, home=torch.device("cpu"))


def _shapes(model) -> dict:
    return {n: tuple(t.shape) for n, t in model.state_dict().items()}


def _save(state, path):
    save_file(state, str(path))
    return path


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_fuses_to_the_independent_formula(bases, tmp_path, layout):
    plain, _ = _load(bases["kv"], [])
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    state, expect = standin(layout, _shapes(plain))
    path = _save(state, tmp_path / f"{layout}.safetensors")
    got, (report,) = _load(bases["kv"], [(path, SCALE)])
    after, want = got.state_dict(), expected_weights(before, expect, SCALE)
    for name in before:
        torch.testing.assert_close(after[name].double(), want[name], rtol=1e-5, atol=1e-6, msg=name)
    targets = {e.target for e in expect}
    assert {n for n in before if not torch.equal(before[n], after[n])} == targets  # nothing else moved
    assert report.unplaced == [] and report.tensors_in == len(state) and report.scale == SCALE
    assert report.modules == len({t.rsplit(".", 1)[0] if t.endswith((".weight", ".bias")) else t for t in targets})


def test_lightx2v_layout_reaches_norms_modulation_and_the_modules_outside_the_blocks(bases, tmp_path):
    plain, _ = _load(bases["kv"], [])
    state, expect = standin("lightx2v", _shapes(plain))
    targets = {e.target for e in expect}
    # Wan's norm3 is diffusers' norm2 (the affine cross-attention norm); the q/k RMSNorms; the modulation table
    assert {"blocks.0.norm2.weight", "blocks.0.norm2.bias", "blocks.1.attn2.norm_added_k.weight",
            "blocks.0.attn1.norm_q.weight", "blocks.0.scale_shift_table", "proj_out.weight",
            "condition_embedder.time_proj.bias", "condition_embedder.image_embedder.norm2.weight"} <= targets  # fmt: skip
    assert len(state) == 2 * (12 * 3 + 6 + 1 + 1) + 8 * 3 + 2 * 2  # the per-block and outer layout of docs/loras.md


def test_comfy_kohya_and_peft_names_for_the_same_numbers_give_the_same_weights(bases, tmp_path):
    plain, _ = _load(bases["kv"], [])
    peft_state, _ = standin("peft", _shapes(plain))
    to_orig = {v: k for k, v in BLOCK_LINEARS.items()}
    comfy, kohya = {}, {}
    for key, t in peft_state.items():
        _, _, block, *module, kind, _ = key.split(".")
        orig = to_orig[".".join(module)]
        side = "lora_down" if kind == "lora_A" else "lora_up"
        comfy[f"diffusion_model.blocks.{block}.{orig}.{side}.weight"] = t
        kohya[f"lora_unet_blocks_{block}_{orig.replace('.', '_')}.{side}.weight"] = t
    models = [_load(bases["kv"], [(_save(s, tmp_path / f"{n}.safetensors"), SCALE)])[0]
              for n, s in (("peft", peft_state), ("comfy", comfy), ("kohya", kohya))]  # fmt: skip
    ref = models[0].state_dict()
    for m in models[1:]:
        for name, t in m.state_dict().items():
            assert torch.equal(t, ref[name]), name


def test_streamed_route_equals_diffusers_load_lora_weights_where_diffusers_accepts_the_file(bases, tmp_path):
    """diffusers' own route (WanAnimatePipeline.lora_state_dict -> load_lora_adapter -> fuse_lora) on the lightx2v
    stand-in: every tensor it patches equals ours; the ones it drops without a word are exactly the norms'
    `.diff`, the modulation `.diff_m` and the image-embedder norms, which we place."""
    from diffusers import WanAnimatePipeline, WanAnimateTransformer3DModel

    plain, _ = _load(bases["kv"], [])
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    state, expect = standin("lightx2v", _shapes(plain))
    path = _save(state, tmp_path / "lightx2v.safetensors")
    ours = _load(bases["kv"], [(path, SCALE)])[0].state_dict()
    converted = WanAnimatePipeline.lora_state_dict(str(path))
    converted = converted[0] if isinstance(converted, tuple) else converted
    theirs = WanAnimateTransformer3DModel.from_pretrained(str(bases["kv"] / "transformer"), torch_dtype=torch.float32)
    theirs.load_lora_adapter(converted, prefix="transformer", adapter_name="x")
    theirs.fuse_lora(lora_scale=SCALE, adapter_names=["x"])
    theirs.unload_lora()
    theirs = theirs.state_dict()
    patched = {n for n in before if not torch.equal(before[n], theirs[n])}
    for name in patched:
        torch.testing.assert_close(theirs[name], ours[name], rtol=1e-5, atol=1e-6, msg=name)
    dropped = {e.target for e in expect} - patched
    assert dropped and all(n.endswith("scale_shift_table") or ".norm" in n for n in dropped), sorted(dropped)
    assert len(converted) < len(state)


def test_keys_for_modules_the_model_lacks_are_named_and_too_many_is_exit_4(bases, tmp_path):
    kv, _ = _load(bases["kv"], [])
    state, _ = standin("lightx2v", _shapes(kv))
    path = _save(state, tmp_path / "i2v.safetensors")
    # on a model without image K/V projections, k_img / v_img / norm_k_img (7 of 44 per block) have no place
    with pytest.raises(
        WeightsInvalidError, match=r"14 of 116 tensors have no place .* \(first: diffusion_model\.blocks\.0\.cross_attn\.k_img"
    ):
        _load(bases["plain"], [(path, 1.0)])
    # a couple of foreign tensors (under the documented share) are named, the rest is fused
    few = dict(state, **{"diffusion_model.vace_blocks.0.proj.lora_down.weight": torch.zeros(4, 24),
                         "diffusion_model.vace_blocks.0.proj.lora_up.weight": torch.zeros(24, 4)})  # fmt: skip
    _, (report,) = _load(bases["kv"], [(_save(few, tmp_path / "few.safetensors"), 1.0)])
    assert report.unplaced == ["diffusion_model.vace_blocks.0.proj.lora_down.weight",
                               "diffusion_model.vace_blocks.0.proj.lora_up.weight"]  # fmt: skip
    assert "2 keys not placed (first: diffusion_model.vace_blocks.0.proj.lora_down.weight" in report.line()
    assert report.to_dict()["keys_not_placed"] == 2 and report.to_dict()["tensors_in"] == len(few)


def test_a_file_for_another_model_or_size_is_one_clear_error(bases, tmp_path):
    junk = _save({"unet.down.0.lora_A.weight": torch.zeros(2, 2), "unet.down.0.lora_B.weight": torch.zeros(2, 2)},
                 tmp_path / "sd.safetensors")  # fmt: skip
    with pytest.raises(WeightsInvalidError, match=r"none of its 2 tensors has a place .*first keys: unet\.down\.0\.lora_A"):
        _load(bases["plain"], [(junk, 1.0)])
    wide = _save({"diffusion_model.blocks.0.norm3.diff": torch.zeros(48)}, tmp_path / "wide.safetensors")
    with pytest.raises(WeightsInvalidError, match=r"a delta of shape \(48,\) does not fit blocks\.0\.norm2\.weight"):
        _load(bases["plain"], [(wide, 1.0)])
    empty = _save({}, tmp_path / "empty.safetensors")
    with pytest.raises(WeightsInvalidError, match="contains no tensors"):
        _load(bases["plain"], [(empty, 1.0)])


def test_scale_applies_to_every_part_and_zero_changes_nothing(bases, tmp_path):
    plain, _ = _load(bases["kv"], [])
    state, _ = standin("lightx2v", _shapes(plain))
    path = _save(state, tmp_path / "l.safetensors")
    zero, _ = _load(bases["kv"], [(path, 0.0)], dtype=torch.bfloat16)
    none, _ = _load(bases["kv"], [], dtype=torch.bfloat16)
    for name, t in none.state_dict().items():
        assert torch.equal(zero.state_dict()[name], t), name


def test_kohya_readings_try_every_dot_but_keep_numbers_dotted():
    readings = lora.kohya_readings("lora_unet_blocks_3_cross_attn_k_img")
    assert "blocks.3.cross_attn.k_img" in readings and all(r.startswith("blocks.3.") for r in readings)
