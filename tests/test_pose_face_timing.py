"""--pose-video / --face-video: each is read by its own timestamps (the refusal of videos of different
durations is in test_run_cli_errors.py)."""

import numpy as np
from conftest import write_video

from animate_cli.rollout.loop import read_chunk_frames


def levels(n, size=64):
    """Frame i is a flat grey of level 10 * i, so a read frame tells which index it was."""
    return [np.full((size, size, 3), (10 * i) % 250, np.uint8) for i in range(n)]


def test_face_video_is_read_with_its_own_fps(tmp_path):
    face50 = write_video(tmp_path / "face50.mp4", levels(20), fps=50.0)
    got = read_chunk_frames(face50, [0, 3, 5, 9], (64, 64))
    # pose frame k at 25 fps is at k / 25 s, i.e. face frame 2k at 50 fps
    assert [round(float(f.mean()) / 10) for f in got] == [0, 6, 10, 18]
