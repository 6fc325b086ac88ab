"""Reverberant rooms for scene synthesis: simulated shoebox rooms or measured 4-channel room responses.

A room turns one event (a mono signal and its static or moving direction) into FOA / MIC audio with reverberation,
and says which direction it rendered (the direct-path direction, for the labels) and how many samples after the
event onset the direct sound arrives.

Simulated shoebox rooms (image-source model)
---------------------------------------------
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
lengths (spherical waves), the gains far-field. Measured MIC responses (below) avoid all of this.

Moving sources. The direct sound follows the trajectory exactly. Reflections: the signal is cut into Hann windows
(``crossfade_ms`` hop, 50 % overlap, the windows sum to one, so no clicks), each window is convolved with the early
reflections of the grid direction nearest to the window's centre (a Fibonacci grid of about ``grid_spacing_deg``
spacing at the event's distance; responses are cached per position and clip), and the late reverberation, which
hardly depends on where the source is, is one response at the event's start position convolved with the whole
signal. A moving source keeps its distance (no Doppler shift); the distance is chosen so that the whole
trajectory stays inside the room.

Measured responses
------------------
``MeasuredRoom`` renders with user-supplied 4-channel responses measured at known directions: a folder with
``foa.csv`` and/or ``mic.csv`` (rows ``file, azimuth, elevation[, distance]``, degrees and metres, optional header,
wav paths relative to the CSV) or ``foa.sofa`` / ``mic.sofa``; or a single ``.sofa`` file, which is FOA when its
``SOFAConventions`` is ``AmbisonicsDRIR`` and MIC otherwise. SOFA is read with h5py: ``Data.IR`` of shape (M, 4, N)
(or (M, 4, 1, N)), ``Data.SamplingRate``, and ``SourcePosition`` (M or 1, 3) of ``Type`` ``spherical`` (azimuth,
elevation in degrees as in docs/conventions.md, radius in m) or ``cartesian`` (m; ``ListenerPosition`` is subtracted
when it is cartesian too; ``ListenerView`` is not applied, i.e. the listener must face +x). FOA responses must be
ACN/SN3D; MIC responses in M1..M4 order. The folder may also be the TAU spatial room impulse response database
(``TAU-SRIR_DB``, Zenodo record 6408611, ``av-seld download tau-srir``): ``rirdata.mat`` names the rooms and
gives the DOA of every response (``rirdata.room(r).rirs(t, h).doa_xyz``, unit vectors), and each room's
``rirs_NN_<name>.mat`` (MATLAB v7.3) holds ``rirs(t, h).foa`` / ``.mic``, [7200 samples × 4 × N] at 24 kHz, per
trajectory t and height h (``read_tau_srir``); it is a set of rooms, one per clip in turn. Responses are resampled
to 24 kHz, aligned so that the direct sound (first sample within 20 dB of the peak) is at sample
``MEASURED_PRE_SAMPLES``, and cut to ``max_response_s``. An event is
rendered with the response of the nearest measured direction, and that direction is the label; a moving event
switches between measured directions with the same crossfaded windows as above.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import logging
import math
import os
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import butter, oaconvolve, resample_poly, sosfilt

from augment import spatial
from augment.scenes import EventRender, RoomAcoustics, SceneConfig
from av_seld.arrays import MIC_CAPSULES_XYZ, MIC_RADIUS_M, SPEED_OF_SOUND
from av_seld.errors import InputError
from av_seld.geometry import cart_to_sph, sph_to_cart, wrap_azimuth
from av_seld.timing import SAMPLE_RATE

log = logging.getLogger(__name__)

C = SPEED_OF_SOUND
MEASURED_PRE_SAMPLES = 16  # a measured response keeps this many samples before its direct sound
_SINC_HALF_TAPS = 8
_SINC_BETA = 8.0
_HIGHPASS_HZ = 50.0  # reflections are high-passed (2nd-order Butterworth), see images_response
# Scene parameters a rooms YAML file may set (the rest of SceneConfig comes from the command line).
SCENE_KEYS = ("event_length_s", "gap_s", "gain_db", "snr_db", "moving_probability", "angular_speed_deg_s",
              "elevation_deg")


# ------------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class RoomConfig:
    """Ranges simulated shoebox rooms are drawn from (uniformly); metres, seconds, degrees."""

    num_rooms: int = 8  # distinct rooms, used in turn by consecutive clips
    length_m: tuple[float, float] = (4.0, 10.0)
    width_m: tuple[float, float] = (3.0, 8.0)
    height_m: tuple[float, float] = (2.5, 4.0)
    rt60_s: tuple[float, float] = (0.2, 0.7)
    listener_height_m: tuple[float, float] = (1.2, 1.8)
    source_distance_m: tuple[float, float] = (1.0, 3.0)
    wall_margin_m: float = 0.3  # sources keep at least this far from every wall
    max_response_s: float = 1.0  # responses end at min(RT60, this) after the direct sound
    max_images: int = 60_000  # about this many images per response at most (late ones thinned)
    early_ms: float = 50.0  # reflections this soon after the direct sound are exact (never thinned)
    grid_spacing_deg: float = 10.0  # direction grid of moving sources' early reflections
    crossfade_ms: float = 50.0  # hop of the crossfaded windows of moving sources
    mic_directivity: float = 0.0  # capsule directivity, as spatial.render_mic (0 = omni)

    def __post_init__(self):
        if self.num_rooms < 1:
            raise ValueError(f"num_rooms must be >= 1, got {self.num_rooms}")
        for name in ("length_m", "width_m", "height_m", "rt60_s", "listener_height_m", "source_distance_m"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if self.listener_height_m[1] > self.height_m[0] - 0.5:
            raise ValueError(f"listener_height_m {self.listener_height_m} must stay 0.5 m below the lowest ceiling "
                             f"(height_m {self.height_m})")
        if min(self.length_m[0], self.width_m[0]) < 2.0:
            raise ValueError("rooms must be at least 2 m long and wide")
        for name in ("wall_margin_m", "max_response_s", "early_ms", "grid_spacing_deg", "crossfade_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_images < 100:
            raise ValueError(f"max_images must be >= 100, got {self.max_images}")
        if not 0.0 <= self.mic_directivity <= 1.0:
            raise ValueError(f"mic_directivity must be in [0, 1], got {self.mic_directivity}")


@dataclass(frozen=True)
class RoomsFile:
    """A rooms YAML file: the room ranges and the scene parameters it sets (a subset of ``SCENE_KEYS``)."""

    room: RoomConfig
    scene: dict = field(default_factory=dict)


def _typed(value, kind: str, where: str, path):
    """``value`` from YAML checked against a dataclass field type ('int', 'float', 'tuple[float, float]')."""
    def number(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(path, f"{where} must be a number, got {v!r}")
        return float(v)

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(path, f"{where} must be an integer, got {value!r}")
        return value
    if kind == "float":
        return number(value)
    if kind == "tuple[float, float]":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise InputError(path, f"{where} must be a list [low, high], got {value!r}")
        return (number(value[0]), number(value[1]))
    raise InputError(path, f"{where} cannot be set in a YAML file")


def load_rooms_config(path: str | os.PathLike) -> RoomsFile:
    """Read a rooms YAML file: a ``room:`` mapping of :class:`RoomConfig` fields and an optional ``scene:`` mapping
    of ``SCENE_KEYS``. Unknown keys, wrong types and invalid ranges raise :class:`InputError` naming the key."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "rooms config not found") from None
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise InputError(path, "must be a mapping with a 'room' section (and optionally 'scene')")
    for key in data:
        if key not in ("room", "scene"):
            raise InputError(path, f"unknown key {key!r} (known: room, scene)")
    if not isinstance(data.get("room"), dict):
        raise InputError(path, "'room' must be a mapping of room parameters")
    sections = {}
    for section, cls, allowed in (("room", RoomConfig, None), ("scene", SceneConfig, SCENE_KEYS)):
        values = data.get(section) or {}
        if not isinstance(values, dict):
            raise InputError(path, f"'{section}' must be a mapping")
        types = {f.name: str(f.type) for f in dataclasses.fields(cls) if allowed is None or f.name in allowed}
        for key, value in values.items():
            if key not in types:
                raise InputError(path, f"unknown key '{section}.{key}' (known: {', '.join(types)})")
            values[key] = _typed(value, types[key], f"{section}.{key}", path)
        sections[section] = values
    try:
        room = RoomConfig(**sections["room"])
        SceneConfig(**sections["scene"])  # checks the ranges now, with the file's name on the error
    except ValueError as err:
        raise InputError(path, str(err)) from None
    return RoomsFile(room, sections["scene"])


# ------------------------------------------------------------------------------------------ shoebox geometry


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
    for mask, taps in ((exact, np.arange(-_SINC_HALF_TAPS + 1, _SINC_HALF_TAPS + 1)), (~exact, np.arange(2))):
        if not mask.any():
            continue
        t = delay_samples[mask]
        base = np.floor(t).astype(np.int64)
        x = taps[None, :] - (t - base)[:, None]  # (k, taps): tap offset from the exact arrival
        if len(taps) == 2:
            kernel = np.clip(1 - np.abs(x), 0, None)
        else:
            window = np.i0(_SINC_BETA * np.sqrt(np.clip(1 - (x / _SINC_HALF_TAPS) ** 2, 0, None)))
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


# -------------------------------------------------------------------------------------------------- rendering


def _render_direct(fmt: str, signal: np.ndarray, azimuth, elevation, directivity: float) -> np.ndarray:
    if fmt == "foa":
        return spatial.render_foa(signal, azimuth, elevation)
    return spatial.render_mic(signal, azimuth, elevation, directivity=directivity)


def _convolve(signal: np.ndarray, response: np.ndarray) -> np.ndarray:
    """(N,) ⊛ (C, L) → (C, N + L − 1) float32 (overlap-add FFT convolution)."""
    return oaconvolve(signal.astype(np.float32)[None, :], response.astype(np.float32), axes=1).astype(np.float32)


def _add(out: np.ndarray, part: np.ndarray, start: int) -> None:
    stop = min(out.shape[1], start + part.shape[1])
    if stop > start:
        out[:, start:stop] += part[:, : stop - start]


def crossfade_windows(num_samples: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Window centres k·hop (k = 0..K−1) and, per sample, the weight of the window before it: ((K,), (N,)).

    Sample n lies between centres k = n // hop and k + 1; their Hann weights are w and 1 − w (they sum to one).
    """
    centres = np.arange(num_samples // hop + 2) * hop
    frac = (np.arange(num_samples) % hop) / hop
    return centres, 0.5 * (1 + np.cos(np.pi * frac))


def render_switched(signal: np.ndarray, window_response: np.ndarray, responses, hop: int) -> np.ndarray:
    """Convolve windows of ``signal`` with per-window responses, overlap-added: (C, N + L − 1) float32.

    window_response: (K,) index into ``responses`` (a sequence of (C, L) arrays, or a callable index → array) for the
    Hann windows centred at k·hop (``crossfade_windows``). All windows convolved with one response are summed first,
    so there is one convolution per distinct response.
    """
    n = len(signal)
    get = responses if callable(responses) else responses.__getitem__
    _, weight = crossfade_windows(n, hop)
    k = np.arange(n) // hop
    before, after = window_response[k], window_response[k + 1]
    out = None
    for g in np.unique(window_response[: k[-1] + 2] if n else []):
        windows = np.flatnonzero(window_response == g)
        lo, hi = max(0, (windows[0] - 1) * hop), min(n, (windows[-1] + 1) * hop)  # where these windows reach
        part = signal[lo:hi] * (weight[lo:hi] * (before[lo:hi] == g) + (1 - weight[lo:hi]) * (after[lo:hi] == g))
        if not np.any(part):
            continue
        response = get(int(g))
        if out is None:
            out = np.zeros((response.shape[0], n + response.shape[1] - 1), dtype=np.float32)
        _add(out, _convolve(part, response), lo)
    if out is None:  # a silent signal
        response = get(int(window_response[0]))
        out = np.zeros((response.shape[0], n + response.shape[1] - 1), dtype=np.float32)
    return out


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
            length = int(math.ceil((reach + MIC_RADIUS_M) / C * SAMPLE_RATE)) + 2 * _SINC_HALF_TAPS
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
        _add(out, direct[:, 32 - min(32, delay):], delay - min(32, delay))
        return out

    # -- events
    def _distance(self, rng: np.random.Generator, directions_xyz: np.ndarray) -> float:
        wanted = float(rng.uniform(*self.config.source_distance_m))
        room_limit = float(distance_to_walls(self.room, directions_xyz).min()) - self.config.wall_margin_m
        return max(0.2, min(wanted, room_limit))

    def _inside(self, position: np.ndarray) -> np.ndarray:
        margin = self.config.wall_margin_m
        return np.clip(position, margin, np.asarray(self.room.size_m) - margin)

    def render_event(self, signal, azimuth_deg, elevation_deg, rng: np.random.Generator,
                     formats: tuple[str, ...]) -> EventRender:
        """An event at a random distance (``source_distance_m``, limited by the room) from the listener."""
        signal = np.asarray(signal, dtype=np.float32)
        n = len(signal)
        moving = np.ndim(azimuth_deg) == 1
        az = np.broadcast_to(np.asarray(azimuth_deg, dtype=np.float64), (n,))
        el = np.broadcast_to(np.asarray(elevation_deg, dtype=np.float64), (n,))
        step = max(1, n // 400)
        distance = self._distance(rng, sph_to_cart(az[::step], el[::step]))
        listener = np.asarray(self.room.listener_m)
        start = listener + distance * sph_to_cart(float(az[0]), float(el[0]))
        delay = int(round(distance / C * SAMPLE_RATE))
        audio = {}
        for fmt in formats:
            direct = _render_direct(fmt, signal / np.float32(distance), azimuth_deg, elevation_deg,
                                    self.config.mic_directivity)
            if not moving:
                reverb = _convolve(signal, self.response(start, fmt))
            else:
                reverb = _convolve(signal, self.response(start, fmt, "late"))
                hop = max(1, int(round(self.config.crossfade_ms / 1000 * SAMPLE_RATE)))
                centres = np.minimum(np.arange(n // hop + 2) * hop, n - 1)
                nearest = np.argmax(sph_to_cart(az[centres], el[centres]) @ self.grid.T, axis=1)
                early = render_switched(signal, nearest, lambda g, fmt=fmt: self.response(
                    self._inside(listener + distance * self.grid[g]), fmt, "early"), hop)
                _add(reverb, early, 0)
            out = reverb if reverb.shape[1] >= delay + n else np.pad(reverb, ((0, 0), (0, delay + n - reverb.shape[1])))
            _add(out, direct, delay)
            audio[fmt] = out
        return EventRender(audio, delay, np.array(az), np.array(el), np.full(n, distance))


# ------------------------------------------------------------------------------------------ measured responses


@dataclass(frozen=True)
class ResponseSet:
    """Measured responses of one format: (M, 4, L) float32 at 24 kHz, direct sound at ``MEASURED_PRE_SAMPLES``,
    measured at azimuth_deg / elevation_deg (M,) and distance_m (M,) (NaN when unknown). ``responses`` is an array,
    or for the TAU-SRIR DB a :class:`TauResponses` that reads them when indexed (``responses[m]`` is (4, L))."""

    fmt: str
    responses: np.ndarray | TauResponses
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    distance_m: np.ndarray
    origin: str


def _prepare(ir: np.ndarray, rate: float, max_response_s: float) -> np.ndarray:
    """(M, 4, N) at ``rate`` → (M, 4, L) float32 at 24 kHz, direct sound aligned at MEASURED_PRE_SAMPLES."""
    ir = np.asarray(ir, dtype=np.float64)
    if rate != SAMPLE_RATE:
        g = gcd(int(round(rate)), SAMPLE_RATE)
        ir = resample_poly(ir, SAMPLE_RATE // g, int(round(rate)) // g, axis=-1)
    length = int(round(max_response_s * SAMPLE_RATE)) + MEASURED_PRE_SAMPLES
    out = np.zeros((ir.shape[0], 4, length), dtype=np.float32)
    for m, h in enumerate(ir):
        envelope = np.abs(h).max(axis=0)
        onset = int(np.argmax(envelope >= 0.1 * envelope.max()))
        h = h[:, max(0, onset - MEASURED_PRE_SAMPLES):]
        shift = max(0, MEASURED_PRE_SAMPLES - onset)
        take = min(h.shape[1], length - shift)
        out[m, :, shift:shift + take] = h[:, :take]
    return out


def _read_response_wav(path: Path, where: Path, line: int) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if not path.is_file():
        raise InputError(where, f"response file {path} not found", line=line)
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise InputError(path, f"cannot be read as audio: {err}") from None
    if audio.shape[1] != 4:
        raise InputError(path, f"has {audio.shape[1]} channel(s); room responses need 4")
    if audio.shape[0] == 0 or not np.any(audio):
        raise InputError(path, "response is empty or silent")
    return audio.T, rate


def read_response_csv(path: str | os.PathLike, fmt: str, max_response_s: float = 2.0) -> ResponseSet:
    """Responses listed in a CSV of ``file, azimuth, elevation[, distance]`` rows (optional header row)."""
    path = Path(path)
    irs, az, el, dist = [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if line == 1 and row[0].strip().lower() in ("file", "path"):
                continue
            if len(row) not in (3, 4):
                raise InputError(path, f"expected 3 or 4 columns (file, azimuth, elevation[, distance]), "
                                       f"found {len(row)}", line=line)
            try:
                values = [float(v) for v in row[1:]]
            except ValueError:
                raise InputError(path, f"azimuth, elevation and distance must be numbers, got {row[1:]}",
                                 line=line) from None
            if not -90 <= values[1] <= 90:
                raise InputError(path, f"elevation {values[1]} is outside [-90, 90]", line=line)
            wav = Path(row[0].strip())
            audio, rate = _read_response_wav(wav if wav.is_absolute() else path.parent / wav, path, line)
            irs.append(_prepare(audio[None], rate, max_response_s)[0])
            az.append(values[0]), el.append(values[1]), dist.append(values[2] if len(values) == 3 else np.nan)
    if not irs:
        raise InputError(path, "lists no responses")
    return ResponseSet(fmt, np.stack(irs), wrap_azimuth(np.array(az)), np.array(el), np.array(dist), str(path))


def _attr(obj, name: str, default=None):
    value = obj.attrs.get(name, default)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        value = value.ravel()[0]
        return value.decode() if isinstance(value, bytes) else str(value)
    return value


def read_sofa(path: str | os.PathLike, fmt: str | None = None, max_response_s: float = 2.0) -> ResponseSet:
    """Responses of a SOFA file (see the module docstring for what is supported). fmt None: from the conventions."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read as SOFA (netCDF4/HDF5): {err}") from None
    with f:
        if fmt is None:
            fmt = "foa" if _attr(f, "SOFAConventions", "") == "AmbisonicsDRIR" else "mic"
        for name in ("Data.IR", "Data.SamplingRate", "SourcePosition"):
            if name not in f:
                raise InputError(path, f"SOFA variable {name} is missing")
        ir = np.asarray(f["Data.IR"][()], dtype=np.float64)
        if ir.ndim == 4 and ir.shape[2] == 1:
            ir = ir[:, :, 0, :]
        if ir.ndim != 3 or ir.shape[1] != 4:
            raise InputError(path, f"Data.IR has shape {ir.shape}; need (M, 4, N) (4 receivers)")
        rates = np.unique(np.asarray(f["Data.SamplingRate"][()], dtype=np.float64).ravel())
        if len(rates) != 1 or rates[0] <= 0:
            raise InputError(path, f"Data.SamplingRate must be one positive value, got {rates}")
        position = np.asarray(f["SourcePosition"][()], dtype=np.float64).reshape(-1, 3)
        kind = str(_attr(f["SourcePosition"], "Type", "spherical")).lower()
        if position.shape[0] not in (1, ir.shape[0]):
            raise InputError(path, f"SourcePosition has {position.shape[0]} rows for {ir.shape[0]} measurements")
        position = np.broadcast_to(position, (ir.shape[0], 3))
        if kind == "cartesian":
            if "ListenerPosition" in f and str(_attr(f["ListenerPosition"], "Type", "cartesian")).lower() \
                    == "cartesian":
                position = position - np.asarray(f["ListenerPosition"][()], dtype=np.float64).reshape(-1, 3)
            az, el = cart_to_sph(position)
            dist = np.linalg.norm(position, axis=1)
        elif kind == "spherical":
            az, el, dist = position[:, 0], position[:, 1], position[:, 2]
        else:
            raise InputError(path, f"SourcePosition Type {kind!r} is not supported (spherical or cartesian)")
    return ResponseSet(fmt, _prepare(ir, float(rates[0]), max_response_s), wrap_azimuth(np.asarray(az, float)),
                       np.asarray(el, dtype=np.float64), np.asarray(dist, dtype=np.float64), str(path))


# ------------------------------------------------------------------------------- TAU spatial room impulse responses

TAU_INFO_FILE = "rirdata.mat"
TAU_FOLDER = "TAU-SRIR_DB"


def tau_srir_folder(path: str | os.PathLike) -> Path | None:
    """The TAU-SRIR DB folder at ``path`` (it holds ``rirdata.mat``) or in ``path/TAU-SRIR_DB``; None if neither."""
    path = Path(path)
    for folder in (path, path / TAU_FOLDER):
        if (folder / TAU_INFO_FILE).is_file():
            return folder
    return None


@dataclass(frozen=True)
class TauRoom:
    """One room of the TAU-SRIR DB: its name, its ``rirs_NN_<name>.mat`` and the DOAs (unit x, y, z) of its
    responses per trajectory and height, ``doa_xyz[t][h]`` (N, 3), in the order of the responses in the file."""

    name: str
    path: Path
    doa_xyz: tuple[tuple[np.ndarray, ...], ...]
    sample_rate: float


def _mat_text(value) -> str:
    return str(np.asarray(value).ravel()[0])


def tau_srir_rooms(folder: str | os.PathLike) -> list[TauRoom]:
    """The rooms that ``rirdata.mat`` lists (``rirdata.room(r).name`` and ``.rirs(t, h).doa_xyz``, ``rirdata.fs``),
    each with its ``rirs_*_<name>.mat`` (checked to exist), in the database's order."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    folder = Path(folder)
    info = folder / TAU_INFO_FILE
    try:
        rirdata = loadmat(info)["rirdata"][0, 0]
        rooms = rirdata["room"].ravel()
        rate = float(np.asarray(rirdata["fs"]).ravel()[0]) if "fs" in rirdata.dtype.names else float(SAMPLE_RATE)
        parsed = []
        for room in rooms:
            name = _mat_text(room["name"])
            rirs = room["rirs"]
            doa = tuple(tuple(np.asarray(rirs[t, h]["doa_xyz"], dtype=np.float64).reshape(-1, 3)
                              for h in range(rirs.shape[1])) for t in range(rirs.shape[0]))
            parsed.append((name, doa))
    except (OSError, ValueError, KeyError, IndexError, TypeError, MatReadError, NotImplementedError) as err:
        raise InputError(info, f"cannot be read as the TAU-SRIR DB's rirdata.mat (rirdata.room(r).name, "
                               f".rirs(t, h).doa_xyz): {err}") from None
    if not parsed:
        raise InputError(info, "lists no rooms")
    out = []
    for name, doa in parsed:
        files = sorted(folder.glob(f"rirs_*_{name}.mat"))
        if len(files) != 1:
            raise InputError(folder, f"room {name!r} of {TAU_INFO_FILE} needs one rirs_NN_{name}.mat here, found "
                                     f"{len(files)}")
        out.append(TauRoom(name, files[0], doa, rate))
    return out


class TauResponses:
    """The (M, 4, L) responses of one room and format, read from its ``.mat`` file when first asked for and
    prepared as the other measured responses (24 kHz, direct sound at ``MEASURED_PRE_SAMPLES``, float32).

    A room holds up to 6480 responses of 7200 samples per format (0.75 GB as float32), and a scene uses a few of
    them, so only the trajectory/height blocks that hold a used response are read (a block is one array of the
    file). ``rirs(t, h).<fmt>`` is a [samples × 4 × N] array: a MATLAB v7.3 (HDF5) file is read with h5py, an older
    MAT-file with scipy.io.loadmat.
    """

    def __init__(self, room: TauRoom, fmt: str, max_response_s: float):
        self.room, self.fmt = room, fmt
        self.blocks = [(t, h) for t, row in enumerate(room.doa_xyz) for h, doa in enumerate(row) if len(doa)]
        counts = [len(room.doa_xyz[t][h]) for t, h in self.blocks]
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.max_response_s = max_response_s
        self._prepared: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def check(self) -> None:
        """Raise :class:`InputError` unless the room's file has ``rirs.<fmt>`` (HDF5 files only: an older
        MAT-file would have to be read whole)."""
        import h5py

        path = self.room.path
        if not h5py.is_hdf5(path):
            return
        try:
            with h5py.File(path, "r") as f:
                found = "rirs" in f and self.fmt in f["rirs"]
        except OSError as err:
            raise InputError(path, f"cannot be read as a MATLAB v7.3 file: {err}") from None
        if not found:
            raise InputError(path, f"has no rirs.{self.fmt} ({self.fmt.upper()} responses)")

    def _read_block(self, t: int, h: int) -> np.ndarray:
        """(N, 4, samples) float64 of trajectory t, height h."""
        import h5py

        path = self.room.path
        try:
            if h5py.is_hdf5(path):
                with h5py.File(path, "r") as f:
                    field = f["rirs"][self.fmt]
                    # MATLAB stores a t × h struct array's field as an h × t array of references (dimensions
                    # reversed), and each [samples × 4 × N] array as an (N, 4, samples) dataset.
                    item = f[field[h, t]] if field.dtype == h5py.ref_dtype else field
                    block = np.asarray(item[()], dtype=np.float64)
            else:
                from scipy.io import loadmat

                rirs = loadmat(path, variable_names=["rirs"])["rirs"]
                block = np.asarray(rirs[t, h][self.fmt], dtype=np.float64).transpose(2, 1, 0)
        except (OSError, KeyError, ValueError, IndexError) as err:
            raise InputError(path, f"cannot read rirs({t + 1}, {h + 1}).{self.fmt}: {err}") from None
        expected = len(self.room.doa_xyz[t][h])
        if block.ndim != 3 or block.shape[:2] != (expected, 4):
            raise InputError(path, f"rirs({t + 1}, {h + 1}).{self.fmt} has shape {block.shape[::-1]} (MATLAB "
                                   f"order); expected [samples x 4 x {expected}] as its DOAs in {TAU_INFO_FILE}")
        return block

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if index not in self._prepared:
            b = int(np.searchsorted(self.starts, index, side="right")) - 1
            block = self._read_block(*self.blocks[b])
            keep = min(self.max_response_s, block.shape[2] / self.room.sample_rate)
            prepared = _prepare(block, self.room.sample_rate, keep)
            for k, response in enumerate(prepared):
                self._prepared[int(self.starts[b]) + k] = response
        return self._prepared[index]


def read_tau_srir(folder: str | os.PathLike, fmt: str, room: int = 0, max_response_s: float = 2.0) -> ResponseSet:
    """The ``fmt`` responses of room number ``room`` (0-based, in ``rirdata.mat``'s order) of the TAU-SRIR DB.

    Directions come from ``doa_xyz`` (unit vectors, x front, y left, z up: the axes of docs/conventions.md);
    distances are not given per response (NaN). FOA is ACN/SN3D (W, Y, Z, X) and MIC M1..M4, the formats of
    STARSS23. Responses are read lazily (:class:`TauResponses`).
    """
    rooms = tau_srir_rooms(folder)
    if not 0 <= room < len(rooms):
        raise InputError(folder, f"has {len(rooms)} rooms; room {room} asked for")
    tau = rooms[room]
    doa = np.concatenate([d for row in tau.doa_xyz for d in row if len(d)])
    az, el = cart_to_sph(doa)
    responses = TauResponses(tau, fmt, max_response_s)
    responses.check()
    return ResponseSet(fmt, responses, wrap_azimuth(np.asarray(az, float)),
                       np.asarray(el, dtype=np.float64), np.full(len(doa), np.nan), f"{tau.path} ({tau.name})")


def measured_room_count(path: str | os.PathLike) -> int:
    """How many rooms the measured responses at ``path`` hold: the TAU-SRIR DB's rooms, else 1."""
    folder = tau_srir_folder(path)
    return 1 if folder is None else len(tau_srir_rooms(folder))


def open_response_sets(path: str | os.PathLike, formats: tuple[str, ...],
                       max_response_s: float = 2.0, room: int = 0) -> dict[str, ResponseSet]:
    """The measured responses of ``formats`` from a folder (``foa.csv``/``mic.csv``/``foa.sofa``/``mic.sofa``, or
    the TAU-SRIR DB, whose room number ``room`` is read) or one ``.sofa`` file; raises :class:`InputError` when a
    format is not there."""
    path = Path(path)
    sets = {}
    tau = tau_srir_folder(path) if path.is_dir() else None
    if room != 0 and tau is None:
        raise InputError(path, f"holds one room; room {room} asked for")
    if tau is not None:
        sets = {fmt: read_tau_srir(tau, fmt, room, max_response_s) for fmt in formats}
    elif path.is_file() and path.suffix.lower() == ".sofa":
        one = read_sofa(path, None, max_response_s)
        sets[one.fmt] = one
    elif path.is_dir():
        for fmt in formats:
            if (path / f"{fmt}.csv").is_file():
                sets[fmt] = read_response_csv(path / f"{fmt}.csv", fmt, max_response_s)
            elif (path / f"{fmt}.sofa").is_file():
                sets[fmt] = read_sofa(path / f"{fmt}.sofa", fmt, max_response_s)
    else:
        raise InputError(path, "room responses not found (a folder with foa.csv/mic.csv/foa.sofa/mic.sofa, "
                               "the TAU-SRIR DB folder, or a .sofa file)")
    missing = [fmt for fmt in formats if fmt not in sets]
    if missing:
        raise InputError(path, f"no {'/'.join(missing).upper()} responses here (found: "
                               f"{', '.join(sets) or 'none'}; a folder needs {missing[0]}.csv or {missing[0]}.sofa)")
    return {fmt: sets[fmt] for fmt in formats}


class MeasuredRoom:
    """Renders events with measured responses (one set per format, measured at the same directions)."""

    def __init__(self, sets: dict[str, ResponseSet], crossfade_ms: float = 50.0):
        if not sets:
            raise ValueError("at least one response set is needed")
        self.sets = sets
        self.crossfade_ms = crossfade_ms
        first = next(iter(sets.values()))
        self.azimuth_deg, self.elevation_deg = first.azimuth_deg, first.elevation_deg
        self.distance_m = first.distance_m  # NaN where unknown: such events get no distance label
        self.grid = sph_to_cart(self.azimuth_deg, self.elevation_deg)  # (M, 3)
        self.index = {}  # format → index of each grid direction in that format's set
        for fmt, s in sets.items():
            if np.array_equal(s.azimuth_deg, self.azimuth_deg) and np.array_equal(s.elevation_deg,
                                                                                  self.elevation_deg):
                self.index[fmt] = np.arange(len(self.grid))  # the usual case; (M, M) products are large for M ~ 6000
                continue
            other = sph_to_cart(s.azimuth_deg, s.elevation_deg)
            match = np.argmax(self.grid @ other.T, axis=1)
            error = np.degrees(np.arccos(np.clip(np.sum(self.grid * other[match], axis=1), -1, 1)))
            if len(s.azimuth_deg) != len(self.grid) or error.max() > 1.0:
                raise InputError(s.origin, f"{fmt.upper()} responses are not measured at the same directions as "
                                           f"{first.origin}")
            self.index[fmt] = match

    def render_event(self, signal, azimuth_deg, elevation_deg, rng: np.random.Generator,
                     formats: tuple[str, ...]) -> EventRender:
        """An event rendered with the response(s) of the nearest measured direction(s); no randomness used."""
        del rng
        signal = np.asarray(signal, dtype=np.float32)
        n = len(signal)
        az = np.broadcast_to(np.asarray(azimuth_deg, dtype=np.float64), (n,))
        el = np.broadcast_to(np.asarray(elevation_deg, dtype=np.float64), (n,))
        audio = {}
        if np.ndim(azimuth_deg) == 0:
            g = int(np.argmax(self.grid @ sph_to_cart(float(azimuth_deg), float(elevation_deg))))
            for fmt in formats:
                audio[fmt] = _convolve(signal, self.sets[fmt].responses[self.index[fmt][g]])
            rendered = np.full(n, g)
        else:
            hop = max(1, int(round(self.crossfade_ms / 1000 * SAMPLE_RATE)))
            centres = np.minimum(np.arange(n // hop + 2) * hop, n - 1)
            nearest = np.argmax(sph_to_cart(az[centres], el[centres]) @ self.grid.T, axis=1)
            for fmt in formats:
                # one response at a time: responses may be read lazily (TauResponses)
                audio[fmt] = render_switched(signal, nearest, lambda g, fmt=fmt: self.sets[fmt].responses[
                    self.index[fmt][g]], hop)
            rendered = nearest[np.minimum((np.arange(n) + hop // 2) // hop, len(nearest) - 1)]  # nearest centre
        distance = self.distance_m[rendered]
        return EventRender(audio, MEASURED_PRE_SAMPLES, self.azimuth_deg[rendered], self.elevation_deg[rendered],
                           None if np.isnan(distance).any() else distance)


__all__ = [
    "RoomConfig", "RoomsFile", "SCENE_KEYS", "load_rooms_config", "ShoeboxRoom", "sample_room", "distance_to_walls",
    "Images", "image_sources", "images_response", "EventRender", "RoomAcoustics", "crossfade_windows",
    "render_switched", "fibonacci_grid", "SimulatedRoom", "ResponseSet", "read_response_csv", "read_sofa",
    "open_response_sets", "MeasuredRoom", "MEASURED_PRE_SAMPLES", "TAU_INFO_FILE", "TAU_FOLDER", "TauRoom",
    "TauResponses", "tau_srir_folder", "tau_srir_rooms", "read_tau_srir", "measured_room_count",
]
