"""The real-size pose-model stand-ins of benchmarks/bench_pose_models.py have the official signatures and sizes."""

import inspect

import numpy as np
import onnx
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
    assert out.shape == (1, 133, 64, 48)
    # the file holds exactly ViTPose-H's weights for this config, and the builder reports them
    model = onnx.load(str(folder / "end2end.onnx"), load_external_data=False)
    weights = sum(int(np.prod(w.dims)) for w in model.graph.initializer if w.data_type == onnx.TensorProto.FLOAT and w.dims)
    assert weights == vitpose_params(depth=2, dim=64, mlp=128)
    assert abs(info["params"] / weights - 1) < 1e-3  # + one attention-scale constant per block


def test_vitpose_standin_at_its_default_size_is_vitpose_h():
    """The builder's defaults (what `build` makes) give the published ViTPose-H size (632 M parameters)."""
    defaults = {k: v.default for k, v in inspect.signature(B.vitpose_h).parameters.items() if k != "path"}
    full = vitpose_params(defaults["depth"], defaults["dim"], defaults["mlp"])
    assert abs(full / 1e6 / B.PUBLISHED["vitpose_h"]["mparams"] - 1) < 0.01
    assert defaults["dim"] % defaults["heads"] == 0


def vitpose_params(depth: int, dim: int, mlp: int) -> int:
    """Weights of ViTPose (patch 16 on 256x192 -> 16x12 tokens, `depth` pre-norm blocks, the classic decoder)."""
    tokens, deconv, kernel, keypoints = 16 * 12, 256, 4 * 4, 133
    block = (
        4 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + (dim * mlp + mlp) + (mlp * dim + dim)
    )  # 2 LNs, qkv, proj, MLP
    embed = dim * 3 * 16 * 16 + dim + tokens * dim
    decoder = dim * deconv * kernel + deconv + deconv * deconv * kernel + deconv + keypoints * deconv + keypoints
    return embed + depth * block + 2 * dim + decoder
