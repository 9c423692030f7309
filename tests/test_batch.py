"""`everanimate batch`: the jobs list (parsing, validation), and real batch processes on tiny weights sharing
one list -- every job done once, frames identical to a plain `run`, one model load per worker, a failing job
reported with its code, a worker killed mid-job finished by another from its last chunk, a rerun skipping all.

Processes are synchronised through files, never sleeps (tests/paused_cli.py pauses a worker once it has saved
a chunk)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import frames_of

from animate_cli.batch.jobs import read_jobs
from animate_cli.errors import ExitCode, UsageError

TIMEOUT_S = 400  # generous: the suite shares 2 cores; each tiny job takes seconds
HERE = Path(__file__).resolve().parent
MODEL_FLAGS = ["--device", "cpu", "--dtype", "fp32"]


def job_row(media_dir: Path, out: str, frames: int = 80, **extra) -> dict:
    """A two-chunk (80 frames: 77 + 3) tiny job with given pose/face videos (no pose extraction)."""
    return {"ref": str(media_dir / "ref.png"), "driving": str(media_dir / "driving.mp4"), "out": out, "frames": frames,
            "size": "64x32", "steps": 1, "pose_video": str(media_dir / "pose.mp4"),
            "face_video": str(media_dir / "face.mp4"), **extra}  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def batch_cmd(jobs: Path, weights: Path, *extra: str, script: list[str] | None = None) -> list[str]:
    head = script or [sys.executable, "-m", "animate_cli"]
    return [*head, "batch", str(jobs), "--weights-dir", str(weights), *MODEL_FLAGS, "--json", "--progress", "none", *extra]


def start(cmd: list[str], tmp: Path, name: str, **env) -> subprocess.Popen:
    with open(tmp / f"{name}.out", "w") as out, open(tmp / f"{name}.err", "w") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "COLUMNS": "300", **env})
    p.out_path, p.err_path = tmp / f"{name}.out", tmp / f"{name}.err"
    return p


def finish(p: subprocess.Popen) -> tuple[int, dict, str]:
    p.wait(TIMEOUT_S)
    out, err = Path(p.out_path).read_text(), Path(p.err_path).read_text()
    assert out.strip(), err
    return p.returncode, json.loads(out), err


def wait_for(path: Path, procs: list[subprocess.Popen], what: str) -> None:
    t0 = time.monotonic()
    while not path.exists():
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"process exited ({p.returncode}) before {what}: {Path(p.err_path).read_text()[-2000:]}")
        assert time.monotonic() - t0 < TIMEOUT_S, f"timed out waiting for {what}"
        time.sleep(0.05)


def entries(summary: dict) -> dict[int, dict]:
    return {j["line"]: j for j in summary["jobs"]}


@pytest.fixture(scope="module")
def plain_run(tiny_weights, media_dir, tmp_path_factory) -> np.ndarray:
    """The frames of one `everanimate run` of the two-chunk job, in a process of its own."""
    out = tmp_path_factory.mktemp("plain") / "o.mp4"
    cmd = [sys.executable, "-m", "animate_cli", "run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"),
           "--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4"), "--frames", "80",
           "--size", "64x32", "--steps", "1", *MODEL_FLAGS, "--weights-dir", str(tiny_weights), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    return frames_of(out)


@pytest.fixture(scope="module")
def unreadable_video(tmp_path_factory) -> Path:
    bad = tmp_path_factory.mktemp("bad") / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 4)
    return bad


# --- the list ---------------------------------------------------------------------------------------------------


def test_csv_rows_are_parsed_by_the_option_table_relative_to_the_list(media_dir, tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("ref.png", "view1.png", "driving.mp4"):
        (tmp_path / "in" / name).write_bytes((media_dir / name).read_bytes())
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("Ref,driving,out,seconds,ref-view,No_Audio,seed,resolution\n"
                    "in/ref.png,in/driving.mp4,out/a.mp4,1.5,in/view1.png;in/ref.png,yes,7,720p\n"
                    "\n"
                    "in/ref.png,in/driving.mp4,out/b.mp4,,,,,\n")  # fmt: skip
    jl = read_jobs(jobs)
    assert jl.invalid == [] and [j.line for j in jl.jobs] == [2, 4]
    a, b = jl.jobs
    assert a.ref == tmp_path / "in" / "ref.png" and a.out == tmp_path / "out" / "a.mp4"
    assert a.options == {"seconds": 1.5, "ref_view": [tmp_path / "in" / "view1.png", tmp_path / "in" / "ref.png"],
                         "no_audio": True, "seed": 7, "resolution": "720p"}  # fmt: skip
    assert b.options == {}  # empty cells: the run's defaults


def test_every_bad_row_is_named_with_its_line_and_all_its_problems(media_dir, tmp_path, unreadable_video):
    ok = job_row(media_dir, "ok.mp4", frames=10)
    rows = [
        ok,
        {**job_row(media_dir, "a.mp4"), "speed": 2},  # 2: unknown column
        {**job_row(media_dir, "b.mp4"), "device": "cuda"},  # 3: model-level
        {**job_row(media_dir, "c.mp4"), "steps": "many", "seconds": 2},  # 4: bad value + two lengths
        {**job_row(media_dir, "d.mp4"), "ref": str(tmp_path / "missing.png")},  # 5: missing file
        {k: v for k, v in job_row(media_dir, "e.mp4").items() if k != "face_video"},  # 6: pose without face
        job_row(media_dir, "dup.mp4"),  # 7 and 8: the same output
        job_row(media_dir, "./dup.mp4", seed=3),
        {**job_row(media_dir, "f.mp4"), "out": str(media_dir / "driving.mp4")},  # 9: output is an input
        {**job_row(media_dir, "g.mp4"), "driving": str(unreadable_video)},  # 10: valid here; fails when it runs
        {**job_row(media_dir, "h.mp4"), "json": True},  # 11: a command option
    ]
    jobs = write_jsonl(tmp_path / "jobs.jsonl", rows)
    with open(jobs, "a") as f:
        f.write("[1, 2]\n{not json\n")  # 12, 13
    jl = read_jobs(jobs)
    assert [j.line for j in jl.jobs] == [1, 10]
    bad = {b.line: b.message for b in jl.invalid}
    assert sorted(bad) == [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]
    assert "unknown column 'speed'" in bad[2]
    assert "--device is not a per-video option: give it once on the command line" in bad[3]
    assert "--steps must be an integer" in bad[4] and "only one of seconds, minutes, frames" in bad[4]
    assert "missing.png: not found" in bad[5]
    assert "pose_video and face_video must be given together" in bad[6]
    assert "is also the out of line 8" in bad[7] and "is also the out of line 7" in bad[8]
    assert "refusing to write over an input" in bad[9]
    assert "--json is not a per-video option" in bad[11]
    assert bad[12] == "not a JSON object" and bad[13].startswith("not JSON")


@pytest.mark.parametrize(("name", "text", "expect"), [
    ("jobs.txt", "ref,driving,out\n", "must end in .csv"),
    ("jobs.csv", "", "has no jobs"),
    ("jobs.csv", "ref,ref,out\nx,y,z\n", "empty or repeated column"),
])  # fmt: skip
def test_a_file_that_is_no_jobs_list_is_a_usage_error(tmp_path, name, text, expect):
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError) as e:
        read_jobs(tmp_path / name)
    assert expect in e.value.message


def test_cli_refuses_invalid_rows_before_any_model_loads_and_gpus_with_a_pointer(media_dir, tmp_path, tiny_weights):
    from typer.testing import CliRunner

    from animate_cli.cli import app

    jobs = write_jsonl(tmp_path / "jobs.jsonl", [job_row(media_dir, "a.mp4"), {**job_row(media_dir, "b.mp4"), "steps": 0}])
    r = CliRunner().invoke(app, ["batch", str(jobs), "--weights-dir", str(tiny_weights), *MODEL_FLAGS], env={"COLUMNS": "300"})
    assert r.exit_code == ExitCode.USAGE, r.output
    lines = r.output.splitlines()
    assert any(ln.startswith("jobs.jsonl line 2: --steps must be between 1 and 1000") for ln in lines), r.output
    assert "1 of 2 rows" in r.output and "--skip-invalid" in r.output
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "a.mp4.everanimate-state").exists()

    r = CliRunner().invoke(app, ["batch", str(jobs), "--gpus", "2"], env={"COLUMNS": "300"})
    assert r.exit_code == ExitCode.USAGE and "--workers" in r.output and "run --gpus" in r.output, r.output


# --- real workers -----------------------------------------------------------------------------------------------


def test_two_batches_at_once_share_the_list(plain_run, tiny_weights, media_dir, tmp_path, unreadable_video):
    """Process A with two workers and process B with one, started together on one list with an invalid row
    and an unreadable driving video: every valid job made exactly once, the failure reported by both with exit 3."""
    out = tmp_path / "out"
    rows = [job_row(media_dir, "out/a.mp4"), job_row(media_dir, "out/b.mp4", frames=10, seed=1),
            {**job_row(media_dir, "out/bad.mp4", frames=10), "driving": str(unreadable_video)},
            {**job_row(media_dir, "out/c.mp4"), "sped": 1},
            job_row(media_dir, "out/d.mp4", frames=12, seed=2)]  # fmt: skip
    jobs = write_jsonl(tmp_path / "jobs.jsonl", rows)
    # One start time for both, as the workers of one command share their parent's: whichever process reaches a
    # job second knows that the other made or failed it during this batch (whatever the processes' start-up times).
    together = {"EVERANIMATE_BATCH_STARTED_AT": repr(time.time())}
    a = start(batch_cmd(jobs, tiny_weights, "--skip-invalid", "--workers", "2"), tmp_path, "a", **together)
    b = start(batch_cmd(jobs, tiny_weights, "--skip-invalid"), tmp_path, "b", **together)
    (rc_a, sa, err_a), (rc_b, sb, err_b) = finish(a), finish(b)
    assert rc_a == rc_b == ExitCode.BAD_INPUT, (err_a, err_b)  # the first failing job's code
    assert sa["exit_code"] == sb["exit_code"] == ExitCode.BAD_INPUT
    ea, eb = entries(sa), entries(sb)
    workers = {w["id"]: w for w in sa["workers"] + sb["workers"]}
    assert len(sa["workers"]) == 2 and len(sb["workers"]) == 1 and len(workers) == 3
    for line in (1, 2, 5):  # made once: by one worker of one process; the other process says "taken"
        assert sorted([ea[line]["status"], eb[line]["status"]]) == ["done", "taken"], (line, ea[line], eb[line])
        assert ea[line]["worker"] == eb[line]["worker"]
        ran = ea[line] if ea[line]["status"] == "done" else eb[line]
        assert ran["worker"] in workers and ran["frames"] == rows[line - 1]["frames"] and ran["exit_code"] == 0
    assert sum(w["jobs_done"] for w in workers.values()) == 3
    for line in (3,):  # tried once, reported by both with its code and one line
        assert ea[line]["status"] == eb[line]["status"] == "failed"
        assert ea[line]["exit_code"] == eb[line]["exit_code"] == ExitCode.BAD_INPUT
        assert ea[line]["worker"] == eb[line]["worker"] and "broken.mp4" in ea[line]["message"]
    assert ea[4]["status"] == eb[4]["status"] == "invalid" and "unknown column 'sped'" in ea[4]["message"]
    for w in workers.values():  # a worker that made a video loaded the models exactly once; the others never
        assert w["model_loads"] == (1 if w["jobs_done"] else 0), w
    assert np.array_equal(frames_of(out / "a.mp4"), plain_run)
    assert len(frames_of(out / "b.mp4")) == 10 and len(frames_of(out / "d.mp4")) == 12
    assert not (out / "bad.mp4").exists()

    again = start(batch_cmd(jobs, tiny_weights, "--skip-invalid"), tmp_path, "again")
    rc, s, err = finish(again)
    e = entries(s)
    assert [e[line]["status"] for line in (1, 2, 5)] == ["skipped"] * 3
    assert e[3]["status"] == "failed" and rc == ExitCode.BAD_INPUT  # a new batch tries a failed job again
    assert s["workers"][0]["model_loads"] == 0  # made videos need no model, and a bad input fails before loading


def start_paused(jobs: Path, weights: Path, tmp_path: Path) -> subprocess.Popen:
    """A batch whose worker stops, alive, once it has saved chunk 0 of its first job (tests/paused_cli.py)."""
    pause = tmp_path / "pause"
    pause.mkdir()
    first = start(batch_cmd(jobs, weights, script=[sys.executable, str(HERE / "paused_cli.py")]), tmp_path,
                  "first", PAUSE_DIR=str(pause))  # fmt: skip
    wait_for(pause / "paused", [first], "the first worker to save chunk 0")
    assert (pause / "paused").read_text() == "0"
    return first


def test_a_worker_killed_mid_job_is_finished_by_another_from_its_last_chunk(plain_run, tiny_weights, media_dir, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [job_row(media_dir, "k.mp4")])
    first = start_paused(jobs, tiny_weights, tmp_path)

    second = start(batch_cmd(jobs, tiny_weights), tmp_path, "second")  # finds the job taken, comes back to it
    first.send_signal(signal.SIGKILL)
    first.wait(TIMEOUT_S)
    rc, s, err = finish(second)
    assert rc == 0, err
    (job,) = s["jobs"]
    assert job["status"] == "done" and job["resumed_from_chunk"] == 1 and job["frames"] == 80, job
    assert s["workers"][0]["model_loads"] == 1
    assert np.array_equal(frames_of(tmp_path / "k.mp4"), plain_run)

    rc, s, err = finish(start(batch_cmd(jobs, tiny_weights), tmp_path, "rerun"))
    assert rc == 0 and s["jobs"][0]["status"] == "skipped" and s["workers"][0]["model_loads"] == 0, err


def test_command_line_video_options_are_every_rows_defaults(media_dir, tmp_path):
    from animate_cli.batch.jobs import command_line_defaults

    rows = [job_row(media_dir, "a.mp4"), {**job_row(media_dir, "b.mp4", seed=5), "frames": None, "seconds": 1.0},
            {k: v for k, v in job_row(media_dir, "c.mp4").items() if k not in ("steps", "frames")}]  # fmt: skip
    jobs = write_jsonl(tmp_path / "jobs.jsonl", rows)
    defaults = command_line_defaults({"steps": 3, "seed": 0, "frames": 50, "ref_view": (), "no_audio": True})
    assert defaults == {"steps": 3, "frames": 50, "no_audio": True}  # the options' own defaults are not "given"
    a, b, c = read_jobs(jobs, defaults).jobs
    assert (a.options["steps"], a.options["frames"], a.options["no_audio"]) == (1, 80, True)  # the row wins
    assert b.options["seconds"] == 1.0 and "frames" not in b.options and b.options["seed"] == 5  # a length replaces one
    assert (c.options["steps"], c.options["frames"]) == (3, 50)
    both = read_jobs(jobs, {"minutes": 1.0, "seconds": 2.0})
    assert [j.line for j in both.jobs] == [1, 2] and "only one of seconds, minutes, frames" in both.invalid[0].message


def test_sigterm_stops_the_batch_with_143_and_the_same_command_continues(plain_run, tiny_weights, media_dir, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [job_row(media_dir, "t.mp4")])
    first = start_paused(jobs, tiny_weights, tmp_path)
    first.send_signal(signal.SIGTERM)  # what Slurm and Kubernetes send first
    rc, s, err = finish(first)
    assert rc == ExitCode.TERMINATED and s["exit_code"] == ExitCode.TERMINATED and "terminated (SIGTERM)" in err, err
    state = tmp_path / "t.mp4.everanimate-state"
    assert json.loads((state / "state.json").read_text())["next_chunk"] == 1 and not (tmp_path / "t.mp4").exists()

    rc, s, err = finish(start(batch_cmd(jobs, tiny_weights), tmp_path, "again"))
    assert rc == 0 and s["jobs"][0]["status"] == "done" and s["jobs"][0]["resumed_from_chunk"] == 1, err
    assert np.array_equal(frames_of(tmp_path / "t.mp4"), plain_run)


def test_dry_run_plans_every_job_and_checks_readiness_once_without_torch(tiny_weights, media_dir, tmp_path):
    from helpers import cli_in_fresh_interpreter

    rows = [job_row(media_dir, "a.mp4"), job_row(media_dir, "b.mp4", frames=10), {**job_row(media_dir, "c.mp4"), "x": 1}]
    jobs = write_jsonl(tmp_path / "jobs.jsonl", rows)
    lines, probe = cli_in_fresh_interpreter(["batch", str(jobs), "--weights-dir", str(tiny_weights), *MODEL_FLAGS,
                                             "--dry-run", "--json", "--skip-invalid"])  # fmt: skip
    assert probe == {"torch": False, "diffusers": False, "code": 0}
    report = json.loads(lines[-1])
    assert [(j["line"], j["status"]) for j in report["jobs"]] == [(1, "planned"), (2, "planned"), (3, "invalid")]
    assert Path(report["jobs"][2]["out"]).name == "c.mp4"  # an invalid row still says which video it was
    assert report["totals"] == {**report["totals"], "jobs": 2, "frames": 90, "chunks": 3}
    assert [i["name"] for i in report["readiness"]] == ["weights", "gpu", "disk"] and report["ready"] is True
    assert "all 2 jobs" in report["readiness"][2]["message"]
    assert not (tmp_path / "a.mp4.everanimate-state").exists() and not (tmp_path / ".everanimate-batch").exists()


def test_workers_that_cannot_load_stop_the_batch_with_their_code(media_dir, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [job_row(media_dir, "a.mp4", frames=10), job_row(media_dir, "b.mp4", frames=10)])
    p = start(batch_cmd(jobs, tmp_path / "no-weights", "--workers", "2"), tmp_path, "w")
    rc, s, err = finish(p)
    assert rc == ExitCode.WEIGHTS and s["exit_code"] == ExitCode.WEIGHTS and s["error"]["code"] == "workers_stopped", err
    assert err.count("error:") == 3 and "all 2 workers stopped (exit 4)" in err  # each worker's line, then the batch's
    assert not (tmp_path / "a.mp4").exists()


def test_sigterm_to_a_batch_of_worker_processes_reaches_each_of_them(tiny_weights, media_dir, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [job_row(media_dir, f"{n}.mp4", frames=10, seed=i)
                                                 for i, n in enumerate("ab")])  # fmt: skip
    cmd = [c if c != "none" else "json" for c in batch_cmd(jobs, tiny_weights, "--workers", "2")]  # events on stderr
    parent = start(cmd, tmp_path, "parent")

    def started() -> list[dict]:
        lines = Path(parent.err_path).read_text().splitlines()
        return [json.loads(ln) for ln in lines if ln.startswith("{") and '"job_start"' in ln]

    t0 = time.monotonic()
    while len(started()) < 2:
        assert parent.poll() is None and time.monotonic() - t0 < TIMEOUT_S, Path(parent.err_path).read_text()[-2000:]
        time.sleep(0.05)
    pids = [int(e["worker"].rsplit(":", 1)[1]) for e in started()]
    parent.send_signal(signal.SIGTERM)
    rc, s, err = finish(parent)
    assert rc == ExitCode.TERMINATED and s["error"]["code"] == "terminated", err
    for pid in pids:  # every worker saved its state and ended with the parent
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    rc, s, err = finish(start(batch_cmd(jobs, tiny_weights), tmp_path, "again"))
    assert rc == 0 and {j["status"] for j in s["jobs"]} <= {"done", "skipped"}, err


def test_the_next_jobs_pose_is_extracted_during_this_jobs_rollout(tiny_weights, media_dir, tmp_path):
    from conftest import stick_figure, write_video

    other = write_video(tmp_path / "driving2.mp4", (stick_figure(48, 80, i / 3 + 1, bg=(80, 90, 90)) for i in range(40)))
    rows = [{"ref": str(media_dir / "ref.png"), "driving": str(d), "out": f"{n}.mp4", "frames": 20, "size": "64x32",
             "steps": 1, "pose_model": "rtmw", "no_report": True}
            for n, d in (("p", media_dir / "driving.mp4"), ("q", other))]  # fmt: skip
    jobs = write_jsonl(tmp_path / "jobs.jsonl", rows)
    cmd = [c if c != "none" else "json" for c in batch_cmd(jobs, tiny_weights)]  # events on stderr
    rc, s, err = finish(start(cmd, tmp_path, "b"))
    assert rc == 0 and [j["status"] for j in s["jobs"]] == ["done", "done"], err
    events = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    second = [e for e in events if e.get("line") == 2]
    assert not [e for e in second if e["event"] == "stage" and e["name"] == "pose"]  # job 2 extracted nothing itself
    assert any(e["event"] == "log" and e["message"].startswith("pose: reusing") for e in second)  # the prefetch's
