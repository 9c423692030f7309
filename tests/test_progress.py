"""Watching a long run: a playable preview after each chunk (removed when the output is written), an
ETA from measured step times, and `--progress json` events on stderr, one JSON object per line."""

import io
import json

from helpers import make_cfg
from typer.testing import CliRunner

from animate_cli import media
from animate_cli.cli import app
from animate_cli.progress import JsonReporter, StepClock, format_eta
from animate_cli.runner import pipeline

ENV = {"COLUMNS": "300", "NO_COLOR": "1"}


def test_eta_from_measured_step_times():
    now = [0.0]
    clock = StepClock(lambda: now[0])
    clock.stage("chunks", 6)
    clock.advance("chunks", 1)  # resumed after chunk 0: not a timed chunk
    assert clock.eta_s() is None  # nothing measured yet

    def steps(n, dt):
        for _ in range(n):
            now[0] += dt
            clock.advance("steps")

    now[0] = 3.0  # 3 s of conditioning before the first step
    clock.stage("steps", 10)
    steps(10, 2.0)
    assert clock.eta_s() == 4 * 10 * 2.0  # this chunk's steps are done, 4 more chunks; no overhead known yet
    now[0] += 1.0  # decode + save
    assert clock.advance("chunks") is True
    assert clock.overheads == [4.0]  # 3 s before + 1 s after the steps
    assert clock.eta_s() == 4 * (10 * 2.0 + 4.0)
    now[0] += 4.0
    clock.stage("steps", 10)
    steps(4, 1.0)  # a few faster steps do not throw the median of recent steps ...
    assert clock.eta_s() == (3 * 10 + 6) * 2.0 + 4 * 4.0
    steps(6, 1.0)
    clock.advance("chunks")
    clock.stage("steps", 10)
    steps(10, 1.0)  # ... a lasting change does (10 x 2 s and 20 x 1 s in the window)
    assert clock.overheads == [4.0, 4.0] and clock.eta_s() == 2 * 10 * 1.0 + 3 * 4.0
    assert format_eta(3725.2) == "ETA 1:02:05" and format_eta(None) == "ETA …"


def test_preview_after_each_chunk_and_json_events(tiny_weights, media_dir, tmp_path):
    out = tmp_path / "p.mp4"
    cfg = make_cfg(media_dir, tiny_weights, out, frames=90)  # 2 chunks: 77 + 13 frames
    stream = io.StringIO()
    seen = []

    def after_segment(c, path):
        # The segment writer thread calls this once chunk c's segment is complete, right after it has
        # rebuilt the preview from every finished segment (the preview follows the encoder, not the DiT).
        assert cfg.preview_path.exists() and not out.exists()  # the output appears only when complete
        seen.append(media.count_frames(cfg.preview_path))
        assert not list(tmp_path.glob("*.partial.mp4"))  # replaced atomically, no leftovers

    with JsonReporter(stream) as reporter:
        summary = pipeline.run(cfg, reporter, on_segment_done=after_segment)
    assert seen == [77, 90]  # everything generated so far, playable
    assert not cfg.preview_path.exists() and media.count_frames(summary.output) == 90
    events = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one JSON object
    kinds = [e["event"] for e in events]
    assert {"stage", "step", "preview", "chunk_done"} <= set(kinds)
    done = [e for e in events if e["event"] == "chunk_done"]
    # Segments are encoded on the writer thread, so a chunk_done event names the latest preview written
    # so far (none yet, or the previous chunk's); the preview events say how many chunks each one holds.
    assert [(e["chunk"], e["chunks"]) for e in done] == [(0, 2), (1, 2)]
    assert {e["preview"] for e in done} <= {None, str(cfg.preview_path)}
    assert [(e["path"], e["chunks"]) for e in events if e["event"] == "preview"] == [
        (str(cfg.preview_path), 1),
        (str(cfg.preview_path), 2),
    ]
    assert done[0]["eta_s"] > 0 and done[1]["eta_s"] == 0
    steps = [e for e in events if e["event"] == "step"]
    assert [(e["chunk"], e["step"], e["steps"]) for e in steps] == [(0, 1, 2), (0, 2, 2), (1, 1, 2), (1, 2, 2)]
    assert all(isinstance(e["eta_s"], float) for e in steps)
    assert [e["chunks"] for e in events if e["event"] == "preview"] == [1, 2]
    assert [e["path"] for e in events if e["event"] == "output"] == [str(out)]


def cli_args(media_dir, weights, out, *extra):
    return ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--pose-video", str(media_dir / "pose.mp4"),
            "--face-video", str(media_dir / "face.mp4"), "--frames", "80", "--size", "64x32", "--steps", "1", "--device", "cpu",
            "--dtype", "fp32", "--weights-dir", str(weights), "--out", str(out), *extra]  # fmt: skip


def test_progress_json_cli_stderr_is_only_events(tiny_weights, media_dir, tmp_path):
    out = tmp_path / "j.mp4"
    r = CliRunner().invoke(app, cli_args(media_dir, tiny_weights, out, "--progress", "json", "--json"), env=ENV)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)  # stdout: still exactly the one summary object
    assert summary["frames"] == 80 and summary["weights"] == []  # tiny weights: nothing pinned
    events = [json.loads(line) for line in r.stderr.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["output"] == str(out)
    assert [e["chunk"] for e in events if e["event"] == "chunk_done"] == [0, 1]
    # an error is an event too, with the exit code, and nothing else on stderr
    r = CliRunner().invoke(app, cli_args(media_dir, tiny_weights, out, "--progress", "json"), env=ENV)
    assert r.exit_code == 3
    (err,) = [json.loads(line) for line in r.stderr.splitlines()]
    assert err["event"] == "error" and err["code"] == "output_exists" and err["exit_code"] == 3
    r = CliRunner().invoke(app, cli_args(media_dir, tiny_weights, out, "--progress", "xml"), env=ENV)
    assert r.exit_code == 2 and "--progress" in r.output


def test_rich_progress_line_names_the_preview_and_the_eta(monkeypatch):
    from rich.console import Console

    from animate_cli import progress

    monkeypatch.setattr(progress, "err_console", lambda: Console(file=io.StringIO(), width=200))
    with progress.RichReporter() as reporter:
        reporter.stage("chunks", 3, "chunks")
        reporter.stage("steps", 4, "chunk 1/3")
        for _ in range(4):
            reporter.advance("steps")
        reporter.artifact("preview", "/some/where/x.preview.mp4", chunks=1)
        reporter.advance("chunks")
        screen = Console(file=io.StringIO(), width=200)
        screen.print(reporter._progress.get_renderable())
    line = next(x for x in screen.file.getvalue().splitlines() if "chunks" in x)
    assert "chunks (preview: x.preview.mp4)" in line and "1/3" in line and "ETA 0:00:0" in line


def test_rich_cli_run_ends_naming_the_output(tiny_weights, media_dir, tmp_path):
    out = tmp_path / "r.mp4"
    args = cli_args(media_dir, tiny_weights, out)
    args[args.index("--frames") + 1] = "20"  # one chunk is enough here
    r = CliRunner().invoke(app, args, env=ENV)
    assert r.exit_code == 0, r.output
    chunk_line = next(line for line in r.stderr.splitlines() if "chunks" in line)
    assert "chunks (output: r.mp4)" in chunk_line and "ETA 0:00:00" in chunk_line and "1/1" in chunk_line
    assert "wrote " in r.stderr and "weights: not pinned" in r.stderr
    assert not (tmp_path / "r.preview.mp4").exists()
