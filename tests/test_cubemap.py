"""The cubemap route (augment.cubemap, py360convert): py360convert's orientation pinned against docs/conventions.md,
crops land at their label directions on both routes (seam and ±60° elevation included), the routes agree, and
round trips through the cube reproduce the frame."""

from __future__ import annotations

import itertools

import numpy as np
import py360convert
import pytest

from augment import cubemap, mosaic, perspective
from av_seld import geometry as g

W, H = 256, 128
# Seam on both sides, ±60° elevation, face edges (45°), the up and down faces, near a pole.
DIRECTIONS = [(0, 0), (179, 0), (-179, 0), (-180, 10), (179, 60), (-179, -60), (40, 60), (-120, -60), (45, 0),
              (30, 10), (-100, 20), (90, 80), (10, -85)]


def _sphere_centroid(weight: np.ndarray) -> tuple[float, float]:
    """Direction of the mean unit vector of the pixels, weighted by ``weight`` (H, W) × each pixel's solid angle."""
    azimuth, elevation = g.pixel_center_directions(weight.shape[1], weight.shape[0])
    w = weight * np.cos(np.radians(elevation))
    az, el = g.cart_to_sph((g.sph_to_cart(azimuth, elevation) * w[..., None]).sum(axis=(0, 1)))
    return float(az), float(el)


def _disc(size: int) -> np.ndarray:
    y, x = np.mgrid[:size, :size] + 0.5
    crop = np.zeros((size, size, 4), np.uint8)
    crop[np.hypot(x - size / 2, y - size / 2) < size * 0.45] = 255
    return crop


def _paste(route: str, frame, crop, azimuth, elevation, fov_deg):
    paste = perspective.paste_crop if route == "perspective" else cubemap.paste_crop_cubemap
    return paste(frame, crop, azimuth, elevation, fov_deg)


def _extract(route: str, frame, azimuth, elevation, fov_deg, size):
    extract = perspective.extract_perspective if route == "perspective" else cubemap.extract_cubemap
    return extract(frame, azimuth, elevation, fov_deg, size)


# ------------------------------------------------------------------------------------ py360convert's conventions


@pytest.mark.parametrize("azimuth, elevation, face", [(0, 0, "front"), (-90, 0, "right"), (180, 0, "back"),
                                                      (90, 0, "left"), (0, 90, "up"), (0, -90, "down"),
                                                      (20, 10, "front"), (-70, -30, "right"), (150, 35, "back"),
                                                      (60, 30, "left"), (120, 60, "up"), (-30, -70, "down")])
def test_face_position_is_where_e2c_shows_a_direction(azimuth, elevation, face):
    """A marker pasted at (φ, θ) appears on the face and at the pixel that face_position names."""
    frame = np.zeros((H, W, 3), np.uint8)
    perspective.paste_crop(frame, _disc(16), azimuth, elevation, fov_deg=8)
    face_w = 64
    faces = py360convert.e2c(frame, face_w=face_w, cube_format="list")
    index, column, row = cubemap.face_position(azimuth, elevation, face_w)
    assert cubemap.FACES[index] == face
    weight = faces[index][..., 0].astype(float)
    assert weight.sum() > 0.5 * sum(f[..., 0].sum() for f in faces)  # the marker is (mostly) on that face
    rows, columns = np.mgrid[:face_w, :face_w]
    found = (weight * columns).sum() / weight.sum(), (weight * rows).sum() / weight.sum()
    assert found == pytest.approx((column, row), abs=0.6)


def test_e2p_looks_where_our_perspective_crop_looks():
    """py360convert's e2p with u = −φ, v = θ and our pixel-edge field of view gives our perspective crop."""
    frame = mosaic.procedural_room(W, H, np.random.default_rng(0))
    for azimuth, elevation in [(60, 30), (-45, 0), (135, -20), (-100, 70)]:
        ours = perspective.extract_perspective(frame, azimuth, elevation, 40, 48).astype(int)
        theirs = cubemap.extract_cubemap(frame, azimuth, elevation, 40, 48).astype(int)  # face edge or top: e2p
        assert np.abs(ours - theirs).mean() < 1.0, (azimuth, elevation)


# ------------------------------------------------------------------------------------ pasting


@pytest.mark.parametrize("azimuth, elevation", DIRECTIONS)
def test_pasted_crop_centroid_is_the_label_direction_on_both_routes(azimuth, elevation):
    centroids = {}
    for route in ("perspective", "cubemap"):
        frame = np.zeros((H, W, 3), np.uint8)
        _paste(route, frame, _disc(32), azimuth, elevation, 30)
        alpha = frame[..., 0] / 255.0
        assert alpha.sum() > 30
        centroids[route] = _sphere_centroid(alpha)
        assert g.angular_distance_deg(*centroids[route], azimuth, elevation) < 1.5, (route, centroids[route])
    assert g.angular_distance_deg(*centroids["perspective"], *centroids["cubemap"]) < 0.5


@pytest.mark.parametrize("azimuth, elevation", [(0, 0), (179, 0), (-60, 60), (120, -60)])
def test_the_two_routes_paste_the_same_picture(azimuth, elevation):
    """A textured, non-symmetric crop: same place, same orientation (not mirrored, not turned), same size."""
    crop = mosaic.procedural_room(64, 32, np.random.default_rng(1))[:, 16:48]
    crop = np.concatenate([crop, np.full((32, 32, 1), 255, np.uint8)], axis=-1)
    crop[:, :8, :3] = (255, 0, 0)  # a red band on the left edge
    direct, cube = np.zeros((2, H, W, 3), np.uint8)
    perspective.paste_crop(direct, crop, azimuth, elevation, 40)
    cubemap.paste_crop_cubemap(cube, crop, azimuth, elevation, 40)
    covered = (direct.max(axis=-1) > 0) | (cube.max(axis=-1) > 0)
    error = np.abs(direct.astype(int) - cube)[covered]
    assert error.mean() < 12, error.mean()
    red = (cube[..., 0] > 200) & (cube[..., 1] < 60)
    assert red.sum() > 20 and (red & (direct[..., 0] > 200) & (direct[..., 1] < 60)).sum() > 0.7 * red.sum()


def test_layer_is_converted_once_and_a_too_tall_crop_is_refused():
    layer = cubemap.cube_layer(_disc(24), 30, W)
    assert layer.pixels.shape[2] == 4 and layer.pixels.shape[0] < layer.grid_width // 2
    a, b = np.zeros((2, H, W, 3), np.uint8)
    cubemap.paste_layer(a, layer, 100, -20)
    cubemap.paste_crop_cubemap(b, _disc(24), 100, -20, 30)
    np.testing.assert_array_equal(a, b)
    assert not cubemap.fits_on_face(20, 60, 40)  # 60 px tall at f ≈ 27 px: beyond 45° from the centre
    with pytest.raises(ValueError, match="does not fit on one cube face"):
        cubemap.cube_layer(np.full((60, 20, 4), 255, np.uint8), 40, W)


# ------------------------------------------------------------------------------------ extracting


@pytest.mark.parametrize("azimuth, elevation", DIRECTIONS)
def test_extracted_crop_is_centred_on_the_label_direction_on_both_routes(azimuth, elevation):
    """A small disc pasted at (φ, θ): its centroid in the crop maps back to (φ, θ) through the crop's camera."""
    frame = np.zeros((H, W, 3), np.uint8)
    perspective.paste_crop(frame, _disc(16), azimuth, elevation, fov_deg=10)
    fov, size = 40.0, 48
    f = perspective.focal_length_px(fov, size)
    basis = perspective.camera_basis(azimuth, elevation)
    rows, columns = np.mgrid[:size, :size] + 0.5
    for route in ("perspective", "cubemap"):
        crop = _extract(route, frame, azimuth, elevation, fov, size)[..., 0].astype(float)
        assert crop.sum() > 0
        x, y = (crop * columns).sum() / crop.sum(), (crop * rows).sum() / crop.sum()
        ray = basis[0] + (x - size / 2) / f * basis[1] + (size / 2 - y) / f * basis[2]
        assert g.angular_distance_deg(*g.cart_to_sph(ray), azimuth, elevation) < 1.5, route


def test_extract_cubemap_cuts_a_side_face_window_and_turns_elsewhere():
    """Near a side face's centre the crop is the e2c window; off it, at an edge or on the top it is e2p's view."""
    frame = mosaic.procedural_room(W, H, np.random.default_rng(2))
    fov, size = 30.0, 32
    face_w = int(round(2 * perspective.focal_length_px(fov, size) + 1))
    index, column, row = cubemap.face_position(-95, 5, face_w)  # 7° from the right face's centre
    window = cubemap.extract_cubemap(frame, -95, 5, fov, size)
    faces = py360convert.e2c(frame, face_w=face_w, cube_format="list")
    top, left = int(round(row - (size - 1) / 2)), int(round(column - (size - 1) / 2))
    assert np.abs(window.astype(int) - faces[index][top:top + size, left:left + size]).mean() < 8
    for azimuth, elevation in [(45, 0), (30, 70), (150, 20)]:
        turned = py360convert.e2p(frame, fov_deg=fov, u_deg=-azimuth, v_deg=elevation, out_hw=(size, size))
        assert np.abs(cubemap.extract_cubemap(frame, azimuth, elevation, fov, size).astype(int) - turned).mean() < 3


# ------------------------------------------------------------------------------------ round trips, small frames


@pytest.mark.parametrize("azimuth, elevation", [(0, 0), (179, 10), (-60, 60), (120, -60)])
def test_round_trip_through_the_cube_on_a_small_frame(azimuth, elevation):
    """64 × 128 frame → cubemap crop → back through the cube at the same direction: the region comes back."""
    width, height = 128, 64
    frame = mosaic.procedural_room(width, height, np.random.default_rng(5))
    fov, size = 60.0, 24  # about the frame's own pixel density: 60° ≈ 21 px
    crop = cubemap.extract_cubemap(frame, azimuth, elevation, fov, size)
    rgba = np.concatenate([crop, np.full((size, size, 1), 255, np.uint8)], axis=-1)
    pasted = np.zeros_like(frame)
    cubemap.paste_crop_cubemap(pasted, rgba, azimuth, elevation, fov)
    inner = np.zeros_like(frame)  # well inside the crop: its rim is blended with the black canvas
    perspective.paste_crop(inner, np.full((size - 8, size - 8, 4), 255, np.uint8), azimuth, elevation,
                      np.degrees(2 * np.arctan(np.tan(np.radians(fov / 2)) * (size - 8) / size)))
    mask = inner[..., 0] == 255
    assert mask.sum() > 40
    error = np.abs(pasted[mask].astype(int) - frame[mask])
    assert error.mean() < 8, error.mean()


@pytest.mark.parametrize("azimuth, elevation", [(0, 0), (20, 10), (-30, -25)])
def test_c2e_reads_the_front_face_at_half_face_w_times_one_plus_tan(azimuth, elevation):
    """c2e onto a 64 × 128 grid: a dot on the front face at index face_w/2 · (1 + t) (the convention cube_layer
    relies on, half a pixel off e2c's) comes out at its direction; py360convert's naive pixel centre would not."""
    face_w, width, height = 48, 128, 64
    xyz = g.sph_to_cart(azimuth, elevation)
    t_right, t_up = -xyz[1] / xyz[0], xyz[2] / xyz[0]
    rows, columns = np.mgrid[:face_w, :face_w]
    # c2e's grid: column i at u = −π + 2π i / (w − 1), row j at v = π/2 − π j / (h − 1); u = −φ.
    az, el = np.meshgrid(180 - 360 * np.arange(width) / (width - 1), 90 - 180 * np.arange(height) / (height - 1))
    errors = []
    for shift in (0.0, -0.5):  # ours, then the pixel-centre reading (index = continuous position − 1/2)
        centre = face_w / 2 * (1 + t_right) + shift, face_w / 2 * (1 - t_up) + shift
        front = (np.hypot(columns - centre[0], rows - centre[1]) < 3).astype(np.float32)
        grid = py360convert.c2e([front] + [np.zeros_like(front)] * 5, h=height, w=width, cube_format="list")
        w = grid * np.cos(np.radians(el))
        found = g.cart_to_sph((g.sph_to_cart(az, el) * w[..., None]).sum(axis=(0, 1)))
        errors.append(g.angular_distance_deg(*found, azimuth, elevation))
    assert errors[0] < 0.6 and errors[1] > errors[0] + 0.8, errors


# ------------------------------------------------------------------------------------ the renderer


def test_renderer_cubemap_route_shows_each_label_at_its_direction():
    rows = []
    for n in range(10):
        rows += [(n, 1, 0, 179, 0), (n, 4, 0, -100, 60), (n, 8, 2, -30 + 3 * n, -20)]
    columns = [np.array(c) for c in zip(*rows)]
    frames = {}
    for projection in ("perspective", "cubemap"):
        config = mosaic.MosaicConfig(flip_probability=0.0, projection=projection)
        segments = mosaic.plan_segments(*columns, draw_crop=lambda c, rng: _disc(48), rng=np.random.default_rng(0),
                                        width=W, config=config, bgr=False)
        background = np.zeros((H, W, 3), np.uint8)
        frames[projection] = [f.copy() for f in mosaic.render_mosaic_frames(segments, itertools.repeat(background),
                                                                            30, 30.0, config)]
    directions = g.pixel_center_directions(W, H)
    for n in (0, 4, 9):
        for _, _, _, azimuth, elevation in [r for r in rows if r[0] == n]:
            near = g.angular_distance_deg(*directions, azimuth, elevation) < 25
            found = _sphere_centroid(frames["cubemap"][n * 3][..., 0] * near / 255.0)
            assert g.angular_distance_deg(*found, azimuth, elevation) < 1.5
    difference = np.abs(np.stack(frames["cubemap"]).astype(int) - np.stack(frames["perspective"])).mean()
    assert 0 < difference < 2


def test_projection_is_checked():
    with pytest.raises(ValueError, match="projection must be one of perspective, cubemap"):
        mosaic.MosaicConfig(projection="fisheye")
