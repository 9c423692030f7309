"""Pose-extraction pipeline overhead on CPU with the tiny ONNX models: frames/s and peak RSS, short vs long.

    python benchmarks/bench_pose.py [--weights DIR] [--short 5] [--long 30] [--size 1280x720]

The tiny models cost ~nothing, so this measures decode (twice), detection/pose pre- and post-processing
in rtmlib, tracking, Wan rendering at source size, the crop-resize and the two H.264 encodes. Each
extraction runs in a child process so its peak RSS is its own; a flat RSS from short to long shows the
stage streams. Real-model speed is measured separately on a GPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support: the tiny pose models

CHILD = """
import json, sys, time, resource
from pathlib import Path
from animate_cli.pose import PoseModels, PoseOutputs, PoseSettings, extract_pose
video, out, det, pose = map(Path, sys.argv[1:5])
t = time.monotonic()
r = extract_pose(video, out, PoseSettings(device="cpu"), PoseModels("rtmw", det, pose), outputs=PoseOutputs(overwrite=True))
dt = time.monotonic() - t
print(json.dumps({"frames": r.frames, "seconds": dt, "fps": r.frames / dt,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_video(path: Path, seconds: float, width: int, height: int, fps: float = 30.0) -> Path:
    """A bright moving block person on black (the tiny detector fires on bright pixels)."""
    import numpy as np

    from animate_cli import media

    with media.VideoWriter(path, width, height, fps) as w:
        for t in range(round(seconds * fps)):
            f = np.zeros((height, width, 3), np.uint8)
            x = width // 3 + int(width // 6 * np.sin(t / 15))
            f[height // 8 : height - height // 8, x : x + width // 5] = 220
            w.write(f)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="tiny weights dir with pose/*.onnx (built if absent)")
    ap.add_argument("--short", type=float, default=5.0, help="seconds of the short video")
    ap.add_argument("--long", type=float, default=30.0, help="seconds of the long video")
    ap.add_argument("--size", default="1280x720", help="source video size")
    args = ap.parse_args()
    w, h = map(int, args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-pose-") as tmp:
        tmp = Path(tmp)
        from animate_cli.errors import WeightsMissingError
        from animate_cli.pose import find_pose_models

        try:
            det, pose = find_pose_models(args.weights) if args.weights else find_pose_models(tmp / "missing")
        except WeightsMissingError:
            from support.tiny_pose import write_tiny_pose_models

            models = write_tiny_pose_models(tmp / "weights" / "pose")
            det, pose = models["det"], models["pose"]
            print(f"(built tiny pose models in {tmp / 'weights'})", file=sys.stderr)
        rows = {}
        for name, secs in (("short", args.short), ("long", args.long)):
            video = make_video(tmp / f"{name}.mp4", secs, w, h)
            t = time.monotonic()
            proc = subprocess.run([sys.executable, "-c", CHILD, str(video), str(tmp / f"out-{name}"), str(det), str(pose)],
                                  capture_output=True, text=True)  # fmt: skip
            if proc.returncode:
                sys.exit(proc.stderr)
            rows[name] = json.loads(proc.stdout.strip().splitlines()[-1]) | {
                "source_s": secs,
                "wall_s": round(time.monotonic() - t, 2),
            }
    for name, r in rows.items():
        print(f"{name:5s} {r['source_s']:5.0f} s of {w}x{h}@30 -> {r['frames']:4d} frames @25: "
              f"{r['fps']:6.1f} frames/s, peak RSS {r['peak_rss_mib']:6.0f} MiB")  # fmt: skip
    growth = rows["long"]["peak_rss_mib"] - rows["short"]["peak_rss_mib"]
    print(
        f"RSS growth short -> long: {growth:+.0f} MiB  (parent maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)"
    )
    print(json.dumps({"bench": "pose", "size": [w, h], **rows}))


if __name__ == "__main__":
    main()
