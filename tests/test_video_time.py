"""Video is read by presentation timestamps everywhere (issue 23): variable frame rate, start offsets, edit
lists, missing timestamps and rotation, on clips whose pixels carry their own source time (vfr_clips.py);
and the pose stage extracts only the span a request needs, continuing its cache for a longer one."""

import re
from fractions import Fraction

import numpy as np
import pytest
from test_pose_track import person_in
from typer.testing import CliRunner
from vfr_clips import PERSON, H, W, irregular_clip, issue_clip, make_clip, read_code, remux

from animate_cli import media
from animate_cli.cli import app
from animate_cli.media.timeline import Timeline
from animate_cli.pose import PoseModels, PoseOutputs, PoseSettings, cached_extract_pose, extract_pose
from animate_cli.rollout.plan import driving_frames_read, make_plan


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("vfr")
    irregular = irregular_clip(d / "irregular.mp4")
    return {
        "issue": issue_clip(d / "issue.mp4"),
        "irregular": irregular,
        "offset": remux(irregular, d / "offset.mp4", "-output_ts_offset", "1.5"),
        "rotated": remux(irregular, d / "rotated.mp4", before_input=("-display_rotation", "90")),
        "editlist": remux(irregular, d / "editlist.mp4", before_input=("-ss", "1.3")),  # B-frames before the cut: negative pts
        "raw": remux(irregular, d / "raw.h264", "-bsf:v", "h264_mp4toannexb", "-f", "h264"),  # no timestamps at all
        "mkv": remux(irregular, d / "ms.mkv"),  # time base 1/1000: every timestamp rounded to the millisecond
    }


def cfr(n: int, fps: int, tb: int = 15360) -> Timeline:
    step = tb // fps
    return Timeline(np.arange(n, dtype=np.int64) * step, Fraction(1, tb), step, 0.0, "packets")


def test_on_constant_rate_the_map_is_wans():
    for n, fps_in, fps_out in ((300, 30, 25), (240, 24, 30), (77, 25, 25), (120, 30, 12), (1, 30, 25), (90, 60, 25)):
        tl = cfr(n, fps_in, tb=fps_in * 512)
        n_out = tl.output_frames(fps_out)
        pos = np.arange(n_out) / fps_out * fps_in
        wan = np.clip(np.round(pos).astype(int), 0, n - 1)
        ours = tl.source_indices(fps_out, n_out)
        tie = np.abs(pos % 1 - 0.5) < 1e-9  # exactly halfway: Wan's float expression breaks these by rounding noise
        assert n_out == max(1, int(n / fps_in * fps_out)) and np.array_equal(ours[~tie], wan[~tie])
        assert np.array_equal(ours[tie], np.floor(pos[tie]) + (np.floor(pos[tie]) % 2))  # ours: to the even frame


def test_issue_clip_timeline_comes_from_timestamps(clips):
    info = media.probe(clips["issue"])
    assert info.frames == 220 and info.duration == pytest.approx(10.0) and info.frames_at(25) == 250
    assert info.fps == pytest.approx(22.0)  # the mean, not ffmpeg's 30 tbr
    times = info.timeline.times
    src = info.timeline.source_indices(25, 250)
    t = np.arange(250) / 25
    assert np.array_equal(np.abs(times[src] - t), np.abs(times[:, None] - t).min(axis=0))  # always the nearest frame


@pytest.mark.parametrize("name", ["irregular", "offset", "rotated", "editlist", "raw", "mkv"])
def test_every_frame_shows_its_own_timestamp(clips, name):
    info = media.probe(clips[name])
    unrotate = (lambda f: np.rot90(f, -1)) if name == "rotated" else (lambda f: f)
    frames = list(media.iter_source_frames(clips[name], 0, info.frames - 1))
    assert [i for i, _ in frames] == list(range(info.frames))
    assert frames[0][1].shape == ((W, H, 3) if name == "rotated" else (H, W, 3))
    codes = np.array([read_code(unrotate(f)) for _, f in frames])
    if name == "raw":  # no stored times: ffmpeg assumes 25 fps, the frames still all come, in order
        assert info.timeline.source == "decoder" and np.all(np.diff(codes) > 0)
    else:
        assert np.abs((codes - codes[0]) - info.timeline.times * 1000).max() <= 1
    assert info.timeline.origin == pytest.approx(1.5 if name == "offset" else 0.0, abs=1e-3)
    if name == "editlist":  # the frames before the cut's keyframe are dropped, not shown
        assert codes[0] == pytest.approx(1300, abs=17) and info.timeline.source == "packets"
    mid = info.frames // 2
    some = media.read_frames_at(clips[name], [mid, mid + 1, mid, 3, info.frames - 1])
    assert [read_code(unrotate(f)) for f in some] == [codes[mid], codes[mid + 1], codes[mid], codes[3], codes[-1]]


def test_rotated_video_reads_without_imageio_warning(clips, capfd, caplog):
    assert media.probe(clips["rotated"]).width == H
    next(media.iter_frames(clips["rotated"]))
    assert "differs" not in capfd.readouterr().err + caplog.text


class CodeReader:
    """A fake estimator that reads the bar code of every frame the stage hands it (a person on the right)."""

    det_name, pose_name = "fake-det", "fake-pose"

    def __init__(self):
        self.seen: list[int] = []

    def detect(self, frame):
        self.seen.append(read_code(frame))
        return np.array([PERSON], float)

    def estimate(self, frame, b):
        return person_in(np.asarray(b))

    def info(self):
        return {"device": "cpu", "providers": {"det": ["fake"], "pose": ["fake"]}}


SETTINGS = PoseSettings(width=W, height=H, body_thr=0.5, fit="crop")  # crop at the source size: the overlay is the source


def overlay_codes(r) -> np.ndarray:
    return np.array([read_code(f) for f in media.iter_frames(r.overlay)])


def test_pose_stage_keeps_time_on_the_issue_clip(clips, tmp_path):
    est = CodeReader()
    r = extract_pose(clips["issue"], tmp_path / "p", SETTINGS, est, outputs=PoseOutputs(overlay=True))
    assert r.frames == 250 and r.complete
    tl = media.probe(clips["issue"]).timeline
    src_ms = np.round(tl.times * 1000)
    shown = overlay_codes(r)
    nearest = np.abs(src_ms[:, None] - np.arange(250) * 40).argmin(axis=0)
    assert np.array_equal(shown, src_ms[nearest])  # every output frame shows the source frame nearest k / 25 s
    assert sorted(est.seen) == sorted(set(src_ms[nearest])) == est.seen  # pass 1 saw each used frame once, in order
    import json

    meta = json.loads(r.meta_path.read_text())
    assert meta["source"]["frames"] == 220 and meta["frame_map"]["source_index"] == nearest.tolist()


def test_start_offset_and_seconds_are_source_time(clips, tmp_path):
    s = PoseSettings(width=W, height=H, body_thr=0.5, fit="crop", start=2.5, seconds=1.0)
    r = extract_pose(clips["offset"], tmp_path / "p", s, CodeReader(), outputs=PoseOutputs(overlay=True))
    first_ms = read_code(next(media.iter_source_frames(clips["offset"], 0, 0))[1])
    shown = overlay_codes(r) - first_ms  # ms from the first frame, whatever the file's first timestamp
    assert r.frames == 25 and np.abs(shown - (2500 + np.arange(25) * 40)).max() <= 25  # within half a 60-fps gap pair


def test_long_source_short_request_then_longer_continues(clips, tmp_path, monkeypatch):
    from support.tiny_pose import write_tiny_pose_models

    from animate_cli.pose import stage

    files = write_tiny_pose_models(tmp_path / "w")  # hashed into the cache key; CodeReader does the work
    models = PoseModels("rtmw", files["det"], files["pose"])
    long = make_clip(tmp_path / "long.mp4", 20, 25, extra=("-g", "50"))  # 500 frames
    cache = tmp_path / "cache"

    def extract(n: int, est: CodeReader, overlay: bool = True):
        monkeypatch.setattr(stage, "open_estimator", lambda *a: est)
        return cached_extract_pose(long, cache, SETTINGS, models, outputs=PoseOutputs(frames=n, overlay=overlay))

    first = CodeReader()
    r = extract(30, first)
    assert r.frames == 30 and not r.complete and len(first.seen) == 30  # 30 of 500 source frames estimated
    second = CodeReader()
    r2 = extract(60, second)
    assert r2.frames == 60 and not r2.cached and second.seen == [k * 40 for k in range(30, 60)]  # only the rest
    assert np.array_equal(overlay_codes(r2), np.arange(60) * 40)
    again = extract(45, CodeReader(), overlay=False)
    assert again.cached and again.frames == 60  # a shorter request reuses the longer extraction
    fresh = extract_pose(long, tmp_path / "fresh", SETTINGS, CodeReader(), outputs=PoseOutputs(frames=60, keypoints=True))
    continued = np.stack(list(media.iter_frames(r2.pose_video)))
    assert np.array_equal(continued, np.stack(list(media.iter_frames(fresh.pose_video))))  # continuing = one scan


def test_run_extracts_only_the_chunks_it_reads():
    assert driving_frames_read(make_plan(50, 64, 32, 4500)) == 77  # --seconds 2 of 3 minutes: one chunk's frames
    assert driving_frames_read(make_plan(150, 64, 32, 4500)) == 150
    assert driving_frames_read(make_plan(400, 64, 32, 100)) == 100  # ping-pong: the whole (short) video


def test_help_shows_flags_as_flags():
    for cmd in ("run", "extract-pose", "download-weights", "inspect"):
        out = CliRunner().invoke(app, [cmd, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"}).output
        assert "<bool>" not in out and not re.search(r"\w \.(\s|$)", out)  # no "text ." left by eaten markup
    out = CliRunner().invoke(app, ["extract-pose", "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"}).output
    assert "./<video name>-pose" in out and "median torso score" in out


def test_audio_starts_where_the_first_video_frame_is(tmp_path):
    """A driving video whose picture starts 0.5 s after its sound: output frame 0 shows the first picture,
    so the output's audio must start 0.5 s into the driving audio (a tone that starts exactly there)."""
    import subprocess

    from conftest import write_video

    video = make_clip(tmp_path / "v.mp4", 2, 25)
    driving = tmp_path / "late_picture.mp4"
    tone = "aevalsrc='if(gte(t,0.5),0.5*sin(2*PI*440*t),0)':s=16000:d=3"
    subprocess.run([media.ffmpeg_exe(), "-loglevel", "error", "-y", "-itsoffset", "0.5", "-i", str(video), "-f", "lavfi",
                    "-i", tone, "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(driving)], check=True)  # fmt: skip
    info = media.probe(driving)
    assert info.video_start == pytest.approx(0.5, abs=0.03) and info.frames == 50
    segment = write_video(tmp_path / "seg.mp4", [np.zeros((32, 32, 3), np.uint8)] * 25)
    out = tmp_path / "out.mp4"
    media.concat_with_audio([segment], out, 25, 25.0, media.MuxExtras(driving, info.video_start))
    pcm = subprocess.run([media.ffmpeg_exe(), "-loglevel", "error", "-i", str(out), "-f", "s16le", "-ac", "1", "-ar", "16000", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    first_100ms = np.frombuffer(pcm, np.int16)[:1600].astype(float)
    assert np.sqrt((first_100ms**2).mean()) > 3000  # the tone from the first instant, not 0.5 s of silence


def test_start_past_the_end_is_a_one_line_error(clips, tmp_path):
    from animate_cli.errors import BadInputError

    s = PoseSettings(width=W, height=H, body_thr=0.5, start=30.0)
    with pytest.raises(BadInputError, match=r"no frames in .* from 30 s \(it lasts 10.000 s; check --start/--seconds\)"):
        extract_pose(clips["issue"], tmp_path / "p", s, CodeReader())
