"""Perspective crops and equirectangular 360° frames: the direct route between the two (``--projection perspective``).

A crop is a pinhole camera image tangent to the sphere at a direction (φ, θ) (docs/conventions.md): its optical
axis is the unit vector of (φ, θ), its x axis points to decreasing azimuth (the viewer's right), its y axis to the
viewer's up (right × forward), and ``fov_deg`` is the angle its width spans. Both projections go through the rays:

- :func:`extract_perspective` (equirect → crop): each crop pixel's ray → (u, v) → ``cv2.remap`` of the frame,
  wrapping across the seam.
- :func:`paste_crop` (crop → equirect): for each equirect pixel of the crop's footprint, its ray is projected into
  the crop's camera and the crop is sampled there (``cv2.remap``), then alpha-blended. Only the footprint's bounding box
  (split in two at the seam, full rows around a pole) is touched, so it is exact at the poles and across the seam.

:mod:`augment.cubemap` is the other route, through a cube's faces (py360convert); it shares this module's camera,
footprints and blending. Frames are uint8 (H, W, 3); crops are uint8 (h, w, 4) with straight alpha, in the same colour
order as the frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from av_seld.geometry import cart_to_sph, equirect_to_sph, sph_to_cart, sph_to_equirect

_OUTSIDE = -1e4  # remap coordinate of rays behind a crop's camera: far outside the crop, sampled as transparent


def camera_basis(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """(3, 3) float64 rows (forward, right, up) of the crop camera looking at (φ, θ) in degrees.

    right = (sin φ, −cos φ, 0) points to decreasing azimuth; up = right × forward. Both stay defined at the poles
    (there "up" points away from the azimuth φ, the limit of tilting the camera up or down from φ).
    """
    forward = sph_to_cart(float(azimuth_deg), float(elevation_deg))
    phi = math.radians(azimuth_deg)
    right = np.array([math.sin(phi), -math.cos(phi), 0.0])
    up = np.cross(right, forward)
    return np.stack([forward, right, up / np.linalg.norm(up)])


def focal_length_px(fov_deg: float, crop_width: int) -> float:
    """Focal length in pixels of a crop ``crop_width`` pixels wide spanning ``fov_deg`` degrees (0 < fov < 180)."""
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    return crop_width / 2 / math.tan(math.radians(fov_deg) / 2)


# ------------------------------------------------------------------------------------ equirect -> perspective crop


@functools.lru_cache(maxsize=32)
def perspective_maps(azimuth_deg: float, elevation_deg: float, fov_deg: float, crop_width: int, crop_height: int,
                     width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (map_x, map_y), float32 (crop_height, crop_width): where each crop pixel's ray meets a
    ``width × height`` equirect frame, in pixel-index coordinates (pixel centre at integers); map_x ∈ [-0.5, width).
    """
    basis = camera_basis(azimuth_deg, elevation_deg)
    f = focal_length_px(fov_deg, crop_width)
    a = (np.arange(crop_width) + 0.5 - crop_width / 2) / f  # (w,) along right
    b = (crop_height / 2 - (np.arange(crop_height) + 0.5)) / f  # (h,) along up
    rays = basis[0] + a[None, :, None] * basis[1] + b[:, None, None] * basis[2]  # (h, w, 3), not normalised
    azimuth, elevation = cart_to_sph(rays)
    u, v = sph_to_equirect(azimuth, elevation, width, height)
    map_x, map_y = (u - 0.5).astype(np.float32), (v - 0.5).astype(np.float32)
    map_x.flags.writeable = map_y.flags.writeable = False  # cached: shared between callers
    return map_x, map_y


def extract_perspective(frame: np.ndarray, azimuth_deg: float, elevation_deg: float, fov_deg: float,
                        crop_width: int, crop_height: int | None = None) -> np.ndarray:
    """Perspective crop (crop_height, crop_width, C) of an equirect frame (H, W, C) centred on (φ, θ) in degrees.

    ``fov_deg`` is the horizontal field of view; ``crop_height`` defaults to ``crop_width`` (square pixels, so the
    vertical field of view follows). Bilinear; the frame wraps across the seam and is clamped at the poles.
    """
    height, width = frame.shape[:2]
    crop_height = crop_width if crop_height is None else crop_height
    map_x, map_y = perspective_maps(float(azimuth_deg), float(elevation_deg), float(fov_deg), int(crop_width),
                                    int(crop_height), width, height)
    # One wrapped column on each side lets bilinear sampling cross the seam; rows clamp (BORDER_REPLICATE).
    padded = np.concatenate([frame[:, -1:], frame, frame[:, :1]], axis=1)
    return cv2.remap(padded, map_x + 1, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ------------------------------------------------------------------------------------ perspective crop -> equirect


@functools.lru_cache(maxsize=8)
def _pixel_trig(width: int, height: int) -> tuple[np.ndarray, ...]:
    """cos/sin of each column's azimuth (W,) and each row's elevation (H,), float32, at pixel centres."""
    azimuth, _ = equirect_to_sph(np.arange(width) + 0.5, 0.0, width, height)
    _, elevation = equirect_to_sph(0.0, np.arange(height) + 0.5, width, height)
    az, el = np.radians(azimuth), np.radians(elevation)
    return tuple(t.astype(np.float32) for t in (np.cos(az), np.sin(az), np.cos(el), np.sin(el)))


@dataclass(frozen=True)
class Footprint:
    """Equirect pixels a pasted crop can cover: rows ``row_start:row_stop`` × the column runs ``column_slices``
    (one run, or two when the footprint crosses the seam), and where each of those pixels samples its source (the
    crop, or a cube layer of :mod:`augment.cubemap`)."""

    row_start: int
    row_stop: int
    column_slices: tuple[slice, ...]
    map_x: np.ndarray  # (rows, columns of all runs concatenated) float32, source pixel-index coordinates
    map_y: np.ndarray


def cap_box(azimuth_deg: float, elevation_deg: float, radius_deg: float, width: int,
            height: int) -> tuple[int, int, tuple[slice, ...]]:
    """``(row_start, row_stop, column_slices)``: the equirect pixels of the spherical cap of ``radius_deg`` around
    (φ, θ). Rows from the cap's elevation range, columns ±asin(sin r / cos θ) in azimuth (split in two at the seam;
    all columns when the cap holds a pole), plus one pixel for bilinear sampling."""
    top = max(0, int(math.floor((0.5 - (elevation_deg + radius_deg) / 180) * height)) - 1)
    bottom = min(height, int(math.ceil((0.5 - (elevation_deg - radius_deg) / 180) * height)) + 1)
    holds_pole = elevation_deg + radius_deg >= 90 or elevation_deg - radius_deg <= -90
    if holds_pole:
        return top, bottom, (slice(0, width),)
    ratio = math.sin(math.radians(radius_deg)) / math.cos(math.radians(elevation_deg))
    half_deg = math.degrees(math.asin(min(1.0, ratio)))
    u_centre, _ = sph_to_equirect(float(azimuth_deg), 0.0, width, height)
    first = int(math.floor(u_centre - half_deg / 360 * width)) - 1
    stop = int(math.ceil(u_centre + half_deg / 360 * width)) + 1
    if stop - first >= width:
        return top, bottom, (slice(0, width),)
    if first < 0:
        return top, bottom, (slice(first + width, width), slice(0, stop))
    if stop > width:
        return top, bottom, (slice(first, width), slice(0, stop - width))
    return top, bottom, (slice(first, stop),)


def camera_rays(azimuth_deg: float, elevation_deg: float, row_start: int, row_stop: int,
                column_slices: tuple[slice, ...], width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(forward, right, up)`` float32 (rows, columns): the unit rays of the box's equirect pixels in the axes of the
    camera looking at (φ, θ) (:func:`camera_basis`); columns of all runs concatenated."""
    cos_az, sin_az, cos_el, sin_el = _pixel_trig(width, height)
    columns = np.concatenate([np.arange(width)[s] for s in column_slices])
    ca, sa = cos_az[columns][None, :], sin_az[columns][None, :]  # (1, C)
    ce, se = cos_el[row_start:row_stop, None], sin_el[row_start:row_stop, None]  # (R, 1)
    basis = camera_basis(azimuth_deg, elevation_deg).astype(np.float32)

    def along(axis):  # ray · axis for every box pixel, ray = (ce·ca, ce·sa, se)
        return ce * (ca * axis[0] + sa * axis[1]) + se * axis[2]

    return along(basis[0]), along(basis[1]), along(basis[2])


def crop_footprint(azimuth_deg: float, elevation_deg: float, fov_deg: float, crop_width: int, crop_height: int,
                   width: int, height: int) -> Footprint:
    """Where a crop (crop_height, crop_width) pasted at (φ, θ) with horizontal field of view ``fov_deg`` lands: the
    :func:`cap_box` whose radius is the angle of the crop's corner, each pixel's ray projected into the crop."""
    f = focal_length_px(fov_deg, crop_width)
    radius = math.degrees(math.atan(math.hypot(crop_width, crop_height) / 2 / f))
    top, bottom, slices = cap_box(azimuth_deg, elevation_deg, radius, width, height)
    depth, right, up = camera_rays(azimuth_deg, elevation_deg, top, bottom, slices, width, height)
    in_front = depth > 1e-6
    scale = np.where(in_front, f / np.where(in_front, depth, 1.0), 0.0).astype(np.float32)
    map_x = crop_width / 2 - 0.5 + right * scale
    map_y = crop_height / 2 - 0.5 - up * scale
    map_x[~in_front] = _OUTSIDE
    map_y[~in_front] = _OUTSIDE
    return Footprint(top, bottom, slices, map_x.astype(np.float32), map_y.astype(np.float32))


def premultiply(crop: np.ndarray) -> np.ndarray:
    """RGBA/BGRA uint8 (h, w, 4) with straight alpha → premultiplied alpha (colour × alpha / 255), uint8.

    Pasting samples premultiplied crops so that bilinear sampling at the crop's edge fades to transparent
    instead of to black."""
    if crop.ndim != 3 or crop.shape[2] != 4 or crop.dtype != np.uint8:
        raise ValueError(f"crop must be uint8 (h, w, 4), got {crop.dtype} {crop.shape}")
    out = crop.copy()
    alpha = crop[..., 3:4].astype(np.uint16)
    out[..., :3] = ((crop[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    return out


def warp_crop(premultiplied: np.ndarray, footprint: Footprint) -> np.ndarray:
    """The crop resampled onto its footprint: uint8 (rows, columns, 4), premultiplied colour + alpha (0 outside)."""
    return cv2.remap(premultiplied, footprint.map_x, footprint.map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def paste_crop(frame: np.ndarray, crop: np.ndarray, azimuth_deg: float, elevation_deg: float, fov_deg: float,
               *, premultiplied: bool = False) -> Footprint:
    """Paste ``crop`` (h, w, 4) into the equirect ``frame`` (H, W, 3) in place, centred on (φ, θ) in degrees.

    The crop is a perspective image of horizontal field of view ``fov_deg``; each footprint pixel takes
    ``crop·α + frame·(1 − α)``. Pass ``premultiplied=True`` with the output of :func:`premultiply` to skip that
    step (the renderer premultiplies each crop once). Returns the footprint that was touched.
    """
    height, width = frame.shape[:2]
    pre = crop if premultiplied else premultiply(crop)
    footprint = crop_footprint(float(azimuth_deg), float(elevation_deg), float(fov_deg), crop.shape[1], crop.shape[0],
                               width, height)
    blend_over(frame, warp_crop(pre, footprint), footprint)
    return footprint


def blend_over(frame: np.ndarray, warped: np.ndarray, footprint: Footprint) -> None:
    """Lay ``warped`` (rows, columns, 4) premultiplied uint8, the footprint's pixels, over ``frame`` in place."""
    start = 0
    rows = slice(footprint.row_start, footprint.row_stop)
    for columns in footprint.column_slices:
        n = columns.stop - columns.start
        part = warped[:, start : start + n]
        start += n
        region = frame[rows, columns]
        keep = 255 - part[..., 3:4].astype(np.uint16)
        region[...] = (region * keep + 127) // 255 + part[..., :3]  # premultiplied "over"; ≤ 255 by construction
