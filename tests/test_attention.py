"""--attention against diffusers' own verdict, with stand-in flash-attn packages (no GPU, no real kernels).

Each case runs in a fresh interpreter with stand-in packages first on sys.path, because diffusers' attention
dispatcher decides what it can use once, when it is imported: a `flash_attn` that fails to import (a wheel
built for another torch), one older than diffusers' minimum, working FlashAttention-2/3 stand-ins. The
capability and device are passed in (no CUDA here); what is checked is which backend we choose, the one
warning line under `auto`, the one-line error of an explicit choice, and the context-parallel filter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from animate_cli.errors import UsageError
from animate_cli.models import attention

SRC = Path(__file__).resolve().parents[1] / "src"

FA2_OK = """
def flash_attn_func(*a, **k):
    raise NotImplementedError("stand-in")
flash_attn_varlen_func = flash_attn_func
"""
FA2_INTERFACE = "_wrapped_flash_attn_forward = _wrapped_flash_attn_backward = None\n"
FA2_BROKEN = 'raise ImportError("flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEa")\n'
FA3_INTERFACE = FA2_OK


def _dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(name + "\n")


def stand_ins(site: Path, fa2: str | None = None, fa2_version: str = "2.7.4", fa3: bool = False) -> Path:
    """Write stand-in packages into `site`: fa2 "ok" or "broken" (`flash_attn`), fa3 (`flash_attn_3` + the
    `flash_attn_interface` module diffusers imports for it)."""
    site.mkdir(parents=True, exist_ok=True)
    if fa2:
        pkg = site / "flash_attn"
        pkg.mkdir()
        (pkg / "__init__.py").write_text(FA2_OK if fa2 == "ok" else FA2_BROKEN)
        (pkg / "flash_attn_interface.py").write_text(FA2_INTERFACE)
        _dist(site, "flash_attn", fa2_version)
    if fa3:
        (site / "flash_attn_3").mkdir()
        (site / "flash_attn_3" / "__init__.py").write_text("")
        (site / "flash_attn_interface.py").write_text(FA3_INTERFACE)
        _dist(site, "flash_attn_3", "3.0.0b1")
    return site


CASE = """
import json, sys
from animate_cli.errors import UsageError
from animate_cli.models.attention import resolve_attention
out = []
for choice, device, dtype, cap, cp in json.loads(sys.argv[1]):
    warnings = []
    try:
        got = resolve_attention(choice, device, dtype, tuple(cap) if cap else None, context_parallel=cp, warn=warnings.append)
        out.append({"backend": got, "warnings": warnings})
    except UsageError as e:
        out.append({"error": e.message, "code": int(e.exit_code), "warnings": warnings})
print(json.dumps(out))
"""


def resolve_with(site: Path, calls: list[tuple]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)])}
    proc = subprocess.run([sys.executable, "-c", CASE, json.dumps(calls)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "flash_attn is installed but failed" not in proc.stderr  # diffusers' own warning is ours now, once
    return json.loads(proc.stdout.strip().splitlines()[-1])


H100, ADA = (9, 0), (8, 9)


@pytest.mark.parametrize(("fa2", "version", "why"), [("broken", "2.7.4", "undefined symbol"), ("ok", "2.5.0", "2.6.3")])
def test_a_broken_or_too_old_flash_attn_falls_back_under_auto_and_fails_when_asked(tmp_path, fa2, version, why):
    site = stand_ins(tmp_path / "site", fa2=fa2, fa2_version=version)
    auto, asked = resolve_with(site, [("auto", "cuda:0", "bf16", H100, False), ("flash", "cuda:0", "bf16", H100, False)])
    assert auto["backend"] == "native" and len(auto["warnings"]) == 1
    line = auto["warnings"][0]
    assert line.startswith("warning: --attention auto: FlashAttention-2") and why in line and "SDPA" in line
    assert "\n" not in line
    assert asked["code"] == 2 and why in asked["error"] and "\n" not in asked["error"]


def test_working_flash_attn_2_and_3_are_chosen_by_gpu_and_context_parallelism(tmp_path):
    site = stand_ins(tmp_path / "site", fa2="ok", fa3=True)
    calls = [("auto", "cuda:0", "bf16", H100, False), ("auto", "cuda:0", "bf16", ADA, False),
             ("auto", "cuda:0", "bf16", H100, True), ("flash", "cuda:0", "bf16", H100, True),
             ("auto", "cuda:0", "fp32", H100, False), ("sdpa", "cuda:0", "bf16", H100, True)]  # fmt: skip
    got = [r.get("backend") for r in resolve_with(site, calls)]
    # FA3 on Hopper; FA2 elsewhere; under context parallelism diffusers 0.42 lists flash, not _flash_3
    assert got == ["_flash_3", "flash", "flash", "flash", "native", "native"]


def test_flash_attn_3_alone_under_context_parallelism(tmp_path):
    site = stand_ins(tmp_path / "site", fa3=True)
    auto, asked, single = resolve_with(site, [("auto", "cuda:0", "bf16", H100, True), ("flash", "cuda:0", "bf16", H100, True),
                                              ("flash", "cuda:0", "bf16", H100, False)])  # fmt: skip
    assert auto == {"backend": "native", "warnings": []}  # usable, just not with --gpus: SDPA, nothing broken
    assert asked["code"] == 2 and "FlashAttention-3 cannot run context parallelism" in asked["error"]
    assert "native" in asked["error"]  # diffusers' list of what can
    assert single["backend"] == "_flash_3"


def test_nothing_installed_is_sdpa_silently(tmp_path):
    site = stand_ins(tmp_path / "site")
    (auto,) = resolve_with(site, [("auto", "cuda:0", "bf16", H100, False)])
    assert auto == {"backend": "native", "warnings": []}


def test_cpu_and_fp32_never_ask_diffusers(monkeypatch):
    monkeypatch.setattr(attention, "_dispatch", lambda: pytest.fail("diffusers asked on the CPU"))
    assert attention.resolve_attention("auto", "cpu", "bf16", None) == "native"
    assert attention.resolve_attention("auto", "cuda:0", "fp32", H100) == "native"
    monkeypatch.setattr(attention, "_installed", lambda name: True)  # installed, but this is a CPU
    with pytest.raises(UsageError, match="needs a CUDA device"):
        attention.resolve_attention("flash", "cpu", "bf16", None)
    with pytest.raises(UsageError, match="needs --dtype bf16"):
        attention.resolve_attention("flash", "cuda:0", "fp32", H100)
    monkeypatch.setattr(attention, "_installed", lambda name: False)
    with pytest.raises(UsageError, match="needs the `flash-attn` package"):
        attention.resolve_attention("flash", "cuda:0", "bf16", H100)


GPUS_CLI = """
import sys, torch
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 2
torch.cuda.get_device_capability = lambda d=None: (9, 0)
from animate_cli.runner import multigpu
def no_launch(n, argv):
    open(sys.argv[1], "w").write("launched")
    return 0
multigpu.launch = no_launch
from animate_cli.cli import app
app(sys.argv[2:])
"""


def test_gpus_with_an_attention_that_cannot_run_context_parallelism_is_exit_2_before_any_rank(tmp_path, media_dir, tiny_weights):
    """`run --gpus 2 --attention flash` with only FlashAttention-3 installed, on a (pretended) two-H100 machine."""
    site = stand_ins(tmp_path / "site", fa3=True)
    marker = tmp_path / "launched"
    args = [str(marker), "run", str(media_dir / "ref.png"), str(media_dir / "driving.mp4"), "--weights-dir", str(tiny_weights),
            "--out", str(tmp_path / "o.mp4"), "--pose-video", str(media_dir / "pose.mp4"), "--face-video",
            str(media_dir / "face.mp4"), "--gpus", "2", "--attention", "flash"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)]), "COLUMNS": "300", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", GPUS_CLI, *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    assert not marker.exists()  # no rank was started
    assert "Traceback" not in proc.stderr and "cannot run context parallelism" in proc.stderr
    with_auto = [a if a != "flash" else "auto" for a in args]
    proc = subprocess.run([sys.executable, "-c", GPUS_CLI, *with_auto], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and marker.exists(), proc.stderr  # auto: SDPA, the ranks start
