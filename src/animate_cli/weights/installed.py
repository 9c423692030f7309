"""Is what the weights root holds complete and intact? A structural check (headers and JSON, never
tensors), and `resolve`: the local paths `run` and `extract-pose` load, or a one-line error naming
what is missing and the command that fetches it. Never touches the network."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from animate_cli.errors import (
    UsageError,
    WeightsMissingError,
)
from animate_cli.weights.onnx_check import FOLDER_MODEL, onnx_problem
from animate_cli.weights.registry import (
    BASE_DIR,
    DEFAULT_PARTS,
    DET_ONNX,
    FAST_ITEMS,
    LORA_ITEMS,
    PARTS,
    POSE_DIR,
    POSE_ONNX,
    REPOS,
    WAN_DET_ONNX,
    WAN_POSE_DIR,
    fix_command,
    part_of,
    pose_items,
    registry_items,
    resolutions_for,
)

# --- structural completeness check (cheap: headers and JSON only, never tensors) ------------------
# Component folders under wan2.2-animate-14b/ and the stem of their weight files: diffusers models
# save "diffusion_pytorch_model", transformers models "model"; either as one file or as an index + shards.
BASE_COMPONENTS: dict[str, str] = {
    "transformer": "diffusion_pytorch_model",
    "vae": "diffusion_pytorch_model",
    "text_encoder": "model",
    "image_encoder": "model",
}


TOKENIZER_CONFIG = "tokenizer_config.json"


TOKENIZER_VOCABS = ("tokenizer.json", "spiece.model")  # either one lets AutoTokenizer load


def required_files(resolution: str = "480p", parts: Iterable[str] = ("base", "lora")) -> list[str]:
    """The files a real download leaves under the weights root, as paths relative to it.

    The completeness check (`missing_files`) is structural and accepts equivalent layouts too: a
    single `<stem>.safetensors` instead of `<stem>.safetensors.index.json` + shards (what
    `save_pretrained` writes for small models), and `tokenizer.json` or `spiece.model`.
    """
    return [it.dest for it in registry_items(parts, resolution)]


def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file, after checking that the file is as long as it says.

    A truncated download (or a .safetensors that is really an HTML error page) fails here. Reads
    8 bytes plus the header (a few hundred KB for a 10 GB shard), never the tensors.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("shorter than a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100_000_000):
            raise ValueError("header length out of range")
        header = json.loads(f.read(n))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if size != 8 + n + end:
        raise ValueError(f"{size} bytes on disk, header describes {8 + n + end}")
    return header


def problem_json(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable JSON ({type(exc).__name__})"
    return None


def problem_safetensors(path: Path) -> str | None:
    try:
        read_safetensors_header(path)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return f"not a complete safetensors file ({exc})"
    return None


def problem_onnx(path: Path) -> str | None:
    # Walks the ModelProto's top-level fields (and a folder model's external files): rejects empty,
    # truncated and damaged files, HTML error pages and zips that were never unpacked (onnx_check.py).
    return onnx_problem(path)


def _check_weights(root: Path, comp_rel: str, stem: str, out: list[tuple[str, str]]) -> None:
    """Weights of one component: a single `<stem>.safetensors`, or an index and every shard it lists."""
    comp = root / comp_rel
    single, index = comp / f"{stem}.safetensors", comp / f"{stem}.safetensors.index.json"
    if single.is_file() and not index.is_file():
        if p := problem_safetensors(single):
            out.append((f"{comp_rel}/{single.name}", p))
        return
    if not index.is_file():
        out.append((f"{comp_rel}/{index.name}", "missing"))
        return
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError):
        out.append((f"{comp_rel}/{index.name}", "unreadable index"))
        return
    by_shard: dict[str, set[str]] = {}
    for key, shard in weight_map.items():
        by_shard.setdefault(shard, set()).add(key)
    for shard, keys in sorted(by_shard.items()):
        rel = f"{comp_rel}/{shard}"
        if not (comp / shard).is_file():
            out.append((rel, "missing"))
            continue
        try:
            header = read_safetensors_header(comp / shard)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            out.append((rel, f"not a complete safetensors file ({exc})"))
            continue
        if lost := keys - header.keys():
            out.append((rel, f"lacks {len(lost)} tensors its index lists (e.g. {min(lost)})"))


def problems(root: Path, resolution: str = "480p", parts: Iterable[str] = ("base", "lora"),
             pose_model: str | None = None) -> list[tuple[str, str]]:  # fmt: skip
    """(relative path, what is wrong) for everything `run`/`extract-pose` would trip over; [] if complete.
    `pose_model` narrows the pose part to one model's files (None: all of them)."""
    root, parts, out = Path(root), tuple(parts), []
    if "base" in parts:
        for comp, stem in BASE_COMPONENTS.items():
            rel = f"{BASE_DIR}/{comp}"
            cfg = root / rel / "config.json"
            if not cfg.is_file():
                out.append((f"{rel}/config.json", "missing"))
            elif p := problem_json(cfg):
                out.append((f"{rel}/config.json", p))
            _check_weights(root, rel, stem, out)
        tok = f"{BASE_DIR}/tokenizer"
        if not (root / tok / TOKENIZER_CONFIG).is_file():
            out.append((f"{tok}/{TOKENIZER_CONFIG}", "missing"))
        elif p := problem_json(root / tok / TOKENIZER_CONFIG):
            out.append((f"{tok}/{TOKENIZER_CONFIG}", p))
        if not any(nonempty(root / tok / v) for v in TOKENIZER_VOCABS):
            out.append((f"{tok}/{TOKENIZER_VOCABS[0]}", "missing"))
    if "lora" in parts:
        for r in resolutions_for(resolution):
            rel = LORA_ITEMS[r].dest
            if not (root / rel).is_file():
                out.append((rel, "missing"))
            elif p := problem_safetensors(root / rel):
                out.append((rel, p))
    for it in FAST_ITEMS if "fast" in parts else ():  # run --fast's distill LoRA (registry.FAST_ITEMS)
        if p := ("missing" if not (root / it.dest).is_file() else problem_safetensors(root / it.dest)):
            out.append((it.dest, p))
    if "pose" in parts:
        from animate_cli.weights import manifest as M

        recorded = {d: r.get("size") for e in M.read(root)["repos"].values() for d, r in e.get("files", {}).items()}
        for it in pose_items(pose_model):
            dest = root / it.dest
            if not (dest.is_dir() if it.how == "folder" else nonempty(dest)):
                out.append((it.dest, "missing"))
            elif p := onnx_problem(dest):
                out.append((it.dest, p))
            elif recorded.get(it.dest) is not None and size_on_disk(dest) != recorded[it.dest]:
                out.append((it.dest, f"{size_on_disk(dest)} bytes, {recorded[it.dest]} when downloaded (damaged?)"))
    return out


def size_on_disk(p: Path) -> int:
    """Bytes of a file, or of every file under a folder (a folder model)."""
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def missing_files(root: Path, resolution: str = "480p", parts: Iterable[str] = ("base", "lora")) -> list[str]:
    return [rel for rel, _ in problems(root, resolution, parts)]


def nonempty(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 0


# --- resolve: what `run` and `extract-pose` call (never touches the network) ----------------------
@dataclass(frozen=True)
class WeightPaths:
    root: Path
    base: Path  # root / "wan2.2-animate-14b"
    lora: Path | None
    det_onnx: Path | None  # the pose model's detector and pose ONNX (for a folder model: its end2end.onnx)
    pose_onnx: Path | None


def list_names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … (+{len(names) - limit} more)" if len(names) > limit else "")


def resolve(weights_dir: Path, resolution: str = "480p", need: tuple[str, ...] = ("base", "lora"),
            pose_model: str = "rtmw") -> WeightPaths:  # fmt: skip
    """Local paths of the weights `need`s, after the structural completeness check; with "pose", the
    detector and pose model of `pose_model` ("rtmw": RTMW + YOLOX; "wan": Wan's YOLOv10m + ViTPose-H).

    Raises WeightsMissingError naming the missing or broken files and the command that fetches them.
    """
    root = Path(weights_dir).expanduser()
    for n in need:
        if n not in PARTS:
            raise UsageError(f"unknown weights part {n!r}; choose from {', '.join(PARTS)}")
    found = problems(root, resolution, need, pose_model if "pose" in need else None)
    if found:
        bad_parts = [p for p in PARTS if p in need and any(part_of(rel) == p for rel, _ in found)]
        names = [rel if why == "missing" else f"{rel} ({why})" for rel, why in found]
        raise WeightsMissingError(
            f"missing {len(found)} files in {root}: {list_names(names)}",
            hint=f"run `{fix_command(root, bad_parts, resolution)}`",
        )
    lora = root / LORA_ITEMS[resolution].dest if "lora" in need else None
    det_rel, pose_rel = (WAN_DET_ONNX, f"{WAN_POSE_DIR}/{FOLDER_MODEL}") if pose_model == "wan" else (DET_ONNX, POSE_ONNX)
    det = root / POSE_DIR / det_rel if "pose" in need else None
    pose = root / POSE_DIR / pose_rel if "pose" in need else None
    return WeightPaths(root=root, base=root / BASE_DIR, lora=lora, det_onnx=det, pose_onnx=pose)


def file_ok(path: Path) -> bool:
    """File-level check of one finished file or folder model (the folder-level check is `problems`)."""
    if path.is_dir():
        return onnx_problem(path) is None
    if not nonempty(path):
        return False
    if path.suffix == ".safetensors":
        return problem_safetensors(path) is None
    if path.suffix == ".json":
        return problem_json(path) is None
    if path.suffix == ".onnx":
        return problem_onnx(path) is None
    return True


def check(
    weights_dir: Path, parts: Iterable[str] = DEFAULT_PARTS, resolution: str = "480p", pose_model: str | None = None
) -> dict:
    """What is installed, without the network: the structural check plus the manifest's commits
    (for `download-weights --check`, `run --dry-run` and run summaries). `pose_model` narrows the pose
    part to the models one pose model needs (None: every pose file download-weights fetches)."""
    from animate_cli.weights import manifest as M

    root, parts = Path(weights_dir).expanduser(), tuple(p for p in PARTS if p in set(parts))
    found = problems(root, resolution if resolution != "all" else "480p", parts, pose_model)
    if "lora" in parts and resolution == "all":
        found += [p for p in problems(root, "720p", ("lora",)) if p not in found]
    manifest = M.read(root)
    items = [it for it in registry_items(parts, resolution) if it.part != "pose" or pose_model in (None, it.model)]
    files = [{"path": it.dest, "repo": REPOS[it.repo].repo_id, "present": file_ok(root / it.dest),
              "commit": M.file_commit(manifest, it.repo, it.dest)} for it in items]  # fmt: skip
    bad_parts = [p for p in parts if any(part_of(rel) == p for rel, _ in found)]
    return {
        "dir": str(root),
        "complete": not found,
        "problems": [{"path": rel, "problem": why} for rel, why in found],
        "installed": M.installed(root),
        "unknown_commit": [f["path"] for f in files if f["present"] and f["commit"] is None],
        "files": files,
        "fix": fix_command(root, bad_parts, resolution) if found else None,
    }


def is_tiny(base: Path) -> bool:
    """True for a test model set (fewer than the real 40 blocks): such a run may use the CPU."""
    try:
        return json.loads((base / "transformer" / "config.json").read_text()).get("num_layers", 40) < 40
    except (OSError, ValueError):
        return False
