"""`everanimate run REF DRIVING`: flags -> RunConfig -> pipeline.run (or the plan, with --dry-run)."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from animate_cli import config as C
from animate_cli.cli import run_view
from animate_cli.cli.common import FlagCommand, app, make_reporter, run_command
from animate_cli.cli.run_config import build_config, canvas_dict, parse_lora
from animate_cli.errors import BadInputError

LENGTH = "Length (one of; default: the driving video's duration)"
MODEL = "Model and sampling"
IO = "Inputs and output"
SPEED = "Memory and speed"


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


@app.command("run", cls=FlagCommand)
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
    steps: Annotated[
        int | None,
        typer.Option(
            help="Denoising steps per chunk (default 20; with --fast 4, and 4 to 8).", show_default=False, rich_help_panel=MODEL
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Draft: stack the lightx2v step-distill LoRA and sample 4 DiT steps per chunk instead of 20 (fetch it "
            "with download-weights --only fast). Try settings on a draft, then run full quality.",
            rich_help_panel=MODEL,
        ),
    ] = False,  # fmt: skip
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
    pose_model: Annotated[
        str | None,
        typer.Option(
            "--pose-model",
            help="wan (Wan2.2-Animate's own YOLOv10m + ViTPose-H, what the model was trained on) or rtmw (lighter); default: wan when its models are in the weights folder, else rtmw",
            rich_help_panel=IO,
        ),
    ] = None,
    det_onnx: Annotated[
        Path | None,
        typer.Option(
            "--det-onnx",
            help="Person detector ONNX for the pose stage (a file, or a folder holding end2end.onnx).",
            rich_help_panel=IO,
        ),
    ] = None,
    pose_onnx: Annotated[
        Path | None,
        typer.Option(
            "--pose-onnx",
            help="Whole-body pose ONNX for the pose stage (a file, or a folder holding end2end.onnx).",
            rich_help_panel=IO,
        ),
    ] = None,
    no_report: Annotated[
        bool,
        typer.Option(
            "--no-report",
            help="Do not write NAME.report.json/.png next to the output NAME.mp4 (seams, drift, identity, pose).",
            rich_help_panel=IO,
        ),
    ] = False,
    seam_fix: Annotated[
        str,
        typer.Option(
            help="none, or color: ease each chunk's colour into the previous chunk's over 8 frames (changes the output).",
            rich_help_panel=MODEL,
        ),
    ] = "none",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
    progress: Annotated[
        str,
        typer.Option(
            help="rich: bars with ETA on stderr; json: one JSON event per line on stderr (for GUIs/scripts); none: quiet."
        ),
    ] = "rich",
) -> None:
    """Animate REF with the motion of DRIVING (EverAnimate rollout on Wan2.2-Animate-14B)."""

    from animate_cli.models import fast as fast_mode

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
                loras = fast_mode.with_distill([parse_lora(v) for v in lora or ()], fast, weights_dir or C.default_weights_dir())
                ranks.run_rank(Path(weights_dir).expanduser() if weights_dir else C.default_weights_dir(), resolution,
                               loras, device, dtype, weights_dtype=weights_dtype, attention=attention, compile_=compile_)  # fmt: skip
                raise typer.Exit(0)
        with distributed.leading():  # rank 0 of several: afterwards tells the others stop, or the error; else nothing
            return run_body()

    def run_body() -> dict:
        for p, what in ((ref, "reference image"), (driving, "driving video")):
            if not p.exists():
                raise BadInputError(f"{what} not found: {p}")
        cfg = build_config(ref, driving, out=out, minutes=minutes, seconds=seconds, frames=frames, ref_view=ref_view,
                           pose_video=pose_video, face_video=face_video, weights_dir=weights_dir, device=device, dtype=dtype,
                           resolution=resolution, size=size, steps=fast_mode.resolve_steps(steps, fast), seed=seed, prompt=prompt, lora=lora,
                           no_audio=no_audio, side_by_side=side_by_side, overwrite=overwrite, state_dir=state_dir,
                           offload=offload, weights_dtype=weights_dtype, attention=attention, compile_=compile_,
                           fit=fit, report=not no_report, seam_fix=seam_fix, pose_model=pose_model,
                           det_onnx=det_onnx, pose_onnx=pose_onnx, fast=fast)  # fmt: skip
        from animate_cli.models import parallel
        from animate_cli.runner import multigpu, pipeline

        n = multigpu.rank_count(gpus, cfg)
        if n > 1:  # context parallelism keeps the whole DiT on every GPU: no block offloading (see rank_count)
            cfg = dataclasses.replace(cfg, offload="none")
        if dry_run:  # the plan and the estimate always; then whether a real run could start now
            from animate_cli.runner.dry_run import dry_run as plan_run

            report = plan_run(cfg, n, canvas_dict(cfg))
            if not json_out:
                run_view.print_plan(cfg, report["plan"])
                run_view.print_memory_modes(report["memory"])
                run_view.print_readiness(report["items"], report["exit_code"])
            return {"dry_run": True, "output": str(cfg.out), "plan": report["plan"], "ready": report["exit_code"] == 0,
                    "readiness": [i.to_dict() for i in report["items"]], "exit_code": report["exit_code"]}  # fmt: skip
        if n > 1 and parallel.env_world_size() == 1:  # --gpus N: check what is cheap here, then start N ranks
            pipeline.check_inputs(cfg)
            multigpu.check_devices(n, cfg.device)
            multigpu.check_attention(cfg.attention, cfg.device, cfg.dtype)  # exit 2 before any rank starts
            raise typer.Exit(multigpu.launch(n, multigpu.strip_gpus(sys.argv[1:])))
        with make_reporter(progress) as reporter:
            summary = pipeline.run(cfg, reporter, fresh=fresh, on_chunk_done=_test_pause())
            result = run_view.summary_dict(cfg, summary)
            if progress == "json":
                reporter.emit("done", **result)
        if not json_out and progress != "json":
            run_view.print_summary(cfg, summary, result)
        return result

    if progress not in ("rich", "json", "none"):
        raise typer.BadParameter("must be rich, json or none", param_hint="--progress")
    run_command("everanimate.run/1", json_out, body, events=progress == "json")
