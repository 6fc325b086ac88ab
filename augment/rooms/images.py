"""Simulated shoebox rooms: the image-source model, its absorption calibrated to an RT60, and the responses of
the reflections.

Images of a source in an Lx × Ly × Lz box: along each axis, image q ∈ ℤ sits at q·L + (s if q is even else L − s)
and has met |q| walls; an image's amplitude is β^(|qx|+|qy|+|qz|) / distance (1 at 1 m), β = √(1 − α) for an
energy absorption α shared by all six walls (the convention of pyroomacoustics' ``ShoeBox``, whose image positions
and damping a test compares with ours). α is calibrated so that the image model's own Schroeder decay equals the
target RT60 (T20: a line through the −5 .. −25 dB part of the backward-integrated energy of a reference source
1.5 m from the listener, extrapolated to −60 dB, as ``pyroomacoustics.experimental.measure_rt60`` computes it),
by bisection starting from pyroomacoustics' ``inverse_sabine``. Neither textbook formula fits the image model
well: with one α on every wall it decays slower than Eyring predicts (images along the long axis meet fewer
walls). On four test rooms (RT60 0.2–0.6 s) Eyring's α gave T20s 30–45 % too long and Sabine's −14 % to +20 %
(both before the 50 Hz high-pass of ``images_response``); calibrated and high-passed, the T20 measured on the W
response was 4–8 % short of the target (T30 within ±6 %). Absorption is the same at all frequencies (no air
absorption, no frequency-dependent walls, no scattering).

Images are enumerated within a sphere of radius c·T around the listener, T = direct delay + min(RT60,
``max_response_s``): a response is as long as its decay to −60 dB, never longer. Beyond the first ``early_ms``
after the direct sound, images are thinned at random (kept with probability p, amplitude / √p, so the expected
energy is unchanged) to at most about ``max_images`` per response; the thinning is seeded by the room and the
source position, so it does not depend on the order of events or the formats.

Each image contributes a delayed, attenuated copy with the gains of its direction of arrival:
- FOA: the ACN/SN3D gains [1, y, z, x] of the image's unit direction (``spatial.foa_gains``).
- MIC: per capsule, the delay of the path from the image to the capsule (tetrahedron of radius 4.2 cm around the
  listener) and the capsule gain (1 − a) + a (1 + u_m · d) / 2 of ``spatial.render_mic`` (a = ``mic_directivity``).
Early images get a 16-tap Kaiser-windowed sinc fractional delay, later ones linear interpolation (a gentle low-pass
on the dense tail). The direct sound is not in these responses: it is rendered with ``spatial.render_foa`` /
``spatial.render_mic`` at gain 1/d, delayed by round(d / c · fs) samples, so it is exactly the anechoic model and
exactly the labelled direction, sample by sample for a moving source.

How close the MIC model is to the real array. It is the free-field model of ``augment.spatial`` applied to every
image: capsules in free air with an optional frequency-independent cardioid-ish gain, no sphere. Compared with the
rigid-sphere array of docs/conventions.md it misses the scattering of the 4.2 cm sphere (inter-capsule delays 1.5× the
free-field ones at low frequencies, falling towards free-field above about 3 kHz, and level differences between
capsules growing from < 0.1 dB at 200 Hz to 10–14 dB at 6–8 kHz; see ``augment.spatial``), for the direct sound
and for every reflection alike. So the inter-capsule delays, level differences and coherence of the reverberant
field are those of free-field capsules, not of a sphere: right below a few hundred Hz, approximate above (the
sphere would also shadow reflections arriving from behind a capsule). The images' capsule delays are exact path
lengths (spherical waves), the gains far-field. Measured MIC responses (``augment.rooms.measured``) avoid all of this.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from augment.rooms.config import RoomConfig
from av_seld.arrays import MIC_CAPSULES_XYZ, MIC_RADIUS_M, SPEED_OF_SOUND
from av_seld.geometry import sph_to_cart
from av_seld.timing import SAMPLE_RATE

C = SPEED_OF_SOUND
SINC_HALF_TAPS = 8  # early reflections: a 16-tap windowed-sinc fractional delay
_SINC_BETA = 8.0
_HIGHPASS_HZ = 50.0  # reflections are high-passed (2nd-order Butterworth), see images_response

@dataclass(frozen=True)
class ShoeboxRoom:
    """One simulated room: size (x, y, z) in m, target RT60 in s, listener (array centre) position in m."""

    size_m: tuple[float, float, float]
    rt60_s: float
    listener_m: tuple[float, float, float]

    @functools.cached_property
    def absorption(self) -> float:
        """Energy absorption α of every wall that gives the image model an RT60 (T20) of ``rt60_s``."""
        return _calibrated_absorption(self)

    @property
    def reflection(self) -> float:
        """Amplitude reflection coefficient β = √(1 − α)."""
        return math.sqrt(1.0 - self.absorption)


def sample_room(rng: np.random.Generator, config: RoomConfig) -> ShoeboxRoom:
    """A random room and listener position (the listener at least 30 % of the size from the walls horizontally)."""
    size = tuple(float(rng.uniform(*r)) for r in (config.length_m, config.width_m, config.height_m))
    rt60 = float(rng.uniform(*config.rt60_s))
    listener = (float(rng.uniform(0.3, 0.7) * size[0]), float(rng.uniform(0.3, 0.7) * size[1]),
                float(rng.uniform(*config.listener_height_m)))
    return ShoeboxRoom(size, rt60, listener)


def distance_to_walls(room: ShoeboxRoom, directions_xyz: np.ndarray) -> np.ndarray:
    """Distance in m from the listener to the room's boundary along unit vectors (..., 3): shape (...)."""
    size, p = np.asarray(room.size_m), np.asarray(room.listener_m)
    u = np.asarray(directions_xyz, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(u > 1e-12, (size - p) / u, np.where(u < -1e-12, -p / u, np.inf))
    return t.min(axis=-1)


@dataclass(frozen=True)
class Images:
    """Image sources of one source position (the direct path excluded), relative to the listener.

    vectors (K, 3) m from the listener to each image, distance (K,) m, amplitude (K,) including wall reflections,
    1/distance and thinning, early (K,) bool: within ``early_ms`` of the direct sound, order (K,) walls met.
    """

    vectors: np.ndarray
    order: np.ndarray
    distance: np.ndarray
    amplitude: np.ndarray
    early: np.ndarray
    direct_distance: float


def image_sources(room: ShoeboxRoom, source_m, max_distance_m: float, early_distance_m: float,
                  max_images: int, rng: np.random.Generator | None = None) -> Images:
    """All image sources within ``max_distance_m`` of the listener (order ≥ 1).

    Images farther than ``early_distance_m`` are kept with probability p = min(1, max_images / expected count)
    (amplitude scaled by 1/√p), drawn from ``rng`` (required when thinning happens).
    """
    size = np.asarray(room.size_m, dtype=np.float64)
    src = np.asarray(source_m, dtype=np.float64)
    lis = np.asarray(room.listener_m, dtype=np.float64)
    if np.any(src <= 0) or np.any(src >= size):
        raise ValueError(f"source {src} is not inside the room {size}")
    beta = room.reflection
    expected = 4.0 / 3.0 * math.pi * max_distance_m**3 / float(np.prod(size))
    keep = min(1.0, max_images / max(expected, 1.0))
    axes = []
    for a in range(3):
        reach = math.ceil(max_distance_m / size[a]) + 1
        q = np.arange(-reach, reach + 1)
        coord = q * size[a] + np.where(q % 2 == 0, src[a], size[a] - src[a])
        axes.append((np.abs(q), coord - lis[a]))
    (oy, dy), (oz, dz) = axes[1], axes[2]
    dyz2 = dy[:, None] ** 2 + dz[None, :] ** 2
    oyz = oy[:, None] + oz[None, :]
    r2 = max_distance_m**2
    vectors, orders, dists, early_flags, scales = [], [], [], [], []
    for ox, dx in zip(*axes[0]):
        d2 = dx * dx + dyz2
        iy, iz = np.nonzero(d2 <= r2)
        if iy.size == 0:
            continue
        order = ox + oyz[iy, iz]
        dist = np.sqrt(d2[iy, iz])
        early = dist <= early_distance_m
        scale = np.ones(iy.size)
        if keep < 1.0:
            kept = early | (rng.random(iy.size) < keep)
            scale = np.where(early, 1.0, 1.0 / math.sqrt(keep))
            iy, iz, order, dist, early, scale = iy[kept], iz[kept], order[kept], dist[kept], early[kept], scale[kept]
        vectors.append(np.stack([np.full(iy.size, dx), dy[iy], dz[iz]], axis=1))
        orders.append(order), dists.append(dist), early_flags.append(early), scales.append(scale)
    vectors, order, dist = np.concatenate(vectors), np.concatenate(orders), np.concatenate(dists)
    early, scale = np.concatenate(early_flags), np.concatenate(scales)
    reflected = order > 0
    direct = float(np.linalg.norm(src - lis))
    amplitude = beta ** order[reflected] / np.maximum(dist[reflected], 1e-3) * scale[reflected]
    return Images(vectors[reflected], order[reflected], dist[reflected], amplitude, early[reflected], direct)


def _schroeder_t20(order: np.ndarray, distance: np.ndarray, weight: np.ndarray, beta: float) -> float:
    """T20 in s of an omni response made of impulses (β^order / distance · √weight) at distance / c.

    As ``pyroomacoustics.experimental.measure_rt60(decay_db=20)``: the backward-integrated energy on a uniform
    time grid (here 0.5 ms bins), a least-squares line through its −5 .. −25 dB part, extrapolated to −60 dB.
    """
    energy = np.bincount((distance / C * 2000).astype(np.int64), weight * beta ** (2.0 * order) / distance**2)
    decay = np.cumsum(energy[::-1])[::-1]
    level = 10 * np.log10(np.maximum(decay, 1e-300) / decay[0])
    fit = (level <= -5) & (level >= -25)
    if level[-1] > -25 or fit.sum() < 3:
        return float("inf")
    slope = np.polyfit(np.flatnonzero(fit) / 2000, level[fit], 1)[0]  # dB per s
    return float(-60.0 / slope) if slope < 0 else float("inf")


def _calibrated_absorption(room: ShoeboxRoom) -> float:
    """α with which the image model's T20 equals ``room.rt60_s`` (see the module docstring)."""
    import pyroomacoustics as pra

    listener = np.asarray(room.listener_m)
    size = np.asarray(room.size_m)
    source = np.clip(listener + 1.5 * sph_to_cart(30.0, 10.0), 0.2, size - 0.2)
    probe = ShoeboxRoom(room.size_m, room.rt60_s, room.listener_m)
    probe.__dict__["absorption"] = 0.0  # β = 1: amplitudes are 1 / distance, times the thinning weight
    reach = float(np.linalg.norm(source - listener)) + C * room.rt60_s
    images = image_sources(probe, source, reach, 0.0, 40_000, np.random.default_rng(0))
    order = np.concatenate([[0], images.order])
    distance = np.concatenate([[np.linalg.norm(source - listener)], images.distance])
    weight = (np.concatenate([[1.0 / distance[0]], images.amplitude]) * distance) ** 2
    sort = np.argsort(distance)
    order, distance, weight = order[sort], distance[sort], weight[sort]
    try:
        guess = float(pra.inverse_sabine(room.rt60_s, list(room.size_m), c=C)[0])
    except ValueError:  # Sabine asks for α > 1: a very short RT60 for the room
        guess = 0.9
    lo, hi = 1e-4, 0.9999  # T20 falls as α grows
    alpha = min(max(guess, lo), hi)
    for _ in range(40):
        t20 = _schroeder_t20(order, distance, weight, math.sqrt(1.0 - alpha))
        if abs(t20 - room.rt60_s) < 0.005 * room.rt60_s:
            break
        lo, hi = (alpha, hi) if t20 > room.rt60_s else (lo, alpha)
        alpha = 0.5 * (lo + hi)
    return float(alpha)


def _place(delay_samples: np.ndarray, weights: np.ndarray, exact: np.ndarray, length: int) -> np.ndarray:
    """Sum of impulses weights (K, C) at fractional delays (K,) into a (C, length) response.

    ``exact`` (K,) bool: windowed-sinc fractional delay (16 taps); the others linear interpolation.
    """
    out = np.zeros((weights.shape[1], length), dtype=np.float64)
    for mask, taps in ((exact, np.arange(-SINC_HALF_TAPS + 1, SINC_HALF_TAPS + 1)), (~exact, np.arange(2))):
        if not mask.any():
            continue
        t = delay_samples[mask]
        base = np.floor(t).astype(np.int64)
        x = taps[None, :] - (t - base)[:, None]  # (k, taps): tap offset from the exact arrival
        if len(taps) == 2:
            kernel = np.clip(1 - np.abs(x), 0, None)
        else:
            window = np.i0(_SINC_BETA * np.sqrt(np.clip(1 - (x / SINC_HALF_TAPS) ** 2, 0, None)))
            kernel = np.sinc(x) * window / np.i0(_SINC_BETA)
        index = (base[:, None] + taps[None, :]).ravel()
        valid = (index >= 0) & (index < length)
        for c in range(weights.shape[1]):
            values = (weights[mask, c][:, None] * kernel).ravel()
            out[c] += np.bincount(index[valid], values[valid], minlength=length)
    return out


def _foa_gains_xyz(unit: np.ndarray) -> np.ndarray:
    """(K, 3) unit vectors → (K, 4) ACN/SN3D gains [1, y, z, x], the same as ``spatial.foa_gains``."""
    return np.stack([np.ones(len(unit)), unit[:, 1], unit[:, 2], unit[:, 0]], axis=1)


def images_response(images: Images, fmt: str, length: int, mic_directivity: float = 0.0,
                    part: str = "all") -> np.ndarray:
    """(4, length) float32 response of the reflections in ``images``: FOA (W, Y, Z, X) or MIC (M1..M4).

    Sample 0 is the emission time. part: 'all', 'early' (images within ``early_ms`` of the direct sound) or 'late'.
    Every image has a positive amplitude, so where they are dense their sum has a large DC and sub-bass part that
    no room has (Allen & Berkley 1979 high-pass their image responses for this); we high-pass at 50 Hz. Without it
    the tail adds up coherently and decays about 15 % slower than the images' energies do.
    """
    select = {"all": np.ones_like(images.early), "early": images.early, "late": ~images.early}[part]
    vec, dist, amp, early = images.vectors[select], images.distance[select], images.amplitude[select], \
        images.early[select]
    unit = vec / dist[:, None]
    highpass = butter(2, _HIGHPASS_HZ, "highpass", fs=SAMPLE_RATE, output="sos")
    if fmt == "foa":
        response = _place(dist / C * SAMPLE_RATE, amp[:, None] * _foa_gains_xyz(unit), early, length)
        return sosfilt(highpass, response, axis=1).astype(np.float32)
    capsules = MIC_RADIUS_M * MIC_CAPSULES_XYZ  # (4, 3) m from the array centre
    gains = (1 - mic_directivity) + mic_directivity * 0.5 * (1 + unit @ MIC_CAPSULES_XYZ.T)  # (K, 4)
    out = np.empty((4, length), dtype=np.float32)
    for m in range(4):
        path = np.linalg.norm(vec - capsules[m], axis=1)
        out[m] = sosfilt(highpass, _place(path / C * SAMPLE_RATE, (amp * gains[:, m])[:, None], early, length)[0])
    return out
