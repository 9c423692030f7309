"""`make wheel-check`: the package as a user installs it, away from the source tree.

    python scripts/wheel_check.py [--tiny .tiny-weights] [--keep]

1. Builds the wheel from a copy of pyproject.toml, README.md and src/ (no stale `build/` can leak into it;
   nothing is written into the source tree), offline: `pip wheel --no-deps --no-build-isolation --no-index`
   with the setuptools of the running interpreter.
2. Checks its file list: the package data is there (the memory model's table), and nothing but the package
   and its metadata (no tests, test support, benchmarks or scripts).
3. Installs it into a fresh venv (`venv --without-pip`, then this interpreter's pip with `--python`,
   `--no-deps --no-index`). The dependencies are not installed again: a .pth line puts the running
   interpreter's site-packages after the venv's own, so the venv's `animate_cli` is the wheel's. (Lines of a
   .pth only add a folder to sys.path; the .pth files inside that folder, such as an editable install's
   pointer to src/, are not read.)
4. From a working folder outside the source tree and without PYTHONPATH: `everanimate --help`, an import
   probe (animate_cli comes from the venv, no path into the source tree, no torch on import, the table
   loads), and the demo's pipeline check (`make demo` without real weights) shortened to PIPELINE_SECONDS,
   PIPELINE_SIZE and PIPELINE_STEPS, on the tiny weights that tests/support builds from the source tree.

Exit 0 when all hold; otherwise each problem on one line and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

import demo

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "animate_cli"
REQUIRED = (f"{PACKAGE}/__init__.py", f"{PACKAGE}/cli/__init__.py", f"{PACKAGE}/models/footprint_table.json")
NOT_SHIPPED = ("devtools", "tests", "support", "benchmarks", "scripts", "conftest.py")  # any path part
# The demo's pipeline check, shortened: 20 frames (one chunk) at 64x32 with 2 steps instead of 10 s at 256x144 with
# 20 steps (the tiny VAE at 256x144 alone takes a minute on 2 busy cores) still goes through every stage: load,
# encode, denoise, decode, mux, report.
PIPELINE_SECONDS = 0.8
PIPELINE_SIZE = "64x32"
PIPELINE_STEPS = 2
PROBE = f"""
import json, sys
import {PACKAGE}
from {PACKAGE}.models import footprint
root = {str(ROOT)!r}
source = [root + "/" + d for d in ("src", "tests", "scripts", "benchmarks")]  # not the venv, which may live in root
print(json.dumps({{"file": {PACKAGE}.__file__, "torch_imported": "torch" in sys.modules,
                  "source_on_path": [p for p in sys.path if p.rstrip("/") == root or p.startswith(tuple(source))],
                  "table_sizes": [p["size"] for p in footprint.table()["points"]]}}))
"""


def run(cmd: list, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)


def build_wheel(work: Path) -> Path:
    tree = work / "tree"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    r = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
             "-w", work / "dist", tree])  # fmt: skip
    if r.returncode != 0:
        sys.exit(f"wheel-check: building the wheel failed:\n{r.stderr}")
    (wheel,) = (work / "dist").glob("*.whl")
    return wheel


def content_problems(names: list[str]) -> list[str]:
    """What is wrong with a wheel's file list (empty when nothing)."""
    problems = [f"missing from the wheel: {n}" for n in REQUIRED if n not in names]
    for n in names:
        top = n.split("/", 1)[0]
        if top != PACKAGE and not (top.startswith("everanimate-") and top.endswith(".dist-info")):
            problems.append(f"not part of the package: {n}")
        elif any(part in NOT_SHIPPED for part in n.split("/")):
            problems.append(f"test/dev code in the wheel: {n}")
    return problems


def make_venv(work: Path, wheel: Path) -> Path:
    """A fresh venv with the wheel installed and this interpreter's dependencies behind it; returns its bin/."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_everanimate_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    r = run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel])
    if r.returncode != 0:
        sys.exit(f"wheel-check: installing the wheel failed:\n{r.stderr}")
    return venv / "bin"


def installed_problems(bin_dir: Path, cwd: Path, tiny: Path) -> list[str]:
    problems = []
    r = run([bin_dir / "everanimate", "--help"], cwd=cwd)
    if r.returncode != 0 or "run" not in r.stdout:
        problems.append(f"everanimate --help: exit {r.returncode}\n{r.stdout}{r.stderr}")
    r = run([bin_dir / "python", "-c", PROBE], cwd=cwd)
    if r.returncode != 0:
        return [*problems, f"import probe failed:\n{r.stderr}"]
    probe = json.loads(r.stdout)
    if not probe["file"].startswith(str(bin_dir.parent)):
        problems.append(f"{PACKAGE} imported from {probe['file']}, not from the wheel's venv")
    if probe["source_on_path"] or probe["torch_imported"]:
        problems.append(f"source tree on sys.path {probe['source_on_path']} / torch imported: {probe['torch_imported']}")
    out = cwd / "pipeline-check.mp4"
    args = [*demo.run_args(str(bin_dir / "everanimate"), PIPELINE_SECONDS), *demo.pipeline_check_args(tiny, out, PIPELINE_SIZE)]
    r = run([*args, "--steps", str(PIPELINE_STEPS), "--json", "--progress", "none"], cwd=cwd)
    summary = json.loads(r.stdout) if r.returncode == 0 else {}
    frames = round(PIPELINE_SECONDS * summary.get("fps", 0))
    if not (summary.get("ok") and frames > 0 and summary.get("frames") == frames and out.is_file()):
        problems.append(f"the demo's pipeline check from the wheel: exit {r.returncode}, {summary or r.stderr[-2000:]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", type=Path, default=ROOT / ".tiny-weights", help="tiny weights (built here if missing)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder (wheel, venv, output) and print it")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    tiny = demo.ensure_tiny_weights(a.tiny.resolve())
    work = Path(tempfile.mkdtemp(prefix="everanimate-wheel-check-"))
    try:
        wheel = build_wheel(work)
        names = zipfile.ZipFile(wheel).namelist()
        problems = content_problems(names)
        if not problems:
            (work / "cwd").mkdir()
            problems = installed_problems(make_venv(work, wheel), work / "cwd", tiny)
    finally:
        if a.keep:
            print(f"wheel-check: working folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print(f"wheel-check: {p}", file=sys.stderr)
    if not problems:
        print(f"wheel-check: {wheel.name} ({len(names)} files) installs into a fresh venv; --help, the import probe "
              f"and the pipeline check pass from outside the source tree ({time.monotonic() - t0:.0f} s)")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
