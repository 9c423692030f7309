"""What every command shares: the Typer app, error-to-exit-code handling and --json envelopes (the progress
renderers are in progress.py). Heavy libraries are never imported here."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager

import typer
from typer.core import TyperCommand, TyperGroup

from animate_cli import __version__
from animate_cli.errors import EverAnimateError, ExitCode, SigTerm, as_error
from animate_cli.progress import JsonReporter, err_console


class _PlainFlags:
    """--help shows a boolean flag without a value placeholder: typer 0.29 prints `--dry-run <bool>`, which
    reads as if the flag needed a value."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""
        return params


class FlagCommand(_PlainFlags, TyperCommand):
    """Every everanimate command (`@app.command(..., cls=FlagCommand)`)."""


class _FlagGroup(_PlainFlags, TyperGroup):
    pass


app = typer.Typer(
    cls=_FlagGroup,
    name="everanimate",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Minute-scale character animation: one reference image + a driving video -> an mp4 (EverAnimate on Wan2.2-Animate-14B).",
)


def emit_json(obj: dict) -> None:
    """The one JSON object a --json command prints on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _raise_sigterm(signum, frame):
    raise SigTerm


@contextmanager
def _sigterm_as_interrupt():
    try:
        old = signal.signal(signal.SIGTERM, _raise_sigterm)
    except ValueError:  # not the main thread (an embedding program owns the signals)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_command(schema: str, json_mode: bool, body: Callable[[], dict], events: bool = False) -> None:
    """Run a command body; map failures to one line + exit code; print one JSON object with --json.
    With `events` (--progress json) the error goes to stderr as an {"event": "error"} line instead."""
    t0 = time.monotonic()
    try:
        with _sigterm_as_interrupt():
            result = body() or {}
    except typer.Exit:
        raise
    except BaseException as exc:  # noqa: BLE001 - this is the one place that turns errors into exit codes
        error = as_error(exc)
        if error is None:
            if os.environ.get("EVERANIMATE_DEBUG") == "1" or isinstance(exc, SystemExit):
                raise
            error = EverAnimateError(f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0],
                                     hint="this is a bug; set EVERANIMATE_DEBUG=1 for the full traceback")  # fmt: skip
        if events:
            JsonReporter().emit("error", code=error.code, message=error.message, hint=error.hint,
                                exit_code=int(error.exit_code))  # fmt: skip
        else:
            from rich.markup import escape

            console = err_console()  # messages may hold brackets (paths, library errors): escape them
            console.print(f"[bold red]error:[/] {escape(error.message)}", markup=True, highlight=False)
            if error.hint:
                console.print(f"  hint: {error.hint}", markup=False)
        if json_mode:
            emit_json({"schema": schema, "ok": False, "exit_code": int(error.exit_code),
                       "error": {"code": error.code, "message": error.message, "hint": error.hint}})  # fmt: skip
        raise typer.Exit(int(error.exit_code)) from None
    # A body may finish its report and still say "not ready" (run --dry-run, download-weights --check):
    # it returns the exit code of the first blocker in "exit_code".
    code = int(result.pop("exit_code", ExitCode.OK))
    if json_mode:
        emit_json({"schema": schema, "ok": code == ExitCode.OK, "exit_code": code, **result,
                   "elapsed_s": round(time.monotonic() - t0, 3), "versions": {"everanimate": __version__}})  # fmt: skip
    raise typer.Exit(code)


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
    default_alloc_conf(os.environ)  # before any command imports torch (and so before CUDA initialises)


def default_alloc_conf(environ) -> str | None:
    """Set torch's CUDA allocator configuration to config.CUDA_ALLOC_CONF unless the user set one (either name
    torch reads: PYTORCH_CUDA_ALLOC_CONF, or PYTORCH_ALLOC_CONF since torch 2.9). Torch reads it once, when its
    CUDA allocator initialises, so this runs before any command imports torch; --gpus N's ranks inherit it.
    Returns what was set (None: the user's own setting stands)."""
    from animate_cli import config as C

    if any(k in environ for k in C.CUDA_ALLOC_CONF_ENVS):
        return None
    environ[C.CUDA_ALLOC_CONF_ENVS[0]] = C.CUDA_ALLOC_CONF
    return C.CUDA_ALLOC_CONF
