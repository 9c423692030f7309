"""`run --dry-run` plans without weights, then says whether a real run could start now (readiness list),
with the exit code of the first blocker; the checks themselves on fake GPUs and disks."""

import json

from helpers import cli_in_fresh_interpreter
from typer.testing import CliRunner

from animate_cli.cli import app
from animate_cli.runner import readiness as R

ENV = {"COLUMNS": "300", "NO_COLOR": "1"}


def dry_run(media_dir, weights, out, *extra):
    return CliRunner().invoke(app, ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--minutes", "2",
                                    "--dry-run", "--weights-dir", str(weights), "--out", str(out), *extra], env=ENV)  # fmt: skip


def test_dry_run_without_weights_plans_then_lists_blockers(media_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: "no GPU visible"
    r = dry_run(media_dir, tmp_path / "no-weights", tmp_path / "o.mp4", "--json")
    assert r.exit_code == 4, r.output  # the first blocker: weights
    out = json.loads(r.stdout)  # still exactly one JSON object on stdout
    assert out["ok"] is False and out["exit_code"] == 4 and out["ready"] is False
    assert out["plan"]["chunks"] == 42
    items = {i["name"]: i for i in out["readiness"]}
    assert [i["name"] for i in out["readiness"]] == ["weights", "gpu", "disk"]
    w = items["weights"]
    assert w["status"] == "blocker" and w["exit_code"] == 4 and w["message"].startswith("missing ")
    assert w["fix"] == f"everanimate download-weights --dir {tmp_path / 'no-weights'}"
    assert items["gpu"]["status"] == "blocker" and items["gpu"]["exit_code"] == 5 and "no GPU visible" in items["gpu"]["message"]
    assert items["disk"]["status"] == "ok" and items["disk"]["detail"]["state_bytes"] > 42 * R.state_bytes_per_chunk(
        832, 480, "bf16"
    )
    # no GPU seen: the GPU it asks for is the least the flags allow (--offload blocks), not the resident 41 GiB
    least = min(m["gpu_gib"] for m in out["plan"]["memory_modes"] if m["weights_dtype"] == "bf16")
    assert out["plan"]["estimate"]["vram_gib"] == round(least, 1)  # the estimate follows that mode too
    assert least < 10 and items["gpu"]["fix"].startswith(f"run on a machine with an NVIDIA GPU with ~{least:.0f} GiB free")
    host = next(m["host_gib"] for m in out["plan"]["memory_modes"] if m["gpu_gib"] == least)
    assert f"(and ~{host:.0f} GiB of host RAM)" in items["gpu"]["fix"]
    r = dry_run(media_dir, tmp_path / "no-weights", tmp_path / "o.mp4", "--json", "--offload", "none", "--weights-dtype", "fp8")
    fp8_none = next(
        m["gpu_gib"]
        for m in json.loads(r.stdout)["plan"]["memory_modes"]
        if m["offload"] == "none" and m["weights_dtype"] == "fp8"
    )
    gpu = next(i for i in json.loads(r.stdout)["readiness"] if i["name"] == "gpu")
    assert f"with ~{fp8_none:.0f} GiB free" in gpu["fix"]
    human = dry_run(media_dir, tmp_path / "no-weights", tmp_path / "o.mp4")
    assert human.exit_code == 4 and human.stdout == ""
    err = human.stderr
    assert "42 chunks" in err and "estimate:" in err  # the plan comes first, weights or not
    assert err.index("estimate:") < err.index("ready to run: no (a real run would exit 4)")
    assert "fix: everanimate download-weights" in err and "no GPU visible" in err
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "no-weights").exists()


def test_dry_run_with_pose_videos_needs_no_pose_models_and_is_ready_on_tiny_weights(
    media_dir, tiny_weights, tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = dry_run(media_dir, tiny_weights, tmp_path / "o.mp4", "--json", "--pose-video", str(media_dir / "pose.mp4"),
                "--face-video", str(media_dir / "face.mp4"))  # fmt: skip
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["ok"] and out["ready"], r.output
    assert all(i["status"] == "ok" for i in out["readiness"])
    assert "tiny test weights run on the CPU" in out["readiness"][1]["message"]
    assert "not pinned" in out["readiness"][0]["message"]  # the tiny set was not fetched by download-weights


def test_dry_run_without_weights_does_not_import_torch(media_dir, tmp_path):
    out, probe = cli_in_fresh_interpreter(["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--dry-run",
                                           "--json", "--weights-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x.mp4")])  # fmt: skip
    assert probe == {"torch": False, "diffusers": False, "code": 4}
    assert json.loads(out[0])["plan"]["frames"] == 40


def fake_gpus(*gpus):
    return lambda: [R.Gpu(i, name, free, total) for i, (name, free, total) in enumerate(gpus)]


def test_gpu_item():
    h100 = fake_gpus(("NVIDIA H100", 70.0, 79.6))
    ok = R.gpu_item("auto", 40.9, False, h100)
    assert ok.ok and ok.message == "cuda:0 NVIDIA H100: 70.0 GiB free of 79.6 GiB (needs ~41 GiB)"
    busy = R.gpu_item("cuda", 40.9, False, fake_gpus(("NVIDIA A100", 10.0, 80.0)))
    assert not busy.ok and busy.exit_code == 5 and "10.0 GiB free of 80.0 GiB; needs ~41 GiB" in busy.message
    assert R.gpu_item("cuda:1", 40.9, False, fake_gpus(("a", 1, 80), ("b", 60, 80))).ok
    assert R.gpu_item("cuda:2", 1, False, h100).exit_code == 5
    none = R.gpu_item("auto", 40.9, False, lambda: None)
    assert not none.ok and none.exit_code == 5 and "nvidia-smi not found" in none.message
    assert R.gpu_item("auto", None, True, lambda: None).ok  # tiny weights fall back to the CPU
    assert not R.gpu_item("cuda", None, True, lambda: []).ok  # ... but not when CUDA is asked for
    assert R.gpu_item("cpu", 40.9, False, lambda: None).ok and R.gpu_item("cpu", 1, False).fix  # allowed, with a caution
    assert R.gpu_item("tpu", 1, False, h100).exit_code == 2


def test_cuda_visible_devices_picks_and_orders(monkeypatch):
    gpus = fake_gpus(("small", 5, 24), ("big", 70, 80))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert "big" in R.gpu_item("cuda", 40, False, gpus).message  # cuda:0 is physical GPU 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert R.gpu_item("auto", 40, False, gpus).message == "no GPU visible"


def test_nvidia_smi_is_parsed(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA H200, 140000, 143771'\necho '1, NVIDIA H200, 2048, 143771'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = R.nvidia_smi_gpus()
    assert [(g.index, g.name, round(g.free_gib, 1)) for g in gpus] == [(0, "NVIDIA H200", 136.7), (1, "NVIDIA H200", 2.0)]
    assert R.gpu_item("cuda:1", 40, False).exit_code == 5
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert R.nvidia_smi_gpus() is None


def test_disk_item_and_state_estimate(tmp_path):
    per_chunk = R.state_bytes_per_chunk(832, 480, "bf16")
    latents = 16 * 20 * 60 * 104 * 2  # [1, 16, 20, h/8, w/8] bf16, what resume.save_chunk_latents writes
    assert per_chunk == latents + R.video_bytes(832, 480, 73)
    assert R.state_bytes_per_chunk(832, 480, "fp32") == 2 * latents + R.video_bytes(832, 480, 73)
    ok = R.disk_item(
        R.RunWrites(tmp_path / "o.mp4", tmp_path / "state", 832, 480, 3000, 42, "bf16", False), free=lambda p: 10**12
    )
    assert ok.ok and "output + preview + state" in ok.message
    full = R.disk_item(
        R.RunWrites(tmp_path / "o.mp4", tmp_path / "state", 832, 480, 3000, 42, "bf16", True), free=lambda p: 10**6
    )
    assert not full.ok and full.exit_code == 6 and "1.0 MB free" in full.message and full.fix
    assert full.detail["state_bytes"] > ok.detail["state_bytes"]  # extracting poses caches two more videos


def test_first_blocker_decides_the_exit_code():
    items = [R.Item("weights", True, ""), R.Item("gpu", False, "", exit_code=5), R.Item("disk", False, "", exit_code=3)]
    assert R.first_blocker_code(items) == 5 and R.first_blocker_code(items[:1]) == 0


def test_dry_run_exit_code_follows_a_device_blocker(media_dir, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = dry_run(media_dir, tiny_weights, tmp_path / "o.mp4", "--json", "--device", "cuda")
    out = json.loads(r.stdout)
    assert r.exit_code == 5 and out["exit_code"] == 5 and out["readiness"][1]["status"] == "blocker"
