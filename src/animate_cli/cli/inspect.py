"""`everanimate inspect VIDEO`: the seam, drift, identity and pose report of any mp4 (what `run` writes at its end).

Flag parsing only; the work is `animate_cli.report.make_report`. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from animate_cli import config as C
from animate_cli.cli.common import FlagCommand, app, err_console, make_reporter, quiet_stdout, run_command
from animate_cli.errors import BadInputError

SCHEMA = "everanimate.inspect/1"


def summary_line(head: dict) -> str:
    """One line for people: the joins that stand out, the drift, and identity/pose when measured."""
    flagged = head["flagged_joins"]
    seams = f"{len(flagged)} of {head['joins']} joins stand out" + (f" (frames {', '.join(map(str, flagged[:8]))}"
                                                                      f"{', …' if len(flagged) > 8 else ''})" if flagged else "")  # fmt: skip
    if head["flagged_joins_with_fix"] != flagged:
        seams += f", {len(head['flagged_joins_with_fix'])} with --seam-fix color"
    parts = [seams, f"drift up to ΔE {head['max_drift_delta_e']:.1f} from chunk 0"]
    if "identity_mean" in head:
        parts.append(f"identity {head['identity_mean']:.2f}")
    if "pose_pck_mean" in head:
        parts.append(f"pose adherence {head['pose_pck_mean']:.2f}")
    return "; ".join(parts)


@app.command("inspect", cls=FlagCommand)
def inspect_cmd(
    video: Annotated[Path, typer.Argument(help="The video to inspect (an everanimate output or any mp4).", show_default=False)],
    driving: Annotated[Path | None, typer.Option(help="Driving video: enables pose adherence (needs the pose models).")] = None,
    ref: Annotated[Path | None, typer.Option(help="Reference image: drift and identity against it.")] = None,
    chunks: Annotated[str, typer.Option(help="auto (the run's record, else the 77/73-frame rule) or the frames where "
                                             "chunks 1, 2, ... start, e.g. 77,150,223.")] = "auto",  # fmt: skip
    pose: Annotated[bool, typer.Option("--pose/--no-pose", help="Run the pose models for identity and pose adherence (slow on a CPU).")] = True,
    weights_dir: Annotated[Path | None, typer.Option(envvar=C.WEIGHTS_ENV, show_envvar=True, help="Where download-weights put the pose models.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing report.")] = False,
    json_mode: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    progress: Annotated[str, typer.Option(help="rich, json or none.")] = "rich",
) -> None:  # fmt: skip
    """Write NAME.report.json and NAME.report.png next to NAME.mp4: seams at chunk joins, colour drift, identity, pose adherence."""

    def body() -> dict:
        from animate_cli.report import ReportOptions, make_report

        for p, what in ((video, "video"), (driving, "driving video"), (ref, "reference image")):
            if p is not None and not p.exists():
                raise BadInputError(f"{what} not found: {p}")
        with make_reporter(progress) as reporter, quiet_stdout():
            options = ReportOptions(driving=driving, ref=ref, chunks=chunks, weights_dir=weights_dir or C.default_weights_dir(),
                                    people=pose, overwrite=overwrite)  # fmt: skip
            r = make_report(video, options, reporter)
        if not json_mode and progress != "json":
            err_console().print(f"wrote {r.json_path} and {r.png_path}: {summary_line(r.headline)}", markup=False)
        return {"report": str(r.json_path), "picture": str(r.png_path), "headline": r.headline, "timings_s": r.timings_s}

    run_command(SCHEMA, json_mode, body, events=progress == "json")
