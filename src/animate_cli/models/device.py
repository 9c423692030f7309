"""Device, dtype and memory-mode choice, checked before any model is loaded.

`--device auto` means CUDA when available. Real runs need CUDA: the 14B model on a CPU would take
days per chunk, so `cpu` is accepted only for the tiny test/demo weights (the caller says which).
On CUDA the memory mode (--offload, --weights-dtype) is resolved here from the footprint model's
prediction against the GPU's free memory and the host's available RAM: `auto` takes the fastest mode
that fits; exit 5 only when none does. The probes without torch (nvidia-smi, /proc/meminfo) serve
`--dry-run`, which must not import torch.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from animate_cli.errors import DeviceError, UsageError

if TYPE_CHECKING:
    from animate_cli.models.footprint import Need

NVIDIA_SMI_TIMEOUT_S = 10  # a wedged driver must not hang --dry-run


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda:0" or "cpu"
    dtype: str  # "bf16" or "fp32"
    name: str  # human-readable, e.g. "NVIDIA H200 (139.8 GiB)"
    free_gib: float | None
    offload: str = "none"  # resolved memory mode for models.load_models: "none" or "blocks" (never "auto")
    weights_dtype: str = "bf16"  # DiT linear weight storage: "bf16" or "fp8"
    memory_mode: dict = field(default_factory=dict)  # offload, weights_dtype, predicted GiB, reason (run summary)
    notes: tuple[str, ...] = ()  # one-line warnings for the run's log (each said once), e.g. pinned sizes rounded


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    free_gib: float
    total_gib: float


def host_available_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """MemAvailable of /proc/meminfo in GiB (the kernel's estimate of RAM usable without swapping), or None."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 2**30  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def nvidia_smi_gpus() -> list[GpuInfo] | None:
    """GPUs as nvidia-smi lists them (no torch), or None when nvidia-smi is not on PATH or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    cmd = [exe, "--query-gpu=index,name,memory.free,memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            gpus.append(GpuInfo(int(parts[0]), parts[1], float(parts[2]) / 1024, float(parts[3]) / 1024))  # MiB
        except (ValueError, IndexError):
            continue
    return gpus


@dataclass(frozen=True)
class MemoryBudget:
    """What a device offers the memory model, and how the model's predictions apply to it."""

    free_gib: float | None  # the GPU's free memory (None: not known)
    host_gib: float | None  # the host's available RAM (None: not known)
    where: str = "the GPU"  # named in the error
    scale: float = 1.0  # multiplies every predicted figure: the table is for bf16 compute, fp32 doubles it all
    pinned_rounded: bool = False  # this torch rounds pinned allocations (pinned.check_pinned_sizes)


def _check_memory_flags(offload: str, weights_dtype: str) -> None:
    from animate_cli.models import footprint

    if offload not in ("auto", *footprint.OFFLOAD_MODES):
        raise UsageError(f"--offload must be auto, none or blocks, got {offload!r}")
    if weights_dtype not in footprint.WEIGHTS_DTYPES:
        raise UsageError(f"--weights-dtype must be bf16 or fp8, got {weights_dtype!r}")


def resolve_memory_mode(size: tuple[int, int], offload: str, weights_dtype: str, budget: MemoryBudget) -> Need:
    """The memory mode for W x H that `budget` fits (the fastest with --offload/--weights-dtype auto);
    DeviceError (exit 5) with every mode's needs when none fits."""
    from dataclasses import replace

    from animate_cli.models import footprint

    _check_memory_flags(offload, weights_dtype)
    b = budget
    all_modes = [replace(m, gpu_gib=round(m.gpu_gib * b.scale, 2), host_gib=round(m.host_gib * b.scale, 2))
                 for m in footprint.modes(*size, pinned_rounded=b.pinned_rounded)]  # fmt: skip
    decision = footprint.choose(all_modes, b.free_gib, b.host_gib, offload, weights_dtype)
    if decision.need is None:
        raise DeviceError(f"{b.where}: {decision.reason}",
                          hint=footprint.hint_for(all_modes, b.free_gib, b.host_gib, weights_dtype))  # fmt: skip
    return decision.need


def choose(device: str, dtype: str, allow_cpu: bool, *, size: tuple[int, int] | None = None, offload: str = "auto",
           weights_dtype: str = "bf16", host_gib: float | None = None) -> DeviceChoice:  # fmt: skip
    """Resolve --device/--dtype and, on CUDA with a `size` (W, H), the memory mode; raise DeviceError (exit 5)
    with numbers and a hint when unusable. `host_gib` overrides the /proc/meminfo probe (tests)."""
    import torch

    if dtype not in ("bf16", "fp32"):
        raise UsageError(f"--dtype must be bf16 or fp32, got {dtype!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        if not allow_cpu:
            raise DeviceError(
                f"CUDA is not available (torch {torch.__version__}); the 14B model needs an NVIDIA GPU",
                hint="install a CUDA build of torch on a machine with a GPU (>= 24 GB with --offload, 80 GB without)",
            )
        if offload == "blocks":
            raise UsageError("--offload blocks needs a CUDA device (it streams weights from host to GPU memory)",
                             hint="use --offload none (or auto) with --device cpu")  # fmt: skip
        # No memory model on the CPU (tiny weights only).
        return DeviceChoice("cpu", dtype, "CPU", None, "none" if offload == "auto" else offload, weights_dtype)
    if not device.startswith("cuda"):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"CUDA is not available (torch {torch.__version__})",
            hint="use a CUDA build of torch, or --device cpu for tiny test weights",
        )
    index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise DeviceError(f"{device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    free, total = torch.cuda.mem_get_info(index)
    free_gib, total_gib = free / 2**30, total / 2**30
    if dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"cuda:{index} does not support bf16", hint="use --dtype fp32 (needs twice the memory)")
    name = f"{torch.cuda.get_device_name(index)} ({total_gib:.1f} GiB)"
    if size is None:  # tiny weights: no memory model
        return DeviceChoice(f"cuda:{index}", dtype, name, free_gib, "none" if offload == "auto" else offload, weights_dtype)
    host = host_available_gib() if host_gib is None else host_gib
    from animate_cli.models.pinned import check_pinned_sizes

    pinned = check_pinned_sizes() if offload != "none" else None  # the run's first pin: a probe (blocks only pins)
    rounded = pinned is not None and not pinned.exact
    budget = MemoryBudget(free_gib, host, where=f"cuda:{index} ({name})", scale=2.0 if dtype == "fp32" else 1.0,
                          pinned_rounded=rounded)  # fmt: skip
    need = resolve_memory_mode(size, offload, weights_dtype, budget)
    memory_mode = {"offload": need.offload, "weights_dtype": need.weights_dtype, "predicted_gpu_gib": need.gpu_gib,
                   "predicted_host_gib": need.host_gib, "free_gpu_gib": round(free_gib, 2),
                   "available_host_gib": None if host is None else round(host, 2),
                   "pinned_sizes": None if pinned is None else pinned.to_dict()}  # fmt: skip
    notes = (f"note: {pinned.note}",) if rounded and need.offload == "blocks" else ()
    return DeviceChoice(f"cuda:{index}", dtype, name, free_gib, need.offload, need.weights_dtype, memory_mode, notes)


def torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def visible_gpus(gpus: list[GpuInfo]) -> list[GpuInfo]:
    """The GPUs torch numbers cuda:0, cuda:1, ...: nvidia-smi lists every GPU in physical order and ignores
    CUDA_VISIBLE_DEVICES, which (as indices) picks and orders them for CUDA; CUDA stops at its first invalid
    entry (UUIDs are not mapped here)."""
    import os

    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return gpus
    by_index = {g.index: g for g in gpus}
    picked = []
    for tok in env.split(","):
        tok = tok.strip()
        if not tok.isdigit() or int(tok) not in by_index:
            break
        picked.append(by_index[int(tok)])
    return picked


def cuda_ordinal(device: str) -> int:
    """N of --device cuda:N (0 for auto and cuda)."""
    return int(device.split(":", 1)[1]) if device.startswith("cuda:") and device[5:].isdigit() else 0


def memory_report(size: tuple[int, int], device: str = "auto", offload: str = "auto", weights_dtype: str = "bf16",
                  gpus: list[GpuInfo] | None | bool = True, host_gib: float | None | bool = True) -> dict:  # fmt: skip
    """Every memory mode's prediction at W x H and what `auto` would pick on this machine, without torch
    (`--dry-run`). `gpus`/`host_gib` default to probing nvidia-smi and /proc/meminfo (tests pass values).

    Returns {"modes": [Need.to_dict() + "fits"], "auto_mode": {"offload", "weights_dtype", "reason", "gpu",
    "host_available_gib"}, "estimate_mode": estimate_mode(...)}; auto_mode's offload is None when no GPU is
    visible or nothing fits.
    """
    from animate_cli.models import footprint

    _check_memory_flags(offload, weights_dtype)
    gpus = nvidia_smi_gpus() if gpus is True else gpus
    host = host_available_gib() if host_gib is True else host_gib
    all_modes = footprint.modes(*size)
    gpu = None
    if device != "cpu" and gpus:
        visible = visible_gpus(gpus)
        gpu = visible[cuda_ordinal(device)] if cuda_ordinal(device) < len(visible) else None
    free = gpu.free_gib if gpu else None
    modes = [{**m.to_dict(), "fits": gpu is not None and m.fits(free, host)} for m in all_modes]
    auto = {"offload": None, "weights_dtype": None, "reason": "", "host_available_gib": None if host is None else round(host, 2),
            "gpu": None if gpu is None else {"index": gpu.index, "name": gpu.name, "free_gib": round(gpu.free_gib, 2),
                                             "total_gib": round(gpu.total_gib, 2)}}  # fmt: skip
    if device == "cpu":
        auto["reason"] = "--device cpu: no memory mode (tiny weights only)"
    elif gpu is None:
        auto["reason"] = "no GPU visible (nvidia-smi " + (
            "not on PATH)" if gpus is None else f"lists no GPU for --device {device})"
        )
    else:
        decision = footprint.choose(all_modes, free, host, offload, weights_dtype)
        auto["reason"] = decision.reason
        if decision.need is not None:
            auto["offload"], auto["weights_dtype"] = decision.need.offload, decision.need.weights_dtype
    return {"modes": modes, "auto_mode": auto, "estimate_mode": estimate_mode(modes, auto, offload, weights_dtype)}


def estimate_mode(modes: list[dict], auto: dict, offload: str, weights_dtype: str) -> dict | None:
    """The mode --dry-run's estimate follows: the one a run here would use (auto's pick or the asked mode, when it
    fits), else the one needing the least GPU memory among those the flags allow (no GPU seen, or none fits), so
    a 16 GB card is not told it needs the resident 41 GiB. {**mode, "why": one line}; None on --device cpu."""
    if auto.get("reason", "").startswith("--device cpu"):
        return None
    if auto["offload"] is not None:
        mode = next(m for m in modes if (m["offload"], m["weights_dtype"]) == (auto["offload"], auto["weights_dtype"]))
        return {**mode, "why": "auto's pick on this machine" if offload == "auto" else "as asked"}
    allowed = [m for m in modes if m["weights_dtype"] == weights_dtype and offload in ("auto", m["offload"])]
    mode = min(allowed, key=lambda m: m["gpu_gib"], default=None)
    return None if mode is None else {**mode, "why": "the least GPU memory the flags allow"}


# Attribute set on each loaded module by `runtime.prepare`: where it computes. Under group offloading
# the parameters live in host memory between uses, so the first parameter's device is not it.
EXECUTION_DEVICE_ATTR = "_everanimate_execution_device"


def execution_device(module):
    """The device `module` computes on: set at load time, else where its first parameter lives
    (modules built outside `models.load_models`, e.g. by tests and benchmarks, resident)."""
    dev = getattr(module, EXECUTION_DEVICE_ATTR, None)
    return dev if dev is not None else next(module.parameters()).device


def compute_capability(device: str) -> tuple[int, int] | None:
    """The CUDA compute capability of `device` ((9, 0) for Hopper), None off CUDA."""
    import torch

    return tuple(torch.cuda.get_device_capability(device)) if device.startswith("cuda") else None
