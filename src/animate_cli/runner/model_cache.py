"""The models and prompt embeddings one process keeps between runs (the Python API's `Animator`, `batch`).

A run asks for the models with the weights and load options it resolved; the cache hands back the loaded
set when they match and loads again (counting it) when they do not, e.g. a 720p job after a 480p one needs
the other EverAnimate LoRA fused in. `everanimate run` uses a fresh cache per run, so it loads once too.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from animate_cli.models import LoadOptions, Models


class ModelCache:
    def __init__(self) -> None:
        self.loads = 0  # how many times the models were loaded
        self._key: tuple | None = None
        self._models: Models | None = None
        self._prompts: dict[tuple, torch.Tensor] = {}
        self._lock = threading.Lock()  # one loader at a time (a batch worker's pose thread never loads models)

    def models(self, base: Path, loras: list[tuple[Path, float]], options: LoadOptions) -> Models:
        """The transformer (LoRAs fused), VAE and CLIP for these weights and options: kept, or loaded now."""
        from animate_cli.models import load_models

        key = (str(base), tuple((str(p), float(s)) for p, s in loras), options)
        with self._lock:
            if self._key != key or self._models is None:
                self.release()
                self._models = load_models(base, loras, options)
                self._key = key
                self.loads += 1
            return self._models

    def prompt(self, base: Path, prompt: str, options: LoadOptions, max_tokens: int) -> torch.Tensor:
        """The umT5 embedding of `prompt` (encoded once per weights folder, device and dtype)."""
        from animate_cli.models import encode_prompt

        key = (str(base), prompt, options.device, options.dtype, max_tokens)
        with self._lock:
            if key not in self._prompts:
                self._prompts[key] = encode_prompt(base, prompt, options, max_tokens)
            return self._prompts[key]

    def release(self) -> None:
        """Drop the loaded models (and free their GPU memory) before loading others, or at the end."""
        if self._models is None:
            return
        import gc

        import torch

        self._models, self._key = None, None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def close(self) -> None:
        with self._lock:
            self.release()
            self._prompts.clear()
