"""`python -m animate_cli` is the same as the `everanimate` console script."""

from animate_cli.cli import main

main()
