"""The one registry of what `run` and `extract-pose` load: the Hub repos, every file with its size
and where it lands under the weights root, and the command that fetches a part."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from animate_cli.config import LORA_BY_RESOLUTION, RESOLUTIONS
from animate_cli.errors import (
    UsageError,
)

# --- on-disk names (a contract with the rollout and pose code: change only together) -------------
BASE_DIR = "wan2.2-animate-14b"


LORA_DIR = "everanimate"


POSE_DIR = "pose"


STAGING_DIR = ".staging"


DET_ONNX = "yolox_m_8xb8-300e_humanart-c2c7a14a.onnx"


POSE_ONNX = "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.onnx"
WAN_DET_ONNX = "process_checkpoint/det/yolov10m.onnx"  # under pose/, the path in Wan-AI/Wan2.2-Animate-14B
WAN_POSE_DIR = "process_checkpoint/pose2d/vitpose_h_wholebody.onnx"  # a folder there (ViTPose-H is > 2 GB)
POSE_MODEL_NAMES = ("wan", "rtmw")  # which pose model a pose item belongs to (Item.model)


PARTS = ("base", "lora", "pose", "fast")


DEFAULT_PARTS = ("base", "lora", "pose")  # what `download-weights` fetches without --only; "fast" is asked for


FAST_DIR = "fast"  # the step-distill LoRA of `run --fast` (docs/loras.md)


RESOLUTION_CHOICES = (*RESOLUTIONS, "all")


GB = 1_000_000_000  # the Hub's "GB" (decimal), so our numbers match its file listings


# --- the registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Repo:
    repo_id: str
    revision: str = "main"  # a branch, tag or full commit sha; one place to pin it


REPOS: dict[str, Repo] = {
    "wan_diffusers": Repo("Wan-AI/Wan2.2-Animate-14B-Diffusers"),
    "wan_original": Repo("Wan-AI/Wan2.2-Animate-14B"),
    "everanimate": Repo("epfl-vita/everanimate"),
    "rtmpose": Repo("Tau-J/RTMPose"),  # rtmlib's Hub mirror of download.openmmlab.com (docs/weights.md)
    # ComfyUI's own Wan-Animate template and kijai's wrapper fetch the lightx2v distill LoRAs from here; its
    # Lightx2v/ folder was last changed at commit 8cc8f40 when listed (docs/loras.md). The manifest pins the
    # full commit `main` points at when download-weights runs, as for every repo.
    "lightx2v": Repo("Kijai/WanVideo_comfy"),
}


@dataclass(frozen=True)
class Item:
    """One file that ends up at `dest` (relative to the weights root).

    how: "copy"    - hf_hub_download(repo, path) straight into place (dest ends with path);
         "unzip"   - download the zip to .staging, extract `member` to dest, delete the zip;
         "convert" - download an original-layout bf16 shard to .staging, write it renamed to dest, delete it;
         "index"   - download the -Diffusers index (reference key list) to .staging and write our own
                     index for the converted shards at dest, after every "convert" item is done;
         "folder"  - every file under `path` (listed on the Hub at the pinned commit) into dest, which
                     ends with path; the item is one unit: complete when its structural check passes.
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
    model: str = ""  # pose items: the pose model they belong to (POSE_MODEL_NAMES)


def _b(sub: str, name: str, size: int, **kw) -> Item:
    """An item of the -Diffusers repo that lands unchanged under wan2.2-animate-14b/."""
    return Item(f"{BASE_DIR}/{sub}/{name}", "wan_diffusers", f"{sub}/{name}", size, "base", **kw)


ORIG_SHARDS = 4


# Hub listing: shard 4 is 4.74 GB and the four sum to ~34.5 GB (same as Comfy-Org's single bf16 file); the
# split of the other 29.76 GB is not listed anywhere we could read, so those three are estimates.
ORIG_SHARD_SIZES = (9_920_000_000, 9_920_000_000, 9_920_000_000, 4_740_000_000)


TRANSFORMER_SHARD = "diffusion_pytorch_model-{i:05d}-of-{n:05d}.safetensors"


TRANSFORMER_INDEX = "diffusion_pytorch_model.safetensors.index.json"


BASE_ITEMS: tuple[Item, ...] = (
    _b("transformer", "config.json", 808),
    *(
        Item(
            f"{BASE_DIR}/transformer/{TRANSFORMER_SHARD.format(i=i + 1, n=ORIG_SHARDS)}",
            "wan_original",
            TRANSFORMER_SHARD.format(i=i + 1, n=ORIG_SHARDS),
            size,
            "base",
            how="convert",
            approx=i < 3,
        )
        for i, size in enumerate(ORIG_SHARD_SIZES)
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


LORA_SIZE = 306_700_000  # 153.4 M bf16 parameters: rank 32 on 10 Linears x 40 blocks (docs/weights.md; not listed on the Hub)


LORA_ITEMS: dict[str, Item] = {
    res: Item(f"{LORA_DIR}/{rel}", "everanimate", rel, LORA_SIZE, "lora", approx=True) for res, rel in LORA_BY_RESOLUTION.items()
}


# The rank-32 lightx2v step-distill LoRA that LightX2V's own Wan-Animate config (configs/wan22/wan_animate_lora.json)
# stacks at strength 1.0 for 4 steps (docs/loras.md: why rank 32 and not ComfyUI's rank 64). 373 MB is the Hub
# listing's rounded figure (an estimate to the byte); the exact size is read from the Hub when it is reachable.
FAST_LORA = "Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank32_bf16.safetensors"


FAST_ITEMS: tuple[Item, ...] = (Item(f"{FAST_DIR}/{FAST_LORA}", "lightx2v", FAST_LORA, 373_000_000, "fast", approx=True),)


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
        model="rtmw",
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
        model="rtmw",
    ),
    # Wan's official preprocessing models (docs/wan-pose.md). Sizes are exact at the repo's commit cb93a225 (a
    # public record of that snapshot: yolov10m.onnx 61,659,339 B; the ViTPose-H folder 394 files,
    # end2end.onnx 412,883 B + 393 external weight files, 2,549,362,899 B in all); the Hub's listing at
    # the pinned commit replaces them when it is reachable. The folder's file list is not hard-coded:
    # it is read from the Hub at the pinned commit, and the check reads it from end2end.onnx itself.
    Item(f"{POSE_DIR}/{WAN_DET_ONNX}", "wan_original", WAN_DET_ONNX, 61_659_339, "pose", model="wan"),
    Item(f"{POSE_DIR}/{WAN_POSE_DIR}", "wan_original", WAN_POSE_DIR, 2_549_362_899, "pose", how="folder", model="wan"),
)


def pose_items(pose_model: str | None = None) -> tuple[Item, ...]:
    """The pose part's items, or only those of one pose model ("wan" | "rtmw")."""
    if pose_model is not None and pose_model not in POSE_MODEL_NAMES:
        raise UsageError(f"unknown pose model {pose_model!r}; choose from {', '.join(POSE_MODEL_NAMES)}")
    return tuple(it for it in POSE_ITEMS if pose_model in (None, it.model))


EXAMPLES_PREFIX = "data/test/"  # in epfl-vita/everanimate; lands in ./examples/ with the prefix stripped


EXAMPLE_FILES = ("frames/demo_000001.png", "poses/demo_000001_poses.mp4", "faces/demo_000001_faces.mp4")


def resolutions_for(resolution: str) -> tuple[str, ...]:
    if resolution == "all":
        return tuple(RESOLUTIONS)
    if resolution not in RESOLUTIONS:
        raise UsageError(f"unknown resolution {resolution!r}; choose one of {', '.join(RESOLUTION_CHOICES)}")
    return (resolution,)


def registry_items(parts: Iterable[str] = DEFAULT_PARTS, resolution: str = "480p") -> list[Item]:
    """Every file `download-weights --only PARTS --resolution R` produces, in download order."""
    parts = tuple(parts)
    items: list[Item] = []
    if "base" in parts:
        items += BASE_ITEMS
    if "lora" in parts:
        items += [LORA_ITEMS[r] for r in resolutions_for(resolution)]
    if "pose" in parts:
        items += POSE_ITEMS
    if "fast" in parts:
        items += FAST_ITEMS
    return items


def fix_command(root: Path, parts: Iterable[str], resolution: str) -> str:
    cmd = f"everanimate download-weights --dir {root}"
    parts = [p for p in PARTS if p in set(parts)]
    if parts != list(DEFAULT_PARTS):
        cmd += "".join(f" --only {p}" for p in parts)
    if "lora" in parts and resolution != "480p":
        cmd += f" --resolution {resolution}"
    return cmd


def part_of(rel: str) -> str:
    return {BASE_DIR: "base", LORA_DIR: "lora", POSE_DIR: "pose", FAST_DIR: "fast"}.get(rel.split("/", 1)[0], "base")
