"""Typer commands built from the options table (options.py): each option's flag, type, default, help, help panel
and metavar come from its one declaration there.

    @options_command("inspect", [Argument("video", Path, "The video to inspect.")])
    def inspect_cmd(values: dict) -> None:      # values: every argument and option by its python name, as given
        ...

Values arrive as Typer read them (choices as plain strings, unchecked): options.parse_all checks them once,
inside the command's body, so a bad value is the same one-line error (exit 2, and the --json envelope) as
any other usage error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from animate_cli import options as O
from animate_cli.cli.common import FlagCommand, app


@dataclass(frozen=True)
class Argument:
    name: str
    kind: type
    help: str


def _annotation(opt: O.Option) -> Any:
    """The python type Typer reads one option as (a choice as its text: options.Option.parse checks it)."""
    kind = str if opt.choices is not None else opt.kind
    if opt.multiple:
        return list[kind] | None
    return kind | None if opt.default is None else kind


def _metavar(opt: O.Option) -> str | None:
    """What --help shows for the value: the choices ([pad|crop|stretch]), or what one value looks like."""
    return "[" + "|".join(opt.choices) + "]" if opt.choices is not None else opt.metavar


def _option_param(opt: O.Option) -> inspect.Parameter:
    kind = _annotation(opt)
    decls = [f"{opt.flag}/--no-{opt.flag[2:]}" if opt.negatable else opt.flag] + ([opt.short] if opt.short else [])
    info = typer.Option(*decls, help=opt.help, rich_help_panel=opt.panel, metavar=_metavar(opt), envvar=opt.envvar,
                        show_envvar=opt.envvar is not None, show_default=opt.show_default)  # fmt: skip
    default = None if opt.multiple else opt.default
    return inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info])


def _argument_param(arg: Argument) -> inspect.Parameter:
    info = typer.Argument(help=arg.help, show_default=False)
    return inspect.Parameter(arg.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[arg.kind, info])


def options_command(command: str, arguments: Sequence[Argument]) -> Callable[[Callable[[dict], None]], Callable[[dict], None]]:
    """Register `body(values)` as the Typer command `command`: its arguments, then every option of the table
    that `command` takes. The body's docstring is the command's help."""

    def register(body: Callable[[dict], None]) -> Callable[[dict], None]:
        params = [_argument_param(a) for a in arguments] + [_option_param(o) for o in O.for_command(command)]

        def cmd(**values: Any) -> None:
            body(values)

        cmd.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        cmd.__annotations__ = {p.name: p.annotation for p in params}
        cmd.__name__ = body.__name__
        cmd.__doc__ = body.__doc__
        app.command(command, cls=FlagCommand)(cmd)
        return body

    return register


def parse(values: dict, command: str) -> dict:
    """The options of `values` (as Typer read them) parsed and checked, once."""
    taken = {o.name for o in O.for_command(command)}
    return O.parse_all({k: v for k, v in values.items() if k in taken}, taken, command, command)
