"""Builders the tests, the demo's CPU fallback and the benchmarks share: tiny random models in download-weights'
layout (tiny_models), tiny ONNX pose stand-ins (tiny_pose: rtmlib's signatures; tiny_wan: Wan's), and the
dynamo graph-break counter of `--compile` (compile_check). Not part of the installed package.

Importable as `support.<module>` with tests/ on sys.path: pytest puts it there for the tests; scripts and
benchmarks insert it themselves (see scripts/make_tiny_weights.py).
"""
