"""Never write over an input: an output path that *is* one of the inputs is refused, whatever the flags.

"Is" means the same file on disk, not the same spelling: paths are resolved (symlinks, `..`, `~`),
and an existing output is compared by (st_dev, st_ino), which also catches a hard link to an input.
`--overwrite` does not change this: it allows replacing an earlier *result*, never a source.
No heavy imports; used by `run` (pipeline.check_inputs, so --dry-run too) and `extract-pose`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from animate_cli.errors import UsageError


def same_file(a: Path, b: Path) -> bool:
    """True when writing to `a` would change the file `b` (resolved path, or same device and inode)."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    if a.resolve() == b.resolve():
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:  # one of them does not exist (yet): then only the resolved paths can collide
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def refuse_inputs_as_outputs(outputs: Iterable[tuple[str, Path]], inputs: Iterable[tuple[str, Path | None]]) -> None:
    """Raise UsageError (exit 2) when any (label, path) output is the same file as any (label, path) input."""
    inputs = [(label, Path(p)) for label, p in inputs if p is not None]
    for out_label, out in outputs:
        for in_label, src in inputs:
            if same_file(out, src):
                raise UsageError(
                    f"{out_label} {out} is the {in_label} ({src}); refusing to write over an input",
                    hint="choose another --out (--overwrite only replaces earlier results, never inputs)",
                )
