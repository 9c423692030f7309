"""`run --fast`: a draft of the same seconds at a fifth of the DiT cost, to try settings on a long video before
paying for the full run (docs/loras.md).

--fast stacks LightX2V's step-distill LoRA right after the EverAnimate LoRA and samples 4 steps per chunk
instead of 20, cfg 1 (the rollout never uses classifier-free guidance). The 4 steps at shift 5 are the
distill LoRA's own schedule: LightX2V's denoising_step_list [1000, 750, 500, 250] with sample_shift 5 gives
the sigmas 1, 0.9375, 0.8333, 0.625 -- exactly rollout.denoise.flow_sigmas(4, 5). The combination with the
EverAnimate LoRA is untested by either LoRA's authors: the output is marked as a draft everywhere (summary,
--json, report, the mp4's comment tag) and has its own resume fingerprint.

Also here, because the CLI and the pipeline call them in one line each: the step count (`resolve_steps`), the
distill LoRA's path (`distill_lora`, exit 4 naming the command that fetches it) and the LoRA part of the
resume fingerprint (`lora_identity`: content hash and scale of every LoRA).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from animate_cli import config as C
from animate_cli.errors import UsageError, WeightsMissingError

if TYPE_CHECKING:
    from collections.abc import Iterable

FAST_STEPS = 4  # the distill LoRA's schedule: LightX2V's 4-step denoising_step_list (docs/loras.md)
FAST_STEP_RANGE = (4, 8)  # ComfyUI's Wan-Animate template samples the same family of LoRA in 6 steps
FAST_SCALE = 1.0  # LightX2V's Wan-Animate config stacks it at strength 1.0
DRAFT_COMMENT = "everanimate draft (--fast)"  # start of the mp4 comment tag of a --fast output; the report reads it
HASH_CHUNK = 1 << 20  # bytes read at a time when hashing a LoRA file
_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256: each file hashed once per process


def resolve_steps(steps: int | None, fast: bool) -> int:
    """--steps as given, or its default: 20 (C.STEPS), 4 with --fast; with --fast only FAST_STEP_RANGE."""
    if not fast:
        return C.STEPS if steps is None else steps
    if steps is None:
        return FAST_STEPS
    lo, hi = FAST_STEP_RANGE
    if not lo <= steps <= hi:
        raise UsageError(f"--steps {steps} with --fast: choose {lo} to {hi} (the distill LoRA is made for {FAST_STEPS})")
    return steps


def distill_lora(weights_dir: Path) -> Path:
    """The step-distill LoRA under the weights folder, or WeightsMissingError (exit 4) naming the fetch command."""
    from animate_cli.weights import FAST_ITEMS, problems
    from animate_cli.weights.registry import fix_command

    root = Path(weights_dir).expanduser()
    found = problems(root, "480p", ("fast",))
    if found:
        rel, why = found[0]
        raise WeightsMissingError(f"--fast needs the step-distill LoRA {root / rel} ({why})",
                                  hint=f"run `{fix_command(root, ['fast'], '480p')}`")  # fmt: skip
    return root / FAST_ITEMS[0].dest


def with_distill(specs: Iterable[C.LoraSpec], fast: bool, weights_dir: Path) -> list[C.LoraSpec]:
    """The --lora specs, with the distill LoRA in front under --fast (so it is fused right after EverAnimate's)."""
    specs = list(specs)
    return [C.LoraSpec(distill_lora(weights_dir), FAST_SCALE), *specs] if fast else specs


def file_digest(path: Path) -> str:
    """sha256 of a file's content (memoised per path, size and mtime)."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(HASH_CHUNK):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def lora_identity(loras: Iterable[tuple[Path, float]]) -> list[list]:
    """The LoRA part of the resume fingerprint: [content sha256, scale] of every LoRA, in fuse order."""
    return [[file_digest(Path(p)), float(s)] for p, s in loras]


def output_comment(fast: bool, steps: int) -> str:
    """The mp4 comment tag of an output: the draft mark under --fast, nothing otherwise."""
    return f"{DRAFT_COMMENT}: {steps} DiT steps per chunk with the lightx2v step-distill LoRA" if fast else ""


def plan_entry(fast: bool, steps: int, weights_dir: Path) -> dict:
    """What --dry-run says about the mode: {"fast": False} or the draft's steps and its distill LoRA."""
    if not fast:
        return {"fast": False}
    from animate_cli.weights import FAST_ITEMS, REPOS, problems

    it = FAST_ITEMS[0]
    root = Path(weights_dir).expanduser()
    return {"fast": True, "steps": steps, "scale": FAST_SCALE,
            "distill_lora": {"path": str(root / it.dest), "repo": REPOS[it.repo].repo_id, "file": it.path,
                             "present": not problems(root, "480p", ("fast",))}}  # fmt: skip
