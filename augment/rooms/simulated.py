"""Events rendered in a simulated shoebox room (:class:`SimulatedRoom`): the direct sound exactly as the anechoic
model, the reflections from the image-source model of :mod:`augment.rooms.images`.

Moving sources. The direct sound follows the trajectory exactly. Reflections: the signal is cut into Hann windows
(``crossfade_ms`` hop, 50 % overlap, the windows sum to one, so no clicks), each window is convolved with the early
reflections of the grid direction nearest to the window's centre (a Fibonacci grid of about ``grid_spacing_deg``
spacing at the event's distance; responses are cached per position and clip), and the late reverberation, which
hardly depends on where the source is, is one response at the event's start position convolved with the whole
signal. A moving source keeps its distance (no Doppler shift); the distance is chosen so that the whole
trajectory stays inside the room.
"""

from __future__ import annotations

import math

import numpy as np

from augment import spatial
from augment.rooms.config import RoomConfig
from augment.rooms.images import C, SINC_HALF_TAPS, Images, ShoeboxRoom, distance_to_walls, image_sources, \
    images_response
from augment.rooms.switching import add_at, convolve, render_switched
from augment.scenes import EventRender
from av_seld.arrays import MIC_RADIUS_M
from av_seld.geometry import sph_to_cart
from av_seld.timing import SAMPLE_RATE

def _render_direct(fmt: str, signal: np.ndarray, azimuth, elevation, directivity: float) -> np.ndarray:
    if fmt == "foa":
        return spatial.render_foa(signal, azimuth, elevation)
    return spatial.render_mic(signal, azimuth, elevation, directivity=directivity)


def fibonacci_grid(spacing_deg: float) -> np.ndarray:
    """About evenly spread unit vectors (M, 3), neighbours about ``spacing_deg`` apart."""
    count = max(12, int(round(4 * math.pi / math.radians(spacing_deg) ** 2)))
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    phi = math.pi * (1 + math.sqrt(5)) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


class SimulatedRoom:
    """Renders events in one shoebox room (image-source model); caches image sources and responses per position.

    seed: any integer sequence; with the room it seeds the thinning of late images, per source position.
    """

    def __init__(self, room: ShoeboxRoom, config: RoomConfig, seed=0):
        self.room = room
        self.config = config
        self.seed = list(np.atleast_1d(seed).astype(np.int64))
        self.grid = fibonacci_grid(config.grid_spacing_deg)
        self._images: dict = {}
        self._responses: dict = {}
        rt = min(room.rt60_s, config.max_response_s)
        self.reverb_distance_m = C * rt  # the response lasts this long (in m) after the direct sound

    # -- responses
    def _images_at(self, position: np.ndarray, distance: float, early_only: bool) -> Images:
        key = (tuple(np.round(position * 1000).astype(np.int64)), early_only)
        if key not in self._images:
            early_distance = distance + C * self.config.early_ms / 1000
            reach = early_distance if early_only else distance + self.reverb_distance_m
            thinning = np.random.default_rng(self.seed + [int(v) for v in key[0]])
            self._images[key] = image_sources(self.room, position, reach, early_distance, self.config.max_images,
                                              thinning)
        return self._images[key]

    def response(self, position, fmt: str, part: str = "all") -> np.ndarray:
        """(4, L) reflections-only response (sample 0 = emission) of a source at ``position`` (m, room coordinates)."""
        position = np.asarray(position, dtype=np.float64)
        key = (tuple(np.round(position * 1000).astype(np.int64)), fmt, part)
        if key not in self._responses:
            distance = float(np.linalg.norm(position - np.asarray(self.room.listener_m)))
            early_only = part == "early"
            images = self._images_at(position, distance, early_only)
            reach = distance + (C * self.config.early_ms / 1000 if early_only else self.reverb_distance_m)
            length = int(math.ceil((reach + MIC_RADIUS_M) / C * SAMPLE_RATE)) + 2 * SINC_HALF_TAPS
            self._responses[key] = images_response(images, fmt, length, self.config.mic_directivity, part)
        return self._responses[key]

    def impulse_response(self, azimuth_deg: float, elevation_deg: float, distance_m: float, fmt: str) -> np.ndarray:
        """Full (4, L) response, direct sound included, of a source at a direction and distance from the listener."""
        position = np.asarray(self.room.listener_m) + distance_m * sph_to_cart(azimuth_deg, elevation_deg)
        reflections = self.response(position, fmt)
        delay = int(round(distance_m / C * SAMPLE_RATE))
        impulse = np.zeros(64)
        impulse[32] = 1.0 / distance_m
        direct = _render_direct(fmt, impulse, azimuth_deg, elevation_deg, self.config.mic_directivity)
        out = reflections.copy()
        add_at(out, direct[:, 32 - min(32, delay):], delay - min(32, delay))
        return out

    # -- events
    def _distance(self, rng: np.random.Generator, directions_xyz: np.ndarray, requested: float | None) -> float:
        wanted = float(rng.uniform(*self.config.source_distance_m))  # drawn even when requested: same stream after
        if requested is not None:
            wanted = float(requested)
        room_limit = float(distance_to_walls(self.room, directions_xyz).min()) - self.config.wall_margin_m
        return max(0.2, min(wanted, room_limit))

    def _inside(self, position: np.ndarray) -> np.ndarray:
        margin = self.config.wall_margin_m
        return np.clip(position, margin, np.asarray(self.room.size_m) - margin)

    def render_event(self, signal, azimuth_deg, elevation_deg, rng: np.random.Generator,
                     formats: tuple[str, ...], distance_m: float | None = None) -> EventRender:
        """An event at ``distance_m`` from the listener, or at a random distance (``source_distance_m``) when None;
        either way limited so that the whole trajectory stays ``wall_margin_m`` inside the room (and ≥ 0.2 m)."""
        signal = np.asarray(signal, dtype=np.float32)
        n = len(signal)
        moving = np.ndim(azimuth_deg) == 1
        az = np.broadcast_to(np.asarray(azimuth_deg, dtype=np.float64), (n,))
        el = np.broadcast_to(np.asarray(elevation_deg, dtype=np.float64), (n,))
        step = max(1, n // 400)
        distance = self._distance(rng, sph_to_cart(az[::step], el[::step]), distance_m)
        listener = np.asarray(self.room.listener_m)
        start = listener + distance * sph_to_cart(float(az[0]), float(el[0]))
        delay = int(round(distance / C * SAMPLE_RATE))
        audio = {}
        for fmt in formats:
            direct = _render_direct(fmt, signal / np.float32(distance), azimuth_deg, elevation_deg,
                                    self.config.mic_directivity)
            if not moving:
                reverb = convolve(signal, self.response(start, fmt))
            else:
                reverb = convolve(signal, self.response(start, fmt, "late"))
                hop = max(1, int(round(self.config.crossfade_ms / 1000 * SAMPLE_RATE)))
                centres = np.minimum(np.arange(n // hop + 2) * hop, n - 1)
                nearest = np.argmax(sph_to_cart(az[centres], el[centres]) @ self.grid.T, axis=1)
                early = render_switched(signal, nearest, lambda g, fmt=fmt: self.response(
                    self._inside(listener + distance * self.grid[g]), fmt, "early"), hop)
                add_at(reverb, early, 0)
            out = reverb if reverb.shape[1] >= delay + n else np.pad(reverb, ((0, 0), (0, delay + n - reverb.shape[1])))
            add_at(out, direct, delay)
            audio[fmt] = out
        return EventRender(audio, delay, np.array(az), np.array(el), np.full(n, distance))
