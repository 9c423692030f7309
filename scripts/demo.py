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
DEMO_SECONDS = 10.0


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


def run_args(exe: str, seconds: float) -> list[str]:
    """`everanimate run` on the examples, with their pose/face videos when they are there."""
    args = [exe, "run", str(EX / "ref.png"), str(EX / "driving.mp4"), "--seconds", f"{seconds:g}", "--overwrite"]
    if (EX / "pose.mp4").exists() and (EX / "face.mp4").exists():
        args += ["--pose-video", str(EX / "pose.mp4"), "--face-video", str(EX / "face.mp4")]
    return args


def ensure_tiny_weights(tiny: Path) -> Path:
    """The tiny random model set, built once by tests/support (it is not in the installed package)."""
    if not (tiny / ".complete").exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from support.tiny_models import write_tiny_weights

        write_tiny_weights(tiny)
    return tiny


def pipeline_check_args(tiny: Path, out: Path, size: str = "256x144") -> list[str]:
    """What the CPU fallback adds to `run_args`: the tiny weights, on the CPU in fp32, at a small size."""
    return ["--weights-dir", str(tiny), "--device", "cpu", "--dtype", "fp32", "--size", size, "--out", str(out)]


def main() -> int:
    OUT.mkdir(exist_ok=True)
    args = run_args(str(Path(sys.executable).with_name("everanimate")), DEMO_SECONDS)
    problem = real_weights_problem()
    if problem is None:
        return subprocess.call([*args, "--out", str(OUT / "demo-everanimate.mp4")])
    print("=" * 78, file=sys.stderr)
    print("Real weights are not usable, so this is NOT a real animation:", file=sys.stderr)
    print(f"  {problem}", file=sys.stderr)
    print("Running the same pipeline on tiny RANDOM weights on the CPU as a pipeline check;", file=sys.stderr)
    print("the output shows noise, not a person.", file=sys.stderr)
    print("=" * 78, file=sys.stderr)
    tiny = ensure_tiny_weights(ROOT / ".tiny-weights")
    return subprocess.call([*args, *pipeline_check_args(tiny, OUT / "demo-pipeline-check.mp4")])


if __name__ == "__main__":
    sys.exit(main())
