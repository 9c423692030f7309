"""`run`'s flags -> a frozen RunConfig: lengths, sizes, LoRA specs and the canvas (no torch, no models)."""

from __future__ import annotations

import re
from pathlib import Path

from animate_cli import config as C
from animate_cli.errors import UsageError


def _size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if not m:
        raise UsageError(f"--size must look like 832x480, got {value!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w % C.SIZE_MULTIPLE or h % C.SIZE_MULTIPLE or not (32 <= w <= 4096 and 32 <= h <= 4096):
        raise UsageError(f"--size {w}x{h}: both sides must be multiples of {C.SIZE_MULTIPLE} between 32 and 4096")
    return w, h


def parse_lora(value: str) -> C.LoraSpec:
    path, scale = value, 1.0
    if ":" in value:
        head, tail = value.rsplit(":", 1)
        try:
            path, scale = head, float(tail)
        except ValueError:
            path = value
    return C.LoraSpec(Path(path).expanduser(), scale)


def _frames(minutes: float | None, seconds: float | None, frames: int | None, driving_seconds: float) -> int:
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


def build_config(ref: Path, driving: Path, *, out: Path | None, minutes, seconds, frames, ref_view, pose_video, face_video,
                 weights_dir, device, dtype, resolution, size, steps, seed, prompt, lora, no_audio, side_by_side,
                 overwrite, state_dir, offload="auto", weights_dtype="bf16", attention="auto", compile_=False,
                 fit: str | None = None, report: bool = True, seam_fix: str = "none", pose_model: str | None = None,
                 det_onnx: Path | None = None, pose_onnx: Path | None = None, fast: bool = False) -> C.RunConfig:  # fmt: skip
    """Turn flags into a frozen RunConfig (no torch, no models)."""
    from animate_cli import media
    from animate_cli.media import canvas
    from animate_cli.models.attention import check_attention_installed
    from animate_cli.report import SEAM_FIX_MODES

    for flag, value, valid in (("--offload", offload, C.OFFLOAD_MODES), ("--weights-dtype", weights_dtype, C.WEIGHTS_DTYPES),
                               ("--attention", attention, C.ATTENTION_CHOICES), ("--seam-fix", seam_fix, SEAM_FIX_MODES)):  # fmt: skip
        if value not in valid:
            raise UsageError(f"{flag} must be one of {', '.join(valid)}, got {value!r}")
    check_attention_installed(attention)
    if pose_model is not None and pose_model not in C.POSE_MODELS:
        raise UsageError(f"--pose-model must be one of {', '.join(C.POSE_MODELS)}, got {pose_model!r}")
    if resolution not in C.RESOLUTIONS:
        raise UsageError(f"--resolution must be one of {', '.join(C.RESOLUTIONS)}")
    if steps < 1 or steps > 1000:
        raise UsageError("--steps must be between 1 and 1000")
    info = media.probe(driving)
    n = _frames(minutes, seconds, frames, info.duration)
    if fit is not None and fit not in canvas.FITS:
        raise UsageError(f"--fit must be one of {', '.join(canvas.FITS)}, got {fit!r}")
    img = media.load_image(ref)
    explicit = _size(size)
    if explicit is None and pose_video is not None and Path(pose_video).is_file():
        # a given pose video was already fitted to its own size: keep that canvas rather than crop it
        pv = media.probe(pose_video)
        if pv.width % C.SIZE_MULTIPLE == 0 and pv.height % C.SIZE_MULTIPLE == 0:
            explicit = (pv.width, pv.height)
    cv = canvas.choose_canvas(img.shape[1], img.shape[0], C.RESOLUTIONS[resolution], resolution, explicit, fit)
    if explicit is not None and size is None:
        cv = canvas.Canvas(cv.width, cv.height, cv.fit, cv.rule.replace("--size", "the --pose-video size", 1))
    width, height = cv.width, cv.height
    out = out or Path.cwd() / f"{driving.stem}-everanimate.mp4"
    return C.RunConfig(
        ref=ref, driving=driving, out=out.expanduser().resolve(), frames=n, width=width, height=height,
        weights_dir=Path(weights_dir).expanduser() if weights_dir else C.default_weights_dir(),
        ref_views=tuple(ref_view or ()), pose_video=pose_video, face_video=face_video, resolution=resolution,
        device=device, dtype=dtype, steps=steps, seed=seed, prompt=prompt, loras=tuple(parse_lora(v) for v in lora or ()),
        audio=not no_audio, side_by_side=side_by_side, overwrite=overwrite, state_dir=state_dir,
        offload=offload, weights_dtype=weights_dtype, attention=attention, compile=compile_, fit=cv.fit,
        canvas_rule=cv.rule, report=report, seam_fix=seam_fix, pose_model=pose_model, det_onnx=det_onnx, pose_onnx=pose_onnx,
        fast=fast,
    )  # fmt: skip


def canvas_dict(cfg: C.RunConfig) -> dict:
    """The plan's `canvas` entry: size, where it came from, how the reference and the pose are fitted."""
    pose_fit = ("given --pose-video: centre-cropped if its size differs" if cfg.pose_video else
                "letterboxed as Wan's pipeline (wan pose model); rtmw: placed by the driving person's extent")  # fmt: skip
    return {"size": [cfg.width, cfg.height], "rule": cfg.canvas_rule, "reference_fit": cfg.fit, "pose_fit": pose_fit}
