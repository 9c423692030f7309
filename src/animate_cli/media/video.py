"""Image and video I/O on numpy arrays: probing, streamed reading, random-access frame ranges,
H.264 segment writing and the final concat + audio mux. Uses the ffmpeg binary bundled with
imageio-ffmpeg; no torch here.

Frames are always HxWx3 uint8 RGB. Nothing in this module holds a whole video in memory.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animate_cli.errors import BadInputError
from animate_cli.media.timeline import Timeline, timeline_from_decoder, timeline_from_packets

CRF = 16  # visually lossless H.264; keeps the black pose background < 20 after decode (pose spec §2)
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


class VideoWriter:
    """Write RGB frames to an H.264 yuv420p mp4 at `fps`, atomically: frames go to `<path>.partial.mp4`
    and the file appears under its real name only after `close()` succeeds."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = CRF):
        import imageio_ffmpeg

        if width % 2 or height % 2:
            raise BadInputError(f"video size {width}x{height} must be even for yuv420p")
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".partial.mp4")
        self.size = (width, height)
        self.frames = 0
        self._gen = imageio_ffmpeg.write_frames(
            str(self.tmp), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
            macro_block_size=1, ffmpeg_log_level="error", output_params=["-crf", str(crf), "-preset", "medium"],
        )  # fmt: skip
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not match writer size {self.size}")
        self._gen.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> Path:
        self._gen.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._gen.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_preview(segments: Sequence[Path], preview: Path, fps: float) -> Path:
    """Join the finished segments (no audio, no re-encode) into `preview`, replaced atomically: a
    player that has the previous preview open keeps reading it, the next open sees the new one."""
    return concat_with_audio(segments, preview, None, fps, None)


def concat_with_audio(segments: Sequence[Path], out: Path, frames: int | None, fps: float, audio_from: Path | None,
                      audio_start: float = 0.0) -> Path:  # fmt: skip
    """Join H.264 segments (same size/codec) without re-encoding and add the audio of `audio_from` from
    `audio_start` seconds into that file (VideoInfo.video_start: where its first video frame is), trimmed to
    the video and padded with silence where the video is longer (`frames` None: no trim).
    Atomic: writes a temporary file next to `out` and renames it."""
    out = Path(out)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, dir=out.parent) as f:
        for s in segments:
            f.write(f"file '{Path(s).resolve().as_posix()}'\n")
        listing = f.name
    tmp = out.with_name(out.name + ".partial.mp4")
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing]
    if audio_from is not None:
        cmd += [*(["-ss", f"{audio_start:.6f}"] if audio_start > 0 else []), "-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k", "-af", "apad"]  # fmt: skip
    cmd += ["-c:v", "copy", *(["-t", f"{frames / fps:.6f}"] if frames is not None else []), "-movflags", "+faststart", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise BadInputError(f"ffmpeg could not write {out}: {proc.stderr.strip().splitlines()[-1:]}")
        os.replace(tmp, out)
    finally:
        os.unlink(listing)
    return out
