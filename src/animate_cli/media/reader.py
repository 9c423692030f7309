"""Decode a stretch of a video's frames, each one identified by its presentation timestamp.

One ffmpeg process per stretch: it seeks to the keyframe before the first wanted frame (`-noaccurate_seek`,
timestamps kept as stored with `-copyts`), decodes every frame once (`-fps_mode passthrough`: no frame is
duplicated or dropped to fit a nominal rate, which is what turned a 220-frame phone clip into 300
frames before), and prints each frame's pts through `showinfo` on stderr while the RGB pixels come on
stdout. A frame's index is looked up from its pts in the video's Timeline, so a seek that lands early
costs only decoding, and one that lands late (some demuxers cannot seek) is retried from the start.

Frames are HxWx3 uint8 RGB as displayed (rotation applied by ffmpeg). No imageio here, so its
"frame size for reading ... differs" warning on rotated videos is never printed.
"""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from animate_cli.errors import BadInputError
from animate_cli.media.timeline import FRAME_LINE, SHOWINFO, TB_LINE

if TYPE_CHECKING:
    from animate_cli.media import VideoInfo

PTS_WAIT_S = 30.0  # a frame's showinfo line is logged before its pixels are written; this only bounds a hang
_OUTPUT_SIZE = re.compile(r"Video: rawvideo.*?, (\d+)x(\d+)")


def decode_span(ffmpeg: str, info: VideoInfo, first: int, last: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) for every frame first..last of `info`'s timeline, in order. BadInputError when the
    decoder skips one of them or its timestamps do not match the container's."""
    tl = info.timeline
    if not 0 <= first <= last < tl.frames:
        raise ValueError(f"frames {first}..{last} are outside 0..{tl.frames - 1} of {info.path}")
    seek = None
    if (
        first > 0 and tl.source == "packets"
    ):  # without stored timestamps a seek restarts ffmpeg's guesses: never seek  # halfway between the frame before and `first`, on ffmpeg's -ss clock (from the container start)
        seek = float((tl.pts[first - 1] + tl.pts[first]) * tl.time_base / 2) - tl.container_start
    expected = first
    for attempt_seek in (seek, None) if seek and seek > 0 else (None,):
        with contextlib.closing(_decode(ffmpeg, info, attempt_seek)) as frames:
            for i, frame in frames:
                if i < expected:
                    continue  # before the stretch: the seek landed on an earlier keyframe
                if i > expected:
                    if expected == first and attempt_seek is not None:
                        break  # the seek overshot: decode from the start instead
                    raise BadInputError(f"{info.path}: the decoder skipped frame {expected} of {tl.frames} (damaged video?)")
                yield i, frame
                if i == last:
                    return
                expected += 1
            else:
                raise BadInputError(f"{info.path} ended after frame {expected - 1}, but its timestamps list {tl.frames} frames")
    raise BadInputError(f"{info.path}: cannot decode frame {first}")


class _Stderr(threading.Thread):
    """Reads ffmpeg's stderr: the showinfo time base, each frame's pts (in order), the output size."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.pts: queue.Queue[int | None] = queue.Queue()
        self.time_base: Fraction | None = None
        self.size: tuple[int, int] | None = None
        self.ready = threading.Event()  # the output size is known, or ffmpeg has exited
        self.tail: deque[str] = deque(maxlen=8)

    def run(self) -> None:
        output = False
        for raw in self.stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if m := FRAME_LINE.search(line):
                self.pts.put(int(m.group(1)))
            elif m := TB_LINE.search(line):
                self.time_base = Fraction(int(m.group(1)), int(m.group(2)))
            elif line.startswith("Output #0"):
                output = True
            elif output and self.size is None and (m := _OUTPUT_SIZE.search(line)):
                self.size = (int(m.group(1)), int(m.group(2)))
                self.ready.set()
            elif line.strip() and "Parsed_showinfo" not in line:
                self.tail.append(line.strip())
        self.pts.put(None)
        self.ready.set()


def _decode(ffmpeg: str, info: VideoInfo, seek: float | None) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame from the keyframe before `seek` (seconds from the container start; None: the start) to the end."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-copyts",
           *(["-noaccurate_seek", "-ss", f"{seek:.6f}"] if seek is not None else []), "-i", str(info.path),
           "-map", "0:v:0", "-vf", SHOWINFO, "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = _Stderr(proc.stderr)
    err.start()
    try:
        err.ready.wait()
        if err.size is None or err.time_base is None:
            proc.wait()
            raise BadInputError(f"cannot read video {info.path}: {err.tail[-1] if err.tail else 'ffmpeg failed'}")
        w, h = err.size
        nbytes = w * h * 3
        while True:
            buf = proc.stdout.read(nbytes)
            if len(buf) < nbytes:
                if buf:
                    raise BadInputError(f"cannot read video {info.path}: a frame was cut short")
                return
            try:
                pts = err.pts.get(timeout=PTS_WAIT_S)
            except queue.Empty:
                pts = None
            if pts is None:
                raise BadInputError(f"cannot read video {info.path}: no timestamp for a decoded frame")
            i = info.timeline.index_of(pts, err.time_base)
            if i is None:
                raise BadInputError(f"{info.path}: a decoded frame's timestamp ({pts} x {err.time_base} s) is not in the "
                                    "container's list; the file's timing is inconsistent")  # fmt: skip
            yield i, np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()
        err.join(timeout=5)
        proc.stderr.close()
