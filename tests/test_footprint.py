"""The memory model (issue 8): mode decisions for common GPUs and host RAM sizes, the shipped table against a
fresh full-size fake-tensor measurement, the attention trap, the exit-5 message, and --dry-run's table."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FakeHostAllocator
from typer.testing import CliRunner

from animate_cli.cli import app
from animate_cli.models import footprint as F

ROOT = Path(__file__).resolve().parents[1]
ENV = {"COLUMNS": "300", "NO_COLOR": "1"}
# Total memory of real cards sold as N GB (MiB, as nvidia-smi reports it): RTX 3060/4070, 4080/4070 Ti Super,
# 3090/4090, 5090, L40S/RTX 6000 Ada, H100, H200; ~400 MiB are taken by the driver/display on an idle card.
CARD_MIB = {12: 12288, 16: 16376, 24: 24564, 32: 32607, 48: 46068, 80: 81559, 141: 143771}
IDLE_MIB = 400
OS_GIB = 3.0  # RAM the OS and desktop hold: MemAvailable of an N GB machine is about N - 3 GiB


def free_gib(card: int) -> float:
    return (CARD_MIB[card] - IDLE_MIB) / 1024


# What `auto` picks for (size, --weights-dtype) on each card (rows) and host RAM of 32/64/128 GB (columns).
# "-" = nothing fits (exit 5). Host RAM binds on a 32 GB machine: `blocks` + bf16 keeps the bf16 DiT in host RAM
# (~37 GiB at the load peak); FP8 streams its DiT in already cast (~20 GiB with `blocks`) and resident modes load
# straight to the GPU (~4 GiB). With FP8 a 12 GB card runs 480p on a 32 GB machine. 720p needs a 24 GB card:
# with the allocator's reserved/allocated headroom (footprint.RESERVED_OVER_ALLOCATED, issue 18) `blocks` needs
# ~17 GiB there, as public 16 GB runs of this model at 720p that ran out of memory suggest.
PICKS = {
    ((832, 480), "bf16"): {
        12: ("-", "blocks", "blocks"), 16: ("-", "blocks", "blocks"), 24: ("-", "blocks", "blocks"),
        32: ("-", "blocks", "blocks"), 48: ("none", "none", "none"), 80: ("none", "none", "none"),
        141: ("none", "none", "none"),
    },
    ((832, 480), "fp8"): {
        12: ("blocks", "blocks", "blocks"), 16: ("blocks", "blocks", "blocks"), 24: ("blocks", "blocks", "blocks"),
        32: ("none", "none", "none"), 48: ("none", "none", "none"), 80: ("none", "none", "none"),
        141: ("none", "none", "none"),
    },
    ((1280, 720), "bf16"): {
        12: ("-", "-", "-"), 16: ("-", "-", "-"), 24: ("-", "blocks", "blocks"), 32: ("-", "blocks", "blocks"),
        48: ("-", "blocks", "blocks"), 80: ("none", "none", "none"), 141: ("none", "none", "none"),
    },
    ((1280, 720), "fp8"): {
        12: ("-", "-", "-"), 16: ("-", "-", "-"), 24: ("blocks", "blocks", "blocks"),
        32: ("blocks", "blocks", "blocks"), 48: ("none", "none", "none"), 80: ("none", "none", "none"),
        141: ("none", "none", "none"),
    },
}  # fmt: skip


@pytest.mark.parametrize("key", list(PICKS), ids=lambda k: f"{k[0][0]}x{k[0][1]}-{k[1]}")
def test_auto_picks_the_fastest_mode_that_fits(key):
    size, wd = key
    modes = F.modes(*size)
    for card, row in PICKS[key].items():
        for host_gb, want in zip((32, 64, 128), row, strict=True):
            d = F.choose(modes, free_gib(card), host_gb - OS_GIB, "auto", wd)
            got = d.need.offload if d.need else "-"
            assert got == want, (card, host_gb, d.reason)
            if d.need:
                assert d.need.weights_dtype == wd  # FP8 only when asked, bf16 never swapped for FP8
                faster = [m for m in modes if m.weights_dtype == wd and m.relative_speed > d.need.relative_speed]
                assert all(not m.fits(free_gib(card), host_gb - OS_GIB) for m in faster)
            else:
                assert d.reason.startswith("no memory mode fits")


def test_explicit_mode_is_checked_not_replaced():
    modes = F.modes(832, 480)
    d = F.choose(modes, free_gib(80), 125.0, "blocks", "bf16")
    assert (d.need.offload, d.need.weights_dtype) == ("blocks", "bf16")  # slower than none, but asked for
    d = F.choose(modes, free_gib(24), 125.0, "none", "bf16")
    assert d.need is None and "--offload none" in d.reason
    assert F.hint_for(modes, free_gib(24), 125.0, "bf16").startswith("--offload blocks --weights-dtype bf16")


def test_modes_are_ordered_and_consistent():
    for size in ((832, 480), (1280, 720)):
        modes = F.modes(*size)
        assert [m.relative_speed for m in modes] == sorted((m.relative_speed for m in modes), reverse=True)
        assert {(m.offload, m.weights_dtype) for m in modes} == {(o, d) for o in F.OFFLOAD_MODES for d in F.WEIGHTS_DTYPES}
        by = {m.name: m for m in modes}
        assert by["none/bf16"].relative_speed == 1.0
        assert by["blocks/bf16"].gpu_gib < by["none/fp8"].gpu_gib < by["none/bf16"].gpu_gib
        assert by["blocks/fp8"].host_gib < by["blocks/bf16"].host_gib
        for m in modes:  # every figure: the largest reserved phase, the pose arena where it overlaps, the context
            assert m.phases.keys() == m.reserved_phases.keys() == set(F.GPU_PHASES)
            for p in m.phases:
                assert m.phases[p] <= m.reserved_phases[p] <= m.phases[p] * F.RESERVED_OVER_ALLOCATED + 0.01
            pose = {p: F.POSE_ORT_GIB if p in F.OVERLAPS_POSE else 0 for p in m.phases}
            want = max(m.reserved_phases[p] + pose[p] for p in m.phases) + F.CUDA_CONTEXT_GIB
            assert m.gpu_gib == pytest.approx(want, abs=0.02)
        # `blocks` churns everything it holds during the DiT step; `none` only the activations
        step = by["blocks/bf16"]
        assert step.reserved_phases["dit_step"] == pytest.approx(step.phases["dit_step"] * F.RESERVED_OVER_ALLOCATED, abs=0.02)
        res = by["none/bf16"]
        assert res.reserved_phases["load"] == res.phases["load"]  # resident weights, allocated once


def test_host_ram_follows_what_the_loader_does():
    """Host RAM at 480p and 720p against the targets of docs/memory-model.md, phase by phase."""
    gb = lambda gib: gib * F.GIB / 1e9  # noqa: E731
    for size in ((832, 480), (1280, 720)):  # host RAM does not depend on the size
        by = {m.name: m for m in F.modes(*size)}
        assert gb(by["blocks/bf16"].host_gib) <= 40  # target met on paper (pinned in place, exact sizes)
        assert gb(by["blocks/fp8"].host_gib) <= 22  # target met on paper (streamed FP8 load, CLIP resident)
    by = {m.name: m for m in F.modes(832, 480)}
    assert by["blocks/bf16"].host_phases["load"] > by["blocks/bf16"].host_phases["run"]  # pinning holds one extra tensor
    fp8 = by["blocks/fp8"]
    # the load holds the FP8 DiT, one tensor in flight and the LoRA: within a GiB of the run's need
    assert fp8.host_phases["run"] < fp8.host_phases["load"] < fp8.host_phases["run"] + 1
    assert by["none/bf16"].host_gib < 5 and by["none/fp8"].host_gib < 5  # DiT and umT5 never built in host RAM
    assert by["blocks/fp8"].host_phases["prompt"] < by["blocks/fp8"].host_gib  # umT5 (10.6 GiB) is not the peak


def test_each_loader_switch_adds_exactly_the_cost_it_names(monkeypatch):
    """The what-if switches (make_footprint_table.py --readme prints the host figures with each one on): switched on
    alone, each adds its cost, computed here from the table's bytes, to its own mode and phase, and nothing else."""
    tab = F.table()
    w = tab["weights"]
    streamed = [g for g in w["dit"]["groups"] if g["name"] != "unmatched"]
    lora, vae, clip = F.lora_bytes(tab), w["vae"]["bf16"], w["clip"]["bf16"]

    def pinned(wd, rounded=False):
        return sum(g[f"pinned_{wd}" if rounded else wd] for g in streamed)

    def host() -> dict:
        return {(o, wd, ph): v for o in F.OFFLOAD_MODES for wd in F.WEIGHTS_DTYPES
                for ph, v in F._host_phases(tab, o, wd).items()}  # fmt: skip

    base = host()
    expected = {
        "PINNED_POW2": {("blocks", wd, "run"): base["blocks", wd, "run"] + pinned(wd, True) - pinned(wd) for wd in ("bf16", "fp8")},
        "PIN_WHILE_PAGEABLE": {("blocks", "bf16", "load"): vae + clip + w["dit"]["bf16"] + pinned("bf16"),
                               ("blocks", "fp8", "load"): vae + w["dit"]["fp8"] + pinned("fp8")},
        "LOAD_VIA_HOST_BF16": {("none", wd, ph): v for wd in ("bf16", "fp8")
                               for ph, v in (("prompt", w["umt5"]["bf16"]), ("load", w["dit"]["bf16"] + lora))},
        "FP8_CAST_ON_HOST": {("none", "fp8", "load"): w["dit"]["bf16"] + lora, ("blocks", "fp8", "load"): vae + w["dit"]["bf16"] + lora},
        "CLIP_OFFLOADED": {("blocks", "fp8", ph): base["blocks", "fp8", ph] + clip for ph in ("load", "run")},  # held from its load on
    }  # fmt: skip
    for name, changes in expected.items():
        with monkeypatch.context() as m:
            m.setattr(F, name, True)
            assert host() == {**base, **changes}, name
        assert all(changes[k] > base[k] for k in changes), name  # each is a cost the loader avoids


def test_blocks_gpu_needs_at_480p_and_720p_meet_the_targets():
    """Issue 8: `blocks` at 480p fits a 16 GB card (<= 14 GiB), at 720p a 24 GB card (<= 22 GiB)."""
    for size, limit in (((832, 480), 14.0), ((1280, 720), 22.0)):
        for m in F.modes(*size):
            if m.offload == "blocks":
                assert m.gpu_gib <= limit, (size, m.name)
                assert m.phases["prompt"] < 3  # umT5 one layer at a time beside its 2 GiB embedding


def test_activations_are_exact_at_measured_points_and_linear_in_tokens_between():
    tab = F.table()
    pts = sorted(tab["points"], key=lambda p: p["tokens"])
    for p in pts:
        for phase, v in p["activations"].items():
            assert F.activation_bytes(phase, p["tokens"]) == pytest.approx(v)
    a, b = pts[1], pts[2]
    mid = (a["tokens"] + b["tokens"]) / 2
    want = (a["activations"]["dit_step"] + b["activations"]["dit_step"]) / 2
    assert F.activation_bytes("dit_step", mid) == pytest.approx(want)
    # beyond the largest point: the last segment's slope continues
    big = 2 * b["tokens"]
    slope = (b["activations"]["dit_step"] - a["activations"]["dit_step"]) / (b["tokens"] - a["tokens"])
    assert F.activation_bytes("dit_step", big) == pytest.approx(b["activations"]["dit_step"] + slope * b["tokens"])


# --- the shipped table is what the measurement produces --------------------------------------------
@pytest.fixture(scope="module")
def measured():
    import torch

    torch.set_num_threads(2)
    from measure_footprint import measure

    return measure(list(F.MEASURED_SIZES))


def test_shipped_table_matches_a_fresh_full_size_measurement(measured):
    shipped = F.table()
    assert measured["weights"] == shipped["weights"]  # structural: exact
    assert measured["dit"] == shipped["dit"]
    assert [p["size"] for p in measured["points"]] == [p["size"] for p in shipped["points"]]
    for new, old in zip(measured["points"], shipped["points"], strict=True):
        for phase, v in old["activations"].items():
            assert new["activations"][phase] == pytest.approx(v, rel=0.01), (new["size"], phase)
    # sanity of what was measured: the real 14B DiT (17.27e9 parameters, 32.2 GiB in bf16), umT5-XXL 10.6 GiB
    w = measured["weights"]
    assert 32.0 < w["dit"]["bf16"] / 2**30 < 32.5 and 10.4 < w["umt5"]["bf16"] / 2**30 < 10.8
    assert len([g for g in w["dit"]["groups"] if g["name"].startswith("blocks.")]) == 40
    assert measured["dit"]["execution_order"][:3] == ["blocks.0", "face_adapter.0", "blocks.1"]


def test_the_dit_step_never_holds_an_attention_matrix(measured):
    for p in measured["points"]:
        one_head_scores = p["tokens"] ** 2 * 2  # a single head's L x L score matrix in bf16
        assert p["dit_largest_tensor_bytes"] < one_head_scores, p["size"]


def test_attention_is_routed_to_the_fused_kernel_and_a_score_matrix_would_be_seen():
    """Routed sdpa is the flash op (output + logsumexp, nothing L x L); and the tracker does catch an L x L
    score matrix when a math kernel makes one, so the DiT check above can fail."""
    import torch
    import torch.nn.functional as Fn
    from measure_footprint import measuring
    from torch.utils._python_dispatch import TorchDispatchMode  # noqa: PLC2701 (no public path in torch)

    L, H, D = 37_440, 40, 128
    seen = []

    class Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    with measuring() as mem, Ops():
        q = torch.empty(1, H, L, D, dtype=torch.bfloat16)
        Fn.scaled_dot_product_attention(q, q, q)
    assert "aten._scaled_dot_product_flash_attention.default" in seen
    assert mem.peak == pytest.approx(2 * H * L * D * 2 + H * L * 4, rel=0.01)  # q (= k = v), output, logsumexp
    assert mem.largest[0] < L * L * 2
    with measuring() as mem:
        q = torch.empty(1, H, 4096, D, dtype=torch.bfloat16)
        torch.ops.aten._scaled_dot_product_attention_math(q, q, q)
    assert mem.largest[1] == (1, H, 4096, 4096)


# --- device check: exit 5 with every mode's numbers ------------------------------------------------
@pytest.fixture()
def fake_cuda(monkeypatch):
    """torch.cuda reporting one idle 16 GB card, without a GPU."""
    import torch

    def install(card: int = 16, name: str = "NVIDIA GeForce RTX 4080"):
        total = CARD_MIB[card] * 2**20
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (total - IDLE_MIB * 2**20, total))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
        FakeHostAllocator().install(monkeypatch)  # pinned sizes exact (test_pinned_sizes.py: when they are not)

    return install


def test_device_choice_resolves_the_mode(fake_cuda):
    from animate_cli.models.device import choose

    fake_cuda(24)
    dev = choose("cuda", "bf16", allow_cpu=False, size=(832, 480), host_gib=125.0)
    assert (dev.device, dev.offload, dev.weights_dtype) == ("cuda:0", "blocks", "bf16")
    assert dev.memory_mode["predicted_gpu_gib"] == F.predict(832, 480, "blocks", "bf16").gpu_gib
    fake_cuda(80)
    dev = choose("cuda", "bf16", allow_cpu=False, size=(832, 480), host_gib=61.0)
    assert dev.offload == "none"
    dev = choose("cpu", "fp32", allow_cpu=True, size=(832, 480), offload="auto")
    assert (dev.device, dev.offload, dev.memory_mode) == ("cpu", "none", {})


def test_exit_5_lists_every_mode_against_the_machine(fake_cuda, monkeypatch, media_dir, tiny_weights, tmp_path):
    """Through the real CLI: tiny weights made to look full-size, a 16 GB card, 29 GiB of available RAM."""
    from animate_cli import weights
    from animate_cli.models import device

    fake_cuda(16)
    monkeypatch.setattr(weights, "is_tiny", lambda base: False)
    monkeypatch.setattr(device, "host_available_gib", lambda *a: 29.0)
    args = ["run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--weights-dir", str(tiny_weights),
            "--out", str(tmp_path / "o.mp4"), "--size", "832x480", "--device", "cuda", "--pose-video",
            str(media_dir / "pose.mp4"), "--face-video", str(media_dir / "face.mp4")]  # fmt: skip
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output
    line = next(x for x in result.output.splitlines() if "no memory mode fits" in x)
    assert "have 15.6 GiB GPU free, 29.0 GiB host RAM available" in line
    for m in F.modes(832, 480):
        assert f"{m.name} {m.gpu_gib:.1f} GiB GPU + {m.host_gib:.1f} GiB host" in line
    assert not (tmp_path / "o.mp4").exists()


def test_meminfo_and_nvidia_smi_parsing(tmp_path, monkeypatch):
    from animate_cli.models import device

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       65536000 kB\nMemFree:         1000 kB\nMemAvailable:   62914560 kB\n")
    assert device.host_available_gib(meminfo) == pytest.approx(60.0)
    assert device.host_available_gib(tmp_path / "missing") is None
    bindir = _fake_nvidia_smi(tmp_path, "0, NVIDIA GeForce RTX 4090, 23000, 24564\n1, NVIDIA H100 80GB HBM3, 80000, 81559\n")
    monkeypatch.setenv("PATH", str(bindir))
    gpus = device.nvidia_smi_gpus()
    assert [(g.index, g.name, round(g.free_gib, 2)) for g in gpus] == [
        (0, "NVIDIA GeForce RTX 4090", 22.46),
        (1, "NVIDIA H100 80GB HBM3", 78.12),
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    report = device.memory_report((832, 480), "cuda", host_gib=125.0)
    assert report["auto_mode"]["gpu"]["index"] == 1 and report["auto_mode"]["offload"] == "none"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert device.nvidia_smi_gpus() is None
    assert device.memory_report((832, 480), "auto", host_gib=60.0)["auto_mode"]["reason"].startswith("no GPU visible")


def _fake_nvidia_smi(tmp_path: Path, csv: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\nprintf '{csv}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bindir


# --- --dry-run: the table, without torch ---------------------------------------------------------
def _dry_run(media_dir, tiny_weights, tmp_path, path: str, json_out: bool, extra: tuple = ()):
    code = (
        "import sys, json\n"
        "from animate_cli.cli import app\n"
        "try:\n"
        f"    app(['run', {str(media_dir / 'ref.png')!r}, {str(media_dir / 'driving.mp4')!r}, '--dry-run', '--size', '1280x720',"
        f" '--weights-dir', {str(tiny_weights)!r}, '--out', {str(tmp_path / 'x.mp4')!r}] + ({['--json'] if json_out else []!r})"
        f" + {list(extra)!r})\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'code': code}))\n"
    )
    env = {**os.environ, **ENV, "PATH": path + os.pathsep + str(Path(sys.executable).parent)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_dry_run_reports_modes_and_auto_pick_without_torch(media_dir, tiny_weights, tmp_path):
    bindir = _fake_nvidia_smi(tmp_path, "0, NVIDIA GeForce RTX 4090, 24000, 24564\n")
    proc = _dry_run(media_dir, tiny_weights, tmp_path, str(bindir), json_out=True)
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"torch": False, "code": 0}, proc.stderr
    plan = json.loads(lines[0])["plan"]
    assert len(plan["memory_modes"]) == 4
    assert plan["memory_modes"][0]["offload"] == "none" and plan["memory_modes"][0]["weights_dtype"] == "bf16"
    auto = plan["auto_mode"]
    assert auto["gpu"]["name"] == "NVIDIA GeForce RTX 4090" and auto["gpu"]["free_gib"] == pytest.approx(23.44, abs=0.01)
    host = auto["host_available_gib"]
    blocks = F.predict(1280, 720, "blocks", "bf16")
    assert auto["offload"] == ("blocks" if host >= blocks.host_gib else None)  # this machine's RAM decides
    # the estimate follows the mode a run would use: auto's pick here, or (RAM too small) the least GPU bf16 allows
    est = plan["estimate"]
    assert (est["offload"], est["weights_dtype"], est["vram_gib"]) == ("blocks", "bf16", round(blocks.gpu_gib, 1))
    assert est["memory_mode_why"] in ("auto's pick on this machine", "the least GPU memory the flags allow")
    proc = _dry_run(
        media_dir, tiny_weights, tmp_path, str(bindir), json_out=True, extra=("--offload", "none", "--weights-dtype", "fp8")
    )
    est = json.loads(proc.stdout.strip().splitlines()[0])["plan"]["estimate"]
    none_fp8 = F.predict(1280, 720, "none", "fp8")
    assert (est["offload"], est["weights_dtype"], est["vram_gib"]) == ("none", "fp8", round(none_fp8.gpu_gib, 1))
    assert est["seconds_per_step"] == pytest.approx(
        plan["estimate"]["seconds_per_step"] * blocks.relative_speed / none_fp8.relative_speed, abs=0.02
    )

    proc = _dry_run(media_dir, tiny_weights, tmp_path, str(tmp_path / "nothing"), json_out=False)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"torch": False, "code": 0}, proc.stderr
    err = proc.stderr
    assert "memory modes" in err and "--offload blocks --weights-dtype fp8" in err
    assert f"{blocks.gpu_gib:.1f} GiB" in err and f"{blocks.relative_speed:.2f}x" in err
    assert "auto: no GPU visible" in err
    assert f"estimate: ~{round(blocks.gpu_gib, 1)} GiB VRAM (--offload blocks --weights-dtype bf16, the least GPU memory" in err


def test_readme_hardware_tables_are_the_generated_ones():
    """README's (and docs/memory-model.md's) tables are printed by `scripts/make_footprint_table.py --readme` from the shipped table."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_footprint_table", ROOT / "scripts" / "make_footprint_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme, model_doc = (ROOT / "README.md").read_text(), (ROOT / "docs" / "memory-model.md").read_text()
    for block in mod.readme_tables().split("\n\n"):
        assert block in readme and block in model_doc
    assert mod.loader_what_if() in model_doc  # the loader's history lives with the memory model (docs/)
