"""`make gpu-check`: the first GPU run's checks in one script, at most 8 minutes on one H100/H200 (issue 18).

Each check is timed and judged pass/fail; all go into one JSON report under benchmarks/results/. Random weights
built in place (nothing is downloaded), the library's own set-up path (runtime.prepare, through bench_gpu's
helpers), full-width models cut to 4 DiT blocks where the depth does not matter:

    (a) pinned     blocks set-up of a full-width 4-block DiT + VAE + CLIP: the probe found pinned sizes exact,
                   the host allocator holds the streamed tensors once (pinned in place, no second copy), each exact
    (b) modes      none/blocks x bf16/fp8 on that model at 480p, 2 steps: latents equal across offload per dtype;
                   max allocated and max reserved against the memory model's dit_step phase scaled to 4 blocks
    (c) attention  every backend diffusers accepts here against native (SDPA), and the context-parallel
                   capability of the backend `--gpus N` would use
    (d) compile    4-block DiT, none/bf16 and blocks/fp8: graph breaks, recompiles, compile time, eager vs compiled step
    (e) umt5       umT5-XXL resident vs block-offloaded: equal embeddings, GPU memory back to where it was after
    (f) full_dit   the 17.3 B DiT, one 480p step on random weights: peak vs predicted, s/step, MFU against a
                   bf16 matmul peak measured in the same run

Without a CUDA GPU it exits 5 with one line (in well under 10 s). `--allow-cpu` runs the same checks on the tiny
configs on the CPU (what a CPU can show: (a) and the blocks modes need CUDA and are skipped; compile uses
dynamo's eager backend): the harness and its JSON, tested in tests/test_gpu_check.py; its numbers mean nothing.
Exit 0 when every check passed (skipped ones aside), 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the tiny model builders (not in the package)
SCHEMA = "everanimate.gpu-check/1"
CHECKS = ("pinned", "modes", "attention", "compile", "umt5", "full_dit")  # (a)..(f), as the issue lists them
RUN_ORDER = ("pinned", "modes", "attention", "umt5", "full_dit", "compile")  # the slowest (compiling) last: the budget
BUDGET_S = 480  # 8 minutes: a check that would start after this is skipped (recorded as such)
BLOCKS = 4  # DiT depth of the cut models: 4 full-width blocks and the one face adapter before them
CUT = {"num_layers": BLOCKS, "inject_face_latents_blocks": BLOCKS}
SIZE_480P = (832, 480)
TINY_SIZE = (64, 32)
MEMORY_TOLERANCE = 0.15  # measured may exceed the memory model by at most this much (issue 8's "within 15 %")
PINNED_TOLERANCE = 0.03  # host allocator bytes vs streamed bytes: once, exact (tensors <= 1 MiB, biases/norms, still round)
ATTENTION_ATOL = {"exact": 2e-2, "approximate": 1e-1}  # bf16 outputs of unit-variance attention vs SDPA
ATTENTION_SHAPE = (1, 4096, 40, 128)  # [B, S, H, D]: Wan's 40 heads of 128, a fraction of a 480p call
NO_GPU_EXIT = 5  # errors.ExitCode.DEVICE


# --- judgements (pure; tests/test_gpu_check.py) ---------------------------------------------------
def judge_pinned(exact: bool, pinned_bytes: int, streamed_bytes: int, all_pinned: bool) -> dict:
    ratio = pinned_bytes / streamed_bytes if streamed_bytes else None
    ok = bool(exact and all_pinned and ratio is not None and abs(ratio - 1) <= PINNED_TOLERANCE)
    return {"pass": ok, "pinned_over_streamed": ratio, "probe_exact": exact, "all_streamed_pinned": all_pinned}


def judge_memory(measured_gib: float, predicted_gib: float) -> dict:
    """Pass when the model does not under-predict by more than MEMORY_TOLERANCE (over-predicting is safe)."""
    ratio = measured_gib / predicted_gib if predicted_gib else None
    return {"measured_gib": round(measured_gib, 3), "predicted_gib": round(predicted_gib, 3),
            "measured_over_predicted": None if ratio is None else round(ratio, 3),
            "pass": ratio is not None and ratio <= 1 + MEMORY_TOLERANCE}  # fmt: skip


def judge_equal(a, b) -> dict:
    import torch

    diff = float((a.float() - b.float()).abs().max())
    return {"equal": bool(torch.equal(a, b)), "max_abs_diff": diff, "pass": bool(torch.equal(a, b))}


def judge_compile(graph_breaks: int, recompiles: int) -> bool:
    return graph_breaks == 0 and recompiles == 0


def overall(checks: dict) -> bool:
    """Every check that ran passed (a skipped one, pass None, neither passes nor fails)."""
    return all(c.get("pass") is not False for c in checks.values())


# --- helpers ----------------------------------------------------------------------------------------
def _gib(x: float) -> float:
    return x / 2**30


def _cuda(device) -> bool:
    return str(device).startswith("cuda")


def _free(device) -> None:
    import torch

    gc.collect()
    if _cuda(device):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def chunk_inputs(tr, size: tuple[int, int], seed: int = 0):
    """Random ChunkInputs for `tr` at W x H (CPU generator: the same on every device)."""
    import torch

    from animate_cli import config as C
    from animate_cli.rollout.denoise import ChunkInputs, chunk_noise

    c, g = tr.config, torch.Generator().manual_seed(seed)
    w, h = size[0] // C.VAE_STRIDE_S, size[1] // C.VAE_STRIDE_S
    s = c.motion_encoder_size

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    return ChunkInputs(anchors=rand(1, c.latent_channels, C.ANCHORS, h, w), motion=None,
                       pose=rand(1, c.latent_channels, C.GENERATED_LATENTS, h, w), face=rand(1, 3, C.CHUNK_FRAMES, s, s).clamp(-1, 1),
                       clip=rand(1, 257, c.image_dim), text=rand(1, C.TEXT_TOKENS, c.text_dim),
                       noise=chunk_noise((1, c.latent_channels, C.LATENT_SLOTS, h, w), seed))  # fmt: skip


def cut_models(bench, kind: str, device, dtype):
    """bench_gpu.build_models with the DiT cut to BLOCKS blocks (full width), built on the CPU so that every
    mode gets the same weights (CPU and CUDA random streams differ); resident modes move them afterwards."""
    return bench.build_models(kind, "cpu", dtype, transformer=CUT if kind == "full" else None)


def set_up(bench, models: dict, offload: str, wd: str, device, dtype_name: str, compile_: bool = False) -> dict:
    """The library's set-up path (runtime.prepare via bench_gpu.prepare_models); resident models go to the device."""
    if offload == "none":
        for k in ("transformer", "vae", "clip"):
            models[k].to(device)
    combo = {"offload": offload, "weights_dtype": wd, "attention": "auto", "compile": compile_}
    return bench.prepare_models(models, combo, device, dtype_name)


def predicted_step(kind: str, offload: str, wd: str, tokens_size: tuple[int, int]) -> dict:
    """The memory model's dit_step phase (allocated and reserved GiB) for the cut model (full) at W x H."""
    from animate_cli.models import footprint

    tab = footprint.scaled_table(BLOCKS, 1)
    need = footprint.predict(*tokens_size, offload, wd, tab)
    return {"allocated": need.phases["dit_step"], "reserved": need.reserved_phases["dit_step"]}


# --- the checks -------------------------------------------------------------------------------------
def check_pinned(ctx: dict) -> dict:
    """(a) blocks set-up pins the streamed tensors in place, once, at exact sizes."""
    import torch

    from animate_cli.models import pinned, runtime

    if not _cuda(ctx["device"]):
        return {"pass": None, "skipped": "pinned memory needs CUDA"}
    bench = ctx["bench"]
    models = cut_models(bench, ctx["kind"], ctx["device"], ctx["dtype"])
    before = torch.cuda.host_memory_stats().get("allocated_bytes.current", 0)
    set_up(bench, models, "blocks", "bf16", ctx["device"], ctx["dtype_name"])
    after = torch.cuda.host_memory_stats().get("allocated_bytes.current", 0)
    streamed = [t for k in ("transformer", "vae", "clip") for t in runtime.streamed_tensors(
        models[k], ["vision_model", "encoder"] if k == "clip" else getattr(models[k], "_group_offload_block_modules", None))]  # fmt: skip
    streamed_bytes = sum(t.numel() * t.element_size() for t in streamed)
    probe = pinned.check_pinned_sizes()
    out = judge_pinned(probe.exact, after - before, streamed_bytes, all(t.is_pinned() for t in streamed))
    del models
    _free(ctx["device"])
    return out | {"probe": probe.to_dict(), "streamed_gib": round(_gib(streamed_bytes), 3),
                  "pinned_gib": round(_gib(after - before), 3)}  # fmt: skip


def check_modes(ctx: dict) -> dict:
    """(b) every memory mode: latents equal across offload per dtype, memory against the model's phases."""
    import torch

    from animate_cli.rollout.denoise import denoise_chunk

    bench, device, size = ctx["bench"], ctx["device"], ctx["size"]
    rows, latents = [], {}
    for offload in ("none", "blocks"):
        for wd in ("bf16", "fp8"):
            row = {"offload": offload, "weights_dtype": wd}
            rows.append(row)
            if offload == "blocks" and not _cuda(device):
                row["skipped"] = "blocks needs CUDA"
                continue
            models = cut_models(bench, ctx["kind"], device, ctx["dtype"])
            set_up(bench, models, offload, wd, device, ctx["dtype_name"])
            inputs = chunk_inputs(models["transformer"], size)
            if _cuda(device):
                torch.cuda.reset_peak_memory_stats(device)
            t = time.perf_counter()
            latents[(offload, wd)] = denoise_chunk(models["transformer"], inputs, steps=2).cpu()
            bench.sync(device)
            row["seconds_2_steps"] = round(time.perf_counter() - t, 3)
            if _cuda(device):
                pred = predicted_step(ctx["kind"], offload, wd, size)
                row["allocated"] = judge_memory(_gib(torch.cuda.max_memory_allocated(device)), pred["allocated"])
                row["reserved"] = judge_memory(_gib(torch.cuda.max_memory_reserved(device)), pred["reserved"])
            del models, inputs
            _free(device)
    equal = {wd: judge_equal(latents[("none", wd)], latents[("blocks", wd)]) for wd in ("bf16", "fp8")
             if ("blocks", wd) in latents}  # fmt: skip
    judged = [r[k]["pass"] for r in rows for k in ("allocated", "reserved") if k in r] + [e["pass"] for e in equal.values()]
    return {"pass": all(judged) if judged else None, "modes": rows, "latents_equal_across_offload": equal,
            "memory_model": f"footprint dit_step phase of a {BLOCKS}-block cut (footprint.scaled_table)"}  # fmt: skip


def check_attention(ctx: dict) -> dict:
    """(c) each backend diffusers accepts against native SDPA; the context-parallel backend --gpus would use."""
    import torch

    from animate_cli.models import attention
    from animate_cli.models.device import compute_capability

    device = ctx["device"]
    if not _cuda(device):
        return {"pass": None, "skipped": "only native attention runs on the CPU"}
    from diffusers.models.attention_dispatch import dispatch_attention_fn

    g = torch.Generator(device).manual_seed(0)
    q, k, v = (torch.randn(*ATTENTION_SHAPE, device=device, dtype=torch.bfloat16, generator=g) for _ in range(3))
    ref = dispatch_attention_fn(q, k, v, backend="native")
    rows = {}
    for name in ("_flash_3", "flash", "sage"):
        why = attention.refusal(name)
        if why is not None:
            rows[name] = {"installed": False, "why": why}
            continue
        kind = "approximate" if name in attention.APPROXIMATE_BACKENDS else "exact"
        try:
            out = dispatch_attention_fn(q, k, v, backend=name)
            diff = float((out.float() - ref.float()).abs().max())
            rows[name] = {"installed": True, "max_abs_diff": diff, "pass": diff <= ATTENTION_ATOL[kind], "kind": kind}
        except Exception as e:  # noqa: BLE001 - a backend diffusers accepted but that fails here is the finding
            rows[name] = {"installed": True, "pass": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    cap = compute_capability(device)
    cp = attention.resolve_attention("auto", device, "bf16", cap, context_parallel=True)
    cp_row = {"backend": cp, "supports_context_parallel": attention.supports_context_parallel(cp),
              "auto_single_gpu": attention.resolve_attention("auto", device, "bf16", cap)}  # fmt: skip
    ok = all(r.get("pass", True) for r in rows.values()) and cp_row["supports_context_parallel"]
    return {"pass": ok, "backends": rows, "context_parallel": cp_row, "shape_bshd": list(ATTENTION_SHAPE)}


def check_compile(ctx: dict) -> dict:
    """(d) graph breaks, recompiles, compile time, eager vs compiled step on the cut DiT."""
    from support.compile_check import counting

    from animate_cli.rollout.denoise import denoise_chunk

    bench, device, size = ctx["bench"], ctx["device"], ctx["size"]
    rows = []
    for offload, wd in (("none", "bf16"), ("blocks", "fp8")):
        if offload == "blocks" and not _cuda(device):
            rows.append({"offload": offload, "weights_dtype": wd, "skipped": "blocks needs CUDA"})
            continue
        times = {}
        for compiled in (False, True):
            models = cut_models(bench, ctx["kind"], device, ctx["dtype"])
            if compiled and not _cuda(device):  # no inductor toolchain assumed on a CPU: trace only
                import functools

                import torch

                real = torch.compile
                torch.compile = functools.partial(real, backend="eager")
                try:
                    setup = set_up(bench, models, offload, wd, device, ctx["dtype_name"], compile_=True)
                finally:
                    torch.compile = real
            else:
                setup = set_up(bench, models, offload, wd, device, ctx["dtype_name"], compile_=compiled)
            clock = bench.StepClock(models["transformer"], device)
            inputs = chunk_inputs(models["transformer"], size)
            with counting() as count:
                denoise_chunk(models["transformer"], inputs, steps=3, on_step=clock.end)
            clock.close()
            times[compiled] = clock.steps
            if compiled:
                timer = setup["timer"]
                row = {"offload": offload, "weights_dtype": wd, **count.to_dict(),
                       "compile_s": timer.compile_seconds() if timer else None}  # fmt: skip
            del models, inputs, setup
            _free(device)
        eager, comp = statistics.median(times[False][1:]), statistics.median(times[True][1:])
        row |= {"eager_step_s": eager, "compiled_step_s": comp, "speedup": eager / comp,
                "pass": judge_compile(row["graph_breaks"], row["recompiles"])}  # fmt: skip
        rows.append(row)
    judged = [r["pass"] for r in rows if "pass" in r]
    return {"pass": all(judged) if judged else None, "modes": rows}


def check_umt5(ctx: dict) -> dict:
    """(e) umT5 resident vs block-offloaded (runtime.offload_text_encoder): equal outputs, memory freed after."""
    import torch
    from full_configs import FULL_UMT5
    from transformers import UMT5Config, UMT5EncoderModel

    from animate_cli import config as C
    from animate_cli.models import runtime

    device, bench = ctx["device"], ctx["bench"]
    cfg = FULL_UMT5 if ctx["kind"] == "full" else dict(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    enc = bench.build_random(lambda: UMT5EncoderModel(UMT5Config(**cfg)), "cpu", ctx["dtype"], 4)
    tokens = C.TEXT_TOKENS if ctx["kind"] == "full" else 16
    ids = torch.randint(0, cfg["vocab_size"], (1, tokens), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    _free(device)
    base = torch.cuda.memory_allocated(device) if _cuda(device) else 0
    out, peaks = {}, {}
    with torch.inference_mode():
        enc.to(device)
        out["none"] = enc(ids.to(device), mask.to(device)).last_hidden_state.float().cpu()
        enc.to("cpu")
        _free(device)
        runtime.offload_text_encoder(enc, device)
        if _cuda(device):
            torch.cuda.reset_peak_memory_stats(device)
        out["blocks"] = enc(ids.to(device), mask.to(device)).last_hidden_state.float().cpu()
        peaks["blocks"] = torch.cuda.max_memory_allocated(device) if _cuda(device) else None
    del enc
    _free(device)
    left = (torch.cuda.memory_allocated(device) - base) if _cuda(device) else 0
    eq = judge_equal(out["none"], out["blocks"])
    freed = left <= 16 * 2**20  # a few small buffers at most
    return {"pass": eq["pass"] and freed, "outputs": eq, "left_allocated_bytes": left, "memory_freed": freed,
            "blocks_peak_gib": None if peaks["blocks"] is None else round(_gib(peaks["blocks"]), 3)}  # fmt: skip


def check_full_dit(ctx: dict) -> dict:
    """(f) the whole DiT, one 480p step (after a warm-up step): peak vs predicted, s/step, MFU."""
    import torch
    from diffusers import WanAnimateTransformer3DModel
    from full_configs import FULL_TRANSFORMER
    from support.tiny_models import TRANSFORMER_CONFIG

    from animate_cli.models import footprint, runtime
    from animate_cli.models.attention import resolve_attention
    from animate_cli.models.device import compute_capability
    from animate_cli.rollout.denoise import denoise_chunk

    bench, device, size = ctx["bench"], ctx["device"], ctx["size"]
    cfg = FULL_TRANSFORMER if ctx["kind"] == "full" else TRANSFORMER_CONFIG
    _free(device)
    tr = bench.build_random(lambda: WanAnimateTransformer3DModel(**cfg), device, ctx["dtype"], 0)
    backend = resolve_attention("auto", str(device), ctx["dtype_name"], compute_capability(str(device)))
    runtime.set_attention(tr, backend)
    inputs = chunk_inputs(tr, size)
    clock = bench.StepClock(tr, device)
    if _cuda(device):
        torch.cuda.reset_peak_memory_stats(device)
    denoise_chunk(tr, inputs, steps=2, on_step=clock.end)  # step 0 warms up (kernels, allocator); step 1 is timed
    clock.close()
    step = clock.steps[-1]
    flops = bench.dit_flops(cfg, *size)["total"]
    out = {"attention": backend, "step_s": step, "flops_per_step": flops, "achieved_tflops": flops / step / 1e12,
           "matmul_peak_tflops": ctx["matmul"]["tflops"], "mfu": flops / step / 1e12 / ctx["matmul"]["tflops"],
           "params": sum(p.numel() for p in tr.parameters())}  # fmt: skip
    if _cuda(device) and ctx["kind"] == "full":
        w = footprint.table()["weights"]
        need = footprint.predict(*size, "none", "bf16")
        dit_only = need.phases["dit_step"] - _gib(w["vae"]["bf16"] + w["clip"]["bf16"])  # only the DiT is built here
        out["peak"] = judge_memory(_gib(torch.cuda.max_memory_allocated(device)), dit_only)
        out["pass"] = out["peak"]["pass"]
    else:
        out["pass"] = None
    del tr, inputs
    _free(device)
    return out


RUNNERS = {"pinned": check_pinned, "modes": check_modes, "attention": check_attention, "compile": check_compile,
           "umt5": check_umt5, "full_dit": check_full_dit}  # fmt: skip


# --- driver -----------------------------------------------------------------------------------------
def run_checks(ctx: dict, names: list[str], budget_s: float, log) -> dict:
    """Run each check timed; an exception is that check's failure; past the budget the rest are skipped."""
    t0, out = time.perf_counter(), {}
    for name in names:
        if time.perf_counter() - t0 > budget_s:
            out[name] = {"pass": None, "skipped": f"over the {budget_s:.0f} s budget", "seconds": 0.0}
            continue
        log(f"({chr(ord('a') + CHECKS.index(name))}) {name} ...")
        t = time.perf_counter()
        try:
            res = RUNNERS[name](ctx)
        except Exception as e:  # noqa: BLE001 - a check that crashes failed; the others still run
            res = {
                "pass": False,
                "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}",
            }
            _free(ctx["device"])
        res["seconds"] = round(time.perf_counter() - t, 2)
        out[name] = res
        log(
            f"    {'PASS' if res['pass'] else 'skip' if res['pass'] is None else 'FAIL'} in {res['seconds']:.1f} s"
            + (f": {res.get('error') or res.get('skipped')}" if res.get("error") or res.get("skipped") else "")
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allow-cpu", action="store_true", help="run the tiny-config checks on the CPU (harness test)")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(CHECKS)}")
    ap.add_argument("--budget-s", type=float, default=BUDGET_S)
    ap.add_argument("--out", type=Path, help="JSON report (default benchmarks/results/<utc>-<commit>-<device>-gpu-check.json)")
    a = ap.parse_args(argv)
    names = [n.strip() for n in (a.only or ",".join(CHECKS)).split(",") if n.strip()]
    if any(n not in CHECKS for n in names):
        ap.error(f"--only takes a subset of {','.join(CHECKS)}")
    names = [n for n in RUN_ORDER if n in names]

    import torch

    if not torch.cuda.is_available() and not a.allow_cpu:
        print(
            f"gpu-check: no CUDA GPU visible (torch {torch.__version__}); run it on a machine with an NVIDIA GPU", file=sys.stderr
        )
        return NO_GPU_EXIT
    bench = _load_bench()
    cuda = torch.cuda.is_available() and not a.allow_cpu
    device = f"cuda:{torch.cuda.current_device()}" if cuda else "cpu"
    kind = "full" if cuda else "tiny"
    dtype_name = "bf16"
    t0 = time.perf_counter()

    def log(msg):
        print(f"[gpu-check {time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    ctx = {"bench": bench, "device": device, "kind": kind, "dtype": torch.bfloat16, "dtype_name": dtype_name,
           "size": SIZE_480P if kind == "full" else TINY_SIZE}  # fmt: skip
    ctx["matmul"] = bench.matmul_peak(device, torch.bfloat16)
    log(f"{device}, {kind} configs, bf16 matmul peak {ctx['matmul']['tflops']:.1f} TFLOP/s")
    checks = run_checks(ctx, names, a.budget_s, log)
    commit = bench.git_commit()
    report = {"schema": SCHEMA, "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "commit": commit,
              "environment": bench.environment(device), "config_kind": kind, "size": list(ctx["size"]),
              "matmul_peak": ctx["matmul"], "checks": checks, "pass": overall(checks),
              "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    out = bench.write_report(report, a.out, commit, "gpu-check")
    print(f"gpu-check: {'PASS' if report['pass'] else 'FAIL'} in {report['wall_s']} s; report: {out}")
    return 0 if report["pass"] else 1


def _load_bench():
    """benchmarks/bench_gpu.py (a script, not a package module): its builders, timers and report helpers."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).with_name("bench_gpu.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


if __name__ == "__main__":
    sys.exit(main())
