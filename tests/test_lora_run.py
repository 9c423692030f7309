"""LoRAs and `--fast` through real tiny runs: `--lora X:0` gives the frames of no LoRA, every LoRA is accounted
for in the summary, and a --fast draft (the step-distill LoRA stand-in in the lightx2v layout, 4 steps) is marked
as a draft in --json, the summary, the mp4's comment tag and the report, with its own resume fingerprint."""

import json
import shutil

import numpy as np
import pytest
from helpers import frames_of, make_cfg
from lora_layouts import standin
from safetensors.torch import save_file
from test_run_cli_errors import ENV
from typer.testing import CliRunner

from animate_cli import media
from animate_cli.cli import app
from animate_cli.config import LoraSpec
from animate_cli.errors import ResumeMismatchError
from animate_cli.models import fast
from animate_cli.runner import pipeline
from animate_cli.weights import FAST_ITEMS

FRAMES = 20  # one chunk


def _standin_for(weights, path, seed=0):
    """A lightx2v-layout stand-in shaped for the tiny transformer of `weights`."""
    from diffusers import WanAnimateTransformer3DModel

    model = WanAnimateTransformer3DModel.from_pretrained(str(weights / "wan2.2-animate-14b" / "transformer"))
    state, _ = standin("lightx2v", {n: tuple(t.shape) for n, t in model.state_dict().items()}, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path, len(state)


@pytest.fixture(scope="module")
def fast_weights(tiny_weights, tmp_path_factory):
    """The tiny weights plus a stand-in of the distill LoRA where download-weights --only fast puts it."""
    root = tmp_path_factory.mktemp("fastw") / "weights"
    shutil.copytree(tiny_weights, root)
    _standin_for(root, root / FAST_ITEMS[0].dest)
    return root


@pytest.fixture(scope="module")
def no_lora(fast_weights, media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("nolora") / "a.mp4"
    summary = pipeline.run(make_cfg(media_dir, fast_weights, out, frames=FRAMES, report=False))
    return summary, frames_of(out)


def test_lora_at_scale_zero_gives_the_frames_of_no_lora(no_lora, fast_weights, media_dir, tmp_path):
    extra, n = _standin_for(fast_weights, tmp_path / "community.safetensors", seed=3)
    zero = pipeline.run(make_cfg(media_dir, fast_weights, tmp_path / "z.mp4", frames=FRAMES, report=False,
                                 loras=(LoraSpec(extra, 0.0),)))  # fmt: skip
    assert np.array_equal(frames_of(tmp_path / "z.mp4"), no_lora[1])
    assert [e["scale"] for e in zero.loras] == [1.0, 0.0]  # the EverAnimate LoRA, then --lora
    assert zero.loras[1]["tensors_in"] == n and zero.loras[1]["keys_not_placed"] == 0 and zero.loras[1]["modules_patched"] > 0
    pipeline.run(make_cfg(media_dir, fast_weights, tmp_path / "one.mp4", frames=FRAMES, report=False,
                          loras=(LoraSpec(extra, 1.0),)))  # fmt: skip
    assert not np.array_equal(frames_of(tmp_path / "one.mp4"), no_lora[1])  # the same file at scale 1 does change them


def test_fast_run_is_a_marked_draft_with_its_own_fingerprint(no_lora, fast_weights, media_dir, tmp_path):
    out = tmp_path / "draft.mp4"
    cfg = make_cfg(media_dir, fast_weights, out, frames=FRAMES, report=False, fast=True, steps=fast.FAST_STEPS)
    summary = pipeline.run(cfg)
    assert [e["file"] for e in summary.loras][1] == str(fast_weights / FAST_ITEMS[0].dest)  # right after EverAnimate's
    assert media.comment_tag(out).startswith(fast.DRAFT_COMMENT)
    assert media.comment_tag(no_lora[0].output) == ""  # a full run carries no draft mark
    from animate_cli.report import ReportOptions, make_report

    result = make_report(out, ReportOptions(people=False))
    assert result.headline["draft"] is True and json.loads(result.json_path.read_text())["comment"].startswith(
        "everanimate draft"
    )
    # the same output, state folder and step count without --fast: another fingerprint (the LoRA list), so the
    # saved draft is not continued into a full-quality run
    assert (out.with_name(out.name + ".everanimate-state") / "state.json").exists()
    with pytest.raises(ResumeMismatchError, match="weights"):
        pipeline.run(make_cfg(media_dir, fast_weights, out, frames=FRAMES + 80, report=False, overwrite=True, steps=4))


def _cli(media_dir, weights, out, *extra):
    args = ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--weights-dir", str(weights), "--out", str(out),
            "--frames", str(FRAMES), "--size", "64x32", "--device", "cpu", "--dtype", "fp32", "--progress", "none",
            "--pose-video", str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4"), *extra]  # fmt: skip
    return CliRunner().invoke(app, args, env=ENV)


def test_fast_dry_run_plans_4_steps_with_the_distill_lora_named(fast_weights, tiny_weights, media_dir, tmp_path):
    big = ("--size", "832x480", "--frames", "1500")  # a minute of 480p: the estimate is not rounded to zero
    r = _cli(media_dir, fast_weights, tmp_path / "o.mp4", "--fast", "--dry-run", "--json", *big)
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout.strip().splitlines()[-1])["plan"]
    assert plan["steps"] == 4 and plan["fast"]["fast"] and plan["fast"]["distill_lora"]["present"]
    assert plan["fast"]["distill_lora"]["file"] == FAST_ITEMS[0].path
    full = json.loads(
        _cli(media_dir, fast_weights, tmp_path / "o.mp4", "--dry-run", "--json", *big).stdout.strip().splitlines()[-1]
    )
    assert full["plan"]["steps"] == 20 and full["plan"]["fast"] == {"fast": False}
    assert plan["size"] == [832, 480] and plan["chunks"] == full["plan"]["chunks"] == 21
    # the estimate follows the steps: 4 + 1 step-equivalents of VAE/CLIP per chunk against 20 + 1
    assert plan["estimate"]["total_minutes"] / full["plan"]["estimate"]["total_minutes"] == pytest.approx(5 / 21, rel=0.05)
    missing = _cli(media_dir, tiny_weights, tmp_path / "o.mp4", "--fast", "--dry-run", "--json")  # no distill LoRA there
    entry = json.loads(missing.stdout.strip().splitlines()[-1])
    assert not entry["plan"]["fast"]["distill_lora"]["present"] and entry["exit_code"] == 4
    assert any("--only fast" in (i.get("fix") or "") for i in entry["readiness"])


def test_fast_flags_and_a_missing_distill_lora_are_one_line_errors(tiny_weights, fast_weights, media_dir, tmp_path):
    r = _cli(media_dir, fast_weights, tmp_path / "o.mp4", "--fast", "--steps", "3")
    assert r.exit_code == 2 and "--steps 3 with --fast: choose 4 to 8" in r.output
    r = _cli(media_dir, tiny_weights, tmp_path / "o.mp4", "--fast")
    assert r.exit_code == 4, r.output
    assert "step-distill LoRA" in r.output and "everanimate download-weights" in r.output and "--only fast" in r.output
    assert "Traceback" not in r.output
    assert fast.resolve_steps(None, False) == 20 and fast.resolve_steps(None, True) == 4 and fast.resolve_steps(6, True) == 6


def test_download_weights_only_fast_fetches_the_distill_lora_and_check_lists_it(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from test_weights import CLI_ENV, FakeHub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the fake Hub answers
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    from animate_cli import weights as W

    hub = FakeHub()
    report = W.download(W.DownloadRequest(tmp_path, ("fast",)), fetch=hub)
    assert report.complete and [f.item.dest for f in report.files] == [FAST_ITEMS[0].dest]
    assert (tmp_path / FAST_ITEMS[0].dest).is_file() and {c[1] for c in hub.calls} == {"Kijai/WanVideo_comfy"}
    assert fast.distill_lora(tmp_path) == tmp_path / FAST_ITEMS[0].dest
    assert not any(
        f.item.part == "fast" for f in W.download(W.DownloadRequest(tmp_path / "d", dry_run=True), fetch=FakeHub()).files
    )  # opt-in
    r = CliRunner().invoke(app, ["download-weights", "--dir", str(tmp_path), "--only", "fast", "--check", "--json"], env=CLI_ENV)
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and out["complete"] and [f["path"] for f in out["files"]] == [FAST_ITEMS[0].dest]


def test_fast_cli_run_says_draft_and_accounts_for_every_lora(fast_weights, media_dir, tmp_path):
    r = _cli(media_dir, fast_weights, tmp_path / "j.mp4", "--fast", "--no-report", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["fast"] is True and out["steps"] == 4 and len(out["loras"]) == 2
    assert out["loras"][1]["file"].endswith(FAST_ITEMS[0].path) and out["loras"][1]["keys_not_placed"] == 0
    r = _cli(media_dir, fast_weights, tmp_path / "p.mp4", "--fast", "--no-report")
    assert r.exit_code == 0, r.output
    assert "DRAFT (--fast, 4 steps per chunk)" in r.stderr
    assert "LoRA stage2_480p.safetensors x1:" in r.stderr and "every tensor placed" in r.stderr
    assert f"LoRA {FAST_ITEMS[0].path.rsplit('/', 1)[-1]} x1:" in r.stderr


def test_inspect_summary_line_says_draft_only_for_a_draft():
    from animate_cli.cli.inspect import summary_line

    head = {"flagged_joins": [], "joins": 1, "flagged_joins_with_fix": [], "max_drift_delta_e": 1.0}
    assert summary_line({**head, "draft": True}).startswith("DRAFT (--fast output); 0 of 1 joins")
    assert "DRAFT" not in summary_line({**head, "draft": False}) and "DRAFT" not in summary_line(head)
