"""`run`: the canvas follows the reference unless --size is given, --fit for a forced aspect, the canvas in
the plan (--dry-run) and extreme reference shapes handled without a traceback."""

import json

import numpy as np
import pytest
from PIL import Image
from test_run_cli_errors import ENV

from animate_cli import media
from animate_cli.cli import app


def photo(path, w, h):
    Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(path)
    return path


@pytest.fixture()
def dry(media_dir, tiny_weights, tmp_path):
    from typer.testing import CliRunner

    def go(ref, *extra):
        args = ["run", str(ref), str(media_dir / "driving.mp4"), "--weights-dir", str(tiny_weights), "--out",
                str(tmp_path / "o.mp4"), "--dry-run", *map(str, extra)]  # fmt: skip
        return CliRunner().invoke(app, args, env=ENV)

    return go


def plan_of(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])["plan"]


def test_portrait_phone_photo_gets_a_portrait_canvas_at_its_own_aspect(dry, tmp_path):
    plan = plan_of(dry(photo(tmp_path / "phone.png", 1080, 1920), "--json"))  # landscape driving video
    assert plan["size"] == [480, 848] == plan["canvas"]["size"]  # 9:16 at ~400k px (today: 480x832, cropped)
    assert plan["canvas"]["reference_fit"] == "stretch" and "1080x1920" in plan["canvas"]["rule"]
    assert "person's extent" in plan["canvas"]["pose_fit"] or "pose-video" in plan["canvas"]["pose_fit"]


def test_landscape_photo_at_720p(dry, tmp_path):
    plan = plan_of(dry(photo(tmp_path / "wide.png", 4032, 3024), "--json", "--resolution", "720p"))
    w, h = plan["size"]
    assert w % 16 == h % 16 == 0 and abs(w / h - 4 / 3) < 0.03 and abs(w * h / (1280 * 720) - 1) < 0.1


def test_size_forcing_another_aspect_pads_by_default_and_fit_chooses(dry, tmp_path):
    ref = photo(tmp_path / "phone.png", 1080, 1920)
    assert plan_of(dry(ref, "--json", "--size", "832x480"))["canvas"]["reference_fit"] == "pad"
    assert plan_of(dry(ref, "--json", "--size", "832x480", "--fit", "crop"))["canvas"]["reference_fit"] == "crop"
    r = dry(ref, "--size", "832x480", "--fit", "zoom")
    assert r.exit_code == 2 and "--fit must be one of" in r.output and "Traceback" not in r.output


def test_the_plan_states_canvas_and_fit_in_one_line(dry, tmp_path):
    r = dry(photo(tmp_path / "phone.png", 1080, 1920))
    assert r.exit_code == 0, r.output
    line = [ln for ln in r.output.splitlines() if ln.startswith("canvas ")]
    assert len(line) == 1 and "480x848" in line[0] and "reference stretch" in line[0]


@pytest.mark.parametrize("w, h", [(1600, 48), (48, 1600)])
def test_extreme_reference_shapes_are_handled(dry, tmp_path, w, h):
    plan = plan_of(dry(photo(tmp_path / "strip.png", w, h), "--json"))
    assert sorted(plan["size"]) == [368, 1104] and plan["canvas"]["reference_fit"] == "pad"
    assert "3:1" in plan["canvas"]["rule"]


def test_fit_image_modes():
    img = np.full((200, 100, 3), 255, np.uint8)  # portrait, white
    pad = media.fit_image(img, 160, 96, "pad")
    assert pad.shape == (96, 160, 3) and pad[:, :50].max() == 0 and pad[:, -50:].max() == 0 and pad[:, 60:100].min() == 255
    assert media.fit_image(img, 160, 96, "crop").min() == 255
    assert media.fit_image(img, 160, 96, "stretch").shape == (96, 160, 3)


def test_extract_pose_with_a_reference_uses_runs_canvas(tmp_path):
    from animate_cli.cli.pose import choose_size
    from animate_cli.pose.stage import cache_key  # noqa: F401  (the size is part of PoseSettings, hence the key)

    ref = photo(tmp_path / "phone.png", 1080, 1920)
    assert choose_size(None, None, tmp_path / "unused.mp4", ref) == (480, 848)


def test_a_given_pose_video_keeps_its_own_size_as_the_canvas(dry, media_dir, tmp_path):
    plan = plan_of(dry(photo(tmp_path / "phone.png", 1080, 1920), "--json", "--pose-video", media_dir / "pose.mp4",
                       "--face-video", media_dir / "face.mp4"))  # fmt: skip
    assert plan["size"] == [64, 32] and plan["canvas"]["reference_fit"] == "pad"
    assert "pose-video size" in plan["canvas"]["rule"]
