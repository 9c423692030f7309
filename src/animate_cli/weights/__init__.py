"""Model weights: the one registry of what `run` and `extract-pose` load, where it lives on disk, a
cheap structural completeness check, and the `download-weights` engine.

Layout under the weights root (`config.default_weights_dir()` or `--dir`):

    wan2.2-animate-14b/   diffusers layout: transformer/ vae/ text_encoder/ tokenizer/ image_encoder/
    everanimate/ckpts/everanimate-v1-lora32/stage2_480p.safetensors (+ stage3_720p_beta.safetensors)
    pose/yolox_m_8xb8-300e_humanart-c2c7a14a.onnx, pose/rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.onnx
    .staging/             downloads that are converted or unpacked before they land above (deleted after)

Why the transformer comes from two repos: `Wan-AI/Wan2.2-Animate-14B-Diffusers` stores it in fp32
(69.1 GB), the original `Wan-AI/Wan2.2-Animate-14B` in bf16 (~34.5 GB). We download the bf16 shards and
rename their tensors into diffusers' names shard by shard (`weights_convert.py`, using diffusers' own
converter), and take every other component, already bf16 or small, from the -Diffusers repo.
See docs/weights.md for the numbers.

huggingface_hub is imported only here, and only inside functions (`everanimate --help` stays fast).
Completeness is checked by us, never by the Hub library: `snapshot_download(local_files_only=True)`
accepts a half-filled folder (engineering notes, finding 8).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from animate_cli.config import LORA_BY_RESOLUTION, RESOLUTIONS
from animate_cli.errors import (
    EverAnimateError,
    ExitCode,
    HubError,
    UsageError,
    WeightsBusyError,
    WeightsInvalidError,
    WeightsMissingError,
)
from animate_cli.media import locks
from animate_cli.progress import NullReporter, Reporter

# --- on-disk names (a contract with the rollout and pose code: change only together) -------------
BASE_DIR = "wan2.2-animate-14b"
LORA_DIR = "everanimate"
POSE_DIR = "pose"
STAGING_DIR = ".staging"
DET_ONNX = "yolox_m_8xb8-300e_humanart-c2c7a14a.onnx"
POSE_ONNX = "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.onnx"

PARTS = ("base", "lora", "pose")
RESOLUTION_CHOICES = (*RESOLUTIONS, "all")
GB = 1_000_000_000  # the Hub's "GB" (decimal), so our numbers match its file listings


class DiskSpaceError(EverAnimateError):
    """Not enough free space for what is left to download (exit 4, like every other weights problem)."""

    exit_code = ExitCode.WEIGHTS
    code = "disk_space"


# --- the registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Repo:
    repo_id: str
    revision: str = "main"  # a branch, tag or full commit sha; one place to pin it


REPOS: dict[str, Repo] = {
    "wan_diffusers": Repo("Wan-AI/Wan2.2-Animate-14B-Diffusers"),
    "wan_original": Repo("Wan-AI/Wan2.2-Animate-14B"),
    "everanimate": Repo("epfl-vita/everanimate"),
    "rtmpose": Repo("Tau-J/RTMPose"),  # rtmlib's Hub mirror of download.openmmlab.com (pose spec §3.2, §9)
}


@dataclass(frozen=True)
class Item:
    """One file that ends up at `dest` (relative to the weights root).

    how: "copy"    - hf_hub_download(repo, path) straight into place (dest ends with path);
         "unzip"   - download the zip to .staging, extract `member` to dest, delete the zip;
         "convert" - download an original-layout bf16 shard to .staging, write it renamed to dest, delete it;
         "index"   - download the -Diffusers index (reference key list) to .staging and write our own
                     index for the converted shards at dest, after every "convert" item is done.
    size: bytes as listed on the Hub (estimates are marked in `approx`); refreshed from the Hub when
          it is reachable, used for --dry-run and the disk-space check, never for the completeness check.
    """

    dest: str
    repo: str
    path: str
    size: int
    part: str
    how: str = "copy"
    member: str = ""
    approx: bool = False


def _b(sub: str, name: str, size: int, **kw) -> Item:
    """An item of the -Diffusers repo that lands unchanged under wan2.2-animate-14b/."""
    return Item(f"{BASE_DIR}/{sub}/{name}", "wan_diffusers", f"{sub}/{name}", size, "base", **kw)


_ORIG_SHARDS = 4
# Hub listing: shard 4 is 4.74 GB and the four sum to ~34.5 GB (same as Comfy-Org's single bf16 file); the
# split of the other 29.76 GB is not listed anywhere we could read, so those three are estimates.
_ORIG_SHARD_SIZES = (9_920_000_000, 9_920_000_000, 9_920_000_000, 4_740_000_000)
TRANSFORMER_SHARD = "diffusion_pytorch_model-{i:05d}-of-{n:05d}.safetensors"
TRANSFORMER_INDEX = "diffusion_pytorch_model.safetensors.index.json"

BASE_ITEMS: tuple[Item, ...] = (
    _b("transformer", "config.json", 808),
    *(
        Item(
            f"{BASE_DIR}/transformer/{TRANSFORMER_SHARD.format(i=i + 1, n=_ORIG_SHARDS)}",
            "wan_original",
            TRANSFORMER_SHARD.format(i=i + 1, n=_ORIG_SHARDS),
            size,
            "base",
            how="convert",
            approx=i < 3,
        )
        for i, size in enumerate(_ORIG_SHARD_SIZES)
    ),
    # Last of the transformer: written only when all shards are converted, so a half-converted folder
    # never passes the completeness check.
    _b("transformer", TRANSFORMER_INDEX, 120_000, how="index", approx=True),
    _b("vae", "config.json", 900, approx=True),
    _b("vae", "diffusion_pytorch_model.safetensors", 508_000_000, approx=True),
    _b("text_encoder", "config.json", 855, approx=True),
    _b("text_encoder", "model.safetensors.index.json", 22_500, approx=True),
    _b("text_encoder", "model-00001-of-00003.safetensors", 4_940_000_000, approx=True),
    _b("text_encoder", "model-00002-of-00003.safetensors", 4_980_000_000, approx=True),
    _b("text_encoder", "model-00003-of-00003.safetensors", 1_440_000_000, approx=True),
    _b("tokenizer", "special_tokens_map.json", 7_080, approx=True),
    _b("tokenizer", "spiece.model", 4_550_000, approx=True),
    _b("tokenizer", "tokenizer.json", 16_800_000, approx=True),
    _b("tokenizer", "tokenizer_config.json", 61_800, approx=True),
    _b("image_encoder", "config.json", 498),
    _b("image_encoder", "model.safetensors", 1_260_000_000, approx=True),
)

LORA_SIZE = 306_700_000  # 153.4 M bf16 parameters (inference spec §5.3; not listed on the Hub)
LORA_ITEMS: dict[str, Item] = {
    res: Item(f"{LORA_DIR}/{rel}", "everanimate", rel, LORA_SIZE, "lora", approx=True) for res, rel in LORA_BY_RESOLUTION.items()
}

POSE_ITEMS: tuple[Item, ...] = (
    Item(
        f"{POSE_DIR}/{DET_ONNX}",
        "rtmpose",
        "rtmposev1/onnx_sdk/yolox_m_8xb8-300e_humanart-c2c7a14a.zip",
        95_000_000,
        "pose",
        how="unzip",
        member="end2end.onnx",
        approx=True,
    ),
    Item(
        f"{POSE_DIR}/{POSE_ONNX}",
        "rtmpose",
        "rtmw/onnx_sdk/rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip",
        215_000_000,
        "pose",
        how="unzip",
        member="end2end.onnx",
        approx=True,
    ),
)

EXAMPLES_PREFIX = "data/test/"  # in epfl-vita/everanimate; lands in ./examples/ with the prefix stripped
EXAMPLE_FILES = ("frames/demo_000001.png", "poses/demo_000001_poses.mp4", "faces/demo_000001_faces.mp4")


def resolutions_for(resolution: str) -> tuple[str, ...]:
    if resolution == "all":
        return tuple(RESOLUTIONS)
    if resolution not in RESOLUTIONS:
        raise UsageError(f"unknown resolution {resolution!r}; choose one of {', '.join(RESOLUTION_CHOICES)}")
    return (resolution,)


def registry_items(parts: Iterable[str] = PARTS, resolution: str = "480p") -> list[Item]:
    """Every file `download-weights --only PARTS --resolution R` produces, in download order."""
    parts = tuple(parts)
    items: list[Item] = []
    if "base" in parts:
        items += BASE_ITEMS
    if "lora" in parts:
        items += [LORA_ITEMS[r] for r in resolutions_for(resolution)]
    if "pose" in parts:
        items += POSE_ITEMS
    return items


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


def _problem_json(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable JSON ({type(exc).__name__})"
    return None


def _problem_safetensors(path: Path) -> str | None:
    try:
        read_safetensors_header(path)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return f"not a complete safetensors file ({exc})"
    return None


def _problem_onnx(path: Path) -> str | None:
    # An ONNX ModelProto starts with field 1 (ir_version, varint) -> tag byte 0x08. Cheap and enough
    # to reject empty files, HTML error pages and zips that were never unpacked.
    with path.open("rb") as f:
        return None if f.read(1) == b"\x08" else "not an ONNX model"


def _check_weights(root: Path, comp_rel: str, stem: str, out: list[tuple[str, str]]) -> None:
    """Weights of one component: a single `<stem>.safetensors`, or an index and every shard it lists."""
    comp = root / comp_rel
    single, index = comp / f"{stem}.safetensors", comp / f"{stem}.safetensors.index.json"
    if single.is_file() and not index.is_file():
        if p := _problem_safetensors(single):
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


def problems(root: Path, resolution: str = "480p", parts: Iterable[str] = ("base", "lora")) -> list[tuple[str, str]]:
    """(relative path, what is wrong) for everything `run`/`extract-pose` would trip over; [] if complete."""
    root, parts, out = Path(root), tuple(parts), []
    if "base" in parts:
        for comp, stem in BASE_COMPONENTS.items():
            rel = f"{BASE_DIR}/{comp}"
            cfg = root / rel / "config.json"
            if not cfg.is_file():
                out.append((f"{rel}/config.json", "missing"))
            elif p := _problem_json(cfg):
                out.append((f"{rel}/config.json", p))
            _check_weights(root, rel, stem, out)
        tok = f"{BASE_DIR}/tokenizer"
        if not (root / tok / TOKENIZER_CONFIG).is_file():
            out.append((f"{tok}/{TOKENIZER_CONFIG}", "missing"))
        elif p := _problem_json(root / tok / TOKENIZER_CONFIG):
            out.append((f"{tok}/{TOKENIZER_CONFIG}", p))
        if not any(_nonempty(root / tok / v) for v in TOKENIZER_VOCABS):
            out.append((f"{tok}/{TOKENIZER_VOCABS[0]}", "missing"))
    if "lora" in parts:
        for r in resolutions_for(resolution):
            rel = LORA_ITEMS[r].dest
            if not (root / rel).is_file():
                out.append((rel, "missing"))
            elif p := _problem_safetensors(root / rel):
                out.append((rel, p))
    if "pose" in parts:
        for it in POSE_ITEMS:
            if not _nonempty(root / it.dest):
                out.append((it.dest, "missing"))
            elif p := _problem_onnx(root / it.dest):
                out.append((it.dest, p))
    return out


def missing_files(root: Path, resolution: str = "480p", parts: Iterable[str] = ("base", "lora")) -> list[str]:
    return [rel for rel, _ in problems(root, resolution, parts)]


def _nonempty(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 0


# --- resolve: what `run` and `extract-pose` call (never touches the network) ----------------------
@dataclass(frozen=True)
class WeightPaths:
    root: Path
    base: Path  # root / "wan2.2-animate-14b"
    lora: Path | None
    det_onnx: Path | None
    pose_onnx: Path | None


def _fix_command(root: Path, parts: Iterable[str], resolution: str) -> str:
    cmd = f"everanimate download-weights --dir {root}"
    parts = [p for p in PARTS if p in set(parts)]
    if parts != list(PARTS):
        cmd += "".join(f" --only {p}" for p in parts)
    if "lora" in parts and resolution != "480p":
        cmd += f" --resolution {resolution}"
    return cmd


def _list_names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … (+{len(names) - limit} more)" if len(names) > limit else "")


def resolve(weights_dir: Path, resolution: str = "480p", need: tuple[str, ...] = ("base", "lora")) -> WeightPaths:
    """Local paths of the weights `need`s, after the structural completeness check.

    Raises WeightsMissingError naming the missing or broken files and the command that fetches them.
    """
    root = Path(weights_dir).expanduser()
    for n in need:
        if n not in PARTS:
            raise UsageError(f"unknown weights part {n!r}; choose from {', '.join(PARTS)}")
    found = problems(root, resolution, need)
    if found:
        bad_parts = [p for p in PARTS if p in need and any(_part_of(rel) == p for rel, _ in found)]
        names = [rel if why == "missing" else f"{rel} ({why})" for rel, why in found]
        raise WeightsMissingError(
            f"missing {len(found)} files in {root}: {_list_names(names)}",
            hint=f"run `{_fix_command(root, bad_parts, resolution)}`",
        )
    lora = root / LORA_ITEMS[resolution].dest if "lora" in need else None
    det = root / POSE_DIR / DET_ONNX if "pose" in need else None
    pose = root / POSE_DIR / POSE_ONNX if "pose" in need else None
    return WeightPaths(root=root, base=root / BASE_DIR, lora=lora, det_onnx=det, pose_onnx=pose)


def _part_of(rel: str) -> str:
    return {BASE_DIR: "base", LORA_DIR: "lora", POSE_DIR: "pose"}.get(rel.split("/", 1)[0], "base")


# --- Hub access (injectable: tests pass a fake; nothing else in the package talks to the Hub) ----
class Fetcher(Protocol):
    def commit(self, repo_id: str, revision: str) -> str:
        """The commit sha `revision` (branch, tag or sha) points at now."""

    def sizes(self, repo_id: str, revision: str, paths: list[str]) -> dict[str, int]:
        """Sizes of those `paths` that exist in the repo at `revision` (absent ones are left out)."""

    def listing(self, repo_id: str, revision: str, prefix: str) -> dict[str, int]:
        """Every file under `prefix` with its size."""

    def download(self, repo_id: str, path: str, revision: str, local_dir: Path) -> Path:
        """Fetch one file to local_dir/path (resuming a partial one); returns that path."""


class HubFetcher:
    """The real thing: huggingface_hub in local-dir mode (plain files, resumable `.incomplete` parts)."""

    def __init__(self, progress: bool = True):
        self.progress = progress

    def commit(self, repo_id: str, revision: str) -> str:
        from huggingface_hub import HfApi

        return HfApi().repo_info(repo_id, revision=revision).sha

    def sizes(self, repo_id: str, revision: str, paths: list[str]) -> dict[str, int]:
        from huggingface_hub import HfApi

        infos = HfApi().get_paths_info(repo_id, paths, revision=revision)
        return {i.path: i.size for i in infos if getattr(i, "size", None) is not None}

    def listing(self, repo_id: str, revision: str, prefix: str) -> dict[str, int]:
        from huggingface_hub import HfApi

        tree = HfApi().list_repo_tree(repo_id, path_in_repo=prefix.rstrip("/"), recursive=True, revision=revision)
        return {i.path: i.size for i in tree if getattr(i, "size", None) is not None}

    def download(self, repo_id: str, path: str, revision: str, local_dir: Path) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        (enable_progress_bars if self.progress else disable_progress_bars)()
        return Path(hf_hub_download(repo_id, path, revision=revision, local_dir=local_dir))


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub sees it (read at its import) or as it is set now."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return bool(constants.HF_HUB_OFFLINE) or env


def _offline_error(what: str) -> HubError:
    return HubError(
        f"cannot download {what}: the Hugging Face Hub is disabled (HF_HUB_OFFLINE=1)",
        hint="unset HF_HUB_OFFLINE and run again, or put complete weights in --dir / $EVERANIMATE_WEIGHTS_DIR",
    )


def hub_error(exc: BaseException, repo_id: str, revision: str, path: str = "") -> EverAnimateError | None:
    """One-line error for a huggingface_hub / network failure; None if `exc` is something else."""
    from huggingface_hub import errors as E

    where, what = f"{repo_id}@{revision}", f"{path} from " if path else ""
    resume = "run the same command again: finished files are kept and partial downloads resume"
    if isinstance(exc, E.GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        return HubError(
            f"{repo_id} is gated: accept its conditions at https://huggingface.co/{repo_id}",
            hint="then log in with `hf auth login` (or set HF_TOKEN) and run the command again",
        )
    if isinstance(exc, E.RevisionNotFoundError):
        return HubError(
            f"revision {revision!r} not found in {repo_id}", hint="pass a branch, tag or full commit sha to --revision"
        )
    if isinstance(exc, E.RepositoryNotFoundError):
        return HubError(
            f"repository {repo_id} not found (renamed, private, or not visible without logging in)",
            hint="log in with `hf auth login` if it is private; if it moved, the id in animate_cli/weights.py needs updating",
        )
    if isinstance(exc, E.OfflineModeIsEnabled):
        return _offline_error(f"{what}{where}")
    if isinstance(exc, E.LocalEntryNotFoundError):  # what hf_hub_download raises when the Hub is unreachable
        return HubError(
            f"cannot reach the Hugging Face Hub to fetch {what}{where}",
            hint=f"check the network or proxy (HF_ENDPOINT); {resume}",
        )
    if isinstance(exc, E.EntryNotFoundError):
        return HubError(
            f"{path or 'a file'} not found in {where} (renamed or removed upstream?)",
            hint="the registry in animate_cli/weights.py needs updating, or pass an older --revision",
        )
    if isinstance(exc, E.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return HubError(
                f"the Hub refused access to {where} (HTTP {status})",
                hint="log in with `hf auth login` (or set HF_TOKEN) and accept the repo's conditions on its page",
            )
        if status == 404:
            return HubError(
                f"{what}{where} not found on the Hub (HTTP 404)", hint="the registry in animate_cli/weights.py needs updating"
            )
        first = (str(exc).splitlines() or [""])[0]
        return HubError(f"the Hub answered HTTP {status} for {what}{where}: {first}"[:300], hint=resume)
    names = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, ConnectionError | TimeoutError) or names & {
        "TransportError",
        "RequestError",
        "TimeoutException",
        "NetworkError",
    }:
        return HubError(f"cannot reach the Hugging Face Hub ({type(exc).__name__})", hint=f"check the network or proxy; {resume}")
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        return DiskSpaceError(f"disk full while writing {what or 'weights'}", hint=f"free some space; {resume}")
    return None


def check(weights_dir: Path, parts: Iterable[str] = PARTS, resolution: str = "480p") -> dict:
    """What is installed, without the network: the structural check plus the manifest's commits
    (for `download-weights --check`, `run --dry-run` and run summaries)."""
    from animate_cli.weights import manifest as M

    root, parts = Path(weights_dir).expanduser(), tuple(p for p in PARTS if p in set(parts))
    found = problems(root, resolution if resolution != "all" else "480p", parts)
    if "lora" in parts and resolution == "all":
        found += [p for p in problems(root, "720p", ("lora",)) if p not in found]
    manifest = M.read(root)
    files = [{"path": it.dest, "repo": REPOS[it.repo].repo_id, "present": _file_ok(root / it.dest),
              "commit": M.file_commit(manifest, it.repo, it.dest)} for it in registry_items(parts, resolution)]  # fmt: skip
    bad_parts = [p for p in parts if any(_part_of(rel) == p for rel, _ in found)]
    return {
        "dir": str(root),
        "complete": not found,
        "problems": [{"path": rel, "problem": why} for rel, why in found],
        "installed": M.installed(root),
        "unknown_commit": [f["path"] for f in files if f["present"] and f["commit"] is None],
        "files": files,
        "fix": _fix_command(root, bad_parts, resolution) if found else None,
    }


# --- download -------------------------------------------------------------------------------------
@dataclass
class FileStatus:
    item: Item
    repo_id: str
    revision: str
    size: int
    present: bool
    exact: bool  # size from the Hub (True) or the registry's estimate (False)
    commit: str | None = None  # the pinned commit it is (to be) fetched at; None when not resolved (offline)
    stale: bool = False  # present, but from another commit than the pinned one: fetched anew

    def to_dict(self) -> dict:
        return {
            "path": self.item.dest,
            "repo": self.repo_id,
            "file": self.item.path,
            "revision": self.revision,
            "commit": self.commit,
            "stale": self.stale,
            "size": self.size,
            "size_exact": self.exact,
            "present": self.present,
            "part": self.item.part,
        }


@dataclass
class DownloadReport:
    root: Path
    dry_run: bool
    files: list[FileStatus] = field(default_factory=list)
    download_bytes: int = 0  # sum of the sizes of files still to fetch
    needed_bytes: int = 0  # free space needed: download_bytes + the largest staged file (zip / original shard)
    free_bytes: int = 0
    sizes_from_hub: bool = False
    fetched: list[str] = field(default_factory=list)
    complete: bool = False  # after the run: the structural check passed for everything requested
    examples_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    installed: list[dict] = field(default_factory=list)  # [{repo, revision, commit}] this run pinned or kept

    @property
    def pending(self) -> list[FileStatus]:
        return [f for f in self.files if not f.present]

    def to_dict(self) -> dict:
        return {
            "dir": str(self.root),
            "dry_run": self.dry_run,
            "files": [f.to_dict() for f in self.files],
            "to_download": len(self.pending),
            "download_bytes": self.download_bytes,
            "needed_bytes": self.needed_bytes,
            "free_bytes": self.free_bytes,
            "sizes_from_hub": self.sizes_from_hub,
            "fetched": self.fetched,
            "complete": self.complete,
            "examples_dir": str(self.examples_dir) if self.examples_dir else None,
            "notes": self.notes,
            "pinned": self.installed,
        }


def parse_revisions(values: Iterable[str], repo_keys: Iterable[str]) -> dict[str, str]:
    """--revision values -> {repo key: revision}. `OWNER/NAME=REV` names a repo; a bare `REV` is only
    accepted when the selection touches exactly one repo (e.g. `--only lora`)."""
    keys = list(dict.fromkeys(repo_keys))
    by_id = {REPOS[k].repo_id: k for k in keys}
    out: dict[str, str] = {}
    for v in values:
        repo_id, sep, rev = v.rpartition("=")
        if not sep:
            if len(keys) != 1:
                raise UsageError(
                    f"--revision {v} is ambiguous: this selection uses {', '.join(by_id)}",
                    hint="write --revision OWNER/NAME=REV, or narrow the selection with --only",
                )
            out[keys[0]] = v
        elif repo_id in by_id and rev:
            out[by_id[repo_id]] = rev
        else:
            raise UsageError(f"--revision {v}: {repo_id or '?'} is not one of {', '.join(by_id)}")
    return out


def _file_ok(path: Path) -> bool:
    """File-level check of one finished file (the folder-level check is `problems`)."""
    if not _nonempty(path):
        return False
    if path.suffix == ".safetensors":
        return _problem_safetensors(path) is None
    if path.suffix == ".json":
        return _problem_json(path) is None
    if path.suffix == ".onnx":
        return _problem_onnx(path) is None
    return True


def _free_bytes(root: Path) -> int:
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def format_bytes(n: int) -> str:
    for unit, scale in (("GB", GB), ("MB", 1e6), ("kB", 1e3)):
        if n >= 0.1 * scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _example_items(fetch: Fetcher, revision: str, online: bool) -> tuple[list[Item], bool]:
    if online:
        listing = fetch.listing(REPOS["everanimate"].repo_id, revision, EXAMPLES_PREFIX)
        files = {p: s for p, s in listing.items() if p.startswith(EXAMPLES_PREFIX)}
        if files:
            return [
                Item(p.removeprefix(EXAMPLES_PREFIX), "everanimate", p, s, "examples") for p, s in sorted(files.items())
            ], True
    return [Item(rel, "everanimate", EXAMPLES_PREFIX + rel, 0, "examples", approx=True) for rel in EXAMPLE_FILES], False


def download(
    weights_dir: Path,
    only: Iterable[str] = PARTS,
    resolution: str = "480p",
    revision: dict[str, str] | None = None,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    fetch: Fetcher | None = None,
    *,
    examples_dir: Path | None = None,
    convert: Callable[[Path, Path], object] | None = None,
    wait: bool = False,
    update: bool = False,
) -> DownloadReport:
    """Fetch what `only` needs into `weights_dir`, resuming, and verify the result structurally.

    Already-complete files are never fetched again (no network at all if nothing is missing).
    `revision` maps registry repo keys to revisions (see `parse_revisions`). Each repo's revision is
    resolved to a commit once and pinned in the manifest (weights_manifest.py); a resumed download
    keeps that commit, `update=True` re-resolves it and re-fetches files of any other commit.
    `examples_dir` also fetches the demo inputs there. `fetch` and `convert` exist for tests.
    Holds the lock of the weights folder (locks.py) unless `dry_run`: while another download holds it,
    raise WeightsBusyError (exit 4), or with `wait` say so and wait for it (then fetch what is still missing).
    """
    args = (weights_dir, only, resolution, revision, dry_run, reporter, fetch, examples_dir, convert, update)
    root = Path(weights_dir).expanduser()
    if dry_run or (root.exists() and not root.is_dir()):  # reads only / refused below with a usage error
        return _download(*args)

    def busy(who: str) -> WeightsBusyError:
        return WeightsBusyError(
            f"{root} is being written by another download-weights ({who})",
            hint="wait for it to finish, or pass --wait to wait for it and then fetch what is still missing",
        )

    with locks.hold(root, busy, wait=wait, log=(reporter or NullReporter()).log):
        return _download(*args)


def _download(weights_dir, only, resolution, revision, dry_run, reporter, fetch, examples_dir, convert, update) -> DownloadReport:
    from animate_cli.weights import manifest as M

    root = Path(weights_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--dir {root} is a file, not a folder")
    parts = tuple(p for p in PARTS if p in set(only))
    if unknown := set(only) - set(PARTS):
        raise UsageError(f"unknown --only {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    reporter, fetch = reporter or NullReporter(), fetch or HubFetcher()
    manifest = M.read(root)
    pinned = manifest["repos"]
    online = not hub_offline()
    if update and not online and not dry_run:
        raise _offline_error("newer commits (--update)")
    asked = revision or {}
    # What the user asks for: --revision, else what the manifest was pinned from, else the registry's default.
    revs = {k: asked.get(k) or pinned.get(k, {}).get("revision") or r.revision for k, r in REPOS.items()}
    report = DownloadReport(root=root, dry_run=dry_run, examples_dir=examples_dir)

    items = registry_items(parts, resolution)
    for it in items:
        report.files.append(
            FileStatus(it, REPOS[it.repo].repo_id, revs[it.repo], it.size, _file_ok(root / it.dest), not it.approx)
        )

    # Pin each repo to one commit: the manifest's (no network), or resolved once now when there is
    # something to fetch from it and no pin yet, when --update asks, or when --revision changes it.
    keys = list(dict.fromkeys([it.repo for it in items] + (["everanimate"] if examples_dir is not None else [])))
    commits: dict[str, str | None] = {}
    for key in keys:
        entry = pinned.get(key)
        changed = key in asked and entry is not None and asked[key] not in (entry.get("revision"), entry.get("commit"))
        has_pending = any(not f.present for f in report.files if f.item.repo == key) or (
            key == "everanimate" and examples_dir is not None
        )
        if entry and entry.get("commit") and not (update or changed):
            commits[key] = entry["commit"]
        elif online and (has_pending or update or changed):
            commits[key] = _guard(lambda k=key: fetch.commit(REPOS[k].repo_id, revs[k]), key, revs)
        else:
            commits[key] = None  # offline, or a legacy folder that needs nothing: not pinned
    for f in report.files:
        f.commit = commits.get(f.item.repo)
        recorded = M.file_commit(manifest, f.item.repo, f.item.dest)
        if f.present and f.commit and (recorded not in (None, f.commit) or (recorded is None and update)):
            f.present, f.stale = False, True  # from another commit (or unknown, with --update): fetch anew
    if not dry_run:
        for key, commit in commits.items():
            if commit and pinned.get(key, {}).get("commit") != commit:
                M.pin(manifest, key, REPOS[key].repo_id, revs[key], commit)
        if any(commits.values()):
            M.write(root, manifest)  # before fetching: an interrupted download resumes at these commits

    pending_repos = {f.item.repo for f in report.pending}
    if examples_dir is not None:
        ex_rev = commits.get("everanimate") or revs["everanimate"]
        try:
            ex_items, exact = _guard(lambda: _example_items(fetch, ex_rev, online), "everanimate", revs)
        except HubError:
            if not dry_run:
                raise
            (ex_items, exact), online = _example_items(fetch, ex_rev, False), False
        for it in ex_items:
            report.files.append(
                FileStatus(
                    it,
                    REPOS["everanimate"].repo_id,
                    revs["everanimate"],
                    it.size,
                    _nonempty(examples_dir / it.dest),
                    exact,
                    commit=commits.get("everanimate"),
                )  # fmt: skip
            )
    if not online and report.pending:
        if not dry_run:
            raise _offline_error(_fmt_missing(report))
        report.notes.append("the Hub is not reachable or disabled (HF_HUB_OFFLINE=1): sizes are the registry's estimates")
    if stale := [f for f in report.files if f.stale]:
        report.notes.append(f"{len(stale)} files are from another commit than the one pinned now and will be fetched anew")

    # Exact sizes (and early 404 / gated / auth errors, before anything is written).
    if online and report.pending:
        for key in sorted(pending_repos):
            paths = [f.item.path for f in report.pending if f.item.repo == key and f.item.part != "examples"]
            at = commits.get(key) or revs[key]
            try:
                sizes = _guard(lambda k=key, p=paths, a=at: fetch.sizes(REPOS[k].repo_id, a, p), key, revs)
            except HubError:
                if not dry_run:
                    raise
                report.notes.append(f"could not list {REPOS[key].repo_id} on the Hub: sizes are estimates")
                continue
            if lost := [p for p in paths if p not in sizes]:
                pin_note = f" (commit {at[:12]})" if commits.get(key) else ""
                raise HubError(
                    f"{len(lost)} files not found in {REPOS[key].repo_id}@{revs[key]}{pin_note}: {_list_names(lost, 3)}",
                    hint="renamed upstream? the registry in animate_cli/weights.py needs updating, or pass an older --revision",
                )
            for f in report.pending:
                if f.item.repo == key and f.item.part != "examples":
                    f.size, f.exact = sizes[f.item.path], True
        report.sizes_from_hub = all(f.exact for f in report.pending if f.item.part != "examples")

    staged = [f.size for f in report.pending if f.item.how in ("unzip", "convert")]
    report.download_bytes = sum(f.size for f in report.pending)
    report.needed_bytes = report.download_bytes + max(staged, default=0)
    report.free_bytes = _free_bytes(root)
    report.installed = [{"repo": REPOS[k].repo_id, "revision": revs[k], "commit": c} for k, c in commits.items()]
    if dry_run:
        report.complete = not report.pending
        return report
    if report.needed_bytes > report.free_bytes:
        raise DiskSpaceError(
            f"not enough disk space in {root}: {format_bytes(report.needed_bytes)} needed, {format_bytes(report.free_bytes)} free",
            hint="free some space or pass --dir (or set EVERANIMATE_WEIGHTS_DIR) on a larger disk",
        )

    pending = report.pending
    reporter.stage(
        "download",
        total=len(pending),
        description=f"download-weights ({len(pending)} files, {format_bytes(report.download_bytes)})",
    )
    for f in pending:
        reporter.log(f"fetching {f.item.path} from {f.repo_id}@{(f.commit or f.revision)[:12]} ({format_bytes(f.size)})")
        _guard(lambda f=f: _fetch_one(f, root, examples_dir, fetch, convert, parts), f.item.repo, revs, f.item.path)
        report.fetched.append(f.item.dest)
        f.present = True
        if f.item.part != "examples" and f.commit:
            M.record_file(manifest, f.item.repo, f.item.dest, f.item.path, (root / f.item.dest).stat().st_size)
            M.write(root, manifest)
        reporter.advance("download")
    _tidy(root / STAGING_DIR)
    if examples_dir is not None:
        _tidy(examples_dir / ".everanimate-download")

    found = problems(root, resolution if resolution != "all" else "480p", parts)
    if "lora" in parts and resolution == "all":
        found += [p for p in problems(root, "720p", ("lora",)) if p not in found]
    if found:
        names = [rel if why == "missing" else f"{rel} ({why})" for rel, why in found]
        raise WeightsMissingError(
            f"download finished but {len(found)} files are missing or incomplete in {root}: {_list_names(names)}",
            hint="run the same command again to fetch them (finished files are kept)",
        )
    report.complete = True
    return report


def _fmt_missing(report: DownloadReport) -> str:
    first = report.pending[0].item.dest
    return f"{len(report.pending)} missing files ({first}{', …' if len(report.pending) > 1 else ''})"


def _guard(fn: Callable, repo_key: str, revs: dict[str, str], path: str = ""):
    """Run fn; turn Hub / network / disk failures into one-line errors (exit 4)."""
    try:
        return fn()
    except EverAnimateError:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped below or re-raised unchanged
        mapped = hub_error(exc, REPOS[repo_key].repo_id, revs[repo_key], path)
        if mapped is None:
            raise
        raise mapped from exc


def _fetch_one(f: FileStatus, root: Path, examples_dir: Path | None, fetch: Fetcher, convert, parts) -> None:
    it = f.item
    if it.part == "examples":
        staging = examples_dir / ".everanimate-download"
        got = fetch.download(f.repo_id, it.path, f.commit or f.revision, staging)
        dest = examples_dir / it.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got, dest)
        return
    dest = root / it.dest
    if dest.exists():  # there but broken (truncated, empty): the Hub library would trust it, so remove it
        dest.unlink()
    if it.how == "copy":
        local_dir = root / it.dest[: -len(it.path)]
        got = fetch.download(f.repo_id, it.path, f.commit or f.revision, local_dir)
        if Path(got).resolve() != dest.resolve():
            raise WeightsInvalidError(f"{it.path} landed at {got}, expected {dest}")
        if not _file_ok(dest):
            dest.unlink()
            raise WeightsInvalidError(
                f"{it.dest} from {f.repo_id} is not a valid file (truncated download?)",
                hint="run the same command again to fetch it anew",
            )
        return
    staged = fetch.download(f.repo_id, it.path, f.commit or f.revision, root / STAGING_DIR / it.repo)
    if it.how == "unzip":
        _unzip_member(Path(staged), it.member, dest)
    elif it.how == "convert":
        if convert is None:
            from animate_cli.weights.convert import convert_shard as convert
        try:
            convert(Path(staged), dest)
        except (ValueError, KeyError) as exc:
            raise WeightsInvalidError(
                f"cannot convert {it.path} from {f.repo_id}: {exc}", hint="delete it from .staging/ and run the command again"
            ) from exc
    elif it.how == "index":
        from animate_cli.weights.convert import write_index

        shards = [TRANSFORMER_SHARD.format(i=i + 1, n=_ORIG_SHARDS) for i in range(_ORIG_SHARDS)]
        try:
            write_index(dest.parent, shards, dest.name, reference=Path(staged))
        except (ValueError, KeyError, OSError) as exc:
            raise WeightsInvalidError(
                f"converted transformer does not match {f.repo_id}'s layout: {exc}",
                hint="report this; the conversion in weights_convert.py needs updating",
            ) from exc
    else:
        raise ValueError(f"unknown item kind {it.how!r}")
    if Path(staged).exists():
        Path(staged).unlink()  # the staged zip / original shard / reference index is no longer needed


def _unzip_member(zip_path: Path, member: str, dest: Path) -> None:
    """Extract the first `member` (by basename) of *this* zip to dest, atomically."""
    import zipfile

    try:
        with zipfile.ZipFile(zip_path) as z:
            names = [n for n in z.namelist() if Path(n).name == member]
            if not names:
                raise WeightsInvalidError(
                    f"{zip_path.name} has no {member}", hint="the pose registry in animate_cli/weights.py needs updating"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".partial")
            with z.open(sorted(names)[0]) as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile as exc:
        zip_path.unlink(missing_ok=True)
        raise WeightsInvalidError(f"{zip_path.name} is not a valid zip (deleted it)", hint="run the same command again") from exc
    if _problem_onnx(tmp):
        tmp.unlink()
        raise WeightsInvalidError(f"{member} in {zip_path.name} is not an ONNX model")
    os.replace(tmp, dest)


def _tidy(folder: Path) -> None:
    """Remove a staging folder once nothing but the Hub library's bookkeeping is left in it."""
    if not folder.is_dir():
        return
    leftovers = [p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts]
    if not leftovers:
        shutil.rmtree(folder, ignore_errors=True)


def is_tiny(base: Path) -> bool:
    """True for a test model set (fewer than the real 40 blocks): such a run may use the CPU."""
    try:
        return json.loads((base / "transformer" / "config.json").read_text()).get("num_layers", 40) < 40
    except (OSError, ValueError):
        return False
