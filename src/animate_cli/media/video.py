"""Image and video I/O on numpy arrays: probing, streamed reading, random-access frame ranges,
H.264 segment writing and the final concat + audio mux. Uses the ffmpeg binary bundled with
imageio-ffmpeg; no torch here.

Frames are always HxWx3 uint8 RGB. Nothing in this module holds a whole video in memory.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animate_cli import config as C
from animate_cli.errors import BadInputError

CRF = 16  # visually lossless H.264; keeps the black pose background < 20 after decode (pose spec §2)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    duration: float  # seconds, from the container
    has_audio: bool

    @property
    def approx_frames(self) -> int:
        return max(0, round(self.duration * self.fps))


def probe(path: Path) -> VideoInfo:
    """Read a video's size, fps, duration and whether it has audio. Raises BadInputError."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"video not found: {path}")
    if path.stat().st_size == 0:
        raise BadInputError(f"video is empty (0 bytes): {path}")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, errors="replace")
    info = proc.stderr
    video = re.search(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})", info)
    if not video:
        last = info.strip().splitlines()[-1] if info.strip() else "no video stream"
        raise BadInputError(f"cannot read video {path}: {last}")
    fps_m = re.search(r"([\d.]+) fps", info) or re.search(r"([\d.]+) tbr", info)
    dur_m = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info)
    fps = float(fps_m.group(1)) if fps_m else 0.0
    duration = 0.0
    if dur_m:
        hh, mm, ss = dur_m.groups()
        duration = int(hh) * 3600 + int(mm) * 60 + float(ss)
    if fps <= 0:
        raise BadInputError(f"cannot read the frame rate of {path}")
    w, h = int(video.group(1)), int(video.group(2))
    rot = re.search(r"rotate\s*:\s*(-?\d+)|rotation of (-?[\d.]+) degrees", info)
    if rot and int(float(rot.group(1) or rot.group(2))) % 180:
        w, h = h, w  # ffmpeg auto-rotates on decode, so report the displayed size
    return VideoInfo(path, w, h, fps, duration, bool(re.search(r"Stream #\S+.*?: Audio:", info)))


def iter_frames(
    path: Path, fps: float | None = None, start_time: float = 0.0, duration: float | None = None
) -> Iterator[np.ndarray]:
    """Stream RGB frames. With `fps`, resample by timestamps (ffmpeg's nearest-frame `fps` filter)."""
    import imageio_ffmpeg

    input_params = ["-ss", f"{start_time:.6f}"] if start_time > 0 else []
    output_params = []
    if duration is not None:
        output_params += ["-t", f"{duration:.6f}"]
    if fps:
        output_params += ["-vf", f"fps={fps}"]
    try:
        gen = imageio_ffmpeg.read_frames(str(path), input_params=input_params, output_params=output_params)
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration) as e:
        raise BadInputError(f"cannot read video {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    w, h = meta["size"]
    try:
        for raw in gen:
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    finally:
        gen.close()


def count_frames(path: Path) -> int:
    """Exact decoded frame count (decodes the stream once; cheap at pose-video sizes)."""
    import imageio_ffmpeg

    try:
        n, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError) as e:
        raise BadInputError(f"cannot read video {path}: {str(e).splitlines()[0]}") from None
    return int(n)


def read_frames_at(path: Path, indices: Sequence[int], fps: float) -> list[np.ndarray]:
    """Frames at the given (constant-frame-rate) indices, in the order asked, repeats allowed.

    Each run of consecutive indices is read with one accurate ffmpeg seek, so a chunk of a long
    ping-pong schedule costs O(chunk), not O(video). Only the requested frames are held.
    """
    wanted = sorted(set(indices))
    runs: list[tuple[int, int]] = []
    for i in wanted:
        if runs and i == runs[-1][1]:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    got: dict[int, np.ndarray] = {}
    for a, b in runs:
        # Seek half a frame early: ffmpeg's accurate seek keeps frames with pts >= t, so frame a is first.
        t = max(0.0, (a - 0.5) / fps)
        frames = iter_frames(path, start_time=t)
        for k, frame in zip(range(a, b), frames, strict=False):
            got[k] = frame
        frames.close()
        if b - 1 not in got:
            raise BadInputError(f"{path} has fewer frames than expected (wanted frame {b - 1})")
    return [got[i] for i in indices]


def load_image(path: Path) -> np.ndarray:
    """Any common image as HxWx3 uint8 RGB: EXIF rotation applied, alpha composited on white,
    grayscale expanded, 16-bit scaled (not clipped) to 8-bit. Raises BadInputError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadInputError(f"cannot read image {path}: {e}") from None
    if im.width < 16 or im.height < 16:
        raise BadInputError(f"image {path} is too small ({im.width}x{im.height}); need at least 16x16")
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0
        gray = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def resize(frame: np.ndarray, width: int, height: int, resample: str = "bicubic") -> np.ndarray:
    """Stretch-resize (no crop), PIL filter; used for the reference image (spec §9.8)."""
    from PIL import Image

    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    filt = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}[resample]
    return np.asarray(Image.fromarray(frame).resize((width, height), filt))


def center_crop_resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect, then resize (DiffSynth's crop_and_resize for pose/face frames)."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    scale = max(width / w, height / h)
    cw, ch = round(width / scale), round(height / scale)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return resize(frame[y0 : y0 + ch, x0 : x0 + cw], width, height)


def fit_image(frame: np.ndarray, width: int, height: int, fit: str) -> np.ndarray:
    """The reference (or a view) on the canvas: stretch, crop (centre, as center_crop_resize) or pad (whole
    picture, centred, black bars like Wan's padding_resize). Boxes from animate_cli.media.canvas."""
    from animate_cli.media import canvas

    if fit == "stretch":
        return resize(frame, width, height)
    if fit == "crop":
        return center_crop_resize(frame, width, height)
    if fit != "pad":
        raise ValueError(f"fit must be one of {canvas.FITS}, got {fit!r}")
    x0, y0, w, h = canvas.pad_box(frame.shape[1], frame.shape[0], width, height)
    out = np.zeros((height, width, 3), np.uint8)
    out[y0 : y0 + h, x0 : x0 + w] = resize(frame, w, h)
    return out


@dataclass(frozen=True)
class Measured:
    """What a written video holds, read back from the file (not what was meant to go in)."""

    frames: int  # video packets (one per frame for our H.264), or decoded frames with decode=True
    width: int
    height: int
    duration_s: float  # the container's duration (the longer of video and audio)
    has_audio: bool


def measure(path: Path, decode: bool = False) -> Measured:
    """Read `path` back with ffmpeg (the first video stream, every packet; `decode` also decodes each
    frame, stopping at the first damaged one). Raises BadInputError when it does not read back at all."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1", "-xerror", "-i", str(path),
           "-map", "0:v:0", *([] if decode else ["-c", "copy"]), "-f", "null", "-"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    err = proc.stderr
    video = re.search(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})", err)
    frames = re.findall(r"^frame=(\d+)", proc.stdout, re.M)
    if proc.returncode != 0 or not video or not frames:
        last = (err.strip().splitlines() or ["no video stream"])[-1]
        raise BadInputError(f"cannot read video {path}: {last}")
    dur_m = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err)
    duration = int(dur_m[1]) * 3600 + int(dur_m[2]) * 60 + float(dur_m[3]) if dur_m else 0.0
    return Measured(int(frames[-1]), int(video[1]), int(video[2]), duration, bool(re.search(r"Stream #\S+.*?: Audio:", err)))


def check_video(path: Path, frames: int, size: tuple[int, int] | None = None, fps: float | None = None,
                decode: bool = False) -> tuple[Measured | None, str | None]:  # fmt: skip
    """(measured, None) when `path` holds exactly `frames` frames (of `size`; lasting frames/fps, to
    `config.DURATION_TOLERANCE_S`, when `fps` is given), else (measured or None, what is wrong in a few words)."""
    try:
        m = measure(path, decode)
    except BadInputError as e:
        return None, f"unreadable ({e.message.rsplit(': ', 1)[-1]})"
    if m.frames != frames:
        return m, f"{m.frames} of {frames} frames"
    if size is not None and (m.width, m.height) != tuple(size):
        return m, f"{m.width}x{m.height}, not {size[0]}x{size[1]}"
    if fps and abs(m.duration_s - frames / fps) > C.DURATION_TOLERANCE_S:
        return m, f"it lasts {m.duration_s:.2f} s, not {frames / fps:.2f} s"
    return m, None


class _Stderr:
    """The last lines a child process wrote to stderr, collected on a thread (a full pipe would stall it)
    so that none of them reaches the terminal; the last one goes into the error message."""

    def __init__(self, stream):
        import collections
        import threading

        self.lines: collections.deque[str] = collections.deque(maxlen=C.FFMPEG_STDERR_LINES)
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").strip()
            if line:
                self.lines.append(line)

    def last(self) -> str:
        self._thread.join(C.FFMPEG_STDERR_JOIN_S)
        return self.lines[-1] if self.lines else ""


class VideoWriter:
    """Write RGB frames to an H.264 yuv420p mp4 at `fps`, atomically: frames go to `<name>.partial.mp4`
    (in `tmp_dir`, default next to `path`), and the file appears under its real name only after the
    encoder exited 0 and the file read back (decoded) with every frame written at the right size.
    Anything else raises `WriteFailedError` (exit 6) naming the file, with ffmpeg's last line, and
    removes the partial file; ffmpeg's messages never reach the terminal."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = CRF, tmp_dir: Path | None = None):
        from fractions import Fraction

        from animate_cli.media.files import make_dirs

        if width % 2 or height % 2:
            raise BadInputError(f"video size {width}x{height} must be even for yuv420p")
        self.path = Path(path)
        self.tmp = Path(tmp_dir or self.path.parent) / (self.path.name + ".partial.mp4")
        self.size = (width, height)
        self.frames = 0
        self.measured: Measured | None = None
        make_dirs(self.tmp.parent)
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}",
               "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()), "-i", "-", "-an", "-vcodec", "libx264",
               "-pix_fmt", "yuv420p", "-v", "error", "-crf", str(crf), "-preset", "medium", str(self.tmp)]  # fmt: skip
        # Its own process group (as imageio-ffmpeg does): Ctrl-C reaches only us, and we stop the encoder (abort)
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      process_group=0)  # fmt: skip
        self._stderr = _Stderr(self._proc.stderr)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not match writer size {self.size}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError):  # the encoder died (disk full, killed): its own message says why
            self.abort()
            raise self._failure(None) from None
        self.frames += 1

    def close(self) -> Path:
        from animate_cli.media.files import writing

        with contextlib.suppress(OSError):  # the encoder may already be gone (it failed): its status says why
            self._proc.stdin.close()
        code = self._proc.wait()
        if code != 0:
            self.tmp.unlink(missing_ok=True)
            raise self._failure(None)
        self.measured, problem = check_video(self.tmp, self.frames, self.size, decode=True)
        if problem is not None:
            self.tmp.unlink(missing_ok=True)
            raise self._failure(None, problem)
        with writing(self.path, self.tmp):
            os.replace(self.tmp, self.path)
        return self.path

    def _failure(self, err, problem: str | None = None):
        from animate_cli.media.files import write_failure

        detail = self._stderr.last()
        if problem:
            detail = f"it reads back as {problem}" + (f"; ffmpeg: {detail}" if detail else "")
        elif detail:
            detail = f"ffmpeg: {detail}"
        else:
            detail = f"the encoder exited with status {self._proc.returncode}"
        return write_failure(self.path, err, detail)

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # the encoder may already be gone (it failed): its status says why
            self._proc.stdin.close()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_preview(segments: Sequence[Path], preview: Path, fps: float, frames: int, tmp_dir: Path | None = None) -> Measured:
    """Join the finished segments (no audio, no re-encode) into `preview`, replaced atomically once it
    reads back with `frames` frames: a player that has the previous preview open keeps reading it, the
    next open sees the new one."""
    return concat_with_audio(segments, preview, frames, fps, None, tmp_dir=tmp_dir, trim=False)


def concat_with_audio(segments: Sequence[Path], out: Path, frames: int, fps: float, audio_from: Path | None,
                      tmp_dir: Path | None = None, trim: bool = True) -> Measured:  # fmt: skip
    """Join H.264 segments (same size/codec) without re-encoding into `out`, keeping `frames` frames
    (`trim`), and add the audio of `audio_from`, trimmed to the video and padded with silence where the
    video is longer. The list of segments goes to ffmpeg on stdin (no list file anywhere); the result is
    written to `<name>.partial.mp4` in `tmp_dir` (default: next to `out`; the same filesystem, so the
    rename is atomic) and replaces `out` only when it reads back with `frames` frames lasting frames/fps
    (ffmpeg's concat silently stops at an unreadable segment). Returns what was measured."""
    from animate_cli.media.files import make_dirs, write_failure, writing

    out = Path(out)
    tmp = Path(tmp_dir or out.parent) / (out.name + ".partial.mp4")
    listing = "".join(f"file 'file:{_concat_quote(Path(s).resolve().as_posix())}'\n" for s in segments)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
           "-protocol_whitelist", "file,pipe", "-i", "pipe:0"]  # fmt: skip
    if audio_from is not None:
        cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k", "-af", "apad"]
    cmd += ["-c:v", "copy", *(["-t", f"{frames / fps:.6f}"] if trim else []), "-movflags", "+faststart", str(tmp)]
    with writing(out, tmp):
        make_dirs(tmp.parent)
        proc = subprocess.run(cmd, input=listing, capture_output=True, text=True, errors="replace")
        if proc.returncode != 0:
            raise write_failure(out, None, f"ffmpeg: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
        measured, problem = check_video(tmp, frames, fps=fps)
        if problem is not None:
            raise write_failure(out, None, f"it reads back as {problem}")
        os.replace(tmp, out)
    return measured


def _concat_quote(path: str) -> str:
    """A path inside single quotes of an ffmpeg concat list (a quote is written as '\\'')."""
    return path.replace("'", "'\\''")
