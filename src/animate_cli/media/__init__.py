"""Files and pictures: video/image probing, reading and H.264 writing with the bundled ffmpeg, read back
before anything is renamed into place (video.py), frame timestamps and the output clock's time map
(timeline.py), decoding by timestamps (reader.py), writing any file so that a failure is one line and
leaves nothing half-written (files.py),
the segment writer thread (writer.py), the output canvas (canvas.py), the never-overwrite-an-input guard
(guard.py) and folder locks (locks.py). This file only gathers what other stages call as `media.<name>`."""

from animate_cli.media.timeline import Timeline  # noqa: F401
from animate_cli.media.video import (  # noqa: F401
    CRF,
    Measured,
    MuxExtras,
    VideoInfo,
    VideoWriter,
    center_crop_resize,
    check_video,
    comment_tag,
    concat_with_audio,
    count_frames,
    ffmpeg_exe,
    fit_image,
    iter_frames,
    iter_source_frames,
    load_image,
    measure,
    probe,
    read_frames_at,
    resize,
    write_preview,
)
