"""CPU benchmark on tiny random weights (not a test; `make bench`).

1. Like for like: our chunk loop against diffusers' stock `WanAnimatePipeline.__call__`, same tiny
   weights, size, steps and number of output frames. On both sides the models are already loaded and
   the prompt embedding is already computed (stock gets it as `prompt_embeds`), so the timed scope is
   "conditioning + DiT + decode" on both:
     ours:  `RunSummary.timings_s["rollout"]` of a real `pipeline.run`: the chunk loop, which reads
            pose/face frames from mp4, VAE-encodes them, runs CLIP, the DiT and the streamed decode,
            writes the H.264 segment and saves the resume state after every chunk;
     stock: the `pipe(...)` call on in-memory PIL frames (no file reading), returning every frame as
            numpy (no H.264, nothing saved).
   The work inside each scope is split by timing hooks on the model modules (transformer = DiT,
   VAE encoder, VAE decoder, CLIP) and by wrapping our frame reads and H.264 writes, the same hooks
   on both sides, so the report works for any version of the pipeline. "Outside the DiT" is the wall
   time of the scope minus the DiT's forward time: what the GPU would wait on per chunk.
2. The stages of a whole run from a raw driving video (pose extraction with the tiny ONNX models,
   prompt, model load, rollout, mux): with the pose stage overlapped with loading, `pose + load`
   exceeds the wall time they take together.
3. Peak RSS of our run for a 10 s vs a 60 s output, each in its own process: streaming decode and
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
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

W, H, STEPS = 64, 32, 4  # tiny weights: the point is pipeline overhead, not the DiT
SECONDS_10, SECONDS_60 = 250, 1500  # output frames at 25 fps


class Timers:
    """Seconds per category, summed over threads (a hidden writer thread still shows its work)."""

    def __init__(self) -> None:
        self.s: dict[str, float] = defaultdict(float)
        self.lock = threading.Lock()

    def add(self, key: str, dt: float) -> None:
        with self.lock:
            self.s[key] += dt

    def module(self, mod, key: str) -> None:
        """Time every forward of `mod` (pre-hook to hook; nested calls of one module do not happen here)."""
        starts: dict[int, float] = {}

        def pre(_m, _a):
            starts[threading.get_ident()] = time.perf_counter()

        def post(_m, _a, _o):
            self.add(key, time.perf_counter() - starts.pop(threading.get_ident()))

        mod.register_forward_pre_hook(pre)
        mod.register_forward_hook(post)

    def models(self, transformer, vae, clip) -> None:
        self.module(transformer, "dit")
        self.module(vae.encoder, "vae_encode")
        self.module(vae.decoder, "vae_decode")
        self.module(clip, "clip")

    def wrap(self, owner, name: str, key: str) -> None:
        fn = getattr(owner, name)

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.add(key, time.perf_counter() - t)

        setattr(owner, name, timed)


def peaks() -> dict:
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_vram_gib": None}
    import torch

    if torch.cuda.is_available():
        out["peak_vram_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def make_media(d: Path, n: int) -> dict:
    """ref.png, pose.mp4/face.mp4 (n frames) and a silent driving.mp4, all synthetic."""
    from PIL import Image

    from animate_cli.media import VideoWriter

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(d / "ref.png")
    # driving is larger than the output: the tiny detector's fixed box must be >= 32 px tall (pose.stage.MIN_BOX_PX)
    for name, (w, h) in {"pose": (W, H), "face": (64, 64), "driving": (160, 96)}.items():
        with VideoWriter(d / f"{name}.mp4", w, h, 25) as wr:
            for i in range(n):
                f = np.zeros((h, w, 3), np.uint8)
                f[:, (i * 3) % w] = 255
                if name == "driving":  # a bright "person" box the tiny detector finds
                    f[h // 8 : h - h // 8, w // 2 - w // 8 + i % 8 : w // 2 + w // 8 + i % 8] = 220
                wr.write(f)
    return {k: d / f"{k}.mp4" for k in ("pose", "face", "driving")} | {"ref": d / "ref.png"}


def child_ours(weights: Path, frames: int, raw_driving: bool = False) -> dict:
    import torch

    from animate_cli import media, models
    from animate_cli.options import RunConfig
    from animate_cli.runner import pipeline

    torch.set_num_threads(1)  # tiny ops: OpenMP sync dominates, and the box is shared (see bench_gpu on the CPU)
    timers = Timers()
    load = models.load_models

    def load_and_hook(*a, **k):
        m = load(*a, **k)
        timers.models(m.transformer, m.vae, m.image_encoder)
        return m

    models.load_models = load_and_hook
    timers.wrap(media, "read_frames_at", "frame_reads")
    timers.wrap(media.VideoWriter, "write", "h264_write")
    timers.wrap(media.VideoWriter, "close", "h264_write")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        m = make_media(d, 120)
        pose = {} if raw_driving else {"pose_video": m["pose"], "face_video": m["face"]}
        cfg = RunConfig(ref=m["ref"], driving=m["driving"], out=d / "out.mp4", frames=frames, width=W, height=H, weights_dir=weights,
                        device="cpu", dtype="fp32", steps=STEPS, **pose)  # fmt: skip
        t = time.perf_counter()
        s = pipeline.run(cfg)
        total = time.perf_counter() - t
    return {
        "chunks": s.chunks,
        "frames_out": s.frames,
        "seconds": total,
        "timings_s": s.timings_s,
        "work_s": dict(timers.s),
        **peaks(),
    }


def child_stock(weights: Path, frames: int) -> dict:
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanAnimatePipeline, WanAnimateTransformer3DModel
    from PIL import Image
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPVisionModel, UMT5EncoderModel

    from animate_cli import config as C
    from animate_cli.models import LoadOptions, encode_prompt

    torch.set_num_threads(1)  # tiny ops: OpenMP sync dominates, and the box is shared (see bench_gpu on the CPU)
    base = weights / "wan2.2-animate-14b"
    tr = WanAnimateTransformer3DModel.from_pretrained(base / "transformer").eval()
    clip = CLIPVisionModel.from_pretrained(base / "image_encoder").eval()
    size = clip.config.image_size
    pipe = WanAnimatePipeline(
        tokenizer=AutoTokenizer.from_pretrained(base / "tokenizer"), text_encoder=UMT5EncoderModel.from_pretrained(base / "text_encoder"),
        vae=AutoencoderKLWan.from_pretrained(base / "vae"), scheduler=FlowMatchEulerDiscreteScheduler(shift=C.SHIFT),
        image_processor=CLIPImageProcessor(crop_size=size, size=size), image_encoder=clip, transformer=tr,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    # The same embedding ours computes once per run, outside the timed scope on both sides.
    text = encode_prompt(base, C.DEFAULT_PROMPT, LoadOptions(device="cpu", dtype="fp32"), C.TEXT_TOKENS)
    timers = Timers()
    timers.models(tr, pipe.vae, clip)
    rng = np.random.default_rng(0)
    face_px = tr.config.motion_encoder_size
    ref = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    pose = [Image.fromarray(np.zeros((H, W, 3), np.uint8)) for _ in range(frames)]
    face = [Image.fromarray(np.zeros((face_px, face_px, 3), np.uint8)) for _ in range(frames)]
    t = time.perf_counter()
    out = pipe(image=ref, pose_video=pose, face_video=face, prompt_embeds=text, height=H, width=W, num_inference_steps=STEPS,
               guidance_scale=1.0, generator=torch.Generator().manual_seed(0), output_type="np").frames[0]  # fmt: skip
    total = time.perf_counter() - t
    segments = max(1, -(-(frames - 1) // 76))  # stock stride with prev_segment_conditioning_frames=1: 77 - 1
    return {"frames_out": len(out), "chunks": segments, "seconds": total, "work_s": dict(timers.s), **peaks()}


def spawn(kind: str, weights: Path, frames: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--weights", str(weights), "--frames", str(frames)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


WORK = [("dit", "DiT forward"), ("frame_reads", "pose/face frame reads (mp4)"), ("vae_encode", "VAE encode"),
        ("clip", "CLIP"), ("vae_decode", "VAE decode"), ("h264_write", "H.264 segment writing")]  # fmt: skip


def scope_table(name: str, scope_s: float, r: dict) -> None:
    """Per-chunk split of one side's timed scope; 'work' may run on another thread (then it is hidden)."""
    n = r["chunks"]
    work = r["work_s"]
    outside = scope_s - work.get("dit", 0.0)
    print(f"  {name}: {scope_s:.2f} s for {r['frames_out']} frames in {n} chunks = {scope_s / n:.3f} s/chunk; "
          f"outside the DiT {outside / n:.3f} s/chunk ({outside / scope_s:.0%} of the scope)")  # fmt: skip
    rest = outside
    for key, label in WORK:
        if key in work:
            print(f"    {label:<30} {work[key] / n:7.3f} s/chunk")
            if key != "dit":
                rest -= work[key]
    note = "  (negative: work hidden on another thread)" if rest < 0 else ""
    print(f"    {'the rest (state save, glue)':<30} {rest / n:7.3f} s/chunk{note}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--child", choices=["ours", "ours-raw", "stock"])
    ap.add_argument("--frames", type=int, default=SECONDS_10)
    ap.add_argument("--repeats", type=int, default=3, help="runs per side; the fastest counts (the CPU box is shared)")
    ap.add_argument("--no-long", action="store_true", help="skip part 3 (the 60 s run: the slowest child)")
    ap.add_argument("--stock-long", action="store_true", help="also run the stock pipeline for 60 s (slow: ~20 segments)")
    a = ap.parse_args()
    if a.child:
        fn = {"ours": child_ours, "ours-raw": lambda w, f: child_ours(w, f, raw_driving=True), "stock": child_stock}[a.child]
        print(json.dumps(fn(a.weights, a.frames)))
        return
    print(f"tiny weights, CPU, {W}x{H}, {STEPS} steps; each measurement in its own process")
    # The 2-core box is shared: alternate the sides and keep each side's fastest run of its timed scope.
    runs = [(spawn("ours", a.weights, SECONDS_10), spawn("stock", a.weights, SECONDS_10)) for _ in range(a.repeats)]
    ours = min((o for o, _ in runs), key=lambda r: r["timings_s"]["rollout"])
    stock = min((s for _, s in runs), key=lambda r: r["seconds"])
    roll = ours["timings_s"]["rollout"]
    print(
        f"(best of {a.repeats}; all runs, s: ours "
        + ", ".join(f"{o['timings_s']['rollout']:.2f}" for o, _ in runs)
        + " | stock "
        + ", ".join(f"{s['seconds']:.2f}" for _, s in runs)
        + ")"
    )
    print(f"1. like for like, {SECONDS_10} frames, models loaded and prompt embedded on both sides:")
    scope_table("ours  (chunk loop: reads mp4, conditions, DiT, decode, writes H.264, saves state)", roll, ours)
    scope_table("stock (WanAnimatePipeline.__call__ on in-memory frames, returns numpy)", stock["seconds"], stock)
    per_s = (roll / ours["frames_out"]) / (stock["seconds"] / stock["frames_out"])
    print(f"  ratio ours/stock, time per output frame: {per_s:.2f}; per chunk: "
          f"{(roll / ours['chunks']) / (stock['seconds'] / stock['chunks']):.2f} (EverAnimate chunks are 24 slots vs stock 21)")  # fmt: skip
    dit = ours["work_s"]["dit"] / stock["work_s"]["dit"] * stock["chunks"] / ours["chunks"]
    print(f"  ratio ours/stock, DiT time per chunk: {dit:.2f}")
    print("  left out of ours: model loading, prompt encoding, pose extraction, final mux (all in the stage timings below)")
    print(
        "  left out of stock: reading pose/face videos from disk, writing any video file, resume state; it keeps every frame in memory"
    )
    print(f"  peak RSS: ours {ours['peak_rss_mib']:.0f} MiB, stock {stock['peak_rss_mib']:.0f} MiB"
          + (f"; peak VRAM ours {ours['peak_vram_gib']:.2f} GiB, stock {stock['peak_vram_gib']:.2f} GiB" if ours["peak_vram_gib"] else ""))  # fmt: skip

    raw = min((spawn("ours-raw", a.weights, SECONDS_10) for _ in range(a.repeats)), key=lambda r: r["seconds"])
    t = raw["timings_s"]
    print(f"2. whole run from a raw driving video, {SECONDS_10} frames (stage wall times of the fastest run, s):")
    print("  " + "  ".join(f"{k} {v:.2f}" for k, v in t.items() if isinstance(v, (int, float))))
    if "chunks" in t:  # the pipeline's own per-chunk laps (what the loop waited on; writer work on its thread is hidden)
        keys = sorted({k for c in t["chunks"] for k in c if k != "chunk"})
        print(
            "  rollout, mean per chunk (pipeline laps): "
            + "  ".join(f"{k} {np.mean([c.get(k, 0) for c in t['chunks']]):.3f}" for k in keys)
        )
    print(
        f"  wall {raw['seconds']:.2f} s; pose + prompt + load = {t.get('pose', 0) + t.get('prompt', 0) + t.get('load', 0):.2f} s of stage time"
    )

    if a.no_long:
        return
    long = spawn("ours", a.weights, SECONDS_60)
    print(f"3. peak RSS ours: 10 s {ours['peak_rss_mib']:.0f} MiB, 60 s {long['peak_rss_mib']:.0f} MiB "
          f"(ratio {long['peak_rss_mib'] / ours['peak_rss_mib']:.2f}); stock 10 s {stock['peak_rss_mib']:.0f} MiB")  # fmt: skip
    if a.stock_long:
        stock_long = spawn("stock", a.weights, SECONDS_60)
        print(f"   peak RSS stock: 60 s {stock_long['peak_rss_mib']:.0f} MiB (ratio to its 10 s: "
              f"{stock_long['peak_rss_mib'] / stock['peak_rss_mib']:.2f}); 60 s like-for-like scope: ours "
              f"{long['timings_s']['rollout']:.1f} s vs stock {stock_long['seconds']:.1f} s "
              f"(ratio {long['timings_s']['rollout'] / stock_long['seconds']:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
