"""The Python API: load the models once, animate many videos.

    from animate_cli import Animator

    with Animator("~/weights", device="cuda", offload="auto") as animator:    # model options; loads nothing yet
        for ref, driving in jobs:
            summary = animator.run(ref, driving, out=f"out/{driving.stem}.mp4", seconds=10, seed=1)
            print(summary.output, summary.frames)
    print(animator.model_loads)                                                # 1

Every option keeps the name and default it has on the command line (options.py): model options (device,
dtype, offload, weights_dtype, attention, compile, lora) go to the constructor, per-video options (seconds,
seed, steps, prompt, size, resolution, fit, ref_view, pose_video, ... overwrite, state_dir) to `run`. A
run is exactly `everanimate run`: the same checks, resume, state-folder lock, report and typed errors
(errors.py, each with its exit code). `everanimate run` is itself a user of this class.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from animate_cli import options as O
from animate_cli.options import RunConfig
from animate_cli.progress import NullReporter, Reporter
from animate_cli.runner.model_cache import ModelCache

if TYPE_CHECKING:
    from animate_cli.runner.pipeline import RunSummary

MODEL_OPTIONS = tuple(n for n in O.names(O.MODEL) if n != "weights_dir")  # weights_dir is the first argument
VIDEO_OPTIONS = tuple(n for n in O.names(O.VIDEO) if n != "out")  # out is the third argument


class Animator:
    """Models loaded once (on the first run that needs them) and kept for every later `run`.

    `Animator(weights_dir=None, *, reporter=None, **model_options)`: an unknown option, or a per-video one,
    is a UsageError (exit 2) naming it. `reporter` (progress.Reporter) receives every run's progress unless
    a run is given its own. A run whose weights or load options differ from the loaded ones (e.g. 720p
    needs the 720p LoRA fused) loads again; `model_loads` counts the loads."""

    def __init__(self, weights_dir: str | Path | None = None, *, reporter: Reporter | None = None, **model_options: Any):
        parsed = O.parse_all(model_options, MODEL_OPTIONS, "Animator()")
        self._model_values = O.with_defaults(parsed, MODEL_OPTIONS)
        self._model_values["weights_dir"] = O.OPTIONS["weights_dir"].parse(weights_dir)
        self.reporter = reporter or NullReporter()
        self._cache = ModelCache()

    @property
    def model_loads(self) -> int:
        return self._cache.loads

    def config(self, ref: str | Path, driving: str | Path, out: str | Path | None = None, **video_options: Any) -> RunConfig:
        """The RunConfig one `run` with these arguments would use (checks the options and the length and
        canvas against the inputs; loads no model)."""
        from animate_cli.runner.run_config import build_config, check_files

        parsed = O.parse_all(video_options, VIDEO_OPTIONS, "Animator.run()")
        values = {**O.with_defaults(parsed, VIDEO_OPTIONS), **self._model_values}
        check_files(Path(ref), Path(driving))
        return build_config(Path(ref), Path(driving), None if out is None else Path(out), values)

    def run(self, ref: str | Path, driving: str | Path, out: str | Path | None = None, *, reporter: Reporter | None = None,
            fresh: bool = False, **video_options: Any) -> RunSummary:  # fmt: skip
        """Animate `ref` with the motion of `driving` into `out` (default: <driving>-everanimate.mp4 in the
        working folder; its folder is made when missing). `fresh` discards saved resume state. Returns the
        summary `everanimate run --json` prints (RunSummary.to_dict())."""
        return self.run_config(self.config(ref, driving, out, **video_options), reporter=reporter, fresh=fresh)

    def run_config(self, cfg: RunConfig, *, reporter: Reporter | None = None, fresh: bool = False) -> RunSummary:
        """`run` for a RunConfig already built (by `config`, possibly changed with dataclasses.replace)."""
        from animate_cli.runner import pipeline

        return pipeline.run(cfg, reporter or self.reporter, fresh=fresh, cache=self._cache)

    def prepare_pose(self, ref: str | Path, driving: str | Path, out: str | Path | None = None, *,
                     reporter: Reporter | None = None, **video_options: Any) -> None:  # fmt: skip
        """Extract the pose of that job into the cache its `run` reads (nothing when --pose-video is given).
        Loads no DiT and takes no state-folder lock, so it may run on another thread during a `run`."""
        from animate_cli.runner import pipeline

        pipeline.prepare_pose(self.config(ref, driving, out, **video_options), reporter or NullReporter())

    def plan(self, ref: str | Path, driving: str | Path, out: str | Path | None = None, **video_options: Any) -> dict:
        """What `run --dry-run --json` reports for that job: the plan with its estimate, and whether a real run
        could start now ("ready", "readiness", "exit_code"). Loads no model."""
        return self.plan_config(self.config(ref, driving, out, **video_options))

    def plan_config(self, cfg: RunConfig, ranks: int = 1) -> dict:
        from animate_cli.runner.dry_run import dry_run

        return dry_run(cfg, ranks)

    def close(self) -> None:
        """Free the models (and their GPU memory)."""
        self._cache.close()

    def __enter__(self) -> Animator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_options(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A command's parsed option values -> (model options with weights_dir, video options) for Animator() and
    Animator.run()."""
    model = {k: v for k, v in values.items() if k in O.names(O.MODEL)}  # weights_dir included
    video = {k: v for k, v in values.items() if k in VIDEO_OPTIONS}
    return model, video
