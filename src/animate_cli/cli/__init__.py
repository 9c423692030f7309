"""The `everanimate` console script. Each command lives in its own module of this package and registers
itself on the shared Typer app; importing this package must stay instant (no torch)."""

from __future__ import annotations

from animate_cli.cli import batch, inspect, pose, run, weights  # noqa: F401  (registers the commands)
from animate_cli.cli.common import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
