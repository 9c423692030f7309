"""`everanimate` with one change, for tests: once a run has saved the state of the first chunk it generates,
it writes that chunk's index to $BATCH_TEST_PAUSE_DIR/paused and blocks (until the test kills it), so a test
can act on a batch worker that is in the middle of a job. Used as `python tests/batch_pausing_cli.py batch ...`."""

import os
import sys
import time
from pathlib import Path

from animate_cli.rollout import resume

POLL_S = 0.05
_save = resume.save_state


def save_then_block(state_dir, state):
    _save(state_dir, state)
    folder = Path(os.environ["BATCH_TEST_PAUSE_DIR"])
    (folder / "paused.tmp").write_text(str(state.next_chunk - 1))
    os.replace(folder / "paused.tmp", folder / "paused")  # appears complete
    while True:  # until SIGKILL
        time.sleep(POLL_S)


resume.save_state = save_then_block

if __name__ == "__main__":
    from animate_cli.cli import app

    sys.argv[0] = "everanimate"
    app()
