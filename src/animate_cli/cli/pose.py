"""`everanimate extract-pose`: the pose stage `run` uses, as a command (writes pose.mp4, face.mp4, pose.json).

Flag parsing only; the work is `animate_cli.pose.extract_pose`. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from animate_cli import config as C
from animate_cli.cli.common import FlagCommand, RichReporter, app, run_command
from animate_cli.errors import UsageError

SCHEMA = "everanimate.extract-pose/1"


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--size must look like 832x480, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def choose_size(size: str | None, resolution: str | None, driving: Path, ref: Path | None) -> tuple[int, int]:
    """--size as given; otherwise with a reference image the canvas `run` would choose for it (its aspect at
    about the preset's pixel count, animate_cli.media.canvas), else the preset, portrait for a portrait video."""
    if size and resolution:
        raise UsageError("use either --size or --resolution, not both")
    if size:
        return parse_size(size)
    resolution = resolution or "480p"
    if resolution not in C.RESOLUTIONS:
        raise UsageError(f"--resolution must be one of {', '.join(C.RESOLUTIONS)}, got {resolution!r}")
    from animate_cli import media

    if ref is not None:
        from animate_cli.media.canvas import canvas_size

        h, w = media.load_image(ref).shape[:2]
        return canvas_size(w, h, C.RESOLUTIONS[resolution])
    info = media.probe(driving)
    return C.portrait_size(C.RESOLUTIONS[resolution], portrait=info.height > info.width)


def _refuse_clobbering_inputs(out_dir: Path, driving: Path, ref: Path | None, keypoints: bool, overlay: bool) -> None:
    """--out is a folder: neither it nor any file written into it may be the driving video or the reference."""
    from animate_cli.media.guard import refuse_inputs_as_outputs
    from animate_cli.pose import PoseOutputs

    inputs = [("driving video", driving), ("reference image", ref)]
    refuse_inputs_as_outputs([("--out", out_dir)], inputs)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; extract-pose writes a folder (pose.mp4, face.mp4, pose.json)")
    names = PoseOutputs(keypoints=keypoints, overlay=overlay).names()
    refuse_inputs_as_outputs([("output", out_dir / n) for n in names], inputs)


@app.command("extract-pose", cls=FlagCommand)
def extract_pose_cmd(
    driving: Annotated[Path, typer.Argument(help="Driving video (one person).", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.", show_default="./<video name>-pose")] = None,
    size: Annotated[str | None, typer.Option(help="Pose video size WxH (multiples of 16).", rich_help_panel="Geometry")] = None,
    resolution: Annotated[str | None, typer.Option(help="480p (~832x480 px) or 720p (~1280x720 px): with --ref, the reference's aspect at that pixel count (as run); otherwise the preset, swapped for portrait videos.", show_default="480p", rich_help_panel="Geometry")] = None,
    fps: Annotated[float, typer.Option(help="Output frame rate; the driving video is resampled by timestamps.", rich_help_panel="Geometry")] = float(C.FPS),
    start: Annotated[float, typer.Option(help="Start this many seconds into the driving video.", rich_help_panel="Geometry")] = 0.0,
    seconds: Annotated[float | None, typer.Option(help="Use at most this many seconds.", show_default="to the end", rich_help_panel="Geometry")] = None,
    ref: Annotated[Path | None, typer.Option(help="Reference image: sets the orientation; needed by --retarget; must show a person.")] = None,
    retarget: Annotated[bool, typer.Option("--retarget", help="Rescale the driving skeleton's limbs to the reference person's proportions.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (onnxruntime).")] = "auto",
    pose_model: Annotated[str | None, typer.Option("--pose-model", help="wan (Wan2.2-Animate's own YOLOv10m + ViTPose-H, what the model was trained on) or rtmw (lighter); default: wan when its models are in the weights folder, else rtmw")] = None,
    det_onnx: Annotated[Path | None, typer.Option("--det-onnx", help="Person detector ONNX (a file, or a folder holding end2end.onnx) instead of the weights folder's.")] = None,
    pose_onnx: Annotated[Path | None, typer.Option("--pose-onnx", help="Whole-body pose ONNX (a file, or a folder holding end2end.onnx) instead of the weights folder's.")] = None,
    smooth: Annotated[str | None, typer.Option(help="rtmw: default (zero-phase One-Euro on keypoints and face box) or none (per frame). wan is always per frame, as the official pipeline.")] = None,
    kpt_thr: Annotated[float | None, typer.Option(help="rtmw: keypoint score threshold (default: 0.5 x the clip's median torso score); wan uses Wan's fixed 0.5.")] = None,
    save_keypoints: Annotated[bool, typer.Option("--save-keypoints", help="Also write keypoints.npz.")] = False,
    debug_overlay: Annotated[bool, typer.Option("--debug-overlay", help="Also write debug_overlay.mp4 (skeleton and face box over the video).")] = False,
    weights_dir: Annotated[Path, typer.Option(envvar=C.WEIGHTS_ENV, show_envvar=True, help="Where download-weights put the models (wan: wan2.2-animate-14b/process_checkpoint/, rtmw: pose/*.onnx).")] = None,  # type: ignore[assignment]
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    json_mode: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:  # fmt: skip
    """Extract the Wan-style pose video and 512x512 face video that `run` feeds the model."""

    def body() -> dict:
        from animate_cli.pose import PoseOutputs, PoseSettings, extract_pose
        from animate_cli.pose.choice import choose_models

        if retarget and ref is None:
            raise UsageError("--retarget needs --ref (the reference image whose proportions to use)")
        if smooth not in (None, "default", "none"):
            raise UsageError(f"--smooth must be default or none, got {smooth!r}")
        if device != "auto" and device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
            raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
        out_dir = out or Path(f"{driving.stem}-pose")
        _refuse_clobbering_inputs(out_dir, driving, ref, save_keypoints, debug_overlay)
        width, height = choose_size(size, resolution, driving, ref)
        models = choose_models(pose_model, weights_dir or C.default_weights_dir(), det_onnx, pose_onnx)
        smooth_mode = smooth or ("none" if models.model == "wan" else "default")
        settings = PoseSettings(width=width, height=height, fps=fps, start=start, seconds=seconds, smooth=smooth_mode,
                                retarget=retarget, device=device, body_thr=kpt_thr, model=models.model)  # fmt: skip
        outputs = PoseOutputs(keypoints=save_keypoints, overlay=debug_overlay, overwrite=overwrite)
        with RichReporter(enabled=not json_mode) as reporter:
            if models.note:
                reporter.log(f"warning: {models.note}")
            r = extract_pose(driving, out_dir, settings, models, reporter, ref=ref, outputs=outputs)
        if not json_mode:
            from animate_cli.cli.common import err_console

            err_console().print(f"wrote {r.pose_video} and {r.face_video} ({r.model} pose model): {r.frames} frames at {r.fps:g} fps, "
                                f"{r.width}x{r.height}; person detected in {r.detected}, interpolated {r.interpolated}, "
                                f"empty {r.empty}", markup=False, highlight=False)  # fmt: skip
        return {"pose_video": str(r.pose_video), "face_video": str(r.face_video), "meta": str(r.meta_path),
                "keypoints": str(r.keypoints) if r.keypoints else None, "overlay": str(r.overlay) if r.overlay else None,
                "frames": r.frames, "fps": r.fps, "size": [r.width, r.height], "pose_model": r.model,
                "counts": {"detected": r.detected, "interpolated": r.interpolated, "empty": r.empty}}  # fmt: skip

    run_command(SCHEMA, json_mode, body)
