"""The canvas follows the reference (multiple-of-16, ~preset pixels), --fit for a forced --size, and the
driving person placed by their extent over the clip (animate_cli.media.canvas is pure numpy)."""

import math

import numpy as np
import pytest

from animate_cli.media import canvas as CV

P480, P720 = (832, 480), (1280, 720)


@pytest.mark.parametrize(
    "ref, preset, want",
    [((832, 480), P480, (832, 480)), ((480, 832), P480, (480, 832)), ((1024, 1024), P480, (624, 624)),
     ((1920, 1080), P480, (848, 480)), ((1920, 1080), P720, (1280, 720)), ((3024, 4032), P480, (544, 736)),
     ((1080, 1920), P720, (720, 1280)), ((1600, 48), P480, (1104, 368)), ((48, 1600), P480, (368, 1104))],
)  # fmt: skip
def test_canvas_size_follows_the_reference(ref, preset, want):
    assert CV.canvas_size(*ref, preset) == want


def test_canvas_size_is_always_valid_and_close():
    rng = np.random.default_rng(0)
    for _ in range(300):
        w, h = (int(v) for v in rng.integers(16, 5000, 2))
        for preset in (P480, P720):
            cw, ch = CV.canvas_size(w, h, preset)
            assert cw % 16 == 0 and ch % 16 == 0
            assert abs(math.log(cw * ch / (preset[0] * preset[1]))) < 0.12
            aspect = min(max(w / h, 1 / 3), 3)
            assert abs(math.log(cw / ch / aspect)) < 0.05


def test_choose_canvas_rules():
    c = CV.choose_canvas(3024, 4032, P480, "480p", None, None)
    assert (c.width, c.height, c.fit) == (544, 736, "stretch") and "3024x4032" in c.rule
    c = CV.choose_canvas(3024, 4032, P480, "480p", (832, 480), None)  # --size forces landscape on a portrait photo
    assert (c.width, c.height, c.fit) == (832, 480, "pad")
    assert CV.choose_canvas(3024, 4032, P480, "480p", (832, 480), "crop").fit == "crop"
    assert CV.choose_canvas(832, 480, P480, "480p", (832, 480), None).fit == "stretch"
    c = CV.choose_canvas(1600, 48, P480, "480p", None, None)
    assert (c.width, c.height, c.fit) == (1104, 368, "pad") and "3:1" in c.rule
    with pytest.raises(ValueError):
        CV.choose_canvas(10, 10, P480, "480p", None, "zoom")


def test_image_placement_modes():
    crop = CV.image_placement(400, 800, 800, 400, "crop")  # portrait photo on a landscape canvas
    assert crop.sx == crop.sy == 2.0 and crop.oy == (400 - 1600) / 2
    pad = CV.image_placement(400, 800, 800, 400, "pad")
    assert pad.sx == 0.5 and pad.ox == 300 and pad.oy == 0
    assert CV.pad_box(400, 800, 800, 400) == (300, 0, 200, 400)
    st = CV.image_placement(400, 800, 800, 400, "stretch")
    assert (st.sx, st.sy) == (2.0, 0.5)
    assert np.allclose(st.points(np.array([[-0.5, -0.5], [399.5, 799.5]])), [[-0.5, -0.5], [799.5, 399.5]])


def inside(pl, extent):
    (ax, ay), (bx, by) = pl.points(np.array([[extent[0], extent[1]], [extent[2] - 1, extent[3] - 1]]))
    return ax >= -0.5 and ay >= -0.5 and bx <= pl.width - 0.5 and by <= pl.height - 0.5


def test_person_placement_keeps_an_off_centre_person_inside():
    # landscape 1280x720 video, a person standing at the right edge; portrait 480x832 canvas
    extent = CV.person_extent(np.array([[1100, 150], [1250, 700]]))
    crop = CV.image_placement(1280, 720, 480, 832, "crop")
    assert not inside(crop, extent)  # the blind centre crop cuts them off
    pl = CV.person_placement(1280, 720, 480, 832, extent)
    assert inside(pl, extent) and math.isclose(pl.sx, crop.sx)  # same zoom, window moved


def test_person_placement_shrinks_for_a_wide_extent_but_never_below_letterbox():
    # two arms' spread across the whole landscape frame on a portrait canvas
    extent = CV.person_extent(np.array([[40, 100], [1240, 700]]))
    pl = CV.person_placement(1280, 720, 480, 832, extent)
    assert inside(pl, extent) and pl.sx < CV.image_placement(1280, 720, 480, 832, "crop").sx
    assert pl.sx >= CV.image_placement(1280, 720, 480, 832, "pad").sx - 1e-12
    assert CV.person_placement(1280, 720, 480, 832, None) == CV.image_placement(1280, 720, 480, 832, "crop")


def test_person_placement_of_a_person_who_fits_is_the_centre_crop():
    extent = CV.person_extent(np.array([[600, 100], [700, 600]]))
    assert CV.person_placement(1280, 720, 832, 480, extent) == CV.image_placement(1280, 720, 832, 480, "crop")


def test_person_placement_never_moves_the_window_past_the_frame_edge():
    # a person walking out at the right edge: their extent (+ margin) reaches past the frame; keeping the
    # margin would only shift in black from beyond the edge, so the centre crop's full frame is kept
    extent = CV.person_extent(np.array([[700, 300], [767, 412]]))
    pl = CV.person_placement(768, 576, 832, 624, extent)
    assert pl == CV.image_placement(768, 576, 832, 624, "crop")
