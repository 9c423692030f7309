"""Regenerate src/animate_cli/footprint_table.json, the memory model's measured inputs (issue 8).

Runs the real diffusers/transformers modules at full size on fake tensors (no GPU, no weights, ~30 s on
2 CPU cores): see animate_cli.devtools.measure_footprint. `tests/test_footprint.py` re-measures and
compares with the shipped file, so run this after changing a model config, the rollout layout or a
library version, and commit the result.

    python scripts/make_footprint_table.py [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from animate_cli import footprint
    from animate_cli.devtools.measure_footprint import measure

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=footprint.TABLE_PATH)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    table = measure(list(footprint.MEASURED_SIZES))
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
