"""The Python API (runner/animator.py): models loaded once for many runs, the CLI's frames, its errors."""

import subprocess
import sys

import numpy as np
import pytest
from helpers import frames_of
from typer.testing import CliRunner

from animate_cli import options as O
from animate_cli.cli import app
from animate_cli.errors import ExitCode, OutputExistsError, UsageError

ENV = {"COLUMNS": "300", "NO_COLOR": "1"}


def video_options(media_dir):
    return {"frames": 80, "size": "64x32", "steps": 1, "pose_video": media_dir / "pose.mp4",
            "face_video": media_dir / "face.mp4"}  # fmt: skip


def cli_args(media_dir, weights, out, **kw):
    args = ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--weights-dir", str(weights), "--out", str(out),
            "--device", "cpu", "--dtype", "fp32", "--progress", "none"]  # fmt: skip
    for name, value in {**video_options(media_dir), **kw}.items():
        args += [O.OPTIONS[name].flag, str(value)]
    return args


def test_two_runs_load_once_and_give_the_cli_frames(media_dir, tiny_weights, tmp_path):
    from animate_cli import Animator

    with Animator(tiny_weights, device="cpu", dtype="fp32") as animator:
        assert animator.model_loads == 0  # nothing loads before a run needs it
        first = animator.run(media_dir / "ref.png", media_dir / "driving.mp4", tmp_path / "api" / "a.mp4",
                             **video_options(media_dir))  # fmt: skip
        second = animator.run(media_dir / "ref.png", media_dir / "driving.mp4", tmp_path / "api" / "b.mp4", seed=3,
                              **video_options(media_dir))  # fmt: skip
        assert animator.model_loads == 1
    assert first.frames == second.frames == 80 and first.to_dict()["seed"] == 0 and second.to_dict()["seed"] == 3
    for name, seed in (("a", 0), ("b", 3)):
        out = tmp_path / "cli" / f"{name}.mp4"
        r = CliRunner().invoke(app, cli_args(media_dir, tiny_weights, out, seed=seed), env=ENV)
        assert r.exit_code == 0, r.output
        assert np.array_equal(frames_of(out), frames_of(tmp_path / "api" / f"{name}.mp4"))
    assert not np.array_equal(frames_of(tmp_path / "api" / "a.mp4"), frames_of(tmp_path / "api" / "b.mp4"))


def test_errors_are_the_cli_errors_and_another_lora_reloads(media_dir, tiny_weights, tmp_path):
    from animate_cli import Animator

    animator = Animator(tiny_weights, device="cpu", dtype="fp32")
    short = {**video_options(media_dir), "frames": 10}
    out = tmp_path / "o.mp4"
    animator.run(media_dir / "ref.png", media_dir / "driving.mp4", out, **short)
    with pytest.raises(OutputExistsError) as e:
        animator.run(media_dir / "ref.png", media_dir / "driving.mp4", out, **short)
    assert e.value.exit_code == ExitCode.BAD_INPUT
    assert animator.model_loads == 1
    # 720p fuses the other EverAnimate LoRA: the models load again, once
    summary = animator.run(media_dir / "ref.png", media_dir / "driving.mp4", tmp_path / "hd.mp4", resolution="720p", **short)
    assert summary.frames == 10 and animator.model_loads == 2


def test_options_in_the_wrong_place_are_refused(media_dir, tiny_weights, tmp_path):
    from animate_cli import Animator

    with pytest.raises(UsageError, match=r"Animator\(\) does not take colour"):
        Animator(tiny_weights, colour="red")
    with pytest.raises(UsageError, match=r"Animator\(\) does not take seed \(a video option\)"):
        Animator(tiny_weights, seed=1)
    animator = Animator(tiny_weights, device="cpu")
    with pytest.raises(UsageError, match=r"Animator.run\(\) does not take offload \(a model option\)"):
        animator.run(media_dir / "ref.png", media_dir / "driving.mp4", tmp_path / "o.mp4", offload="none")
    with pytest.raises(UsageError, match="--fit must be one of pad, crop, stretch, got 'tile'"):
        animator.run(media_dir / "ref.png", media_dir / "driving.mp4", tmp_path / "o.mp4", fit="tile")
    with pytest.raises(UsageError, match="--attention must be one of auto, sdpa, flash, sage, got 'xformers'"):
        Animator(tiny_weights, attention="xformers")
    assert not (tmp_path / "o.mp4").exists()


def test_plan_loads_nothing_and_is_the_dry_run(media_dir, tiny_weights, tmp_path):
    import json

    from animate_cli import Animator

    animator = Animator(tiny_weights, device="cpu", dtype="fp32")
    plan = animator.plan(media_dir / "ref.png", media_dir / "driving.mp4", tmp_path / "new" / "o.mp4",
                         **video_options(media_dir))  # fmt: skip
    r = CliRunner().invoke(app, cli_args(media_dir, tiny_weights, tmp_path / "new" / "o.mp4") + ["--dry-run", "--json"],
                           env=ENV)  # fmt: skip
    cli = json.loads(r.stdout)
    assert plan["plan"]["chunks"] == cli["plan"]["chunks"] == 2 and plan["ready"] == cli["ready"]
    assert animator.model_loads == 0 and not (tmp_path / "new").exists()  # a plan writes nothing


def test_option_parsing_from_text():
    """What a CSV cell or a JSON value turns into (the batch list's rows use this)."""
    assert O.OPTIONS["seconds"].parse("3") == 3.0
    assert O.OPTIONS["steps"].parse("4") == 4 and O.OPTIONS["steps"].parse(4.0) == 4
    assert O.OPTIONS["no_audio"].parse("yes") is True and O.OPTIONS["no_audio"].parse("0") is False
    assert [str(p) for p in O.OPTIONS["ref_view"].parse("a.png;b.png")] == ["a.png", "b.png"]
    assert [str(p) for p in O.OPTIONS["ref_view"].parse(["a.png"])] == ["a.png"]
    assert O.OPTIONS["fit"].parse(O.Fit.CROP) == "crop" and O.OPTIONS["fit"].parse("") is None
    assert O.OPTIONS["lora"].parse("x.safetensors:0.5")[0].scale == 0.5
    for name, value, message in (("steps", "many", "--steps must be an integer, got 'many'"),
                                 ("steps", "0", "--steps must be between 1 and 1000"),
                                 ("no_audio", "maybe", "--no-audio must be true or false"),
                                 ("size", "big", "--size must look like 832x480"),
                                 ("device", "tpu", "--device must be auto, cpu, cuda or cuda:N"),
                                 ("seam_fix", "colour", "--seam-fix must be one of none, color, got 'colour'")):  # fmt: skip
        with pytest.raises(UsageError, match=message):
            O.OPTIONS[name].parse(value)


def test_every_option_has_a_level_and_a_command():
    for opt in O.OPTIONS.values():
        assert opt.level in O.LEVELS and opt.commands and opt.help, opt.name
    assert set(O.names(O.MODEL)) == {"weights_dir", "device", "dtype", "lora", "offload", "weights_dtype", "attention",
                                     "compile", "fast"}  # fmt: skip


def test_help_shows_choices_and_what_one_value_is():
    out = CliRunner().invoke(app, ["run", "--help"], env=ENV).output
    for choices in ("[pad|crop|stretch]", "[auto|none|blocks]", "[bf16|fp8]", "[rich|json|none]", "[wan|rtmw]"):
        assert choices in out
    assert "PATH[:SCALE]" in out and "--ref-view" in out and "<list" not in out and "--retarget" in out
    out = CliRunner().invoke(app, ["extract-pose", "--help"], env=ENV).output
    assert "[default|none]" in out and "[480p|720p]" in out


def test_a_bad_choice_on_the_command_line_is_one_line(media_dir, tiny_weights, tmp_path):
    import json

    r = CliRunner().invoke(app, cli_args(media_dir, tiny_weights, tmp_path / "o.mp4") + ["--dtype", "fp16", "--json"], env=ENV)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert json.loads(r.stdout)["error"]["message"] == "--dtype must be one of bf16, fp32, got 'fp16'"


def test_importing_the_package_imports_no_torch():
    code = "import sys, animate_cli; animate_cli.Animator; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_output_folder_is_made_but_never_through_a_file(media_dir, tiny_weights, tmp_path):
    from animate_cli import Animator
    from animate_cli.errors import BadInputError

    (tmp_path / "f").write_text("x")
    animator = Animator(tiny_weights, device="cpu", dtype="fp32")
    with pytest.raises(BadInputError, match="cannot be made: .* is a file"):
        animator.run(
            media_dir / "ref.png", media_dir / "driving.mp4", tmp_path / "f" / "sub" / "o.mp4", **video_options(media_dir)
        )
    assert (tmp_path / "f").read_text() == "x" and animator.model_loads == 0


def test_retarget_needs_an_extracted_pose(media_dir, tiny_weights, tmp_path):
    from animate_cli import Animator

    with pytest.raises(UsageError, match="with --pose-video the pose is given"):
        Animator(tiny_weights).run(media_dir / "ref.png", media_dir / "driving.mp4", tmp_path / "o.mp4", retarget=True,
                                   **video_options(media_dir))  # fmt: skip
