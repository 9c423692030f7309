"""The batch worker's decisions (batch/worker.py) with a stand-in Animator that writes real mp4s: made jobs are
skipped, a failure is recorded once and not retried within the batch, a held job is come back to and made
once its holder lets go, the next job's pose is prepared during the current job's rollout, and the results
of several workers merge into one summary (batch/session.py). The real runs are in test_batch.py."""

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from animate_cli.batch import claims, session, worker
from animate_cli.batch.jobs import BadRow, Job, JobList
from animate_cli.errors import BadInputError, ExitCode, WeightsMissingError


class StandIn:
    """Animator's interface: `run` writes `frames` frames (a real H.264 mp4) after reporting a rollout."""

    def __init__(self, fail: dict | None = None, gate: threading.Event | None = None):
        self.model_loads, self.runs, self.prepared = 0, [], []
        self.fail, self.gate = fail or {}, gate

    def run(self, ref, driving, out, *, reporter, **options):
        from animate_cli.media import VideoWriter

        self.runs.append(Path(out).name)
        if Path(out).name in self.fail:
            raise self.fail[Path(out).name]
        self.model_loads = 1
        reporter.stage("chunks", 1, "chunks")
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        reporter.stage("steps", 1)
        reporter.advance("steps")
        reporter.advance("chunks")
        with VideoWriter(Path(out), 32, 32, 25.0) as vw:
            for i in range(options["frames"]):
                vw.write(np.full((32, 32, 3), i * 9 % 255, np.uint8))
        return SimpleNamespace(frames=options["frames"], resumed_from_chunk=0)

    def config(self, ref, driving, out, **options):
        return SimpleNamespace(frames=options["frames"], frame_width=32, height=32)

    def prepare_pose(self, ref, driving, out, **options):
        self.prepared.append(Path(out).name)


def make_jobs(media_dir: Path, folder: Path, names: list[str]) -> list[Job]:
    return [
        Job(i + 1, media_dir / "ref.png", media_dir / "driving.mp4", folder / n, {"frames": 5 + i}) for i, n in enumerate(names)
    ]


def test_made_jobs_are_skipped_and_a_failure_is_recorded_once(media_dir, tmp_path):
    jobs = make_jobs(media_dir, tmp_path, ["a.mp4", "bad.mp4", "c.mp4"])
    events = []
    first = worker.Worker(StandIn(fail={"bad.mp4": BadInputError("cannot read video bad.mp4")}), "n1:1", events.append)
    r1 = first.run_all(jobs)
    assert [(r.status, r.exit_code) for r in r1] == [("done", 0), ("failed", ExitCode.BAD_INPUT), ("done", 0)]
    assert r1[1].message == "cannot read video bad.mp4" and r1[0].frames == 5 and first.jobs_done == 2
    assert [e["event"] for e in events if e["event"] in ("job_start", "job_end")] == ["job_start", "job_end"] * 3
    assert all(e["line"] and e["out"] for e in events if e["event"] in ("stage", "step", "chunk_done", "job_end"))

    # Another worker of the same batch (started before the failure): nothing to run, the failure reported as n1's.
    second_animator = StandIn()
    second = worker.Worker(second_animator, "n2:1", lambda e: None, started_at=first.started_at)
    r2 = second.run_all(jobs)
    assert [r.status for r in r2] == ["taken", "failed", "taken"] and second_animator.runs == []
    assert r2[1].worker == "n1:1" and r2[1].exit_code == ExitCode.BAD_INPUT and r2[0].worker == "n1:1"

    merged = session.outcome(JobList(tmp_path / "j.jsonl", jobs, [BadRow(4, "unknown column 'x'")]),
                             [[r.to_dict() for r in r1], [r.to_dict() for r in r2]],
                             [first.summary(r1), second.summary(r2)])  # fmt: skip
    assert [j["status"] for j in merged.jobs] == ["done", "failed", "done", "invalid"]
    assert merged.exit_code == ExitCode.BAD_INPUT and merged.counts()["invalid"] == 1

    # A later batch: made videos skipped without a model; the failed job is tried again.
    third_animator = StandIn(fail={"bad.mp4": BadInputError("still broken")})
    r3 = worker.Worker(third_animator, "n3:1", lambda e: None).run_all(jobs)
    assert [r.status for r in r3] == ["skipped", "failed", "skipped"] and third_animator.runs == ["bad.mp4"]


def test_a_job_held_by_another_is_made_once_its_holder_lets_go(media_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "REVISIT_POLL_S", 0.05)
    jobs = make_jobs(media_dir, tmp_path, ["a.mp4", "b.mp4"])
    animator, results = StandIn(), []
    w = worker.Worker(animator, "n1:1", lambda e: None)
    with claims.claim(jobs[0].out):  # another worker (here: this test) has job 1
        t = threading.Thread(target=lambda: results.extend(w.run_all(jobs)))
        t.start()
        deadline = time.monotonic() + 60
        while animator.runs != ["b.mp4"] or not jobs[1].out.exists():
            assert time.monotonic() < deadline and t.is_alive()
            time.sleep(0.02)
        time.sleep(0.2)  # several revisits while it is held: none runs it
        assert animator.runs == ["b.mp4"]
    t.join(60)
    assert animator.runs == ["b.mp4", "a.mp4"] and [r.status for r in results] == ["done", "done"]


def test_the_next_pose_is_prepared_during_the_rollout_and_missing_weights_stop_the_worker(media_dir, tmp_path):
    jobs = make_jobs(media_dir, tmp_path, ["a.mp4", "b.mp4", "c.mp4"])
    gate = threading.Event()
    animator = StandIn(gate=gate)
    w = worker.Worker(animator, "n1:1", lambda e: None)
    t = threading.Thread(target=w.run_all, args=(jobs,))
    t.start()
    deadline = time.monotonic() + 60
    while animator.prepared != ["b.mp4"]:  # job a is in its rollout (held at the gate): b's pose is on its way
        assert time.monotonic() < deadline
        time.sleep(0.02)
    gate.set()
    t.join(60)
    assert animator.runs == ["a.mp4", "b.mp4", "c.mp4"] and animator.prepared == ["b.mp4", "c.mp4"]

    stopped = StandIn(fail={"d.mp4": WeightsMissingError("weights missing in /w")})
    with pytest.raises(WeightsMissingError):
        worker.Worker(stopped, "n1:2", lambda e: None).run_all(make_jobs(media_dir, tmp_path, ["d.mp4", "e.mp4"]))
    assert stopped.runs == ["d.mp4"]


def test_the_batch_status_counts_jobs_and_estimates_the_list_from_chunk_times():
    from animate_cli.batch.status import BatchStatus

    s = BatchStatus(total=4)
    for wid, line in (("w1", 1), ("w2", 2)):
        s.feed({"event": "worker", "worker": wid, "host": "n"})
        s.feed({"event": "job_start", "worker": wid, "line": line, "out": f"/o/{line}.mp4"})
        s.feed({"event": "stage", "worker": wid, "line": line, "name": "chunks", "total": 3})
    assert s.eta_s() is None and s.running == 2 and s.left == 2
    s.feed({"event": "chunk_done", "worker": "w1", "line": 1, "chunk": 0, "chunks": 3, "chunk_s": 10.0})
    # chunks left: 2 (w1) + 3 (w2) + 2 jobs x 3 = 11, at 10 s each, over 2 workers
    assert s.eta_s() == pytest.approx(55.0)
    s.feed({"event": "job_end", "worker": "w2", "line": 2, "status": "failed", "exit_code": 3})
    s.feed({"event": "job_end", "worker": "w1", "line": 1, "status": "done", "exit_code": 0})
    s.feed({"event": "job_end", "worker": "w2", "line": 1, "status": "taken", "exit_code": 0})  # counted once
    assert (s.done, s.failed, s.running, s.left) == (1, 1, 0, 2)
    assert s.workers["w1"].line is None
