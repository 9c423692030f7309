"""Every bad input of `everanimate run` gets one line, its exit code, no traceback, and touches nothing."""

import json
import subprocess
import sys

import pytest
from conftest import write_video
from helpers import cli_in_fresh_interpreter
from typer.testing import CliRunner

from animate_cli.cli import app

ENV = {"COLUMNS": "300", "NO_COLOR": "1"}


def invoke(args):
    return CliRunner().invoke(app, args, env=ENV)


@pytest.fixture()
def base_args(media_dir, tiny_weights, tmp_path):
    return lambda **over: [
        "run", str(over.get("ref", media_dir / "ref.png")), str(over.get("driving", media_dir / "driving.mp4")),
        "--weights-dir", str(over.get("weights", tiny_weights)), "--out", str(over.get("out", tmp_path / "o.mp4")),
        "--size", "64x32", "--steps", "1", "--device", over.get("device", "cpu"), "--dtype", "fp32",
        "--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4"),
        *over.get("extra", []),
    ]  # fmt: skip


def assert_clean_error(result, code, text):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert text in result.output, result.output


def test_missing_files(base_args, tmp_path):
    assert_clean_error(invoke(base_args(ref=tmp_path / "nope.png")), 3, "reference image not found")
    assert_clean_error(invoke(base_args(driving=tmp_path / "nope.mp4")), 3, "driving video not found")


def test_unreadable_files(base_args, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x00garbage" * 10)
    assert_clean_error(invoke(base_args(ref=junk)), 3, "cannot read image")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    assert_clean_error(invoke(base_args(driving=bad)), 3, "cannot read video")


def test_zero_length_video(base_args, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_clean_error(invoke(base_args(driving=empty)), 3, "empty")
    from animate_cli.media import ffmpeg_exe

    audio_only = tmp_path / "audio.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(audio_only)], check=True
    )
    assert_clean_error(invoke(base_args(driving=audio_only)), 3, "cannot read video")


def test_conflicting_length_flags(base_args):
    assert_clean_error(invoke(base_args(extra=["--seconds", "2", "--frames", "10"])), 2, "only one of")
    assert_clean_error(invoke(base_args(extra=["--seconds", "0"])), 2, "shorter than one frame")


@pytest.mark.parametrize("size", ["100x50", "64x", "64*32", "8000x32"])
def test_bad_sizes(base_args, size):
    args = base_args()
    args[args.index("--size") + 1] = size
    assert_clean_error(invoke(args), 2, "--size")


def test_existing_output_is_never_overwritten(base_args, tmp_path):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"precious")
    assert_clean_error(invoke(base_args(out=out)), 3, "already exists")
    assert out.read_bytes() == b"precious"


def test_too_many_views_and_half_pose_pair(base_args, media_dir, tmp_path):
    views = [x for _ in range(4) for x in ("--ref-view", str(media_dir / "view1.png"))]
    assert_clean_error(invoke(base_args(extra=views)), 3, "at most 3 --ref-view")
    args = base_args()
    i = args.index("--face-video")
    del args[i : i + 2]
    assert_clean_error(invoke(args), 3, "must be given together")


def test_mismatched_pose_and_face_lengths(base_args, media_dir, tmp_path):
    import numpy as np
    from conftest import write_video

    short = write_video(tmp_path / "short.mp4", [np.zeros((64, 64, 3), np.uint8)] * 5)
    args = base_args()
    args[args.index("--face-video") + 1] = str(short)
    assert_clean_error(invoke(args), 3, "must match")


def test_missing_weights(base_args, tmp_path):
    assert_clean_error(invoke(base_args(weights=tmp_path / "empty-weights")), 4, "download-weights")


def test_fp8_run_on_a_damaged_transformer_checkpoint(base_args, tiny_weights, tmp_path):
    """--weights-dtype fp8 builds the DiT tensor by tensor (dit_stream): a checkpoint lacking a tensor is exit 4,
    one line naming it and the repair command, and no output file."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    weights = tmp_path / "w"
    shutil.copytree(tiny_weights, weights, ignore=shutil.ignore_patterns("pose"))
    f = next(weights.rglob("transformer/diffusion_pytorch_model.safetensors"))
    sd = load_file(str(f))
    sd.pop("blocks.1.attn2.to_k.weight")
    save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, str(f))
    out = tmp_path / "never.mp4"
    r = invoke(base_args(weights=weights, out=out, extra=["--weights-dtype", "fp8"]))
    assert_clean_error(r, 4, "lacks 1 tensors (first: blocks.1.attn2.to_k.weight)")
    assert "download-weights" in r.output and not out.exists()


def test_cuda_requested_without_cuda(base_args, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_clean_error(invoke(base_args(device="cuda")), 5, "CUDA is not available")


def test_not_enough_gpu_memory_names_the_numbers(monkeypatch):
    import torch

    from animate_cli.errors import DeviceError
    from animate_cli.models.device import choose

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (2 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    with pytest.raises(
        DeviceError, match=r"cuda:0 \(NVIDIA H100 80GB HBM3 \(80.0 GiB\)\): no memory mode fits .* have 2.0 GiB GPU free"
    ):
        choose("cuda", "bf16", allow_cpu=False, size=(832, 480), host_gib=100.0)
    with pytest.raises(DeviceError, match="cuda:3 does not exist"):
        choose("cuda:3", "bf16", allow_cpu=False)
    with pytest.raises(DeviceError, match="needs an NVIDIA GPU"):
        choose("cpu", "bf16", allow_cpu=False)


def test_json_error_envelope(base_args, tmp_path):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"x")
    result = invoke(base_args(out=out, extra=["--json"]))
    assert result.exit_code == 3
    obj = json.loads(result.stdout.strip().splitlines()[-1])
    assert obj["ok"] is False and obj["error"]["code"] == "output_exists" and obj["exit_code"] == 3


def test_dry_run_prints_plan_without_torch(media_dir, tiny_weights, tmp_path):
    out, probe = cli_in_fresh_interpreter(["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--minutes", "2",
                                           "--dry-run", "--json", "--weights-dir", str(tiny_weights), "--out", str(tmp_path / "x.mp4")])  # fmt: skip
    assert probe == {"torch": False, "diffusers": False, "code": 0}
    plan = json.loads(out[0])
    assert plan["ok"] and plan["dry_run"]
    assert plan["plan"]["frames"] == 3000 and plan["plan"]["chunks"] == 42
    assert plan["plan"]["size"] == [800, 480]  # the 80x48 (5:3) reference's aspect at ~832x480 pixels
    assert plan["plan"]["latent_shape"] == [1, 16, 24, 60, 100]
    assert not (tmp_path / "x.mp4").exists()


def test_help_is_light():
    code = "import sys; import animate_cli.cli; print(sorted(m for m in ('torch','diffusers','peft','rtmlib','huggingface_hub','transformers','cv2') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_ctrl_c_exits_130_without_traceback(base_args, monkeypatch):
    from animate_cli.runner import pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run", interrupted)
    assert_clean_error(invoke(base_args()), 130, "interrupted")


def _levels(n, size=64):
    import numpy as np

    return [np.full((size, size, 3), (10 * i) % 250, np.uint8) for i in range(n)]


def test_pose_and_face_of_the_same_duration_but_different_fps_are_accepted(base_args, media_dir, tmp_path):
    from animate_cli import media

    pose = media_dir / "pose.mp4"
    info = media.probe(pose)
    n = media.count_frames(pose)
    face = write_video(tmp_path / "face2x.mp4", _levels(2 * n), fps=2 * info.fps)
    args = base_args()
    args[args.index("--face-video") + 1] = str(face)
    r = invoke([*args, "--dry-run", "--json"])
    assert r.exit_code == 0, r.output  # today: refused because the frame counts differ


def test_pose_and_face_of_different_durations_are_refused_with_both_numbers(base_args, media_dir, tmp_path):
    from animate_cli import media

    n = media.count_frames(media_dir / "pose.mp4")
    face = write_video(tmp_path / "face_long.mp4", _levels(2 * n + 10), fps=2 * media.probe(media_dir / "pose.mp4").fps)
    args = base_args()
    args[args.index("--face-video") + 1] = str(face)
    r = invoke(args)
    assert_clean_error(r, 3, "must match")
    assert f"{n} frames" in r.output and f"{2 * n + 10} frames" in r.output and " s (" in r.output
