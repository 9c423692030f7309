"""`everanimate run REF DRIVING`: flags -> RunConfig -> pipeline.run (or the plan, with --dry-run)."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from animate_cli import config as C
from animate_cli.cli.common import app, err_console, make_reporter, run_command
from animate_cli.errors import UsageError

LENGTH = "Length (one of; default: the driving video's duration)"
MODEL = "Model and sampling"
IO = "Inputs and output"
SPEED = "Memory and speed"


def _size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if not m:
        raise UsageError(f"--size must look like 832x480, got {value!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w % C.SIZE_MULTIPLE or h % C.SIZE_MULTIPLE or not (32 <= w <= 4096 and 32 <= h <= 4096):
        raise UsageError(f"--size {w}x{h}: both sides must be multiples of {C.SIZE_MULTIPLE} between 32 and 4096")
    return w, h


def _lora(value: str) -> C.LoraSpec:
    path, scale = value, 1.0
    if ":" in value:
        head, tail = value.rsplit(":", 1)
        try:
            path, scale = head, float(tail)
        except ValueError:
            path = value
    return C.LoraSpec(Path(path).expanduser(), scale)


def _frames(minutes: float | None, seconds: float | None, frames: int | None, driving_seconds: float) -> int:
    given = [x for x in (minutes, seconds, frames) if x is not None]
    if len(given) > 1:
        raise UsageError("use only one of --minutes, --seconds, --frames")
    if minutes is not None:
        n = round(minutes * 60 * C.FPS)
    elif seconds is not None:
        n = round(seconds * C.FPS)
    elif frames is not None:
        n = frames
    else:
        n = round(driving_seconds * C.FPS)
    if n < 1:
        raise UsageError("the requested length is shorter than one frame")
    return n


def build_config(ref: Path, driving: Path, *, out: Path | None, minutes, seconds, frames, ref_view, pose_video, face_video,
                 weights_dir, device, dtype, resolution, size, steps, seed, prompt, lora, no_audio, side_by_side,
                 overwrite, state_dir, offload="auto", weights_dtype="bf16", attention="auto", compile_=False,
                 fit: str | None = None) -> C.RunConfig:  # fmt: skip
    """Turn flags into a frozen RunConfig (no torch, no models)."""
    from animate_cli import media
    from animate_cli.media import canvas
    from animate_cli.models.attention import check_attention_installed

    for flag, value, valid in (("--offload", offload, C.OFFLOAD_MODES), ("--weights-dtype", weights_dtype, C.WEIGHTS_DTYPES),
                               ("--attention", attention, C.ATTENTION_CHOICES)):  # fmt: skip
        if value not in valid:
            raise UsageError(f"{flag} must be one of {', '.join(valid)}, got {value!r}")
    check_attention_installed(attention)
    if resolution not in C.RESOLUTIONS:
        raise UsageError(f"--resolution must be one of {', '.join(C.RESOLUTIONS)}")
    if steps < 1 or steps > 1000:
        raise UsageError("--steps must be between 1 and 1000")
    info = media.probe(driving)
    n = _frames(minutes, seconds, frames, info.duration)
    if fit is not None and fit not in canvas.FITS:
        raise UsageError(f"--fit must be one of {', '.join(canvas.FITS)}, got {fit!r}")
    img = media.load_image(ref)
    explicit = _size(size)
    if explicit is None and pose_video is not None and Path(pose_video).is_file():
        # a given pose video was already fitted to its own size: keep that canvas rather than crop it
        pv = media.probe(pose_video)
        if pv.width % C.SIZE_MULTIPLE == 0 and pv.height % C.SIZE_MULTIPLE == 0:
            explicit = (pv.width, pv.height)
    cv = canvas.choose_canvas(img.shape[1], img.shape[0], C.RESOLUTIONS[resolution], resolution, explicit, fit)
    if explicit is not None and size is None:
        cv = canvas.Canvas(cv.width, cv.height, cv.fit, cv.rule.replace("--size", "the --pose-video size", 1))
    width, height = cv.width, cv.height
    out = out or Path.cwd() / f"{driving.stem}-everanimate.mp4"
    return C.RunConfig(
        ref=ref, driving=driving, out=out.expanduser().resolve(), frames=n, width=width, height=height,
        weights_dir=Path(weights_dir).expanduser() if weights_dir else C.default_weights_dir(),
        ref_views=tuple(ref_view or ()), pose_video=pose_video, face_video=face_video, resolution=resolution,
        device=device, dtype=dtype, steps=steps, seed=seed, prompt=prompt, loras=tuple(_lora(v) for v in lora or ()),
        audio=not no_audio, side_by_side=side_by_side, overwrite=overwrite, state_dir=state_dir,
        offload=offload, weights_dtype=weights_dtype, attention=attention, compile=compile_, fit=cv.fit,
        canvas_rule=cv.rule,
    )  # fmt: skip


TEST_PAUSE_ENV = "EVERANIMATE_TEST_PAUSE_DIR"
TEST_PAUSE_POLL_S = 0.02  # how often a paused test run looks for its go file


def _test_pause():
    """Tests only: with EVERANIMATE_TEST_PAUSE_DIR=DIR, a run that has saved the first chunk it generates
    writes that chunk's index to DIR/paused and waits for DIR/go, so a test can act on a real run that is
    inside its rollout without guessing with sleeps."""
    folder = os.environ.get(TEST_PAUSE_ENV)
    if not folder:
        return None
    first = []

    def pause(c: int) -> None:
        if not first:
            first.append(c)
            (Path(folder) / "paused.tmp").write_text(str(c))
            os.replace(Path(folder) / "paused.tmp", Path(folder) / "paused")  # appears complete
            while not (Path(folder) / "go").exists():
                time.sleep(TEST_PAUSE_POLL_S)

    return pause


def canvas_dict(cfg: C.RunConfig) -> dict:
    """The plan's `canvas` entry: size, where it came from, how the reference and the pose are fitted."""
    pose_fit = ("given --pose-video: centre-cropped if its size differs" if cfg.pose_video else
                "placed by the driving person's extent over the clip")  # fmt: skip
    return {"size": [cfg.width, cfg.height], "rule": cfg.canvas_rule, "reference_fit": cfg.fit, "pose_fit": pose_fit}


def _ranks(gpus: int | None, cfg: C.RunConfig) -> int:
    """How many ranks split each DiT step: torchrun's WORLD_SIZE, else --gpus. Usage errors (exit 2) for an N
    the model cannot be split into, before anything heavy happens."""
    from animate_cli import weights
    from animate_cli.models import parallel
    from animate_cli.rollout.plan import make_plan
    from animate_cli.runner import multigpu

    world = parallel.env_world_size()
    if world > 1 and gpus not in (None, 1, world):
        raise UsageError(f"--gpus {gpus} under torchrun with {world} processes; leave --gpus out, torchrun sets the count")
    n = world if world > 1 else (gpus or 1)
    if n == 1:
        return 1
    if cfg.offload == "blocks":  # not shown to compose: CP hooks and group-offload hooks both wrap the blocks
        raise UsageError(f"--offload blocks with {n} GPUs: context parallelism keeps the whole DiT on every GPU",
                         hint="use --offload none (or auto) with --gpus, or --offload blocks on one GPU")  # fmt: skip
    if cfg.device.startswith("cuda:"):
        raise UsageError(f"--device {cfg.device} with {n} GPUs: each rank uses its own GPU; use --device auto")
    base = cfg.weights_dir / weights.BASE_DIR
    tokens = make_plan(1, cfg.width, cfg.height, 1).tokens_per_call
    multigpu.check_degree(n, multigpu.heads_of(base), tokens)
    return n


def _check_devices(n: int, device: str) -> None:
    if device == "cpu":
        return  # CPU processes over gloo: the tiny test weights only (device.choose refuses the real model)
    import torch

    from animate_cli.errors import DeviceError

    have = torch.cuda.device_count()
    if have < n:
        raise DeviceError(f"--gpus {n} but {have} CUDA device(s) visible", hint=f"use --gpus with at most {have}")


def _print_plan(cfg: C.RunConfig, plan_dict: dict) -> None:
    from rich.table import Table

    con = err_console()
    est = plan_dict["estimate"]
    con.print(f"{cfg.frames} frames ({plan_dict['seconds']} s at {C.FPS} fps), {cfg.width}x{cfg.height}, "
              f"{plan_dict['chunks']} chunks x {cfg.steps} steps, seed {cfg.seed}", markup=False)  # fmt: skip
    con.print(f"latent per DiT call {tuple(plan_dict['latent_shape'])}, {plan_dict['tokens_per_call']} tokens", markup=False)
    cv = plan_dict.get("canvas") or canvas_dict(cfg)
    con.print(f"canvas {cv['size'][0]}x{cv['size'][1]}: {cv['rule']}; reference {cv['reference_fit']}, pose {cv['pose_fit']}",
              markup=False, highlight=False)  # fmt: skip
    mode = f"--offload {est['offload']} --weights-dtype {est['weights_dtype']}, {est.get('memory_mode_why', 'all resident')}"
    con.print(f"estimate: ~{est['vram_gib']} GiB VRAM ({mode}), ~{est['seconds_per_step']} s/step, ~{est['total_minutes']} min "
              f"({est['assumes']})", markup=False)  # fmt: skip
    table = Table("chunk", "output frames", "noise seed")
    rows = plan_dict["chunk_table"]
    for row in rows if len(rows) <= 12 else rows[:5] + [None] + rows[-5:]:
        if row is None:
            table.add_row("…", "…", "…")
        else:
            table.add_row(str(row["chunk"]), f"{row['out_frames'][0]}–{row['out_frames'][1] - 1}", str(row["seed"]))
    con.print(table)
    mg = plan_dict.get("multi_gpu")
    if mg:
        con.print(f"{mg['gpus']} GPUs: {mg['tokens_per_gpu']} tokens each, all-to-all {mg['all_to_all_gb_per_gpu']} GB per GPU "
                  f"per step (~{mg['all_to_all_ms']} ms), ~{mg['step_s']} s/step vs {mg['one_gpu_step_s']} s on one: "
                  f"predicted {mg['speedup']}x per DiT step of the 14B model ({mg['assumes']})", markup=False)  # fmt: skip


def _print_memory_modes(report: dict) -> None:
    """The memory-mode table of --dry-run: predicted peak VRAM, host RAM, relative speed, and auto's pick."""
    from rich.table import Table

    con = err_console()
    table = Table("memory mode", "peak VRAM", "host RAM", "speed", "fits here", title="Wan2.2-Animate-14B memory modes")
    for m in report["modes"]:
        table.add_row(f"--offload {m['offload']} --weights-dtype {m['weights_dtype']}", f"{m['gpu_gib']:.1f} GiB",
                      f"{m['host_gib']:.1f} GiB", f"{m['relative_speed']:.2f}x", "yes" if m["fits"] else "no")  # fmt: skip
    con.print(table)
    auto, gpu = report["auto_mode"], report["auto_mode"]["gpu"]
    host = auto["host_available_gib"]
    have = (f"{gpu['name']} (cuda index {gpu['index']}, {gpu['free_gib']:.1f} of {gpu['total_gib']:.1f} GiB free)" if gpu
            else "no GPU") + (f", {host:.1f} GiB host RAM available" if host is not None else "")  # fmt: skip
    con.print(f"this machine: {have}", markup=False)
    con.print(f"auto: {auto['reason']}", markup=False)


def _readiness(cfg: C.RunConfig, plan_dict: dict, auto_mode: dict) -> list:
    """weights, GPU, disk: each ok or a blocker with the exit code a real run would fail with."""
    from animate_cli import weights
    from animate_cli.runner import readiness

    need = ("base", "lora") if cfg.pose_video else ("base", "lora", "pose")
    w = readiness.weights_item(cfg.weights_dir, cfg.resolution, need)
    tiny = w.ok and weights.is_tiny(Path(cfg.weights_dir) / weights.BASE_DIR)
    modes = plan_dict.get("memory_modes", [])
    chosen = next((m for m in modes
                   if (m["offload"], m["weights_dtype"]) == (auto_mode["offload"], auto_mode["weights_dtype"])), None)  # fmt: skip
    # No mode chosen (no GPU seen): the least the flags allow, so a 16 GB card is not told it needs 41 GiB.
    allowed = [m for m in modes if m["weights_dtype"] == cfg.weights_dtype and cfg.offload in ("auto", m["offload"])]
    least = min(allowed, key=lambda m: m["gpu_gib"], default=None)
    pick = chosen or least
    need = None if tiny else (pick["gpu_gib"] if pick else plan_dict["estimate"]["vram_gib"])
    host = None if tiny or chosen or least is None else least["host_gib"]
    gpu = readiness.gpu_item(cfg.device, need, tiny, mode=None if tiny else auto_mode, host_gib=host)
    disk = readiness.disk_item(cfg.out, cfg.resume_dir, cfg.width * (2 if cfg.side_by_side else 1), cfg.height, cfg.frames,
                               plan_dict["chunks"], cfg.dtype, extract_pose=cfg.pose_video is None)  # fmt: skip
    return [w, gpu, disk]


def _print_readiness(items: list, code: int) -> None:
    con = err_console()
    con.print("ready to run: yes" if code == 0 else f"ready to run: no (a real run would exit {code})", markup=False)
    for item in items:
        con.print(f"  {'ok ' if item.ok else 'NO '} {item.name:<8} {item.message}", markup=False)
        if item.fix:
            con.print(f"  {'':3} {'':<8} {'fix' if not item.ok else 'note'}: {item.fix}", markup=False)


@app.command("run")
def run_cmd(
    ref: Annotated[Path, typer.Argument(help="Reference image of the person (png/jpg/webp; any mode).")],
    driving: Annotated[Path, typer.Argument(help="Driving video whose motion (and audio) is used.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output mp4 (default: <driving>-everanimate.mp4 here).", rich_help_panel=IO)
    ] = None,
    minutes: Annotated[float | None, typer.Option(help="Output length in minutes.", rich_help_panel=LENGTH)] = None,
    seconds: Annotated[float | None, typer.Option(help="Output length in seconds.", rich_help_panel=LENGTH)] = None,
    frames: Annotated[int | None, typer.Option(help="Output length in frames (25 fps).", rich_help_panel=LENGTH)] = None,
    ref_view: Annotated[
        list[Path] | None,
        typer.Option("--ref-view", help="Extra view of the same person (repeatable, up to 3).", rich_help_panel=IO),
    ] = None,
    pose_video: Annotated[
        Path | None, typer.Option(help="Pre-extracted Wan-Animate pose video (with --face-video).", rich_help_panel=IO)
    ] = None,
    face_video: Annotated[
        Path | None, typer.Option(help="Pre-extracted 512x512 face video (with --pose-video).", rich_help_panel=IO)
    ] = None,
    weights_dir: Annotated[
        Path | None,
        typer.Option(
            envvar=C.WEIGHTS_ENV,
            show_envvar=True,
            help="Weights folder (default: where download-weights puts them).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cuda, cuda:N or cpu.", rich_help_panel=MODEL)] = "auto",
    dtype: Annotated[str, typer.Option(help="bf16 or fp32.", rich_help_panel=MODEL)] = "bf16",
    resolution: Annotated[str, typer.Option(help="480p or 720p (720p uses the 720p beta LoRA).", rich_help_panel=MODEL)] = "480p",
    size: Annotated[
        str | None,
        typer.Option(
            help="Explicit WxH, multiples of 16 (default: the reference's aspect at about --resolution's pixel count).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    fit: Annotated[
        str | None,
        typer.Option(
            help="How the reference goes onto a --size of another aspect: pad (default; whole picture, black bars), "
            "crop (centre) or stretch.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    steps: Annotated[int, typer.Option(help="Denoising steps per chunk.", rich_help_panel=MODEL)] = C.STEPS,
    seed: Annotated[int, typer.Option(help="Seed; chunk c uses seed + 42c.", rich_help_panel=MODEL)] = 0,
    prompt: Annotated[str, typer.Option(help="Text prompt.", rich_help_panel=MODEL)] = C.DEFAULT_PROMPT,
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="Extra LoRA PATH[:scale] (repeatable).", rich_help_panel=MODEL)
    ] = None,
    offload: Annotated[
        str,
        typer.Option(
            help="auto, none or blocks (stream DiT blocks from host memory; auto picks by free VRAM).", rich_help_panel=SPEED
        ),
    ] = "auto",
    weights_dtype: Annotated[
        str,
        typer.Option(
            help="bf16 or fp8 (e4m3 storage of the DiT's block and face-adapter weights; changes the output slightly).",
            rich_help_panel=SPEED,
        ),
    ] = "bf16",
    attention: Annotated[
        str, typer.Option(help="auto, sdpa, flash or sage (sage is approximate; auto never picks it).", rich_help_panel=SPEED)
    ] = "auto",
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile/--no-compile",
            help="Compile the repeated DiT blocks (torch.compile; no graph breaks in any "
            "--offload/--weights-dtype mode). Does nothing useful on the CPU, or for a run of one or two chunks "
            "(compiling is a one-off delay before the first step).",
            rich_help_panel=SPEED,
        ),
    ] = False,
    no_audio: Annotated[
        bool, typer.Option("--no-audio", help="Do not copy the driving video's audio.", rich_help_panel=IO)
    ] = False,
    side_by_side: Annotated[
        bool, typer.Option("--side-by-side", help="Write the pose panel next to the result.", rich_help_panel=IO)
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.", rich_help_panel=IO)] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Discard saved resume state and start over.", rich_help_panel=IO)
    ] = False,
    state_dir: Annotated[
        Path | None, typer.Option(help="Resume state folder (default: <out>.everanimate-state).", rich_help_panel=IO)
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option(
            help="Split every DiT step over N GPUs of this machine (Ulysses; N divides the 40 heads: 2, 4, 5, 8, 10). "
            "Several machines: torchrun, see README.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate inputs and print the chunk plan; loads no model.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
    progress: Annotated[
        str,
        typer.Option(
            help="rich: bars with ETA on stderr; json: one JSON event per line on stderr (for GUIs/scripts); none: quiet."
        ),
    ] = "rich",
) -> None:
    """Animate REF with the motion of DRIVING (EverAnimate rollout on Wan2.2-Animate-14B)."""

    def body() -> dict:
        from animate_cli.models import parallel
        from animate_cli.rollout import distributed
        from animate_cli.runner import ranks

        if parallel.env_world_size() > 1:  # one of several ranks (torchrun, or --gpus N's launcher)
            if dry_run:  # rank 0 prints the plan; the others have nothing to add
                if parallel.env_rank() > 0:
                    raise typer.Exit(0)
                return run_body()
            if not parallel.init_world(device).is_writer:  # reads no input: weights, then the chunks rank 0 sends
                loras = [_lora(v) for v in lora or ()]
                ranks.run_rank(Path(weights_dir).expanduser() if weights_dir else C.default_weights_dir(), resolution,
                                  loras, device, dtype, weights_dtype=weights_dtype, attention=attention, compile_=compile_)  # fmt: skip
                raise typer.Exit(0)
        with distributed.leading():  # rank 0 of several: afterwards tells the others stop, or the error; else nothing
            return run_body()

    def run_body() -> dict:
        for p, what in ((ref, "reference image"), (driving, "driving video")):
            if not p.exists():
                from animate_cli.errors import BadInputError

                raise BadInputError(f"{what} not found: {p}")
        cfg = build_config(ref, driving, out=out, minutes=minutes, seconds=seconds, frames=frames, ref_view=ref_view,
                           pose_video=pose_video, face_video=face_video, weights_dir=weights_dir, device=device, dtype=dtype,
                           resolution=resolution, size=size, steps=steps, seed=seed, prompt=prompt, lora=lora,
                           no_audio=no_audio, side_by_side=side_by_side, overwrite=overwrite, state_dir=state_dir,
                           offload=offload, weights_dtype=weights_dtype, attention=attention, compile_=compile_,
                           fit=fit)  # fmt: skip
        from animate_cli.models import parallel
        from animate_cli.rollout.plan import follow_mode, make_plan
        from animate_cli.runner import multigpu, pipeline, readiness

        ranks = _ranks(gpus, cfg)
        if ranks > 1:  # context parallelism keeps the whole DiT on every GPU: no block offloading (see _ranks)
            cfg = dataclasses.replace(cfg, offload="none")
        if dry_run:  # the plan and the estimate always; then whether a real run could start now
            checked = pipeline.check_inputs(cfg)
            source = checked.pose_frames or checked.driving.approx_frames
            plan = {
                **make_plan(cfg.frames, cfg.width, cfg.height, source, cfg.steps, cfg.seed).to_dict(),
                "canvas": canvas_dict(cfg),
            }
            from animate_cli.models.device import memory_report

            memory = memory_report((cfg.width, cfg.height), cfg.device, cfg.offload, cfg.weights_dtype)  # fmt: skip
            plan["memory_modes"], plan["auto_mode"] = memory["modes"], memory["auto_mode"]
            plan["estimate"] = follow_mode(plan["estimate"], memory["estimate_mode"])  # the mode a run would use
            if ranks > 1:
                plan["multi_gpu"] = multigpu.predict(plan["tokens_per_call"], ranks)
            items = _readiness(cfg, plan, memory["auto_mode"])
            code = readiness.first_blocker_code(items)
            if not json_out:
                _print_plan(cfg, plan)
                _print_memory_modes(memory)
                _print_readiness(items, code)
            return {"dry_run": True, "output": str(cfg.out), "plan": plan, "ready": code == 0,
                    "readiness": [i.to_dict() for i in items], "exit_code": code}  # fmt: skip
        if ranks > 1 and parallel.env_world_size() == 1:  # --gpus N: check what is cheap here, then start N ranks
            pipeline.check_inputs(cfg)
            _check_devices(ranks, cfg.device)
            multigpu.check_attention(cfg.attention, cfg.device, cfg.dtype)  # exit 2 before any rank starts
            raise typer.Exit(multigpu.launch(ranks, multigpu.strip_gpus(sys.argv[1:])))
        from animate_cli.weights import manifest as weights_manifest

        with make_reporter(progress) as reporter:
            summary = pipeline.run(cfg, reporter, fresh=fresh, on_chunk_done=_test_pause())
            result = {"output": str(summary.output), "frames": summary.frames, "fps": summary.fps, "size": list(summary.size),
                      "chunks": summary.chunks, "resumed_from_chunk": summary.resumed_from_chunk, "steps": steps, "seed": seed,
                      "lora_modules": summary.lora_modules, "device": summary.device, "timings_s": summary.timings_s,
                      "pose": summary.pose, "weights": weights_manifest.installed(cfg.weights_dir),
                      "memory_mode": summary.memory_mode, "runtime": summary.runtime, "canvas": canvas_dict(cfg)}  # fmt: skip
            if progress == "json":
                reporter.emit("done", **result)
        if not json_out and progress != "json":
            err_console().print(f"wrote {summary.output} ({summary.frames} frames, {summary.frames / C.FPS:.2f} s, "
                                f"{summary.size[0]}x{summary.size[1]}, reference {cfg.fit}) in {summary.timings_s.get('total', 0):.1f} s; "
                                f"weights: {weights_manifest.short(result['weights'])}", markup=False)  # fmt: skip
            mm = summary.memory_mode
            if mm.get("measured_peak_gpu_gib") is not None:
                pred = f" (predicted {mm['predicted_gpu_gib']:.1f} GiB with margins)" if mm.get("predicted_gpu_gib") else ""
                err_console().print(f"memory mode {mm['offload']}/{mm['weights_dtype']}: peak {mm['measured_peak_gpu_gib']:.1f} GiB "
                                    f"allocated on the GPU{pred}", markup=False)  # fmt: skip
            if summary.runtime:
                rt = summary.runtime
                compiled = f"on ({rt['compile_s']} s compiling)" if rt["compile"] else "off"
                err_console().print(f"models: offload {rt['offload']}, weights {rt['weights_dtype']}, attention "
                                    f"{rt['attention']}, compile {compiled}", markup=False)  # fmt: skip
        return result

    if progress not in ("rich", "json", "none"):
        raise typer.BadParameter("must be rich, json or none", param_hint="--progress")
    run_command("everanimate.run/1", json_out, body, events=progress == "json")
