"""Model weights: the one registry of what `run` and `extract-pose` load (registry.py), where it lives on
disk and a cheap structural completeness check (installed.py), Hub access (hub.py, the only module that
talks to the Hub), the `download-weights` engine (downloader.py), the bf16 shard conversion (convert.py)
and the manifest of pinned commits (manifest.py). This file only gathers the public names.

Layout under the weights root (`config.default_weights_dir()` or `--dir`):

    wan2.2-animate-14b/   diffusers layout: transformer/ vae/ text_encoder/ tokenizer/ image_encoder/
    everanimate/ckpts/everanimate-v1-lora32/stage2_480p.safetensors (+ stage3_720p_beta.safetensors)
    pose/yolox_m_8xb8-300e_humanart-c2c7a14a.onnx, pose/rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.onnx
    pose/process_checkpoint/det/yolov10m.onnx, pose/process_checkpoint/pose2d/vitpose_h_wholebody.onnx/ (Wan's
                          own preprocessing models, same paths as in Wan-AI/Wan2.2-Animate-14B; the second is a
                          folder: end2end.onnx + its external weight files, checked by onnx_check.py)
    .staging/             downloads that are converted or unpacked before they land above (deleted after)

Why the transformer comes from two repos: `Wan-AI/Wan2.2-Animate-14B-Diffusers` stores it in fp32
(69.1 GB), the original `Wan-AI/Wan2.2-Animate-14B` in bf16 (~34.5 GB). We download the bf16 shards and
rename their tensors into diffusers' names shard by shard (`weights/convert.py`, using diffusers' own
converter), and take every other component, already bf16 or small, from the -Diffusers repo.
See docs/weights.md for the numbers.

huggingface_hub is imported only here, and only inside functions (`everanimate --help` stays fast).
Completeness is checked by us, never by the Hub library: `snapshot_download(local_files_only=True)`
accepts a half-filled folder (engineering notes, finding 8).
"""

# The package's public face: what other stages and commands call as `weights.<name>`.
from animate_cli.weights.downloader import DownloadRequest, download, format_bytes, parse_revisions  # noqa: F401
from animate_cli.weights.hub import Fetcher, HubFetcher  # noqa: F401
from animate_cli.weights.installed import (  # noqa: F401
    BASE_COMPONENTS,
    check,
    file_ok,
    is_tiny,
    list_names,
    missing_files,
    problems,
    required_files,
    resolve,
    size_on_disk,
)
from animate_cli.weights.onnx_check import onnx_problem  # noqa: F401
from animate_cli.weights.registry import (  # noqa: F401
    BASE_DIR,
    BASE_ITEMS,
    DEFAULT_PARTS,
    DET_ONNX,
    EXAMPLE_FILES,
    EXAMPLES_PREFIX,
    FAST_ITEMS,
    GB,
    LORA_ITEMS,
    PARTS,
    POSE_ITEMS,
    POSE_MODEL_NAMES,
    POSE_ONNX,
    REPOS,
    STAGING_DIR,
    TRANSFORMER_INDEX,
    TRANSFORMER_SHARD,
    WAN_DET_ONNX,
    WAN_POSE_DIR,
    pose_items,
    registry_items,
    resolutions_for,
)
