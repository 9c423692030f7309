"""Identity and pose adherence in the report, with the tiny pose models (fixed person box, fixed whole-body
pose), and the PCK measure on hand-made skeletons."""

import json

import numpy as np
import pytest
from conftest import write_video
from PIL import Image
from support.tiny_pose import canonical_wholebody

from animate_cli.report import ReportOptions, make_report
from animate_cli.report import settings as S
from animate_cli.report.people import Person, face_descriptor, face_similarity, pck

SIDE, N = 320, 160  # the tiny detector's box is (100, 20)-(220, 220) on a 320x320 frame


def frame(t: int, swapped: bool = False) -> np.ndarray:
    """A textured still picture with a bright person where the tiny detector looks, and a square moving below."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    img = np.stack([120 + 60 * np.sin(xx / 9.0), 100 + 50 * np.cos(yy / 7.0), 140 + 40 * np.sin((xx - yy) / 13.0)], -1)
    img[20:220, 100:220] += 60
    x = 20 + (t * 7) % 260
    img[250:290, x : x + 30] = (250, 250, 60)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if swapped:  # another face colour and layout in the upper half
        img[: SIDE // 2] = img[: SIDE // 2, ::-1, ::-1]
    return img


@pytest.fixture(scope="module")
def people_report(tiny_weights, tmp_path_factory):
    d = tmp_path_factory.mktemp("people")
    write_video(d / "driving.mp4", (frame(t) for t in range(N)))
    write_video(d / "out.mp4", (frame(t, swapped=77 <= t < 150) for t in range(N)))
    Image.fromarray(frame(0)).save(d / "ref.png")
    r = make_report(d / "out.mp4", ReportOptions(driving=d / "driving.mp4", ref=d / "ref.png", weights_dir=tiny_weights))
    return r, json.loads(r.json_path.read_text())


def test_identity_follows_the_face_against_the_reference(people_report):
    r, report = people_report
    ident = report["identity"]
    assert ident["available"] and ident["reference"] == "the --ref image's face"
    assert ident["samples"] == len(range(0, N, round(25 / S.PEOPLE_FPS)))  # every 12th frame
    chunks = {c["chunk"]: c["value"] for c in ident["per_chunk"]}
    assert chunks[0] > 0.9 and chunks[2] > 0.9  # the reference's face, through H.264
    assert chunks[1] < chunks[0] - 0.1  # the swapped face of chunk 1
    assert ident["min_chunk"]["chunk"] == 1 and r.headline["identity_min_chunk"]["chunk"] == 1
    assert "person box" in report["measures"]["drift"]


def test_pose_adherence_per_chunk(people_report):
    r, report = people_report
    pose = report["pose"]
    assert pose["available"] and pose["measured"] == pose["samples"]
    assert [c["value"] for c in pose["per_chunk"]] == [1.0, 1.0, 1.0]  # the tiny model always finds the same pose
    assert r.headline["pose_pck_mean"] == 1.0


def person(kpts: np.ndarray) -> Person:
    return Person(kpts, np.ones(133), 0.5, np.zeros(4), None, np.zeros(3))


def test_pck_ignores_placement_and_scale_but_not_limbs():
    uv, _ = canonical_wholebody()
    drv = person(uv * 400)
    assert pck(person(uv * 250 + (60, 30)), drv) == 1.0  # moved and smaller on the canvas: the same pose
    bent = uv.copy()
    bent[[7, 9]] = bent[[7, 9]] + (0.0, 0.2)  # left elbow and wrist dropped by ~2/3 of a torso length
    assert pck(person(bent * 400), drv) == pytest.approx(15 / 17)
    no_torso = person(uv * 400)
    no_torso.scores = np.zeros(133)
    assert pck(no_torso, drv) is None


def test_face_similarity_is_one_for_the_same_face_and_lower_for_another():
    face = frame(0)[20:100, 120:200]
    a = face_descriptor(face)
    assert face_similarity(a, a) == pytest.approx(1.0)
    assert face_similarity(a, face_descriptor(face[:, :, ::-1])) < 0.8
    assert face_similarity(a, face_descriptor(np.rot90(face).copy())) < face_similarity(a, face_descriptor(face + 3))
