"""Several GPUs for one video, without torch: which N work, what N is predicted to give, and the
single-machine launcher behind `everanimate run --gpus N`. (The torch side is models/parallel.py, rollout/distributed.py and runner/ranks.py.)

Which N: Ulysses attention hands each rank H/N whole heads, so N must divide the head count (40
for Wan2.2-Animate-14B: 1, 2, 4, 5, 8, 10, 20, 40), and the token sequence (24 latent slots x
(h/2)(w/2)) is split into N equal pieces, so N must divide it too: 37,440 tokens at 480p and
86,400 at 720p divide by every valid N. An odd `--size` that does not is refused, not padded.

The prediction (`predict`) is a paper model of one DiT step; benchmarks/README.md explains it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from animate_cli import config as C
from animate_cli.errors import UsageError
from animate_cli.options import RunConfig

REAL_HEADS = 40  # Wan2.2-Animate-14B num_attention_heads; used when no transformer config.json is at hand
MODEL_DIM = 5120  # 40 heads x 128
MODEL_LAYERS = 40
FFN_DIM = 13824
FACE_BLOCKS = 8  # a face adapter after every 5th block
FACE_TOKENS = 5  # per latent frame: 4 face-encoder heads + 1 padding token
IMAGE_TOKENS = 257  # CLIP ViT-H/14 tokens
BYTES = 2  # bf16 activations on the wire
# Paper-model inputs (peers-and-performance §E): official Wan2.2 I2V-A14B, 1 x H100, 480p, 81 frames
# (21 latent frames x 1,560 tokens = 32,760), 80 DiT passes in 327.8 s -> ~4.1 s per pass. No
# measured one-GPU Animate step exists in this repo yet; we scale that figure by model FLOPs.
REF_STEP_S, REF_TOKENS = 4.1, 21 * 1560
NVLINK_BYTES_PER_S = 450e9  # H100 SXM NVLink 4, per direction
MOTION_ENCODER_FLOPS = 3e12  # 77 face crops at 512 px through the motion encoder, every step, on every rank
LAUNCH_GRACE_S = 20.0  # after one rank fails, how long the others get to exit on their own before being ended


def valid_degrees(heads: int) -> list[int]:
    return [n for n in range(1, heads + 1) if heads % n == 0]


def heads_of(base: Path | None) -> int:
    """num_attention_heads from the transformer's config.json; 40 (the real model) when absent."""
    try:
        return int(json.loads((Path(base) / "transformer" / "config.json").read_text())["num_attention_heads"])
    except (OSError, ValueError, KeyError, TypeError):
        return REAL_HEADS


def check_degree(n: int, heads: int, tokens: int) -> None:
    """UsageError (exit 2) unless N ranks can split both the heads and the tokens evenly."""
    if n < 1:
        raise UsageError(f"--gpus must be at least 1, got {n}")
    if heads % n:
        ok = ", ".join(map(str, valid_degrees(heads)))
        raise UsageError(f"{n} GPUs cannot split the model's {heads} attention heads evenly; use one of: {ok}")
    if tokens % n:
        raise UsageError(f"{n} GPUs cannot split the {tokens} tokens of this --size evenly",
                         hint="use --resolution 480p/720p or a size whose token count N divides")  # fmt: skip


def step_flops(tokens: int, parallel: bool) -> float:
    """DiT FLOPs of one step that split over ranks (parallel=True) or run on every rank (False)."""
    d, f, n, ctx = MODEL_DIM, FFN_DIM, MODEL_LAYERS, C.TEXT_TOKENS + IMAGE_TOKENS
    if parallel:  # everything per token: projections, FFN, both attentions, face adapter q/out
        return (n * tokens * (12 * d * d + 4 * d * f) + n * 4 * tokens * tokens * d + n * 4 * tokens * ctx * d
                + FACE_BLOCKS * (4 * d * d * tokens + 4 * tokens * FACE_TOKENS * d))  # fmt: skip
    # replicated: text/image k,v projections, face k,v, the motion encoder
    return n * 4 * d * d * ctx + FACE_BLOCKS * 4 * d * d * C.LATENT_SLOTS * FACE_TOKENS + MOTION_ENCODER_FLOPS


def _ref_step_flops(tokens: int) -> float:
    """The reference I2V-A14B pass (no face adapter, no CLIP tokens) for the throughput calibration."""
    d, f, n = MODEL_DIM, FFN_DIM, MODEL_LAYERS
    return n * tokens * (12 * d * d + 4 * d * f) + n * 4 * tokens * tokens * d + n * 4 * tokens * C.TEXT_TOKENS * d


def all_to_all_bytes(tokens: int, n: int) -> float:
    """Bytes one GPU sends per DiT step: Ulysses q, k, v in and out in every block's self-attention
    (4 all-to-alls of [S/N, 5120] bf16, of which (N-1)/N leaves the GPU), plus the output gather.
    Cross-attention (replicated text/image keys) and our face adapter (replicated face tokens) send nothing."""
    if n == 1:
        return 0.0
    per_block = 4 * (tokens / n) * MODEL_DIM * BYTES * (n - 1) / n
    gather_out = (tokens / n) * 16 * 4 * BYTES * (n - 1)  # proj_out [S/N, 64] to every other rank
    return MODEL_LAYERS * per_block + gather_out


def predict(tokens: int, n: int) -> dict:
    """One DiT step on N GPUs vs one: compute scales 1/N except the replicated part; the all-to-alls
    are not overlapped with compute in diffusers, so their time adds."""
    par, rep = step_flops(tokens, True), step_flops(tokens, False)
    t1 = REF_STEP_S * (par + rep) / _ref_step_flops(REF_TOKENS)  # same achieved throughput as the reference
    sec_per_flop = t1 / (par + rep)
    comm_bytes = all_to_all_bytes(tokens, n)
    comm_s = comm_bytes / NVLINK_BYTES_PER_S
    tn = sec_per_flop * (par / n + rep) + comm_s
    return {"gpus": n, "tokens": tokens, "tokens_per_gpu": tokens // n, "one_gpu_step_s": round(t1, 3),
            "step_s": round(tn, 3), "all_to_all_gb_per_gpu": round(comm_bytes / 1e9, 3),
            "all_to_all_ms": round(comm_s * 1e3, 1), "speedup": round(t1 / tn, 2),
            "assumes": "Ulysses over NVLink 450 GB/s (H100 SXM); one-GPU step scaled from Wan2.2's 4.1 s/pass "
                       "at 480p on 1xH100 by FLOPs; no compute/communication overlap"}  # fmt: skip


# --- the launcher --------------------------------------------------------------------------------


def check_attention(attention: str, device: str, dtype: str) -> str:
    """The attention backend the ranks will use, asked of diffusers in the launcher before any rank starts
    (models.attention, with context parallelism): an explicit --attention it cannot run under context
    parallelism is a UsageError (exit 2) here, not a ValueError on every rank at its first DiT call."""
    import torch

    from animate_cli.models.attention import resolve_attention
    from animate_cli.models.device import compute_capability

    dev = "cpu" if device == "cpu" or not torch.cuda.is_available() else "cuda:0"  # every rank's GPU is alike
    return resolve_attention(attention, dev, dtype, compute_capability(dev), context_parallel=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strip_gpus(argv: list[str]) -> list[str]:
    """The command line without `--gpus N` / `--gpus=N` (each rank is one process)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--gpus":
            skip = True
        elif not a.startswith("--gpus="):
            out.append(a)
    return out


def launch(n: int, argv: list[str]) -> int:
    """Run `python -m animate_cli <argv>` as N ranks on this machine and return the run's exit code.

    Sets the environment torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT on loopback),
    but, unlike torchrun, reports failures as the ranks do: rank 0's exit code (or the first failing
    rank's), no launcher traceback. Ctrl-C is forwarded once to every rank (they run in their own
    process group so the terminal does not signal them twice) and the launcher exits 130. A rank
    that fails ends the others after LAUNCH_GRACE_S if they do not stop on their own.
    """
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(n),
           "LOCAL_WORLD_SIZE": str(n)}  # fmt: skip
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    cmd = [sys.executable, "-m", "animate_cli", *argv]
    procs = [subprocess.Popen(cmd, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, start_new_session=True)
             for r in range(n)]  # fmt: skip
    interrupted = False

    def on_signal(signum, _frame):
        nonlocal interrupted
        interrupted = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    deadline = None
    try:
        while any(p.poll() is None for p in procs):
            failed = any(p.returncode not in (None, 0) for p in procs)
            if (failed or interrupted) and deadline is None:
                deadline = time.monotonic() + LAUNCH_GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.05)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if interrupted:
        return 130
    codes = [p.returncode for p in procs]  # rank 0 first: it names the error for everyone
    return next((c for c in codes if c > 0), 0 if all(c == 0 for c in codes) else 1)


def rank_count(gpus: int | None, cfg: RunConfig) -> int:
    """How many ranks split each DiT step: torchrun's WORLD_SIZE, else --gpus. Usage errors (exit 2) for an N
    the model cannot be split into, before anything heavy happens."""
    from animate_cli import weights
    from animate_cli.models import parallel
    from animate_cli.rollout.plan import make_plan
    from animate_cli.runner import multigpu

    world = parallel.env_world_size()
    if world > 1 and gpus not in (None, 1, world):
        raise UsageError(f"--gpus {gpus} under torchrun with {world} processes; leave --gpus out, torchrun sets the count")
    n = world if world > 1 else (gpus or 1)
    if n == 1:
        return 1
    if cfg.offload == "blocks":  # not shown to compose: CP hooks and group-offload hooks both wrap the blocks
        raise UsageError(f"--offload blocks with {n} GPUs: context parallelism keeps the whole DiT on every GPU",
                         hint="use --offload none (or auto) with --gpus, or --offload blocks on one GPU")  # fmt: skip
    if cfg.device.startswith("cuda:"):
        raise UsageError(f"--device {cfg.device} with {n} GPUs: each rank uses its own GPU; use --device auto")
    base = cfg.weights_dir / weights.BASE_DIR
    tokens = make_plan(1, cfg.width, cfg.height, 1).tokens_per_call
    multigpu.check_degree(n, multigpu.heads_of(base), tokens)
    return n


def check_devices(n: int, device: str) -> None:
    if device == "cpu":
        return  # CPU processes over gloo: the tiny test weights only (device.choose refuses the real model)
    import torch

    from animate_cli.errors import DeviceError

    have = torch.cuda.device_count()
    if have < n:
        raise DeviceError(f"--gpus {n} but {have} CUDA device(s) visible", hint=f"use --gpus with at most {have}")
