"""`everanimate` in a process of its own, with test_weights.py's fake Hub instead of the real one
(the concurrency tests need two real processes; nothing here touches the network).

FAKE_HUB_PAUSE_DIR=DIR: the first download writes DIR/paused and waits for DIR/go.
"""

import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.pop("HF_HUB_OFFLINE", None)  # the fake Hub is "reachable"


def _no_network(*args, **kwargs):
    raise RuntimeError("network access attempted in tests")


socket.socket.connect = _no_network

from test_weights import FakeHub  # noqa: E402

from animate_cli import weights  # noqa: E402
from animate_cli.cli import main  # noqa: E402


class PausingHub(FakeHub):
    def download(self, repo_id, path, revision, local_dir):
        folder = os.environ.get("FAKE_HUB_PAUSE_DIR")
        if folder and not self.downloads:
            (Path(folder) / "paused").touch()
            while not (Path(folder) / "go").exists():
                time.sleep(0.02)
        return super().download(repo_id, path, revision, local_dir)


weights.HubFetcher = lambda progress=True: PausingHub()
sys.argv = ["everanimate", *sys.argv[1:]]
main()
