"""An output that is one of the inputs is refused (exit 2) whatever the flags, --overwrite included:
by resolved path, through symlinks, and through hard links (same device and inode)."""

import os
import shutil

import pytest
from typer.testing import CliRunner

from animate_cli.cli import app
from animate_cli.media.guard import same_file

ENV = {"COLUMNS": "300", "NO_COLOR": "1"}


@pytest.fixture()
def inputs(media_dir, tmp_path):
    """Private copies of every input kind (a failing test must not damage the session's media)."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("ref.png", "view1.png", "driving.mp4", "pose.mp4", "face.mp4"):
        shutil.copy(media_dir / name, d / name)
    return d


def run_args(d, weights, out, *extra):
    return ["run", str(d / "ref.png"), str(d / "driving.mp4"), "--weights-dir", str(weights), "--out", str(out),
            "--size", "64x32", "--steps", "1", "--device", "cpu", "--dtype", "fp32", "--ref-view", str(d / "view1.png"),
            "--pose-video", str(d / "pose.mp4"), "--face-video", str(d / "face.mp4"), "--overwrite", *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "label"),
    [("driving.mp4", "driving video"), ("ref.png", "reference image"), ("view1.png", "--ref-view"),
     ("pose.mp4", "--pose-video"), ("face.mp4", "--face-video")],
)  # fmt: skip
@pytest.mark.parametrize("dry_run", [False, True])
def test_run_refuses_every_input_as_output_even_with_overwrite(inputs, tiny_weights, name, label, dry_run):
    before = (inputs / name).read_bytes()
    extra = ["--dry-run", "--json"] if dry_run else ["--json"]
    r = CliRunner().invoke(app, run_args(inputs, tiny_weights, inputs / name, *extra), env=ENV)
    assert r.exit_code == 2, r.output
    assert f"is the {label}" in r.stderr and "Traceback" not in r.output
    assert (inputs / name).read_bytes() == before


def test_run_refuses_symlinks_hard_links_and_dotted_paths(inputs, tiny_weights, tmp_path):
    before = (inputs / "driving.mp4").read_bytes()
    (tmp_path / "link.mp4").symlink_to(inputs / "driving.mp4")
    os.link(inputs / "driving.mp4", tmp_path / "hard.mp4")
    (tmp_path / "linkdir").symlink_to(inputs)
    for out in (tmp_path / "link.mp4", tmp_path / "hard.mp4", tmp_path / "linkdir" / "driving.mp4",
                inputs / ".." / "in" / "driving.mp4"):  # fmt: skip
        r = CliRunner().invoke(app, run_args(inputs, tiny_weights, out), env=ENV)
        assert r.exit_code == 2 and "refusing to write over an input" in r.stderr, (out, r.output)
    assert (inputs / "driving.mp4").read_bytes() == before
    # the preview written next to the output is an output too
    (inputs / "x.preview.mp4").write_bytes(b"")
    r = CliRunner().invoke(
        app, run_args(inputs, tiny_weights, inputs / "x.mp4", "--pose-video", str(inputs / "x.preview.mp4")), env=ENV
    )
    assert r.exit_code == 2 and "preview" in r.stderr


def test_same_file():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "a", Path(d) / "b"
        a.write_text("x")
        assert same_file(a, a) and not same_file(a, b)  # b does not exist
        os.link(a, b)
        assert same_file(b, a)
        b.unlink()
        b.write_text("x")  # equal content is not the same file
        assert not same_file(a, b)


def test_extract_pose_refuses_to_clobber_its_input(media_dir, tmp_path):
    d = tmp_path / "folder"
    d.mkdir()
    shutil.copy(media_dir / "driving.mp4", d / "pose.mp4")  # would be replaced by the pose video written into d
    shutil.copy(media_dir / "driving.mp4", d / "drive.mp4")
    before = (d / "pose.mp4").read_bytes()
    (tmp_path / "sym.mp4").symlink_to(d / "drive.mp4")
    cases = [
        (d / "pose.mp4", d, []),
        (d / "drive.mp4", d / "drive.mp4", []),  # --out is the driving file itself
        (d / "drive.mp4", tmp_path / "sym.mp4", ["--overwrite"]),
    ]
    for driving, out, extra in cases:
        r = CliRunner().invoke(app, ["extract-pose", str(driving), "--out", str(out), "--overwrite", "--json",
                                     "--weights-dir", str(tmp_path / "none"), *extra], env=ENV)  # fmt: skip
        assert r.exit_code == 2, (driving, out, r.output)
        assert "refusing to write over an input" in r.stderr
    shutil.copy(media_dir / "driving.mp4", d / "debug_overlay.mp4")
    r = CliRunner().invoke(app, ["extract-pose", str(d / "debug_overlay.mp4"), "--out", str(d), "--debug-overlay",
                                 "--weights-dir", str(tmp_path / "none")], env=ENV)  # fmt: skip
    assert r.exit_code == 2 and "debug_overlay.mp4" in r.stderr
    assert (d / "pose.mp4").read_bytes() == before
    other = tmp_path / "a-file"
    other.write_text("x")
    r = CliRunner().invoke(
        app, ["extract-pose", str(d / "drive.mp4"), "--out", str(other), "--weights-dir", str(tmp_path)], env=ENV
    )
    assert r.exit_code == 2 and "is a file" in r.stderr
