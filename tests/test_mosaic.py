"""Both projections of augment.mosaic: crops land where the labels say (also at the seam and near the poles), and
extracting a crop then pasting it back reproduces the region."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from augment import mosaic, perspective
from augment.crops import procedural_sprite
from av_seld import geometry as g

W, H = 256, 128


def _sphere_centroid(weight: np.ndarray) -> tuple[float, float]:
    """Direction of the mean unit vector of the pixels, weighted by ``weight`` (H, W) × each pixel's solid angle."""
    height, width = weight.shape
    azimuth, elevation = g.pixel_center_directions(width, height)
    w = weight * np.cos(np.radians(elevation))
    mean = (g.sph_to_cart(azimuth, elevation) * w[..., None]).sum(axis=(0, 1))
    az, el = g.cart_to_sph(mean)
    return float(az), float(el)


def _disc(size: int = 64) -> np.ndarray:
    """A white disc with alpha, symmetric about the crop centre."""
    y, x = np.mgrid[:size, :size] + 0.5
    inside = np.hypot(x - size / 2, y - size / 2) < size * 0.45
    crop = np.zeros((size, size, 4), np.uint8)
    crop[inside] = 255
    return crop


@pytest.mark.parametrize("azimuth, elevation", [(0, 0), (179, 0), (-179, 0), (-180, 10), (179, 60), (-179, -60),
                                                (40, 60), (-120, -60), (90, 80), (10, -85), (135, 89)])
@pytest.mark.parametrize("shape", ["square", "disc"])
def test_pasted_crop_centroid_is_the_label_direction(azimuth, elevation, shape):
    crop = np.full((24, 24, 4), 255, np.uint8) if shape == "square" else _disc()
    frame = np.zeros((H, W, 3), np.uint8)
    perspective.paste_crop(frame, crop, azimuth, elevation, fov_deg=30)
    alpha = frame[..., 0] / 255.0
    assert alpha.sum() > 50
    found = _sphere_centroid(alpha)
    assert g.angular_distance_deg(*found, azimuth, elevation) < 1.5, found


def test_footprint_wraps_across_the_seam_and_covers_the_pole():
    frame = np.zeros((H, W, 3), np.uint8)
    footprint = perspective.paste_crop(frame, np.full((16, 16, 4), 255, np.uint8), 180 - 1, 0, fov_deg=20)
    assert len(footprint.column_slices) == 2
    assert frame[H // 2, 0, 0] == 255 and frame[H // 2, W - 1, 0] == 255  # both sides of the seam
    assert frame[H // 2, W // 2, 0] == 0
    frame[:] = 0
    footprint = perspective.paste_crop(frame, np.full((16, 16, 4), 255, np.uint8), 30, 90, fov_deg=40)
    assert footprint.column_slices == (slice(0, W),) and footprint.row_start == 0
    assert (frame[0, :, 0] == 255).all()  # looking straight up, the top row is inside the crop all round
    assert frame[H // 2:].max() == 0


def test_paste_touches_only_the_footprint_and_blends_alpha():
    frame = np.full((H, W, 3), 100, np.uint8)
    crop = np.zeros((20, 20, 4), np.uint8)
    crop[..., 0] = 200
    crop[..., 3] = 128  # half transparent
    footprint = perspective.paste_crop(frame, crop, -45, 20, fov_deg=25)
    u, v = g.sph_to_equirect(-45, 20, W, H)
    assert frame[int(v), int(u), 0] == pytest.approx(150, abs=1)  # 200·½ + 100·½
    assert frame[int(v), int(u), 1] == pytest.approx(50, abs=1)
    outside = np.ones((H, W), bool)
    outside[footprint.row_start:footprint.row_stop, footprint.column_slices[0]] = False
    assert (frame[outside] == 100).all()


def test_camera_basis_is_right_handed_and_points_at_the_direction():
    for azimuth, elevation in [(0, 0), (90, 0), (-150, 45), (20, 90), (20, -90)]:
        basis = perspective.camera_basis(azimuth, elevation)
        np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(basis[0], g.sph_to_cart(azimuth, elevation), atol=1e-12)
        np.testing.assert_allclose(np.cross(basis[1], basis[0]), basis[2], atol=1e-12)
    # Facing front, the crop's right is the viewer's right: azimuth -90 (the right quarter of the equirect frame).
    np.testing.assert_allclose(perspective.camera_basis(0, 0)[1], g.sph_to_cart(-90, 0), atol=1e-12)


def test_extracted_crop_is_upright_and_not_mirrored():
    """A pattern pasted with its red half on the left and blue on top comes back the same way round."""
    crop = np.zeros((32, 32, 4), np.uint8)
    crop[..., 3] = 255
    crop[:, :16, 0] = 255  # left half red
    crop[:16, :, 2] = 255  # top half blue
    frame = np.zeros((H, W, 3), np.uint8)
    perspective.paste_crop(frame, crop, 100, -30, fov_deg=40)
    back = perspective.extract_perspective(frame, 100, -30, fov_deg=40, crop_width=32)
    assert back[16, 4, 0] > 200 and back[16, 28, 0] < 50
    assert back[4, 16, 2] > 200 and back[28, 16, 2] < 50
    # On the equirect frame, "left" of the crop is larger azimuth (to the left in the image).
    u, v = g.sph_to_equirect(100, -30, W, H)
    assert frame[int(v) + 3, int(u) - 3, 0] > 200 and frame[int(v) + 3, int(u) + 3, 0] < 50


@pytest.mark.parametrize("azimuth, elevation", [(0, 0), (179, 10), (-60, 60), (120, -60)])
def test_extract_then_paste_round_trip_reproduces_the_region(azimuth, elevation):
    """Crop a textured frame at a direction, paste it back at the same direction: the footprint matches the frame."""
    width, height = 512, 256
    frame = mosaic.procedural_room(width, height, np.random.default_rng(3))
    sprite = procedural_sprite(8, np.random.default_rng(0), size=40)
    perspective.paste_crop(frame, sprite, azimuth + 3, elevation - 2, fov_deg=25)  # an object in the view
    fov, size = 40.0, 80  # about the frame's own pixel density at the centre: 40° ≈ 57 px, so no detail is lost
    crop = perspective.extract_perspective(frame, azimuth, elevation, fov, size)
    rgba = np.concatenate([crop, np.full((size, size, 1), 255, np.uint8)], axis=-1)
    pasted = np.zeros_like(frame)
    footprint = perspective.paste_crop(pasted, rgba, azimuth, elevation, fov)
    # Compare the pixels well inside the crop (the rim is blended with the black canvas).
    probe = np.zeros((height, width, 3), np.uint8)
    perspective.paste_crop(probe, np.full((size - 8, size - 8, 4), 255, np.uint8), azimuth, elevation,
                      np.degrees(2 * np.arctan(np.tan(np.radians(fov / 2)) * (size - 8) / size)))
    mask = probe[..., 0] == 255
    assert mask.sum() > 500
    error = np.abs(pasted[mask].astype(int) - frame[mask].astype(int))
    assert error.mean() < 4 and np.percentile(error, 95) < 20, (error.mean(), np.percentile(error, 95))
    assert footprint.row_stop > footprint.row_start


def test_slerp_follows_the_great_circle():
    a, b = g.sph_to_cart(0, 0), g.sph_to_cart(90, 0)
    az, el = g.cart_to_sph(mosaic.slerp(a, b, 0.5))
    assert (float(az), float(el)) == pytest.approx((45, 0), abs=1e-9)
    a, b = g.sph_to_cart(170, 0), g.sph_to_cart(-170, 0)  # across the seam: the short way round
    az, _ = g.cart_to_sph(mosaic.slerp(a, b, 0.5))
    assert abs(float(az)) == pytest.approx(180, abs=1e-9)
    np.testing.assert_allclose(mosaic.slerp(a, a, 0.3), a)


def test_procedural_room_is_deterministic_and_varies_with_the_seed():
    one = mosaic.procedural_room(W, H, np.random.default_rng(1))
    assert one.shape == (H, W, 3) and one.dtype == np.uint8
    np.testing.assert_array_equal(one, mosaic.procedural_room(W, H, np.random.default_rng(1)))
    assert np.abs(one.astype(int) - mosaic.procedural_room(W, H, np.random.default_rng(2))).mean() > 5
    # Seamless: the two edge columns differ no more than neighbouring columns elsewhere do.
    seam = np.abs(one[:, 0].astype(int) - one[:, -1].astype(int)).mean()
    neighbours = np.abs(np.diff(one.astype(int), axis=1)).mean(axis=(0, 2))
    assert seam <= np.percentile(neighbours, 99) + 2


def _rows(*rows):
    return [np.array(col) for col in zip(*rows)]  # frame, class, source, azimuth, elevation


def _white_disc(class_index, rng):
    return _disc(48)


def _render(rows, num_frames, fps=30.0, config=mosaic.MosaicConfig(flip_probability=0.0), seed=0):
    segments = mosaic.plan_segments(*rows, draw_crop=_white_disc, rng=np.random.default_rng(seed), width=W,
                                    config=config, bgr=False)
    background = np.zeros((H, W, 3), np.uint8)
    frames = mosaic.render_mosaic_frames(segments, itertools.repeat(background), num_frames, fps, config)
    return segments, [f.copy() for f in frames]


def test_renderer_shows_each_label_at_its_direction_on_the_frame_read_for_it():
    # A static source at the seam, one at θ = 60, and a source moving 3° per label frame.
    rows = []
    for n in range(10):
        rows += [(n, 1, 0, 179, 0), (n, 4, 0, -100, 60), (n, 8, 2, -30 + 3 * n, -20)]
    segments, frames = _render(_rows(*rows), num_frames=30)
    assert len(segments) == 3 and len(frames) == 30
    for n in (0, 4, 9):
        frame = frames[n * 3]  # video frame read for label n at 30 fps (timing.video_frame_for_label_frame)
        for _, _, _, azimuth, elevation in [r for r in rows if r[0] == n]:
            near = g.angular_distance_deg(*g.pixel_center_directions(W, H), azimuth, elevation) < 25
            found = _sphere_centroid(frame[..., 0] * near / 255.0)
            assert g.angular_distance_deg(*found, azimuth, elevation) < 1.5
    # Between labels the moving source glides: one video frame after label 4, it is a third of the way to label 5.
    near = g.angular_distance_deg(*g.pixel_center_directions(W, H), -18, -20) < 25
    azimuth, elevation = _sphere_centroid(frames[13][..., 0] * near / 255.0)
    assert g.angular_distance_deg(azimuth, elevation, -17, -20) < 1.0


def test_events_keep_their_crop_and_overlap_shrinks_them():
    rows = [(n, 3, 7, 10, 0) for n in range(0, 5)] + [(n, 3, 7, 10, 0) for n in range(8, 12)]
    rows += [(n, 5, 1, -90, 0) for n in range(8, 12)] + [(n, 6, 1, 90, 0) for n in range(8, 12)]
    draws = []

    def draw(c, rng):
        draws.append(c)
        return procedural_sprite(c, rng, size=32)

    config = mosaic.MosaicConfig(fov_range_deg=(30, 30), overlap_shrink=0.25)
    segments = mosaic.plan_segments(*_rows(*rows), draw_crop=draw, rng=np.random.default_rng(0), width=W,
                                    config=config)
    assert sorted(draws) == [3, 5, 6]  # one crop per (class, source) track
    phone = [s for s in segments if s.class_index == 3]
    assert [list(s.frames) for s in phone] == [[0, 1, 2, 3, 4], [8, 9, 10, 11]]
    assert phone[0].fov_deg == pytest.approx(30) and phone[1].fov_deg == pytest.approx(30 / 1.5)  # alone, then 3
    # The same track looks the same in both runs (same crop, same flip), only smaller.
    assert phone[1].crop.shape[1] < phone[0].crop.shape[1]
    again = mosaic.plan_segments(*_rows(*rows), draw_crop=lambda c, r: procedural_sprite(c, r, size=32),
                                 rng=np.random.default_rng(0), width=W, config=config)
    for a, b in zip(segments, again):
        np.testing.assert_array_equal(a.crop, b.crop)


def test_shared_calibration_panorama_crop_at_the_blue_disc(shared_data_dir):
    cv2 = pytest.importorskip("cv2")
    path = shared_data_dir / "panoramas" / "calib_testRoom1_2048x1024.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    crop = perspective.extract_perspective(image, 0, 0, fov_deg=30, crop_width=64).astype(int)
    centre = crop[24:40, 24:40]
    assert (centre[..., 2] > 200).mean() > 0.9 and (centre[..., 0] < 80).mean() > 0.9  # the bright blue disc at φ = 0
    back = perspective.extract_perspective(image, -90, 0, fov_deg=30, crop_width=64).astype(int)[24:40, 24:40]
    assert (back[..., 0] > 200).mean() > 0.9 and (back[..., 2] < 80).mean() > 0.9  # the bright red disc at φ = −90
