"""dit_stream.load_dit (issue 8, FP8 host RAM): the DiT built tensor by tensor, LoRAs fused and Linears cast
as read, equals -- bit for bit -- what from_pretrained + peft fuse (lora.apply_lora) + layerwise casting give,
never holds a read bf16 weight of an FP8 layer beside the next one, and fails with one-line errors on
checkpoints and LoRAs that do not fit."""

import json
import shutil
import weakref

import pytest
import torch
from safetensors.torch import load_file, save_file
from support.tiny_models import TRANSFORMER_CONFIG, write_official_lora, write_tiny_base

from animate_cli.errors import WeightsInvalidError
from animate_cli.models import dit_stream, runtime
from animate_cli.models.lora import apply_lora

FP8 = torch.float8_e4m3fn


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("dit_stream")
    write_tiny_base(root / "base")
    # two LoRAs, fused in order at different scales; scale 0.9 of the second exercises peft's scale_layer
    write_official_lora(root / "a.safetensors", TRANSFORMER_CONFIG, seed=1, scale=0.3)
    write_official_lora(root / "b.safetensors", TRANSFORMER_CONFIG, seed=2, scale=0.3)
    torch.manual_seed(0)
    return root


def _loras(root):
    return [(root / "a.safetensors", 1.0), (root / "b.safetensors", 0.9)]


def _reference(root, fp8: bool):
    """The bf16 path: from_pretrained, peft fuse per LoRA, then (FP8) layerwise casting."""
    from diffusers import WanAnimateTransformer3DModel

    tr = WanAnimateTransformer3DModel.from_pretrained(str(root / "base" / "transformer"), torch_dtype=torch.bfloat16)
    tr = tr.eval()
    for i, (path, scale) in enumerate(_loras(root)):
        apply_lora(tr, path, scale, adapter_name=f"lora{i}")
    if fp8:
        runtime.cast_blocks_fp8(tr, torch.bfloat16)
    return tr.requires_grad_(False)


def _tensors(model) -> dict:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}  # non-persistent buffers too


def _bits(t):
    return t.detach().view(torch.uint8) if t.dtype == FP8 else t.detach()


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    c = TRANSFORMER_CONFIG
    r = lambda *s: torch.randn(*s, generator=g).to(torch.bfloat16)  # noqa: E731
    return dict(hidden_states=r(1, c["in_channels"], 3, 4, 4), timestep=torch.tensor([500.0]),
                encoder_hidden_states=r(1, 8, c["text_dim"]), encoder_hidden_states_image=r(1, 5, c["image_dim"]),
                pose_hidden_states=r(1, c["latent_channels"], 2, 4, 4), face_pixel_values=r(1, 3, 5, 16, 16))  # fmt: skip


@pytest.mark.parametrize("fp8", [True, False], ids=["fp8", "bf16"])
def test_equals_from_pretrained_plus_peft_fuse_bit_for_bit(base, fp8):
    ref = _reference(base, fp8)
    got, reports = dit_stream.load_dit(base / "base", _loras(base), torch.bfloat16, fp8=fp8, home=torch.device("cpu"))
    assert [r.modules for r in reports] == [TRANSFORMER_CONFIG["num_layers"] * 10] * 2
    assert [r.unplaced for r in reports] == [[], []] and [r.scale for r in reports] == [1.0, 0.9]
    a, b = _tensors(ref), _tensors(got)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].device == b[name].device, name
        assert torch.equal(_bits(a[name]), _bits(b[name])), name
    n_fp8 = sum(t.dtype == FP8 for t in b.values())
    if fp8:
        # every Linear of the blocks and the face adapters (weight and bias), nothing outside them
        assert runtime.fp8_layers(got) == runtime.fp8_layers(ref) > 0
        assert all(n.startswith(("blocks.", "face_adapter.")) for n, t in b.items() if t.dtype == FP8)
        assert any(n.startswith("face_adapter.") for n, t in b.items() if t.dtype == FP8)
        assert runtime.cast_blocks_fp8(got, torch.bfloat16) == runtime.fp8_layers(got)  # idempotent: hooks kept
    else:
        assert n_fp8 == 0
    with torch.no_grad():
        out_ref = ref(**_inputs(), return_dict=False)[0]
        out_got = got(**_inputs(), return_dict=False)[0]
    assert torch.equal(out_ref, out_got)  # FP8 layers upcast in forward through the same hooks


def test_sharded_checkpoint_loads_the_same(base, tmp_path):
    from diffusers import WanAnimateTransformer3DModel

    src = WanAnimateTransformer3DModel.from_pretrained(str(base / "base" / "transformer"))
    src.save_pretrained(tmp_path / "base" / "transformer", max_shard_size="20KB")
    assert (tmp_path / "base" / "transformer" / dit_stream.INDEX_FILE).is_file()
    assert len(dit_stream.shard_files(tmp_path / "base" / "transformer")) > 2
    one, _ = dit_stream.load_dit(base / "base", [], torch.bfloat16, fp8=True, home=torch.device("cpu"))
    many, _ = dit_stream.load_dit(tmp_path / "base", [], torch.bfloat16, fp8=True, home=torch.device("cpu"))
    for (n, a), (_, b) in zip(_tensors(one).items(), _tensors(many).items(), strict=True):
        assert torch.equal(_bits(a), _bits(b)), n


def test_no_read_weight_of_an_fp8_layer_outlives_its_cast(base, monkeypatch):
    """The point of the loader: the host never holds the bf16 copies of the FP8 layers, only one at a time."""
    from safetensors import safe_open as real_safe_open

    reads: list[tuple[str, weakref.ref]] = []
    alive_at_read: list[int] = []
    fp8_keys: set[str] = set()

    class Handle:
        def __init__(self, *a, **k):
            self._h = real_safe_open(*a, **k)

        def __enter__(self):
            self._h.__enter__()
            return self

        def __exit__(self, *exc):
            return self._h.__exit__(*exc)

        def keys(self):
            return self._h.keys()

        def get_tensor(self, key):
            alive_at_read.append(sum(ref() is not None for k, ref in reads if k in fp8_keys))
            t = self._h.get_tensor(key)
            reads.append((key, weakref.ref(t)))
            return t

    import safetensors

    monkeypatch.setattr(safetensors, "safe_open", Handle)
    model, _ = dit_stream.load_dit(base / "base", _loras(base), torch.bfloat16, fp8=True, home=torch.device("cpu"))
    fp8_keys.update(n for n, t in model.state_dict().items() if t.dtype == FP8)
    # recount now that the FP8 keys are known (the list was filled while loading)
    alive_at_read.clear()
    reads.clear()
    model, _ = dit_stream.load_dit(base / "base", _loras(base), torch.bfloat16, fp8=True, home=torch.device("cpu"))
    # every checkpoint tensor read once (the LoRA files are read through safe_open too, before the checkpoint)
    assert len([k for k, _ in reads if k in model.state_dict()]) == len(model.state_dict()) and fp8_keys
    assert max(alive_at_read) == 0  # when any tensor is read, no bf16 read of an FP8 weight is still alive


def _copy_base(base, tmp_path):
    dst = tmp_path / "base"
    shutil.copytree(base / "base" / "transformer", dst / "transformer")
    return dst


def test_checkpoint_lacking_a_tensor_is_one_clear_error(base, tmp_path):
    dst = _copy_base(base, tmp_path)
    f = dst / "transformer" / dit_stream.SINGLE_FILE
    sd = load_file(str(f))
    sd.pop("blocks.1.ffn.net.2.weight")
    save_file(sd, str(f))
    with pytest.raises(WeightsInvalidError, match=r"lacks 1 tensors \(first: blocks\.1\.ffn\.net\.2\.weight\)"):
        dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))


def test_checkpoint_with_a_foreign_tensor_loads_as_from_pretrained_does_unless_one_is_missing(base, tmp_path):
    dst = _copy_base(base, tmp_path)
    f = dst / "transformer" / dit_stream.SINGLE_FILE
    sd = load_file(str(f))
    sd["blocks.9.attn1.to_q.weight"] = torch.zeros(2, 2, dtype=torch.bfloat16)
    save_file(sd, str(f))
    model, _ = dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))  # skipped
    assert "blocks.9.attn1.to_q.weight" not in model.state_dict()
    sd.pop("blocks.0.ffn.net.0.proj.weight")  # renamed tensors: one missing, one foreign -> both named
    save_file(sd, str(f))
    with pytest.raises(WeightsInvalidError, match=r"lacks 1 tensors .* holds 1 the config does not \(first: blocks.9"):
        dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))


def test_malformed_index_and_config_are_one_clear_error(base, tmp_path):
    dst = _copy_base(base, tmp_path)
    (dst / "transformer" / dit_stream.INDEX_FILE).write_text(json.dumps({"weight_map": ["a", "b"]}))
    with pytest.raises(WeightsInvalidError, match="weight_map is not a map"):
        dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))
    (dst / "transformer" / dit_stream.INDEX_FILE).unlink()
    cfg = json.loads((dst / "transformer" / "config.json").read_text())
    (dst / "transformer" / "config.json").write_text(json.dumps({**cfg, "num_attention_heads": "x"}))
    with pytest.raises(WeightsInvalidError, match="cannot build the transformer from"):
        dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))


def test_checkpoint_tensor_of_another_shape_is_one_clear_error(base, tmp_path):
    dst = _copy_base(base, tmp_path)
    f = dst / "transformer" / dit_stream.SINGLE_FILE
    sd = load_file(str(f))
    sd["blocks.0.attn1.to_q.weight"] = sd["blocks.0.attn1.to_q.weight"][:, :12].contiguous()
    save_file(sd, str(f))
    with pytest.raises(WeightsInvalidError, match=r"blocks.0.attn1.to_q.weight has shape \(24, 12\), the config says \(24, 24\)"):
        dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))


def test_missing_shard_and_no_checkpoint_are_clear_errors(base, tmp_path):
    dst = _copy_base(base, tmp_path)
    (dst / "transformer" / dit_stream.INDEX_FILE).write_text(json.dumps({"weight_map": {"x": "part-2.safetensors"}}))
    with pytest.raises(WeightsInvalidError, match="lacks checkpoint shard part-2.safetensors"):
        dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))
    (dst / "transformer" / dit_stream.INDEX_FILE).unlink()
    (dst / "transformer" / dit_stream.SINGLE_FILE).unlink()
    with pytest.raises(WeightsInvalidError, match="has no diffusion_pytorch_model.safetensors"):
        dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))
    (dst / "transformer" / dit_stream.SINGLE_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsInvalidError, match="cannot read"):
        dit_stream.load_dit(dst, [], torch.bfloat16, fp8=True, home=torch.device("cpu"))


def test_lora_that_does_not_fit_is_one_clear_error(base, tmp_path):
    far = tmp_path / "far.safetensors"  # block 7 does not exist in a 2-block model
    save_file({"blocks.7.self_attn.q.lora_A.default.weight": torch.zeros(2, 24),
               "blocks.7.self_attn.q.lora_B.default.weight": torch.zeros(24, 2)}, str(far))  # fmt: skip
    with pytest.raises(WeightsInvalidError, match=r"none of its 2 tensors .* \(first keys: blocks\.7\.self_attn\.q\.lora_A"):
        dit_stream.load_dit(base / "base", [(far, 1.0)], torch.bfloat16, fp8=True, home=torch.device("cpu"))
    wide = tmp_path / "wide.safetensors"  # right module, wrong width (a LoRA for another model size)
    save_file({"blocks.0.self_attn.q.lora_A.default.weight": torch.zeros(2, 48),
               "blocks.0.self_attn.q.lora_B.default.weight": torch.zeros(48, 2)}, str(wide))  # fmt: skip
    with pytest.raises(WeightsInvalidError, match=r"does not fit blocks.0.attn1.to_q.weight of shape \(24, 24\)"):
        dit_stream.load_dit(base / "base", [(wide, 1.0)], torch.bfloat16, fp8=True, home=torch.device("cpu"))
    half = tmp_path / "half.safetensors"
    save_file({"blocks.0.self_attn.q.lora_A.default.weight": torch.zeros(2, 24)}, str(half))
    with pytest.raises(WeightsInvalidError, match="none of its 1 tensors has a place"):  # half a pair lands nowhere
        dit_stream.load_dit(base / "base", [(half, 1.0)], torch.bfloat16, fp8=True, home=torch.device("cpu"))


@pytest.mark.gpu
def test_streaming_onto_the_gpu_equals_streaming_onto_the_cpu(base):
    """GPU only: each tensor fused on the GPU and stored there (`none` + FP8) equals the CPU build; the fuse's
    fp32 product may round differently in the last bit, so the FP8 weights are compared within one FP8 step."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu, _ = dit_stream.load_dit(base / "base", _loras(base), torch.bfloat16, fp8=True, home=torch.device("cpu"))
    gpu, _ = dit_stream.load_dit(base / "base", _loras(base), torch.bfloat16, fp8=True, home=torch.device("cuda"))
    gpu = gpu.to("cuda")
    a, b = _tensors(cpu), _tensors(gpu)
    assert a.keys() == b.keys()
    for name in a:
        assert b[name].device.type == "cuda" and a[name].dtype == b[name].dtype, name
        x, y = a[name].float(), b[name].float().cpu()
        if a[name].dtype == FP8:
            torch.testing.assert_close(x, y, rtol=0.13, atol=2**-9)  # e4m3: 3 mantissa bits
        else:
            torch.testing.assert_close(x, y, rtol=2**-7, atol=1e-6)
