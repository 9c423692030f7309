"""--attention auto|sdpa|flash|sage -> the diffusers attention backend this install can run, before any model loads.

Whether a backend can run is diffusers' verdict, not ours: diffusers' attention dispatcher switches a
backend off at import when its package is missing, fails to import (a flash-attn wheel built for another
torch: "undefined symbol") or is older than diffusers' minimum (flash-attn >= 2.6.3 in 0.42.1), and
`ModelMixin.set_attention_backend` then raises -- after the 32 GiB DiT has loaded. So we ask the same
two checks `set_attention_backend` and `enable_parallelism` run (diffusers.models.attention_dispatch:
`_check_attention_backend_requirements`, and the registry's context-parallel list) right after the device
is chosen. Both are private names of diffusers 0.42.x (pinned <0.43 in pyproject); tests/test_attention.py
runs them against stand-in packages, so an upgrade that renames them fails there, not on a user's GPU.

What diffusers does not check, and we do: the GPU generation (FlashAttention-3 kernels exist for Hopper
only, FlashAttention-2 for Ampere and newer) and the dtype (the flash kernels take fp16/bf16).

    auto   the fastest exact backend diffusers accepts: _flash_3 on Hopper, else flash, else native (SDPA);
           a package that is installed but refused (broken, too old) -> native with one warning line
    sdpa   native
    flash  _flash_3 on Hopper, else flash; a one-line UsageError (exit 2) when diffusers accepts neither
    sage   sage (8-bit QK^T: approximate, never chosen by auto)

Under context parallelism (`--gpus N`, torchrun) only backends diffusers lists as context-parallel capable
are considered (0.42.1 lists flash and native, not _flash_3): `auto` skips the others; an explicit choice
left with none is a UsageError before any rank starts (runner.multigpu.check_attention).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

from animate_cli.errors import UsageError

# --attention flash|sage -> (importable module, pip package): the CLI's cheap "is it installed at all" check,
# without torch. FA3 is found the way diffusers finds it (the `flash_attn_3` distribution; it imports
# `flash_attn_interface`).
ATTENTION_PACKAGES = {
    "flash": (("flash_attn", "flash-attn"), ("flash_attn_3", "flash_attn_3")),
    "sage": (("sageattention", "sageattention"),),
}
# diffusers backend -> the package whose presence means the user meant to have it (for auto's warning)
BACKEND_PACKAGES = {"_flash_3": "flash_attn_3", "flash": "flash_attn", "sage": "sageattention"}
# How diffusers 0.42's dispatcher words a failed import of each backend's package at its import (the reason we
# show; when the wording changes we show its generic "not usable" error instead).
IMPORT_FAILURE_LOG = {"flash": "flash_attn is installed but failed to import: ", "_flash_3": "flash_attn_3 failed to import: ",
                      "sage": "sageattention failed to import: "}  # fmt: skip
FA3_CAPABILITY_MAJOR = 9  # FlashAttention-3 kernels exist for Hopper (sm90) only
FA2_MIN_CAPABILITY = (8, 0)  # FlashAttention-2: Ampere and newer
APPROXIMATE_BACKENDS = {"sage"}  # 8-bit QK^T: not equal to exact attention
LABELS = {"_flash_3": "FlashAttention-3", "flash": "FlashAttention-2", "sage": "SageAttention", "native": "PyTorch SDPA"}

_import_log: list[str] = []  # what diffusers logged while its dispatcher was first imported (why a backend is off)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_attention_installed(choice: str) -> None:
    """CLI-time check (no torch, no import of the package): --attention flash/sage needs its package."""
    options = ATTENTION_PACKAGES.get(choice)
    if options and not any(_installed(mod) for mod, _ in options):
        pip = options[0][1]
        raise UsageError(f"--attention {choice} needs the `{pip}` package, which is not installed",
                         hint=f"pip install {pip}, or use --attention auto")  # fmt: skip


def _dispatch():
    """diffusers.models.attention_dispatch, imported with its import-time warnings captured instead of printed
    (they become part of our one warning line)."""
    import sys

    name = "diffusers.models.attention_dispatch"
    if name in sys.modules:
        return sys.modules[name]
    logger = logging.getLogger(name)

    class Capture(logging.Handler):
        def emit(self, record):
            _import_log.append(record.getMessage().splitlines()[0])

    handler, propagate = Capture(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        import diffusers.models.attention_dispatch as dispatch
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    return dispatch


def refusal(backend: str) -> str | None:
    """Why diffusers would refuse `backend` on this install (None: it accepts it). Its own check, plus the
    import error it logged, when there was one."""
    dispatch = _dispatch()
    try:
        dispatch._check_attention_backend_requirements(dispatch.AttentionBackendName(backend))
    except RuntimeError as e:
        prefix = IMPORT_FAILURE_LOG.get(backend, "\0")
        logged = [m.split(prefix, 1)[1].split(". Falling back")[0] for m in _import_log if prefix in m]
        return f"import failed: {logged[-1]}" if logged else str(e).splitlines()[0].rstrip(".")
    return None


def supports_context_parallel(backend: str) -> bool:
    """Whether diffusers can run `backend` under context parallelism (its registry's list)."""
    dispatch = _dispatch()
    return dispatch._AttentionBackendRegistry._is_context_parallel_available(dispatch.AttentionBackendName(backend))


def context_parallel_backends() -> list[str]:
    return sorted(_dispatch()._AttentionBackendRegistry._supports_context_parallel)


def _candidates(choice: str, capability: tuple[int, int] | None) -> list[str]:
    """Backends `choice` may use on a GPU of `capability`, fastest first."""
    if choice == "sage":
        return ["sage"]
    cap = tuple(capability) if capability is not None else (0, 0)
    out = ["_flash_3"] if cap[0] == FA3_CAPABILITY_MAJOR else []
    return out + (["flash"] if cap >= FA2_MIN_CAPABILITY else [])


def resolve_attention(choice: str, device: str, dtype: str, capability: tuple[int, int] | None, *,
                      context_parallel: bool = False, warn: Callable[[str], None] | None = None) -> str:  # fmt: skip
    """--attention `choice` -> the diffusers backend name to set ("native", "flash", "_flash_3", "sage").

    Raises UsageError (one line, exit 2) for an explicit choice that cannot run here; under `auto` a backend
    that is installed but refused is reported once through `warn` and SDPA ("native") is used.
    """
    cuda = device.startswith("cuda")
    if choice in ("flash", "sage"):
        check_attention_installed(choice)
        if not cuda:
            raise UsageError(f"--attention {choice} needs a CUDA device", hint="use --attention auto on the CPU")
        if dtype != "bf16":
            raise UsageError(f"--attention {choice} needs --dtype bf16")
    if choice == "sdpa" or not cuda or dtype != "bf16":
        return "native"
    candidates = _candidates(choice, capability)
    if choice == "flash" and not candidates:
        raise UsageError(f"--attention flash: FlashAttention needs an Ampere or newer GPU (this one is sm{capability})",
                         hint="use --attention auto")  # fmt: skip
    not_cp = [b for b in candidates if context_parallel and not supports_context_parallel(b)]
    refused = {}
    for backend in candidates:
        if backend in not_cp:
            continue
        why = refusal(backend)
        if why is None:
            return backend
        refused[backend] = why
    broken = {b: w for b, w in refused.items() if _installed(BACKEND_PACKAGES[b])}  # installed, yet refused
    if choice == "auto":
        if broken and warn is not None:
            b, why = next(iter(broken.items()))
            warn(f"warning: --attention auto: {LABELS[b]} is installed but diffusers cannot use it ({why}); using PyTorch SDPA")
        return "native"
    if not_cp and not broken:  # what is left for --gpus is not installed: say why the rest is out
        names = ", ".join(LABELS[b] for b in not_cp)
        raise UsageError(f"--attention {choice}: {names} cannot run context parallelism (--gpus) in this diffusers; "
                         f"it can with {', '.join(context_parallel_backends())}",
                         hint="use --attention auto (or sdpa) with --gpus, or install flash-attn 2")  # fmt: skip
    backend, why = next(iter(broken.items() or refused.items()))
    extra = f" ({', '.join(LABELS[b] for b in not_cp)} cannot run context parallelism)" if not_cp else ""
    raise UsageError(f"--attention {choice}: diffusers cannot use {LABELS[backend]}: {why}{extra}",
                     hint="reinstall the package for this torch/CUDA, or use --attention auto")  # fmt: skip
