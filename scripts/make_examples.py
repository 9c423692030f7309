"""Write the synthetic demo inputs in examples/: ref.png, driving.mp4 (10 s, with a tone), and the
matching Wan-style pose.mp4 / face.mp4 rendered by our own pose renderer from the same keypoints.

    python scripts/make_examples.py [DIR]

The figure is a drawn cartoon, not a photo: real pose models may not detect it, which is why the
pose and face videos are shipped pre-rendered (`make demo` passes them with --pose-video/--face-video).
For real footage use `everanimate download-weights --examples` (the official demo inputs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

W, H, FPS, SECONDS = 832, 480, 25, 10


def keypoints(t: float, cx: float = W / 2) -> np.ndarray:
    """COCO-WholeBody-133 pixel coordinates of a figure that sways, waves and steps at time t (s)."""
    k = np.zeros((133, 2))
    sway = 20 * np.sin(2 * np.pi * 0.4 * t)
    wave = np.sin(2 * np.pi * 0.8 * t)
    x0, neck_y, hip_y = cx + sway, 150.0, 290.0
    head = np.array([x0, 95.0])
    k[0] = head + (0, 5)  # nose
    k[1], k[2] = head + (-9, -5), head + (9, -5)  # eyes (left is image right for a facing person: keep simple)
    k[3], k[4] = head + (-20, 0), head + (20, 0)
    k[5], k[6] = (x0 + 45, neck_y), (x0 - 45, neck_y)  # shoulders
    k[7] = k[5] + (25, 55 - 80 * max(wave, 0))
    k[8] = k[6] + (-25, 60)
    k[9] = k[7] + (15, 55 - 130 * max(wave, 0))
    k[10] = k[8] + (-5, 60 + 10 * wave)
    k[11], k[12] = (x0 + 28, hip_y), (x0 - 28, hip_y)
    step = 18 * np.sin(2 * np.pi * 0.8 * t)
    k[13], k[14] = k[11] + (8 + step, 80), k[12] + (-8 - step, 80)
    k[15], k[16] = k[13] + (0, 75), k[14] + (0, 75)
    k[17], k[18], k[19] = k[15] + (12, 12), k[15] + (20, 8), k[15] + (-4, 6)  # left foot
    k[20], k[21], k[22] = k[16] + (-12, 12), k[16] + (-20, 8), k[16] + (4, 6)
    ang = np.linspace(np.pi * 0.1, np.pi * 0.9, 17)
    face = [head + (28 * np.cos(a + np.pi) * -1, 10 + 26 * np.sin(a)) for a in ang]  # jaw 0-16
    face += [head + (-22 + 4.5 * i, -18) for i in range(5)] + [head + (4 + 4.5 * i, -18) for i in range(5)]  # brows
    face += [head + (0, -10 + 4 * i) for i in range(4)] + [head + (-8 + 4 * i, 8) for i in range(5)]  # nose
    for ex in (-11, 11):
        face += [head + (ex + 5 * np.cos(a), -6 + 2.5 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
    mouth = 2 + 4 * abs(np.sin(2 * np.pi * 1.5 * t))
    face += [head + (11 * np.cos(a), 20 + mouth * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    face += [head + (6 * np.cos(a), 20 + 0.5 * mouth * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
    k[23:91] = np.array(face)
    for base, wrist in ((91, k[9]), (112, k[10])):
        k[base] = wrist
        for f in range(5):
            for j in range(4):
                k[base + 1 + f * 4 + j] = wrist + ((f - 2) * 5, 6 + 6 * j)
    return k


def draw_person(k: np.ndarray, bg) -> np.ndarray:
    """A flat cartoon person from the same keypoints: limbs, torso, head with eyes and mouth."""
    import cv2

    img = np.empty((H, W, 3), np.uint8)
    img[:] = bg
    p = lambda i: (int(k[i, 0]), int(k[i, 1]))  # noqa: E731
    torso = np.array([p(5), p(6), p(12), p(11)], np.int32)
    cv2.fillConvexPoly(img, torso, (60, 90, 170))
    for a, b, col in ((5, 7, (60, 90, 170)), (7, 9, (225, 185, 160)), (6, 8, (60, 90, 170)), (8, 10, (225, 185, 160)),
                      (11, 13, (50, 50, 60)), (13, 15, (50, 50, 60)), (12, 14, (50, 50, 60)), (14, 16, (50, 50, 60))):  # fmt: skip
        cv2.line(img, p(a), p(b), col, 16, cv2.LINE_AA)
    head = (int(k[0, 0]), int(k[0, 1]) - 5)
    cv2.ellipse(img, head, (30, 38), 0, 0, 360, (225, 185, 160), -1, cv2.LINE_AA)
    cv2.ellipse(img, (head[0], head[1] - 22), (32, 18), 0, 180, 360, (70, 45, 30), -1, cv2.LINE_AA)  # hair
    for i in (59, 65):  # eyes from the face landmarks
        cv2.circle(img, (int(k[i, 0]), int(k[i, 1])), 3, (20, 20, 20), -1, cv2.LINE_AA)
    mouth = k[71:83]
    cv2.fillPoly(img, [mouth.astype(np.int32)], (150, 40, 40))
    return img


def main(out: Path) -> None:
    from PIL import Image

    from animate_cli.media import VideoWriter, ffmpeg_exe
    from animate_cli.pose.face import crop_face, wan_face_box
    from animate_cli.pose.render import draw_wan_pose, to_wan_meta

    out.mkdir(parents=True, exist_ok=True)
    scores = np.ones(133)
    Image.fromarray(draw_person(keypoints(0.0), (235, 232, 225))).save(out / "ref.png")
    n = FPS * SECONDS
    silent = out / "driving.silent.mp4"
    with VideoWriter(silent, W, H, FPS) as drv, VideoWriter(out / "pose.mp4", W, H, FPS) as pose, \
            VideoWriter(out / "face.mp4", 512, 512, FPS) as face:  # fmt: skip
        for i in range(n):
            k = keypoints(i / FPS)
            frame = draw_person(k, (120, 150, 130))
            drv.write(frame)
            pose.write(draw_wan_pose(np.zeros((H, W, 3), np.uint8), to_wan_meta(k, scores)))
            face.write(crop_face(frame, wan_face_box(k[23:91], W, H)))
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(silent), "-f", "lavfi", "-i",
                    f"sine=frequency=330:duration={SECONDS}", "-c:v", "copy", "-c:a", "aac", "-b:a", "64k",
                    str(out / "driving.mp4")], check=True)  # fmt: skip
    silent.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "examples")
