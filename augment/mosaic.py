"""The mosaic video renderer: every active event's crop laid at its labelled direction over a background.

The two routes between crops and equirectangular frames live in :mod:`augment.perspective` (direct perspective warp,
the default) and :mod:`augment.cubemap` (through a cube's faces, py360convert); :class:`MosaicConfig` ``projection``
picks one. The perspective functions are re-exported here, where older code finds them.

Frames are uint8 (H, W, 3); crops are uint8 (h, w, 4) with straight alpha, in the same colour order as the frame (the
renderer uses BGR throughout so that OpenCV reads and writes need no conversion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from augment import cubemap
from augment.perspective import paste_crop, premultiply
from augment.trajectories import track_runs
from av_seld.geometry import cart_to_sph, equirect_to_sph, sph_to_cart
from av_seld.timing import LABEL_FRAMES_PER_SECOND, seconds_to_label_frame

PROJECTIONS = ("perspective", "cubemap")  # the two routes between crops and equirect frames

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
    projection: how a crop reaches the sphere: ``"perspective"`` (:func:`paste_crop`, one warp) or ``"cubemap"``
        (:mod:`augment.cubemap`: the crop on a cube face, py360convert's ``c2e``, then turned onto its direction;
        a crop too tall for one face, beyond 45° from its centre, is warped directly).
    """

    fov_range_deg: tuple[float, float] = (30.0, 48.0)
    overlap_shrink: float = 0.25
    max_step_deg: float = 30.0
    flip_probability: float = 0.5
    projection: str = "perspective"

    def __post_init__(self):
        lo, hi = self.fov_range_deg
        if not 0 < lo <= hi < 180:
            raise ValueError(f"fov_range_deg must satisfy 0 < low <= high < 180, got {self.fov_range_deg}")
        if self.overlap_shrink < 0 or not 0 <= self.flip_probability <= 1 or self.max_step_deg < 0:
            raise ValueError(f"invalid MosaicConfig {self}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {self.projection!r}")


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
    ``config.projection`` picks the route; the cubemap route converts each segment's crop once (its first frame) and
    forgets it after its last.
    """
    active: dict[int, list[tuple[Segment, int]]] = {}
    for segment in segments:
        for i, n in enumerate(segment.frames.tolist()):
            active.setdefault(n, []).append((segment, i))
    layers: dict[int, tuple[cubemap.CubeLayer, int]] = {}  # id(segment) -> (layer, its last label frame) while it runs
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
        if layers:
            layers = {key: value for key, value in layers.items() if value[1] >= n}  # segments that ended
        for segment, i in active.get(n, ()):
            direction = segment_direction(segment, i, fraction, config.max_step_deg)
            azimuth, elevation = cart_to_sph(direction)
            height, width = segment.crop.shape[:2]
            if config.projection == "perspective" or not cubemap.fits_on_face(width, height, segment.fov_deg):
                paste_crop(buffer, segment.crop, float(azimuth), float(elevation), segment.fov_deg,
                           premultiplied=True)
                continue
            key = id(segment)
            if key not in layers:
                layers[key] = (cubemap.cube_layer(segment.crop, segment.fov_deg, buffer.shape[1], premultiplied=True),
                               int(segment.frames[-1]))
            cubemap.paste_layer(buffer, layers[key][0], float(azimuth), float(elevation))
        yield buffer
