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
from animate_cli.media.timeline import Timeline, timeline_from_decoder, timeline_from_packets

CRF = 16  # visually lossless H.264; keeps the black pose background <= 20 after decode (docs/model-facts.md)
READ_BRIDGE_FRAMES = 30  # read_frames_at decodes through gaps up to this long rather than seek again (~1 s)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    """A video as every stage sees it. Frame count, duration and rate come from the frame timestamps
    (`timeline`), never from the container's average rate, so variable-rate footage keeps its time."""

    path: Path
    width: int  # as displayed (rotation applied, as the decoder outputs it)
    height: int
    fps: float  # frames / duration: a mean, for display and rate-like settings; frames are mapped by time
    duration: float  # seconds, first frame's start to last frame's end
    has_audio: bool
    timeline: Timeline

    @property
    def frames(self) -> int:
        return self.timeline.frames

    @property
    def video_start(self) -> float:
        """Seconds from the start of the file (its earliest stream, ffmpeg's -ss clock) to the first video frame:
        where audio that plays along with the output's frame 0 begins."""
        return max(0.0, self.timeline.origin - self.timeline.container_start)

    def frames_at(self, fps: float, start: float = 0.0, seconds: float | None = None) -> int:
        """Output frames at `fps` that cover the video (from `start`, for at most `seconds`)."""
        return self.timeline.output_frames(fps, start, seconds)


_PROBES: dict[tuple[str, int, int], VideoInfo] = {}


def probe(path: Path) -> VideoInfo:
    """Size, timestamps (media.timeline) and audio of a video, in one ffmpeg run that demuxes without
    decoding; memoised per (path, size, mtime). Raises BadInputError."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"video not found: {path}")
    st = path.stat()
    if st.st_size == 0:
        raise BadInputError(f"video is empty (0 bytes): {path}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _PROBES:
        _PROBES[key] = _probe(path)
    return _PROBES[key]


def _probe(path: Path) -> VideoInfo:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-copyts", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    info = proc.stderr
    video = re.search(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})", info)
    if not video:
        last = info.strip().splitlines()[-1] if info.strip() else "no video stream"
        raise BadInputError(f"cannot read video {path}: {last}")
    start_m = re.search(r"start: (-?[\d.]+)", info)
    container_start = float(start_m.group(1)) if start_m else 0.0
    timeline = timeline_from_packets(proc.stdout, container_start) if proc.returncode == 0 else None
    if timeline is None:  # some packet has no timestamp: ask the decoder, which fills them in
        timeline = timeline_from_decoder(ffmpeg_exe(), path, container_start)
    if timeline.duration <= 0:
        raise BadInputError(f"cannot read the frame timing of {path} (duration {timeline.duration:g} s)")
    w, h = int(video.group(1)), int(video.group(2))
    rot = re.search(r"rotate\s*:\s*(-?\d+)|rotation of (-?[\d.]+) degrees", info)
    if rot and int(float(rot.group(1) or rot.group(2))) % 180:
        w, h = h, w  # ffmpeg auto-rotates on decode, so report the displayed size
    has_audio = bool(re.search(r"Stream #\S+.*?: Audio:", info))
    return VideoInfo(path, w, h, timeline.mean_fps, timeline.duration, has_audio, timeline)


def count_frames(path: Path) -> int:
    """Frames in the video stream (from its timestamps; nothing is decoded)."""
    return probe(path).frames


def iter_frames(
    path: Path,
    fps: float | None = None,
    start_time: float = 0.0,
    duration: float | None = None,
    width: int | None = None,
    every: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream RGB frames: every frame of the video, or with `fps` the output clock of media.timeline
    (frame k shows the source at start_time + k / fps; a source frame repeats or is skipped as needed).

    Analysis reads of every decoded frame (the report) may ask ffmpeg to do the work: `width` scales each
    frame (area average, even height at the same aspect), `every` keeps frames 0, every, 2 * every, ... by
    decoded frame number; neither combines with fps/start_time/duration."""
    if width is not None or every is not None:
        if fps is not None or start_time or duration is not None:
            raise ValueError("width/every read whole videos; they do not combine with fps, start_time or duration")
        yield from _iter_analysis_frames(path, width, every)
        return
    info = probe(path)
    if fps is None and not start_time and duration is None:
        for _, frame in iter_source_frames(path, 0, info.frames - 1):
            yield frame
        return
    fps = fps or info.fps
    src = info.timeline.source_indices(fps, info.frames_at(fps, start_time, duration), start_time)
    yield from _expand_in_order(path, src)


def _iter_analysis_frames(path: Path, width: int | None, every: int | None) -> Iterator[np.ndarray]:
    """Every decoded frame (or every n-th), scaled by ffmpeg when `width` is given."""
    import logging

    import imageio_ffmpeg

    filters = ([f"select=not(mod(n\\,{every}))"] if every else []) + ([f"scale={width}:-2:flags=area"] if width else [])
    output_params = ["-vf", ",".join(filters)]
    if every:
        output_params += ["-fps_mode", "passthrough"]  # the selected frames only, no duplicates to keep the rate
    if width:  # imageio-ffmpeg warns (stderr) that the read size differs from the source size: that is the point
        logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)
    try:
        gen = imageio_ffmpeg.read_frames(str(path), output_params=output_params)
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration) as e:
        raise BadInputError(f"cannot read video {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    w, h = meta["size"]
    try:
        for raw in gen:
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    finally:
        gen.close()


def read_frames_at(path: Path, indices: Sequence[int]) -> list[np.ndarray]:
    """Frames at the given source-frame indices (positions in media.timeline order), in the order asked,
    repeats allowed. Each stretch of nearby indices is one decode from a seek just before it, so a chunk
    of a long ping-pong schedule costs O(chunk), not O(video). Only the requested frames are held."""
    wanted = sorted(set(int(i) for i in indices))
    got: dict[int, np.ndarray] = {}
    for a, b in _stretches(wanted):
        keep = set(wanted[wanted.index(a) : wanted.index(b) + 1])
        for i, frame in iter_source_frames(path, a, b):
            if i in keep:
                got[i] = frame
    return [got[int(i)] for i in indices]


def _stretches(sorted_indices: list[int]) -> list[tuple[int, int]]:
    """Group indices into (first, last) stretches, bridging gaps up to READ_BRIDGE_FRAMES (decoding a few
    unused frames is cheaper than a new ffmpeg process and seek)."""
    out: list[tuple[int, int]] = []
    for i in sorted_indices:
        if out and i - out[-1][1] <= READ_BRIDGE_FRAMES:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _expand_in_order(path: Path, src: np.ndarray) -> Iterator[np.ndarray]:
    """Yield the frame of each (non-decreasing) source index in `src`, decoding the span once."""
    if len(src) == 0:
        return
    k = 0
    for i, frame in iter_source_frames(path, int(src[0]), int(src[-1])):
        while k < len(src) and src[k] == i:
            yield frame
            k += 1


def iter_source_frames(path: Path, first: int, last: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) for every source frame first..last, in order, each decoded once (media.reader)."""
    from animate_cli.media.reader import decode_span

    yield from decode_span(ffmpeg_exe(), probe(path), first, last)


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
    """Stretch-resize (no crop), PIL filter; used for the reference image (docs/model-facts.md, resizing the inputs)."""
    from PIL import Image

    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    filt = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}[resample]
    return np.asarray(Image.fromarray(frame).resize((width, height), filt))


def center_crop_resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect, then resize, as DiffSynth's crop_and_resize does pose/face frames (docs/model-facts.md)."""
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


@dataclass(frozen=True)
class MuxExtras:
    """What concat_with_audio adds besides the video: the audio of `audio` from `audio_start` seconds into that
    file (VideoInfo.video_start: where its first video frame is), and the container's comment tag (a --fast
    draft is marked there, so `everanimate inspect` and any player see it)."""

    audio: Path | None = None
    audio_start: float = 0.0
    comment: str = ""


COMMENT_TAG = re.compile(r"^\s+comment\s*:\s?(.*)$", re.M)  # ffmpeg -i's listing of the container's metadata


def comment_tag(path: Path) -> str:
    """The container's comment tag ("" when there is none), as ffmpeg lists the input's metadata."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True,
                          errors="replace")  # fmt: skip
    m = COMMENT_TAG.search(proc.stderr.split("Stream #", 1)[0])  # the file's own tags, before any stream's
    return m.group(1).strip() if m else ""


def concat_with_audio(segments: Sequence[Path], out: Path, frames: int, fps: float, extras: MuxExtras | None = None,
                      tmp_dir: Path | None = None, trim: bool = True) -> Measured:  # fmt: skip
    """Join H.264 segments (same size/codec) without re-encoding into `out`, keeping `frames` frames
    (`trim`), and add what `extras` holds: the audio, trimmed to the video and padded with silence where the
    video is longer, and the comment tag. The list of segments goes to ffmpeg on stdin (no list file anywhere); the
    result is written to `<name>.partial.mp4` in `tmp_dir` (default: next to `out`; the same filesystem, so
    the rename is atomic) and replaces `out` only when it reads back with `frames` frames lasting frames/fps
    (ffmpeg's concat silently stops at an unreadable segment). Returns what was measured."""
    from animate_cli.media.files import make_dirs, write_failure, writing

    out = Path(out)
    tmp = Path(tmp_dir or out.parent) / (out.name + ".partial.mp4")
    listing = "".join(f"file 'file:{_concat_quote(Path(s).resolve().as_posix())}'\n" for s in segments)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
           "-protocol_whitelist", "file,pipe", "-i", "pipe:0"]  # fmt: skip
    extras = extras or MuxExtras()
    if extras.audio is not None:
        cmd += [
            *(["-ss", f"{extras.audio_start:.6f}"] if extras.audio_start > 0 else []),
            "-i",
            str(extras.audio),
            "-map",
            "0:v:0",
            "-map",
            "1:a:0",
            "-c:a",
            "aac",
            "-b:a",
            "192k",
            "-af",
            "apad",
        ]
    cmd += ["-c:v", "copy", *(["-t", f"{frames / fps:.6f}"] if trim else []), "-movflags", "+faststart"]
    cmd += [*(["-metadata", f"comment={extras.comment}"] if extras.comment else []), str(tmp)]
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
