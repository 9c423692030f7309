"""The model stage: loading the Wan2.2-Animate components (loader.py) and the streamed DiT (dit_stream.py)
with the EverAnimate LoRA fused (lora.py); how they store and compute (runtime.py: offload, FP8, attention,
compile); the memory model (footprint.py); device and memory-mode checks made before anything heavy loads
(device.py); context parallelism (parallel.py). This file only gathers the public names."""

from animate_cli.models.loader import LoadOptions, Models, encode_prompt, load_component, load_models  # noqa: F401
