"""The cubemap route between equirectangular frames and crops, through py360convert (``--projection cubemap``).

The published video-synthesis recipe converts a 360° frame to a cubemap, crops the event on its face, and converts the
crop back to equirectangular at a new direction. This module does the same with py360convert's ``e2c`` / ``c2e``; where
a face would cut the event, it turns the sphere first so that the event sits at a face centre (``e2p`` for crops; for
pasting, the crop always goes to the front face's centre and the sphere is turned onto the label direction). The result
is the same image geometry as the direct route of :mod:`augment.perspective` (a test holds the two together); it
resamples once or twice more, so it is a little softer and slower.

py360convert's conventions differ from docs/conventions.md and are converted here, nowhere else:

- Axes: its (x, y, z) are (right, up, front), i.e. (−y, z, x) of ours; its azimuth ``u`` grows to the right, so
  ``u = −φ``; its elevation ``v`` is our θ. Equirect pixel centres agree with ours (``uv2coor``).
- ``e2c`` samples face pixel (row r, column c) at face-plane coordinates ``(c, r) / (face_w − 1) − 1/2`` (the first and
  last pixel centres lie on the cube's edges): the focal length is ``(face_w − 1) / 2`` pixels.
- ``c2e`` reads face-plane coordinate t ∈ [−1, 1] at pixel index ``face_w / 2 · (1 + t)`` (focal ``face_w / 2``, half
  a pixel off ``e2c``), and its equirect pixel (row j, column i) lies at ``u = −π + 2π i / (w − 1)``,
  ``v = π/2 − π j / (h − 1)`` (``linspace`` grids: edge pixel centres on the seam and the poles).
- ``e2p``'s field of view spans the first to the last pixel centre; ours (``focal_length_px``) spans the pixel edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import py360convert

from augment.perspective import Footprint, blend_over, camera_rays, cap_box, focal_length_px, premultiply
from av_seld.geometry import sph_to_cart

# py360convert's face order (``cube_format="list"``): front, right, back, left, up, down.
FACES = ("front", "right", "back", "left", "up", "down")
FACE_WINDOW_DEG = 10.0  # crops are face windows this close to a side face's centre (magnified ≤ 3 %), else e2p views


def to_py360(xyz: np.ndarray) -> np.ndarray:
    """Our (x front, y left, z up) vectors (..., 3) → py360convert's (x right, y up, z front)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.stack([-xyz[..., 1], xyz[..., 2], xyz[..., 0]], axis=-1)


def face_position(azimuth_deg: float, elevation_deg: float, face_w: int) -> tuple[int, float, float]:
    """``(face index, column, row)`` where ``py360convert.e2c(..., face_w)`` shows direction (φ, θ): the face the
    direction points through, and pixel-index coordinates on it (pixel centres at integers)."""
    x, y, z = to_py360(sph_to_cart(float(azimuth_deg), float(elevation_deg)))
    face = (
        (0 if z > 0 else 2) if abs(z) >= max(abs(x), abs(y)) else
        (1 if x > 0 else 3) if abs(x) >= abs(y) else
        (4 if y > 0 else 5)
    )
    # Face-plane coordinates (a to the face image's right, b to its top) in [−1/2, 1/2], from e2c's xyzcube.
    if face == 0:
        a, b = x / z / 2, y / z / 2
    elif face == 1:
        a, b = -z / x / 2, y / x / 2
    elif face == 2:
        a, b = x / z / 2, -y / z / 2
    elif face == 3:
        a, b = -z / x / 2, -y / x / 2
    elif face == 4:
        a, b = x / y / 2, -z / y / 2
    else:
        a, b = -x / y / 2, -z / y / 2
    return face, (a + 0.5) * (face_w - 1), (0.5 - b) * (face_w - 1)


# ------------------------------------------------------------------------------------ equirect -> crop


def extract_cubemap(frame: np.ndarray, azimuth_deg: float, elevation_deg: float, fov_deg: float,
                    crop_width: int, crop_height: int | None = None) -> np.ndarray:
    """Crop (crop_height, crop_width, C) of an equirect frame (H, W, C) centred on (φ, θ), cut from its cubemap.

    The cube's faces are sized so that a crop ``crop_width`` pixels wide spans ``fov_deg`` at a face centre
    (``e2c``); near the centre of a side face (within ``FACE_WINDOW_DEG``) the crop is that face's window centred on
    the direction (bilinear, sub-pixel). Elsewhere a window would be an oblique view, magnified by up to sec² of the
    angle from the face centre (1.33 at 30°), cut by the face's edge, or, on the up and down faces, turned by its
    azimuth; there the view is turned onto the direction first (``e2p``), the same as cutting the centre of a cube
    face that looks at the event.
    """
    crop_height = crop_width if crop_height is None else crop_height
    f = focal_length_px(fov_deg, crop_width)
    face_w = max(2, int(round(2 * f + 1)))  # e2c's focal is (face_w − 1) / 2
    face, column, row = face_position(azimuth_deg, elevation_deg, face_w)
    half_w, half_h = (crop_width - 1) / 2, (crop_height - 1) / 2
    off_centre = math.hypot(column / (face_w - 1) - 0.5, row / (face_w - 1) - 0.5) * 2  # tan of the angle
    inside = half_w <= column <= face_w - 1 - half_w and half_h <= row <= face_w - 1 - half_h
    if face < 4 and inside and off_centre <= math.tan(math.radians(FACE_WINDOW_DEG)):
        faces = py360convert.e2c(frame, face_w=face_w, mode="bilinear", cube_format="list")
        return cv2.getRectSubPix(np.ascontiguousarray(faces[face]), (crop_width, crop_height), (column, row))
    # e2p's fields of view run from the first to the last pixel centre.
    tan_half = math.tan(math.radians(fov_deg) / 2)
    h_fov = 2 * math.degrees(math.atan(tan_half * (crop_width - 1) / crop_width))
    v_fov = 2 * math.degrees(math.atan(tan_half * (crop_height - 1) / crop_width))
    return py360convert.e2p(frame, fov_deg=(h_fov, v_fov), u_deg=-float(azimuth_deg), v_deg=float(elevation_deg),
                            out_hw=(crop_height, crop_width), mode="bilinear")


# ------------------------------------------------------------------------------------ crop -> equirect


@dataclass(frozen=True)
class CubeLayer:
    """A crop laid on the centre of a cube's front face and converted to equirect by ``c2e``: the premultiplied
    RGBA window of that grid that holds it, ready to be turned onto any direction by :func:`paste_layer`."""

    pixels: np.ndarray  # (rows, columns, 4) uint8 premultiplied, rows row0.., columns col0.. of the c2e grid
    row0: int
    col0: int
    grid_width: int  # the c2e grid, grid_width × grid_width / 2
    radius_deg: float  # angle from the crop's centre to its corner


def fits_on_face(crop_width: int, crop_height: int, fov_deg: float) -> bool:
    """Whether a crop of horizontal field of view ``fov_deg`` fits on one cube face (both half-extents below 45°)."""
    return max(crop_width, crop_height) / 2 < focal_length_px(fov_deg, crop_width)


def cube_layer(crop: np.ndarray, fov_deg: float, width: int, *, premultiplied: bool = False) -> CubeLayer:
    """Lay ``crop`` (h, w, 4) of horizontal field of view ``fov_deg`` on the front face of a cube and convert it with
    ``c2e`` onto an equirect grid about as fine as a ``width``-pixel frame. The crop must fit on one face (its
    half-width and half-height below 45° from its centre)."""
    pre = crop if premultiplied else premultiply(crop)
    crop_height, crop_width = pre.shape[:2]
    f = focal_length_px(fov_deg, crop_width)
    if not fits_on_face(crop_width, crop_height, fov_deg):
        raise ValueError(f"a {crop_width}x{crop_height} crop of {fov_deg:g}° does not fit on one cube face "
                         "(needs both half-extents below 45°)")
    grid_width = 8 * math.ceil(max(width, 16) / 8)  # c2e needs a multiple of 8
    face_w = max(4, int(round((grid_width - 1) / math.pi)))  # face pixels as fine as the grid's at the front
    scale = face_w / 2 / f  # c2e's focal is face_w / 2; the crop's is f
    # Crop pixel centre i + 1/2 lies at (i + 1/2 − w/2) / f on the face plane, i.e. at face index face_w/2 · (1 + t).
    matrix = np.array([[scale, 0, face_w / 2 + scale * (0.5 - crop_width / 2)],
                       [0, scale, face_w / 2 + scale * (0.5 - crop_height / 2)]])
    front = cv2.warpAffine(pre, matrix, (face_w, face_w), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    blank = np.zeros_like(front)
    grid = py360convert.c2e([front] + [blank] * 5, h=grid_width // 2, w=grid_width, mode="bilinear",
                            cube_format="list")
    rows = np.flatnonzero(grid[..., 3].any(axis=1))
    columns = np.flatnonzero(grid[..., 3].any(axis=0))
    if not len(rows):
        raise ValueError(f"the {crop_width}x{crop_height} crop is fully transparent")
    row0, col0 = int(rows[0]), int(columns[0])
    window = np.ascontiguousarray(grid[row0 : rows[-1] + 1, col0 : columns[-1] + 1])
    radius = math.degrees(math.atan(math.hypot(crop_width, crop_height) / 2 / f))
    return CubeLayer(window, row0, col0, grid_width, radius)


def layer_footprint(layer: CubeLayer, azimuth_deg: float, elevation_deg: float, width: int,
                    height: int) -> Footprint:
    """Where ``layer`` turned onto (φ, θ) lands on a ``width × height`` frame, and where each pixel samples it.

    The turn takes the grid's front (φ = θ = 0) to (φ, θ) with the crop upright
    (:func:`augment.perspective.camera_basis`): a frame pixel's ray, written in the camera's (forward, left, up) axes,
    is the direction it reads on the grid.
    """
    top, bottom, slices = cap_box(azimuth_deg, elevation_deg, layer.radius_deg + 0.5, width, height)
    forward, right, up = camera_rays(azimuth_deg, elevation_deg, top, bottom, slices, width, height)
    azimuth = np.arctan2(-right, forward)  # radians on the grid; py360's u is −azimuth
    elevation = np.arctan2(up, np.hypot(forward, right))
    grid_w, grid_h = layer.grid_width, layer.grid_width // 2
    map_x = (math.pi - azimuth) * (grid_w - 1) / (2 * math.pi) - layer.col0
    map_y = (math.pi / 2 - elevation) * (grid_h - 1) / math.pi - layer.row0
    return Footprint(top, bottom, slices, map_x.astype(np.float32), map_y.astype(np.float32))


def paste_layer(frame: np.ndarray, layer: CubeLayer, azimuth_deg: float, elevation_deg: float) -> Footprint:
    """Lay ``layer`` over the equirect ``frame`` (H, W, 3) in place, centred on (φ, θ) in degrees; returns the
    footprint that was touched."""
    height, width = frame.shape[:2]
    footprint = layer_footprint(layer, float(azimuth_deg), float(elevation_deg), width, height)
    warped = cv2.remap(layer.pixels, footprint.map_x, footprint.map_y, interpolation=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    blend_over(frame, warped, footprint)
    return footprint


def paste_crop_cubemap(frame: np.ndarray, crop: np.ndarray, azimuth_deg: float, elevation_deg: float,
                       fov_deg: float, *, premultiplied: bool = False) -> Footprint:
    """:func:`augment.perspective.paste_crop` through the cube: :func:`cube_layer`, then :func:`paste_layer`."""
    layer = cube_layer(crop, fov_deg, frame.shape[1], premultiplied=premultiplied)
    return paste_layer(frame, layer, azimuth_deg, elevation_deg)
