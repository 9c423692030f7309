"""One folder, one writer (locks.py): the lock itself, and real `everanimate` processes on tiny weights
competing for one resume state, one pose cache entry, one extract-pose folder and one weights folder.

Processes are synchronised through files, never sleeps: a run started by paused_cli.py with PAUSE_DIR
pauses after its first chunk, the fake Hub pauses before its first download, and
a test that needs two processes to wait on a lock holds the lock itself until both say they wait.
"""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import frames_of, make_cfg

from animate_cli import media
from animate_cli.errors import ExitCode, FolderBusyError
from animate_cli.media import locks
from animate_cli.runner import pipeline

HOST = socket.gethostname()
PAUSED_CLI = Path(__file__).with_name("paused_cli.py")  # everanimate, pausable inside a run (PAUSE_DIR)
TIMEOUT_S = 300  # generous: the suite shares 2 cores; a healthy run takes seconds


def busy(who):
    return FolderBusyError(f"busy ({who})")


def wait_until(cond, procs=(), what=""):
    """Poll `cond` until it holds; fail early (with the process's stderr) if one of `procs` exits first."""
    t0 = time.monotonic()
    while not cond():
        for p in procs:
            if p.poll() is not None:
                err = Path(p.err_path).read_text() if hasattr(p, "err_path") else ""
                pytest.fail(f"process exited ({p.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() - t0 > TIMEOUT_S:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def start(cmd, tmp, name, **env):
    """Popen with stdout/stderr in files (a pipe nobody reads could block a paused process)."""
    with open(tmp / f"{name}.out", "w") as out, open(tmp / f"{name}.err", "w") as err:  # the child keeps its own copies
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "COLUMNS": "300", **env})
    p.err_path, p.out_path = tmp / f"{name}.err", tmp / f"{name}.out"
    return p


def finish(p) -> tuple[int, str, str]:
    p.wait(TIMEOUT_S)
    return p.returncode, Path(p.out_path).read_text(), Path(p.err_path).read_text()


def run_cli(cmd, **env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "300", **env}, timeout=TIMEOUT_S)


# --- the lock --------------------------------------------------------------------------------------


def test_second_holder_is_refused_naming_pid_and_host(tmp_path):
    folder = tmp_path / "state"
    with locks.hold(folder, busy) as lock:
        info = json.loads(lock.read_text())
        assert info["pid"] == os.getpid() and info["host"] == HOST
        with pytest.raises(FolderBusyError) as e, locks.hold(folder, busy):
            pass
        assert f"pid {os.getpid()} on {HOST} since " in e.value.message
        assert e.value.exit_code == ExitCode.BAD_INPUT
    assert not folder.exists()  # created by the holder, left empty: nothing remains
    with locks.hold(folder, busy):  # free again
        (folder / "kept").write_text("x")
    assert [p.name for p in folder.iterdir()] == ["kept"]  # the lock file goes, the contents stay


def test_wait_blocks_until_released_and_says_so(tmp_path):
    folder, said, order = tmp_path / "f", [], []

    def second():
        with locks.hold(folder, wait=True, log=said.append):
            order.append("second")

    with locks.hold(folder, busy):
        t = threading.Thread(target=second)
        t.start()
        wait_until(lambda: said, what="the waiting message")
        order.append("first done")
    t.join(TIMEOUT_S)
    assert order == ["first done", "second"]
    assert said[0].startswith(f"waiting for {folder} to be released by pid {os.getpid()} on {HOST}")


def test_fresh_empties_the_folder_but_keeps_the_held_lock(tmp_path):
    folder = tmp_path / "state"
    with locks.hold(folder, busy):
        (folder / "latents").mkdir()
        (folder / "latents" / "c0").write_text("x")
        (folder / "state.json").write_text("{}")
        locks.clear_except_lock(folder)
        assert [p.name for p in folder.iterdir()] == [locks.LOCK_NAME]
        with pytest.raises(FolderBusyError), locks.hold(folder, busy):  # still held: --fresh opens no window
            pass


def test_filesystem_without_locks_warns_and_continues(tmp_path, monkeypatch):
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    said = []
    with locks.hold(tmp_path / "nfs", busy, log=said.append):
        pass
    assert said and said[0].startswith("warning: cannot lock") and "No locks available" in said[0]


def test_run_on_a_held_state_folder_is_refused_before_touching_it(tiny_weights, media_dir, tmp_path):
    cfg = make_cfg(media_dir, tiny_weights, tmp_path / "o.mp4", frames=10)
    with locks.hold(cfg.resume_dir, busy):
        (cfg.resume_dir / "state.json").write_text("{}")
        for fresh in (False, True):
            with pytest.raises(FolderBusyError) as e:
                pipeline.run(cfg, fresh=fresh)
            assert str(cfg.resume_dir) in e.value.message and f"pid {os.getpid()} on {HOST}" in e.value.message
        assert (cfg.resume_dir / "state.json").read_text() == "{}"  # --fresh did not delete the holder's state


def test_dry_run_takes_no_lock(tiny_weights, media_dir, tmp_path):
    from typer.testing import CliRunner

    from animate_cli.cli import app

    out = tmp_path / "o.mp4"
    with locks.hold(out.with_name(out.name + ".everanimate-state"), busy):
        r = CliRunner().invoke(app, run_cmd(media_dir, tiny_weights, out)[2:] + ["--dry-run"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output


# --- run: real processes ---------------------------------------------------------------------------


def run_cmd(media_dir: Path, weights: Path, out: Path) -> list[str]:
    return [sys.executable, str(PAUSED_CLI), "run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"),
            "--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4"), "--frames", "80",
            "--size", "64x32", "--steps", "1", "--device", "cpu", "--dtype", "fp32", "--weights-dir", str(weights),
            "--out", str(out), "--json"]  # fmt: skip


@pytest.fixture(scope="module")
def undisturbed(tiny_weights, media_dir, tmp_path_factory) -> np.ndarray:
    """The frames of one uninterrupted `everanimate run` (two chunks: 77 + 3 frames), in a process of its own."""
    out = tmp_path_factory.mktemp("undisturbed") / "o.mp4"
    proc = run_cli(run_cmd(media_dir, tiny_weights, out))
    assert proc.returncode == 0, proc.stderr
    return frames_of(out)


def test_second_run_is_refused_while_the_first_is_in_its_rollout(undisturbed, tiny_weights, media_dir, tmp_path):
    out = tmp_path / "o.mp4"
    state = out.with_name(out.name + ".everanimate-state")
    (tmp_path / "pause").mkdir()
    first = start(run_cmd(media_dir, tiny_weights, out), tmp_path, "first", PAUSE_DIR=str(tmp_path / "pause"))
    wait_until((tmp_path / "pause" / "paused").exists, [first], "the first run to finish chunk 0")

    second = run_cli(run_cmd(media_dir, tiny_weights, out))
    assert second.returncode == ExitCode.BAD_INPUT
    line = [ln for ln in second.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and str(state) in line[0] and f"pid {first.pid} on {HOST}" in line[0], second.stderr
    assert json.loads(second.stdout)["error"]["code"] == "busy"

    (tmp_path / "pause" / "go").touch()
    rc, stdout, stderr = finish(first)
    assert rc == 0, stderr
    assert json.loads(stdout)["resumed_from_chunk"] == 0
    assert np.array_equal(frames_of(out), undisturbed)  # the refused run changed nothing
    assert not (state / locks.LOCK_NAME).exists()


def test_sigterm_mid_chunk_then_kill9_then_the_same_command_finishes_identically(undisturbed, tiny_weights, media_dir,
                                                                                  tmp_path):  # fmt: skip
    out = tmp_path / "o.mp4"
    state = out.with_name(out.name + ".everanimate-state")
    cmd = run_cmd(media_dir, tiny_weights, out)

    # SIGTERM (what Slurm and Kubernetes send on preemption) while chunk 1 is being generated:
    # exit 143 with one line, chunk 0's saved state intact, no partial files.
    (tmp_path / "p1").mkdir()
    a = start(cmd, tmp_path, "a", PAUSE_DIR=str(tmp_path / "p1"))
    wait_until((tmp_path / "p1" / "paused").exists, [a], "run a to finish chunk 0")
    (tmp_path / "p1" / "go").touch()
    a.send_signal(signal.SIGTERM)  # lands in chunk 1, or in the last poll before it: both must stop cleanly
    rc, _, stderr = finish(a)
    assert rc == ExitCode.TERMINATED and "error: terminated (SIGTERM)" in stderr, stderr
    assert json.loads((state / "state.json").read_text())["next_chunk"] == 1
    assert not list(state.rglob("*partial*")) and not list(state.rglob("*.tmp"))

    # The same command continues from chunk 1; kill -9 it once chunk 1 is saved: its lock file stays behind.
    (tmp_path / "p2").mkdir()
    b = start(cmd, tmp_path, "b", PAUSE_DIR=str(tmp_path / "p2"))
    wait_until((tmp_path / "p2" / "paused").exists, [b], "run b to finish a chunk")
    assert (tmp_path / "p2" / "paused").read_text() == "1"
    b.kill()
    assert finish(b)[0] == -signal.SIGKILL
    assert (state / locks.LOCK_NAME).exists() and not out.exists()

    # ... and the next one starts without any cleanup and ends with the undisturbed frames.
    c = run_cli(cmd)
    assert c.returncode == 0, c.stderr
    assert json.loads(c.stdout)["resumed_from_chunk"] == 2
    assert np.array_equal(frames_of(out), undisturbed)


# --- pose: one extraction per folder ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pose_inputs(tmp_path_factory):
    from animate_cli.devtools.tiny_pose import write_tiny_pose_models

    root = tmp_path_factory.mktemp("pose")
    write_tiny_pose_models(root / "weights" / "pose")
    with media.VideoWriter(root / "drive.mp4", 160, 96, 25.0) as vw:
        for t in range(10):
            f = np.zeros((96, 160, 3), np.uint8)
            f[12:84, 60 + t : 100 + t] = 220
            vw.write(f)
    return root


def two_waiting(tmp_path, folder: Path, cmds: list[list[str]]):
    """Start both commands while we hold `folder`'s lock, wait until both say they wait, release; their results."""
    with locks.hold(folder, busy):
        procs = [start(cmd, tmp_path, f"p{i}") for i, cmd in enumerate(cmds)]
        for p in procs:
            wait_until(lambda p=p: "waiting for" in Path(p.err_path).read_text(), procs, "both to wait for the lock")
    return [finish(p) for p in procs]


def test_two_extract_pose_into_one_folder_take_turns(pose_inputs, tmp_path):
    from animate_cli.pose.stage import load_result

    out = tmp_path / "poses"
    cmd = [sys.executable, "-m", "animate_cli", "extract-pose", str(pose_inputs / "drive.mp4"), "--out", str(out),
           "--size", "128x96", "--device", "cpu", "--weights-dir", str(pose_inputs / "weights"), "--overwrite"]  # fmt: skip
    results = two_waiting(tmp_path, out, [cmd, cmd])
    assert [rc for rc, _, _ in results] == [0, 0], [err for _, _, err in results]
    r = load_result(out)
    assert r is not None and r.frames == 10 and media.count_frames(r.face_video) == 10
    assert sorted(p.name for p in out.iterdir()) == ["face.mp4", "pose.json", "pose.mp4"]  # no partials, no lock


CACHED = """
import json, sys
from pathlib import Path
from animate_cli.pose import PoseSettings, cached_extract_pose, find_pose_models

class Log:
    def stage(self, *a): pass
    def advance(self, *a): pass
    def log(self, m): print(m, file=sys.stderr, flush=True)

root = Path(sys.argv[1])
det, pose = find_pose_models(root / "weights")
r = cached_extract_pose(root / "drive.mp4", Path(sys.argv[2]), PoseSettings(width=128, height=96), det, pose, Log())
print(json.dumps({"cached": r.cached, "dir": str(r.pose_video.parent), "frames": r.frames}))
"""


def test_two_runs_wanting_one_pose_cache_entry_extract_it_once(pose_inputs, tmp_path):
    from animate_cli.pose import PoseSettings, find_pose_models
    from animate_cli.pose.stage import cache_key, load_result

    cache = tmp_path / ".everanimate-pose-cache"
    det, pose = find_pose_models(pose_inputs / "weights")
    entry = cache / f"pose-{cache_key(pose_inputs / 'drive.mp4', PoseSettings(width=128, height=96), det, pose)}"
    cmd = [sys.executable, "-c", CACHED, str(pose_inputs), str(cache)]
    results = two_waiting(tmp_path, entry, [cmd, cmd])
    assert [rc for rc, _, _ in results] == [0, 0], [err for _, _, err in results]
    outs = [json.loads(stdout) for _, stdout, _ in results]
    assert sorted(o["cached"] for o in outs) == [False, True]  # one extracted, the other waited and reused it
    assert {o["dir"] for o in outs} == {str(entry)} and all(o["frames"] == 10 for o in outs)
    assert load_result(entry) is not None
    assert sorted(p.name for p in entry.iterdir()) == ["face.mp4", "pose.json", "pose.mp4", "scan.npz"]


# --- download-weights: one download per weights folder ---------------------------------------------

FAKE_HUB_CLI = [sys.executable, str(Path(__file__).with_name("fake_hub_cli.py")), "download-weights"]


def test_second_download_into_one_folder_exits_4_or_waits(tmp_path):
    weights = tmp_path / "w"
    args = ["--dir", str(weights), "--only", "lora"]
    (tmp_path / "pause").mkdir()
    first = start([*FAKE_HUB_CLI, *args, "--json"], tmp_path, "first", FAKE_HUB_PAUSE_DIR=str(tmp_path / "pause"))
    wait_until((tmp_path / "pause" / "paused").exists, [first], "the first download to start fetching")

    second = run_cli([*FAKE_HUB_CLI, *args, "--json"])
    assert second.returncode == ExitCode.WEIGHTS, second.stderr
    line = [ln for ln in second.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and str(weights) in line[0] and f"pid {first.pid} on {HOST}" in line[0], second.stderr
    assert json.loads(second.stdout)["error"]["code"] == "weights_busy"

    waiter = start([*FAKE_HUB_CLI, *args, "--wait"], tmp_path, "waiter")
    wait_until(lambda: "waiting for" in waiter.err_path.read_text(), [waiter], "the --wait download to wait")
    assert f"released by pid {first.pid} on {HOST}" in waiter.err_path.read_text()
    (tmp_path / "pause" / "go").touch()
    rc, stdout, stderr = finish(first)
    assert rc == 0 and json.loads(stdout)["fetched"], stderr
    rc, _, stderr = finish(waiter)
    assert rc == 0 and "nothing to download" in stderr, stderr  # it waited, then found the files complete
    assert not (weights / locks.LOCK_NAME).exists()
