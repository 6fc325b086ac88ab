"""Tests of av_seld.geometry against docs/conventions.md ("Directions", "Equirectangular 360° frames") and real
360° images."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from av_seld import geometry as g

SIZES = [(640, 320), (1920, 960), (36, 18)]
KINDS = ["numpy-float64", "numpy-float32", "torch-float64", "torch-float32"]
# The seam (φ = -180 and just below +180) and the poles, where conversions are easiest to get wrong.
SPECIAL_AZ = [-180.0, 179.999, -179.999, 0.0, 90.0, -90.0, 30.0, -180.0, 179.999]
SPECIAL_EL = [0.0, 0.0, 45.0, 90.0, -90.0, 89.999, -89.999, 90.0, -90.0]


def _as_kind(values, kind: str):
    library, dtype = kind.split("-")
    if library == "numpy":
        return np.asarray(values, dtype=dtype)
    return torch.as_tensor(np.asarray(values), dtype=getattr(torch, dtype))


def _to_numpy(x) -> np.ndarray:
    return x.double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def _assert_same_kind(result, like) -> None:
    if isinstance(like, torch.Tensor):
        assert isinstance(result, torch.Tensor) and result.dtype == like.dtype and result.device == like.device
    else:
        assert isinstance(result, np.ndarray) and result.dtype == like.dtype


def _random_directions(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Uniform directions on the sphere plus the seam and pole cases, in degrees (float64)."""
    rng = np.random.default_rng(seed)
    azimuth = rng.uniform(-180, 180, n)
    elevation = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return np.concatenate([azimuth, SPECIAL_AZ]), np.concatenate([elevation, SPECIAL_EL])


def _azimuth_error(az1, az2) -> np.ndarray:
    return np.abs(g.wrap_azimuth(np.asarray(az1) - np.asarray(az2)))


def _tolerance(kind: str) -> float:
    return 1e-3 if kind.endswith("float32") else 1e-9


# ----------------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", KINDS)
def test_sph_cart_sph_round_trip(kind):
    az_ref, el_ref = _random_directions(0)
    az_in, el_in = _as_kind(az_ref, kind), _as_kind(el_ref, kind)
    xyz = g.sph_to_cart(az_in, el_in)
    assert tuple(xyz.shape) == (len(az_ref), 3)
    _assert_same_kind(xyz, az_in)
    np.testing.assert_allclose(np.linalg.norm(_to_numpy(xyz), axis=-1), 1.0, atol=1e-6)

    az, el = g.cart_to_sph(xyz)
    _assert_same_kind(az, az_in)
    _assert_same_kind(el, az_in)
    az, el = _to_numpy(az), _to_numpy(el)
    assert np.all((az >= -180) & (az < 180))
    np.testing.assert_allclose(el, el_ref, atol=_tolerance(kind))
    # At the poles every azimuth is the same direction; elsewhere it must come back.
    off_pole = np.abs(el_ref) < 85
    assert np.all(_azimuth_error(az[off_pole], az_ref[off_pole]) < _tolerance(kind))


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_sph_equirect_sph_round_trip(kind, width, height):
    az_ref, el_ref = _random_directions(width)
    az_in, el_in = _as_kind(az_ref, kind), _as_kind(el_ref, kind)
    u, v = g.sph_to_equirect(az_in, el_in, width, height)
    _assert_same_kind(u, az_in)
    assert np.all((_to_numpy(u) >= 0) & (_to_numpy(u) < width))
    assert np.all((_to_numpy(v) >= 0) & (_to_numpy(v) <= height))

    az, el = g.equirect_to_sph(u, v, width, height)
    _assert_same_kind(az, az_in)
    az, el = _to_numpy(az), _to_numpy(el)
    assert np.all((az >= -180) & (az < 180))
    np.testing.assert_allclose(el, el_ref, atol=_tolerance(kind))
    off_pole = np.abs(el_ref) < 90
    assert np.all(_azimuth_error(az[off_pole], az_ref[off_pole]) < _tolerance(kind))


@pytest.mark.parametrize("width, height", SIZES)
def test_pixel_centres_fall_in_their_own_pixel(width, height):
    az, el = g.pixel_center_directions(width, height)
    assert az.shape == el.shape == (height, width)
    i, j = g.equirect_pixel(az, el, width, height)
    columns, rows = np.meshgrid(np.arange(width), np.arange(height))
    np.testing.assert_array_equal(i, columns)
    np.testing.assert_array_equal(j, rows)
    # Top-left pixel centre: just right of the seam (φ just below +180) and just below the zenith.
    assert az[0, 0] == pytest.approx(180 - 180 / width)
    assert el[0, 0] == pytest.approx(90 - 90 / height)


# ------------------------------------------------------------------------------ fixed points of docs/conventions.md


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize(
    "azimuth, elevation, u_fraction, v_fraction",
    [
        (0.0, 0.0, 0.5, 0.5),  # front: centre of the image
        (90.0, 0.0, 0.25, 0.5),  # left: left quarter
        (-90.0, 0.0, 0.75, 0.5),  # right: right quarter
        (180.0, 0.0, 0.0, 0.5),  # back: the seam, u = 0 (not W)
        (-180.0, 0.0, 0.0, 0.5),
        (0.0, 90.0, 0.5, 0.0),  # up: top row
        (0.0, -90.0, 0.5, 1.0),  # down: bottom edge
    ],
)
def test_equirect_fixed_points(azimuth, elevation, u_fraction, v_fraction, width, height):
    for az, el in [(azimuth, elevation), (np.array([azimuth]), np.array([elevation])), (torch.tensor([azimuth]), elevation)]:
        u, v = g.sph_to_equirect(az, el, width, height)
        assert _to_numpy(u).item() == pytest.approx(u_fraction * width, abs=1e-9)
        assert _to_numpy(v).item() == pytest.approx(v_fraction * height, abs=1e-9)


@pytest.mark.parametrize("width, height", SIZES)
def test_equirect_pixel_edges(width, height):
    assert g.equirect_pixel(0.0, 0.0, width, height) == (width // 2, height // 2)
    assert g.equirect_pixel(0.0, 90.0, width, height)[1] == 0
    assert g.equirect_pixel(0.0, -90.0, width, height)[1] == height - 1  # v = H is clipped into the last row
    assert g.equirect_pixel(-180.0, 0.0, width, height)[0] == 0
    assert g.equirect_pixel(179.999, 0.0, width, height)[0] == 0
    assert g.equirect_pixel(-179.999, 0.0, width, height)[0] == width - 1
    i, j = g.equirect_pixel(torch.tensor([90.0, -90.0]), torch.tensor([0.0, -90.0]), width, height)
    assert i.dtype == torch.int64 and i.tolist() == [width // 4, 3 * width // 4] and j.tolist() == [height // 2, height - 1]


@pytest.mark.parametrize(
    "azimuth, elevation, expected",
    [(0, 0, [1, 0, 0]), (90, 0, [0, 1, 0]), (0, 90, [0, 0, 1]), (-90, 0, [0, -1, 0]), (180, 0, [-1, 0, 0]), (0, -90, [0, 0, -1])],
)
def test_unit_vectors(azimuth, elevation, expected):
    np.testing.assert_allclose(g.sph_to_cart(float(azimuth), float(elevation)), expected, atol=1e-12)
    az, el = g.cart_to_sph(np.array(expected, dtype=float))
    assert float(el) == pytest.approx(elevation)
    if abs(elevation) != 90:
        assert float(g.wrap_azimuth(az - azimuth)) == pytest.approx(0.0)


def test_cart_to_sph_any_length_and_zero_vector():
    az, el = g.cart_to_sph(np.array([[0.0, 5.0, 5.0], [-3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-0.0, 0.0, -0.0]]))
    np.testing.assert_allclose(az, [90, -180, 0, 0])
    np.testing.assert_allclose(el, [45, 0, 0, 0])
    az, el = g.cart_to_sph(torch.zeros(2, 3, dtype=torch.float32))
    assert az.shape == (2,) and az.dtype == torch.float32 and az.abs().max() == 0 and el.abs().max() == 0


def test_sph_to_cart_broadcasts():
    xyz = g.sph_to_cart(np.array([[0.0], [90.0]]), np.array([0.0, 45.0, 90.0]))
    assert xyz.shape == (2, 3, 3)
    np.testing.assert_allclose(xyz[1, 0], [0, 1, 0], atol=1e-12)


@pytest.mark.parametrize(
    "azimuth, expected",
    [(0.0, 0.0), (180.0, -180.0), (-180.0, -180.0), (540.0, -180.0), (-190.0, 170.0), (359.5, -0.5), (-1e-14 - 180, -180.0)],
)
def test_wrap_azimuth(azimuth, expected):
    assert g.wrap_azimuth(azimuth) == pytest.approx(expected, abs=1e-9)
    wrapped = g.wrap_azimuth(torch.tensor([azimuth], dtype=torch.float64))
    assert wrapped.dtype == torch.float64 and wrapped.item() == pytest.approx(expected, abs=1e-9)


def test_wrap_azimuth_stays_in_range_for_tiny_negatives():
    values = -180 - np.array([1e-14, 1e-12, 1e-300, 0.0])
    wrapped = g.wrap_azimuth(values)
    assert np.all((wrapped >= -180) & (wrapped < 180))
    u = g.wrap_u(np.array([-1e-14, -1e-300, 640.0, -1.0]), 640)
    assert np.all((u >= 0) & (u < 640)) and u[-1] == 639


def test_import_does_not_load_torch():
    code = "import sys, av_seld.geometry; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------------ angular distance


def _dcase_polar_distance(az1, el1, az2, el2):
    """The official DCASE scorer, verbatim: degrees → radians by ``* np.pi / 180``, then its formula."""
    az1, el1, az2, el2 = (np.asarray(x, dtype=np.float64) * np.pi / 180 for x in (az1, el1, az2, el2))
    dist = np.sin(el1) * np.sin(el2) + np.cos(el1) * np.cos(el2) * np.cos(np.abs(az1 - az2))
    dist = np.clip(dist, -1, 1)
    return np.arccos(dist) * 180 / np.pi


@pytest.mark.parametrize(
    "az1, el1, az2, el2, expected",
    [
        (0, 0, 0, 0, 0),
        (0, 0, 90, 0, 90),
        (0, 0, 180, 0, 180),
        (0, 0, 0, 90, 90),
        (0, 90, 0, -90, 180),
        (179, 0, -179, 0, 2),  # across the seam
        (-180, 0, 180, 0, 0),
        (45, 90, -135, 90, 0),  # at a pole azimuth is irrelevant
        (10, 20, 10, 25, 5),
    ],
)
def test_angular_distance_known_values(az1, el1, az2, el2, expected):
    assert g.angular_distance_deg(az1, el1, az2, el2) == pytest.approx(expected, abs=1e-6)
    assert g.angular_distance_deg(az2, el2, az1, el1) == pytest.approx(expected, abs=1e-6)
    v1, v2 = g.sph_to_cart(float(az1), float(el1)), g.sph_to_cart(float(az2), float(el2))
    # The scorer's Cartesian form adds 1e-10 under the root: identical unit vectors are 8e-4° apart there.
    assert g.angular_distance_xyz_deg(v1, v2) == pytest.approx(expected, abs=1e-3)


def test_angular_distance_matches_official_scorer_bit_for_bit():
    az1, el1 = _random_directions(1)
    az2, el2 = _random_directions(2)
    np.testing.assert_array_equal(g.angular_distance_deg(az1, el1, az2, el2), _dcase_polar_distance(az1, el1, az2, el2))


def test_angular_distance_symmetric_and_forms_agree():
    az1, el1 = _random_directions(3)
    az2, el2 = _random_directions(4)
    polar = g.angular_distance_deg(az1, el1, az2, el2)
    np.testing.assert_array_equal(polar, g.angular_distance_deg(az2, el2, az1, el1))

    v1, v2 = g.sph_to_cart(az1, el1), g.sph_to_cart(az2, el2)
    cartesian = g.angular_distance_xyz_deg(v1, v2)
    np.testing.assert_array_equal(cartesian, g.angular_distance_xyz_deg(v2, v1))
    # Near 0° and 180° arccos magnifies the scorer's 1e-10 norm guard, so compare well-separated pairs.
    separated = (polar > 1) & (polar < 179)
    assert separated.sum() > 400
    np.testing.assert_allclose(cartesian[separated], polar[separated], atol=1e-6, rtol=0)
    # Any vector length, as ACCDOA outputs are: 3× and 0.2× the unit vectors give the same distance.
    scaled = g.angular_distance_xyz_deg(3 * v1, 0.2 * v2)
    np.testing.assert_allclose(scaled[separated], polar[separated], atol=1e-6, rtol=0)


def test_angular_distance_xyz_of_identical_unit_vectors_is_the_scorer_epsilon():
    v = g.sph_to_cart(np.array([0.0, 123.0]), np.array([0.0, -40.0]))
    # arccos(1 / (1 + 1e-10)) ≈ sqrt(2e-10) rad = 8.1e-4°: what the official scorer reports for a perfect DOA.
    np.testing.assert_allclose(g.angular_distance_xyz_deg(v, v), np.degrees(np.sqrt(2e-10)), rtol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_angular_distance_torch_equals_numpy(dtype):
    az1, el1 = _random_directions(5)
    az2, el2 = _random_directions(6)
    expected = g.angular_distance_deg(az1, el1, az2, el2)
    tensors = [torch.as_tensor(x, dtype=dtype) for x in (az1, el1, az2, el2)]
    polar = g.angular_distance_deg(*tensors)
    assert polar.dtype == dtype
    atol = 1e-9 if dtype == torch.float64 else 0.05  # float32 arccos near 0° and 180° is coarse
    np.testing.assert_allclose(polar.double().numpy(), expected, atol=atol, rtol=0)

    v1, v2 = g.sph_to_cart(az1, el1), g.sph_to_cart(az2, el2)
    cartesian = g.angular_distance_xyz_deg(torch.as_tensor(v1, dtype=dtype), torch.as_tensor(v2, dtype=dtype))
    assert cartesian.dtype == dtype
    np.testing.assert_allclose(cartesian.double().numpy(), g.angular_distance_xyz_deg(v1, v2), atol=atol, rtol=0)


# ------------------------------------------------------------------------------------------------- horizontal seam


@pytest.mark.parametrize(
    "u_from, u_to, width, expected",
    [
        (100.0, 150.0, 640, 50.0),
        (150.0, 100.0, 640, -50.0),
        (630.0, 10.0, 640, 20.0),  # right across the seam
        (10.0, 630.0, 640, -20.0),  # left across the seam
        (639.5, 0.5, 640, 1.0),
        (0.0, 320.0, 640, 320.0),  # half way round: +W/2, never -W/2
        (320.0, 0.0, 640, 320.0),
        (5.0, 645.0, 640, 0.0),  # unwrapped input
        (35.5, 0.5, 36, 1.0),
    ],
)
def test_horizontal_pixel_offset(u_from, u_to, width, expected):
    assert g.horizontal_pixel_offset(u_from, u_to, width) == pytest.approx(expected)
    offset = g.horizontal_pixel_offset(torch.tensor([u_from]), torch.tensor([u_to]), width)
    assert offset.dtype == torch.float32 and offset.item() == pytest.approx(expected)


def test_horizontal_pixel_offset_lands_on_target():
    rng = np.random.default_rng(7)
    width = 1920
    u_from, u_to = rng.uniform(-2 * width, 2 * width, (2, 1000))
    offset = g.horizontal_pixel_offset(u_from, u_to, width)
    assert np.all((offset > -width / 2) & (offset <= width / 2))
    np.testing.assert_allclose(g.wrap_u(u_from + offset, width), g.wrap_u(u_to, width), atol=1e-9)


@pytest.mark.gpu
def test_torch_device_is_preserved():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    az = torch.tensor([10.0, -170.0], device="cuda")
    for result in [g.sph_to_cart(az, 0.0), *g.sph_to_equirect(az, 5.0, 640, 320), *g.equirect_pixel(az, 5.0, 640, 320)]:
        assert result.device == az.device


# ---------------------------------------------------------------------------------- real 360° calibration images


def _read_calibration_image(shared_data_dir, source: str) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    path = shared_data_dir / source
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    if path.suffix == ".jpg":
        image = cv2.imread(str(path))
    else:
        capture = cv2.VideoCapture(str(path))
        _, image = capture.read()
        capture.release()
    assert image is not None, f"cannot read {path}"
    return image


def _object_direction(mask: np.ndarray, unit_vectors: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Direction of the solid-angle-weighted mean unit vector of a pixel mask: it does not care about the seam."""
    mean = (unit_vectors[mask] * weights[mask, None]).sum(axis=0)
    azimuth, elevation = g.cart_to_sph(mean)
    return float(azimuth), float(elevation)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "source", ["panoramas/calib_testRoom1_2048x1024.jpg", "video360/calib_testRoom1_1920x960_12s.mp4"]
)
def test_calibration_room_axis_objects(shared_data_dir, source):
    """The googlevr testRoom1 objects sit where docs/conventions.md puts the axes (established by looking at the image).

    Bright blue disc: image centre → +x, front (φ 0, θ 0).    Dark red square: left quarter → +y, left (φ +90).
    Bright red disc: right quarter → −y, right (φ −90).      Navy square: split by the seam → −x, back (φ ±180).
    Bright green ceiling cap → +z (θ +90).                   Dark green floor cap → −z (θ −90).
    This matches the room's own colour code read as RGB = XYZ, bright = positive, in a left-handed y-up,
    z-forward frame (Unity's): red to the right, green up, blue forward. The 90° grid lines (u = 0, W/4, W/2,
    3W/4) and the horizon (v = H/2) fix the scale; the left/right sign rests on the image being seen from inside.
    """
    image = _read_calibration_image(shared_data_dir, source).astype(np.int16)
    height, width = image.shape[:2]
    assert width == 2 * height
    blue, green, red = image[..., 0], image[..., 1], image[..., 2]
    azimuth, elevation = g.pixel_center_directions(width, height)
    unit_vectors = g.sph_to_cart(azimuth, elevation)
    weights = np.cos(np.radians(elevation))  # solid angle of a pixel

    def dark(channel):
        return (channel > 90) & (channel < 180)

    masks = {
        "blue disc": (blue > 200) & (green < 60) & (red < 60),
        "dark red square": dark(red) & (green < 50) & (blue < 50),
        "red disc": (red > 200) & (green < 60) & (blue < 60),
        "navy square": dark(blue) & (green < 50) & (red < 50),
        "green ceiling": (green > 200) & (red < 80) & (blue < 80),
        "dark green floor": dark(green) & (red < 60) & (blue < 60),
    }
    expected = {
        "blue disc": (0, 0),
        "dark red square": (90, 0),
        "red disc": (-90, 0),
        "navy square": (-180, 0),
        "green ceiling": (0, 90),
        "dark green floor": (0, -90),
    }
    for name, mask in masks.items():
        assert mask.sum() > 1e-3 * mask.size, f"{name} not found in {source}"
        found = _object_direction(mask, unit_vectors, weights)
        error = g.angular_distance_deg(*found, *expected[name])
        assert error < 2, f"{name} at (φ, θ) = {found}, expected {expected[name]} (off by {error:.2f}°)"

    # The navy square straddles the seam: half of it on each edge of the image.
    navy_columns = np.nonzero(masks["navy square"].any(axis=0))[0]
    assert navy_columns.min() == 0 and navy_columns.max() == width - 1


def _line_angles(whiteness: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Angles of the pixel rows/columns that are white along most of a band (the grid lines)."""
    return angles[whiteness > 0.9]


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "source", ["panoramas/calib_testRoom1_2048x1024.jpg", "video360/calib_testRoom1_1920x960_12s.mp4"]
)
def test_calibration_room_grid_lines(shared_data_dir, source):
    """The room's bright grid lines, every 15°, fall on multiples of 15° of azimuth and elevation (scale and offset)."""
    image = _read_calibration_image(shared_data_dir, source).mean(axis=-1)
    height, width = image.shape
    white = image > 220
    azimuth, _ = g.equirect_to_sph(np.arange(width) + 0.5, 0.0, width, height)
    _, elevation = g.equirect_to_sph(0.0, np.arange(height) + 0.5, width, height)
    wall_rows = slice(int(0.2 * height), int(0.35 * height))  # elevations 54° to 27°: wall, above the video's marker
    clear_columns = slice(int(0.6 * width), int(0.62 * width))  # azimuths −36° to −43°: no vertical line, no object
    found = {
        "azimuth": (_line_angles(white[wall_rows].mean(axis=0), azimuth), np.arange(-180, 180, 15)),
        "elevation": (_line_angles(white[:, clear_columns].mean(axis=1), elevation), np.arange(-60, 76, 15)),
    }
    for name, (angles, expected) in found.items():
        to_nearest_line = np.abs(g.wrap_azimuth(angles - np.round(angles / 15) * 15))
        assert np.all(to_nearest_line < 0.5), f"{name} line off the 15° grid in {source}: {angles}"
        nearest_found = np.abs(g.wrap_azimuth(expected[:, None] - angles[None, :])).min(axis=1)
        assert np.all(nearest_found < 0.5), f"{name} lines missing in {source}: {expected[nearest_found >= 0.5]}"
