"""One chunk's denoise on every rank of a `--gpus N` run: rank 0 shares the chunk's inputs, all ranks
run the same `denoise_chunk` in lockstep (see models/parallel.py for the process layout).

    denoise(transformer, inputs, steps, shift)   # rank 0, in the chunk loop (plain denoise_chunk on one GPU)
    serve(transformer, world)                    # ranks > 0, until rank 0 says stop
    with leading(): ...                          # around rank 0's run: tells the others stop, or the error
"""

from __future__ import annotations

from contextlib import contextmanager

from animate_cli.models import parallel
from animate_cli.models.parallel import RemoteError, Stop, World, current, error_message, recv_header, send_header

# Chunk tensors, in this order; `motion` is absent in chunk 0.
_CHUNK_FIELDS = ("anchors", "motion", "pose", "face", "clip", "text", "noise")


def _share_chunk(inputs, steps: int, shift: float, world: World):
    """Rank 0: send this chunk's inputs. Other ranks: `inputs` is None; returns the received ones."""
    import torch
    import torch.distributed as dist

    from animate_cli.rollout.denoise import ChunkInputs

    if world.is_writer:
        tensors = {f: getattr(inputs, f) for f in _CHUNK_FIELDS if getattr(inputs, f) is not None}
        meta = {f: [list(t.shape), str(t.dtype).removeprefix("torch.")] for f, t in tensors.items()}
        send_header({"op": "chunk", "steps": steps, "shift": shift, "tensors": meta})
        for t in tensors.values():
            dist.broadcast(t.to(world.device).contiguous(), src=0)
        return inputs, steps, shift
    msg = recv_header()
    got = {}
    for f, (shape, dtype) in msg["tensors"].items():
        got[f] = torch.empty(shape, dtype=getattr(torch, dtype), device=world.device)
        dist.broadcast(got[f], src=0)
    fields = {f: got.get(f) for f in _CHUNK_FIELDS}
    return ChunkInputs(**fields), msg["steps"], msg["shift"]


_in_collective = False  # rank 0 is inside a chunk's DiT calls: the others are in collectives, not listening


def denoise(transformer, inputs, steps: int, shift: float, on_step=None):
    """`rollout.denoise_chunk`, on every rank at once when this process is rank 0 of several."""
    global _in_collective
    from animate_cli.rollout.denoise import denoise_chunk

    world = current()
    if world is None or world.size == 1:
        return denoise_chunk(transformer, inputs, steps, shift, on_step=on_step)

    def step(j):  # Python drops a KeyboardInterrupt raised inside a fork hook (ffmpeg starts): check again here
        if parallel.interrupted_by_signal():
            raise KeyboardInterrupt
        if on_step is not None:
            on_step(j)

    if parallel.interrupted_by_signal():
        raise KeyboardInterrupt
    _in_collective = True
    _share_chunk(inputs, steps, shift, world)
    out = denoise_chunk(transformer, inputs, steps, shift, on_step=step)
    _in_collective = False
    return out


def serve(transformer, world: World) -> None:
    """Ranks > 0 after loading: run every chunk rank 0 sends, until it says stop (returns) or error (raises)."""
    from animate_cli.rollout.denoise import denoise_chunk

    while True:
        try:
            inputs, steps, shift = _share_chunk(None, 0, 0.0, world)
        except Stop:
            return
        denoise_chunk(transformer, inputs, steps, shift)


@contextmanager
def leading():
    """Around rank 0's run: afterwards tell the other ranks to stop, or which error ended the run.

    Nothing is sent when the others cannot be listening: after Ctrl-C (every rank got the signal
    and may be gone), after an error all ranks already agreed on, or from inside a DiT call (the
    others are in a collective; the launcher ends them when this rank exits).
    """
    world = current()
    if world is None:
        yield
        return
    try:
        yield
    except BaseException as exc:
        if parallel.interrupted_by_signal() and not isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt from None  # a collective failed because another rank stopped on Ctrl-C
        if not (isinstance(exc, (KeyboardInterrupt, RemoteError)) or _in_collective):
            send_header(error_message(exc))
        raise
    send_header({"op": "stop"})
    parallel.close_world()
