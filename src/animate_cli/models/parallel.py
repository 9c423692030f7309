"""Context parallelism for the Animate DiT: one video on N GPUs (Ulysses sequence parallelism).

What diffusers 0.42.1 gives us and what it lacks (the reason this module exists):
- It has the engine: `ContextParallelConfig(ulysses_degree=N)` + `model.enable_parallelism(config, cp_plan)`
  split module inputs/outputs along the token axis with hooks and turn every self-attention into
  Ulysses attention (all-to-all: tokens -> heads, attend, heads -> tokens).
- `WanAnimateTransformer3DModel` has no `_cp_plan`, so we pass one (`animate_cp_plan`): the same
  split points as `WanTransformer3DModel._cp_plan` (rope output, the first block's input, the
  gathered `proj_out`), without the timestep split (our timestep is one value, not per token).
- Its face adapter (`WanAnimateFaceBlockAttnProcessor`) groups the query by latent frame with
  `query.unflatten(1, (T, -1))` and passes the parallel config on to the attention op. On a token
  shard both are wrong: the shard holds S/N tokens, not T whole frames, and Ulysses would mix the
  frames of different ranks. Wan2.2's own code all-gathers the query before each face block and
  re-splits after. We need no communication at all: the face motion tokens (K/V, 24 x 5 tokens)
  are replicated on every rank, so each rank attends its own tokens to the face tokens of the frame
  each token belongs to (`ShardedFaceAttnProcessor`), exactly what the full-sequence op computes.
- `_resolve_parallel_config` computes `rank % torch.accelerator.device_count()`, which divides by
  zero on a CPU-only build; `_cpu_device_count_shim` lets the CPU/gloo test run the same code path.

Process layout (`torchrun --nproc-per-node N -m animate_cli run ...` or `everanimate run --gpus N`):
rank 0 is the only writer: it reads the inputs, extracts the pose, runs the VAE and CLIP, writes
segments, the resume state and the output, exactly as a one-GPU run. The other ranks load the
same transformer and then only run DiT rollouts: before each chunk rank 0 broadcasts that chunk's
`ChunkInputs` (noise included), and every rank runs the identical `denoise_chunk` in lockstep.
Broadcasting rather than recomputing keeps the conditioning bit-identical by construction; it costs
~150 MB per chunk (mostly the 77 face crops), well under a second on NVLink against 20 DiT steps.
The VAE and CLIP run on rank 0 only: their work per chunk is a few percent of the DiT's, and
splitting them would need a parallel scheme of their own; the other ranks wait meanwhile.

Control messages (JSON, never pickles) are CPU tensors, which "cpu:gloo,cuda:nccl" sends over gloo;
chunk tensors go over NCCL on GPUs.
An error on rank 0 is sent to the others, which exit with the same code; an error on another rank
while loading is gathered at the one agreement point (`enable_context_parallel`) so every rank
exits with that rank's message and code. A rank that dies inside a DiT call cannot tell the others
(they are inside a collective): the launcher (`multigpu.launch`, or torchrun) ends them.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass

from animate_cli.errors import EverAnimateError, ExitCode

# Collectives wait this long before failing. Rank 0 extracts the pose (minutes on a long video)
# while the other ranks wait for their first message, so the 10/30 min defaults are too short.
TIMEOUT_S = 3 * 3600
HEADER_BYTES = 1 << 16  # one control message (JSON); the largest is an error line or a chunk's tensor list


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    device: str  # "cuda:<local_rank>" or "cpu": where this rank's tensors live

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


_WORLD: World | None = None


def env_world_size() -> int:
    """WORLD_SIZE as torchrun (or `multigpu.launch`) set it; 1 for a plain run. No torch import."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def current() -> World | None:
    """The world of this process when it is one of several ranks, else None."""
    return _WORLD


def init_world(device: str) -> World:
    """Join the process group torchrun described in the environment (env:// rendezvous).

    GPU runs use NCCL for tensors and gloo for the small CPU control messages; CPU runs use gloo.
    """
    global _WORLD
    import signal
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    signal.signal(signal.SIGINT, _on_sigint_writer if rank == 0 else _on_sigint_other)
    local = int(os.environ.get("LOCAL_RANK", rank))
    on_gpu = device != "cpu" and torch.cuda.is_available()
    if on_gpu:
        torch.cuda.set_device(local)  # "cuda"/"auto" on this rank means its own GPU from here on
    dist.init_process_group("cpu:gloo,cuda:nccl" if on_gpu else "gloo", timeout=timedelta(seconds=TIMEOUT_S))
    _WORLD = World(rank, size, local, f"cuda:{local}" if on_gpu else "cpu")
    return _WORLD


# Ctrl-C reaches every rank as the SIGINT the launcher forwards (set explicitly: a rank started from a
# background job would inherit SIGINT ignored). Rank 0 stops where it is, as a one-GPU run does, and
# prints the one "interrupted" line. The other ranks only note it: raised at an arbitrary point (a
# logging lock, a finaliser) it would print noise; they stop at their next collective, which fails
# once rank 0 is gone, and exit 130 quietly.
_interrupted = False


def _on_sigint_writer(signum, frame):
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _on_sigint_other(signum, frame):
    global _interrupted
    _interrupted = True


def peer_gone(exc: BaseException) -> bool:
    """A collective failed because another rank exited (it reports its own reason)."""
    import torch.distributed as dist

    return isinstance(exc, dist.DistError) or any(w in str(exc) for w in ("gloo", "Gloo", "NCCL", "Connection"))


def close_world() -> None:
    global _WORLD
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _WORLD = None


# --- the plan and the face adapter ---------------------------------------------------------------


def animate_cp_plan() -> dict:
    """Where diffusers splits and gathers the token axis of WanAnimateTransformer3DModel.forward.

    Everything before block 0 (patch + pose embedding, the EverAnimate layout hooks on
    `pose_patch_embedding` and `face_encoder`, text/CLIP/time embeddings, the motion and face
    encoders) runs on the full tensors on every rank. The token sequence [B, S, C] is split into N
    equal contiguous pieces at block 0's input and the rotary tables alike; `proj_out`'s output is
    all-gathered, so every rank gets the whole velocity and takes the same Euler step.
    """
    # ContextParallelInput/Output are not exported at the top level in 0.42.1; transformer_wan.py imports them the same way.
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput  # noqa: PLC2701

    rope = ContextParallelInput(split_dim=1, expected_dims=4, split_output=True)  # cos/sin [1, S, 1, D]
    return {
        "rope": {0: rope, 1: rope},
        "blocks.0": {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def shard_position(parallel_config) -> tuple[int, int]:
    """(index, count) of this rank's token shard, as diffusers' EquipartitionSharder chose it."""
    import torch.distributed as dist

    mesh = parallel_config.context_parallel_config._flattened_mesh
    return dist.get_rank(mesh.get_group()), mesh.size()


def face_attention(attn, hidden_states, motion, shard: int, shards: int, backend=None):
    """The face adapter's frame-aligned cross attention on token shard `shard` of `shards`.

    hidden_states: [B, S/shards, C], tokens shard*S/shards ... of the frame-major sequence (S = T*hw).
    motion: [B, T, M, C] face motion tokens of all T latent frames (replicated on every rank).
    Each token attends only to the M motion tokens of its own latent frame. Returns [B, S/shards, C].
    """
    import torch
    from diffusers.models.attention_dispatch import dispatch_attention_fn

    x = attn.pre_norm_q(hidden_states)
    m = attn.pre_norm_kv(motion)
    b, t, n, _ = m.shape
    q = attn.norm_q(attn.to_q(x).unflatten(2, (attn.heads, -1)))  # [B, s, H, D]
    m = m.flatten(1, 2)
    k = attn.norm_k(attn.to_k(m).view(b, t, n, attn.heads, -1))  # [B, T, M, H, D]
    v = attn.to_v(m).view(b, t, n, attn.heads, -1)
    s = q.shape[1]
    total = s * shards
    if total % t:
        raise ValueError(f"{total} tokens do not split into {t} latent frames")
    hw, start = total // t, shard * s

    def attend(qq, kk, vv):  # local attention only: the parallel config must not reach this op
        return dispatch_attention_fn(qq, kk, vv, dropout_p=0.0, is_causal=False, backend=backend, parallel_config=None)

    if start % hw == 0 and s % hw == 0:  # whole frames on this shard (N divides T): one batched call
        f0, nf = start // hw, s // hw
        kk, vv = k[:, f0 : f0 + nf].flatten(0, 1), v[:, f0 : f0 + nf].flatten(0, 1)
        out = attend(q.unflatten(1, (nf, hw)).flatten(0, 1), kk, vv).unflatten(0, (b, nf)).flatten(1, 2)
    else:  # the shard starts or ends inside a frame (N = 5, 10, ...): one call per frame piece
        pieces, pos = [], start
        while pos < start + s:
            f = pos // hw
            end = min((f + 1) * hw, start + s)
            pieces.append(attend(q[:, pos - start : end - start], k[:, f], v[:, f]))
            pos = end
        out = torch.cat(pieces, dim=1)
    out = out.flatten(2, 3).type_as(q)
    return attn.to_out(out)


class ShardedFaceAttnProcessor:
    """Drop-in for WanAnimateFaceBlockAttnProcessor on a token shard (see the module docstring).

    `enable_parallelism` sets `_parallel_config` on every processor that has the attribute; we read
    it only to know which shard this rank holds, never to parallelise the attention itself.
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        if attention_mask is not None:  # the Animate forward never passes one
            raise NotImplementedError("face attention mask under context parallelism")
        shard, shards = (0, 1) if self._parallel_config is None else shard_position(self._parallel_config)
        return face_attention(attn, hidden_states, encoder_hidden_states, shard, shards, self._attention_backend)


@contextmanager
def _cpu_device_count_shim():
    """diffusers' `_resolve_parallel_config` does `rank % torch.accelerator.device_count()`; on a CPU-only
    build that count is 0. Report 1 for the duration of the call so the CPU/gloo run takes the same path."""
    import torch

    if torch.accelerator.device_count() > 0:
        yield
        return
    original = torch.accelerator.device_count
    torch.accelerator.device_count = lambda *a, **k: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = original


def enable_context_parallel(transformer, world: World | None = None):
    """Split every DiT call of `transformer` over the ranks of `world` (default: this process's).

    No-op for a single process. On several ranks this is also the one point where all ranks agree
    that loading worked: a rank that failed raises here on every rank with its message.
    Call after LoRAs are fused (the plan hooks wrap forward; weights must be final).
    """
    world = world or current()
    if world is None or world.size == 1:
        return transformer
    if world.is_writer:
        send_header({"op": "cp"})
    else:
        recv_header()  # "cp"; an error or stop from rank 0 raises here instead
    agree(None)
    heads = transformer.config.num_attention_heads
    if heads % world.size:  # checked by the CLI already; this guards other callers
        raise ValueError(f"Ulysses degree {world.size} does not divide {heads} heads")
    from diffusers import ContextParallelConfig

    for block in transformer.face_adapter:
        block.set_processor(ShardedFaceAttnProcessor())
    import warnings

    from diffusers.utils import logging as dlog

    # Our progress bars are the only output: diffusers warns on every call that the API is experimental, and
    # its gather hook uses a functional collective torch 2.13 calls deprecated (a FutureWarning per process).
    warnings.filterwarnings("ignore", message=".*all_gather_tensor.*deprecated", category=FutureWarning)
    level = dlog.get_verbosity()
    dlog.set_verbosity_error()
    try:
        with _cpu_device_count_shim():
            transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=world.size), cp_plan=animate_cp_plan())
    finally:
        dlog.set_verbosity(level)
    return transformer


# --- control messages between rank 0 and the others ---------------------------------------------


class RemoteError(EverAnimateError):
    """An error that happened on another rank; this rank exits with its code without printing it again."""

    def __init__(self, message: str, hint: str | None, exit_code: int, code: str):
        super().__init__(message, hint)
        self.exit_code = ExitCode(exit_code)
        self.code = code


class Stop(Exception):
    """Rank 0 finished: the other ranks leave their loop."""


def _encode(obj: dict):
    import torch

    data = json.dumps(obj).encode()
    if len(data) > HEADER_BYTES - 4:
        raise ValueError("control message too long")
    buf = torch.zeros(HEADER_BYTES, dtype=torch.uint8)
    buf[:4] = torch.tensor(list(len(data).to_bytes(4, "little")), dtype=torch.uint8)
    buf[4 : 4 + len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return buf


def _decode(buf) -> dict:
    raw = bytes(buf.tolist())
    n = int.from_bytes(raw[:4], "little")
    return json.loads(raw[4 : 4 + n].decode())


def send_header(obj: dict) -> None:
    import torch.distributed as dist

    dist.broadcast(_encode(obj), src=0)


def recv_header() -> dict:
    import torch
    import torch.distributed as dist

    buf = torch.zeros(HEADER_BYTES, dtype=torch.uint8)
    dist.broadcast(buf, src=0)
    msg = _decode(buf)
    if msg["op"] == "error":
        raise RemoteError(msg["message"], msg.get("hint"), msg["exit_code"], msg["code"])
    if msg["op"] == "stop":
        raise Stop()
    return msg


def error_message(exc: BaseException) -> dict:
    """The one-line form every rank shows for `exc` (the CLI's own mapping for ours)."""
    from animate_cli.errors import as_error

    err = as_error(exc) or EverAnimateError(f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0],
                                             hint="this is a bug; set EVERANIMATE_DEBUG=1 for the full traceback")  # fmt: skip
    return {"op": "error", "message": err.message, "hint": err.hint, "exit_code": int(err.exit_code), "code": err.code}


def agree(exc: BaseException | None) -> None:
    """Every rank says whether it is fine; if any is not, all raise the first failing rank's error."""
    import torch
    import torch.distributed as dist

    world = current()
    mine = {"op": "ok"} if exc is None else error_message(exc)
    bufs = [torch.zeros(HEADER_BYTES, dtype=torch.uint8) for _ in range(world.size)]
    dist.all_gather(bufs, _encode(mine))
    for r, buf in enumerate(bufs):
        msg = _decode(buf)
        if msg["op"] == "error":
            where = "" if r == 0 else f"rank {r}: "
            raise RemoteError(where + msg["message"], msg.get("hint"), msg["exit_code"], msg["code"])


def interrupted_by_signal() -> bool:
    """True once this rank got Ctrl-C (SIGINT forwarded by the launcher)."""
    return _interrupted
