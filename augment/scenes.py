"""Spatial sound scenes: sample events (class, timing, gain, static or moving direction), render them to FOA and/or
MIC, add diffuse ambient noise at an SNR, and return the audio with the reference rows actually rendered.

Pure and seeded: everything random comes from the ``numpy.random.Generator`` passed in, drawn in an order that does
not depend on the output formats, so the FOA and MIC renderings of a seed are the same scene.

Anechoic by default (plane waves, no delay). With a ``room`` (``augment.rooms``: a simulated shoebox room or measured
responses) every event is rendered with reverberation; its label rows then start where the direct sound starts and
give the direction the room rendered (the direct-path direction, or the nearest measured direction).

Distance labels (the DCASE2024 sixth column of the reference): in a room, the source–array distance of the direct path
the room rendered (measured responses: the distance they were measured at, when known); anechoic, the distance drawn
for the event from ``SceneConfig.distance_m``. Plane waves do not depend on distance, so an anechoic clip's audio
carries no distance cue: the label is what the scene says, not something a model can hear. When any event of a scene
has no distance (measured responses without one), the scene's rows have none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from augment import spatial
from av_seld.classes import NUM_CLASSES
from av_seld.geometry import wrap_azimuth
from av_seld.timing import SAMPLE_RATE

SoundSource = Callable[[int, float, np.random.Generator], np.ndarray]  # (class, duration_s, rng) -> mono (N,)
FORMATS = ("foa", "mic")


@dataclass
class EventRender:
    """One event rendered in a room.

    audio: format → (4, M) float32, sample 0 at the event onset (M ≥ N: the reverberation tail follows).
    delay_samples: where the direct sound starts. azimuth_deg / elevation_deg: (N,) direction rendered for each
    signal sample (the direct-path direction; the label). distance_m: (N,) source–array distance of the direct path
    for each signal sample, metres; None when the room does not know it.
    """

    audio: dict[str, np.ndarray]
    delay_samples: int
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    distance_m: np.ndarray | None = None


class RoomAcoustics(Protocol):
    """What :func:`render_scene` needs from a room (``augment.rooms`` implements it): the scene owns this interface,
    so the rooms module depends on the scenes module and not the reverse."""

    def render_event(self, signal: np.ndarray, azimuth_deg, elevation_deg, rng: np.random.Generator,
                     formats: tuple[str, ...], distance_m: float | None = None) -> EventRender:
        """signal (N,); directions scalars (static) or (N,) arrays (moving). distance_m: the distance asked for
        (None: the room's own choice); the room says in ``EventRender.distance_m`` what it rendered, which may
        differ (a simulated room keeps the source inside its walls, measured responses have fixed positions)."""


@dataclass(frozen=True)
class SceneConfig:
    """Ranges the scene sampler draws from (uniformly); durations in seconds, gains and SNR in dB."""

    duration_s: float = 60.0
    max_polyphony: int = 3
    event_length_s: tuple[float, float] = (1.0, 8.0)
    gap_s: tuple[float, float] = (0.5, 5.0)
    gain_db: tuple[float, float] = (-10.0, 0.0)
    moving_probability: float = 0.5
    angular_speed_deg_s: tuple[float, float] = (10.0, 40.0)
    elevation_deg: tuple[float, float] = (-45.0, 45.0)
    snr_db: tuple[float, float] = (15.0, 30.0)
    classes: tuple[int, ...] = tuple(range(NUM_CLASSES))
    ambient_directions: int = 12
    distance_m: tuple[float, float] = (1.0, 3.0)  # anechoic distance labels (rooms draw their own distances)

    def __post_init__(self):
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        if self.max_polyphony < 1:
            raise ValueError(f"max_polyphony must be >= 1, got {self.max_polyphony}")
        for name in ("event_length_s", "gap_s", "gain_db", "angular_speed_deg_s", "elevation_deg", "snr_db",
                     "distance_m"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if self.distance_m[0] <= 0:
            raise ValueError(f"distance_m must be positive, got {self.distance_m}")
        if self.event_length_s[0] <= 0:
            raise ValueError("event_length_s must be positive")
        if not self.classes:
            raise ValueError("classes must not be empty")


@dataclass(frozen=True)
class EventSpec:
    """One sound event of a scene. ``angular_speed_deg_s`` 0 means a static source. ``distance_m``: the distance
    label of an anechoic rendering (None: no distance; a room uses the distance it renders at)."""

    source: int
    class_index: int
    onset_s: float
    duration_s: float
    gain_db: float
    azimuth_deg: float
    elevation_deg: float
    angular_speed_deg_s: float
    distance_m: float | None = None


@dataclass
class Scene:
    """A rendered scene: 4-channel audio per format, (4, N) float32, and the reference rows.

    ``rows`` are ``(frame, class, source, azimuth, elevation[, distance_m])``: integers (degrees) and the distance in
    metres, sorted by frame then source, one per 100 ms label frame the event covers, giving the direction (and the
    distance) rendered at that frame; the distance is there when every event has one.
    """

    events: list[EventSpec]
    audio: dict[str, np.ndarray]
    rows: list[tuple[int, ...]] = field(default_factory=list)
    snr_db: float = 0.0


def sample_events(rng: np.random.Generator, config: SceneConfig) -> list[EventSpec]:
    """Events on ``max_polyphony`` layers, each a sequence of events separated by gaps: never more than
    ``max_polyphony`` at once, and same-class overlap happens whenever two layers draw the same class."""
    events = []
    lo, hi = config.event_length_s
    for _ in range(config.max_polyphony):
        t = rng.uniform(0, config.gap_s[1])
        while t + min(lo, 0.5) < config.duration_s:
            length = min(rng.uniform(lo, hi), config.duration_s - t)
            moving = rng.random() < config.moving_probability
            events.append(EventSpec(
                source=0,
                class_index=int(config.classes[rng.integers(len(config.classes))]),
                onset_s=float(t),
                duration_s=float(length),
                gain_db=float(rng.uniform(*config.gain_db)),
                azimuth_deg=float(rng.uniform(-180, 180)),
                elevation_deg=float(rng.uniform(*config.elevation_deg)),
                angular_speed_deg_s=float(rng.uniform(*config.angular_speed_deg_s)) if moving else 0.0,
            ))
            t += length + rng.uniform(*config.gap_s)
    events.sort(key=lambda e: e.onset_s)
    # Distances come from a child stream: spawning does not advance ``rng``, so every other draw of a seed, and with
    # it the audio, is what it was before scenes had distances.
    distances = rng.spawn(1)[0].uniform(*config.distance_m, len(events))
    return [EventSpec(i, e.class_index, e.onset_s, e.duration_s, e.gain_db, e.azimuth_deg, e.elevation_deg,
                      e.angular_speed_deg_s, float(d)) for i, (e, d) in enumerate(zip(events, distances))]


def _render(fmt: str, signal: np.ndarray, azimuth, elevation) -> np.ndarray:
    if fmt == "foa":
        return spatial.render_foa(signal, azimuth, elevation)
    return spatial.render_mic(signal, azimuth, elevation)


def _pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return (noise / (noise.std() + 1e-12)).astype(np.float32)


def render_scene(events: list[EventSpec], sounds: SoundSource, rng: np.random.Generator, config: SceneConfig,
                 formats: tuple[str, ...] = ("foa",), room: "RoomAcoustics | None" = None) -> Scene:
    """Render ``events`` to each of ``formats`` ('foa', 'mic') with diffuse ambient noise at a random SNR.

    room: None renders anechoic plane waves; otherwise ``room.render_event`` renders each event (reverberation,
    direct-path delay) and says which direction it rendered.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {formats}")
    n = int(round(config.duration_s * SAMPLE_RATE))
    audio = {fmt: np.zeros((4, n), dtype=np.float32) for fmt in formats}
    active = np.zeros(n, dtype=bool)
    rows = []
    for event in events:
        signal = sounds(event.class_index, event.duration_s, rng) * np.float32(10 ** (event.gain_db / 20))
        onset = int(round(event.onset_s * SAMPLE_RATE))
        signal = signal[: n - onset]
        if len(signal) == 0:
            continue
        if event.angular_speed_deg_s > 0:
            azimuth, elevation = spatial.smooth_trajectory(event.azimuth_deg, event.elevation_deg,
                                                           event.angular_speed_deg_s, len(signal) / SAMPLE_RATE, rng)
            azimuth, elevation = azimuth[: len(signal)], elevation[: len(signal)]
        else:
            azimuth, elevation = event.azimuth_deg, event.elevation_deg
        # a room draws its own distances (RoomConfig.source_distance_m); event.distance_m is the anechoic label
        rendered = spatialise(signal, azimuth, elevation, rng, formats, room,
                              distance_m=event.distance_m if room is None else None)
        for fmt in formats:
            part = rendered.audio[fmt][:, : n - onset]
            audio[fmt][:, onset:onset + part.shape[1]] += part
        # The direct sound starts ``delay`` samples after the onset; what falls past the clip end is not heard.
        onset += rendered.delay_samples
        heard = max(0, n - onset)
        if heard == 0:
            continue
        active[onset:onset + min(heard, len(signal))] = True
        frames, index = spatial.label_frame_samples(min(heard, len(rendered.azimuth_deg)), onset)
        distance = [None] * len(frames) if rendered.distance_m is None else rendered.distance_m[index].tolist()
        rows += [(int(f), event.class_index, event.source, _int_azimuth(a), int(round(e)), d)
                 for f, a, e, d in zip(frames, rendered.azimuth_deg[index], rendered.elevation_deg[index], distance)]

    snr_db = add_ambient_noise(audio, active, rng, config, formats)
    rows.sort(key=lambda r: (r[0], r[2]))
    with_distance = all(r[5] is not None for r in rows)
    return Scene(events, audio, [r if with_distance else r[:5] for r in rows], snr_db)


@dataclass
class Spatialised:
    """One source rendered: audio per format (4, M) float32, sample 0 at the source's onset; the direct sound starts
    ``delay_samples`` later (0 anechoic); azimuth_deg / elevation_deg (N,): the direction rendered per signal sample;
    distance_m (N,) metres, or None when unknown."""

    audio: dict[str, np.ndarray]
    delay_samples: int
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    distance_m: np.ndarray | None = None


def spatialise(signal: np.ndarray, azimuth_deg, elevation_deg, rng: np.random.Generator, formats: tuple[str, ...],
               room: "RoomAcoustics | None" = None, distance_m: float | None = None) -> Spatialised:
    """Render a mono source (N,) from a static (scalars) or moving ((N,) arrays, degrees) direction: anechoic plane
    waves, or ``room.render_event`` (reverberation, direct-path delay).
    ``distance_m``: anechoic, the source's distance label (plane waves ignore it); in a room, the distance asked of
    the room (None: its own choice from ``rng``), which reports the distance it rendered."""
    if room is not None:
        result = room.render_event(signal, azimuth_deg, elevation_deg, rng, formats, distance_m=distance_m)
        return Spatialised(result.audio, result.delay_samples, result.azimuth_deg, result.elevation_deg,
                           result.distance_m)
    n = len(signal)
    audio = {fmt: _render(fmt, signal, azimuth_deg, elevation_deg) for fmt in formats}
    return Spatialised(audio, 0, np.broadcast_to(np.asarray(azimuth_deg, dtype=np.float64), (n,)),
                       np.broadcast_to(np.asarray(elevation_deg, dtype=np.float64), (n,)),
                       None if distance_m is None else np.full(n, float(distance_m)))


def add_ambient_noise(audio: dict[str, np.ndarray], active: np.ndarray, rng: np.random.Generator,
                      config: SceneConfig, formats: tuple[str, ...]) -> float:
    """Add diffuse ambient noise to ``audio`` (format → (4, N), in place) at an SNR drawn from ``config.snr_db``
    relative to the power where ``active`` (N,) bool is set, then scale every format by one gain if a peak exceeds
    0.99. Returns the SNR in dB."""
    n = active.shape[0]
    # Independent pink noise from directions spread over the sphere.
    snr_db = float(rng.uniform(*config.snr_db))
    k = config.ambient_directions
    z = rng.uniform(-1, 1, k)
    directions = (rng.uniform(-180, 180, k), np.degrees(np.arcsin(z)))
    noises = [_pink_noise(rng, n) for _ in range(k)]
    reference = formats[0]
    signal_power = float(np.mean(audio[reference][:, active] ** 2)) if active.any() else 1e-4
    ambient = {fmt: sum(_render(fmt, noise, a, e) for noise, a, e in zip(noises, *directions)) for fmt in formats}
    noise_power = float(np.mean(ambient[reference] ** 2)) + 1e-12
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    for fmt in formats:
        audio[fmt] += np.float32(scale) * ambient[fmt]
    peak = max(float(np.abs(a).max()) for a in audio.values())
    if peak > 0.99:  # one gain for every format keeps them consistent
        for fmt in formats:
            audio[fmt] *= np.float32(0.99 / peak)
    return snr_db


def _int_azimuth(azimuth_deg: float) -> int:
    """Whole degrees in [-180, 180): rounding 179.6 gives 180, which wraps to -180."""
    return int(wrap_azimuth(round(azimuth_deg)))
