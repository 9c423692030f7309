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
    path: Path,
    fps: float | None = None,
    start_time: float = 0.0,
    duration: float | None = None,
    width: int | None = None,
    every: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream RGB frames. With `fps`, resample by timestamps (ffmpeg's nearest-frame `fps` filter). With `width`,
    ffmpeg scales them (area average, even height at the same aspect): a small analysis copy at little cost. With
    `every`, only frames 0, every, 2 * every, ... by decoded frame number (the others never leave ffmpeg)."""
    import logging

    import imageio_ffmpeg

    input_params = ["-ss", f"{start_time:.6f}"] if start_time > 0 else []
    output_params = []
    if duration is not None:
        output_params += ["-t", f"{duration:.6f}"]
    filters = ([f"fps={fps}"] if fps else []) + ([f"select=not(mod(n\\,{every}))"] if every else [])
    filters += [f"scale={width}:-2:flags=area"] if width else []
    if filters:
        output_params += ["-vf", ",".join(filters)]
    if every:
        output_params += ["-fps_mode", "passthrough"]  # the selected frames only, no duplicates to keep the rate
    if width:  # imageio-ffmpeg warns (stderr) that the read size differs from the source size: that is the point
        logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)
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


def concat_with_audio(segments: Sequence[Path], out: Path, frames: int | None, fps: float, audio_from: Path | None) -> Path:
    """Join H.264 segments (same size/codec) without re-encoding and add the audio of `audio_from`,
    trimmed to the video and padded with silence where the video is longer (`frames` None: no trim).
    Atomic: writes a temporary file next to `out` and renames it."""
    out = Path(out)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, dir=out.parent) as f:
        for s in segments:
            f.write(f"file '{Path(s).resolve().as_posix()}'\n")
        listing = f.name
    tmp = out.with_name(out.name + ".partial.mp4")
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing]
    if audio_from is not None:
        cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k", "-af", "apad"]
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
