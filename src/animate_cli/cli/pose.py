"""`everanimate extract-pose`: the pose stage `run` uses, as a command (writes pose.mp4, face.mp4, pose.json).

Flag parsing only; the work is `animate_cli.pose.extract_pose`. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path

from animate_cli import config as C
from animate_cli import options as O
from animate_cli.cli.common import run_command
from animate_cli.cli.params import Argument, options_command, parse
from animate_cli.errors import UsageError
from animate_cli.progress import RichReporter, err_console

SCHEMA = "everanimate.extract-pose/1"


def choose_size(size: str | None, resolution: str | None, driving: Path, ref: Path | None) -> tuple[int, int]:
    """--size as given; otherwise with a reference image the canvas `run` would choose for it (its aspect at
    about the preset's pixel count, animate_cli.media.canvas), else the preset, portrait for a portrait video."""
    if size and resolution:
        raise UsageError("use either --size or --resolution, not both")
    if size:
        return O.parse_size(size)
    resolution = resolution or "480p"
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
    from animate_cli.pose.stage import output_names

    inputs = [("driving video", driving), ("reference image", ref)]
    refuse_inputs_as_outputs([("--out", out_dir)], inputs)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; extract-pose writes a folder (pose.mp4, face.mp4, pose.json)")
    refuse_inputs_as_outputs([("output", out_dir / n) for n in output_names(out_dir, keypoints, overlay)], inputs)


@options_command(O.POSE, [Argument("driving", Path, "Driving video (one person).")])
def extract_pose_cmd(values: dict) -> None:
    """Extract the Wan-style pose video and 512x512 face video that `run` feeds the model."""

    driving, json_mode = values["driving"], values["json"]

    def body() -> dict:
        from animate_cli.pose import PoseSettings, extract_pose
        from animate_cli.pose.choice import choose_models

        v = parse(values, O.POSE)
        ref = v["ref"]
        if v["retarget"] and ref is None:
            raise UsageError("--retarget needs --ref (the reference image whose proportions to use)")
        out_dir = v["out"] or Path(f"{driving.stem}-pose")
        _refuse_clobbering_inputs(out_dir, driving, ref, v["save_keypoints"], v["debug_overlay"])
        width, height = choose_size(v["size"], v["resolution"], driving, ref)
        models = choose_models(v["pose_model"], v["weights_dir"] or C.default_weights_dir(), v["det_onnx"], v["pose_onnx"])
        smooth_mode = v["smooth"] or ("none" if models.model == "wan" else "default")
        settings = PoseSettings(width=width, height=height, fps=v["fps"], start=v["start"], seconds=v["seconds"],
                                smooth=smooth_mode, retarget=v["retarget"], device=v["device"], body_thr=v["kpt_thr"],
                                model=models.model)  # fmt: skip
        det, pose = models.det_onnx, models.pose_onnx
        with RichReporter(enabled=not json_mode) as reporter:
            if models.note:
                reporter.log(f"warning: {models.note}")
            r = extract_pose(driving, out_dir, settings, det, pose, reporter, ref=ref, overwrite=v["overwrite"],
                             save_keypoints=v["save_keypoints"], debug_overlay=v["debug_overlay"])  # fmt: skip
        if not json_mode:
            err_console().print(f"wrote {r.pose_video} and {r.face_video} ({r.model} pose model): {r.frames} frames at {r.fps:g} fps, "
                                f"{r.width}x{r.height}; person detected in {r.detected}, interpolated {r.interpolated}, "
                                f"empty {r.empty}", markup=False, highlight=False)  # fmt: skip
        return {"pose_video": str(r.pose_video), "face_video": str(r.face_video), "meta": str(r.meta_path),
                "keypoints": str(r.keypoints) if r.keypoints else None, "overlay": str(r.overlay) if r.overlay else None,
                "frames": r.frames, "fps": r.fps, "size": [r.width, r.height], "pose_model": r.model,
                "counts": {"detected": r.detected, "interpolated": r.interpolated, "empty": r.empty}}  # fmt: skip

    run_command(SCHEMA, json_mode, body)
