"""benchmarks/gpu_check.py (`make gpu-check`) without a GPU: the one-line exit 5, the pass/fail judgements on
synthetic figures, the driver (timing, a crashing check, the budget), and the checks themselves on the tiny
configs on the CPU, through the JSON report. The GPU figures come from running it on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import load_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc_mod():
    return load_benchmark("gpu_check")


def test_without_a_gpu_it_exits_5_with_one_line():
    # (how fast is a benchmark matter, not a timed assertion: it stops before building any model)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 5 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA GPU visible"), proc.stderr


def test_judgements(gc_mod):
    gib = 2**30
    assert gc_mod.judge_pinned(True, 100 * gib, 100 * gib, True)["pass"]
    assert not gc_mod.judge_pinned(True, 200 * gib, 100 * gib, True)["pass"]  # a second (pinned) copy
    assert not gc_mod.judge_pinned(True, 148 * gib, 100 * gib, True)["pass"]  # power-of-two rounding
    assert not gc_mod.judge_pinned(False, 100 * gib, 100 * gib, True)["pass"]  # the probe saw rounding
    assert not gc_mod.judge_pinned(True, 100 * gib, 100 * gib, False)["pass"]  # a streamed tensor not pinned
    assert gc_mod.judge_memory(9.0, 10.0)["pass"] and gc_mod.judge_memory(11.4, 10.0)["pass"]
    assert not gc_mod.judge_memory(11.6, 10.0)["pass"]  # under-predicted by more than 15 %
    assert gc_mod.judge_equal(torch.ones(3), torch.ones(3))["pass"]
    e = gc_mod.judge_equal(torch.ones(3), torch.tensor([1.0, 1.0, 1.5]))
    assert not e["pass"] and e["max_abs_diff"] == 0.5
    assert gc_mod.judge_compile(0, 0) and not gc_mod.judge_compile(1, 0) and not gc_mod.judge_compile(0, 1)
    assert gc_mod.overall({"a": {"pass": True}, "b": {"pass": None}}) and not gc_mod.overall({"a": {"pass": False}})


def test_the_driver_times_each_check_and_records_crashes_and_the_budget(gc_mod, monkeypatch):
    def slow(ctx):
        time.sleep(0.05)
        return {"pass": True}

    def crash(ctx):
        raise RuntimeError("CUDA out of memory.\nmore")

    monkeypatch.setattr(gc_mod, "RUNNERS", {"pinned": slow, "modes": crash, "attention": slow})
    out = gc_mod.run_checks({"device": "cpu"}, ["pinned", "modes", "attention"], budget_s=60, log=lambda m: None)
    assert out["pinned"]["pass"] is True and out["pinned"]["seconds"] >= 0.05
    assert out["modes"] == {"pass": False, "error": "RuntimeError: CUDA out of memory.", "seconds": out["modes"]["seconds"]}
    out = gc_mod.run_checks({"device": "cpu"}, ["pinned", "attention"], budget_s=0.01, log=lambda m: None)
    assert out["pinned"]["pass"] is True and out["attention"]["pass"] is None and "budget" in out["attention"]["skipped"]


def test_memory_model_scaled_to_the_cut_model(gc_mod):
    from animate_cli.models import footprint as F

    tab = F.scaled_table(gc_mod.BLOCKS, 1)
    g = {x["name"] for x in tab["weights"]["dit"]["groups"]}
    assert g == {"blocks.0", "blocks.1", "blocks.2", "blocks.3", "face_adapter.0", "unmatched"}
    full, cut = F.predict(832, 480, "none", "bf16"), F.predict(832, 480, "none", "bf16", tab)
    block = next(x["bf16"] for x in F.table()["weights"]["dit"]["groups"] if x["name"] == "blocks.0")
    assert full.phases["dit_step"] - cut.phases["dit_step"] > 36 * block / F.GIB  # 36 blocks and 7 adapters fewer
    # blocks: the streamed pair and the activations do not depend on the depth
    assert (
        F.predict(832, 480, "blocks", "bf16", tab).phases["dit_step"] == F.predict(832, 480, "blocks", "bf16").phases["dit_step"]
    )


def test_tiny_checks_on_the_cpu_write_the_report(gc_mod, tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "r.json"
    code = gc_mod.main(["--allow-cpu", "--only", "pinned,modes,attention,umt5,full_dit", "--out", str(out)])
    torch.set_num_threads(threads)
    r = json.loads(out.read_text())
    assert code == 0 and r["schema"] == gc_mod.SCHEMA and r["pass"] is True and r["config_kind"] == "tiny"
    for key in ("created_utc", "commit", "environment", "size", "matmul_peak", "wall_s"):
        assert key in r, key
    c = r["checks"]
    assert set(c) == {"pinned", "modes", "attention", "umt5", "full_dit"}
    assert all(isinstance(v["seconds"], float) and "pass" in v for v in c.values())
    assert c["pinned"]["pass"] is None and "CUDA" in c["pinned"]["skipped"]
    assert [m["offload"] for m in c["modes"]["modes"]] == ["none", "none", "blocks", "blocks"]
    assert all(m["seconds_2_steps"] > 0 for m in c["modes"]["modes"][:2])
    assert c["umt5"]["pass"] is True and c["umt5"]["outputs"]["equal"] and c["umt5"]["memory_freed"]
    f = c["full_dit"]
    assert f["step_s"] > 0 and f["mfu"] > 0 and f["attention"] == "native" and f["pass"] is None  # judged on CUDA only
