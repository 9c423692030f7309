"""One place that names and writes a CPU benchmark's JSON report: benchmarks/results/<utc>-<commit>-cpu-<kind>.json."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def stamped(payload: dict) -> dict:
    """`payload` behind the commit it was measured at and the UTC time (the file name uses both)."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    return {"commit": commit or None, "utc": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), **payload}


def write_result(result: dict, kind: str, out: Path | None = None) -> Path:
    """Write `result` (from `stamped`) to `out` or the results folder; say where on stderr, print it on stdout."""
    out = out or RESULTS / f"{result['utc']}-{(result['commit'] or 'nocommit')[:10]}-cpu-{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"report: {out}", file=sys.stderr)
    print(json.dumps(result))
    return out
