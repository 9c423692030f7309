"""`everanimate batch JOBS`: many videos with one model load per worker (batch/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from animate_cli import config as C
from animate_cli.cli.common import FlagCommand, app, run_command
from animate_cli.errors import UsageError

MODEL = "Models (loaded once per worker)"
SPEED = "Memory and speed"
BATCH = "Batch"

GPUS_WITH_BATCH = ("--gpus splits one video's every step over N GPUs (`everanimate run --gpus N`: one long video "
                   "sooner); batch runs one video per GPU (`--workers N`: many videos, more in the same time)")  # fmt: skip


@app.command("batch", cls=FlagCommand)
def batch_cmd(
    jobs: Annotated[
        Path,
        typer.Argument(
            help="Jobs list: CSV with a header row (.csv) or JSON Lines (.jsonl); one video "
            "per row: ref, driving, out and any per-video `run` option by its long name."
        ),
    ],
    weights_dir: Annotated[
        Path | None,
        typer.Option(
            envvar=C.WEIGHTS_ENV,
            show_envvar=True,
            rich_help_panel=MODEL,
            help="Weights folder (default: where download-weights puts them).",
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto, cuda, cuda:N or cpu (with --workers N: each worker its own GPU).", rich_help_panel=MODEL)
    ] = "auto",
    dtype: Annotated[str, typer.Option(help="bf16 or fp32.", rich_help_panel=MODEL)] = "bf16",
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="Extra LoRA PATH[:scale] (repeatable).", rich_help_panel=MODEL)
    ] = None,
    offload: Annotated[str, typer.Option(help="auto, none or blocks.", rich_help_panel=SPEED)] = "auto",
    weights_dtype: Annotated[str, typer.Option(help="bf16 or fp8.", rich_help_panel=SPEED)] = "bf16",
    attention: Annotated[str, typer.Option(help="auto, sdpa, flash or sage.", rich_help_panel=SPEED)] = "auto",
    compile_: Annotated[
        bool,
        typer.Option("--compile/--no-compile", help="Compile the repeated DiT blocks (once per worker).", rich_help_panel=SPEED),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes on this machine, each loading the models once on "
            "its own GPU (default: one per visible GPU; 1 on the CPU).",
            rich_help_panel=BATCH,
        ),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Run the valid rows when some are invalid (default: exit 2 naming each bad row, before any model loads).",
            rich_help_panel=BATCH,
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Validate and plan every job, total frames, chunks and GPU time, check readiness once; loads no model.",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
    progress: Annotated[
        str,
        typer.Option(
            help="rich: the list and each worker's job on stderr; json: one JSON event per line "
            "on stderr (each job's with its line and out); none: quiet."
        ),
    ] = "rich",
    gpus: Annotated[int | None, typer.Option(hidden=True, help="Not with batch (see --workers).")] = None,
    events_fd: Annotated[int | None, typer.Option(hidden=True)] = None,
    started_at: Annotated[float | None, typer.Option(hidden=True)] = None,
) -> None:
    """Animate many videos: one row of JOBS per video; the models load once per worker, one worker per GPU; the
    same command on several machines shares the list. Run it again to continue: made videos are skipped,
    interrupted ones resume from their last chunk."""
    model_options = {"weights_dir": weights_dir, "device": device, "dtype": dtype, "lora": list(lora or ()),
                     "offload": offload, "weights_dtype": weights_dtype, "attention": attention, "compile": compile_}  # fmt: skip
    child_args = [str(jobs), *_model_flags(model_options), *(["--skip-invalid"] if skip_invalid else [])]

    def body() -> dict:
        from animate_cli.batch import session
        from animate_cli.batch.jobs import read_jobs
        from animate_cli.cli import batch_view

        if gpus is not None:
            raise UsageError("batch does not take --gpus", hint=GPUS_WITH_BATCH)
        if progress not in ("rich", "json", "none"):
            raise UsageError(f"--progress must be rich, json or none, got {progress!r}")
        if workers is not None and workers < 1:
            raise UsageError("--workers must be at least 1")
        job_list = read_jobs(jobs)
        bad = session.invalid_lines(job_list)
        if bad and not skip_invalid:
            if events_fd is None:
                batch_view.print_invalid(bad)
            raise UsageError(f"{len(bad)} of {len(bad) + len(job_list.jobs)} rows of {jobs} are invalid; nothing was run",
                             hint="fix them, or pass --skip-invalid to run the valid rows")  # fmt: skip
        if dry_run:
            return _dry_run(job_list, model_options, json_out)
        if events_fd is not None:  # one worker of `--workers N`: events to the parent, which prints everything
            from animate_cli.batch.pool import PipeEmitter

            result = session.run_here(job_list, model_options, PipeEmitter(events_fd), started_at).to_dict()
            return {"exit_code": result["exit_code"]}
        return _run(job_list, model_options, workers, child_args, progress, json_out)

    run_command("everanimate.batch/1", json_out and events_fd is None, body, events=progress == "json")


def _run(job_list, model_options: dict, workers: int | None, child_args: list[str], progress: str, json_out: bool) -> dict:
    from animate_cli.batch import pool, session
    from animate_cli.batch.status import BatchStatus
    from animate_cli.cli import batch_view

    n = workers or pool.default_workers(model_options["device"])
    if n > 1 and model_options["device"].startswith("cuda:"):
        raise UsageError(f"--device {model_options['device']} names one GPU; --workers {n} gives each worker its own",
                         hint="use --device cuda (or auto) with --workers, and CUDA_VISIBLE_DEVICES to choose the GPUs")  # fmt: skip
    status = BatchStatus(len(job_list.jobs))
    with batch_view.BatchView(progress, status) as view:
        if n == 1:
            outcome = session.run_here(job_list, model_options, view)
        else:
            outcome = session.run_pool(job_list, n, child_args, model_options["device"], view)
    result = outcome.to_dict()
    if progress != "json" and not json_out:
        batch_view.print_summary(result)
    return result


def _dry_run(job_list, model_options: dict, json_out: bool) -> dict:
    from animate_cli.batch.dry_run import plan_all
    from animate_cli.cli import batch_view

    report = plan_all(job_list, model_options)
    if not json_out:
        batch_view.print_plan(report)
    return {"dry_run": True, **report}


def _model_flags(options: dict) -> list[str]:
    """The model options as flags again, for the worker processes of --workers N."""
    flags = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            for v in value:
                flags += [flag, str(v)]
        else:
            flags += [flag, str(value)]
    return flags
