"""The report at the end of `run` on the tiny weights: written beside the output, chunk joins from the run's own
plan, a sidecar that `inspect` reads back later, --no-report, --seam-fix color, and an old report left alone."""

import json
import os
import subprocess
import sys

import pytest
from helpers import frames_of, make_cfg

from animate_cli.errors import ResumeMismatchError
from animate_cli.report import ReportOptions, make_report, report_paths, sidecar_path
from animate_cli.rollout.plan import make_plan
from animate_cli.runner import pipeline


def test_run_writes_the_report_with_its_plans_joins(tiny_run):
    cfg, summary = tiny_run.cfg, tiny_run.summary
    plan = make_plan(cfg.frames, cfg.width, cfg.height, 40, cfg.steps, cfg.seed)
    json_path, png_path = report_paths(cfg.out)
    assert summary.report["json"] == str(json_path) and png_path.stat().st_size > 10_000
    report = json.loads(json_path.read_text())
    starts = [c.out_start for c in plan.chunks]
    assert report["chunks"]["starts"] == starts == [0, 77, 150] and report["chunks"]["source"] == "the run's plan"
    assert [s["frame"] for s in report["seams"]] == starts[1:] and summary.report["joins"] == 2
    assert [d["frames"] for d in report["drift"]] == [[0, 77], [77, 150], [150, 160]]
    assert "report" in summary.timings_s and report["frames"] == summary.frames
    side = json.loads(sidecar_path(cfg.out).read_text())
    assert side["chunks"] == [[0, 77], [77, 150], [150, 160]] and side["seam_fix"] == "none"


def test_inspect_later_reads_the_runs_record(tiny_run, tmp_path):
    cfg = tiny_run.cfg
    again = make_report(cfg.out, ReportOptions(overwrite=True, people=False))
    report = json.loads(again.json_path.read_text())
    assert report["chunks"]["starts"] == [0, 77, 150] and "a.chunks.json" in report["chunks"]["source"]


def test_no_report_and_an_old_report_is_left_alone(tiny_weights, media_dir, tmp_path):
    out = tmp_path / "b.mp4"
    pipeline.run(make_cfg(media_dir, tiny_weights, out, frames=40, report=False))
    assert not any(p.exists() for p in (*report_paths(out), sidecar_path(out)))
    out2 = tmp_path / "c.mp4"
    report_paths(out2)[0].write_text("mine")
    summary = pipeline.run(make_cfg(media_dir, tiny_weights, out2, frames=40))
    assert "already exists" in summary.report["error"] and report_paths(out2)[0].read_text() == "mine"
    assert out2.exists()  # the run itself succeeded


def test_seam_fix_run(tiny_weights, media_dir, tmp_path, tiny_run):
    out = tmp_path / "fix.mp4"
    cfg = make_cfg(media_dir, tiny_weights, out, seam_fix="color")
    summary = pipeline.run(cfg)
    assert frames_of(out).shape[0] == 160
    report = json.loads(report_paths(out)[0].read_text())
    assert report["chunks"]["seam_fix_in_video"] == "color" and summary.report["joins"] == 2
    # chunk 0 has no join before it: its frames are the run's without the fix
    base = tiny_run.frames
    assert (frames_of(out)[:77] == base[:77]).all()
    # the fix changes the frames, so a saved run without it is not resumed with it
    with pytest.raises(ResumeMismatchError):
        pipeline.run(make_cfg(media_dir, tiny_weights, tmp_path / "fix.mp4", overwrite=True))


def test_run_cli_flags(tiny_weights, media_dir, tmp_path):
    common = [sys.executable, "-m", "animate_cli", "run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"),
              "--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4"), "--frames", "40",
              "--size", "64x32", "--steps", "2", "--device", "cpu", "--dtype", "fp32", "--weights-dir", str(tiny_weights)]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    bad = subprocess.run(
        [*common, "--out", str(tmp_path / "x.mp4"), "--seam-fix", "warm"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "--seam-fix" in bad.stderr
    ok = subprocess.run([*common, "--out", str(tmp_path / "y.mp4"), "--json"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["report"]["json"] == str(report_paths(tmp_path / "y.mp4")[0]) and result["report"]["joins"] == 0
