"""`everanimate batch` vs one `everanimate run` per video, on the tiny weights (CPU), and what a batch saves per
job at full size.

    python benchmarks/bench_batch.py --weights .tiny-weights [--dir .bench-batch] [--jobs 4] [--repeats 2]

Part 1 (measured): the same N short jobs (64x32, 30 frames, 2 steps, given pose/face videos) made by one
`batch --workers 1` process and by N `run` processes one after the other, each side in fresh output folders,
each repeated and its fastest wall time kept. Both sides pay the same per-video work (the chunk loop, the mux,
the report); what batch saves is the per-process part: interpreter and imports, the model load, and the prompt
embedding (one umT5 call per run; batch's Animator keeps the models and embeds a prompt once). The runs'
own `timings_s` (load, prompt) say how much of the difference is which.

Part 2 (from `make bench-load`'s latest report, benchmarks/results/*-load-host.json): the full-size load that each
job of a batch does not repeat. bench-load times the DiT load of a 5-block full-width checkpoint per load path;
the full DiT has 40 such blocks, so the full load is that time x 40/5 on that machine's disk and CPU (a lower
bound for a real run, which also loads umT5, CLIP and the VAE: docs/memory-model.md gives their sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results_file import stamped, write_result

CURRENT_PATHS = {"streamed": "FP8 (LoRA fused while streaming)", "streamed-bf16-pin": "bf16 (pinned, for --offload blocks)"}
DIT_BLOCKS = 40  # Wan2.2-Animate-14B's transformer blocks (bench-load's checkpoint holds a few of them at full width)
FRAMES, SIZE, STEPS = 30, "64x32", 2  # one chunk, tiny: the per-process costs are what is compared
MODEL_FLAGS = ["--device", "cpu", "--dtype", "fp32"]


def make_media(d: Path) -> dict:
    """ref.png, pose.mp4, face.mp4, driving.mp4 (40 frames) made with the package's own writer."""
    from PIL import Image

    from animate_cli.media import VideoWriter

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 80, 3), np.uint8)).save(d / "ref.png")
    for name, (w, h) in (("pose.mp4", (64, 32)), ("face.mp4", (64, 64)), ("driving.mp4", (80, 48))):
        with VideoWriter(d / name, w, h, 25.0) as vw:
            for i in range(40):
                vw.write(np.full((h, w, 3), (i * 5) % 255, np.uint8))
    return {k: d / f"{k}.{ext}" for k, ext in (("ref", "png"), ("pose", "mp4"), ("face", "mp4"), ("driving", "mp4"))}


def job(media: dict, out: Path, seed: int) -> dict:
    return {"ref": str(media["ref"]), "driving": str(media["driving"]), "out": str(out), "frames": FRAMES, "size": SIZE,
            "steps": STEPS, "seed": seed, "pose_video": str(media["pose"]), "face_video": str(media["face"])}  # fmt: skip


def run_flags(j: dict) -> list[str]:
    return [j["ref"], j["driving"], "--out", j["out"], "--frames", str(FRAMES), "--size", SIZE, "--steps", str(STEPS),
            "--seed", str(j["seed"]), "--pose-video", j["pose_video"], "--face-video", j["face_video"]]  # fmt: skip


def cli(args: list[str]) -> tuple[float, dict]:
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "animate_cli", *args, "--json", "--progress", "none"], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    wall = time.monotonic() - t
    if proc.returncode != 0:
        raise SystemExit(f"everanimate {' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def one_round(root: Path, media: dict, weights: Path, n: int) -> dict:
    if root.exists():
        shutil.rmtree(root)
    (root / "batch").mkdir(parents=True)
    (root / "runs").mkdir()
    jobs = [job(media, root / "batch" / f"v{i}.mp4", i) for i in range(n)]
    lst = root / "jobs.jsonl"
    lst.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    batch_wall, summary = cli(["batch", str(lst), "--weights-dir", str(weights), *MODEL_FLAGS, "--workers", "1"])
    runs_wall, loads, prompts = 0.0, 0.0, 0.0
    for j in jobs:
        j = {**j, "out": str(root / "runs" / Path(j["out"]).name)}
        wall, s = cli(["run", *run_flags(j), "--weights-dir", str(weights), *MODEL_FLAGS])
        runs_wall += wall
        loads += s["timings_s"].get("load", 0.0)
        prompts += s["timings_s"].get("prompt", 0.0)
    return {"batch_s": batch_wall, "runs_s": runs_wall, "runs_load_s": loads, "runs_prompt_s": prompts,
            "batch_model_loads": sum(w["model_loads"] for w in summary["workers"]),
            "batch_jobs_done": sum(w["jobs_done"] for w in summary["workers"])}  # fmt: skip


def full_size_saving() -> dict | None:
    """The full DiT load time per path (x 40 / its blocks), from the latest bench-load report that timed every path
    of CURRENT_PATHS (a run of a few paths, e.g. the LoRA comparison, is no load-time measurement of the others)."""
    reports = sorted((Path(__file__).parent / "results").glob("*-load-host.json"), reverse=True)
    complete = [r for r in reports if all("seconds" in json.loads(r.read_text())["rows"].get(p, {}) for p in CURRENT_PATHS)]
    if not reports:
        return None
    chosen = (complete or reports)[0]
    data = json.loads(chosen.read_text())
    scale = DIT_BLOCKS / data["blocks"]
    paths = {name: round(row["seconds"] * scale, 1) for name, row in data["rows"].items() if "seconds" in row}
    return {"report": chosen.name, "blocks_measured": data["blocks"], "full_dit_load_s_by_path": paths,
            "note": "DiT only, on the machine that ran bench-load; a run also loads umT5, CLIP and the VAE "
                    "and embeds the prompt"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True, help="the tiny model set (make tiny)")
    ap.add_argument("--dir", type=Path, default=Path(".bench-batch"))
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, help="JSON report (default benchmarks/results/<utc>-<commit>-cpu-batch.json)")
    args = ap.parse_args()
    args.dir = args.dir.resolve()  # the jobs list names its files absolutely (relative ones are the list folder's)
    media = make_media(args.dir / "media")
    rounds = [one_round(args.dir / f"round{r}", media, args.weights, args.jobs) for r in range(args.repeats)]
    best_batch, best_runs = min(r["batch_s"] for r in rounds), min(r["runs_s"] for r in rounds)
    runs = min(rounds, key=lambda r: r["runs_s"])
    measured = {"jobs": args.jobs, "batch_s": round(best_batch, 2), "separate_runs_s": round(best_runs, 2),
                "ratio_batch_over_runs": round(best_batch / best_runs, 3),
                "saved_per_job_s": round((best_runs - best_batch) / args.jobs, 2),
                "separate_runs_load_s_per_job": round(runs["runs_load_s"] / args.jobs, 3),
                "separate_runs_prompt_s_per_job": round(runs["runs_prompt_s"] / args.jobs, 3),
                "batch_model_loads": rounds[0]["batch_model_loads"], "rounds": rounds}  # fmt: skip
    print(f"{args.jobs} jobs, tiny weights, CPU: batch {best_batch:.1f} s vs {args.jobs} runs {best_runs:.1f} s "
          f"(ratio {measured['ratio_batch_over_runs']}); saved per job {measured['saved_per_job_s']} s, of which each run "
          f"spent {measured['separate_runs_load_s_per_job']} s loading and {measured['separate_runs_prompt_s_per_job']} s "
          f"on the prompt; the batch loaded the models {measured['batch_model_loads']}x", file=sys.stderr)  # fmt: skip
    full = full_size_saving()
    if full:
        paths = full["full_dit_load_s_by_path"]
        what = "; ".join(f"{label}: {paths[p]} s" for p, label in CURRENT_PATHS.items() if p in paths)
        print(f"full size (bench-load's {full['report']}, x{DIT_BLOCKS}/{full['blocks_measured']} blocks): each job after the "
              f"first skips a DiT load of {what}, plus umT5/CLIP/VAE and the prompt", file=sys.stderr)  # fmt: skip
    result = stamped({"cpus": os.cpu_count(), "measured_tiny": measured, "full_size": full})
    write_result(result, "batch", args.out)


if __name__ == "__main__":
    main()
