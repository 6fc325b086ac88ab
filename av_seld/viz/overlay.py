"""Overlay SELD predictions (and references) on 360° equirectangular video: what ``av-seld visualize`` writes.

Each output frame is the panorama with

- a filled disc per predicted event at its direction, in its class colour, with the class name beside it;
- a hollow ring per reference event (when given), so a ring around a disc is a hit;
- a fading trail over the last ``trail_s`` seconds for each track (class, track id), showing how a source moved;

and, under the panorama, a timeline strip: one row per class (13), the upper half of each row the reference's
activity, the lower half the prediction's, class names in their colours on the left (the legend) and a playhead at
the current time. Markers, rings and trails are seam-aware: anything near azimuth ±180° is drawn on both edges.

Pixel positions come from :mod:`av_seld.geometry` (``equirect_pixel`` for markers, ``sph_to_equirect`` for trails).
Video frame ``k`` shows the labels of the label frame it belongs to (:func:`label_frames_of_video_frames`: the
latest label frame whose selected video frame, by :func:`av_seld.timing.video_frame_for_label_frame`, is ``k`` or
earlier), so the frame a model reads for label frame ``n`` shows exactly label frame ``n``'s events.

Frames are read and written through :mod:`av_seld.io.video` (decoded in small batches, written to a temporary file
then renamed; H.264 with the audio muxed in when the system ``ffmpeg`` is on ``PATH``, else ``mp4v``, silent, with a
warning); the output has as many frames as the input, at the same frame rate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from av_seld import timing
from av_seld.classes import CLASS_NAMES, NUM_CLASSES
from av_seld.geometry import angular_distance_deg, equirect_pixel, horizontal_pixel_offset, sph_to_equirect
from av_seld.io.labels import Events
from av_seld.io.video import VideoReader, VideoWriter, warn_if_not_equirectangular
from av_seld.utils.atomic import atomic_path
from av_seld.viz import class_colour_bgr

logger = logging.getLogger(__name__)

DECODE_BATCH = 16  # video frames decoded per batch (and per progress update)
TRAIL_BREAK_DEG = 45.0  # a track jumping further than this between label frames starts a new trail
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_frames_of_video_frames(num_video_frames: int, fps: float) -> np.ndarray:
    """(K,) int64: the label frame whose events video frame ``k`` shows.

    That is the largest ``n`` with ``video_frame_for_label_frame(n, fps) <= k``: the frame read for label frame ``n``
    shows ``n``, and the frames after it show ``n`` until the next label frame's frame comes.
    """
    if num_video_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    duration_s = num_video_frames / fps
    num_label = int(timing.seconds_to_label_frame(duration_s)) + 2
    selected = timing.video_frame_for_label_frame(np.arange(num_label), fps)  # non-decreasing
    return np.searchsorted(selected, np.arange(num_video_frames), side="right").astype(np.int64) - 1


def _copies_x(x: int, width: int, reach: int) -> list[int]:
    """x and its copy one panorama width away when something ``reach`` pixels wide around x crosses the seam."""
    xs = [x]
    if x - reach < 0:
        xs.append(x + width)
    if x + reach >= width:
        xs.append(x - width)
    return xs


def marker_radius_px(width: int) -> int:
    """Radius in pixels of a prediction marker on a panorama ``width`` pixels wide."""
    return max(3, int(round(width / 160)))


def label_scale(width: int) -> float:
    """Font scale of the class names beside markers on a panorama ``width`` pixels wide."""
    return max(0.35, width / 1920 * 0.6)


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, inclusive-exclusive


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def draw_label(image: np.ndarray, text: str, x: int, y: int, colour_bgr: Sequence[int], scale: float, *,
               border: bool = False) -> Box:
    """Write ``text`` with its baseline starting at pixel (x, y), in the class colour over a plate that sets it off
    whatever the frame shows: dark for light colours, light for dark ones (the frame shows through at 20 %).
    ``border``: a thin frame in the colour around the plate (reference labels). Returns the plate's box. In place on
    a BGR ``image`` (H, W, 3) uint8."""
    thick = max(1, int(round(scale * 2)))
    (text_w, text_h), base = cv2.getTextSize(text, _FONT, scale, thick)
    pad = max(2, int(round(3 * scale)))
    height, width = image.shape[:2]
    box = (max(0, x - pad), max(0, y - text_h - pad), min(width, x + text_w + pad), min(height, y + base + pad))
    x0, y0, x1, y1 = box
    if x1 > x0 and y1 > y0:
        b, g, r = (float(c) for c in colour_bgr)
        # Rec. 709 luma of the colour; the plate is 80 % opaque, so over any frame a dark plate is at most
        # 0.2 · 255 + 0.8 · 20 = 67 and a light one at least 0.8 · 240 = 192: both ≥ 62 levels from the colour.
        plate = 20.0 if 0.2126 * r + 0.7152 * g + 0.0722 * b >= 130 else 240.0
        image[y0:y1, x0:x1] = (image[y0:y1, x0:x1].astype(np.float32) * 0.2 + plate * 0.8).astype(np.uint8)
        if border:
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), tuple(int(c) for c in colour_bgr), 1)
    cv2.putText(image, text, (x, y), _FONT, scale, tuple(int(c) for c in colour_bgr), thick, cv2.LINE_AA)
    return box


def place_label(text: str, centre: tuple[int, int], reach: int, scale: float, size: tuple[int, int],
                taken: Sequence[Box] = (), *, prefer: str = "right") -> tuple[int, int]:
    """Baseline origin for a marker's label: beside it (``prefer`` first: "right", then left, below, above; "left"
    swaps the first two; "below" tries below, above, right, left, as for reference rings), the first place inside the
    panorama (``size`` = (width, height)) that overlaps no box of ``taken``; the first place inside when every one
    overlaps."""
    thick = max(1, int(round(scale * 2)))
    (text_w, text_h), base = cv2.getTextSize(text, _FONT, scale, thick)
    pad = max(2, int(round(3 * scale)))
    i, j = centre
    width, height = size
    places = {"right": (i + reach + pad + 1, j + text_h // 2),
              "left": (i - reach - pad - 1 - text_w, j + text_h // 2),
              "below": (i - text_w // 2, j + reach + pad + text_h + 1),
              "above": (i - text_w // 2, j - reach - pad - base - 1)}
    order = {"right": ["right", "left", "below", "above"], "left": ["left", "right", "below", "above"],
             "below": ["below", "above", "right", "left"]}[prefer]
    fitting = []
    for name in order:
        x, y = places[name]
        box = (x - pad, y - text_h - pad, x + text_w + pad, y + base + pad)
        if box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height:
            if not any(_overlaps(box, other) for other in taken):
                return x, y
            fitting.append((x, y))
    if fitting:
        return fitting[0]
    x, y = places[order[0]]  # a panorama too small for the name: keep as much of it as possible in view
    return min(max(0, x), max(0, width - text_w)), min(max(text_h + pad, y), height - base)


def _reach(radius: int, filled: bool) -> int:
    """How far from its centre a marker of ``radius`` reaches, outline included (a ring is 1.6× the disc)."""
    return radius + 1 if filled else int(round(radius * 1.6)) + max(1, radius // 3) + 1


def draw_marker(image: np.ndarray, azimuth_deg: float, elevation_deg: float, colour_bgr: Sequence[int], *,
                radius: int | None = None, filled: bool = True, label: str | None = None,
                taken: list[Box] | None = None, label_side: str | None = None) -> tuple[int, int]:
    """Draw one direction on an equirectangular BGR ``image`` (H, W, 3) uint8, in place; seam-aware.

    ``filled``: a disc with a dark outline (prediction); else a ring with a dark outline (reference), 1.6× larger.
    ``label``: a name written beside it on a dark plate (right of a disc, below a ring, with a coloured border for
    rings; ``label_side`` one of :func:`place_label`'s ``prefer``, e.g. off a moving source's path), away from the
    boxes of ``taken`` where it can be; its box is appended to ``taken``.
    Returns the pixel (column, row) of the direction (``geometry.equirect_pixel``): the disc is centred on it.
    """
    height, width = image.shape[:2]
    radius = marker_radius_px(width) if radius is None else radius
    i, j = equirect_pixel(azimuth_deg, elevation_deg, width, height)
    colour = tuple(int(c) for c in colour_bgr)
    ring_radius, thickness = int(round(radius * 1.6)), max(1, radius // 3)
    reach = _reach(radius, filled)
    for x in _copies_x(i, width, reach):
        if filled:
            cv2.circle(image, (x, j), radius + 1, (0, 0, 0), -1, cv2.LINE_8)
            cv2.circle(image, (x, j), radius, colour, -1, cv2.LINE_8)
        else:
            cv2.circle(image, (x, j), ring_radius, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.circle(image, (x, j), ring_radius, colour, thickness, cv2.LINE_AA)
    if label:
        scale = label_scale(width)
        taken = [] if taken is None else taken
        x, y = place_label(label, (i, j), reach, scale, (width, height), taken,
                           prefer=label_side or ("right" if filled else "below"))
        taken.append(draw_label(image, label, x, y, colour, scale, border=not filled))
    return i, j


def draw_trail(canvas_bgr: np.ndarray, canvas_alpha: np.ndarray, points_deg: Sequence[tuple[float, float]],
               colour_bgr: Sequence[int], *, thickness: int) -> None:
    """Draw a track's recent path into a colour canvas (H, W, 3) uint8 and an alpha canvas (H, W) uint8 (0..255).

    ``points_deg``: (azimuth, elevation) pairs, oldest first; segment ``s`` gets alpha ``255 (s + 1) / len(points)``,
    so the path fades out into the past. A segment crossing the seam takes the short way round and is drawn on both
    edges.
    """
    height, width = canvas_alpha.shape
    if len(points_deg) < 2:
        return
    az = np.array([p[0] for p in points_deg])
    el = np.array([p[1] for p in points_deg])
    u, v = sph_to_equirect(az, el, width, height)
    colour = tuple(int(c) for c in colour_bgr)
    for s in range(len(points_deg) - 1):
        alpha = int(round(255 * (s + 1) / len(points_deg)))
        du = float(horizontal_pixel_offset(u[s], u[s + 1], width))
        start = (float(u[s]), float(v[s]))
        end = (start[0] + du, float(v[s + 1]))
        low, high = min(start[0], end[0]), max(start[0], end[0])
        shifts = [0.0]
        if low < thickness:
            shifts.append(float(width))
        if high >= width - thickness:
            shifts.append(-float(width))
        for shift in shifts:
            p0 = (int(round(start[0] + shift)), int(round(start[1])))
            p1 = (int(round(end[0] + shift)), int(round(end[1])))
            cv2.line(canvas_bgr, p0, p1, colour, thickness, cv2.LINE_AA)
            cv2.line(canvas_alpha, p0, p1, alpha, thickness, cv2.LINE_AA)


@dataclass
class OverlayResult:
    """What :func:`render_overlay_video` wrote."""

    path: Path
    num_frames: int
    fps: float
    frame_size: tuple[int, int]  # (width, height) of the output frames, timeline strip included
    audio_muxed: bool
    snapshots: list[Path] = field(default_factory=list)


def _name(class_index: int) -> str:
    return CLASS_NAMES[class_index] if class_index < NUM_CLASSES else str(class_index)


def _active(events: Events | None, num_label_frames: int) -> np.ndarray:
    """(num_label_frames, NUM_CLASSES) bool: classes with at least one event in each label frame."""
    active = np.zeros((num_label_frames, NUM_CLASSES), dtype=bool)
    if events is not None and len(events):
        keep = (events.frame < num_label_frames) & (events.class_index < NUM_CLASSES)
        active[events.frame[keep], events.class_index[keep]] = True
    return active


class OverlayRenderer:
    """Composes output frames: panorama (height × width) with markers and trails, over a timeline strip.

    prediction / reference: the clip's events (reference optional). width, height: panorama size in pixels.
    num_label_frames: length of the timeline in label frames (events past it are not drawn).
    """

    def __init__(self, prediction: Events, reference: Events | None, *, width: int, height: int,
                 num_label_frames: int, trail_s: float = 1.0) -> None:
        self.prediction, self.reference = prediction, reference
        self.width, self.height = int(width), int(height)
        self.num_label_frames = max(1, int(num_label_frames))
        self.trail_frames = max(0, int(round(trail_s * timing.LABEL_FRAMES_PER_SECOND)))
        self.radius = marker_radius_px(self.width)
        self.pred_frames = prediction.per_frame(self.num_label_frames)
        self.ref_frames = reference.per_frame(self.num_label_frames) if reference is not None else None
        self.tracks = [{(e.class_index, e.source): (e.azimuth_deg, e.elevation_deg) for e in events}
                       for events in self.pred_frames]
        self._build_strip()

    # ----------------------------------------------------------------------------------------------- timeline
    def _build_strip(self) -> None:
        self.row_px = max(10, 2 * int(round(self.height / 80)))  # even: half for the reference, half the prediction
        self.header_px = self.row_px + 4
        strip_h = self.header_px + NUM_CLASSES * self.row_px + 2
        strip_h += strip_h % 2  # even frame sizes keep video encoders happy
        self.strip_h = strip_h
        # Class names at a size that fills the row; smaller (down to 0.25) when the longest would take more than a
        # third of the width; only then are names cut, by their measured width.
        self.font_scale = max(0.3, 0.6 * self.row_px / 22)
        self.swatch_px = self.row_px - 3
        margin = self.swatch_px + 8
        longest = max(cv2.getTextSize(name, _FONT, self.font_scale, 1)[0][0] for name in CLASS_NAMES)
        if longest + margin > self.width // 3:
            self.font_scale = max(0.25, self.font_scale * (self.width // 3 - margin) / longest)
        names_w = max(cv2.getTextSize(name, _FONT, self.font_scale, 1)[0][0] for name in CLASS_NAMES) + margin
        self.label_w = min(names_w, self.width // 3)
        self.duration_s = self.num_label_frames * timing.LABEL_HOP_S
        strip = np.full((strip_h, self.width, 3), 24, dtype=np.uint8)
        self.plot_w = self.width - self.label_w
        # Each column shows whether a class is active anywhere in the label frames it spans.
        edges = np.floor(np.arange(self.plot_w + 1) * self.num_label_frames / self.plot_w).astype(np.int64)
        edges[-1] = self.num_label_frames
        starts = np.minimum(edges[:-1], self.num_label_frames - 1)
        ref = _active(self.reference, self.num_label_frames)
        pred = _active(self.prediction, self.num_label_frames)
        ref_cols = np.maximum.reduceat(ref, starts, axis=0) if self.reference is not None else None  # (plot_w, C)
        pred_cols = np.maximum.reduceat(pred, starts, axis=0)
        half = self.row_px // 2
        for c in range(NUM_CLASSES):
            top = self.header_px + c * self.row_px
            colour = np.array(class_colour_bgr(c), dtype=np.uint8)
            strip[top + self.row_px - 1, self.label_w:] = 48  # row separator
            if ref_cols is not None:
                dim = (colour.astype(np.float32) * 0.55).astype(np.uint8)
                strip[top:top + half - 1, self.label_w:][:, ref_cols[:, c]] = dim
            strip[top + half:top + self.row_px - 1, self.label_w:][:, pred_cols[:, c]] = colour
            baseline = top + self.row_px - max(1, self.row_px // 5)
            # A swatch in the class colour, the name in light grey: dark class colours stay legible on the strip.
            cv2.rectangle(strip, (2, top + 1), (1 + self.swatch_px, top + self.swatch_px),
                          tuple(int(x) for x in colour), -1)
            cv2.putText(strip, self._fit(CLASS_NAMES[c], self.label_w - self.swatch_px - 6),
                        (self.swatch_px + 5, baseline), _FONT, self.font_scale, (225, 225, 225), 1, cv2.LINE_AA)
        clock_w = cv2.getTextSize(self._clock(self.duration_s), _FONT, self.font_scale, 1)[0][0] + 8
        keys = ("rows: reference (upper, dim) / prediction (lower)   panorama: disc = prediction, ring = reference",
                "rows: reference (upper) / prediction (lower); ring = reference, disc = prediction",
                "upper: reference, lower: prediction")
        if self.reference is None:
            keys = ("rows: prediction   panorama: disc = prediction", "prediction")
        key = next((k for k in keys if cv2.getTextSize(k, _FONT, self.font_scale, 1)[0][0] + 6 <= self.width - clock_w),
                   "")
        cv2.putText(strip, key, (3, self.header_px - 4), _FONT, self.font_scale, (200, 200, 200), 1, cv2.LINE_AA)
        self.clock_x = self.width - clock_w + 4
        self.strip = strip

    def _fit(self, text: str, width_px: int) -> str:
        """``text``, cut (ending in ".") only as far as needed to be at most ``width_px`` wide."""
        if cv2.getTextSize(text, _FONT, self.font_scale, 1)[0][0] <= width_px:
            return text
        while len(text) > 1 and cv2.getTextSize(text + ".", _FONT, self.font_scale, 1)[0][0] > width_px:
            text = text[:-1]
        return text + "."

    def _clock(self, time_s: float) -> str:
        return f"{time_s:.1f} / {self.duration_s:.1f} s"

    def _playhead_x(self, time_s: float) -> int:
        frac = time_s / (self.num_label_frames * timing.LABEL_HOP_S)
        return self.label_w + int(min(max(frac, 0.0), 1.0) * (self.plot_w - 1))

    # ----------------------------------------------------------------------------------------------- frames
    def _trail(self, label_frame: int, key: tuple[int, int]) -> list[tuple[float, float]]:
        points = [self.tracks[label_frame][key]]
        for back in range(1, self.trail_frames + 1):
            n = label_frame - back
            if n < 0 or key not in self.tracks[n]:
                break
            previous = self.tracks[n][key]
            if angular_distance_deg(previous[0], previous[1], points[-1][0], points[-1][1]) > TRAIL_BREAK_DEG:
                break
            points.append(previous)
        return points[::-1]

    def render(self, panorama_bgr: np.ndarray, label_frame: int, time_s: float) -> np.ndarray:
        """Output frame (height + strip height, width, 3) uint8 BGR for a panorama (height, width, 3) uint8 BGR."""
        if panorama_bgr.shape != (self.height, self.width, 3):
            raise ValueError(f"panorama must be ({self.height}, {self.width}, 3), got {panorama_bgr.shape}")
        pano = panorama_bgr.copy()
        inside = 0 <= label_frame < self.num_label_frames
        pred = self.pred_frames[label_frame] if inside else []
        ref = self.ref_frames[label_frame] if inside and self.ref_frames is not None else []
        sides: dict[tuple[int, int], str] = {}  # a moving source's name goes off its path: neither on its trail
        if self.trail_frames and pred:                # nor where it is heading
            trails = [(e.class_index, self._trail(label_frame, (e.class_index, e.source))) for e in pred]
            for e, (_, points) in zip(pred, trails):
                if len(points) > 1:
                    (az0, el0), (az1, el1) = points[-2], points[-1]
                    u, v = sph_to_equirect(np.array([az0, az1]), np.array([el0, el1]), self.width, self.height)
                    across, up = abs(float(horizontal_pixel_offset(u[0], u[1], self.width))), abs(float(v[1] - v[0]))
                    if max(across, up) >= 0.5:  # moved by half a pixel or more in the last label frame
                        sides[(e.class_index, e.source)] = "below" if across >= up else "right"
            trails = [(c, t) for c, t in trails if len(t) > 1]
            if trails:
                colour = np.zeros(pano.shape, dtype=np.uint8)
                alpha = np.zeros(pano.shape[:2], dtype=np.uint8)
                for c, points in trails:
                    draw_trail(colour, alpha, points, class_colour_bgr(c), thickness=max(1, self.radius // 2))
                x, y, w, h = cv2.boundingRect(alpha)  # blend only where trails are: most of the frame has none
                if w and h:
                    a = alpha[y:y + h, x:x + w, None].astype(np.float32) * (0.8 / 255)
                    roi = pano[y:y + h, x:x + w].astype(np.float32)
                    pano[y:y + h, x:x + w] = (roi * (1 - a) + colour[y:y + h, x:x + w] * a).astype(np.uint8)
        # Rings under discs; discs' names first, then the rings' names where room is left. A ring is named unless a
        # disc of its class lies within the DCASE 20° threshold (a hit: the disc's name already says it).
        rings = [(e, draw_marker(pano, e.azimuth_deg, e.elevation_deg, class_colour_bgr(e.class_index),
                                 radius=self.radius, filled=False)) for e in ref]
        taken: list[Box] = []
        for e in pred:
            draw_marker(pano, e.azimuth_deg, e.elevation_deg, class_colour_bgr(e.class_index), radius=self.radius,
                        filled=True, label=_name(e.class_index), taken=taken,
                        label_side=sides.get((e.class_index, e.source)))
        scale = label_scale(self.width)
        for e, pixel in rings:
            if any(p.class_index == e.class_index and angular_distance_deg(
                    p.azimuth_deg, p.elevation_deg, e.azimuth_deg, e.elevation_deg) <= 20.0 for p in pred):
                continue
            x, y = place_label(_name(e.class_index), pixel, _reach(self.radius, filled=False), scale,
                               (self.width, self.height), taken, prefer="below")
            taken.append(draw_label(pano, _name(e.class_index), x, y, class_colour_bgr(e.class_index), scale,
                                    border=True))
        strip = self.strip.copy()
        x = self._playhead_x(time_s)
        cv2.line(strip, (x, self.header_px - 2), (x, self.strip_h - 1), (255, 255, 255), 1)
        cv2.putText(strip, self._clock(time_s), (self.clock_x, self.header_px - 4), _FONT, self.font_scale,
                    (235, 235, 235), 1, cv2.LINE_AA)
        return np.concatenate([pano, strip], axis=0)


def snapshot_frames(num_frames: int, fps: float, count: int, times_s: Sequence[float],
                    active: np.ndarray | None = None) -> list[int]:
    """Video frames to save as PNG: ``count`` spread over the frames that show events (``active``, (num_frames,)
    bool; the middle of each of ``count`` equal shares of them, so never an empty first frame), or over the whole
    video when none does; plus the frames at ``times_s`` (seconds). Sorted, without repeats."""
    frames = set()
    if count > 0:
        candidates = np.flatnonzero(active) if active is not None and np.any(active) else np.arange(num_frames)
        picks = np.floor((np.arange(count) + 0.5) * len(candidates) / count).astype(np.int64)
        frames.update(int(candidates[k]) for k in np.minimum(picks, len(candidates) - 1))
    for t in times_s:
        if t < 0 or t * fps > num_frames - 0.5:
            raise ValueError(f"snapshot time {t:g} s is outside the video (0 .. {num_frames / fps:.2f} s)")
        frames.add(min(num_frames - 1, int(round(t * fps))))
    return sorted(frames)


def render_overlay_video(
    video_path: str | os.PathLike, out_path: str | os.PathLike, prediction: Events, reference: Events | None = None, *,
    audio_path: str | os.PathLike | None = None, size: tuple[int, int] | None = None, trail_s: float = 1.0,
    snapshot_count: int = 0, snapshot_times_s: Sequence[float] = (),
    progress: Callable[[int], None] | None = None,
) -> OverlayResult:
    """Render the overlay video of a clip (see the module docstring) to ``out_path`` (.mp4).

    size: (width, height) of the panorama in the output (default: the video's own). The output frames are the
    panorama plus the timeline strip below it. snapshot_count / snapshot_times_s: also save those frames (evenly
    spread over the frames with events, see :func:`snapshot_frames` / at those times in seconds) as
    ``<out stem>_frameNNNNNN.png`` beside the video. progress: called with the
    number of frames done after each batch. Returns an :class:`OverlayResult`.
    """
    video_path, out_path = Path(video_path), Path(out_path)
    if audio_path is not None:
        from av_seld.io.audio import wav_info

        wav_info(audio_path)  # fail on a bad audio file before spending time on the video
    width, height = size if size is not None else (None, None)
    reader = VideoReader(video_path, width, height, resize="opencv")
    num_frames, fps, width, height = len(reader), reader.fps, reader.width, reader.height
    warn_if_not_equirectangular(video_path, width, height)  # the frame drawn on, stretched or not
    label_of_frame = label_frames_of_video_frames(num_frames, fps)
    num_label = int(label_of_frame[-1]) + 1
    for name, events in (("prediction", prediction), ("reference", reference)):
        if events is not None and len(events) and events.num_frames > num_label:
            logger.warning("%s has events up to label frame %d; the %.2f s video covers %d label frames, the rest "
                           "is not drawn", name, events.num_frames - 1, num_frames / fps, num_label)
    renderer = OverlayRenderer(prediction, reference, width=width, height=height, num_label_frames=num_label,
                               trail_s=trail_s)
    out_size = (width, height + renderer.strip_h)
    # Frames with events: the reference's when there is one (what the clip holds), else the prediction's.
    shown = renderer.ref_frames if renderer.ref_frames is not None else renderer.pred_frames
    active = np.array([0 <= n < len(shown) and len(shown[n]) > 0 for n in label_of_frame.tolist()], dtype=bool)
    snapshots_at = set(snapshot_frames(num_frames, fps, snapshot_count, snapshot_times_s, active))
    snapshots: list[Path] = []
    with VideoWriter(out_path, fps, out_size, audio=audio_path, channels="bgr") as writer:
        for indices, batch in reader.batches(batch_frames=DECODE_BATCH):
            for k, rgb in zip(indices.tolist(), batch):
                out = renderer.render(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), int(label_of_frame[k]), k / fps)
                writer.write(out)
                if k in snapshots_at:
                    snap = out_path.with_name(f"{out_path.stem}_frame{k:06d}.png")
                    with atomic_path(snap) as snap_tmp:
                        if not cv2.imwrite(os.fspath(snap_tmp), out):
                            raise OSError(f"{snap}: OpenCV could not write the PNG")
                    snapshots.append(snap)
            if progress is not None:
                progress(len(indices))
    return OverlayResult(out_path, num_frames, fps, out_size, writer.audio_muxed, snapshots)


def parse_times(text: str) -> list[float]:
    """'1.5,3,10' -> [1.5, 3.0, 10.0] seconds."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"snapshot times must be comma-separated seconds, got {text!r}") from None

