"""Rename the original Wan2.2-Animate-14B bf16 transformer shards into diffusers' layout, one shard
at a time and one tensor at a time, so the 34.5 GB download never has to sit in memory.

The key mapping is diffusers' own (`convert_wan_transformer_to_diffusers`, what `from_single_file`
uses for wan-animate); we only feed it one tensor at a time. That function is per key except for
two global switches: it enables the face-adapter renames only if *some* key contains
"face_adapter" and the motion-encoder renames only if some key contains "motion_encoder". A shard
may hold face_encoder tensors (renamed by the face-adapter rules) without any face_adapter tensor,
so we add one empty probe tensor of each kind to every call and drop them from the result.
tests/test_weights_convert.py checks this against converting a whole tiny checkpoint at once.

Output files are written by hand in the safetensors format (8-byte header length, JSON header,
raw little-endian bytes) so that the header can be written before the data: a first pass over
meta tensors yields every output name, dtype and shape; the second pass streams the bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from animate_cli.weights.installed import read_safetensors_header

_PROBES = ("face_adapter.__everanimate_probe__", "motion_encoder.__everanimate_probe__")
_DTYPES = {
    "BF16": "bfloat16",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


def _torch_dtype(name: str):
    import torch

    if name not in _DTYPES:
        raise ValueError(f"unsupported safetensors dtype {name}")
    return getattr(torch, _DTYPES[name])


def _st_dtype(dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}[str(dtype).removeprefix("torch.")]


def convert_tensor(key: str, tensor) -> dict:
    """diffusers' wan-animate conversion of one original tensor -> {diffusers name: tensor}."""
    import torch
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    probes = {name: torch.empty(0, device="meta") for name in _PROBES}
    out = convert_wan_transformer_to_diffusers({key: tensor, **probes})
    ids = {id(t) for t in probes.values()}
    return {k: v for k, v in out.items() if id(v) not in ids}


def convert_shard(src: Path, dst: Path) -> list[str]:
    """Write `src` (original names) to `dst` (diffusers names); returns the tensor names written.

    Memory stays at about one tensor. `dst` appears only when complete (written as dst.partial and
    renamed), so an interrupted conversion is simply redone.
    """
    import torch
    from safetensors import safe_open

    header = read_safetensors_header(src)
    names = [k for k in header if k != "__metadata__"]
    # Pass 1, on meta tensors: output names, dtypes and shapes -> the output header.
    layout: list[tuple[str, str, list[int], int]] = []  # (name, dtype, shape, nbytes) in file order
    for key in names:
        info = header[key]
        meta = torch.empty(info["shape"], dtype=_torch_dtype(info["dtype"]), device="meta")
        for name, t in convert_tensor(key, meta).items():
            layout.append((name, _st_dtype(t.dtype), list(t.shape), t.numel() * t.element_size()))
    out_header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape, nbytes in layout:
        if name in out_header:
            raise ValueError(f"{src.name}: two tensors map to {name}")
        out_header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(out_header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # safetensors pads the header to 8-byte alignment

    # Pass 2: stream the bytes, one source tensor at a time, in the same order.
    partial = dst.with_name(dst.name + ".partial")
    dst.parent.mkdir(parents=True, exist_ok=True)
    expected = iter(layout)
    with safe_open(str(src), framework="pt") as f, partial.open("wb") as out:
        out.write(len(blob).to_bytes(8, "little"))
        out.write(blob)
        for key in names:
            for name, t in convert_tensor(key, f.get_tensor(key)).items():
                want = next(expected)
                if (name, list(t.shape)) != (want[0], want[2]):
                    raise ValueError(f"{src.name}: conversion of {key} is not deterministic")
                out.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)
        out.flush()
        os.fsync(out.fileno())
    read_safetensors_header(partial)  # length check: the file is exactly as long as its header says
    os.replace(partial, dst)
    return [name for name, *_ in layout]


def write_index(folder: Path, shards: list[str], index_name: str, reference: Path | None = None) -> dict:
    """Write the diffusers shard index for `shards` in `folder`; check it against `reference`'s keys.

    `reference` is the -Diffusers repo's own index: the converted names must be exactly its names,
    otherwise the conversion did not produce what `from_pretrained` expects.
    """
    weight_map: dict[str, str] = {}
    total = 0
    for shard in shards:
        header = read_safetensors_header(folder / shard)
        for name, info in header.items():
            if name == "__metadata__":
                continue
            weight_map[name] = shard
            total += info["data_offsets"][1] - info["data_offsets"][0]
    if reference is not None:
        want = set(json.loads(Path(reference).read_text(encoding="utf-8"))["weight_map"])
        extra, lost = sorted(weight_map.keys() - want), sorted(want - weight_map.keys())
        if extra or lost:
            raise ValueError(
                f"converted transformer has {len(extra)} unexpected and {len(lost)} missing tensors (e.g. {(extra or lost)[0]})"
            )
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    tmp = folder / (index_name + ".partial")
    tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / index_name)
    return index
