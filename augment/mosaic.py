"""Perspective crops and equirectangular 360° frames: both projections, and the mosaic video renderer.

A crop is a pinhole camera image tangent to the sphere at a direction (φ, θ) (docs/conventions.md): its optical
axis is the unit vector of (φ, θ), its x axis points to decreasing azimuth (the viewer's right), its y axis to the
viewer's up (right × forward), and ``fov_deg`` is the angle its width spans. Both projections go through the rays:

- :func:`extract_perspective` (equirect → crop): each crop pixel's ray → (u, v) → ``cv2.remap`` of the frame,
  wrapping across the seam.
- :func:`paste_crop` (crop → equirect): for each equirect pixel of the crop's footprint, its ray is projected into
  the crop's camera and the crop is sampled there (``cv2.remap``), then alpha-blended. Only the footprint's bounding box
  (split in two at the seam, full rows around a pole) is touched, so it is exact at the poles and across the seam.

Frames are uint8 (H, W, 3); crops are uint8 (h, w, 4) with straight alpha, in the same colour order as the frame (the
renderer uses BGR throughout so that OpenCV reads and writes need no conversion).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from augment.trajectories import track_runs
from av_seld.geometry import cart_to_sph, equirect_to_sph, sph_to_cart, sph_to_equirect
from av_seld.timing import LABEL_FRAMES_PER_SECOND, seconds_to_label_frame

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
    (one run, or two when the footprint crosses the seam), and where each of those pixels samples the crop."""

    row_start: int
    row_stop: int
    column_slices: tuple[slice, ...]
    map_x: np.ndarray  # (rows, columns of all runs concatenated) float32, crop pixel-index coordinates
    map_y: np.ndarray


def crop_footprint(azimuth_deg: float, elevation_deg: float, fov_deg: float, crop_width: int, crop_height: int,
                   width: int, height: int) -> Footprint:
    """Where a crop (crop_height, crop_width) pasted at (φ, θ) with horizontal field of view ``fov_deg`` lands.

    The bounding box is that of the spherical cap around (φ, θ) whose radius is the angle of the crop's corner:
    rows from the cap's elevation range, columns ±asin(sin r / cos θ) in azimuth (all columns when the cap holds a
    pole), plus one pixel for bilinear sampling.
    """
    f = focal_length_px(fov_deg, crop_width)
    radius = math.degrees(math.atan(math.hypot(crop_width, crop_height) / 2 / f))
    top = max(0, int(math.floor((0.5 - (elevation_deg + radius) / 180) * height)) - 1)
    bottom = min(height, int(math.ceil((0.5 - (elevation_deg - radius) / 180) * height)) + 1)
    holds_pole = elevation_deg + radius >= 90 or elevation_deg - radius <= -90
    if holds_pole:
        slices: tuple[slice, ...] = (slice(0, width),)
    else:
        ratio = math.sin(math.radians(radius)) / math.cos(math.radians(elevation_deg))
        half_deg = math.degrees(math.asin(min(1.0, ratio)))
        u_centre, _ = sph_to_equirect(float(azimuth_deg), 0.0, width, height)
        first = int(math.floor(u_centre - half_deg / 360 * width)) - 1
        stop = int(math.ceil(u_centre + half_deg / 360 * width)) + 1
        if stop - first >= width:
            slices = (slice(0, width),)
        elif first < 0:
            slices = (slice(first + width, width), slice(0, stop))
        elif stop > width:
            slices = (slice(first, width), slice(0, stop - width))
        else:
            slices = (slice(first, stop),)
    cos_az, sin_az, cos_el, sin_el = _pixel_trig(width, height)
    columns = np.concatenate([np.arange(width)[s] for s in slices])
    ca, sa = cos_az[columns][None, :], sin_az[columns][None, :]  # (1, C)
    ce, se = cos_el[top:bottom, None], sin_el[top:bottom, None]  # (R, 1)
    basis = camera_basis(azimuth_deg, elevation_deg).astype(np.float32)

    def along(axis):  # ray · axis for every footprint pixel, ray = (ce·ca, ce·sa, se)
        return ce * (ca * axis[0] + sa * axis[1]) + se * axis[2]

    depth = along(basis[0])
    in_front = depth > 1e-6
    scale = np.where(in_front, f / np.where(in_front, depth, 1.0), 0.0).astype(np.float32)
    map_x = crop_width / 2 - 0.5 + along(basis[1]) * scale
    map_y = crop_height / 2 - 0.5 - along(basis[2]) * scale
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
    warped = warp_crop(pre, footprint)
    start = 0
    rows = slice(footprint.row_start, footprint.row_stop)
    for columns in footprint.column_slices:
        n = columns.stop - columns.start
        part = warped[:, start : start + n]
        start += n
        region = frame[rows, columns]
        keep = 255 - part[..., 3:4].astype(np.uint16)
        region[...] = (region * keep + 127) // 255 + part[..., :3]  # premultiplied "over"; ≤ 255 by construction
    return footprint


# ------------------------------------------------------------------------------------ motion between labels


def slerp(xyz0: np.ndarray, xyz1: np.ndarray, weight: float) -> np.ndarray:
    """Unit vector a fraction ``weight`` ∈ [0, 1] of the way along the great circle from ``xyz0`` to ``xyz1`` (3,)."""
    a = xyz0 / np.linalg.norm(xyz0)
    b = xyz1 / np.linalg.norm(xyz1)
    omega = math.acos(max(-1.0, min(1.0, float(a @ b))))
    if omega < 1e-6:
        return a
    return (math.sin((1 - weight) * omega) * a + math.sin(weight * omega) * b) / math.sin(omega)


# ------------------------------------------------------------------------------------ procedural background


_ROOM_MAX_WIDTH = 1024  # the room is drawn at most this wide, then resized: it has no fine detail to lose


def procedural_room(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Equirect view (H, W, 3) uint8 RGB from inside a random box room: tiled floor, painted walls with a skirting
    board and a few panels, a lighter ceiling; mild pixel noise. Colours and room size vary with ``rng``."""
    if width > _ROOM_MAX_WIDTH:
        small = procedural_room(_ROOM_MAX_WIDTH, max(1, round(height * _ROOM_MAX_WIDTH / width)), rng)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    az, el = np.meshgrid(*[np.radians(a) for a in (
        equirect_to_sph(np.arange(width) + 0.5, 0.0, width, height)[0],
        equirect_to_sph(0.0, np.arange(height) + 0.5, width, height)[1])])
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)  # (H, W, 3)
    half = rng.uniform(2.5, 5.0, size=2)  # room half-size along x, y in metres
    floor_z, ceiling_z = -rng.uniform(1.2, 1.7), rng.uniform(1.0, 1.6)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_walls = np.stack([np.abs(half[i] / d[..., i]) for i in range(2)], axis=-1)  # (H, W, 2)
        t_z = np.where(d[..., 2] > 0, ceiling_z / d[..., 2], floor_z / d[..., 2])
    t_wall = t_walls.min(axis=-1)
    wall_axis = t_walls.argmin(axis=-1)  # 0: x walls (front/back), 1: y walls (left/right)
    hit_wall = t_wall < t_z
    t = np.where(hit_wall, t_wall, t_z)
    p = d * t[..., None]  # hit points in metres

    image = np.empty((height, width, 3), dtype=np.float32)
    wall_colours = rng.uniform(90, 230, size=(4, 3))
    wall_id = wall_axis * 2 + (np.take_along_axis(d[..., :2], wall_axis[..., None], -1)[..., 0] > 0)
    walls = wall_colours[wall_id]
    along = np.where(wall_axis == 0, p[..., 1], p[..., 0])  # horizontal coordinate on the wall
    panel_w = rng.uniform(0.8, 1.6)
    panel = (np.abs(((along / panel_w) % 1) - 0.5) < 0.4) & (p[..., 2] > floor_z + 0.5) & (p[..., 2] < floor_z + 1.6)
    walls = np.where(panel[..., None], walls * 0.85, walls)
    skirting = p[..., 2] < floor_z + 0.12
    walls = np.where(skirting[..., None], rng.uniform(40, 120, size=3), walls)
    tile = rng.uniform(0.4, 0.8)
    phase = rng.uniform(0, tile, size=2)
    checker = ((np.floor((p[..., 0] + phase[0]) / tile) + np.floor((p[..., 1] + phase[1]) / tile)) % 2)[..., None]
    floor_a, floor_b = rng.uniform(60, 180, size=3), rng.uniform(60, 180, size=3)
    floor = checker * floor_a + (1 - checker) * floor_b
    ceiling = np.full((height, width, 3), 0, np.float32) + rng.uniform(200, 245, size=3)
    lamp = np.hypot(p[..., 0], p[..., 1]) < 0.35
    ceiling = np.where(lamp[..., None], 255.0, ceiling)
    is_floor = ~hit_wall & (d[..., 2] < 0)
    image[:] = np.where(hit_wall[..., None], walls, np.where(is_floor[..., None], floor, ceiling))
    shade = np.clip(1.15 - 0.08 * t, 0.6, 1.0)[..., None]  # farther surfaces a little darker
    image *= shade
    image += rng.normal(0, 3, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------ the mosaic renderer


@dataclass(frozen=True)
class MosaicConfig:
    """How events become pasted crops.

    fov_range_deg: horizontal field of view of a lone event's crop, drawn per event track.
    overlap_shrink: a segment with up to n simultaneous events (any class) gets fov / (1 + overlap_shrink·(n − 1)).
    max_step_deg: consecutive labels of a track farther apart than this jump instead of gliding (re-annotations).
    flip_probability: chance of a horizontal flip per track.
    """

    fov_range_deg: tuple[float, float] = (30.0, 48.0)
    overlap_shrink: float = 0.25
    max_step_deg: float = 30.0
    flip_probability: float = 0.5

    def __post_init__(self):
        lo, hi = self.fov_range_deg
        if not 0 < lo <= hi < 180:
            raise ValueError(f"fov_range_deg must satisfy 0 < low <= high < 180, got {self.fov_range_deg}")
        if self.overlap_shrink < 0 or not 0 <= self.flip_probability <= 1 or self.max_step_deg < 0:
            raise ValueError(f"invalid MosaicConfig {self}")


@dataclass
class Segment:
    """One event: a run of consecutive label frames of one (class, source) track."""

    class_index: int
    source: int
    frames: np.ndarray  # (F,) consecutive label frames
    xyz: np.ndarray  # (F, 3) unit vectors
    fov_deg: float
    crop: np.ndarray  # premultiplied (h, w, 4) in the frame's colour order, sized for the output frame


def _fit_crop(crop: np.ndarray, fov_deg: float, width: int) -> np.ndarray:
    """Resize a crop so that its pixels match the equirect frame's at the equator (INTER_AREA avoids aliasing)."""
    target_w = max(4, int(round(fov_deg / 360 * width)))
    h, w = crop.shape[:2]
    target_h = max(4, int(round(h * target_w / w)))
    if (target_h, target_w) == (h, w):
        return crop
    interpolation = cv2.INTER_AREA if target_w < w else cv2.INTER_LINEAR
    return cv2.resize(crop, (target_w, target_h), interpolation=interpolation)


def plan_segments(frame, class_index, source, azimuth_deg, elevation_deg, *,
                  draw_crop: Callable[[int, np.random.Generator], np.ndarray], rng: np.random.Generator,
                  width: int, config: MosaicConfig = MosaicConfig(), bgr: bool = True) -> list[Segment]:
    """Split label rows (N,) arrays into events and give each its crop, flip and field of view.

    A track is a (class, source) pair; it keeps one crop and one flip for the whole clip (the same source looks the
    same each time it sounds), drawn in sorted track order so the plan depends only on ``rng``. Its base field of
    view is drawn per track; each run of consecutive frames shrinks it by the most simultaneous events in the run.
    ``draw_crop(class_index, rng)`` returns RGBA uint8 (h, w, 4); ``bgr`` converts it to BGRA for BGR frames.
    """
    frame = np.asarray(frame, dtype=np.int64)
    class_index, source = np.asarray(class_index, dtype=np.int64), np.asarray(source, dtype=np.int64)
    xyz = sph_to_cart(np.asarray(azimuth_deg, dtype=np.float64), np.asarray(elevation_deg, dtype=np.float64))
    polyphony = np.bincount(frame, minlength=1) if len(frame) else np.zeros(1, np.int64)
    segments: list[Segment] = []
    for c, s, runs in track_runs(frame, class_index, source):
        crop = draw_crop(c, rng)
        if rng.random() < config.flip_probability:
            crop = crop[:, ::-1]
        if bgr:
            crop = crop[..., [2, 1, 0, 3]]
        base_fov = rng.uniform(*config.fov_range_deg)
        for run in runs:
            crowd = int(polyphony[frame[run]].max())
            fov = base_fov / (1 + config.overlap_shrink * (crowd - 1))
            segments.append(Segment(c, s, frame[run], xyz[run], fov,
                                     premultiply(np.ascontiguousarray(_fit_crop(crop, fov, width)))))
    segments.sort(key=lambda seg: (int(seg.frames[0]), seg.class_index, seg.source))  # later events on top
    return segments


def segment_direction(segment: Segment, index: int, fraction: float, max_step_deg: float) -> np.ndarray:
    """Direction (3,) of a segment at its ``index``-th label frame plus ``fraction`` ∈ [0, 1) of a label hop.

    Label ``n``'s direction is shown at the label frame's start ``0.1 n`` s (the video frame the timing module reads
    for label ``n``) and slerped towards label ``n + 1`` in between; the last frame of a run holds still.
    """
    here = segment.xyz[index]
    if fraction <= 0 or index + 1 >= len(segment.frames):
        return here
    there = segment.xyz[index + 1]
    if math.degrees(math.acos(max(-1.0, min(1.0, float(here @ there))))) > max_step_deg:
        return here
    return slerp(here, there, fraction)


def render_mosaic_frames(segments: list[Segment], backgrounds: Iterable[np.ndarray], num_frames: int, fps: float,
                         config: MosaicConfig = MosaicConfig()) -> Iterator[np.ndarray]:
    """Yield ``num_frames`` equirect frames (H, W, 3) uint8: background + every active event's crop at its direction.

    Video frame ``k`` (time ``k / fps``) shows the events of label frame ``floor(10 k / fps)``. ``backgrounds`` yields
    one background per frame (``itertools.repeat(image)`` for a still one). The same buffer is yielded each time:
    consume (write) a frame before asking for the next; memory does not grow with ``num_frames``.
    """
    active: dict[int, list[tuple[Segment, int]]] = {}
    for segment in segments:
        for i, n in enumerate(segment.frames.tolist()):
            active.setdefault(n, []).append((segment, i))
    buffer = None
    background_iter = iter(backgrounds)
    for k in range(num_frames):
        background = next(background_iter)
        if buffer is None:
            buffer = np.empty_like(background)
        np.copyto(buffer, background)
        t = k / fps
        n = int(seconds_to_label_frame(t))
        fraction = max(0.0, t * LABEL_FRAMES_PER_SECOND - n)
        for segment, i in active.get(n, ()):
            direction = segment_direction(segment, i, fraction, config.max_step_deg)
            azimuth, elevation = cart_to_sph(direction)
            paste_crop(buffer, segment.crop, float(azimuth), float(elevation), segment.fov_deg, premultiplied=True)
        yield buffer
