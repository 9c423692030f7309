"""Resume state: what a run needs to continue after the last finished chunk (docs/rollout.md).

    open_state(state_dir, known, chunks, size, log) -> Opened     before the pose videos are known: refuse a
                                                                   saved run with other settings, repair segments
    resume_point(state_dir, settings, n_chunks) -> ResumePoint     every setting known: where the rollout starts

Saved atomically after every chunk as `state.json` (chunk index, fingerprint, settings) plus
`state.safetensors` (last latent, identity memory, last decoded frame). Per-chunk generated latents
go to `latents/chunk_NNNNN.safetensors` so a finished chunk can be re-decoded when a run is
extended or shortened, and kept frames go to `segments/` as H.264 files that the final mp4 is
concatenated from. No pickles anywhere.

Every file is written atomically (media.files: a temporary name, then a rename), so a full disk or a
kill leaves the previous state valid. A segment counts only while it reads back whole: on resume
`damaged_segments` checks each one (decoding it) and removes any that does not, and the run decodes
it again from the chunk's saved latents (no DiT call).

No RNG state needs saving: chunk c's noise comes from a CPU generator seeded seed + 42c and the
memory-frame picks from a generator seeded by seed alone, so both are recomputed exactly on resume.

The fingerprint hashes everything that changes the frames (inputs, weights, size, steps, seed,
prompt, dtype, device kind, LoRAs) but not the length, so a longer run extends a shorter one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from animate_cli import media
from animate_cli.errors import ResumeMismatchError
from animate_cli.media.files import atomic_write_bytes, remove_stale

if TYPE_CHECKING:
    import torch

    from animate_cli.rollout.plan import ChunkSpec

SCHEMA = "everanimate.state/1"


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class RunState:
    next_chunk: int  # chunks 0..next_chunk-1 are finished
    fingerprint: str
    last_latent: torch.Tensor  # [1, 16, 1, h, w] float32: the motion latent of the next chunk
    memory: torch.Tensor | None  # [1, 16, K, h, w] float32 identity memory (None until chunk 0 finished)
    last_frame: torch.Tensor  # uint8 [H, W, 3]: the CLIP input of the next chunk
    settings: dict


@dataclass(frozen=True)
class ResumePoint:
    """Where the rollout starts and what it saves after each chunk."""

    state_dir: Path
    state: RunState | None  # the state after the last finished chunk, None for a fresh start
    start_chunk: int
    fingerprint: str
    settings: dict  # what must match for a saved state to be continued


@dataclass(frozen=True)
class Opened:
    """A state folder opened before every setting is known (the pose videos may still be extracted)."""

    next_chunk: int  # the saved run's next chunk (0 without a state), at most the plan's chunk count
    repaired: list[int]  # finished chunks whose damaged segment was removed, to be decoded again
    missing: list[int]  # chunks without a segment (to generate, or to decode again)


def open_state(state_dir: Path, known: dict, chunks: Sequence[ChunkSpec], size: tuple[int, int],
               log: Callable[[str], None]) -> Opened:  # fmt: skip
    """Open, verify and repair a run's state folder: ResumeMismatchError when the saved run differs in one of
    the `known` settings (so a doomed run loads no model); every finished chunk's segment checked against
    `size` (the written frame size), a damaged one removed and said in one line (it is decoded again from the
    chunk's saved latents, no DiT call)."""
    next_chunk = min(check_known_settings(state_dir, known), len(chunks))
    bad = damaged_segments(state_dir, chunks[:next_chunk], size)
    if bad:
        what = "; ".join(f"chunk {c + 1}: {problem}" for c, problem in bad)
        log(f"resume: {len(bad)} saved segment{'s' if len(bad) > 1 else ''} did not read back whole ({what}); "
            "decoding again from the saved latents, no chunk is generated again")  # fmt: skip
    missing = [s.index for s in chunks if not segment_path(state_dir, s.index, s.keep).exists()]
    return Opened(next_chunk, [c for c, _ in bad], missing)


def resume_point(state_dir: Path, settings: dict, n_chunks: int) -> ResumePoint:
    """Every setting known: the saved state (ResumeMismatchError when it belongs to other settings) and the
    chunk the rollout starts from."""
    state = load_state(state_dir, settings)
    start = min(state.next_chunk, n_chunks) if state else 0
    return ResumePoint(state_dir, state, start, fingerprint(settings), settings)


def save_state(state_dir: Path, state: RunState) -> None:
    """Tensors first, then the JSON that points at them: a crash between the two keeps the old state valid."""
    from safetensors.torch import save

    tensors = {"last_latent": state.last_latent.contiguous().cpu(), "last_frame": state.last_frame.contiguous().cpu()}
    if state.memory is not None:
        tensors["memory"] = state.memory.contiguous().cpu()
    name = f"state-{state.next_chunk:05d}.safetensors"
    atomic_write_bytes(state_dir / name, save(tensors))
    meta = {"schema": SCHEMA, "next_chunk": state.next_chunk, "fingerprint": state.fingerprint,
            "tensors": name, "settings": state.settings}  # fmt: skip
    atomic_write_bytes(state_dir / "state.json", json.dumps(meta, indent=1, default=str).encode())
    for old in state_dir.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_state(state_dir: Path, settings: dict) -> RunState | None:
    """The saved state, None when there is none; ResumeMismatchError when it belongs to other settings."""
    from safetensors.torch import load_file

    meta_path = state_dir / "state.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(state_dir / meta["tensors"]))
    except (OSError, ValueError, KeyError) as e:
        raise ResumeMismatchError(f"resume state in {state_dir} is unreadable ({e})",
                                  hint="pass --fresh to discard it and start over") from None  # fmt: skip
    if meta.get("schema") != SCHEMA or meta.get("fingerprint") != fingerprint(settings):
        raise _mismatch(state_dir, settings, meta.get("settings", {}))
    return RunState(meta["next_chunk"], meta["fingerprint"], tensors["last_latent"],
                    tensors.get("memory"), tensors["last_frame"], meta["settings"])  # fmt: skip


def _mismatch(state_dir: Path, settings: dict, old: dict, keys=None) -> ResumeMismatchError:
    now = json.loads(json.dumps(settings, default=str))
    changed = sorted(k for k in (keys or now.keys() | old.keys()) if now.get(k) != old.get(k))
    return ResumeMismatchError(
        f"{state_dir} holds a run with different settings{' (' + ', '.join(changed) + ')' if changed else ''}",
        hint="pass --fresh to discard it and start over, or --out elsewhere to keep both",
    )


def check_known_settings(state_dir: Path, known: dict) -> int:
    """Before every setting is known (the pose videos are still being extracted): ResumeMismatchError
    now when the saved run differs in one of `known`'s settings, so a doomed run loads no model. Returns
    the saved run's next chunk (0 without a state). `load_state` still checks everything afterwards."""
    meta_path = state_dir / "state.json"
    if not meta_path.exists():
        return 0
    try:
        meta = json.loads(meta_path.read_text())
        old, next_chunk = meta["settings"], int(meta["next_chunk"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ResumeMismatchError(f"resume state in {state_dir} is unreadable ({e})",
                                  hint="pass --fresh to discard it and start over") from None  # fmt: skip
    now = json.loads(json.dumps(known, default=str))
    if meta.get("schema") != SCHEMA or any(now[k] != old.get(k) for k in now):
        raise _mismatch(state_dir, known, old, keys=now.keys())
    return next_chunk


def save_chunk_latents(state_dir: Path, chunk: int, latents) -> Path:
    from safetensors.torch import save

    path = state_dir / "latents" / f"chunk_{chunk:05d}.safetensors"
    atomic_write_bytes(path, save({"latents": latents.contiguous().cpu()}))
    return path


def load_chunk_latents(state_dir: Path, chunk: int):
    from safetensors.torch import load_file

    return load_file(str(state_dir / "latents" / f"chunk_{chunk:05d}.safetensors"))["latents"]


def segment_path(state_dir: Path, chunk: int, keep: int) -> Path:
    """The H.264 file holding chunk `chunk`'s kept frames; the name records how many."""
    return state_dir / "segments" / f"chunk_{chunk:05d}_{keep:03d}.mp4"


def saved_next_chunk(state_dir: Path) -> int:
    """The chunk a run in `state_dir` would continue from (0 when there is no readable state)."""
    try:
        return int(json.loads((state_dir / "state.json").read_text())["next_chunk"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def remove_temporaries(state_dir: Path) -> list[Path]:
    """Delete what a killed run can leave in the state folder: `*.tmp` (state, latents) and `*.partial.mp4`
    (segments, preview, output). Only the lock holder calls this, so none belongs to a live writer."""
    gone = []
    for folder in (state_dir, state_dir / "latents", state_dir / "segments"):
        gone += remove_stale(folder, ("*.tmp", "*.partial.mp4"))
    return gone


def damaged_segments(state_dir: Path, specs: Sequence[ChunkSpec], size: tuple[int, int]) -> list[tuple[int, str]]:
    """(chunk, what is wrong) for each finished chunk's segment in `specs` (ChunkSpec: index, keep) that
    exists but does not decode to `keep` frames of `size`; each is removed, so that it counts as missing
    and is decoded again from the chunk's saved latents. A segment that is simply absent is not listed."""
    bad = []
    for spec in specs:
        seg = segment_path(state_dir, spec.index, spec.keep)
        if not seg.exists():
            continue
        _, problem = media.check_video(seg, spec.keep, size, decode=True)
        if problem is not None:
            seg.unlink(missing_ok=True)
            bad.append((spec.index, problem))
    return bad
