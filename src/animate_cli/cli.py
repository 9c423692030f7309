"""The `everanimate` console script. Each command lives in its own cli_* module and registers
itself on the shared Typer app; importing this module must stay instant (no torch)."""

from __future__ import annotations

from animate_cli import cli_pose, cli_run, cli_weights  # noqa: F401  (registers the commands)
from animate_cli.cli_common import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
