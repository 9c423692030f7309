"""When each frame of a video is shown: its presentation timestamps, and which frame an output clock picks.

Every stage reads video by time, through one rule (docs/video-time.md has the whole story):

    output frame k (at fps_out) shows the source at  t_k = start + k / fps_out  seconds,
    counted from the source's first presented frame; it takes the source frame whose presentation
    time is nearest to t_k (an exact tie, within TIE_S, goes to the even-numbered frame, half-to-even
    like np.round; Wan's float expression breaks such ties either way by rounding noise).

On a constant-frame-rate source this is Wan's map (exactly, away from those ties) (`idx_k = round_half_even(k / fps_out * fps_in)`,
docs/model-facts.md, frame timing); on a variable-rate one (phones) it keeps real time where an index map drifts. The
number of output frames is Wan's `int(duration * fps_out)`, with the duration taken from the timestamps:
the last frame's time plus its duration (the previous gap when the container gives none).

The timestamps come from the container's packets (`ffmpeg -c copy -f framecrc`: no decoding, about
0.2 s for a 3-minute 720p clip). Packets the demuxer marks as discarded (before an edit list's start)
are not frames. When any packet has no timestamp (raw H.264 streams, some Matroska files) the
timeline is taken from the decoder instead (`showinfo`, one full decode), which fills them in as ffmpeg
would when it plays the file.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from animate_cli.errors import BadInputError

TIE_S = 1e-6  # two frames this close to equally near t_k are a tie (float noise of pts x time base)
NOPTS = -(2**63)  # how framecrc prints a missing timestamp (AV_NOPTS_VALUE)
DISCARD_FLAG = 0x4  # AV_PKT_FLAG_DISCARD: a packet decoded only to prime the decoder, never shown
SHOWINFO = "showinfo=checksum=0"  # per-frame pts on stderr; no checksums (they would cost a pass over each frame)
FRAME_LINE = re.compile(r"\] n: *\d+ pts: *(-?\d+)")
TB_LINE = re.compile(r"config in time_base: (\d+)/(\d+)")


@dataclass(frozen=True)
class Timeline:
    """Presentation times of a video stream's frames.

    pts: (n,) int64 strictly increasing timestamps in `time_base` units (absolute, as the file stores
    them after ffmpeg's edit-list handling; the first may be negative). Frame i is the i-th frame shown.
    """

    pts: np.ndarray
    time_base: Fraction
    last_duration: int  # how long the last frame shows, in time_base units
    container_start: float  # seconds; ffmpeg's -ss counts from here (the earliest stream of the file)
    source: str  # "packets" or "decoder": where the timestamps were read

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def origin(self) -> float:
        """Absolute time (seconds) of the first frame: source time 0."""
        return float(self.pts[0] * self.time_base)

    @property
    def times(self) -> np.ndarray:
        """(n,) float64 seconds of each frame from the first one (times[0] == 0)."""
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)

    @property
    def duration(self) -> float:
        """Seconds from the first frame's start to the last frame's end."""
        return float((int(self.pts[-1] - self.pts[0]) + self.last_duration) * self.time_base)

    @property
    def mean_fps(self) -> float:
        """frames / duration: for display and for rate-like settings (never for mapping frames)."""
        return self.frames / self.duration if self.duration > 0 else 0.0

    def output_frames(self, fps_out: float, start: float = 0.0, seconds: float | None = None) -> int:
        """Wan's n_out = int(duration * fps_out) for the part [start, start + seconds) of the source; at least
        1 when that part has a frame."""
        span = self.duration - start
        if seconds is not None:
            span = min(span, seconds)
        if span <= 0 or start >= self.duration:
            return 0
        return max(1, int(span * fps_out + 1e-9))

    def source_indices(self, fps_out: float, count: int, start: float = 0.0) -> np.ndarray:
        """(count,) int64: the source frame shown at output frames 0..count-1 (the module's rule)."""
        return self.source_at(np.arange(count, dtype=np.int64), fps_out, start)

    def source_at(self, ks: np.ndarray, fps_out: float, start: float = 0.0) -> np.ndarray:
        """int64 like `ks`: the source frame shown at output frames `ks` (any order, repeats allowed); past
        the end, the last frame."""
        times = self.times
        t = start + np.asarray(ks, dtype=np.float64) / fps_out
        j = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)  # last frame at or before t
        nxt = np.minimum(j + 1, len(times) - 1)
        before, after = t - times[j], times[nxt] - t
        pick_next = (nxt != j) & ((after < before - TIE_S) | ((np.abs(after - before) <= TIE_S) & (nxt % 2 == 0)))
        return np.where(pick_next, nxt, j).astype(np.int64)

    def index_of(self, pts: int, time_base: Fraction) -> int | None:
        """The frame whose timestamp is `pts` (in `time_base`), or None when no frame is within a quarter of
        the gap to its neighbours (the decoder and the container disagree)."""
        if time_base == self.time_base:
            i = int(np.searchsorted(self.pts, pts))
            return i if i < len(self.pts) and self.pts[i] == pts else None
        t = float(pts * time_base) - self.origin
        times = self.times
        i = int(np.clip(np.searchsorted(times, t), 0, len(times) - 1))
        if i > 0 and abs(times[i - 1] - t) < abs(times[i] - t):
            i -= 1
        gap = np.diff(times[max(0, i - 1) : i + 2]).min() if len(times) > 1 else 1.0
        return i if abs(times[i] - t) <= gap / 4 else None

    def to_dict(self) -> dict:
        return {"frames": self.frames, "duration_s": round(self.duration, 6), "first_pts_s": round(self.origin, 6),
                "time_base": str(self.time_base), "mean_fps": round(self.mean_fps, 4), "timestamps_from": self.source}  # fmt: skip


def timeline_from_packets(framecrc: str, container_start: float) -> Timeline | None:
    """Parse `ffmpeg -copyts -i X -map 0:v:0 -c copy -f framecrc -` output; None when a packet has no timestamp."""
    tb = None
    pts, durations = [], []
    for line in framecrc.splitlines():
        if line.startswith("#tb 0:"):
            num, den = line.split(":", 1)[1].strip().split("/")
            tb = Fraction(int(num), int(den))
        elif line and not line.startswith("#"):
            cols = [c.strip() for c in line.split(",")]
            flags = next((int(c[2:], 16) for c in cols[6:] if c.startswith("F=")), 0)
            if flags & DISCARD_FLAG:
                continue
            p = int(cols[2])
            if p == NOPTS:
                return None
            pts.append(p)
            durations.append(int(cols[3]))
    if tb is None or not pts:
        return None
    order = np.argsort(np.asarray(pts, np.int64), kind="stable")
    return _timeline(np.asarray(pts, np.int64)[order], tb, int(np.asarray(durations)[order][-1]), container_start, "packets")


def timeline_from_decoder(ffmpeg: str, path: Path, container_start: float) -> Timeline:
    """Decode the whole stream once and read each frame's pts from showinfo (the slow, always-right path)."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-copyts", "-i", str(path), "-map", "0:v:0", "-vf", SHOWINFO,
           "-fps_mode", "passthrough", "-f", "null", "-"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    tb_m = TB_LINE.search(proc.stderr)
    pts = np.asarray([int(m) for m in FRAME_LINE.findall(proc.stderr)], np.int64)
    if proc.returncode != 0 or tb_m is None or len(pts) == 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["no frames"]
        raise BadInputError(f"cannot read the frame timestamps of {path}: {last[0]}")
    pts = np.sort(pts)
    return _timeline(pts, Fraction(int(tb_m.group(1)), int(tb_m.group(2))), 0, container_start, "decoder")


def _timeline(pts: np.ndarray, tb: Fraction, last_duration: int, container_start: float, source: str) -> Timeline:
    pts = np.unique(pts)  # two frames at one instant: only one of them can ever be shown
    if last_duration <= 0:  # not stored: assume the last frame lasts as long as the gap before it
        last_duration = int(pts[-1] - pts[-2]) if len(pts) > 1 else max(1, round(1 / (25 * tb)))
    return Timeline(pts, tb, last_duration, container_start, source)
