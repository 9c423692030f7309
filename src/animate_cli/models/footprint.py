"""Predicted peak GPU memory, host memory and relative DiT speed of a run, per memory mode (docs/memory-model.md).

No torch: `run --dry-run` and the device check read a shipped table, `footprint_table.json`, which
`scripts/make_footprint_table.py` measures by running the real diffusers modules at full size on fake
tensors (benchmarks/measure_footprint.py in the source tree; a test re-measures it and compares). The table holds

    weights      bytes per model (size-independent): the DiT in bf16 and with FP8 linears (blocks, face adapters), split
                 into diffusers' block-level offload groups (with their pinned-host sizes); VAE, CLIP, umT5
    activations  peak bytes per phase (prompt, clip, vae_encode_pose, dit_step, decode) at a few measured
                 sizes (MEASURED_SIZES)

For any other --size, activation bytes are interpolated linearly in DiT tokens (24 x H/16 x W/16) between
the two nearest measured sizes, and extrapolated linearly from the nearest pair outside them: with fused
attention every activation of the DiT, and every VAE activation (pixels = 256 x tokens / 24), grows
linearly with the token count. Weights do not depend on the size.

A mode is (offload, weights_dtype): offload "none" = every model resident on the GPU; "blocks" = the DiT
under diffusers group offloading (block level, CUDA stream prefetch, pinned host copies), umT5 and the VAE
on the GPU only while they run, CLIP too except with FP8 weights (clip_resident). GPU figures: the allocated peak of each phase (`phases`, what
torch.cuda.max_memory_allocated reports), what the caching allocator reserves for it (`reserved_phases`:
RESERVED_OVER_ALLOCATED on the memory it churns), and `gpu_gib` = the largest reserved phase plus
onnxruntime's pose memory where it overlaps and the CUDA context: what must be free. `host_gib` is the available host RAM the run needs at its peak.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from animate_cli import config as C

TABLE_PATH = Path(__file__).with_name("footprint_table.json")
# Measured sizes: the two presets, plus a smaller one so interpolation below 480p is checked, not assumed.
MEASURED_SIZES = ((640, 352), (832, 480), (1280, 720))
OFFLOAD_MODES = ("none", "blocks")
WEIGHTS_DTYPES = ("bf16", "fp8")
PHASES = ("prompt", "clip", "vae_encode_pose", "dit_step", "decode")
GPU_PHASES = ("prompt", "load", *PHASES[1:])  # + the models resident before their first forward (pose overlaps it)
OVERLAPS_POSE = ("prompt", "load")
GIB = 2**30

# --- GPU margins --------------------------------------------------------------------------------
# The CUDA context, cuBLAS/cuDNN handles and workspaces live outside torch's allocator: ~0.5 GiB of context
# with lazy module loading on Hopper, plus workspaces. nvidia-smi's "free" (the dry-run probe) still
# includes our context; torch.cuda.mem_get_info (the run-time probe) is read after it exists, so there
# this is a margin to spare.
CUDA_CONTEXT_GIB = 0.75
# What torch's caching allocator reserves beyond what it hands out, for memory that is freed and allocated
# again all the time (activations; under `blocks` also every streamed weight group): block rounding and
# fragmentation between differently shaped tensors. Evidence, on this model under block offload
# (ComfyUI-WanVideoWrapper issue #1267, Wan-Animate 1280x720, 77-frame windows, 35 of 40 blocks swapped):
# max allocated 23.242 GB, max reserved 28.719 GB, ratio 1.236. And #1722: a 16 GB card (RTX 4080 Super)
# runs out of memory at 720x1280 with all 40 blocks swapped (11-12 GB while sampling, 15+ GB between
# windows), where allocated-only arithmetic said 720p fits 16 GB. The CLI sets expandable_segments (which
# should lower the ratio, cli.common.default_alloc_conf); until `make gpu-check` measures ours, keep 1.24.
RESERVED_OVER_ALLOCATED = 1.24
# Weights allocated once and never freed (resident models) are not churned: the allocator rounds a large
# allocation to 2 MiB only, so they count 1:1. (`none`: the resident DiT/VAE/CLIP; `blocks`: a resident CLIP.)
# onnxruntime's CUDA memory for pose extraction, outside torch's allocator: it runs on a worker thread while
# the prompt is encoded and the models load (runner.pipeline step 2), so it overlaps those two phases only.
# YOLOX-m + RTMW-l in fp32 are ~0.33 GiB of weights; onnxruntime's BFC arena grows by powers of two
# (arena_extend_strategy kNextPowerOfTwo, its default) and cuDNN's convolution search may take a large
# workspace (cudnn_conv_use_max_workspace, default on since onnxruntime 1.14). An assumption until measured.
POSE_ORT_GIB = 1.5

# --- host memory ---------------------------------------------------------------------------------
# The process itself: Python, torch, diffusers, transformers, the CUDA runtime and its libraries mapped
# (cuBLAS, cuDNN), the driver's context state, the pose/face frames of a chunk. `import torch, diffusers,
# transformers` is ~0.3 GiB RSS on a CPU build (measured here); a CUDA build's libraries once CUDA is
# initialised and cuBLAS/cuDNN loaded add ~2 GiB in common reports. An assumption, with headroom, until a GPU
# run measures it.
HOST_BASELINE_GIB = 3.0
# What the loader does to host RAM (models.load_models, runtime.offload_blocks). Each switch below names a cost the
# loader avoids; False is what it does. Switched on, the model adds that cost (scripts/make_footprint_table.py
# --readme prints the host figures with each one on; docs/memory-model.md tells how each was removed). None of
# this has been measured on a GPU machine yet.
#
# torch's pinned allocator rounds each allocation up to a power of two while it is at most
# `pinned_max_round_threshold_mb` (ATen/core/CachingHostAllocator.h; default: no limit), and diffusers pins
# one copy per tensor, so a 5120x13824 bf16 weight (135 MiB) would take 256 MiB. pinned.check_pinned_sizes
# sets the threshold to 1 MiB and checks with a probe tensor that it took effect; where it did not, the run
# predicts with the rounded sizes (`pinned_rounded`, the table's pinned_* figures). The tensors it still
# rounds (biases, norms) add well under 0.1 GiB, not modelled.
PINNED_POW2 = False
# diffusers 0.42.1 builds every stream group's pinned copy before its hooks release the pageable weights, so
# the DiT would be on the host twice while offloading is set up. runtime.pin_in_place pins the streamed
# tensors one at a time before that (diffusers then reuses the pinned storage): the transient is one tensor,
# the largest being a 5120x13824 FFN weight (dim x ffn_dim in bf16, computed from the table).
PIN_WHILE_PAGEABLE = False
# `none`: the DiT (dit_stream.load_dit with the GPU as home, tensor by tensor) and umT5 (from_pretrained with
# device_map) load straight into GPU memory instead of being materialised on the host first. VAE and CLIP
# still load on the CPU and are moved, one after the other. Not modelled: the checkpoint's file mapping
# (page cache the kernel can reclaim) that each tensor is read from.
LOAD_VIA_HOST_BF16 = False
# FP8 (either offload mode): materialising the DiT in bf16 on the host, fusing its LoRA there and casting the
# Linears afterwards would hold the whole bf16 DiT on the host at the start of the cast. dit_stream.load_dit
# reads it tensor by tensor, fusing and casting each weight on its way to its home: the transient is one read
# bf16 tensor and its FP8 copy (the fuse itself runs on the GPU).
FP8_CAST_ON_HOST = False
# `blocks` + FP8: CLIP would be offloaded like the VAE (1.2 GiB of host RAM for the whole run); it stays on the
# GPU instead (clip_resident says why).
CLIP_OFFLOADED = False
# The EverAnimate LoRA is read whole (bf16, rank 32: 0.29 GiB) before the DiT's weights are fused with it;
# dit_stream frees each pair once fused.
LORA_RANK = 32  # the released files (docs/model-facts.md, LoRA rank)

# --- speed ---------------------------------------------------------------------------------------
H2D_PINNED_GBPS = 24.0  # PCIe 4.0 x16, pinned host->device: ~24-26 GB/s measured of 32 GB/s nominal
H2D_PAGEABLE_GBPS = 10.0  # pageable copies go through a staging buffer: roughly half the pinned rate
HBM_GBPS = 2000.0  # GPU memory bandwidth for FP8->bf16 weight casts (H100 PCIe 2.0 TB/s; SXM/H200 faster)


@dataclass(frozen=True)
class Need:
    """One memory mode's predicted needs. GiB figures; `phases` are allocated GPU GiB per phase."""

    offload: str
    weights_dtype: str
    gpu_gib: float  # must be free on the GPU: max(reserved_phases + pose arena where it overlaps) + CUDA context
    host_gib: float  # must be available in host RAM (max of host_phases)
    relative_speed: float  # DiT step rate relative to offload none + bf16 (1.0); higher is faster
    phases: dict = field(default_factory=dict)  # GPU allocated peak per phase, GiB (torch.cuda.max_memory_allocated)
    reserved_phases: dict = field(default_factory=dict)  # the same, as torch's allocator reserves it (max_memory_reserved)
    host_phases: dict = field(default_factory=dict)  # host peak while encoding the prompt / loading / running

    @property
    def name(self) -> str:
        return f"{self.offload}/{self.weights_dtype}"

    def fits(self, free_gpu_gib: float | None, avail_host_gib: float | None) -> bool:
        gpu_ok = free_gpu_gib is None or self.gpu_gib <= free_gpu_gib
        return gpu_ok and (avail_host_gib is None or self.host_gib <= avail_host_gib)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    need: Need | None  # the chosen mode, or None when nothing fits
    reason: str  # one line, human-readable


@cache
def table(path: Path = TABLE_PATH) -> dict:
    return json.loads(Path(path).read_text())


def scaled_table(blocks: int, face_adapters: int, tab: dict | None = None) -> dict:
    """The table for a DiT cut to its first `blocks` blocks and `face_adapters` face adapters (same width): what
    `make gpu-check` builds to measure the memory phases in seconds instead of loading 17 B parameters. Activations
    do not depend on the depth (a step's peak is inside one block); weights are the kept groups plus the rest."""
    import copy

    tab = copy.deepcopy(tab or table())
    keep = {f"blocks.{i}" for i in range(blocks)} | {f"face_adapter.{i}" for i in range(face_adapters)} | {"unmatched"}
    groups = [g for g in tab["weights"]["dit"]["groups"] if g["name"] in keep]
    for wd in WEIGHTS_DTYPES:
        tab["weights"]["dit"][wd] = sum(g[wd] for g in groups)
    tab["weights"]["dit"]["groups"] = groups
    tab["dit"]["num_layers"] = blocks
    tab["dit"]["execution_order"] = [n for n in tab["dit"]["execution_order"] if n in keep]
    return tab


def tokens_for(width: int, height: int) -> int:
    """DiT tokens per call: 24 latent slots x (H/16) x (W/16)."""
    return C.LATENT_SLOTS * (height // C.VAE_STRIDE_S // C.PATCH) * (width // C.VAE_STRIDE_S // C.PATCH)


def activation_bytes(phase: str, tokens: int, tab: dict | None = None) -> float:
    """Peak activation bytes of `phase`, piecewise linear in tokens through the measured points."""
    pts = sorted(((p["tokens"], p["activations"][phase]) for p in (tab or table())["points"]), key=lambda p: p[0])
    if len(pts) == 1:
        return float(pts[0][1])
    i = next((k for k in range(1, len(pts) - 1) if tokens <= pts[k][0]), len(pts) - 1)
    (t0, a0), (t1, a1) = pts[i - 1], pts[i]
    return max(0.0, a0 + (a1 - a0) * (tokens - t0) / (t1 - t0))


def _groups(tab: dict) -> dict:
    return {g["name"]: g for g in tab["weights"]["dit"]["groups"]}


def _dit_resident_blocks(tab: dict, wd: str) -> int:
    """GPU bytes of the DiT under block-level offloading: the unmatched group (resident for the whole
    forward) plus the two largest consecutive groups in execution order (the running one and the one being
    prefetched on the stream; the previous one is released when its forward ends)."""
    g = _groups(tab)
    order = tab["dit"]["execution_order"]
    pair = max(g[a][wd] + g[b][wd] for a, b in zip(order, order[1:], strict=False))
    return g["unmatched"][wd] + pair


def _gpu_phases(tab: dict, tokens: int, offload: str, wd: str) -> dict:
    """{phase: (static, churned)} GPU bytes torch allocates at each phase's peak: `static` is allocated once and
    kept (resident weights), `churned` is freed and allocated again (activations, streamed weight groups); the
    allocator reserves RESERVED_OVER_ALLOCATED times the churned part."""
    w = tab["weights"]
    act = {p: activation_bytes(p, tokens, tab) for p in PHASES}
    dit, vae, clip, umt5 = w["dit"][wd], w["vae"]["bf16"], w["clip"]["bf16"], w["umt5"]["bf16"]
    cast = w["dit"]["fp8_cast_transient"] if wd == "fp8" else 0
    # umT5 encodes the prompt before the other models are loaded (pipeline.run step 4), alone on the GPU.
    if offload == "none":
        resident = dit + vae + clip
        return {"prompt": (umt5, act["prompt"]), "load": (resident, 0), "clip": (resident, act["clip"]),
                "vae_encode_pose": (resident, act["vae_encode_pose"]), "dit_step": (resident, act["dit_step"] + cast),
                "decode": (resident, act["decode"])}  # fmt: skip
    # blocks: umT5 one layer at a time beside its shared embedding; the VAE only while it runs; CLIP for the
    # whole run or only while it runs (clip_resident); the DiT's resident groups only during its step.
    held = clip if clip_resident(offload, wd) else 0
    return {"prompt": (0, w["umt5"]["offloaded_peak"] + act["prompt"]), "load": (held, 0),
            "clip": (held, (0 if held else clip) + act["clip"]), "vae_encode_pose": (held, vae + act["vae_encode_pose"]),
            "dit_step": (held, _dit_resident_blocks(tab, wd) + act["dit_step"] + cast),
            "decode": (held, vae + act["decode"])}  # fmt: skip


def clip_resident(offload: str, weights_dtype: str) -> bool:
    """Whether CLIP stays on the GPU for the whole run rather than visiting it only while it runs.

    `none`: as everything. `blocks` + FP8: yes; that mode is the one for machines short of host RAM (<= 22 GB,
    docs/memory-model.md), CLIP runs every chunk anyway, and its 1.2 GiB still leave 720p within a 16 GB card.
    `blocks` + bf16: no; it needs ~36 GiB of host RAM either way, and on the GPU those 1.2 GiB decide whether 720p
    fits a 16 GB card. models.load_models places CLIP by this rule; the memory model counts it the same way."""
    return offload == "none" or (weights_dtype == "fp8" and not CLIP_OFFLOADED)


def lora_bytes(tab: dict) -> int:
    """Bytes of a bf16 LoRA of rank LORA_RANK on the 10 Linears of every block (q, k, v, o of both attentions;
    the FFN's two): A [r, in] and B [out, r] each."""
    d, f = tab["dit"]["dim"], tab["dit"]["ffn_dim"]
    per_block = 8 * LORA_RANK * (d + d) + 2 * LORA_RANK * (d + f)
    return tab["dit"]["num_layers"] * per_block * 2


def _host_phases(tab: dict, offload: str, wd: str, pinned_rounded: bool = False) -> dict:
    """Host bytes beyond the process baseline, per phase (they do not overlap: umT5 is freed before the other
    models load).

    prompt: `none`: umT5 loads straight to the GPU (unless LOAD_VIA_HOST_BF16); `blocks`: umT5 lives in
            host RAM and visits the GPU layer by layer.
    load:   models.load_models loads the VAE, then CLIP, then the DiT. `none`: VAE and CLIP each pass through
            the host; the DiT does not (bf16: device_map; FP8: dit_stream, one tensor at a time) unless a
            switch says so; the LoRA file is held while the DiT's weights are fused. `blocks`: the VAE stays
            (offloaded), CLIP passes through to the GPU or stays (clip_resident); the DiT in its storage
            dtype as streamed, one tensor in flight (the LoRA is freed pair by pair as it is fused), then
            while pinning one tensor (or the whole pinned copy: PIN_WHILE_PAGEABLE).
    run:    `blocks`: the streamed groups' pinned copies (exact, or per-tensor powers of two: PINNED_POW2, or
            `pinned_rounded` where pinned.check_pinned_sizes found this torch rounding them),
            the unmatched group (pageable), the offloaded VAE (and CLIP unless clip_resident).
    """
    w, dit = tab["weights"], tab["dit"]
    dit_bf16, vae, clip, umt5 = w["dit"]["bf16"], w["vae"]["bf16"], w["clip"]["bf16"], w["umt5"]["bf16"]
    lora = lora_bytes(tab)
    largest = dit["dim"] * dit["ffn_dim"]  # elements of the largest DiT weight (an FFN matrix)
    # dit_stream: one tensor in flight, as read (bf16) and as stored (its fused bf16 or FP8 copy); the fuse's
    # fp32 product is on the GPU. With FP8_CAST_ON_HOST: the bf16 DiT, then cast in place.
    stream = (2 + (1 if wd == "fp8" else 2)) * largest
    fp8_via_bf16 = wd == "fp8" and FP8_CAST_ON_HOST
    if offload == "none":
        via_host = LOAD_VIA_HOST_BF16 or fp8_via_bf16
        return {"prompt": umt5 if LOAD_VIA_HOST_BF16 else 0,
                "load": max(vae, clip, (dit_bf16 if via_host else stream) + lora), "run": 0}  # fmt: skip
    g = _groups(tab)
    rounded = PINNED_POW2 or pinned_rounded
    pinned = sum(v[f"pinned_{wd}" if rounded else wd] for k, v in g.items() if k != "unmatched")
    kept = vae + (0 if clip_resident(offload, wd) else clip)  # host-resident beside the DiT from its load on
    run = pinned + g["unmatched"][wd] + kept
    # streamed, each LoRA pair is freed once fused: the LoRA shrinks as the DiT grows and is gone by the end
    as_loaded = dit_bf16 + lora if fp8_via_bf16 else w["dit"][wd] + stream
    pinning = w["dit"][wd] + (pinned if PIN_WHILE_PAGEABLE else largest * (2 if wd == "bf16" else 1))
    load = max(vae + clip, kept + as_loaded, kept + pinning)
    return {"prompt": umt5, "load": load, "run": run}


def _step_seconds(tab: dict, tokens: int, offload: str, wd: str) -> float:
    """Seconds of one DiT step: per-group compute (FLOPs at config.ASSUMED_TFLOPS, plus the FP8->bf16 cast of
    the FP8 Linears of blocks and face adapters at HBM_GBPS) and, with offload, per-group H2D transfers; the stream prefetches group i+1
    while group i computes, so a group costs max(compute_i, transfer_i+1). The unmatched group is moved
    synchronously, without the stream: on and off once per step at the pageable rate."""

    dit, g = tab["dit"], _groups(tab)
    d, f, n_ctx = dit["dim"], dit["ffn_dim"], C.TEXT_TOKENS + 257
    face_tokens = C.LATENT_SLOTS * (dit["face_heads"] + 1)
    block = tokens * (12 * d * d + 4 * d * f) + 4 * d * d * n_ctx + 4 * tokens * tokens * d + 4 * tokens * n_ctx * d
    face = 4 * d * d * (tokens + face_tokens) + 4 * tokens * (dit["face_heads"] + 1) * d
    order = dit["execution_order"]

    def compute(name: str) -> float:
        s = (block if name.startswith("blocks.") else face) / (C.ASSUMED_TFLOPS * 1e12)
        if g[name]["fp8"] != g[name]["bf16"] and wd == "fp8":  # a group with FP8 linears (blocks, face adapters)
            s += (g[name]["fp8"] + g[name]["bf16"]) / (HBM_GBPS * 1e9)  # read fp8, write bf16, per linear
        return s

    if offload == "none":
        return sum(compute(n) for n in order)
    xfer = [g[n][wd] / (H2D_PINNED_GBPS * 1e9) for n in order]
    total = 2 * g["unmatched"][wd] / (H2D_PAGEABLE_GBPS * 1e9) + xfer[0]
    for i, name in enumerate(order):
        total += max(compute(name), xfer[i + 1] if i + 1 < len(order) else 0.0)
    return total


def predict(width: int, height: int, offload: str, weights_dtype: str, tab: dict | None = None, *,
            pinned_rounded: bool = False) -> Need:  # fmt: skip
    """Predicted needs of one mode at W x H (bf16 compute). `pinned_rounded`: this torch rounds pinned host
    allocations up to powers of two (pinned.check_pinned_sizes), so `blocks` needs the rounded host RAM."""
    if offload not in OFFLOAD_MODES or weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"unknown memory mode {offload}/{weights_dtype}")
    tab = tab or table()
    tokens = tokens_for(width, height)
    gpu = _gpu_phases(tab, tokens, offload, weights_dtype)
    reserved = {k: static + RESERVED_OVER_ALLOCATED * churned for k, (static, churned) in gpu.items()}
    outside = {k: POSE_ORT_GIB * GIB if k in OVERLAPS_POSE else 0.0 for k in gpu}
    host = _host_phases(tab, offload, weights_dtype, pinned_rounded)
    base = _step_seconds(tab, tokens, "none", "bf16")
    speed = base / _step_seconds(tab, tokens, offload, weights_dtype)
    peak = max(reserved[k] + outside[k] for k in gpu) / GIB
    return Need(
        offload=offload, weights_dtype=weights_dtype,
        gpu_gib=round(peak + CUDA_CONTEXT_GIB, 2),
        host_gib=round(HOST_BASELINE_GIB + max(host.values()) / GIB, 2),
        relative_speed=round(speed, 3),
        phases={k: round(sum(v) / GIB, 2) for k, v in gpu.items()},
        reserved_phases={k: round(v / GIB, 2) for k, v in reserved.items()},
        host_phases={k: round(HOST_BASELINE_GIB + v / GIB, 2) for k, v in host.items()},
    )  # fmt: skip


def modes(width: int, height: int, tab: dict | None = None, *, pinned_rounded: bool = False) -> list[Need]:
    """Every (offload, weights_dtype) mode at W x H, fastest first (ties: resident, then bf16, first)."""
    out = [predict(width, height, o, d, tab, pinned_rounded=pinned_rounded) for o in OFFLOAD_MODES for d in WEIGHTS_DTYPES]
    return sorted(out, key=lambda m: (-m.relative_speed, OFFLOAD_MODES.index(m.offload), WEIGHTS_DTYPES.index(m.weights_dtype)))


def describe(all_modes: list[Need]) -> str:
    """'none/bf16 41.1 GiB GPU + 4.2 GiB host, ...' (every mode, for one-line messages)."""
    return ", ".join(f"{m.name} {m.gpu_gib:.1f} GiB GPU + {m.host_gib:.1f} GiB host" for m in all_modes)


def choose(all_modes: list[Need], free_gpu_gib: float | None, avail_host_gib: float | None,
           offload: str = "auto", weights_dtype: str = "bf16") -> Decision:  # fmt: skip
    """The fastest mode that fits, among those the flags allow.

    `auto` considers both offload modes, an explicit `none`/`blocks` only itself; the weights dtype is never
    changed silently (FP8 only when asked). A mode fits when its gpu_gib (margins included) is at most the
    free GPU memory and its host_gib at most the available RAM (None = unknown, not checked).
    """
    if offload not in ("auto", *OFFLOAD_MODES):
        raise ValueError(f"offload must be auto, none or blocks, got {offload!r}")
    allowed = [m for m in all_modes if m.weights_dtype == weights_dtype and offload in ("auto", m.offload)]
    for m in allowed:
        if m.fits(free_gpu_gib, avail_host_gib):
            why = "fastest mode that fits" if offload == "auto" else "as asked, fits"
            return Decision(m, f"{m.name}: {why} ({m.gpu_gib:.1f} GiB GPU, {m.host_gib:.1f} GiB host)")
    gpu = "unknown free GPU memory" if free_gpu_gib is None else f"{free_gpu_gib:.1f} GiB GPU free"
    host = "unknown host RAM" if avail_host_gib is None else f"{avail_host_gib:.1f} GiB host RAM available"
    return Decision(None, f"no memory mode fits --offload {offload} --weights-dtype {weights_dtype}: have {gpu}, "
                          f"{host}; needs {describe(all_modes)}")  # fmt: skip


def hint_for(all_modes: list[Need], free_gpu_gib: float | None, avail_host_gib: float | None, weights_dtype: str) -> str:
    """What to change when nothing fits: a fitting mode the flags excluded, else what to free."""
    # fastest first, but a mode keeping the asked weights dtype before one that changes it
    other = sorted((m for m in all_modes if m.fits(free_gpu_gib, avail_host_gib)), key=lambda m: m.weights_dtype != weights_dtype)
    if other:
        m = other[0]
        return f"--offload {m.offload} --weights-dtype {m.weights_dtype} would fit" + (
            " (FP8 weights: slightly different output)" if m.weights_dtype != weights_dtype else ""
        )
    return "close other GPU programs or free host RAM, or use a smaller --size / --resolution 480p"
