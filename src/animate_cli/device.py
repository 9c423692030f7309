"""Device and dtype choice, checked before any model is loaded.

`--device auto` means CUDA when available. Real runs need CUDA: the 14B model on a CPU would take
days per chunk, so `cpu` is accepted only for the tiny test/demo weights (the caller says which).
"""

from __future__ import annotations

from dataclasses import dataclass

from animate_cli.errors import DeviceError, UsageError


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda:0" or "cpu"
    dtype: str  # "bf16" or "fp32"
    name: str  # human-readable, e.g. "NVIDIA H200 (139.8 GiB)"
    free_gib: float | None


def choose(device: str, dtype: str, allow_cpu: bool, need_gib: float | None = None) -> DeviceChoice:
    """Resolve --device/--dtype; raise DeviceError (exit 5) with numbers and a hint when unusable."""
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
        return DeviceChoice("cpu", dtype, "CPU", None)
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
    if need_gib is not None and free_gib < need_gib:
        raise DeviceError(
            f"needs ~{need_gib:.0f} GiB free GPU memory, {free_gib:.1f} GiB free of {total_gib:.1f} GiB on cuda:{index}",
            hint="close other GPU processes, or use --resolution 480p / a smaller --size",
        )
    if dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"cuda:{index} does not support bf16", hint="use --dtype fp32 (needs twice the memory)")
    return DeviceChoice(f"cuda:{index}", dtype, f"{torch.cuda.get_device_name(index)} ({total_gib:.1f} GiB)", free_gib)


def torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def resolve_offload(requested: str, dev: DeviceChoice, resident_need_gib: float | None) -> str:
    """--offload auto|none|blocks -> "none" or "blocks", the mode `models.load_models` sets up.

    A placeholder decision, kept in this one function so that the memory model (issue 8, point 3/4)
    can replace it: `auto` is `none` on the CPU and whenever the resident estimate fits the free GPU
    memory (or nothing is known), else `blocks`. `blocks` needs a CUDA device: diffusers' streamed
    group offloading has nothing to stream to on a CPU.
    """
    if requested == "blocks" and not dev.device.startswith("cuda"):
        raise UsageError("--offload blocks needs a CUDA device (it streams weights from host to GPU memory)",
                         hint="use --offload none (or auto) with --device cpu")  # fmt: skip
    if requested != "auto":
        return requested
    if not dev.device.startswith("cuda") or resident_need_gib is None or dev.free_gib is None:
        return "none"
    return "none" if dev.free_gib >= resident_need_gib else "blocks"


# Attribute set on each loaded module by `runtime.prepare`: where it computes. Under group offloading
# the parameters live in host memory between uses, so the first parameter's device is not it.
EXECUTION_DEVICE_ATTR = "_everanimate_execution_device"


def execution_device(module):
    """The device `module` computes on: set at load time, else where its first parameter lives
    (modules built outside `models.load_models`, e.g. by tests and benchmarks, resident)."""
    dev = getattr(module, EXECUTION_DEVICE_ATTR, None)
    return dev if dev is not None else next(module.parameters()).device
