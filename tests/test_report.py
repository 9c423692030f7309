"""The seam and drift report on synthetic videos made for the purpose: a moving textured scene, 223 frames
(chunks of 77 + 73 + 73, joins at frames 77 and 150), with colour jumps, brightness steps and slow drifts
injected at known frames and of known size."""

import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from conftest import write_video

from animate_cli.errors import UsageError
from animate_cli.report import ColourEaser, ReportOptions, find_layout, make_report, report_paths, write_sidecar
from animate_cli.report import settings as S
from animate_cli.report.colour import to_lab
from animate_cli.report.joins import parse_chunks, rule_layout
from animate_cli.report.scan import scan_video

W, H, N = 128, 72, 223
JOINS = (77, 150)


def scene(t: int, speed: float = 3.0) -> np.ndarray:
    """float32 [H, W, 3]: a slowly shifting colour texture with a skin-coloured disc moving across it."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.empty((H, W, 3), np.float32)
    img[..., 0] = 90 + 40 * np.sin(xx / 17.0 + t * 0.05)
    img[..., 1] = 110 + 30 * np.cos(yy / 11.0)
    img[..., 2] = 130 + 20 * np.sin((xx + yy) / 23.0)
    cx, cy = W / 2 + W / 3 * np.sin(t * speed / 10), H / 2 + H / 4 * np.cos(t * speed / 13)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < (H / 5) ** 2] = (220, 170, 140)
    return img


def u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


BRIGHT_STEP = np.float32(10)  # grey levels added to every channel from frame 77 on
COLOUR_STEP = np.array([12, 0, -8], np.float32)  # added from frame 150 on: a warm cast


def stepped(t: int) -> np.ndarray:
    return scene(t) + (BRIGHT_STEP if t >= 77 else 0) + (COLOUR_STEP if t >= 150 else 0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    write_video(d / "steps.mp4", (u8(stepped(t)) for t in range(N)))
    write_video(d / "fast.mp4", (u8(scene(t, speed=40)) for t in range(N)))
    write_video(d / "drift.mp4", (u8(scene(t) + 0.1 * t) for t in range(N)))  # +22 grey levels by the end
    return d


def lab_mean(img: np.ndarray) -> np.ndarray:
    return to_lab(u8(img)).reshape(-1, 3).mean(axis=0)


def test_jumps_are_found_at_their_joins_with_their_size(videos):
    r = make_report(videos / "steps.mp4", ReportOptions(people=False))
    report = json.loads(r.json_path.read_text())
    assert report["chunks"]["starts"] == [0, 77, 150] and report["chunks"]["source"].startswith("the 77/73")
    by_frame = {s["frame"]: s for s in report["seams"]}
    assert r.headline["flagged_joins"] == [77, 150]
    # the brightness step at 77: its L* size, measured on the frames themselves
    want_l = lab_mean(stepped(77))[0] - lab_mean(scene(77))[0]
    assert by_frame[77]["luminance"]["excess"] == pytest.approx(want_l, rel=0.2)
    assert by_frame[77]["luminance"]["z"] >= S.SEAM_Z_FLAG
    # the colour cast at 150: the change of the mean (a*, b*)
    a, b = lab_mean(stepped(150)), lab_mean(stepped(150) - COLOUR_STEP)
    want_c = float(np.hypot(*(a - b)[1:]))
    assert by_frame[150]["colour"]["excess"] == pytest.approx(want_c, rel=0.2)
    assert by_frame[150]["colour"]["z"] >= S.SEAM_Z_FLAG
    # drift follows the steps: chunk 1 brighter by the step, chunk 2 colour-shifted on top of it
    drift = report["drift"]
    assert drift[1]["brightness_vs_chunk0"] == pytest.approx(want_l, rel=0.25)
    assert drift[2]["delta_e_vs_chunk0"] > drift[1]["delta_e_vs_chunk0"] + want_c / 2
    assert r.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_slow_drift_is_measured_per_chunk_and_raises_no_seam(videos):
    r = make_report(videos / "drift.mp4", ReportOptions(people=False))
    report = json.loads(r.json_path.read_text())
    assert r.headline["flagged_joins"] == []
    for d in report["drift"]:  # each chunk's mean brightness against chunk 0's, as the frames were made
        a, b = d["frames"]
        want = np.mean([lab_mean(scene(t) + 0.1 * t)[0] for t in range(a, b, 6)]) - np.mean(
            [lab_mean(scene(t) + 0.1 * t)[0] for t in range(0, 77, 6)]
        )
        assert d["brightness_vs_chunk0"] == pytest.approx(want, abs=0.4)
    assert report["drift"][2]["brightness_vs_chunk0"] > 5  # ~ +18 grey levels between the chunks' middles


def test_clean_video_with_fast_motion_raises_no_seam(videos):
    r = make_report(videos / "fast.mp4", ReportOptions(people=False))
    report = json.loads(r.json_path.read_text())
    assert r.headline["flagged_joins"] == [] and r.headline["flagged_joins_with_fix"] == []
    assert all(s["score"] < S.SEAM_Z_FLAG / 2 for s in report["seams"])
    # the motion is real: the typical frame-to-frame structure change is far above a still clip's
    assert all(s["structure"]["typical"] > 0.02 for s in report["seams"])


def fixed_frames(frames, starts=(0, *JOINS)):
    easer = ColourEaser()
    for t, f in enumerate(frames):
        if t in starts:
            easer.start(starts.index(t))
        yield easer(f)


def test_colour_fix_removes_most_of_an_injected_jump(videos, tmp_path):
    frames = [u8(scene(t) + (COLOUR_STEP if t >= 150 else 0)) for t in range(N)]
    write_video(tmp_path / "cast.mp4", frames)
    write_video(tmp_path / "cast_fixed.mp4", fixed_frames(frames))
    before = {
        s["frame"]: s
        for s in json.loads(make_report(tmp_path / "cast.mp4", ReportOptions(people=False)).json_path.read_text())["seams"]
    }
    after = {
        s["frame"]: s
        for s in json.loads(make_report(tmp_path / "cast_fixed.mp4", ReportOptions(people=False)).json_path.read_text())["seams"]
    }
    jump, left = before[150]["colour"]["excess"], after[150]["colour"]["excess"]
    assert before[150]["flagged"] and not after[150]["flagged"]
    assert left <= 0.2 * jump, (jump, left)
    # the report's own replay of the fix on the unfixed video says the same
    assert before[150]["colour"]["with_fix"]["excess"] <= 0.2 * jump and not before[150]["flagged_with_fix"]
    # and the fixed video's largest change over the ease is small too
    assert after[150]["colour"]["with_fix"]["excess"] <= 0.2 * jump


def test_colour_fix_leaves_a_clean_video_unchanged():
    frames = [u8(scene(t, speed=40)) for t in range(N)]
    assert all(np.array_equal(a, b) for a, b in zip(frames, fixed_frames(frames), strict=True))
    still = [u8(scene(0))] * 100
    assert all(np.array_equal(a, b) for a, b in zip(still, fixed_frames(still, (0, 50)), strict=True))


def test_fix_eases_back_to_the_chunk_colour():
    frames = [u8(scene(t) + (COLOUR_STEP if t >= 150 else 0)) for t in range(N)]
    out = list(fixed_frames(frames))
    red = [float(f[..., 0].mean() - g[..., 0].mean()) for f, g in zip(out, frames, strict=True)]
    assert red[149] == 0 and red[150 + S.SEAM_FIX_FRAMES] == 0  # untouched before the join and after the ease
    assert red[150] == pytest.approx(-12, abs=1.5)  # the first frame after the join matches the chunk before
    assert all(a <= b + 0.01 for a, b in zip(red[150:158], red[151:159], strict=True))  # then fades out


def test_report_memory_does_not_grow_with_length(tmp_path):
    """Frames are streamed: 4x the frames costs only the per-frame numbers (9 doubles each), not frames."""
    frame = u8(scene(0))
    scan_video(write_video(tmp_path / "warm.mp4", [frame] * 3), (), width=W)  # first-use allocations out of the way
    peaks = []
    for n in (100, 400):
        path = write_video(tmp_path / f"n{n}.mp4", (np.roll(frame, t, axis=1) for t in range(n)))
        tracemalloc.start()
        scan = scan_video(path, rule_layout(n).joins, width=W)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert scan.frames == n
    frame_bytes = W * H * 3
    assert peaks[1] - peaks[0] < 300 * 9 * 8 * 2 + frame_bytes, peaks  # not 300 more frames (~8 MB)
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_chunk_layout_sources(tmp_path):
    video = tmp_path / "v.mp4"
    assert find_layout(video, 223).starts == (0, 77, 150)  # nothing recorded: the rule
    state = tmp_path / "v.mp4.everanimate-state" / "segments"
    state.mkdir(parents=True)
    for c, keep in enumerate((77, 73, 40)):
        (state / f"chunk_{c:05d}_{keep:03d}.mp4").write_bytes(b"")
    (state / "chunk_00002_073.mp4").write_bytes(b"")  # an extended run's older segment of the last chunk
    lay = find_layout(video, 190)
    assert lay.starts == (0, 77, 150) and "state" in lay.source
    write_sidecar(video, [(0, 50), (50, 120), (120, 190)], 25, "color")
    lay = find_layout(video, 190)
    assert lay.starts == (0, 50, 120) and lay.seam_fix == "color" and "record" in lay.source
    assert find_layout(video, 190, "60,100").starts == (0, 60, 100)
    for bad in ("x", "100,60", "0,50", "50,500"):
        with pytest.raises(UsageError):
            parse_chunks(bad, 190)


def test_inspect_cli_bad_inputs_and_json(videos, tmp_path):
    exe = [sys.executable, "-m", "animate_cli"]
    video = tmp_path / "v.mp4"
    video.write_bytes((videos / "steps.mp4").read_bytes())

    def run(*args):
        return subprocess.run([*exe, "inspect", *map(str, args)], capture_output=True, text=True)

    ok = run(video, "--json", "--progress", "none", "--weights-dir", tmp_path / "none")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["headline"]["flagged_joins"] == [77, 150] and out["report"] == str(report_paths(video)[0])
    assert json.loads(report_paths(video)[0].read_text())["identity"]["reason"].startswith("no pose models")
    again = run(video)  # the report exists: not replaced without --overwrite
    assert again.returncode == 3 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert run(video, "--overwrite", "--chunks", "9,3").returncode == 2
    assert run(tmp_path / "missing.mp4").returncode == 3
    (tmp_path / "text.mp4").write_text("not a video")
    bad = run(tmp_path / "text.mp4")
    assert bad.returncode == 3 and "Traceback" not in bad.stderr
    assert run(video, "--overwrite", "--ref", tmp_path / "nope.png").returncode == 3
    inputs_kept = report_paths(video)[1]
    before = inputs_kept.read_bytes()
    assert run(video, "--overwrite", "--ref", inputs_kept).returncode == 2  # the picture is an input here: never written over
    assert inputs_kept.read_bytes() == before
