"""benchmarks/bench_load_host.py's logic without its 4.5 GB checkpoint: the prediction is footprint's own `load`
term for the DiT, and the file-view accounting tells a clean mapped tensor from one written in place."""

from __future__ import annotations

import pytest
from helpers import load_benchmark

from animate_cli.models import footprint


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_load_host")


CFG = {"num_attention_heads": 2, "attention_head_dim": 4, "ffn_dim": 16, "num_layers": 3}
SIZES = {"bf16": 10_000, "fp8": 6_000}


def test_prediction_per_path(bench):
    tab = bench.reduced_table(CFG, SIZES)
    lora = footprint.lora_bytes(tab)
    assert lora == 3 * (8 * footprint.LORA_RANK * 16 + 2 * footprint.LORA_RANK * 24) * 2
    largest = 8 * 16
    # streamed: the DiT as stored plus one tensor in flight (read bf16 + its stored copy); LoRA freed as fused
    assert bench.predicted_load(tab, "streamed") == 6_000 + 3 * largest
    assert bench.predicted_load(tab, "streamed-nolora") == 6_000 + 3 * largest
    assert bench.predicted_load(tab, "streamed-bf16-pin") == 10_000 + 4 * largest
    assert bench.predicted_load(tab, "old") == 10_000 + lora
    # peft bf16: the larger of the DiT + LoRA and the DiT + one bf16 tensor being pinned
    assert bench.predicted_load(tab, "bf16") == bench.predicted_load(tab, "bf16-pin") == 10_000 + max(lora, 2 * largest)


def test_figures_are_bytes_above_the_post_import_baseline(bench):
    """What the report compares with the prediction: a child's peaks less its baseline, the clean file views added
    to the anonymous peak for `need`, each over the predicted bytes."""
    mib = 2**20
    child = {"baseline": {"RssAnon": 300 * mib, "RssFile": 100 * mib},
             "peak": {"RssAnon": 1_300 * mib, "RssFile": 900 * mib, "VmHWM": 2_000 * mib},
             "end": {"RssAnon": 800 * mib, "RssFile": 700 * mib},
             "views": (600 * mib, 200 * mib), "model_bytes": 1_000 * mib, "seconds": 3.0}  # fmt: skip
    x = bench.figures(child, 1_000 * mib)
    assert x["anon_peak"] == 1_000 * mib and x["ratio_anon"] == 1.0  # 1300 - 300
    assert x["views"] == 200 * mib and x["need"] == 1_200 * mib and x["ratio_need"] == 1.2  # clean views only
    assert x["vmhwm"] == 1_600 * mib and x["file_peak"] == 800 * mib  # VmHWM less anon + file at the baseline
    assert (x["final_anon"], x["final_file"]) == (500 * mib, 600 * mib)


def test_reduced_table_reproduces_the_full_size_dit_term(bench):
    """At full size the reduced table (DiT only) gives footprint's `load` less what it adds beside the DiT (the
    offloaded VAE; CLIP stays on the GPU with FP8), so the bench compares with the model's own formula."""
    from full_configs import FULL_TRANSFORMER

    tab = footprint.table()
    w = tab["weights"]
    small = bench.reduced_table(FULL_TRANSFORMER, {"bf16": w["dit"]["bf16"], "fp8": w["dit"]["fp8"]})
    full = footprint._host_phases(tab, "blocks", "fp8")["load"]
    assert bench.predicted_load(small, "streamed") == full - w["vae"]["bf16"]


def test_file_views_tell_clean_mapped_tensors_from_written_ones(bench, tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    save_file({"w": torch.ones(256, 1024), "b": torch.ones(256, 1024)}, str(tmp_path / "m.safetensors"))
    model = torch.nn.Module()
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        model.w = torch.nn.Parameter(f.get_tensor("w"), requires_grad=False)
        model.b = torch.nn.Parameter(f.get_tensor("b"), requires_grad=False)
    model.c = torch.nn.Parameter(torch.ones(10), requires_grad=False)  # an ordinary copy: not in the mapping
    size = 256 * 1024 * 4
    model.w.sum()  # read: clean file pages
    assert bench.file_views(model) == (2 * size, 2 * size)
    with torch.no_grad():
        model.b.add_(1.0)  # written in place: copy-on-write, anonymous pages
    inside, clean = bench.file_views(model)
    assert inside == 2 * size
    assert abs(clean - size) <= bench.PAGE  # w clean, b copied; the page they share goes with the write
