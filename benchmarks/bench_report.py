"""`everanimate inspect` on a 2-minute 480p clip on the CPU: wall time and peak RSS, pose models off and on.

    python benchmarks/bench_report.py [--dir .bench-report] [--seconds 120] [--weights DIR]

The clip (832x480, 25 fps, H.264 CRF 16, made once with the bundled ffmpeg) is ffmpeg's moving test pattern
with the faults the report looks for: a brightness step at the join of chunks 1/2 (frame 150, 6.00 s), a
colour cast from the join of chunks 8/9 (frame 661), and a slow brightness drift over the whole clip. Each
`inspect` runs in a child process, so its peak RSS is its own. With --weights pointing at the tiny model
set (`make tiny`), the pose pass runs the tiny ONNX models on the clip and on itself as the driving video (identity
and pose adherence): that times decoding and the pass's own work, not the real RTMW network (no trained
whole-body model can be fetched offline).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from results_file import stamped, write_result

CHILD = """
import json, sys, time, resource
from pathlib import Path
from animate_cli.report import ReportOptions, make_report
video, weights, people = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
t = time.monotonic()
r = make_report(video, ReportOptions(driving=video if people else None, weights_dir=weights, people=people, overwrite=True))
print(json.dumps({"seconds": time.monotonic() - t, "timings_s": r.timings_s, "headline": r.headline,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

# brightness +0.06 (of 1) from 6.0 s, a warm cast from 26.44 s, and a drift of +0.04 per minute throughout
FILTERS = ("eq=brightness='0.06*gte(t,5.98)+0.04*t/60':eval=frame,"
           "colorchannelmixer=rr=1.08:bb=0.93:enable='gte(t,26.42)'")  # fmt: skip


def make_clip(path: Path, seconds: float) -> Path:
    from animate_cli.media import ffmpeg_exe

    if path.exists():
        return path
    tmp = path.with_name(path.name + ".partial.mp4")
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=832x480:rate=25:duration={seconds}", "-vf", FILTERS, "-c:v", "libx264", "-crf", "16",
                    "-preset", "veryfast", "-pix_fmt", "yuv420p", str(tmp)], check=True)  # fmt: skip
    tmp.replace(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path(".bench-report"))
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--weights", type=Path, default=None, help="a weights folder with pose/*.onnx (e.g. .tiny-weights)")
    ap.add_argument("--out", type=Path, help="JSON report (default benchmarks/results/<utc>-<commit>-cpu-report.json)")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    clip = make_clip(args.dir / f"clip-{args.seconds:g}s-480p.mp4", args.seconds)
    print(f"clip {clip} ready in {time.monotonic() - t:.1f} s", file=sys.stderr)
    load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    runs = {}
    for name, people in (("no_pose", "0"), *((("tiny_pose_models", "1"),) if args.weights else ())):
        proc = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(args.weights or args.dir / "none"), people],
                              capture_output=True, text=True, check=True)  # fmt: skip
        runs[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name}: {runs[name]['seconds']:.1f} s {runs[name]['timings_s']}, peak RSS {runs[name]['peak_rss_mib']:.0f} MiB",
              file=sys.stderr)  # fmt: skip
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    result = stamped({"clip": str(clip), "seconds_of_video": args.seconds, "size": "832x480", "cpus": os.cpu_count(),
                      "loadavg_before_and_after": [load_before, load], "runs": runs})  # fmt: skip
    write_result(result, "report", args.out)


if __name__ == "__main__":
    main()
