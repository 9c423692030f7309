"""Load-time memory/speed options on the tiny models: FP8 storage, group-offload wiring, the execution
device under offload, compile wiring, the resume fingerprint, and each bad flag value.

Group offloading cannot run for real here: diffusers raises for `use_stream=True` with a CPU onload
device, and a CPU has nowhere to offload to. So these tests replace diffusers' `apply_group_offloading`
and check the *wiring*: that it is called on the DiT, VAE, CLIP and umT5 with block level, streams,
non-blocking copies, after the LoRA fuse and after FP8 casting. The equality test goes one step further
than a no-op: the replacement records the call and then applies the real hooks with streams switched
off (CPU onload), so the frames come from a run through diffusers' real group-offloading hooks.
"""

import dataclasses
import os
import re

import numpy as np
import pytest
import torch
from helpers import frames_of, make_cfg
from typer.testing import CliRunner

from animate_cli import models
from animate_cli.cli import app
from animate_cli.errors import ResumeMismatchError, UsageError
from animate_cli.models import LoadOptions, attention, runtime
from animate_cli.models import device as devmod
from animate_cli.rollout import resume
from animate_cli.runner import pipeline


@pytest.fixture(scope="module")
def resident(tiny_weights, media_dir, tmp_path_factory):
    """The reference: a plain resident fp32 run (2 chunks)."""
    out = tmp_path_factory.mktemp("resident") / "r.mp4"
    cfg = make_cfg(media_dir, tiny_weights, out, frames=FRAMES)
    summary = pipeline.run(cfg)
    return cfg, summary, frames_of(out)


FRAMES = 100  # 2 chunks (77 + 23 new frames): the second one carries the motion latent and the memory


def _latents(cfg, chunks=2):
    return [resume.load_chunk_latents(cfg.resume_dir, c) for c in range(chunks)]


# --- group offloading: wiring ----------------------------------------------------------------------
class OffloadRecorder:
    """Stands in for diffusers.hooks.apply_group_offloading. Records each call and the state of the module
    at that moment; with `real=True` it then applies diffusers' real hooks with streams off (CPU onload)."""

    def __init__(self, real_fn=None):
        self.calls, self.real_fn = [], real_fn

    def __call__(self, module, **kw):
        linears = [
            m for n, m in module.named_modules() if n.startswith(("blocks.", "face_adapter.")) and isinstance(m, torch.nn.Linear)
        ]
        self.calls.append({
            "cls": type(module).__name__, "module": module, "kw": kw,
            "fp8_linears": sum(m.weight.dtype == torch.float8_e4m3fn for m in linears),
            "peft_layers": sum("lora" in n for n, _ in module.named_modules()),
        })  # fmt: skip
        if self.real_fn is not None:
            self.real_fn(module, **{**kw, "use_stream": False, "non_blocking": False})

    def by_class(self, name):
        found = [c for c in self.calls if c["cls"] == name]
        assert len(found) == 1, [c["cls"] for c in self.calls]
        return found[0]


def _loras(tiny_weights):
    from animate_cli import weights

    paths = weights.resolve(tiny_weights, "480p", need=("base", "lora"))
    return paths, [(paths.lora, 1.0)]


def test_blocks_mode_wires_group_offloading_after_lora_and_fp8(tiny_weights, monkeypatch):
    import diffusers.hooks

    rec = OffloadRecorder()
    monkeypatch.setattr(diffusers.hooks, "apply_group_offloading", rec)
    paths, loras = _loras(tiny_weights)
    opts = LoadOptions(device="cpu", dtype="fp32", offload="blocks", weights_dtype="fp8")
    m = models.load_models(paths.base, loras, opts)

    dit = rec.by_class("WanAnimateTransformer3DModel")
    assert dit["module"] is m.transformer
    want = dict(offload_type="block_level", num_blocks_per_group=1, use_stream=True, non_blocking=True, low_cpu_mem_usage=False)
    for name in ("WanAnimateTransformer3DModel", "AutoencoderKLWan"):
        call = rec.by_class(name)
        assert {k: call["kw"][k] for k in want} == want, name
        assert call["kw"]["onload_device"] == torch.device("cpu") and call["kw"]["offload_device"] == torch.device("cpu")
    # blocks + FP8: CLIP stays resident (footprint.clip_resident: host RAM is what that mode is for)
    assert not any(c["cls"] == "CLIPVisionModel" for c in rec.calls)
    # (pinned sizes are set and checked only for a CUDA onload: tests/test_pinned_sizes.py)
    # Order: the LoRA was fused and unloaded (no peft layers left) and FP8 casting done before offloading.
    n_linear = sum(isinstance(x, torch.nn.Linear) for n, x in m.transformer.named_modules()
                   if n.startswith(("blocks.", "face_adapter.")))  # fmt: skip
    assert dit["peft_layers"] == 0 and dit["fp8_linears"] == n_linear > 0
    assert m.lora_modules == 20
    # Offloaded models stay in host memory; the execution device is recorded for the chunk loop.
    assert all(devmod.execution_device(x) == torch.device("cpu") for x in (m.transformer, m.vae, m.image_encoder))
    assert m.summary()["offload"] == "blocks" and m.summary()["weights_dtype"] == "fp8"

    # blocks + bf16: CLIP is offloaded too, down to its 32 layers (its 1.2 GiB decide 720p on a 16 GB card)
    rec_bf16 = OffloadRecorder()
    monkeypatch.setattr(diffusers.hooks, "apply_group_offloading", rec_bf16)
    m16 = models.load_models(paths.base, loras, LoadOptions(device="cpu", dtype="fp32", offload="blocks"))
    assert rec_bf16.by_class("CLIPVisionModel")["module"] is m16.image_encoder
    assert rec_bf16.by_class("CLIPVisionModel")["kw"]["block_modules"] == ["vision_model", "encoder"]
    monkeypatch.setattr(diffusers.hooks, "apply_group_offloading", rec)

    # umT5: its encoder stack, block level, no streams (runs once; pinning 10.6 GiB would cost more than it saves).
    models.encode_prompt(paths.base, "a person dancing", opts, 8)
    t5 = rec.by_class("UMT5Stack")
    assert t5["kw"]["offload_type"] == "block_level" and t5["kw"]["use_stream"] is False


def test_resident_mode_does_not_offload(tiny_weights, monkeypatch):
    import diffusers.hooks

    rec = OffloadRecorder()
    monkeypatch.setattr(diffusers.hooks, "apply_group_offloading", rec)
    paths, loras = _loras(tiny_weights)
    models.load_models(paths.base, loras, LoadOptions(device="cpu", dtype="fp32", offload="none"))
    models.encode_prompt(paths.base, "x", LoadOptions(device="cpu", dtype="fp32", offload="none"), 8)
    assert rec.calls == []


def test_offload_configured_run_equals_resident(resident, tiny_weights, media_dir, tmp_path, monkeypatch):
    """`--offload blocks` on a tiny run through diffusers' real group-offloading hooks (streams off, CPU
    onload; see the module docstring) writes the same frames and latents as the resident run."""
    import diffusers.hooks

    rec = OffloadRecorder(real_fn=diffusers.hooks.apply_group_offloading)
    monkeypatch.setattr(diffusers.hooks, "apply_group_offloading", rec)
    real_choose = devmod.choose  # on a CPU device.choose refuses blocks: resolve as none, then load as blocks

    def choose_blocks(*args, **kwargs):
        return dataclasses.replace(real_choose(*args, **{**kwargs, "offload": "none"}), offload="blocks")

    monkeypatch.setattr(devmod, "choose", choose_blocks)
    cfg_r, _, frames_r = resident
    out = tmp_path / "o.mp4"
    cfg = make_cfg(media_dir, tiny_weights, out, frames=FRAMES, offload="blocks")
    summary = pipeline.run(cfg)
    assert {c["cls"] for c in rec.calls} == {"WanAnimateTransformer3DModel", "AutoencoderKLWan", "CLIPVisionModel", "UMT5Stack"}
    assert hasattr(rec.by_class("WanAnimateTransformer3DModel")["module"].blocks[0], "_diffusers_hook")  # real hooks
    assert summary.runtime["offload"] == "blocks"
    for a, b in zip(_latents(cfg_r), _latents(cfg), strict=True):
        assert torch.equal(a, b)
    assert np.array_equal(frames_r, frames_of(out))


def test_offload_configured_fp8_run_equals_resident_fp8(tiny_weights, media_dir, tmp_path, monkeypatch):
    """`--offload blocks --weights-dtype fp8` (DiT streamed in already cast, then offloaded through diffusers'
    real hooks; CLIP resident) writes the same frames and latents as resident FP8."""
    import diffusers.hooks

    cfg_r = make_cfg(media_dir, tiny_weights, tmp_path / "r.mp4", frames=FRAMES, weights_dtype="fp8")
    pipeline.run(cfg_r)
    rec = OffloadRecorder(real_fn=diffusers.hooks.apply_group_offloading)
    monkeypatch.setattr(diffusers.hooks, "apply_group_offloading", rec)
    real_choose = devmod.choose

    def choose_blocks(*args, **kwargs):
        return dataclasses.replace(real_choose(*args, **{**kwargs, "offload": "none"}), offload="blocks")

    monkeypatch.setattr(devmod, "choose", choose_blocks)
    cfg = make_cfg(media_dir, tiny_weights, tmp_path / "o.mp4", frames=FRAMES, offload="blocks", weights_dtype="fp8")
    summary = pipeline.run(cfg)
    assert {c["cls"] for c in rec.calls} == {"WanAnimateTransformer3DModel", "AutoencoderKLWan", "UMT5Stack"}
    assert rec.by_class("WanAnimateTransformer3DModel")["fp8_linears"] > 0  # cast before offloading
    assert summary.runtime["offload"] == "blocks" and summary.runtime["weights_dtype"] == "fp8"
    for a, b in zip(_latents(cfg_r), _latents(cfg), strict=True):
        assert torch.equal(a, b)
    assert np.array_equal(frames_of(tmp_path / "r.mp4"), frames_of(tmp_path / "o.mp4"))


# --- the execution device ---------------------------------------------------------------------------
def _park_between_forwards(part):
    """Mimic group offloading with the meta device as 'host memory': `part`'s parameters are empty meta
    tensors except while its forward runs (restored just before, parked again just after)."""
    slots = [(mod, name, p) for mod in part.modules() for name, p in mod._parameters.items() if p is not None]

    def park(*_):
        for mod, name, p in slots:
            mod._parameters[name] = torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=False)

    def restore(*_):
        for mod, name, p in slots:
            mod._parameters[name] = p

    part.register_forward_pre_hook(restore)
    part.register_forward_hook(park)
    park()


def test_inputs_go_to_the_execution_device_not_the_first_parameters(resident, tiny_weights, media_dir, tmp_path, monkeypatch):
    """Today's offload bug: the loop took the device from `next(module.parameters())`, which under group
    offloading is host memory. Here every model's parameters sit on `meta` between forwards (so the old
    code would move every input to meta); the run must still compute on Models.device and match."""
    real_load = models.load_models

    def load(*a, **k):
        m = real_load(*a, **k)
        for part in (m.transformer, m.image_encoder, m.vae.encoder, m.vae.decoder, m.vae.quant_conv, m.vae.post_quant_conv):
            _park_between_forwards(part)
        assert next(m.transformer.parameters()).device.type == "meta" and m.device == torch.device("cpu")
        return m

    monkeypatch.setattr(models, "load_models", load)
    cfg_r, _, frames_r = resident
    out = tmp_path / "p.mp4"
    cfg = make_cfg(media_dir, tiny_weights, out, frames=FRAMES)
    pipeline.run(cfg)
    for a, b in zip(_latents(cfg_r), _latents(cfg), strict=True):
        assert torch.equal(a, b)
    assert np.array_equal(frames_r, frames_of(out))


# --- FP8 -------------------------------------------------------------------------------------------
def test_fp8_casts_exactly_the_linears_of_blocks_and_face_adapters(tiny_weights):
    paths, loras = _loras(tiny_weights)
    m = models.load_models(paths.base, loras, LoadOptions(device="cpu", dtype="bf16", weights_dtype="fp8"))
    cast, kept = set(), set()
    for name, mod in m.transformer.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            (cast if p.dtype == torch.float8_e4m3fn else kept).add((name, type(mod).__name__, pname))
    assert cast and all(re.match(r"(blocks|face_adapter)\.\d+\.", n) and cls == "Linear" for n, cls, _ in cast)
    repeated = {(n, "Linear", p) for n, mod in m.transformer.named_modules() if n.startswith(("blocks.", "face_adapter."))
                and isinstance(mod, torch.nn.Linear) for p, _ in mod.named_parameters(recurse=False)}  # fmt: skip
    assert cast == repeated  # every Linear weight and bias inside the blocks and face adapters, nothing else
    assert any(n.startswith("face_adapter.") for n, _, _ in cast)
    for outside in ("motion_encoder", "face_encoder", "patch_embedding", "pose_patch_embedding",
                    "condition_embedder", "proj_out"):  # fmt: skip
        assert any(n == outside or n.startswith(outside + ".") for n, _, _ in kept), outside
        assert not any(n == outside or n.startswith(outside + ".") for n, _, _ in cast), outside
    # the face adapters' norms (pre_norm_q/kv have no weights; norm_q/norm_k RMSNorms do) stay in bf16
    assert any(n.startswith("face_adapter.") and cls == "RMSNorm" for n, cls, _ in kept)
    assert m.transformer.dtype == torch.bfloat16  # compute dtype, seen by the chunk loop
    assert m.summary()["fp8_linear_layers"] == len({n for n, _, _ in cast})


def fp8_errors(tiny_weights, media_dir, tmp_path, steps):
    """Per-chunk latent error of FP8 storage vs bf16 storage (bf16 compute both), 2 chunks."""
    runs = {}
    for wd in ("bf16", "fp8"):
        cfg = make_cfg(
            media_dir, tiny_weights, tmp_path / f"{wd}.mp4", frames=FRAMES, dtype="bf16", weights_dtype=wd, steps=steps
        )
        pipeline.run(cfg)
        runs[wd] = _latents(cfg)
    rows = []
    for c, (a, b) in enumerate(zip(runs["bf16"], runs["fp8"], strict=True)):
        d = b.float() - a.float()
        rows.append({"chunk": c, "max_abs": d.abs().max().item(), "rel_rms": (d.pow(2).mean().sqrt() / a.float().pow(2).mean().sqrt()).item(),
                     "ref_max_abs": a.float().abs().max().item()})  # fmt: skip
    return rows


def test_fp8_latent_error_per_chunk_is_small_but_nonzero(tiny_weights, media_dir, tmp_path):
    rows = fp8_errors(tiny_weights, media_dir, tmp_path, FP8_STEPS)
    for r in rows:
        print(f"fp8 vs bf16 chunk {r['chunk']}: max abs {r['max_abs']:.4f} (latent max {r['ref_max_abs']:.2f}), "
              f"relative RMS {r['rel_rms']:.4f}")  # fmt: skip
        assert r["max_abs"] > 0  # the cast really happened
        assert r["rel_rms"] < FP8_REL_RMS_LIMIT


# 2 steps keep the suite fast; EVERANIMATE_FP8_STEPS=20 measures the real step count (README's figures).
FP8_STEPS = int(os.environ.get("EVERANIMATE_FP8_STEPS", "2"))
FP8_REL_RMS_LIMIT = 0.05  # e4m3 keeps 3 mantissa bits (~3 % weight rounding); see README "Memory and speed options"


# --- compile --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("offload", "wd"), [("none", "bf16"), ("none", "fp8"), ("blocks", "bf16"), ("blocks", "fp8")])
def test_compile_wiring_and_compile_time(tiny_weights, monkeypatch, offload, wd):
    """torch.compile itself is not run here (tests/test_compile.py counts what it does); the order is: FP8 Linears
    made traceable and the blocks' own forward compiled before group offloading wraps them; the compile clock."""
    import diffusers.hooks

    order = []
    real_traceable = runtime.traceable_fp8
    monkeypatch.setattr(runtime, "traceable_fp8", lambda tr: order.append(("traceable", real_traceable(tr))))
    monkeypatch.setattr(runtime, "compile_blocks", lambda tr, **kw: order.append(("compile", kw)))
    rec = OffloadRecorder()
    monkeypatch.setattr(
        diffusers.hooks, "apply_group_offloading", lambda module, **kw: order.append(("offload",)) or rec(module, **kw)
    )
    paths, loras = _loras(tiny_weights)
    m = models.load_models(
        paths.base, loras, LoadOptions(device="cpu", dtype="fp32", offload=offload, weights_dtype=wd, compile=True)
    )
    steps = [o[0] for o in order]
    assert steps[:2] == ["traceable", "compile"] and steps.count("compile") == 1
    assert steps[2:] == (["offload"] * (2 if wd == "fp8" else 3) if offload == "blocks" else [])  # CLIP resident with FP8
    n_fp8 = order[0][1]
    assert n_fp8 == (m.summary()["fp8_linear_layers"] if wd == "fp8" else 0) and (n_fp8 > 0) == (wd == "fp8")
    assert not any(hasattr(x, "_diffusers_hook") for x in m.transformer.modules() if isinstance(x, torch.nn.Linear))
    assert m.summary()["compile"] is True and m.summary()["compile_s"] is None  # no forward yet
    m.prepared.timer.times[:] = [5.0, 1.0, 1.2, 0.9]
    assert m.summary()["compile_s"] == pytest.approx(4.0)


def test_blocks_on_cpu_is_a_usage_error():
    """Streamed group offloading needs a CUDA device to stream to; on a CPU device.choose refuses it (exit 2)."""
    assert devmod.choose("cpu", "fp32", allow_cpu=True, offload="auto").offload == "none"
    with pytest.raises(UsageError, match="needs a CUDA device"):
        devmod.choose("cpu", "fp32", allow_cpu=True, offload="blocks")


# --- resume fingerprint -----------------------------------------------------------------------------
def test_resume_fingerprint_counts_weights_dtype_not_offload_or_compile(resident, monkeypatch):
    cfg, _, _ = resident
    from dataclasses import replace

    calls = []
    monkeypatch.setattr(models, "load_models", lambda *a, **k: calls.append(a) or pytest.fail("nothing to regenerate"))
    # A finished run asked again with other offload/compile settings resumes (nothing left to do).
    pipeline.run(replace(cfg, overwrite=True, offload="none", compile=True))
    with pytest.raises(ResumeMismatchError, match="weights_dtype"):
        pipeline.run(replace(cfg, overwrite=True, weights_dtype="fp8"))


def test_resume_refuses_fp8_chunks_made_with_another_fp8_scope(media_dir, tiny_weights, tmp_path, monkeypatch):
    """FP8 chunks saved when FP8 covered the blocks only (before the face adapters) are not mixed with new ones."""
    cfg = make_cfg(media_dir, tiny_weights, tmp_path / "f.mp4", frames=40, weights_dtype="fp8")  # one chunk
    monkeypatch.setattr(runtime, "FP8_SKIP_PATTERN", r"^(?!blocks\b)\w")  # the earlier scope
    pipeline.run(cfg)
    monkeypatch.undo()
    with pytest.raises(ResumeMismatchError, match="weights_dtype"):
        pipeline.run(dataclasses.replace(cfg, overwrite=True))


# --- bad flag values: exit 2, one line, no traceback --------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (["--offload", "disk"], "--offload must be one of auto, none, blocks, got 'disk'"),
        (["--weights-dtype", "fp16"], "--weights-dtype must be one of bf16, fp8, got 'fp16'"),
        (["--attention", "xformers"], "--attention must be one of auto, sdpa, flash, sage, got 'xformers'"),
        (["--attention", "flash"], "--attention flash needs the `flash-attn` package"),
        (["--attention", "sage"], "--attention sage needs the `sageattention` package"),
        (["--offload", "blocks", "--device", "cpu"], "--offload blocks needs a CUDA device"),
    ],
)
def test_bad_flag_values(flags, text, media_dir, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setattr(attention, "_installed", lambda name: False)  # the same answer on a machine that has them
    args = ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--weights-dir", str(tiny_weights),
            "--out", str(tmp_path / "o.mp4"), "--size", "64x32", "--steps", "1", "--dtype", "fp32",
            "--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4"), *flags]  # fmt: skip
    if "--device" not in flags:
        args += ["--device", "cpu"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert text in result.output, result.output
    assert not (tmp_path / "o.mp4").exists()


def test_cli_json_records_the_runtime_settings(media_dir, tiny_weights, tmp_path):
    import json

    args = ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--weights-dir", str(tiny_weights),
            "--out", str(tmp_path / "o.mp4"), "--size", "64x32", "--steps", "1", "--dtype", "fp32", "--device", "cpu",
            "--frames", "20", "--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4"),
            "--weights-dtype", "fp8", "--attention", "sdpa", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    rt = json.loads(result.stdout)["runtime"]
    assert rt["offload"] == "none" and rt["weights_dtype"] == "fp8" and rt["attention"] == "native"  # auto on the CPU: none
    assert rt["compile"] is False and rt["compile_s"] is None and rt["fp8_linear_layers"] > 0
