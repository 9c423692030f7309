"""`everanimate run REF DRIVING`: the options -> an Animator (runner/animator.py) -> one run, or its plan with --dry-run.

Every option is declared in options.py; this module only decides what the command does with them: --gpus N
(one rank per GPU), --dry-run, the progress view and what is printed.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import typer

from animate_cli import options as O
from animate_cli.cli import run_view
from animate_cli.cli.common import run_command
from animate_cli.cli.params import Argument, options_command, parse
from animate_cli.progress import make_reporter

SCHEMA = "everanimate.run/1"


@options_command(O.RUN, [Argument("ref", Path, "Reference image of the person (png/jpg/webp; any mode)."),
                         Argument("driving", Path, "Driving video whose motion (and audio) is used.")])  # fmt: skip
def run_cmd(values: dict) -> None:
    """Animate REF with the motion of DRIVING (EverAnimate rollout on Wan2.2-Animate-14B)."""

    def body() -> dict:
        from animate_cli.models import parallel
        from animate_cli.rollout import distributed
        from animate_cli.runner import ranks

        opts = parse(values, O.RUN)
        if parallel.env_world_size() > 1:  # one of several ranks (torchrun, or --gpus N's launcher)
            if opts["dry_run"]:  # rank 0 prints the plan; the others have nothing to add
                if parallel.env_rank() > 0:
                    raise typer.Exit(0)
                return run_one(values["ref"], values["driving"], opts)
            if not parallel.init_world(opts["device"]).is_writer:  # reads no input: weights, then the chunks rank 0 sends
                ranks.run_rank({n: opts[n] for n in O.names(O.MODEL)}, opts["resolution"])
                raise typer.Exit(0)
        with distributed.leading():  # rank 0 of several: afterwards tells the others stop, or the error; else nothing
            return run_one(values["ref"], values["driving"], opts)

    progress = values["progress"]
    run_command(SCHEMA, values["json"], body, events=progress == "json")


def run_one(ref: Path, driving: Path, opts: dict) -> dict:
    """One run (or its plan) through the Python API, printed as the command prints it."""
    from animate_cli.models import parallel
    from animate_cli.runner import multigpu, pipeline
    from animate_cli.runner.animator import Animator, split_options

    model, video = split_options(opts)
    animator = Animator(model.pop("weights_dir"), **model)
    cfg = animator.config(ref, driving, opts["out"], **video)
    n = multigpu.rank_count(opts["gpus"], cfg)
    if n > 1:  # context parallelism keeps the whole DiT on every GPU: no block offloading (see rank_count)
        cfg = dataclasses.replace(cfg, offload="none")
    if opts["dry_run"]:  # the plan and the estimate always; then whether a real run could start now
        result = animator.plan_config(cfg, n)
        if not opts["json"]:
            run_view.print_dry_run(cfg, result)
        return result
    if n > 1 and parallel.env_world_size() == 1:  # --gpus N: check what is cheap here, then start N ranks
        pipeline.check_inputs(cfg)
        multigpu.check_devices(n, cfg.device)
        multigpu.check_attention(cfg.attention, cfg.device, cfg.dtype)  # exit 2 before any rank starts
        raise typer.Exit(multigpu.launch(n, multigpu.strip_gpus(sys.argv[1:])))
    with make_reporter(opts["progress"]) as reporter:
        summary = animator.run_config(cfg, reporter=reporter, fresh=opts["fresh"])
        result = summary.to_dict()
        if opts["progress"] == "json":
            reporter.emit("done", **result)
    if not opts["json"] and opts["progress"] != "json":
        run_view.print_summary(cfg, summary, result)
    return result
