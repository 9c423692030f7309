"""The real-size pose-model stand-ins of benchmarks/bench_pose_models.py have the official signatures and sizes."""

import numpy as np
from helpers import load_benchmark

from animate_cli.weights.onnx_check import onnx_problem

B = load_benchmark("bench_pose_models")


def test_pyramid_plans_match_the_published_sizes():
    for name in ("yolov10m", "yolox_m", "rtmw_l_384"):
        h, w = B.INPUTS[name]
        base, counts = B.pyramid_plan(h, w, B.PUBLISHED[name]["gmacs"], B.PUBLISHED[name]["mparams"])
        widths, cin, macs, params = [base << s for s in range(5)], 3, 0, 0
        for s, (c, n) in enumerate(zip(widths, counts, strict=True)):
            for ci in [cin] + [c] * n:
                macs, params = macs + 9 * ci * c * (h >> (s + 1)) * (w >> (s + 1)), params + 9 * ci * c
            cin = c
        assert abs(macs / 1e9 / B.PUBLISHED[name]["gmacs"] - 1) < 0.1, name
        assert abs(params / 1e6 / B.PUBLISHED[name]["mparams"] - 1) < 0.1, name


def test_vitpose_standin_has_wans_signature_and_folder_layout(tmp_path):
    import onnxruntime as ort

    folder = tmp_path / "vitpose_h_wholebody.onnx"
    info = B.vitpose_h(folder, depth=2, dim=64, heads=4, mlp=128)  # the real builder, narrow
    assert onnx_problem(folder) is None and len(list(folder.iterdir())) > 10  # end2end.onnx + external weights
    s = ort.InferenceSession(str(folder / "end2end.onnx"), providers=["CPUExecutionProvider"])
    out = s.run(None, {"input": np.zeros((1, 3, 256, 192), np.float32)})[0]
    assert out.shape == (1, 133, 64, 48) and info["params"] > 0
    # full size: the published ViTPose-H figures (632 M parameters, ~123 GMACs at 256x192)
    full = 32 * (4 * 1280 * 1280 + 2 * 1280 * 5120)
    assert abs(full / 1e6 / B.PUBLISHED["vitpose_h"]["mparams"] - 1) < 0.01
