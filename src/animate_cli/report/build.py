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
from typing import TYPE_CHECKING

import numpy as np

from animate_cli import media
from animate_cli.errors import OutputExistsError
from animate_cli.models.fast import DRAFT_COMMENT
from animate_cli.progress import NullReporter, Reporter
from animate_cli.report import settings as S
from animate_cli.report.figures import drift_figures, drift_series, headline, seam_figures
from animate_cli.report.joins import ChunkLayout, find_layout, parse_chunks
from animate_cli.report.scan import Scan, scan_video

if TYPE_CHECKING:
    from animate_cli.report.people import PeopleFigures


@dataclass
class ReportResult:
    json_path: Path
    png_path: Path
    headline: dict
    timings_s: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ReportOptions:
    """What a report compares the video with, and where its chunks start."""

    driving: Path | None = None  # pose adherence is measured against it
    ref: Path | None = None  # identity and colour drift are also measured against it
    chunks: str = "auto"  # --chunks: auto, or the frames where chunks 1, 2, ... start
    layout: ChunkLayout | None = None  # the chunks of the run that wrote the video; overrides `chunks`
    weights_dir: Path | None = None  # where the pose models are; None: no identity or pose adherence
    people: bool = True  # run the pose models (identity, pose adherence): slow on a CPU
    overwrite: bool = False  # replace an existing report


@dataclass(frozen=True)
class _Source:
    """The checked inputs of one report."""

    video: Path  # resolved
    info: media.VideoInfo
    json_path: Path
    png_path: Path
    ref_img: np.ndarray | None
    comment: str  # the mp4's comment tag: a --fast output is marked as a draft there (models/fast.py)


@dataclass(frozen=True)
class _Figures:
    """Everything the JSON and the picture show."""

    scan: Scan
    layout: ChunkLayout
    seams: list[dict]
    drift: list[dict]
    head: dict
    people: PeopleFigures


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


def make_report(video: Path, options: ReportOptions | None = None, reporter: Reporter | None = None) -> ReportResult:
    """Measure `video` and write its report (module docstring).
    Raises BadInputError (unreadable video or image), UsageError (--chunks), OutputExistsError."""
    options = options or ReportOptions()
    reporter = reporter or NullReporter()
    src = _open(video, options)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    scan, layout = _scan(src, options, reporter)
    timings["scan"] = time.monotonic() - t0
    t1 = time.monotonic()
    people = _people(src, scan.frames, layout, options, reporter)
    timings["people"] = time.monotonic() - t1
    ref_lab = people.ref_lab
    if ref_lab is None and src.ref_img is not None:  # no pose models: the whole reference image
        from animate_cli.report.people import mean_lab

        ref_lab = mean_lab(src.ref_img)
    seams = seam_figures(scan, layout, src.info.fps)
    drift = drift_figures(scan, layout, ref_lab, people.person_lab)
    head = headline(seams, drift, people.identity, people.pose) | {"draft": src.comment.startswith(DRAFT_COMMENT)}
    figures = _Figures(scan, layout, seams, drift, head, people)
    report = _report_json(src, figures)
    t2 = time.monotonic()
    tmp = src.json_path.with_name(src.json_path.name + ".partial")
    _draw(src, figures, reporter)
    timings["picture"] = time.monotonic() - t2
    report["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    tmp.replace(src.json_path)
    return ReportResult(src.json_path, src.png_path, figures.head, report["timings_s"])


def _open(video: Path, options: ReportOptions) -> _Source:
    """Every input read or probed, and the outputs checked, before the long scan."""
    video = Path(video).resolve()
    info = media.probe(video)
    json_path, png_path = check_outputs(video, options.overwrite,
                                        (("--driving video", options.driving), ("--ref image", options.ref)))  # fmt: skip
    ref_img = media.load_image(options.ref) if options.ref is not None else None
    if options.driving is not None:
        media.probe(options.driving)
    if options.layout is None:
        parse_chunks(options.chunks, max(info.frames, 1) + 1)  # a malformed --chunks fails before the scan
    return _Source(video, info, json_path, png_path, ref_img, media.comment_tag(video))


def _scan(src: _Source, options: ReportOptions, reporter: Reporter) -> tuple[Scan, ChunkLayout]:
    """The streamed pass, measured at joins found from the container's frame count; the chunks again from
    the frames the scan counted (a run's own chunks are kept, cut to the video's end)."""
    info, layout = src.info, options.layout
    first = layout or find_layout(src.video, info.frames, options.chunks, slack=2)
    width = min(S.ANALYSIS_WIDTH, info.width - info.width % 2)  # never scaled up
    scan = scan_video(src.video, first.joins, info.frames, reporter, width)
    if layout is not None and layout.frames != scan.frames:
        layout = layout.with_frames(scan.frames)
    return scan, layout or find_layout(src.video, scan.frames, options.chunks)


def _people(src: _Source, frames: int, layout: ChunkLayout, options: ReportOptions, reporter: Reporter) -> PeopleFigures:
    """Identity and pose adherence, or why they are not measured."""
    from animate_cli.report import people as P

    if not options.people:
        return P.PeopleFigures.off("turned off")
    est, why = P.load_estimator(options.weights_dir) if options.weights_dir is not None else (None, "no weights folder")
    if est is None:
        return P.PeopleFigures.off("no pose models (everanimate download-weights --only pose)", detail=why)
    job = P.PeopleJob(src.video, src.info.fps, frames, layout, options.driving, src.ref_img)
    return P.measure_people(est, job, reporter)


def _report_json(src: _Source, f: _Figures) -> dict:
    """The report's JSON (less its timings), key by key as docs/ and the tests read it."""
    info, layout = src.info, f.layout
    drift_what = "per chunk: mean CIELAB colour, ΔE76 / ΔL* / L* spread ratio against chunk 0"
    if src.ref_img is not None:
        drift_what += " and against the reference's " + ("person box" if f.people.person_lab else "whole image")
    return {
        "schema": S.SCHEMA,
        "video": str(src.video.resolve()),
        "frames": f.scan.frames,
        "fps": info.fps,
        "size": [info.width, info.height],
        "comment": src.comment,
        "chunks": {
            "source": layout.source,
            "starts": list(layout.starts),
            "count": len(layout.starts),
            "seam_fix_in_video": layout.seam_fix,
        },
        "headline": f.head,
        "measures": {
            "seam": {name: desc for name, (desc, _, _) in S.SEAM_FEATURES.items()}
            | {
                "score": f"robust z of the join's change against the {S.SEAM_WINDOW} pairs each side "
                f"((x - median) / (1.4826 MAD + floor)); flagged at >= {S.SEAM_Z_FLAG:g} with a visible excess",
                "with_fix": f"the same after replaying --seam-fix color ({S.SEAM_FIX_FRAMES}-frame ease) on this video",
            },
            "drift": drift_what,
        },
        "seams": f.seams,
        "drift": f.drift,
        "identity": f.people.identity,
        "pose": f.people.pose,
        "seam_fix_replay": {"corrected_joins": [{"chunk": c, "step_grey_levels": s} for c, s in f.scan.fix_corrections]},
    }


def _draw(src: _Source, f: _Figures, reporter: Reporter) -> None:
    reporter.stage("picture", 1, "drawing the report")
    from animate_cli.report.sheet import Sheet, draw

    scan, layout = f.scan, f.layout
    brightness = scan.stats[:, 0] - scan.stats[slice(*layout.bounds[0]), 0].mean()
    title = ("DRAFT (--fast) " if f.head["draft"] else "") + f"{src.video.name}: {scan.frames} frames, {len(layout.starts)} chunks ({layout.source})"
    draw(src.png_path, Sheet(src.video, src.info.fps, layout, f.seams, drift_series(scan, layout), brightness,
                             f.people.identity, f.people.pose, title))  # fmt: skip
    reporter.advance("picture")


@dataclass(frozen=True)
class RunReport:
    """What the end of `run` reports on: the video it wrote, its plan's chunks, and the run's inputs."""

    video: Path
    bounds: list[tuple[int, int]]  # [start, end) of each chunk of the plan, in output frames
    fps: float
    seam_fix: str  # the run's --seam-fix
    driving: Path | None
    ref: Path | None
    weights_dir: Path | None  # where the pose models are
    overwrite: bool


def after_run(request: RunReport, reporter: Reporter) -> dict:
    """The end of `run`: the sidecar with the plan's chunks, then the report (pose adherence against `driving`).
    Returns the headline with the report's paths, or {"error": why} -- a report that cannot be written (an old
    report in the way without --overwrite, a missing model) is a warning, never a failed run."""
    from animate_cli.errors import EverAnimateError
    from animate_cli.report.joins import write_sidecar

    r, bounds = request, request.bounds
    write_sidecar(r.video, bounds, r.fps, r.seam_fix)
    layout = ChunkLayout(bounds[-1][1], tuple(a for a, _ in bounds), "the run's plan", r.seam_fix)
    options = ReportOptions(driving=r.driving, ref=r.ref, layout=layout, weights_dir=r.weights_dir, overwrite=r.overwrite)
    try:
        result = make_report(r.video, options, reporter)
    except EverAnimateError as e:
        reporter.log(f"warning: no report: {e.message}" + (f" ({e.hint})" if e.hint else ""))
        return {"error": e.message}
    return {"json": str(result.json_path), "png": str(result.png_path), **result.headline, "timings_s": result.timings_s}
