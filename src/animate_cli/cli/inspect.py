"""`everanimate inspect VIDEO`: the seam, drift, identity and pose report of any mp4 (what `run` writes at its end).

Flag parsing only; the work is `animate_cli.report.make_report`. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path

from animate_cli import config as C
from animate_cli import options as O
from animate_cli.cli.common import quiet_stdout, run_command
from animate_cli.cli.params import Argument, options_command, parse
from animate_cli.errors import BadInputError
from animate_cli.progress import err_console, make_reporter

SCHEMA = "everanimate.inspect/1"


def summary_line(head: dict) -> str:
    """One line for people: the joins that stand out, the drift, and identity/pose when measured."""
    flagged = head["flagged_joins"]
    seams = f"{len(flagged)} of {head['joins']} joins stand out" + (f" (frames {', '.join(map(str, flagged[:8]))}"
                                                                      f"{', …' if len(flagged) > 8 else ''})" if flagged else "")  # fmt: skip
    if head["flagged_joins_with_fix"] != flagged:
        seams += f", {len(head['flagged_joins_with_fix'])} with --seam-fix color"
    parts = [seams, f"drift up to ΔE {head['max_drift_delta_e']:.1f} from chunk 0"]
    if head.get("draft"):  # a --fast output says so wherever it is inspected (models/fast.py)
        parts.insert(0, "DRAFT (--fast output)")
    if "identity_mean" in head:
        parts.append(f"identity {head['identity_mean']:.2f}")
    if "pose_pck_mean" in head:
        parts.append(f"pose adherence {head['pose_pck_mean']:.2f}")
    return "; ".join(parts)


@options_command(O.INSPECT, [Argument("video", Path, "The video to inspect (an everanimate output or any mp4).")])
def inspect_cmd(values: dict) -> None:
    """Write NAME.report.json and NAME.report.png next to NAME.mp4: seams at chunk joins, colour drift, identity, pose adherence."""

    video, json_mode, progress = values["video"], values["json"], values["progress"]

    def body() -> dict:
        from animate_cli.report import ReportOptions, make_report

        v = parse(values, O.INSPECT)
        for p, what in ((video, "video"), (v["driving"], "driving video"), (v["ref"], "reference image")):
            if p is not None and not p.exists():
                raise BadInputError(f"{what} not found: {p}")
        with make_reporter(v["progress"]) as reporter, quiet_stdout():
            options = ReportOptions(driving=v["driving"], ref=v["ref"], chunks=v["chunks"], people=v["pose"],
                                    weights_dir=v["weights_dir"] or C.default_weights_dir(), overwrite=v["overwrite"])  # fmt: skip
            r = make_report(video, options, reporter)
        if not json_mode and progress != "json":
            err_console().print(f"wrote {r.json_path} and {r.png_path}: {summary_line(r.headline)}", markup=False)
        return {"report": str(r.json_path), "picture": str(r.png_path), "headline": r.headline, "timings_s": r.timings_s}

    run_command(SCHEMA, json_mode, body, events=progress == "json")
