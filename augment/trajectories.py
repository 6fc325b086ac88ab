"""Scenes that follow a labelled timeline: each event of a reference timeline (e.g. a real STARSS recording's labels)
is rendered where and when it was labelled, moving as its labels move, with a sound of its class.

A timeline is the rows of a reference CSV (``frame, class, source, azimuth, elevation[, distance]``). A *track* is one
(class, source) pair; an *event* is a run of consecutive label frames of a track. Each event gets its own sound,
drawn for its whole length (several draws joined end to end when the source returns a shorter one), so the event
sounds for every label frame it covers: the labels of the rendered clip are the timeline's rows, with the direction
rendered at each frame (``TimelineScene.directions``): the labelled one anechoic and in a simulated room, which render
it exactly; with measured responses, the nearest measured direction the room rendered instead.

Directions between labels. Label frame ``n`` gives the direction at the frame's centre (sample ``n·hop + hop/2``, as
``spatial.direction_at_label_frames`` reads a rendered event). Between two centres the direction moves along the
chord of the unit vectors, renormalised (a great-circle path for steps under 180°); before the first and after the
last centre it holds. An event whose labels never change direction is rendered as a static source.

In a room the direct sound is placed at the labelled onset: the room's output is shifted earlier by its direct-path
delay (the first milliseconds of an event at the clip start are cut), so labels and direct sound start together.

Distances (the DCASE2024 sixth column): every rendered timeline says the distance of each labelled frame
(``TimelineScene.distances``). Anechoic, it is the timeline's own distance when it has one, else one distance per
event drawn from ``SceneConfig.distance_m`` (a label only: plane waves carry no distance cue). In a simulated room
each event is rendered at one distance, the median of its labelled distances (without labels: the room's own draw),
kept inside the walls by the room, and that rendered distance is the label. Measured responses render at their
measured distance; when they do not know it, the scene has no distances (None) rather than invented ones.

Interferers: unlabelled sounds (not of the classes) mixed at random times and static random directions, rendered
like the events (in the room when there is one). They are never labelled and do not count in the SNR reference.

Pure and seeded: everything random comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from augment.scenes import FORMATS, RoomAcoustics, SceneConfig, SoundSource, add_ambient_noise, spatialise
from av_seld.geometry import cart_to_sph, sph_to_cart, wrap_azimuth
from av_seld.timing import SAMPLE_RATE, label_hop_samples

InterfererSource = Callable[[float, np.random.Generator], np.ndarray]  # (duration_s, rng) -> mono (N,)


@dataclass(frozen=True)
class TimelineEvent:
    """One event of a timeline: consecutive label frames of one (class, source) track and their directions."""

    class_index: int
    source: int
    frames: np.ndarray  # (F,) int64, consecutive label frames
    azimuth_deg: np.ndarray  # (F,) float64
    elevation_deg: np.ndarray  # (F,) float64
    distance_m: np.ndarray | None = None  # (F,) float64, the labelled distances; None when the timeline has none

    @property
    def static(self) -> bool:
        return bool(np.all(self.azimuth_deg == self.azimuth_deg[0])
                    and np.all(self.elevation_deg == self.elevation_deg[0]))


@dataclass(frozen=True)
class InterfererConfig:
    """How many unlabelled interferers a clip gets (Poisson, ``rate_per_minute``) and how they sound."""

    rate_per_minute: float = 4.0
    length_s: tuple[float, float] = (1.0, 6.0)
    gain_db: tuple[float, float] = (-15.0, -5.0)
    elevation_deg: tuple[float, float] = (-45.0, 45.0)

    def __post_init__(self):
        if self.rate_per_minute < 0:
            raise ValueError(f"rate_per_minute must be >= 0, got {self.rate_per_minute}")
        for name in ("length_s", "gain_db", "elevation_deg"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if self.length_s[0] <= 0:
            raise ValueError("length_s must be positive")


@dataclass
class TimelineScene:
    """A rendered timeline: 4-channel audio per format, (4, N) float32; the SNR of its ambient noise; how many
    interferers it holds; the distance in metres rendered at each labelled ``(frame, class, source)`` of the rendered
    events, None when the room could not say (see the module docstring); the direction (azimuth, elevation) in
    degrees rendered there: the label itself where the room rendered the direction it was asked for (anechoic,
    simulated room), else the room's (measured responses: the nearest measured direction)."""

    audio: dict[str, np.ndarray]
    snr_db: float
    num_events: int
    num_interferers: int
    distances: dict[tuple[int, int, int], float] | None = None
    directions: dict[tuple[int, int, int], tuple[float, float]] = field(default_factory=dict)


def track_runs(frame, class_index, source) -> list[tuple[int, int, list[np.ndarray]]]:
    """Split reference rows (N,) arrays into tracks and their runs of consecutive frames.

    Returns ``(class, source, runs)`` per track in sorted (class, source) order; each run is an array of row indices
    in frame order. A duplicated (frame, class, source) row is left out (the first one is kept).
    """
    frame = np.asarray(frame, dtype=np.int64)
    class_index, source = np.asarray(class_index, dtype=np.int64), np.asarray(source, dtype=np.int64)
    tracks = []
    for c, s in sorted(set(zip(class_index.tolist(), source.tolist()))):
        rows = np.flatnonzero((class_index == c) & (source == s))
        rows = rows[np.argsort(frame[rows], kind="stable")]
        rows = rows[np.r_[True, np.diff(frame[rows]) > 0]]
        tracks.append((c, s, np.split(rows, np.flatnonzero(np.diff(frame[rows]) > 1) + 1)))
    return tracks


def timeline_events(frame, class_index, source, azimuth_deg, elevation_deg,
                    distance_m=None) -> list[TimelineEvent]:
    """The events of reference rows given as (N,) arrays (``distance_m`` (N,) metres or None), sorted by first
    frame, then class and source."""
    frame = np.asarray(frame, dtype=np.int64)
    azimuth_deg = np.asarray(azimuth_deg, dtype=np.float64)
    elevation_deg = np.asarray(elevation_deg, dtype=np.float64)
    distance_m = None if distance_m is None else np.asarray(distance_m, dtype=np.float64)
    events = [TimelineEvent(c, s, frame[run], azimuth_deg[run], elevation_deg[run],
                            None if distance_m is None else distance_m[run])
              for c, s, runs in track_runs(frame, class_index, source) for run in runs]
    events.sort(key=lambda e: (int(e.frames[0]), e.class_index, e.source))
    return events


def sample_directions(azimuth_deg, elevation_deg, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample directions (F·hop,) of an event whose F label frames have these directions (degrees).

    Exact at each frame's centre, between centres along the renormalised chord, held before the first and after the
    last (see the module docstring).
    """
    xyz = sph_to_cart(np.asarray(azimuth_deg, dtype=np.float64), np.asarray(elevation_deg, dtype=np.float64))
    hop = label_hop_samples(sample_rate)
    num_frames = xyz.shape[0]
    samples = np.arange(num_frames * hop)
    centres = np.arange(num_frames) * hop + hop // 2
    path = np.stack([np.interp(samples, centres, xyz[:, k]) for k in range(3)], axis=1)
    norm = np.linalg.norm(path, axis=1)
    # Opposite directions 100 ms apart would pass through the origin: hold the earlier label there instead.
    degenerate = norm < 1e-6
    if degenerate.any():
        path[degenerate] = xyz[np.clip((samples[degenerate] - hop // 2) // hop, 0, num_frames - 1)]
        norm[degenerate] = 1.0
    azimuth, elevation = cart_to_sph(path / norm[:, None])
    return wrap_azimuth(azimuth), elevation


def fill_sound(sounds: SoundSource, class_index: int, duration_s: float, rng: np.random.Generator,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Exactly round(duration_s · sample_rate) samples of a class: draws joined end to end until long enough."""
    want = int(round(duration_s * sample_rate))
    parts, have = [], 0
    while have < want:
        part = np.asarray(sounds(class_index, (want - have) / sample_rate, rng), dtype=np.float32)
        if len(part) == 0:
            raise ValueError(f"the sound source returned an empty sound for class {class_index}")
        parts.append(part[: want - have])
        have += len(parts[-1])
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _mix(audio: dict[str, np.ndarray], rendered, start: int) -> None:
    """Add rendered audio (format → (4, M)) whose sample 0 belongs at clip sample ``start`` (may be negative)."""
    for fmt, part in rendered.items():
        n = audio[fmt].shape[1]
        if start < 0:
            part, begin = part[:, -start:], 0
        else:
            begin = start
        part = part[:, : max(0, n - begin)]
        audio[fmt][:, begin:begin + part.shape[1]] += part


def render_timeline(events: list[TimelineEvent], sounds: SoundSource, rng: np.random.Generator, config: SceneConfig,
                    formats: tuple[str, ...] = ("foa",), room: RoomAcoustics | None = None,
                    interferers: InterfererSource | None = None,
                    interferer_config: InterfererConfig = InterfererConfig()) -> TimelineScene:
    """Render the events of a timeline to each of ``formats`` over ``config.duration_s`` seconds.

    Every event sounds over exactly its label frames (frames past the clip end are cut), with a gain drawn from
    ``config.gain_db``; then ``interferers`` (when given) and diffuse ambient noise at an SNR from ``config.snr_db``.
    room: None for anechoic plane waves, else the room every source is rendered in.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {formats}")
    n = int(round(config.duration_s * SAMPLE_RATE))
    hop = label_hop_samples()
    audio = {fmt: np.zeros((4, n), dtype=np.float32) for fmt in formats}
    active = np.zeros(n, dtype=bool)
    rendered_events = 0
    # Drawn distances come from a child stream: spawning does not advance ``rng``, so the audio is the same as it
    # was before timelines had distances.
    distance_rng = rng.spawn(1)[0]
    distances: dict[tuple[int, int, int], float] | None = {}
    rendered_directions: dict[tuple[int, int, int], tuple[float, float]] = {}
    for event in events:
        drawn = float(distance_rng.uniform(*config.distance_m))  # one per event, used or not: a stable stream
        keep = event.frames * hop < n
        if not keep.any():
            continue
        frames, azimuth, elevation = event.frames[keep], event.azimuth_deg[keep], event.elevation_deg[keep]
        labelled = None if event.distance_m is None else event.distance_m[keep]
        onset = int(frames[0]) * hop
        gain = np.float32(10 ** (rng.uniform(*config.gain_db) / 20))
        signal = fill_sound(sounds, event.class_index, len(frames) * hop / SAMPLE_RATE, rng)[: n - onset] * gain
        if event.static:
            directions = (float(azimuth[0]), float(elevation[0]))
        else:
            az, el = sample_directions(azimuth, elevation)
            directions = (az[: len(signal)], el[: len(signal)])
        asked = None if room is None or labelled is None else float(np.median(labelled))
        result = spatialise(signal, *directions, rng, formats, room, distance_m=asked)
        _mix(audio, result.audio, onset - result.delay_samples)
        active[onset:onset + len(signal)] = True
        rendered_events += 1
        keys = [(int(f), event.class_index, event.source) for f in frames]
        centre = np.minimum(np.arange(len(frames)) * hop + hop // 2, len(signal) - 1)  # each frame's centre sample
        # A room that rendered the direction asked for (equal, not just close) keeps the label's own numbers.
        asked_az = np.broadcast_to(directions[0], (len(signal),))[centre]
        asked_el = np.broadcast_to(directions[1], (len(signal),))[centre]
        got_az, got_el = result.azimuth_deg[centre], result.elevation_deg[centre]
        exact = (got_az == asked_az) & (got_el == asked_el)
        rendered_directions.update({key: (float(a), float(e)) for key, a, e in zip(
            keys, np.where(exact, azimuth, got_az), np.where(exact, elevation, got_el))})
        if room is None:
            per_frame = np.full(len(frames), drawn) if labelled is None else labelled
        elif result.distance_m is None:
            distances = None
        else:  # the distance rendered at each frame's centre
            per_frame = result.distance_m[centre]
        if distances is not None:
            distances.update({key: float(d) for key, d in zip(keys, per_frame)})

    num_interferers = 0
    if interferers is not None:
        count = int(rng.poisson(interferer_config.rate_per_minute * config.duration_s / 60))
        for _ in range(count):
            onset = int(rng.integers(0, n))
            length = float(rng.uniform(*interferer_config.length_s))
            gain = np.float32(10 ** (rng.uniform(*interferer_config.gain_db) / 20))
            signal = interferers(length, rng)[: n - onset] * gain
            azimuth = float(rng.uniform(-180, 180))
            elevation = float(rng.uniform(*interferer_config.elevation_deg))
            result = spatialise(signal, azimuth, elevation, rng, formats, room)
            _mix(audio, result.audio, onset)
            num_interferers += 1

    snr_db = add_ambient_noise(audio, active, rng, config, formats)
    return TimelineScene(audio, snr_db, rendered_events, num_interferers, distances, rendered_directions)


__all__ = ["TimelineEvent", "InterfererConfig", "TimelineScene", "track_runs", "timeline_events",
           "sample_directions", "fill_sound", "render_timeline"]
