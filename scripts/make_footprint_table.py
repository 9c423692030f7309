"""Regenerate src/animate_cli/footprint_table.json, the memory model's measured inputs (issue 8).

Runs the real diffusers/transformers modules at full size on fake tensors (no GPU, no weights, ~30 s on
2 CPU cores): see benchmarks/measure_footprint.py. `tests/test_footprint.py` re-measures and
compares with the shipped file, so run this after changing a model config, the rollout layout or a
library version, and commit the result.

    python scripts/make_footprint_table.py [--out PATH]
    python scripts/make_footprint_table.py --readme   # print README's "Hardware" tables from the shipped table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from animate_cli import config as C

ROOT = Path(__file__).resolve().parents[1]


# Cards people own, by the memory nvidia-smi reports (MiB): RTX 3060/4070, 4080/4070 Ti Super, 3090/4090, 5090,
# L40S/RTX 6000 Ada, H100; ~400 MiB are taken by the driver/display on an idle card.
CARDS = {"12 GB": 12288, "16 GB": 16376, "24 GB": 24564, "32 GB": 32607, "48 GB": 46068, "80 GB": 81559}
IDLE_MIB = 400


def readme_tables() -> str:
    """Markdown: every mode's predicted needs at 480p/720p, and what `auto` runs on each card. Every figure is the
    memory model's prediction (footprint.py), labelled so until a GPU measurement (`make gpu-check`) replaces it."""
    from animate_cli.models import footprint as F

    sizes = {"480p": C.RESOLUTIONS["480p"], "720p": C.RESOLUTIONS["720p"]}
    lines = ["| size | mode | peak VRAM (predicted) | host RAM (predicted) | DiT speed (predicted) |", "|---|---|---|---|---|"]
    for label, size in sizes.items():
        for m in F.modes(*size):
            lines.append(f"| {label} | `--offload {m.offload} --weights-dtype {m.weights_dtype}` | {m.gpu_gib:.1f} GiB "
                         f"| {m.host_gib:.1f} GiB | {m.relative_speed:.2f}x |")  # fmt: skip
    lines += ["", "| GPU (predicted) | " + " | ".join(f"{s} {d}" for s in sizes for d in F.WEIGHTS_DTYPES) + " |",
              "|---|" + "---|" * (2 * len(sizes))]  # fmt: skip
    for card, mib in CARDS.items():
        cells = []
        for size in sizes.values():
            modes = F.modes(*size)
            for wd in F.WEIGHTS_DTYPES:
                d = F.choose(modes, (mib - IDLE_MIB) / 1024, None, "auto", wd)
                cells.append(f"{d.need.offload}, needs {d.need.host_gib:.0f} GiB RAM" if d.need else "does not fit")
        lines.append(f"| {card} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loader_what_if() -> str:
    """Markdown: host RAM at 480p under the loader's old host-memory costs (footprint's switches), switched off
    one by one down to what the loader does now."""
    from animate_cli.models import footprint as F

    names = ("PINNED_POW2", "PIN_WHILE_PAGEABLE", "LOAD_VIA_HOST_BF16", "FP8_CAST_ON_HOST", "CLIP_OFFLOADED")
    saved = {n: getattr(F, n) for n in names}
    steps = [(True,) * 5, (False, True, True, True, True), (False, False, True, True, True),
             (False, False, False, True, True), (False, False, False, False, True), (False,) * 5]  # fmt: skip
    rows = []
    try:
        for i, flags in enumerate(steps):
            for n, v in zip(names, flags, strict=True):
                setattr(F, n, v)
            need = {m.name: m.host_gib for m in F.modes(*C.RESOLUTIONS["480p"])}
            yes = " | ".join("yes" if f else "no" for f in flags)
            note = "first loader" if i == 0 else "**now**" if i == len(steps) - 1 else ""
            rows.append(f"| {yes} | {need['none/bf16']:.1f} | {need['none/fp8']:.1f} | {need['blocks/bf16']:.1f} "
                        f"| {need['blocks/fp8']:.1f} | {note} |")  # fmt: skip
    finally:
        for n, v in saved.items():
            setattr(F, n, v)
    head = ["| pinned copies rounded to 2^k | pageable + pinned DiT at setup | resident bf16 via host RAM "
            "| FP8 cast from a bf16 DiT in host RAM | CLIP offloaded to host RAM | none/bf16 GiB | none/fp8 GiB "
            "| blocks/bf16 GiB | blocks/fp8 GiB | loader |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    return "\n".join(head + rows)


def main(argv: list[str] | None = None) -> int:
    from animate_cli.models import footprint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=footprint.TABLE_PATH)
    ap.add_argument("--readme", action="store_true", help="print the README tables from the shipped table instead")
    args = ap.parse_args(argv)
    if args.readme:
        print(readme_tables() + "\n\n" + loader_what_if())
        return 0
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the measurement is a benchmark tool, not in the package
    from measure_footprint import measure

    t = time.perf_counter()
    table = measure(list(footprint.MEASURED_SIZES))
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
