"""The `everanimate` console script. Each command lives in its own cli_* module and registers
itself on the shared Typer app; importing this module must stay instant (no torch)."""

from __future__ import annotations

from animate_cli.cli import pose as cli_pose  # noqa: F401  (registers the commands)

from animate_cli.cli import run as cli_run

from animate_cli.cli import weights as cli_weights
from animate_cli.cli.common import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
