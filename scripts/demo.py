"""`make demo`: animate examples/ref.png with examples/driving.mp4 for 10 seconds.

With the real weights and a CUDA GPU this is a real EverAnimate run. Otherwise it says so plainly,
and runs the same pipeline on tiny random weights on the CPU, writing `*-pipeline-check.mp4`:
that file proves the install works end to end; it is not an animation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
OUT = ROOT / "out"


def real_weights_problem() -> str | None:
    """None when real weights and CUDA are both usable, else why not (one line)."""
    from animate_cli import config, weights
    from animate_cli.errors import EverAnimateError

    root = config.default_weights_dir()
    try:
        paths = weights.resolve(root, "480p", need=("base", "lora", "pose"))
    except EverAnimateError as e:
        return f"{e.message}\n  get them with: everanimate download-weights   (see README: ~48 GB download, a 48 GB+ CUDA GPU)"
    if (paths.base / "transformer" / "config.json").exists() and '"num_layers": 40' not in (
        paths.base / "transformer" / "config.json"
    ).read_text():
        return f"{root} holds test weights, not the real model"
    import torch

    if not torch.cuda.is_available():
        return f"real weights found in {root}, but CUDA is not available (torch {torch.__version__})"
    return None


def main() -> int:
    OUT.mkdir(exist_ok=True)
    exe = str(Path(sys.executable).with_name("everanimate"))
    args = [exe, "run", str(EX / "ref.png"), str(EX / "driving.mp4"), "--seconds", "10", "--overwrite"]
    if (EX / "pose.mp4").exists() and (EX / "face.mp4").exists():
        args += ["--pose-video", str(EX / "pose.mp4"), "--face-video", str(EX / "face.mp4")]
    problem = real_weights_problem()
    if problem is None:
        return subprocess.call([*args, "--out", str(OUT / "demo-everanimate.mp4")])
    print("=" * 78, file=sys.stderr)
    print("Real weights are not usable, so this is NOT a real animation:", file=sys.stderr)
    print(f"  {problem}", file=sys.stderr)
    print("Running the same pipeline on tiny RANDOM weights on the CPU as a pipeline check;", file=sys.stderr)
    print("the output shows noise, not a person.", file=sys.stderr)
    print("=" * 78, file=sys.stderr)
    tiny = ROOT / ".tiny-weights"
    if not (tiny / ".complete").exists():
        sys.path.insert(0, str(ROOT / "tests"))  # tests/support builds them; it is not in the package
        from support.tiny_models import write_tiny_weights

        write_tiny_weights(tiny)
    return subprocess.call([*args, "--weights-dir", str(tiny), "--device", "cpu", "--dtype", "fp32", "--size", "256x144",
                            "--out", str(OUT / "demo-pipeline-check.mp4")])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
