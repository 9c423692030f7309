"""`everanimate download-weights`: fetch exactly what `run` and `extract-pose` load (see the weights package)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from animate_cli.cli.common import FlagCommand, app, run_command
from animate_cli.errors import ExitCode, UsageError, interrupted
from animate_cli.progress import RichReporter, err_console

EXAMPLES = """
Examples:
  everanimate download-weights                      # everything for 480p into the default folder
  everanimate download-weights --dry-run            # what would be fetched, sizes, free space
  everanimate download-weights --only lora --resolution 720p
  everanimate download-weights --dir /data/everanimate --examples
  everanimate download-weights --check              # what is installed (repo@commit), offline
  everanimate download-weights --update             # move to the repos' current main (re-fetches changed repos)
"""


def _split(values: list[str] | None) -> list[str]:
    """`--only base --only lora` and `--only base,lora` both work."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


@app.command("download-weights", epilog=EXAMPLES, cls=FlagCommand)
def download_weights(
    dir: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Weights folder. Default: $EVERANIMATE_WEIGHTS_DIR, else $HF_HOME/everanimate, else ~/.cache/huggingface/everanimate.",
            show_default=False,
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Fetch only these parts: base, lora, pose (repeatable or comma-separated). Default: all three.",
            show_default=False,
        ),
    ] = None,
    resolution: Annotated[
        str, typer.Option("--resolution", help="Which EverAnimate LoRA: 480p (default), 720p (beta) or all.")
    ] = "480p",
    revision: Annotated[
        list[str] | None,
        typer.Option(
            "--revision",
            help="Hub revision: OWNER/NAME=REV, or REV alone when only one repo is involved (e.g. with --only lora).",
            show_default=False,
        ),
    ] = None,
    examples: Annotated[
        bool,
        typer.Option(
            "--examples", help="Also fetch the official demo inputs (data/test/ of epfl-vita/everanimate) into ./examples/."
        ),
    ] = False,
    examples_dir: Annotated[Path, typer.Option("--examples-dir", hidden=True)] = Path("examples"),
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="List every file, its size and whether it is present, the total and the free space; fetch nothing."
        ),
    ] = False,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Re-resolve each repo's revision (main) to its current commit; files of another commit are fetched anew. "
            "Without it, a download stays at the commit pinned in the manifest.",
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Report what is installed (repo@commit, missing files), offline; exit 4 if incomplete."),
    ] = False,
    json_mode: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout (progress stays on stderr).")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="If another download-weights is writing the folder, wait for it (default: exit 4 at once)."),
    ] = False,
) -> None:
    """Download the Wan2.2-Animate-14B base model, the EverAnimate LoRA and the pose models (resumable)."""

    def body() -> dict:
        from animate_cli import config, weights

        root = (dir or config.default_weights_dir()).expanduser()
        parts = _split(only) or list(weights.PARTS)
        weights.resolutions_for(resolution)  # validates before anything else
        repo_keys = [it.repo for it in weights.registry_items([p for p in parts if p in weights.PARTS], resolution)]
        revs = weights.parse_revisions(revision or [], repo_keys + (["everanimate"] if examples else []))
        if check:
            if update or dry_run or revs or examples:
                raise UsageError("--check only reads the folder; use it without --update, --dry-run, --revision, --examples")
            return _check(root, parts, resolution)
        try:
            with RichReporter(enabled=not json_mode) as reporter:
                report = weights.download(
                    root,
                    parts,
                    resolution,
                    revs,
                    dry_run,
                    reporter,
                    weights.HubFetcher(progress=not json_mode),
                    examples_dir=examples_dir.resolve() if examples else None,
                    wait=wait,
                    update=update,
                )
        except KeyboardInterrupt as exc:
            raise interrupted(
                exc, hint="run the same command again: finished files are kept and partial downloads resume"
            ) from None
        _print_human(report, dry_run)
        return report.to_dict()

    run_command("everanimate.download-weights/1", json_mode, body)


def _check(root: Path, parts: list[str], resolution: str) -> dict:
    """--check: the folder's structural check and the manifest's commits; exit 4 when incomplete."""
    from animate_cli import weights

    result = weights.check(root, parts, resolution)
    console = err_console()
    for e in result["installed"]:
        console.print(f"{e['repo']}@{e['commit']} ({e['revision']}, pinned {e['resolved_at']}): {e['files']} files",
                      markup=False)  # fmt: skip
    if result["unknown_commit"]:
        console.print(f"{len(result['unknown_commit'])} files of unknown commit (not downloaded by download-weights, "
                      "or before pinning); `download-weights --update` replaces them", markup=False)  # fmt: skip
    if result["complete"]:
        console.print(f"complete: everything for {', '.join(parts)} ({resolution}) is in {root}", markup=False)
    else:
        names = [p["path"] if p["problem"] == "missing" else f"{p['path']} ({p['problem']})" for p in result["problems"]]
        console.print(f"incomplete: {len(names)} files missing or broken in {root}: {weights.list_names(names)}", markup=False)
        console.print(f"  fix: {result['fix']}", markup=False)
        result["exit_code"] = int(ExitCode.WEIGHTS)
    return result


def _print_human(report, dry_run: bool) -> None:
    from rich.table import Table

    from animate_cli.weights import format_bytes

    console = err_console()
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if dry_run:
        table = Table(title=f"weights in {report.root}", show_lines=False)
        for col in ("file", "from", "size", "status"):
            table.add_column(col, justify="right" if col == "size" else "left")
        for f in report.files:
            size = ("~" if not f.exact else "") + (format_bytes(f.size) if f.size else "?")
            at = f"{f.revision} ({f.commit[:7]})" if f.commit and f.commit != f.revision else f.revision
            status = "present" if f.present else ("other commit: again" if f.stale else "to download")
            table.add_row(f.item.dest, f"{f.repo_id}@{at}", size, status)
        console.print(table)
        pending = report.pending
        console.print(
            f"Will download {len(pending)} files (out of {len(report.files)}) totalling {format_bytes(report.download_bytes)};"
            f" needs {format_bytes(report.needed_bytes)} free in {report.root}, {format_bytes(report.free_bytes)} free"
            + (" -- NOT ENOUGH" if report.needed_bytes > report.free_bytes else "")
            + ".",
            markup=False,
        )
    elif report.fetched:
        console.print(f"done: fetched {len(report.fetched)} files; all weights complete in {report.root}", markup=False)
    else:
        console.print(f"all weights already complete in {report.root}; nothing to download", markup=False)
    pinned = [f"{e['repo']}@{e['commit'][:12]}" for e in report.installed if e["commit"]]
    if pinned and not dry_run:
        console.print(f"pinned: {', '.join(pinned)} (`--update` moves to newer commits)", markup=False)
