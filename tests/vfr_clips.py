"""Test clips whose pixels say when they were shot: each frame carries its source time in milliseconds as a
20-bit bar code of 16 px white/black blocks (top left, 4 x 5 blocks), big enough for H.264 to keep exactly.

Clips are made with the bundled ffmpeg from a constant-rate stream of such frames (`rate` fps) by an ffmpeg
`select` expression that drops frames while keeping the timestamps of the others (`-fps_mode passthrough`),
so gaps are real presentation gaps, as on a phone clip. A bright block on the right is the "person".
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from animate_cli.media import ffmpeg_exe

BITS, COLS, BLOCK = 20, 4, 16
W, H = 256, 144
PERSON = (160, 18, 224, 144)  # x0, y0, x1, y1 of the bright block the tiny detector and the fakes "see"


def code_frame(ms: int) -> np.ndarray:
    f = np.zeros((H, W, 3), np.uint8)
    x0, y0, x1, y1 = PERSON
    f[y0:y1, x0:x1] = 220
    for b in range(BITS):
        if (ms >> b) & 1:
            r, c = divmod(b, COLS)
            f[r * BLOCK : (r + 1) * BLOCK, c * BLOCK : (c + 1) * BLOCK] = 255
    return f


def read_code(frame: np.ndarray) -> int:
    """The source time (ms) a frame shows, read from the centres of its code blocks."""
    ms = 0
    for b in range(BITS):
        r, c = divmod(b, COLS)
        if frame[r * BLOCK + BLOCK // 2, c * BLOCK + BLOCK // 2].mean() > 128:
            ms |= 1 << b
    return ms


def make_clip(path: Path, seconds: float, rate: int, select: str = "1", *, extra: tuple[str, ...] = ()) -> Path:
    """H.264 mp4 of the frames n = 0 .. seconds*rate - 1 (frame n at n / rate s, showing round(1000 n / rate) ms)
    that `select` keeps (an ffmpeg expression in n and t)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
           "-r", str(rate), "-i", "-", "-vf", f"select='{select}'", "-fps_mode", "passthrough", "-c:v", "libx264",
           "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", *extra, str(path)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for n in range(round(seconds * rate)):
        proc.stdin.write(code_frame(round(n * 1000 / rate)).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return path


def remux(src: Path, dst: Path, *args: str, before_input: tuple[str, ...] = ()) -> Path:
    """Copy the stream into another file (no re-encoding) with extra ffmpeg options."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *before_input, "-i", str(src), "-c", "copy", *args, str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def issue_clip(path: Path) -> Path:
    """Issue 23's phone-like clip: 10 s at 30 fps with 2 of every 3 frames dropped between 2 s and 6 s (220 frames)."""
    return make_clip(path, 10, 30, "not(between(t,2,5.99))+not(mod(n,3))", extra=("-g", "30"))


def irregular_clip(path: Path, seconds: float = 6) -> Path:
    """60 fps base with an irregular keep pattern: gaps of 1 to 3 base frames (17 to 50 ms), B-frames."""
    return make_clip(path, seconds, 60, "lt(mod(n*7,11),5)", extra=("-g", "24", "-bf", "3"))
