"""`everanimate batch JOBS`: many videos with one model load per worker (batch/).

Its options are the table's (options.py): the model options, given once here; the per-video options, which
here are defaults for every row (a row's own value wins); and the batch's own (--workers, --skip-invalid,
--dry-run, --json, --progress). A worker process of `--workers N` is this command again, told by the
environment where to send its events.
"""

from __future__ import annotations

import os
from pathlib import Path

from animate_cli import options as O
from animate_cli.batch.pool import EVENTS_FD_ENV, STARTED_AT_ENV
from animate_cli.cli.common import run_command
from animate_cli.cli.params import Argument, options_command, parse
from animate_cli.errors import UsageError

SCHEMA = "everanimate.batch/1"

GPUS_WITH_BATCH = ("--gpus splits each step of one video over N GPUs (`everanimate run --gpus N`: one long video "
                   "sooner); batch runs one video per GPU (`--workers N`: many videos, more of them per hour)")  # fmt: skip


@options_command(O.BATCH, [Argument("jobs", Path, "Jobs list: CSV with a header row (.csv) or JSON Lines (.jsonl), one "
                                    "video per row: ref, driving, out and any per-video `run` option by its long name.")])  # fmt: skip
def batch_cmd(values: dict) -> None:
    """Animate many videos: one row of JOBS per video; the models load once per worker, one worker per GPU, and
    the same command on several machines shares the list. Per-video options given here apply to every row that
    does not set its own. Run it again to continue: made videos are skipped, interrupted ones resume from their
    last chunk."""
    events_fd = os.environ.get(EVENTS_FD_ENV)

    def body() -> dict:
        from animate_cli.batch import session
        from animate_cli.batch.jobs import command_line_defaults, read_jobs
        from animate_cli.cli import batch_view

        opts = parse(values, O.BATCH)
        if opts["gpus"] is not None:
            raise UsageError("batch does not take --gpus", hint=GPUS_WITH_BATCH)
        model = {n: opts[n] for n in O.names(O.MODEL, O.BATCH)}
        defaults = command_line_defaults({n: opts[n] for n in O.names(O.VIDEO, O.BATCH)})
        job_list = read_jobs(values["jobs"], defaults)
        bad = session.invalid_lines(job_list)
        if bad and not opts["skip_invalid"]:
            if events_fd is None:
                batch_view.print_invalid(bad)
            total = len(bad) + len(job_list.jobs)
            raise UsageError(f"{len(bad)} of {total} rows of {values['jobs']} are invalid; nothing was run",
                             hint="fix them, or pass --skip-invalid to run the valid rows")  # fmt: skip
        if opts["dry_run"]:
            return _dry_run(job_list, model, opts["json"])
        started_at = float(os.environ[STARTED_AT_ENV]) if os.environ.get(STARTED_AT_ENV) else None
        if events_fd is not None:  # one worker of `--workers N`: events to the parent, which prints everything
            from animate_cli.batch.pool import PipeEmitter

            outcome = session.run_here(job_list, model, PipeEmitter(int(events_fd)), started_at)
            return {"exit_code": outcome.exit_code}
        child_args = [str(values["jobs"]), *_flags({**model, **defaults}), *(["--skip-invalid"] if opts["skip_invalid"] else [])]
        return _run(job_list, model, opts, child_args, started_at)

    progress = values["progress"]
    run_command(SCHEMA, bool(values["json"]) and events_fd is None, body, events=progress == "json")


def _run(job_list, model: dict, opts: dict, child_args: list[str], started_at: float | None) -> dict:
    from animate_cli.batch import pool, session
    from animate_cli.batch.status import BatchStatus
    from animate_cli.cli import batch_view

    n = opts["workers"] or pool.default_workers(model["device"])
    if n > 1 and model["device"].startswith("cuda:"):
        raise UsageError(f"--device {model['device']} names one GPU; --workers {n} gives each worker its own",
                         hint="use --device cuda (or auto) with --workers, and CUDA_VISIBLE_DEVICES to choose the GPUs")  # fmt: skip
    status = BatchStatus(len(job_list.jobs))
    with batch_view.BatchView(opts["progress"], status) as view:
        if n == 1:
            outcome = session.run_here(job_list, model, view, started_at)
        else:
            outcome = session.run_pool(job_list, n, child_args, model["device"], view, started_at)
    result = outcome.to_dict()
    if opts["progress"] != "json" and not opts["json"]:
        batch_view.print_summary(result)
    return result


def _dry_run(job_list, model: dict, json_out: bool) -> dict:
    from animate_cli.batch.dry_run import plan_all
    from animate_cli.cli import batch_view

    report = plan_all(job_list, model)
    if not json_out:
        batch_view.print_plan(report)
    return {"dry_run": True, **report}


def _flags(values: dict) -> list[str]:
    """Parsed option values as command-line flags again (the worker processes of --workers N get the parent's)."""
    flags = []
    for name, value in values.items():
        opt = O.OPTIONS[name]
        if value is None or (opt.multiple and not value):
            continue
        if isinstance(value, bool):
            if value or opt.negatable:
                flags.append(opt.flag if value else "--no-" + opt.flag[2:])
            continue
        for v in value if opt.multiple else (value,):
            flags += [opt.flag, f"{v.path}:{v.scale}" if isinstance(v, O.LoraSpec) else str(v)]
    return flags
