"""`everanimate` in a process of its own that can be paused inside a real run (test_locks.py).

PAUSE_DIR=DIR: once the run has saved the first chunk it generates, it writes that chunk's index to
DIR/paused and waits for DIR/go, so a test acts on a run that is inside its rollout without guessing
with sleeps. The pause is added here, by wrapping pipeline.run; the product has no hook for it.
"""

import os
import sys
import time
from pathlib import Path

from animate_cli.cli import main
from animate_cli.runner import pipeline

PAUSE_ENV = "PAUSE_DIR"
POLL_S = 0.02  # how often a paused run looks for its go file


def pause_after_first_chunk(folder: Path):
    first = []

    def pause(c: int) -> None:
        if not first:
            first.append(c)
            (folder / "paused.tmp").write_text(str(c))
            os.replace(folder / "paused.tmp", folder / "paused")  # appears complete
            while not (folder / "go").exists():
                time.sleep(POLL_S)

    return pause


def pausing(run):
    def wrapped(cfg, reporter=None, **kw):
        return run(cfg, reporter, **kw, on_chunk_done=pause_after_first_chunk(Path(os.environ[PAUSE_ENV])))

    return wrapped


if __name__ == "__main__":
    if os.environ.get(PAUSE_ENV):
        pipeline.run = pausing(pipeline.run)
    sys.argv[0] = "everanimate"
    main()
