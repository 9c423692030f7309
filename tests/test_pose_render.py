"""Pixel-exact checks of the Wan renderer on hand-made keypoints, the 133 -> Wan mapping, the face box,
the fps index map and the crop fit (pose spec §1.2-§1.6, §11)."""

import numpy as np
import pytest

from animate_cli import media
from animate_cli.pose.face import crop_face, face_box_float, wan_face_box
from animate_cli.pose.geometry import center_crop_fit
from animate_cli.pose.render import WanMeta, draw_wan_pose, stick_widths, to_wan_meta

H, W = 480, 832


def meta(points: dict[int, tuple[float, float]], lhand=None, rhand=None) -> WanMeta:
    """Body points given by Wan index get score 1; everything else score 0."""
    body, bs = np.zeros((20, 2)), np.zeros(20)
    for j, xy in points.items():
        body[j], bs[j] = xy, 1.0
    lh, ls = (np.zeros((21, 2)), np.zeros(21)) if lhand is None else lhand
    rh, rs = (np.zeros((21, 2)), np.zeros(21)) if rhand is None else rhand
    return WanMeta(body, bs, lh, ls, rh, rs, np.zeros((68, 2)), np.zeros(68))


def draw(m, h=H, w=W, **kw):
    return draw_wan_pose(np.zeros((h, w, 3), np.uint8), m, **kw)


def test_stick_widths_v2():
    assert stick_widths(480, 832) == (1, 1)
    assert stick_widths(720, 1280) == (2, 1)
    assert stick_widths(1080, 1920) == (4, 2)
    assert stick_widths(100, 100) == (1, 1)


def test_limb_colours_are_dimmed_and_joints_full():
    img = draw(meta({1: (400, 100), 2: (300, 100), 10: (600, 300), 19: (640, 300), 13: (100, 300), 18: (140, 300)}))
    assert tuple(img[100, 350]) == (153, 0, 0)  # Neck-RShoulder midpoint: (255,0,0) x 0.6
    assert tuple(img[300, 620]) == (120, 120, 0)  # RAnkle-RToe uses colour #18 (200,200,0) x 0.6
    assert tuple(img[300, 120]) == (153, 0, 51)  # LAnkle-LToe uses colour #17 (255,0,85) x 0.6, not the "foot" colour
    assert tuple(img[300, 140]) == (200, 200, 0)  # LToe joint: full colour #18
    assert tuple(img[300, 640]) == (100, 100, 0)  # RToe joint: full colour #19
    assert tuple(img[100, 400]) == (255, 85, 0)  # Neck joint (drawn after the limbs)
    assert tuple(img[100, 300]) == (255, 170, 0)  # RShoulder joint


def test_limb_width_and_background():
    for (h, w), sw in (((480, 832), 1), ((1080, 1920), 4)):
        img = draw(meta({1: (400, 200), 2: (200, 200)}), h, w)
        col = img[:, 300].max(axis=1)  # a column through the middle of the horizontal limb
        assert (np.flatnonzero(col) == np.arange(200 - sw, 200 + sw + 1)).all()
        assert set(map(tuple, img[190 - sw : 211 + sw, 250:350].reshape(-1, 3))) <= {(0, 0, 0), (153, 0, 0)}
        assert img[:150].max() == 0 and img[260:].max() == 0  # background stays exactly 0


def test_ellipse_polygon_matches_wan_geometry():
    """A diagonal limb: Wan's ellipse2Poly centre/axes/angle with int truncation, 8-connected fill."""
    import cv2

    p, q = (103.7, 51.2), (181.9, 140.6)
    img = draw(meta({1: p, 2: q}), sw=3)
    ref = np.zeros_like(img)
    length = ((p[1] - q[1]) ** 2 + (p[0] - q[0]) ** 2) ** 0.5
    angle = np.degrees(np.arctan2(p[1] - q[1], p[0] - q[0]))
    poly = cv2.ellipse2Poly((int((p[0] + q[0]) / 2), int((p[1] + q[1]) / 2)), (int(length / 2), 3), int(angle), 0, 360, 1)
    cv2.fillConvexPoly(ref, poly, (153, 0, 0))
    cv2.circle(ref, (103, 51), 3, (255, 85, 0), -1)
    cv2.circle(ref, (181, 140), 3, (255, 170, 0), -1)
    assert np.array_equal(img, ref)


def test_below_threshold_draws_nothing():
    m = meta({1: (400, 100), 2: (300, 100)})
    m.body_score[:] = 0.49
    assert draw(m, thr_body=0.5).max() == 0
    m.body_score[:] = 0.5  # >= threshold draws (Wan skips only scores < threshold)
    assert draw(m, thr_body=0.5).max() > 0
    m2 = meta({1: (400, 100), 2: (300, 100)})
    m2.body_score[2] = 0.1  # one endpoint low: no limb, only the confident joint
    img = draw(m2)
    assert img[100, 350].max() == 0 and tuple(img[100, 400]) == (255, 85, 0)


def hand(root=(500.0, 200.0)):
    pts = np.zeros((21, 2))
    pts[0] = root
    for f in range(5):  # finger 0 hangs straight down from the root; the others fan out to its right
        for j in range(4):
            pts[1 + 4 * f + j] = (root[0] + 20 * f, root[1] + 15 * (j + 1) + (10 if f else 0))
    return pts, np.ones(21)


def test_hand_bones_joints_and_draw_order():
    pts, sc = hand()
    img = draw(meta({}, lhand=(pts, sc)))
    assert tuple(img[207, 500]) == (255, 0, 0)  # bone 0 (0-1) is HSV(0) = red
    assert tuple(img[222, 500]) == (255, 77, 0)  # bone 1: HSV(1/20) = (255, 76.50000000000001, 0), OpenCV rounds up
    assert tuple(img[237, 500]) == (255, 153, 0)  # bone 2
    assert tuple(img[200, 500]) == (0, 0, 255) and tuple(img[215, 500]) == (0, 0, 255)  # joints: blue on RGB
    assert tuple(img[199, 500]) == (0, 0, 255) and img[197, 500].max() == 0  # joint radius hw = 1
    # the right hand is drawn after the left: where both have a joint, blue over the left's bone colour stays blue
    body_under = draw(meta({1: (520, 200), 2: (480, 200)}, rhand=(pts, sc)))
    assert tuple(body_under[200, 500]) == (0, 0, 255)  # hand joint over the body limb


def test_hand_points_at_zero_are_not_drawn():
    pts, sc = hand()
    pts[5:9] = 0.0  # index finger at the origin (Wan's "missing" marker): those bones and joints are skipped
    img = draw(meta({}, lhand=(pts, sc)))
    assert img[:3, :3].max() == 0
    assert img.max() > 0


def test_mapping_133_to_wan():
    k = np.stack([np.arange(133.0), 1000 + np.arange(133.0)], axis=1)
    s = np.arange(133.0) / 133
    m = to_wan_meta(k, s)
    assert np.allclose(m.body[1], (5.5, 1005.5)) and np.isclose(m.body_score[1], (s[5] + s[6]) / 2)  # neck: mean
    assert np.allclose(m.body[[0, 2, 3, 4, 5, 8, 11, 14, 15, 16, 17], 0], [0, 6, 8, 10, 5, 12, 11, 2, 1, 4, 3])
    assert np.allclose(m.body[18, 0], 17.5) and np.allclose(m.body[19, 0], 20.5)  # toes: big + small averaged
    assert np.isclose(m.body_score[19], (s[20] + s[21]) / 2)
    assert np.array_equal(m.lhand[:, 0], np.arange(91, 112)) and np.array_equal(m.rhand[:, 0], np.arange(112, 133))
    assert np.array_equal(m.face[:, 0], np.arange(23, 91))  # 68 landmarks, the right heel (22) dropped


def test_face_box_wan_rule():
    xy = np.array([[100, 100], [200, 160], [150, 130]], float)
    x1, y1, x2, y2 = face_box_float(xy)
    assert np.isclose((x2 - x1) * (y2 - y1), 1.3 * 100 * 60)  # area x1.3
    assert np.isclose((x2 - x1) / (y2 - y1), 100 / 60)  # aspect kept
    assert np.isclose(100 - y1, 3 * (y2 - 160))  # extra height 3:1 above:below
    assert wan_face_box(xy, 640, 480) == (int(x1), int(y1), int(x2), int(y2)) == (92, 93, 207, 162)
    assert wan_face_box(xy - (95, 95), 640, 480)[:2] == (0, 0)  # clipped, not padded
    assert wan_face_box(xy + (400, 300), 560, 440)[2:] == (560, 440)
    assert wan_face_box(np.array([[10, 10], [10.5, 40]]), 640, 480) is None  # degenerate width
    face = crop_face(np.full((480, 640, 3), 7, np.uint8), (92, 93, 207, 162))
    assert face.shape == (512, 512, 3) and face.max() == 7
    assert crop_face(np.zeros((4, 4, 3), np.uint8), None).shape == (512, 512, 3)


@pytest.mark.parametrize(("src", "dst"), [((1920, 1080), (832, 480)), ((1080, 1920), (480, 832)), ((640, 640), (832, 480)),
                                          ((321, 239), (832, 480)), ((832, 480), (832, 480))])  # fmt: skip
def test_fit_is_runs_crop_rule(src, dst):
    """Our crop box is exactly media.center_crop_resize's: a frame with a marked box lands the same way."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (src[1], src[0], 3), dtype=np.uint8)
    fit = center_crop_fit(*src, *dst)
    img[fit.y0 : fit.y0 + fit.ch, fit.x0 : fit.x0 + fit.cw] = 255  # only the crop is white
    assert media.center_crop_resize(img, *dst).min() == 255
    assert fit.apply(img).shape == (dst[1], dst[0], 3)
    corners = fit.points(np.array([[fit.x0 - 0.5, fit.y0 - 0.5], [fit.x0 + fit.cw - 0.5, fit.y0 + fit.ch - 0.5]]))
    assert np.allclose(corners, [[-0.5, -0.5], [dst[0] - 0.5, dst[1] - 0.5]])
