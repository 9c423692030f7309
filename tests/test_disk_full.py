"""A full disk (or a read-only, vanished or failing one) never yields a short video (issue 22).

Every write site of `run` fails once, for real on a size-limited tmpfs where the test may mount one
(root, as in CI; skipped with the reason otherwise) and always by injection (an ffmpeg that reports
"No space left on device", an `open` that raises ENOSPC after a few bytes). Each time: exit 6, one
line naming the file plus a hint saying what to free and where the same command continues, no
traceback or ffmpeg chatter, nothing half-written in the output folder. Then the same command
continues, and the video equals an uninterrupted run's, frame for frame.
"""

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import frames_of
from typer.testing import CliRunner

from animate_cli import media
from animate_cli.cli import app
from animate_cli.errors import OutOfSpaceError, WriteFailedError
from animate_cli.media import files

ENV = {"COLUMNS": "300", "NO_COLOR": "1"}
STATE = ".everanimate-state"
REPORT = ["o.chunks.json", "o.report.json", "o.report.png"]  # what run writes beside the output (report/, issue 20)


def run_cli(media_dir: Path, weights: Path, out: Path, *extra: str, frames: int = 80, size: str = "64x32", steps: int = 1,
            pose: bool = True):  # fmt: skip
    """`everanimate run` in this process (so monkeypatches apply); 80 frames = 2 chunks (77 + 3 kept)."""
    args = ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--weights-dir", str(weights), "--out", str(out),
            "--frames", str(frames), "--size", size, "--steps", str(steps), "--device", "cpu", "--dtype", "fp32",
            "--progress", "none", *extra]  # fmt: skip
    if pose:
        args += ["--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4")]
    return CliRunner().invoke(app, args, env=ENV)


def assert_one_line_write_error(result, *needles: str) -> str:
    """Exit 6: 'error: …' and one hint line end the output; before them no ffmpeg chatter and no traceback
    (rtmlib's own 'load … with onnxruntime backend' lines may precede them when the pose stage runs)."""
    assert result.exit_code == 6, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and lines[-1].startswith("  hint: "), lines
    assert all(line.startswith("load ") and line.endswith("onnxruntime backend") for line in lines[:-2]), lines
    assert "run the same command again" in lines[-1] and "this is a bug" not in result.stderr
    for n in needles:
        assert n in result.stderr, (n, result.stderr)
    return result.stderr


def stray(folder: Path) -> list[str]:
    """Temporary files anywhere under `folder` (none may survive a failed or finished run)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith((".tmp", ".partial.mp4", ".txt")) or p.name.startswith("tmp"))  # fmt: skip


@pytest.fixture(scope="module")
def baseline(tiny_weights, media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline") / "o.mp4"
    r = run_cli(media_dir, tiny_weights, out)
    assert r.exit_code == 0, r.output
    return frames_of(out)


# --- injected failures at each write site -------------------------------------------------------------------------


def ffmpeg_failing_once(tmp_path: Path, pattern: str) -> Path:
    """An ffmpeg that, the first time its arguments contain `pattern`, swallows its input and fails the way a
    full disk makes it fail; the real one otherwise."""
    exe, flag = tmp_path / "ffmpeg", tmp_path / "ffmpeg-failed"
    exe.write_text(f'#!/bin/sh\ncase "$*" in *{pattern}*) if [ ! -e {flag} ]; then touch {flag}; cat >/dev/null\n'
                   'echo "[out#0/mp4 @ 0x55d0c0ffee00] Error writing trailer: No space left on device" >&2; exit 228; fi;; esac\n'
                   f'exec {media.ffmpeg_exe()} "$@"\n')  # fmt: skip
    exe.chmod(0o755)
    return exe


def open_failing_once(monkeypatch, name: str, code: int = errno.ENOSPC) -> list:
    """media.files' `open` raises OSError(code) the first time it opens a file whose name contains `name`,
    after a few bytes were written (as a filling disk does)."""
    fired: list = []
    real = open

    def fake(path, mode="r", *args, **kwargs):
        f = real(path, mode, *args, **kwargs)
        if name in Path(path).name and "w" in mode and not fired:
            fired.append(path)
            f.write(b"\0" * 10)
            f.close()
            raise OSError(code, os.strerror(code), str(path))
        return f

    monkeypatch.setattr(files, "open", fake, raising=False)
    return fired


FFMPEG_SITES = {  # site -> (what the failing ffmpeg's arguments contain, the file the error names)
    "segment": ("chunk_00001_", "segments/chunk_00001_003.mp4"),
    "preview": ("o.preview.mp4.partial.mp4", "o.preview.mp4"),
    "concat and mux": ("o.mp4.partial.mp4", "o.mp4:"),
}
STATE_SITES = {  # site -> (name of the file whose write fails, the file the error names)
    "state json": ("state.json", "state.json"),
    "state tensors": ("state-00001", "state-00001.safetensors"),
    "chunk latents": ("chunk_00001.safetensors", "latents/chunk_00001.safetensors"),
    "prompt cache": ("prompt.safetensors", "prompt.safetensors"),
}


@pytest.mark.parametrize("site", [*FFMPEG_SITES, *STATE_SITES])
def test_enospc_at_each_write_site_then_the_same_command_continues(site, baseline, tiny_weights, media_dir, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "o.mp4"
    with monkeypatch.context() as m:
        if site in FFMPEG_SITES:
            pattern, named = FFMPEG_SITES[site]
            m.setenv("IMAGEIO_FFMPEG_EXE", str(ffmpeg_failing_once(tmp_path, pattern)))
        else:
            pattern, named = STATE_SITES[site]
            fired = open_failing_once(m, pattern)
        first = run_cli(media_dir, tiny_weights, out)
    if site in STATE_SITES:
        assert fired, f"{pattern} was never written"
    err = assert_one_line_write_error(first, named, "no space left on device", "free ")
    if site == "concat and mux":
        assert "Error writing trailer: No space left on device" in err  # ffmpeg's last line, kept in the error
        assert "all 2 chunks are saved" in err
    assert not out.exists()
    assert stray(folder) == []
    assert set(os.listdir(folder)) <= {"o.mp4" + STATE, "o.preview.mp4"}

    second = run_cli(media_dir, tiny_weights, out)
    assert second.exit_code == 0, second.output
    assert np.array_equal(frames_of(out), baseline)
    assert sorted(os.listdir(folder)) == sorted(["o.mp4", "o.mp4" + STATE, *REPORT]) and stray(folder) == []


def test_enospc_in_the_pose_cache_then_the_same_command_continues(tiny_weights, media_dir, tmp_path, monkeypatch):
    # RTMW: the tiny set's Wan stand-in detector sees only the reddish figures of its parity clips
    rtmw = ("--pose-model", "rtmw")
    (tmp_path / "ref").mkdir()
    ref = run_cli(media_dir, tiny_weights, tmp_path / "ref" / "o.mp4", *rtmw, frames=20, pose=False)
    assert ref.exit_code == 0, ref.output
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "o.mp4"
    with monkeypatch.context() as m:
        m.setenv("IMAGEIO_FFMPEG_EXE", str(ffmpeg_failing_once(tmp_path, "face.mp4")))
        first = run_cli(media_dir, tiny_weights, out, *rtmw, frames=20, pose=False)
    assert_one_line_write_error(first, ".everanimate-pose-cache", "face.mp4", "no space left on device", "chunk 1 of 1")
    assert stray(folder) == [] and not out.exists()
    second = run_cli(media_dir, tiny_weights, out, *rtmw, frames=20, pose=False)
    assert second.exit_code == 0, second.output
    assert np.array_equal(frames_of(out), frames_of(tmp_path / "ref" / "o.mp4"))
    assert sorted(os.listdir(folder)) == sorted([".everanimate-pose-cache", "o.mp4", "o.mp4" + STATE, *REPORT])
    assert stray(folder) == []


def test_read_only_and_other_errors_are_named(tiny_weights, media_dir, tmp_path, monkeypatch):
    out = tmp_path / "o.mp4"
    with monkeypatch.context() as m:
        open_failing_once(m, "state.json", errno.EROFS)
        r = run_cli(media_dir, tiny_weights, out)
    assert_one_line_write_error(r, "state.json: the filesystem is read-only", "remount", "read-write")
    with monkeypatch.context() as m:
        open_failing_once(m, "chunk_00001.safetensors", errno.EIO)
        r = run_cli(media_dir, tiny_weights, out)
    assert_one_line_write_error(r, "chunk_00001.safetensors: input/output error", "continues from chunk 2 of 2")


def test_a_vanished_output_folder_is_one_line_and_not_recreated(tiny_weights, media_dir, tmp_path):
    from helpers import make_cfg

    from animate_cli.runner import pipeline

    folder = tmp_path / "gone"
    folder.mkdir()
    cfg = make_cfg(media_dir, tiny_weights, folder / "o.mp4", frames=80, steps=1)

    def remove_folder(c):
        if c == 0:
            shutil.rmtree(folder)

    with pytest.raises(WriteFailedError) as e:
        pipeline.run(cfg, on_chunk_done=remove_folder)
    assert "no longer exists" in e.value.message and e.value.exit_code == 6
    assert "it starts at chunk 1 of 2" in e.value.hint  # the state went with the folder
    assert not folder.exists()  # never re-created behind the user's back


def test_a_damaged_segment_is_decoded_again_from_its_latents(baseline, tiny_weights, media_dir, tmp_path, monkeypatch):
    out = tmp_path / "o.mp4"
    assert run_cli(media_dir, tiny_weights, out).exit_code == 0
    seg = out.with_name(out.name + STATE) / "segments" / "chunk_00000_077.mp4"
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) * 3 // 4])  # cut short, as by the full disk in the issue
    out.unlink()
    from animate_cli.rollout import distributed

    def no_dit(*a, **k):
        raise AssertionError("the DiT ran to repair a segment")

    monkeypatch.setattr(distributed, "denoise", no_dit)
    r = run_cli(media_dir, tiny_weights, out, "--progress", "rich")
    assert r.exit_code == 0, r.output
    repaired = [line for line in r.stderr.splitlines() if "did not read back whole" in line]
    assert len(repaired) == 1 and "chunk 1: unreadable" in repaired[0] and "no chunk is generated again" in repaired[0]
    assert np.array_equal(frames_of(out), baseline)


def test_the_run_stops_before_loading_models_when_it_clearly_cannot_fit(tiny_weights, media_dir, tmp_path, monkeypatch):
    from animate_cli import models
    from animate_cli.runner import disk

    def no_load(*a, **k):
        raise AssertionError("models loaded for a run that cannot fit")

    monkeypatch.setattr(models, "load_models", no_load)
    monkeypatch.setattr(disk, "free_bytes", lambda p: 200_000)
    r = run_cli(media_dir, tiny_weights, tmp_path / "o.mp4")
    err = assert_one_line_write_error(r, "not enough space on", "MB free", "free at least", "it starts at chunk 1 of 2")
    assert "cannot write" not in err
    assert os.listdir(tmp_path) == []  # not even the state folder is left behind


def test_the_dry_run_reports_the_same_exit_code_for_a_full_disk(tiny_weights, media_dir, tmp_path, monkeypatch):
    import json

    from animate_cli.runner import readiness

    monkeypatch.setattr(readiness.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**6, 10**6 - 1000, 1000))
    r = run_cli(media_dir, tiny_weights, tmp_path / "o.mp4", "--dry-run", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 6 and out["exit_code"] == 6
    assert [i for i in out["readiness"] if i["name"] == "disk"][0]["status"] == "blocker"


# --- the media layer on its own -----------------------------------------------------------------------------------


def noise(n=12, w=64, h=32):
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(n)]


def test_concat_never_replaces_an_output_with_a_shorter_one(tmp_path):
    ok = tmp_path / "ok.mp4"
    with media.VideoWriter(ok, 64, 32, 25) as w:
        for f in noise():
            w.write(f)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(ok.read_bytes()[:5000])
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the previous output")
    with pytest.raises(WriteFailedError, match="reads back as 12 of 36 frames"):
        media.concat_with_audio([ok, bad, ok], out, 36, 25, None)  # ffmpeg itself exits 0 here
    assert out.read_bytes() == b"the previous output" and sorted(os.listdir(tmp_path)) == ["bad.mp4", "ok.mp4", "out.mp4"]
    m = media.concat_with_audio([ok, ok], out, 24, 25, None)
    assert (m.frames, m.width, m.height, m.duration_s) == (24, 64, 32, 0.96)


def test_write_failure_messages():
    e = files.write_failure(Path("/x/y.mp4"), OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert isinstance(e, OutOfSpaceError) and e.message == "cannot write /x/y.mp4: disk quota exceeded"
    e = files.write_failure(Path("/x/y.mp4"), None, "ffmpeg: [out#0/mp4 @ 0x5581] Error closing file: No space left on device")
    assert isinstance(e, OutOfSpaceError)
    assert e.message == "cannot write /x/y.mp4: no space left on device (ffmpeg: Error closing file: No space left on device)"
    e = files.write_failure(Path("/x/y.mp4"), None, "it reads back as 3 of 5 frames")
    assert type(e) is WriteFailedError and e.message == "cannot write /x/y.mp4: it reads back as 3 of 5 frames"


# --- a real full filesystem -------------------------------------------------------------------------------------------


@pytest.fixture()
def small_fs(tmp_path):
    """A 700 KB tmpfs (the issue's scenario), unmounted afterwards; skipped where mounting is not permitted."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the injected-ENOSPC tests cover the write sites")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip() or 'not permitted'}); the injected-ENOSPC tests cover it")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_issue_scenario_on_a_700k_filesystem(small_fs, tiny_weights, media_dir, tmp_path):
    """A 3-chunk 64x64 run on 700 KB: exit 6 with one line; read-only: exit 6 with one line; enlarged: the
    same command writes all 200 frames, equal to an uninterrupted run's, and nothing else is left."""
    ref = tmp_path / "ref"
    ref.mkdir()
    args = dict(frames=200, size="64x64", steps=2)
    assert run_cli(media_dir, tiny_weights, ref / "o.mp4", **args).exit_code == 0
    out = small_fs / "o.mp4"
    first = run_cli(media_dir, tiny_weights, out, **args)
    assert_one_line_write_error(first, f"cannot write {small_fs}", "no space left on device", f"MB on {small_fs}")
    assert not out.exists() and stray(small_fs) == []

    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    ro = run_cli(media_dir, tiny_weights, out, **args)
    assert_one_line_write_error(ro, "read-only")

    subprocess.run(["mount", "-o", "remount,rw,size=8m", str(small_fs)], check=True)
    second = run_cli(media_dir, tiny_weights, out, **args)
    assert second.exit_code == 0, second.output
    frames = frames_of(out)
    assert len(frames) == 200 and np.array_equal(frames, frames_of(ref / "o.mp4"))
    assert sorted(os.listdir(small_fs)) == sorted(["o.mp4", "o.mp4" + STATE, *REPORT]) and stray(small_fs) == []
