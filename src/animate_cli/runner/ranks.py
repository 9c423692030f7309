"""The per-rank main of `everanimate run --gpus N` for ranks > 0: load the transformer, serve rank 0's chunks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from animate_cli import config as C
from animate_cli.models import parallel
from animate_cli.models.parallel import RemoteError, Stop, agree, current, recv_header
from animate_cli.rollout.distributed import serve


def run_rank(model: Mapping[str, Any], resolution: str) -> None:
    """What ranks > 0 run instead of `pipeline.run`: load the same transformer (fused LoRAs, the same
    context-parallel setup), then serve rank 0's chunks. `model`: the parsed model options (options.py).
    They read no input file (on another machine only the weights need to exist). Exits quietly with rank
    0's code on its errors."""
    import typer

    from animate_cli import weights
    from animate_cli.models import LoadOptions, load_models
    from animate_cli.models import device as devmod
    from animate_cli.models.attention import resolve_attention

    world = current()
    try:
        try:
            weights_dir = model["weights_dir"].expanduser() if model["weights_dir"] else C.default_weights_dir()
            paths = weights.resolve(weights_dir, resolution, need=("base", "lora"))
            loras = [(paths.lora, 1.0), *((spec.path, spec.scale) for spec in model["lora"])]
            device = model["device"]
            dev = devmod.choose(device, model["dtype"], allow_cpu=weights.is_tiny(paths.base) or device == "cpu", offload="none")
            # The same transformer as rank 0's (pipeline._run): resident, same storage dtype, attention and compile.
            attn = resolve_attention(
                model["attention"], dev.device, dev.dtype, devmod.compute_capability(dev.device), context_parallel=True
            )
            options = LoadOptions(device=dev.device, dtype=dev.dtype, offload="none", weights_dtype=model["weights_dtype"],
                                  attention=attn, compile=model["compile"])  # fmt: skip
            models = load_models(paths.base, loras, options)
        except (RemoteError, Stop, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - reported to every rank at the agreement point
            recv_header()  # rank 0 reaches its agreement point ("cp"), or stopped / failed before it
            agree(exc)
            raise
        serve(models.transformer, world)
    except Stop:
        pass
    except RemoteError as exc:
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:
        if parallel.interrupted_by_signal():
            raise typer.Exit(130) from None
        if parallel.peer_gone(exc):  # rank 0 (or another rank) failed and said why; the launcher returns its code
            raise typer.Exit(1) from None
        raise
    parallel.close_world()
