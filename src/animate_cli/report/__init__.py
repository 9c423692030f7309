"""The seam and drift report of a video: where a long animation went wrong, in figures and one picture.

    make_report(video, driving=, ref=, chunks=, weights_dir=) -> ReportResult   (<stem>.report.json + .png)
    SeamFixWriter / ColourEaser / ease_colour                                   (`run --seam-fix color`)
    write_sidecar(video, bounds, fps, seam_fix)                                 (<stem>.chunks.json, for inspect)
    after_run(video, bounds, fps, ...) -> headline dict                         (the end of `run`)

Modules: settings (numbers and names), colour (CIELAB, SSIM), joins (where chunks start), scan (the one
streamed pass), figures (seam, drift), people (identity, pose adherence with the pose models), sheet (the
PNG), build (make_report); the colour correction itself is rollout/seamfix.py. Layer: below runner, above rollout and pose.
Importing this package is cheap: matplotlib, PIL and the pose models load only when a report is drawn.
"""

from animate_cli.report.build import ReportResult, after_run, check_outputs, make_report
from animate_cli.report.joins import ChunkLayout, find_layout, write_sidecar
from animate_cli.report.settings import SEAM_FIX_MODES, report_paths, sidecar_path
from animate_cli.rollout.seamfix import ColourEaser, SeamFixWriter, ease_colour, fixing_writer

__all__ = ["SEAM_FIX_MODES", "ChunkLayout", "ColourEaser", "ReportResult", "SeamFixWriter", "after_run", "check_outputs", "ease_colour",
           "find_layout", "fixing_writer", "make_report", "report_paths", "sidecar_path", "write_sidecar"]  # fmt: skip
