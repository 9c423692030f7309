"""CPU benchmark on tiny random weights (not a test; `make bench`).

1. Time per chunk of our rollout vs diffusers' stock WanAnimatePipeline segment loop on the same
   tiny weights, the same size, steps and number of frames (the stock loop decodes and re-encodes
   the carried frames between segments and keeps every frame in memory).
2. Peak RSS of our run for a 10 s vs a 60 s output, each in its own process: streaming decode and
   per-chunk frame reads should keep it flat.

Ratios are printed against the baseline measured in the same run. Tiny weights make the DiT cheap,
so this measures pipeline overhead (I/O, VAE, conditioning), not the 14B model (see bench_gpu.py).
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

import numpy as np

W, H, STEPS = 64, 32, 4  # tiny weights: the point is pipeline overhead, not the DiT


def make_media(d: Path, n: int) -> dict:
    """ref.png, pose.mp4/face.mp4 (n frames) and a silent driving.mp4, all synthetic."""
    from PIL import Image

    from animate_cli.media import VideoWriter

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(d / "ref.png")
    for name, (w, h) in {"pose": (W, H), "face": (64, 64), "driving": (W, H)}.items():
        with VideoWriter(d / f"{name}.mp4", w, h, 25) as wr:
            for i in range(n):
                f = np.zeros((h, w, 3), np.uint8)
                f[:, (i * 3) % w] = 255
                wr.write(f)
    return {k: d / f"{k}.mp4" for k in ("pose", "face", "driving")} | {"ref": d / "ref.png"}


def child_ours(weights: Path, frames: int) -> dict:
    from animate_cli import pipeline
    from animate_cli.config import RunConfig

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        m = make_media(d, 120)
        cfg = RunConfig(ref=m["ref"], driving=m["driving"], out=d / "out.mp4", frames=frames, width=W, height=H, weights_dir=weights,
                        pose_video=m["pose"], face_video=m["face"], device="cpu", dtype="fp32", steps=STEPS)  # fmt: skip
        t = time.perf_counter()
        s = pipeline.run(cfg)
        total = time.perf_counter() - t
    return {"chunks": s.chunks, "seconds": total, "rollout_s": s.timings_s["rollout"], "per_chunk_s": s.timings_s["rollout"] / s.chunks,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def child_stock(weights: Path, frames: int) -> dict:
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanAnimatePipeline, WanAnimateTransformer3DModel
    from PIL import Image
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPVisionModel, UMT5EncoderModel

    base = weights / "wan2.2-animate-14b"
    tr = WanAnimateTransformer3DModel.from_pretrained(base / "transformer").eval()
    clip = CLIPVisionModel.from_pretrained(base / "image_encoder").eval()
    size = clip.config.image_size
    pipe = WanAnimatePipeline(
        tokenizer=AutoTokenizer.from_pretrained(base / "tokenizer"), text_encoder=UMT5EncoderModel.from_pretrained(base / "text_encoder"),
        vae=AutoencoderKLWan.from_pretrained(base / "vae"), scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        image_processor=CLIPImageProcessor(crop_size=size, size=size), image_encoder=clip, transformer=tr,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    face_px = tr.config.motion_encoder_size
    ref = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    pose = [Image.fromarray(np.zeros((H, W, 3), np.uint8)) for _ in range(frames)]
    face = [Image.fromarray(np.zeros((face_px, face_px, 3), np.uint8)) for _ in range(frames)]
    t = time.perf_counter()
    out = pipe(image=ref, pose_video=pose, face_video=face, prompt="a person", height=H, width=W, num_inference_steps=STEPS,
               guidance_scale=1.0, generator=torch.Generator().manual_seed(0), output_type="np", max_sequence_length=512).frames[0]  # fmt: skip
    total = time.perf_counter() - t
    segments = max(1, -(-(frames - 1) // 76))  # stock stride with prev_segment_conditioning_frames=1: 77 - 1
    return {"frames_out": len(out), "chunks": segments, "seconds": total, "per_chunk_s": total / segments,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def spawn(kind: str, weights: Path, frames: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--weights", str(weights), "--frames", str(frames)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--child", choices=["ours", "stock"])
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--stock-long", action="store_true", help="also run the stock pipeline for 60 s (slow: ~20 segments)")
    a = ap.parse_args()
    if a.child:
        print(json.dumps((child_ours if a.child == "ours" else child_stock)(a.weights, a.frames)))
        return
    print(f"tiny weights, CPU, {W}x{H}, {STEPS} steps; each measurement in its own process")
    ours = spawn("ours", a.weights, 250)
    stock = spawn("stock", a.weights, 250)
    print(f"10 s (250 frames): ours {ours['chunks']} chunks, {ours['per_chunk_s']:.2f} s/chunk (rollout+decode {ours['rollout_s']:.1f} s, "
          f"total {ours['seconds']:.1f} s) | stock WanAnimatePipeline {stock['chunks']} segments, {stock['per_chunk_s']:.2f} s/segment "
          f"(total {stock['seconds']:.1f} s)")  # fmt: skip
    # per output second: both produce 250 frames
    print(f"  ratio ours/stock, time per output second: {ours['seconds'] / stock['seconds']:.2f}  "
          f"(per chunk: {ours['per_chunk_s'] / stock['per_chunk_s']:.2f}; EverAnimate chunks are 24 slots vs stock 21)")  # fmt: skip
    long = spawn("ours", a.weights, 1500)
    print(f"peak RSS ours: 10 s {ours['peak_rss_mib']:.0f} MiB, 60 s {long['peak_rss_mib']:.0f} MiB "
          f"(ratio {long['peak_rss_mib'] / ours['peak_rss_mib']:.2f}); stock 10 s {stock['peak_rss_mib']:.0f} MiB")  # fmt: skip
    if a.stock_long:
        stock_long = spawn("stock", a.weights, 1500)
        print(f"peak RSS stock: 60 s {stock_long['peak_rss_mib']:.0f} MiB (ratio to its 10 s: "
              f"{stock_long['peak_rss_mib'] / stock['peak_rss_mib']:.2f}); 60 s wall: ours {long['seconds']:.1f} s "
              f"vs stock {stock_long['seconds']:.1f} s (ratio {long['seconds'] / stock_long['seconds']:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
