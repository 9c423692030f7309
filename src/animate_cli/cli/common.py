"""What every command shares: the Typer app, error-to-exit-code handling, --json envelopes and
the rich progress renderer. Heavy libraries are never imported here."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup

from animate_cli import __version__
from animate_cli.errors import EverAnimateError, ExitCode, SigTerm, as_error
from animate_cli.progress import StepClock, format_eta


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


def err_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


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


class RichReporter:
    """Renders the Reporter protocol as rich progress bars on stderr (disabled when quiet). The chunk
    loop's line carries the ETA from measured step times and the name of the latest preview."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress = None
        self._tasks: dict[str, int] = {}
        self._clock = StepClock()
        self._preview: Path | None = None

    def __enter__(self) -> RichReporter:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,  # fmt: skip
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), _eta_column(), console=err_console(), transient=False)  # fmt: skip
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self._clock.stage(name, total)
        if self._progress is None:
            return
        desc = description or name
        if name in self._tasks:
            self._progress.reset(self._tasks[name], total=total, description=desc)
        else:
            fields = {"eta": format_eta(None)} if name == "chunks" else {}
            self._tasks[name] = self._progress.add_task(desc, total=total, **fields)

    def advance(self, name: str, n: int = 1) -> None:
        self._clock.advance(name, n)
        if self._progress is not None and name in self._tasks:
            self._progress.advance(self._tasks[name], n)
            if name in ("steps", "chunks") and "chunks" in self._tasks:
                self._progress.update(self._tasks["chunks"], eta=format_eta(self._clock.eta_s()))

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        elif self.enabled:
            err_console().print(message, markup=False, highlight=False)

    def artifact(self, kind: str, path: Path, **info) -> None:
        if self._progress is not None and "chunks" in self._tasks:  # the preview while running, the output at the end
            self._progress.update(self._tasks["chunks"], description=f"chunks ({kind}: {Path(path).name})")


def _eta_column():
    """Our ETA where a task has one (the chunk loop), rich's own estimate elsewhere."""
    from rich.progress import TimeRemainingColumn
    from rich.text import Text

    class EtaColumn(TimeRemainingColumn):
        def render(self, task):
            if "eta" in task.fields:
                return Text(task.fields["eta"], style="progress.remaining")
            return super().render(task)

    return EtaColumn()


class JsonReporter:
    """--progress json: the Reporter protocol as one JSON object per line on stderr, for GUIs and scripts.

    Events (every line has "event" and "t", seconds since start):
      stage      {name, total, description}            a stage starts (chunks, steps, decode, pose, load, mux)
      step       {chunk, step, steps, eta_s}           one denoising step of the current chunk finished
      progress   {name, done, total}                   any other stage advanced
      preview    {path, chunks}                        the preview mp4 now holds this many finished chunks
      output     {path}                                the output is written (the preview is removed)
      chunk_done {chunk, chunks, eta_s, preview}       a chunk is finished and saved (preview: latest path)
      log        {message}
      done       {...the run summary}                  the output is written
      error      {code, message, hint, exit_code}      the run failed (emitted by run_command)
    """

    def __init__(self, stream=None):
        self.stream = stream
        self.t0 = time.monotonic()
        self._clock = StepClock()
        self._done: dict[str, int] = {}
        self._total: dict[str, int | None] = {}
        self._preview: str | None = None
        # The segment writer thread reports the preview while the main thread reports steps: one line at a time.
        self._lock = threading.Lock()

    def __enter__(self) -> JsonReporter:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def emit(self, event: str, **data) -> None:
        line = json.dumps({"event": event, "t": round(time.monotonic() - self.t0, 3), **data}, ensure_ascii=False, default=str)
        stream = self.stream or sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def stage(self, name: str, total: int | None, description: str = "") -> None:
        self._clock.stage(name, total)
        self._done[name], self._total[name] = 0, total
        self.emit("stage", name=name, total=total, description=description or name)

    def advance(self, name: str, n: int = 1) -> None:
        finished = self._clock.advance(name, n)
        self._done[name] = self._done.get(name, 0) + n
        eta = self._clock.eta_s()
        eta = None if eta is None else round(eta, 1)
        if name == "steps":
            self.emit("step", chunk=self._clock.chunks_done, step=self._done[name], steps=self._total.get(name), eta_s=eta)
        elif name == "chunks" and finished:
            self.emit("chunk_done", chunk=self._done[name] - 1, chunks=self._total.get(name), eta_s=eta, preview=self._preview)
        else:
            self.emit("progress", name=name, done=self._done[name], total=self._total.get(name))

    def log(self, message: str) -> None:
        self.emit("log", message=message)

    def artifact(self, kind: str, path: Path, **info) -> None:
        if kind == "preview":
            self._preview = str(path)
        self.emit(kind, path=str(path), **info)


def make_reporter(mode: str):
    """--progress rich|json|none -> a reporter (a context manager)."""
    if mode == "json":
        return JsonReporter()
    if mode in ("rich", "none"):
        return RichReporter(enabled=mode == "rich")
    from animate_cli.errors import UsageError

    raise UsageError(f"--progress must be rich, json or none, got {mode!r}")


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
