"""Could a real `run` start now? The readiness list `run --dry-run` prints after the plan.

Each check returns a small `Item`: ok, or a blocker with the exit code a real run would fail with
and the command or step that fixes it. The dry run exits with the code of the first blocker (0 when
there is none), so a script can ask "ready?" before a 48 GB download or an hour of GPU time.

No torch here (`run --dry-run` must not import it): the GPU is seen through `nvidia-smi`, the
weights through the structural check and the manifest, the disk through `shutil.disk_usage`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from animate_cli import config as C
from animate_cli.errors import ExitCode
from animate_cli.models.device import GpuInfo, cuda_ordinal, nvidia_smi_gpus, visible_gpus

# --- disk estimate -------------------------------------------------------------------------------
# The final mp4 and each chunk's segment are H.264 at CRF 16 (media.CRF). An assumption, not a
# measurement (there is no real output to measure here): x264 at CRF ~16 on 480p natural video
# usually lands at 2-5 Mbit/s, i.e. 0.2-0.5 bits per pixel per frame at 832x480x25; we take the top.
# The tiny random weights make noise, which needs ~4 bits/pixel (measured at 64x32): for them the
# estimate is low, which does not matter at their sizes.
H264_BITS_PER_PIXEL = 0.5
# Per chunk the state folder keeps the 20 generated latents ([1, 16, 20, h/8, w/8] in the run dtype,
# resume.save_chunk_latents) and the kept frames as a segment; plus one prompt embedding
# ([1, 512, 4096]) and the small state tensors, which AUX_STATE_BYTES bounds.
AUX_STATE_BYTES = 512 * 4096 * 4 + (16 << 20)
DISK_MARGIN = 1.1  # 10% on top: ffmpeg writes the output to a temp file next to it before renaming


@dataclass(frozen=True)
class Item:
    name: str  # "weights", "gpu", "disk"
    ok: bool
    message: str  # one line: what was found
    fix: str | None = None  # one line: what to do about a blocker (or a caution when ok)
    exit_code: int = 0  # what a real run would exit with (0 when ok)
    detail: dict | None = None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "blocker"

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status}


def first_blocker_code(items: list[Item]) -> int:
    return next((i.exit_code for i in items if not i.ok), int(ExitCode.OK))


# --- weights -------------------------------------------------------------------------------------
def weights_item(weights_dir: Path, resolution: str, need: tuple[str, ...], pose_model: str = "rtmw") -> Item:
    """Complete (with what is installed, repo@commit) or missing (with the download-weights command);
    of the pose files, those of `pose_model` (the one the run loads)."""
    from animate_cli import weights
    from animate_cli.weights import manifest as weights_manifest

    result = weights.check(weights_dir, need, resolution, pose_model)
    installed = weights_manifest.short(result["installed"])
    detail = {"dir": result["dir"], "installed": result["installed"], "problems": result["problems"]}
    if result["complete"]:
        return Item("weights", True, f"complete in {weights_dir} ({installed})", detail=detail)
    # Count in download-weights' terms (files to fetch, their size) rather than the structural check's.
    items = [it for it in weights.registry_items(need, resolution) if it.part != "pose" or it.model == pose_model]
    todo = [it for it in items if not weights.file_ok(Path(weights_dir) / it.dest)]
    if todo:
        total = len(items)
        what = f"missing {len(todo)} of {total} files (~{weights.format_bytes(sum(it.size for it in todo))} to download)"
    else:
        what = f"{len(result['problems'])} files incomplete ({result['problems'][0]['path']}, …)"
    return Item("weights", False, f"{what} in {weights_dir}", fix=result["fix"], exit_code=int(ExitCode.WEIGHTS),
                detail=detail)  # fmt: skip


# --- GPU -----------------------------------------------------------------------------------------
Gpu = GpuInfo  # one nvidia-smi reader for the whole package: device.nvidia_smi_gpus


def gpu_item(device: str, need_gib: float | None, tiny: bool, query: Callable[[], list[Gpu] | None] = nvidia_smi_gpus,
             mode: dict | None = None, host_gib: float | None = None) -> Item:  # fmt: skip
    """Which GPU a run would use and whether its free memory covers `need_gib` (None: no requirement).

    `mode` is device.memory_report's `auto_mode` for this GPU: the memory mode a real run would pick, or
    (offload None) why none fits, which makes the GPU a blocker (exit 5) like the real device check.
    `host_gib`: the host RAM the mode behind `need_gib` needs, named when no GPU is visible.
    """
    if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
        return Item("gpu", False, f"--device {device!r} is not auto, cpu, cuda or cuda:N", exit_code=int(ExitCode.USAGE))
    if device == "cpu":
        if tiny:
            return Item("gpu", True, "--device cpu (tiny test weights)")
        return Item("gpu", True, "--device cpu: the 14B model on the CPU takes days per chunk", fix="use a CUDA GPU")
    gpus = query()
    visible = visible_gpus(gpus) if gpus else []
    if not visible:
        seen = "no GPU visible (nvidia-smi not found or no NVIDIA driver)" if gpus is None else "no GPU visible"
        if tiny and device == "auto":
            return Item("gpu", True, f"{seen}; tiny test weights run on the CPU")
        size = f" with ~{need_gib:.0f} GiB free" if need_gib is not None else ""
        size += f" (and ~{host_gib:.0f} GiB of host RAM)" if need_gib is not None and host_gib is not None else ""
        return Item("gpu", False, seen, exit_code=int(ExitCode.DEVICE),
                    fix=f"run on a machine with an NVIDIA GPU{size}; --device cpu is for tiny test weights only")  # fmt: skip
    ordinal = cuda_ordinal(device)
    if ordinal >= len(visible):
        return Item("gpu", False, f"{device} does not exist: {len(visible)} GPU(s) visible", exit_code=int(ExitCode.DEVICE),
                    fix="pick an existing --device cuda:N")  # fmt: skip
    g = visible[ordinal]
    where = f"cuda:{ordinal} {g.name}: {g.free_gib:.1f} GiB free of {g.total_gib:.1f} GiB"
    detail = {"gpus": [asdict(x) for x in visible], "need_gib": need_gib}
    if need_gib is not None and g.free_gib < need_gib:
        return Item("gpu", False, f"{where}; needs ~{need_gib:.0f} GiB", exit_code=int(ExitCode.DEVICE),
                    fix="close other GPU processes, or a smaller --size / --resolution 480p", detail=detail)  # fmt: skip
    if mode is not None and mode.get("gpu") is not None:
        if mode["offload"] is None:
            return Item("gpu", False, f"{where}; no memory mode fits: {mode['reason']}", exit_code=int(ExitCode.DEVICE),
                        fix="see the memory-mode table above (a smaller --size, --weights-dtype fp8, more host RAM)",
                        detail=detail)  # fmt: skip
        return Item("gpu", True, f"{where}; would run --offload {mode['offload']} --weights-dtype {mode['weights_dtype']}"
                    + (f" (needs ~{need_gib:.0f} GiB)" if need_gib is not None else ""), detail=detail)  # fmt: skip
    return Item("gpu", True, where + (f" (needs ~{need_gib:.0f} GiB)" if need_gib is not None else ""), detail=detail)


# --- disk ----------------------------------------------------------------------------------------
def state_bytes_per_chunk(width: int, height: int, dtype: str, frames_per_chunk: int = C.STRIDE_FRAMES) -> int:
    """Bytes one finished chunk adds to the state folder: its latents and its H.264 segment."""
    h, w = height // C.VAE_STRIDE_S, width // C.VAE_STRIDE_S
    latents = 16 * C.GENERATED_LATENTS * h * w * (2 if dtype == "bf16" else 4)
    return latents + video_bytes(width, height, frames_per_chunk)


def video_bytes(width: int, height: int, frames: int, bytes_per_frame: float | None = None) -> int:
    """H.264 bytes of `frames` frames: at H264_BITS_PER_PIXEL, or at a rate measured on this run's segments."""
    if bytes_per_frame is not None:
        return int(frames * bytes_per_frame)
    return int(width * height * frames * H264_BITS_PER_PIXEL / 8)


def aux_state_bytes(text_dim: int, width: int, height: int) -> int:
    """The state folder's fixed part for a model with `text_dim`: the prompt embedding ([1, 512, text_dim]
    fp32) and the resume tensors (last latent, identity memory [1, 16, 1 + ANCHORS, h, w] fp32, last frame)."""
    h, w = height // C.VAE_STRIDE_S, width // C.VAE_STRIDE_S
    return C.TEXT_TOKENS * text_dim * 4 + 16 * (1 + C.ANCHORS) * h * w * 4 + width * height * 3


def _existing(p: Path) -> Path:
    p = Path(p).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


@dataclass
class DiskNeed:
    """What a run still has to write on one filesystem."""

    path: Path  # an existing folder on it (free space is asked there)
    bytes: int
    labels: list[str]


@dataclass(frozen=True)
class RunWrites:
    """What a run writes, and where."""

    out: Path
    state_dir: Path
    width: int  # as written: doubled with --side-by-side
    height: int
    frames: int
    chunks: int
    dtype: str
    extract_pose: bool  # the pose and face videos are cached in the state folder
    aux_bytes: int = AUX_STATE_BYTES  # the state folder's fixed part (aux_state_bytes once the model is known)


def disk_needs(w: RunWrites, done_chunks: int = 0, bytes_per_frame: float | None = None) -> dict[int, DiskNeed]:
    """Bytes still to write per filesystem (keyed by st_dev): the output and its preview next to `w.out`, the
    remaining chunks' latents and segments (+ the fixed state part, + the pose cache when extracting) in
    `w.state_dir`. `bytes_per_frame`: the H.264 rate measured on this run's segments (else the assumption)."""
    width, height, frames = w.width, w.height, w.frames
    needs: dict[int, DiskNeed] = {}

    def add(label: str, where: Path, n: int) -> None:
        path = _existing(where)
        need = needs.setdefault(os.stat(path).st_dev, DiskNeed(path, 0, []))
        need.bytes += n
        need.labels.append(label)

    out_bytes = video_bytes(width, height, frames, bytes_per_frame)
    add("output + preview", w.out.parent, 2 * out_bytes)
    left = max(0, w.chunks - done_chunks)
    lh, lw = height // C.VAE_STRIDE_S, width // C.VAE_STRIDE_S
    latents = 16 * C.GENERATED_LATENTS * lh * lw * (2 if w.dtype == "bf16" else 4)
    state = left * (latents + video_bytes(width, height, C.STRIDE_FRAMES, bytes_per_frame)) + w.aux_bytes
    if w.extract_pose:  # pose.mp4 + face.mp4 of the driving video, cached next to the output
        state += video_bytes(width, height, frames) + video_bytes(512, 512, frames)
    add("state", w.state_dir, state)
    return needs


def disk_item(w: RunWrites, free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free) -> Item:
    """Free space for the output (+ its preview) and for the state folder, on whichever disks they are."""
    needs = disk_needs(w)
    out_bytes = video_bytes(w.width, w.height, w.frames)
    state = sum(n.bytes for n in needs.values()) - 2 * out_bytes
    detail = {
        "output_bytes": out_bytes,
        "state_bytes": state,
        "state_bytes_per_chunk": state_bytes_per_chunk(w.width, w.height, w.dtype),
    }
    lines, ok = [], True
    for n in needs.values():
        need, have = int(n.bytes * DISK_MARGIN), free(n.path)
        ok &= have >= need
        lines.append(f"{' + '.join(n.labels)}: ~{_gb(need)} needed, {_gb(have)} free on {n.path}")
    if ok:
        return Item("disk", True, "; ".join(lines), detail=detail)
    return Item("disk", False, "; ".join(lines), exit_code=int(ExitCode.WRITE),
                fix="free some space, or choose --out / --state-dir on a larger disk", detail=detail)  # fmt: skip


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
