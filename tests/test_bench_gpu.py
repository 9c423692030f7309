"""benchmarks/bench_gpu.py end to end in its CPU mode (tiny configs, 1 step, 1 chunk, 32x16), and its
FLOP accounting for the full-size config. The numbers of a tiny CPU run mean nothing; this checks that
the harness runs the real code path and writes a complete report."""

from __future__ import annotations

import json
import math

import pytest
from helpers import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_gpu")


def test_full_config_flops_per_step(bench):
    f480 = bench.dit_flops(bench.FULL_TRANSFORMER, 832, 480)
    f720 = bench.dit_flops(bench.FULL_TRANSFORMER, 1280, 720)
    assert f480["tokens"] == 24 * 30 * 52 == 37_440
    assert f720["tokens"] == 24 * 45 * 80
    assert 1.5e15 <= f480["total"] <= 3.0e15  # the issue's ~2.1 PFLOP per step at 480p
    assert f720["total"] > 3.5 * f480["total"]  # attention grows with tokens^2
    assert f480["total"] == sum(f480["parts"].values())


def test_tiny_cpu_run_writes_a_complete_report(bench, tmp_path):
    import torch

    out = tmp_path / "r.json"
    threads = torch.get_num_threads()  # the CPU run pins torch to one thread; give the suite its threads back
    # bf16 as on the GPU: loaded in bf16, diffusers keeps some transformer modules in fp32 (a dtype trap)
    bench.main(["--device", "cpu", "--config", "tiny", "--dtype", "bf16", "--resolutions", "480p", "--size", "32x16",
                "--steps", "1", "--chunks", "1", "--weights-dtype", "bf16,fp8", "--offload", "none,blocks", "--out", str(out)])  # fmt: skip
    torch.set_num_threads(threads)
    r = json.loads(out.read_text())
    for key in ("environment", "commit", "config_kind", "matmul_peak", "models", "ours", "stock", "ours_over_stock", "goals",
                "flops_full_config", "extrapolation", "peak_rss_bytes"):  # fmt: skip
        assert key in r, key
    assert r["config_kind"] == "tiny" and r["dtype"] == "bf16" and r["environment"]["torch"] and r["environment"]["diffusers"]
    x = r["ours"]["480p"]
    for key in ("dit_step_s", "dit_chunk_s", "pose_encode_chunk_s", "decode_chunk_s", "other_chunk_s", "chunk_s", "total_s",
                "s_per_output_second", "achieved_tflops"):  # fmt: skip
        assert x[key] > 0 and math.isfinite(x[key]), key
    assert x["output_frames"] == 77 and len(x["dit_step_s_all"]) == 1
    assert 0 < x["outside_dit_fraction"] < 1
    # the DiT part of a chunk is extrapolated to the real 20 steps
    assert x["dit_chunk_s"] == pytest.approx(x["dit_setup_s"] + 20 * x["dit_step_s"])
    assert x["flops_per_step_counted"] >= x["flops_per_step_analytic"] > 0  # the counter also sees the motion encoder
    assert x["peak_vram_bytes"] is None and r["peak_rss_bytes"] > 0
    s = r["stock"]
    assert s["output_frames"] == 77 and s["segments"] == 1 and s["s_per_output_second"] > 0
    assert r["ours_over_stock"] == pytest.approx(x["s_per_output_second"] / s["s_per_output_second"])
    assert all(g["pass"] is None for g in r["goals"].values())  # judged only for the full config on CUDA
    assert 1.5e15 <= r["flops_full_config"]["480p"]["total"] <= 3.0e15
    assert r["models"]["configs"]["transformer"]["num_layers"] == 2
    # the memory/speed axes: every combination gets a row; FP8 runs on the CPU, blocks needs CUDA
    rows = {(c["offload"], c["weights_dtype"]): c for c in r["combos"]}
    assert list(rows) == [("none", "bf16"), ("none", "fp8"), ("blocks", "bf16"), ("blocks", "fp8")]
    assert rows[("none", "bf16")]["dit_step_s"] == x["dit_step_s"] and rows[("none", "bf16")]["fp8_linear_layers"] == 0
    fp8 = rows[("none", "fp8")]
    assert (
        fp8["error"] is None and fp8["dit_step_s"] > 0 and fp8["fp8_linear_layers"] > 0 and fp8["attention_backend"] == "native"
    )
    assert all("needs a CUDA device" in rows[("blocks", w)]["error"] for w in ("bf16", "fp8"))
    # without a GPU it still reports the memory model's full-size prediction for every combination
    from animate_cli.models import footprint

    pred = {(p["offload"], p["weights_dtype"]): p for p in r["predicted"] if p["resolution"] == "480p"}
    assert list(pred) == list(rows)
    blocks = footprint.predict(832, 480, "blocks", "bf16")
    assert pred[("blocks", "bf16")]["gpu_gib"] == blocks.gpu_gib and pred[("blocks", "bf16")]["host_gib"] == blocks.host_gib
    assert pred[("blocks", "bf16")]["gpu_gib"] < pred[("none", "bf16")]["gpu_gib"]
