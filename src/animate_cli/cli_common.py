"""What every command shares: the Typer app, error-to-exit-code handling, --json envelopes and
the rich progress renderer. Heavy libraries are never imported here."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager

import typer

from animate_cli import __version__
from animate_cli.errors import DeviceError, EverAnimateError, ExitCode, Interrupted

app = typer.Typer(
    name="everanimate",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Minute-scale character animation: one reference image + a driving video -> an mp4 (EverAnimate on Wan2.2-Animate-14B).",
)


def err_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(obj: dict) -> None:
    """The one JSON object a --json command prints on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _as_error(exc: BaseException) -> EverAnimateError | None:
    if isinstance(exc, EverAnimateError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted("interrupted", hint="run the same command again to continue from the last finished chunk")
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError without importing torch
        first = str(exc).splitlines()[0] if str(exc) else "CUDA out of memory"
        return DeviceError(first, hint="try --offload, a smaller --size, or free GPU memory used by other processes")
    return None


def run_command(schema: str, json_mode: bool, body: Callable[[], dict]) -> None:
    """Run a command body; map failures to one line + exit code; print one JSON object with --json."""
    t0 = time.monotonic()
    try:
        result = body() or {}
    except typer.Exit:
        raise
    except BaseException as exc:  # noqa: BLE001 - this is the one place that turns errors into exit codes
        error = _as_error(exc)
        if error is None:
            if os.environ.get("EVERANIMATE_DEBUG") == "1" or isinstance(exc, SystemExit):
                raise
            error = EverAnimateError(f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0],
                                     hint="this is a bug; set EVERANIMATE_DEBUG=1 for the full traceback")  # fmt: skip
        from rich.markup import escape

        console = err_console()  # messages may hold brackets (paths, library errors): escape them
        console.print(f"[bold red]error:[/] {escape(error.message)}", markup=True, highlight=False)
        if error.hint:
            console.print(f"  hint: {error.hint}", markup=False)
        if json_mode:
            emit_json({"schema": schema, "ok": False, "exit_code": int(error.exit_code),
                       "error": {"code": error.code, "message": error.message, "hint": error.hint}})  # fmt: skip
        raise typer.Exit(int(error.exit_code)) from None
    if json_mode:
        emit_json({"schema": schema, "ok": True, **result, "elapsed_s": round(time.monotonic() - t0, 3),
                   "versions": {"everanimate": __version__}})  # fmt: skip
    raise typer.Exit(int(ExitCode.OK))


class RichReporter:
    """Renders the Reporter protocol as rich progress bars on stderr (disabled when quiet)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> RichReporter:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,  # fmt: skip
                TimeRemainingColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TimeRemainingColumn(), console=err_console(), transient=False)  # fmt: skip
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        if self._progress is None:
            return
        desc = description or name
        if name in self._tasks:
            self._progress.reset(self._tasks[name], total=total, description=desc)
        else:
            self._tasks[name] = self._progress.add_task(desc, total=total)

    def advance(self, name: str, n: int = 1) -> None:
        if self._progress is not None and name in self._tasks:
            self._progress.advance(self._tasks[name], n)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        elif self.enabled:
            err_console().print(message, markup=False, highlight=False)


@contextmanager
def quiet_stdout():
    """Send anything libraries print to stdout (rtmlib does) to stderr, so --json stays one object."""
    from contextlib import redirect_stdout

    with redirect_stdout(sys.stderr):
        yield


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"everanimate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Minute-scale character animation: one reference image + a driving video -> an mp4."""
