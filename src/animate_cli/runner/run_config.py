"""Parsed options -> a frozen RunConfig: the length, the canvas, the LoRA specs (no torch, no models).

The options were parsed (and each checked once) by options.parse_all; what is left here is what needs the
inputs themselves: the length against the driving video, the canvas against the reference image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from animate_cli import config as C
from animate_cli import options as O
from animate_cli.errors import BadInputError, UsageError
from animate_cli.options import RunConfig

SIZE_LIMITS = (32, 4096)  # a side under 32 px is no picture; over 4096 px is beyond any GPU's memory at 14B


def canvas_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    w, h = O.parse_size(value)
    lo, hi = SIZE_LIMITS
    if w % C.SIZE_MULTIPLE or h % C.SIZE_MULTIPLE or not (lo <= w <= hi and lo <= h <= hi):
        raise UsageError(f"--size {w}x{h}: both sides must be multiples of {C.SIZE_MULTIPLE} between {lo} and {hi}")
    return w, h


def frame_count(minutes: float | None, seconds: float | None, frames: int | None, driving_seconds: float) -> int:
    given = [x for x in (minutes, seconds, frames) if x is not None]
    if len(given) > 1:
        raise UsageError("use only one of --minutes, --seconds, --frames")
    if minutes is not None:
        n = round(minutes * 60 * C.FPS)
    elif seconds is not None:
        n = round(seconds * C.FPS)
    elif frames is not None:
        n = frames
    else:
        n = round(driving_seconds * C.FPS)
    if n < 1:
        raise UsageError("the requested length is shorter than one frame")
    return n


def check_files(ref: Path, driving: Path) -> None:
    for p, what in ((ref, "reference image"), (driving, "driving video")):
        if not Path(p).exists():
            raise BadInputError(f"{what} not found: {p}")


def build_config(ref: Path, driving: Path, out: Path | None, values: Mapping[str, Any]) -> RunConfig:
    """A RunConfig from parsed options (`values` holds every model and video option of `run`)."""
    from animate_cli import media
    from animate_cli.media import canvas
    from animate_cli.models.attention import check_attention_installed

    ref, driving = Path(ref), Path(driving)
    check_attention_installed(values["attention"])
    if values["retarget"] and values["pose_video"] is not None:
        raise UsageError("--retarget rescales an extracted pose; with --pose-video the pose is given as it is")
    n = frame_count(values["minutes"], values["seconds"], values["frames"], media.probe(driving).duration)
    img = media.load_image(ref)
    explicit = canvas_size(values["size"])
    pose_video = values["pose_video"]
    if explicit is None and pose_video is not None and Path(pose_video).is_file():
        # a given pose video was already fitted to its own size: keep that canvas rather than crop it
        pv = media.probe(pose_video)
        if pv.width % C.SIZE_MULTIPLE == 0 and pv.height % C.SIZE_MULTIPLE == 0:
            explicit = (pv.width, pv.height)
    resolution = values["resolution"]
    cv = canvas.choose_canvas(img.shape[1], img.shape[0], C.RESOLUTIONS[resolution], resolution, explicit, values["fit"])
    if explicit is not None and values["size"] is None:
        cv = canvas.Canvas(cv.width, cv.height, cv.fit, cv.rule.replace("--size", "the --pose-video size", 1))
    out = Path(out) if out is not None else Path.cwd() / f"{driving.stem}-everanimate.mp4"
    weights_dir = values["weights_dir"]
    same = {f.metadata["option"]: values[f.metadata["option"]] for f in dataclasses.fields(RunConfig) if "option" in f.metadata}
    return RunConfig(
        ref=ref, driving=driving, out=out.expanduser().resolve(), frames=n, width=cv.width, height=cv.height,
        weights_dir=Path(weights_dir).expanduser() if weights_dir else C.default_weights_dir(),
        ref_views=tuple(values["ref_view"]), loras=tuple(values["lora"]), audio=not values["no_audio"],
        fit=cv.fit, canvas_rule=cv.rule, report=not values["no_report"], **same,
    )  # fmt: skip


def canvas_dict(cfg: RunConfig) -> dict:
    """The plan's `canvas` entry: size, where it came from, how the reference and the pose are fitted."""
    pose_fit = ("given --pose-video: centre-cropped if its size differs" if cfg.pose_video else
                "letterboxed as Wan's pipeline (wan pose model); rtmw: placed by the driving person's extent")  # fmt: skip
    return {"size": [cfg.width, cfg.height], "rule": cfg.canvas_rule, "reference_fit": cfg.fit, "pose_fit": pose_fit}
