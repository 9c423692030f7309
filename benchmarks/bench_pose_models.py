"""Pose-model cost on the CPU at the real sizes: `wan` (YOLOv10m + ViTPose-H) vs `rtmw` (YOLOX-m + RTMW-l 384x288).

    python benchmarks/bench_pose_models.py [--dir .bench-pose] [--runs 3] [--models wan,rtmw] [--json PATH]

No weights are downloaded: random-weight ONNX stand-ins are built once into --dir (about 2.7 GB, reused):
* ViTPose-H: the real architecture (patch embedding 16x16 with padding 2 -> 16x12 tokens, 32 pre-norm
  blocks of width 1280 with 16 heads and a 5120 MLP, then the classic decoder: two 4x4 stride-2
  deconvolutions of 256 channels and a 1x1 convolution to 133 heatmaps), input [1,3,256,192] ->
  [1,133,64,48]. ~632 M parameters, stored as Wan's is: a folder with end2end.onnx + external weights.
* YOLOv10m, YOLOX-m, RTMW-l: dense 3x3-conv pyramids (strides 2..32) whose parameter count and
  multiply-accumulates match the published figures (below), with the real input/output signatures.
  They are not the real architectures (those use CSP / depthwise blocks and attention heads), so their
  CPU time is an estimate of the same order, not a measurement of the real network.
Each model pair runs in a child process (its peak RSS is its own): load both sessions, one warm-up,
then --runs timed frames of detector + pose at batch 1 (one person per frame, as the pose stage does).
This is the models' share only; decode, crop, drawing and H.264 are `bench_pose.py` (tiny models).
GPU time is estimated from the FLOPs (see benchmarks/README.md for the assumptions).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Published sizes (multiply-accumulates per image, parameters). "GFLOPs" in the YOLO tables are 2 x MACs
# (thop x 2); ViTPose's and mmpose's tables count MACs.
PUBLISHED = {
    "yolov10m": {"gmacs": 59.1 / 2, "mparams": 15.4, "src": "YOLOv10 paper table: 15.4 M params, 59.1 GFLOPs at 640"},
    "yolox_m": {"gmacs": 73.8 / 2, "mparams": 25.3, "src": "YOLOX model zoo: 25.3 M params, 73.8 GFLOPs at 640"},
    "rtmw_l_384": {"gmacs": 17.7, "mparams": 57.2, "src": "mmpose v1.3.0 notes: RTMW-l 384x288 17.7 GFLOPS (MACs); params ~57 M"},
    "vitpose_h": {"gmacs": 122.9, "mparams": 632.0, "src": "ViTPose paper: ViTPose-H 122.9 GFLOPs (MACs) at 256x192"},
}
PAIRS = {"wan": ("yolov10m", "vitpose_h"), "rtmw": ("yolox_m", "rtmw_l_384")}
INPUTS = {"yolov10m": (640, 640), "yolox_m": (640, 640), "rtmw_l_384": (384, 288), "vitpose_h": (256, 192)}


# --- ViTPose-H, the real architecture ------------------------------------------------------------
def vitpose_h(path: Path, depth: int = 32, dim: int = 1280, heads: int = 16, mlp: int = 5120) -> dict:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def w(name, *shape, scale=0.02):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape, np.float32) * scale).astype(np.float32), name))
        return name

    def node(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], **kw))
        return out

    def const(name, values, dtype=np.int64):
        inits.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    h, wd = 256 // 16, 192 // 16  # padding 2 on a 16x16 / 16 patch grid: floor((256 + 4 - 16) / 16) + 1 = 16
    x = node("Conv", ["input", w("patch.w", dim, 3, 16, 16), w("patch.b", dim)], "patch", strides=[16, 16], pads=[2, 2, 2, 2])
    x = node("Reshape", [x, const("s_tok", [1, dim, h * wd])], "tok0")
    x = node("Transpose", [x], "tok1", perm=[0, 2, 1])
    x = node("Add", [x, w("pos", 1, h * wd, dim)], "tok")
    hd = dim // heads
    for i in range(depth):
        p = f"b{i}."
        y = node("LayerNormalization", [x, w(p + "ln1.w", dim, scale=1.0), w(p + "ln1.b", dim)], p + "ln1", axis=-1)
        qkv = node("Add", [node("MatMul", [y, w(p + "qkv.w", dim, 3 * dim)], p + "qkv0"), w(p + "qkv.b", 3 * dim)], p + "qkv")
        qkv = node("Reshape", [qkv, const(p + "s_qkv", [1, h * wd, 3, heads, hd])], p + "qkv1")
        qkv = node("Transpose", [qkv], p + "qkv2", perm=[2, 0, 3, 1, 4])  # 3, 1, heads, tokens, hd
        q, k, v = (node("Gather", [qkv, const(f"{p}i{j}", j)], f"{p}{n}", axis=0) for j, n in enumerate("qkv"))
        att = node("MatMul", [q, node("Transpose", [k], p + "kT", perm=[0, 1, 3, 2])], p + "att0")
        att = node("Softmax", [node("Mul", [att, const(p + "scale", hd**-0.5, np.float32)], p + "att1")], p + "att", axis=-1)
        o = node("Transpose", [node("MatMul", [att, v], p + "o0")], p + "o1", perm=[0, 2, 1, 3])
        o = node("Reshape", [o, const(p + "s_o", [1, h * wd, dim])], p + "o2")
        o = node("Add", [node("MatMul", [o, w(p + "proj.w", dim, dim)], p + "o3"), w(p + "proj.b", dim)], p + "o")
        x = node("Add", [x, o], p + "x1")
        y = node("LayerNormalization", [x, w(p + "ln2.w", dim, scale=1.0), w(p + "ln2.b", dim)], p + "ln2", axis=-1)
        y = node("Add", [node("MatMul", [y, w(p + "fc1.w", dim, mlp)], p + "f0"), w(p + "fc1.b", mlp)], p + "f1")
        y = node("Gelu", [y], p + "f2", domain="com.microsoft")
        y = node("Add", [node("MatMul", [y, w(p + "fc2.w", mlp, dim)], p + "f3"), w(p + "fc2.b", dim)], p + "f4")
        x = node("Add", [x, y], p + "x")
    x = node("LayerNormalization", [x, w("ln.w", dim, scale=1.0), w("ln.b", dim)], "ln", axis=-1)
    x = node("Reshape", [node("Transpose", [x], "feat0", perm=[0, 2, 1]), const("s_feat", [1, dim, h, wd])], "feat")
    for j, cin in enumerate((dim, 256)):  # classic decoder (deconv + BN folded + ReLU) x 2
        x = node(
            "ConvTranspose", [x, w(f"dc{j}.w", cin, 256, 4, 4), w(f"dc{j}.b", 256)], f"dc{j}", strides=[2, 2], pads=[1, 1, 1, 1]
        )
        x = node("Relu", [x], f"r{j}")
    node("Conv", [x, w("final.w", 133, 256, 1, 1), w("final.b", 133)], "heatmaps")
    graph = helper.make_graph(nodes, "vitpose_h_standin", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 256, 192])],
                              [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1, 133, 64, 48])], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    path.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path / "end2end.onnx"), save_as_external_data=True, all_tensors_to_one_file=False,
                    size_threshold=1024)  # fmt: skip
    params = sum(int(np.prod(t.dims)) for t in inits if t.data_type == TensorProto.FLOAT)
    tokens = h * wd
    macs = 16 * 16 * 3 * dim * tokens + depth * (tokens * (4 * dim * dim + 2 * dim * mlp) + 2 * tokens * tokens * dim)
    macs += (h * 2) * (wd * 2) * dim * 256 * 16 + (h * 4) * (wd * 4) * 256 * 256 * 16 + 64 * 48 * 256 * 133
    return {"params": params, "macs": macs}


# --- FLOP/parameter-matched conv pyramids --------------------------------------------------------
def pyramid_plan(h: int, w: int, gmacs: float, mparams: float) -> tuple[int, list[int]]:
    """(base width, convs per stage) of a 5-stage 3x3 pyramid (widths base x 1,2,4,8,16) nearest to the target."""
    best = None
    for base in (32, 40, 48, 56, 64, 72, 80):
        widths = [base * m for m in (1, 2, 4, 8, 16)]
        for counts in itertools.product(range(0, 7), repeat=5):
            macs = params = 0
            cin = 3
            for s, (c, n) in enumerate(zip(widths, counts, strict=True)):
                hw = (h >> (s + 1)) * (w >> (s + 1))
                for cin_i in [cin] + [c] * n:
                    macs += 9 * cin_i * c * hw
                    params += 9 * cin_i * c
                cin = c
            err = abs(macs / 1e9 / gmacs - 1) + abs(params / 1e6 / mparams - 1)
            if best is None or err < best[0]:
                best = (err, base, list(counts), macs, params)
    return best[1], best[2]


def conv_pyramid(path: Path, name: str) -> dict:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w = INPUTS[name]
    base, counts = pyramid_plan(h, w, PUBLISHED[name]["gmacs"], PUBLISHED[name]["mparams"])
    rng = np.random.default_rng(1)
    inits, nodes = [], []
    x, cin, macs, params = "input", 3, 0, 0
    for s, n in enumerate(counts):
        c, hw = base << s, (h >> (s + 1)) * (w >> (s + 1))
        for j in range(n + 1):
            wn, bn = f"s{s}c{j}.w", f"s{s}c{j}.b"
            inits.append(
                numpy_helper.from_array(
                    (rng.standard_normal((c, cin, 3, 3), np.float32) * (2 / (9 * cin)) ** 0.5).astype(np.float32), wn
                )
            )
            inits.append(numpy_helper.from_array(np.zeros(c, np.float32), bn))
            stride = 2 if j == 0 else 1
            nodes.append(helper.make_node("Conv", [x, wn, bn], [f"s{s}c{j}"], strides=[stride, stride], pads=[1, 1, 1, 1]))
            nodes.append(helper.make_node("Relu", [f"s{s}c{j}"], [f"s{s}r{j}"]))
            x = f"s{s}r{j}"
            macs, params = macs + 9 * cin * c * hw, params + 9 * cin * c
            cin = c
    gh, gw = h >> 5, w >> 5

    def const(nm, v, dt=np.int64):
        inits.append(numpy_helper.from_array(np.asarray(v, dt), nm))
        return nm

    if name == "rtmw_l_384":  # SimCC: 133 x (2w) and 133 x (2h) bins
        inits.append(numpy_helper.from_array(rng.standard_normal((133, cin, 1, 1), np.float32) * 0.01, "kp.w"))
        nodes.append(helper.make_node("Conv", [x, "kp.w"], ["kp"]))
        nodes.append(helper.make_node("Reshape", ["kp", const("s_kp", [1, 133, gh * gw])], ["kpf"]))
        outs = []
        for ax, bins in (("x", w * 2), ("y", h * 2)):
            inits.append(numpy_helper.from_array(rng.standard_normal((gh * gw, bins), np.float32) * 0.01, f"simcc_{ax}.w"))
            nodes.append(helper.make_node("MatMul", ["kpf", f"simcc_{ax}.w"], [f"simcc_{ax}"]))
            outs.append(helper.make_tensor_value_info(f"simcc_{ax}", TensorProto.FLOAT, [1, 133, bins]))
    else:  # detector: [1, N, 6] (YOLOv10 end-to-end: x1, y1, x2, y2, score, class) or [1, N, 5] (YOLOX + NMS)
        k = 6 if name == "yolov10m" else 5
        n_out = 300 if name == "yolov10m" else 100
        inits.append(numpy_helper.from_array(rng.standard_normal((k, cin, 1, 1), np.float32) * 0.01, "det.w"))
        nodes.append(helper.make_node("Conv", [x, "det.w"], ["det"]))
        nodes.append(helper.make_node("Reshape", ["det", const("s_det", [1, k, gh * gw])], ["detf"]))
        nodes.append(helper.make_node("Slice", ["detf", const("st", [0]), const("en", [n_out]), const("axs", [2])], ["dets"]))
        nodes.append(helper.make_node("Transpose", ["dets"], ["output0"], perm=[0, 2, 1]))
        outs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, n_out, k])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, h, w])], outs, inits)
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return {"params": params, "macs": macs, "plan": {"base_width": base, "convs_per_stage": counts}}


def build(root: Path) -> dict:
    """Build (once) every stand-in under root; returns {name: {path, params, macs, ...}}."""
    root.mkdir(parents=True, exist_ok=True)
    index = root / "index.json"
    known = json.loads(index.read_text()) if index.is_file() else {}
    for name in PUBLISHED:
        path = root / ("vitpose_h_wholebody.onnx" if name == "vitpose_h" else f"{name}.onnx")
        if name in known and path.exists():
            continue
        t = time.monotonic()
        info = vitpose_h(path) if name == "vitpose_h" else conv_pyramid(path, name)
        known[name] = {"path": str(path), **info, "build_s": round(time.monotonic() - t, 1)}
        print(f"built {name}: {info['params'] / 1e6:.1f} M params, {info['macs'] / 1e9:.1f} GMACs -> {path}", file=sys.stderr)
        index.write_text(json.dumps(known, indent=1))
    return known


CHILD = r"""
import json, os, sys, time
import numpy as np, onnxruntime as ort
det_path, pose_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = os.cpu_count()
t = time.monotonic()
sess = [ort.InferenceSession(p, so, providers=["CPUExecutionProvider"]) for p in (det_path, pose_path)]
load_s = time.monotonic() - t
feeds = [{s.get_inputs()[0].name: np.random.default_rng(0).random(s.get_inputs()[0].shape, np.float32)} for s in sess]
for s, f in zip(sess, feeds):
    s.run(None, f)  # warm-up
det_t, pose_t = [], []
for _ in range(runs):
    t = time.monotonic(); sess[0].run(None, feeds[0]); det_t.append(time.monotonic() - t)
    t = time.monotonic(); sess[1].run(None, feeds[1]); pose_t.append(time.monotonic() - t)
# VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork + exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"load_s": load_s, "det_s": det_t, "pose_s": pose_t, "peak_rss_mib": hwm / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path(".bench-pose"), help="where the stand-in models are built (once)")
    ap.add_argument("--runs", type=int, default=3, help="timed frames per model pair (after one warm-up)")
    ap.add_argument("--models", default="wan,rtmw")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()
    built = build(args.dir)
    rows = {}
    for pair in args.models.split(","):
        det, pose = PAIRS[pair]
        pose_path = Path(built[pose]["path"])
        pose_file = pose_path / "end2end.onnx" if pose_path.is_dir() else pose_path
        proc = subprocess.run([sys.executable, "-c", CHILD, built[det]["path"], str(pose_file), str(args.runs)],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode:
            sys.exit(proc.stderr)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        det_ms, pose_ms = 1000 * min(r["det_s"]), 1000 * min(r["pose_s"])
        macs = built[det]["macs"] + built[pose]["macs"]
        rows[pair] = {"det": det, "pose": pose, "det_ms": round(det_ms, 1), "pose_ms": round(pose_ms, 1),
                      "frames_per_s": round(1000 / (det_ms + pose_ms), 3), "peak_rss_mib": round(r["peak_rss_mib"]),
                      "load_s": round(r["load_s"], 1), "gmacs_per_frame": round(macs / 1e9, 1),
                      "cpu_gflops_achieved": round(2 * macs / 1e9 / ((det_ms + pose_ms) / 1000), 1)}  # fmt: skip
        print(f"{pair:5s} {det} + {pose}: det {det_ms:8.1f} ms, pose {pose_ms:8.1f} ms -> {rows[pair]['frames_per_s']:.3f} "
              f"frames/s (models only), {macs / 1e9:.0f} GMACs/frame, peak RSS {r['peak_rss_mib']:.0f} MiB")  # fmt: skip
    report = {"bench": "pose-models", "cpu_count": os.cpu_count(), "runs": args.runs, "published": PUBLISHED,
              "standins": {k: {kk: v for kk, v in b.items() if kk != "path"} for k, b in built.items()}, "pairs": rows}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
