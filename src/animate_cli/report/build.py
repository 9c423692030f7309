"""make_report: a video (and optionally its driving video and reference image) -> <stem>.report.json + .png.

    scan (streamed, seams + drift) -> [pose models on sampled frames: identity, pose adherence] -> JSON -> PNG

The pose-model part is skipped, with the reason in the report, when the models are not installed or `people`
is off; its time is reported apart (`timings_s.people`), because on a CPU it costs more than the rest.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animate_cli import media
from animate_cli.errors import OutputExistsError
from animate_cli.models.fast import DRAFT_COMMENT
from animate_cli.progress import NullReporter, Reporter
from animate_cli.report import settings as S
from animate_cli.report.figures import drift_figures, drift_series, headline, seam_figures
from animate_cli.report.joins import ChunkLayout, find_layout, parse_chunks
from animate_cli.report.scan import scan_video


@dataclass
class ReportResult:
    json_path: Path
    png_path: Path
    headline: dict
    timings_s: dict = field(default_factory=dict)


def check_outputs(video: Path, overwrite: bool, inputs: tuple[tuple[str, Path | None], ...] = ()) -> tuple[Path, Path]:
    """The report's paths; UsageError when one of them is an input, OutputExistsError when one exists and
    `overwrite` is off."""
    from animate_cli.media.guard import refuse_inputs_as_outputs

    paths = S.report_paths(video)
    refuse_inputs_as_outputs([("report", p) for p in paths], [("video", video), *inputs])
    for p in paths:
        if p.exists() and not overwrite:
            raise OutputExistsError(f"report {p} already exists", hint="pass --overwrite to replace it")
    return paths


def make_report(video: Path, *, driving: Path | None = None, ref: Path | None = None, chunks: str = "auto",
                layout: ChunkLayout | None = None, weights_dir: Path | None = None, people: bool = True,
                device: str = "cpu", overwrite: bool = False, reporter: Reporter | None = None) -> ReportResult:  # fmt: skip
    """Measure `video` and write its report (module docstring). `layout` (from a run) overrides `chunks`.
    Raises BadInputError (unreadable video or image), UsageError (--chunks), OutputExistsError."""
    reporter = reporter or NullReporter()
    video = Path(video).resolve()
    info = media.probe(video)
    fps = info.fps
    json_path, png_path = check_outputs(video, overwrite, (("--driving video", driving), ("--ref image", ref)))
    ref_img = media.load_image(ref) if ref is not None else None
    if driving is not None:
        media.probe(driving)
    approx = info.frames
    if layout is None:
        parse_chunks(chunks, max(approx, 1) + 1)  # a malformed --chunks fails before the scan
    timings: dict[str, float] = {}

    t0 = time.monotonic()
    first = layout or find_layout(video, approx, chunks, slack=2)
    width = min(S.ANALYSIS_WIDTH, info.width - info.width % 2)  # never scaled up
    scan = scan_video(video, first.joins, approx, reporter, width)
    if layout is not None and layout.frames != scan.frames:
        layout = layout.with_frames(scan.frames)
    layout = layout or find_layout(video, scan.frames, chunks)
    timings["scan"] = time.monotonic() - t0

    t1 = time.monotonic()
    identity, pose, ref_lab, person_lab = _people(video, fps, scan.frames, layout, driving, ref_img, weights_dir, people,
                                                  device, reporter)  # fmt: skip
    timings["people"] = time.monotonic() - t1
    if ref_lab is None and ref_img is not None:  # no pose models: the whole reference image
        from animate_cli.report.colour import to_lab

        step = max(1, int(np.sqrt(ref_img.shape[0] * ref_img.shape[1] / S.SEAM_FIX_STATS_PIXELS)))
        ref_lab = to_lab(ref_img[::step, ::step]).reshape(-1, 3).mean(axis=0)

    seams = seam_figures(scan, layout, fps)
    drift = drift_figures(scan, layout, ref_lab, person_lab)
    head = headline(seams, drift, identity, pose)
    comment = media.comment_tag(video)  # a --fast output is marked as a draft in its comment tag (models/fast.py)
    head["draft"] = comment.startswith(DRAFT_COMMENT)
    report = {
        "schema": S.SCHEMA,
        "video": str(video.resolve()),
        "frames": scan.frames,
        "fps": fps,
        "size": [info.width, info.height],
        "comment": comment,
        "chunks": {
            "source": layout.source,
            "starts": list(layout.starts),
            "count": len(layout.starts),
            "seam_fix_in_video": layout.seam_fix,
        },
        "headline": head,
        "measures": {
            "seam": {name: desc for name, (desc, _, _) in S.SEAM_FEATURES.items()}
            | {
                "score": f"robust z of the join's change against the {S.SEAM_WINDOW} pairs each side "
                f"((x - median) / (1.4826 MAD + floor)); flagged at >= {S.SEAM_Z_FLAG:g} with a visible excess",
                "with_fix": f"the same after replaying --seam-fix color ({S.SEAM_FIX_FRAMES}-frame ease) on this video",
            },
            "drift": "per chunk: mean CIELAB colour, ΔE76 / ΔL* / L* spread ratio against chunk 0"
            + (" and against the reference's " + ("person box" if person_lab else "whole image") if ref_img is not None else ""),
        },  # fmt: skip
        "seams": seams,
        "drift": drift,
        "identity": identity,
        "pose": pose,
        "seam_fix_replay": {"corrected_joins": [{"chunk": c, "step_grey_levels": s} for c, s in scan.fix_corrections]},
    }
    t2 = time.monotonic()
    tmp = json_path.with_name(json_path.name + ".partial")
    reporter.stage("picture", 1, "drawing the report")
    from animate_cli.report.sheet import draw

    br = scan.stats[:, 0] - scan.stats[slice(*layout.bounds[0]), 0].mean()
    title = (
        "DRAFT (--fast) " if head["draft"] else ""
    ) + f"{video.name}: {scan.frames} frames, {len(layout.starts)} chunks ({layout.source})"
    draw(png_path, video, fps, layout, seams, drift_series(scan, layout), br, identity, pose, title)
    reporter.advance("picture")
    timings["picture"] = time.monotonic() - t2
    report["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    tmp.replace(json_path)
    return ReportResult(json_path, png_path, head, report["timings_s"])


def _people(video, fps, frames, layout: ChunkLayout, driving, ref_img, weights_dir, enabled, device, reporter):
    """(identity dict, pose dict, reference person colour or None, {chunk: output person colour} or None)."""
    from animate_cli.report import people as P

    off = {"available": False}
    if not enabled:
        off["reason"] = "turned off"
        return off, off, None, None
    est, why = P.load_estimator(weights_dir) if weights_dir is not None else (None, "no weights folder")
    if est is None:
        off |= {"reason": "no pose models (everanimate download-weights --only pose)", "detail": why}
        return off, off, None, None
    samples = P.sample_people(video, est, fps, reporter, frames)
    ref_person = P.look(est, ref_img) if ref_img is not None else None
    ref_face = ref_person.face if ref_person is not None else None
    where = "the --ref image's face"
    if ref_face is None:
        ref_face = next((p.face for _, p in samples if p is not None and p.face is not None), None)
        where = "the first face found in the video" + (" (none found in --ref)" if ref_img is not None else "")
    chunk_of = np.searchsorted(np.asarray(layout.starts), np.arange(frames), side="right") - 1

    def per_chunk(values: list[tuple[int, float]]) -> list[dict]:
        out = []
        for c in range(len(layout.starts)):
            v = [x for k, x in values if chunk_of[min(k, frames - 1)] == c]
            out.append({"chunk": c, "value": round(float(np.mean(v)), 4) if v else None, "samples": len(v)})
        return out

    def summary(values, measure, **extra) -> dict:
        chunks = per_chunk(values)
        means = [c["value"] for c in chunks if c["value"] is not None]
        worst = min((c for c in chunks if c["value"] is not None), key=lambda c: c["value"], default=None)
        return {"available": bool(values), "measure": measure, "sample_fps": S.PEOPLE_FPS, "samples": len(samples),
                "measured": len(values), "mean": round(float(np.mean(means)), 4) if means else None,
                "min_chunk": worst and {"chunk": worst["chunk"], "value": worst["value"]},
                "per_chunk": chunks, "series": [[k, round(v, 4)] for k, v in values], **extra,
                **({} if values else {"reason": "no face or person found in the sampled frames"})}  # fmt: skip

    ident_values = [] if ref_face is None else [(k, P.face_similarity(p.face, ref_face)) for k, p in samples
                                                 if p is not None and p.face is not None]  # fmt: skip
    identity = summary(ident_values, "face colour histogram intersection + gradient-orientation cosine, averaged (0..1)",
                       reference=where)  # fmt: skip
    if driving is None:
        pose = {"available": False, "reason": "no --driving video"}
    else:
        drv = P.driving_people(driving, est, [k for k, p in samples if p is not None], fps, reporter)
        values = []
        for k, p in samples:
            d = drv.get(k)
            score = P.pck(p, d) if (p is not None and d is not None) else None
            if score is not None:
                values.append((k, score))
        pose = summary(values, f"PCK: share of COCO body points within {S.PCK_ALPHA:g} torso lengths of the driving pose, "
                               "both skeletons centred on the torso and scaled by its length")  # fmt: skip
    colours: dict[int, list] = {}
    for k, p in samples:
        if p is not None:
            colours.setdefault(int(chunk_of[min(k, frames - 1)]), []).append(p.colour)
    person_lab = {c: np.mean(v, axis=0) for c, v in colours.items()} or None
    ref_lab = ref_person.colour if ref_person is not None else None
    return identity, pose, ref_lab, (person_lab if ref_lab is not None else None)


def after_run(video: Path, bounds: list[tuple[int, int]], fps: float, *, seam_fix: str, driving: Path, ref: Path,
              weights_dir: Path, overwrite: bool, reporter: Reporter) -> dict:  # fmt: skip
    """The end of `run`: the sidecar with the plan's chunks, then the report (pose adherence against `driving`).
    Returns the headline with the report's paths, or {"error": why} -- a report that cannot be written (an old
    report in the way without --overwrite, a missing model) is a warning, never a failed run."""
    from animate_cli.errors import EverAnimateError
    from animate_cli.report.joins import write_sidecar

    write_sidecar(video, bounds, fps, seam_fix)
    layout = ChunkLayout(bounds[-1][1], tuple(a for a, _ in bounds), "the run's plan", seam_fix)
    try:
        r = make_report(video, driving=driving, ref=ref, layout=layout, weights_dir=weights_dir, overwrite=overwrite,
                        reporter=reporter)  # fmt: skip
    except EverAnimateError as e:
        reporter.log(f"warning: no report: {e.message}" + (f" ({e.hint})" if e.hint else ""))
        return {"error": e.message}
    return {"json": str(r.json_path), "png": str(r.png_path), **r.headline, "timings_s": r.timings_s}
