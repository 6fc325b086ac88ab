"""What a realistic 360° video shows of a clip's events: some sounding sources are out of sight, and some visible
objects make no sound.

:func:`visible_rows` turns a clip's reference rows into the rows the mosaic renderer draws: each sounding event
(a run of consecutive frames of one (class, source) track, as ``augment.trajectories.track_runs``) is left out with
probability ``invisible_fraction``, and silent objects are added: a Poisson number (``silent_per_minute`` per minute
of clip) of objects of random classes, each still at a random direction for a random stretch of the clip. Silent
objects get negative source ids, so they never share a track with a labelled source. The labels are not changed:
silent objects are never labelled, invisible events stay labelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from augment.trajectories import track_runs
from av_seld.classes import NUM_CLASSES
from av_seld.timing import LABEL_FRAMES_PER_SECOND


@dataclass(frozen=True)
class VisibilityConfig:
    """Share of sounding events not drawn, and silent objects per minute (their length in s, elevation in deg)."""

    invisible_fraction: float = 0.0
    silent_per_minute: float = 0.0
    silent_length_s: tuple[float, float] = (2.0, 10.0)
    silent_elevation_deg: tuple[float, float] = (-30.0, 30.0)

    def __post_init__(self):
        if not 0.0 <= self.invisible_fraction <= 1.0:
            raise ValueError(f"invisible_fraction must be in [0, 1], got {self.invisible_fraction}")
        if self.silent_per_minute < 0:
            raise ValueError(f"silent_per_minute must be >= 0, got {self.silent_per_minute}")
        for name in ("silent_length_s", "silent_elevation_deg"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if self.silent_length_s[0] <= 0:
            raise ValueError("silent_length_s must be positive")

    @property
    def changes_anything(self) -> bool:
        return self.invisible_fraction > 0 or self.silent_per_minute > 0


def visible_rows(frame, class_index, source, azimuth_deg, elevation_deg, *, num_frames: int,
                 rng: np.random.Generator, config: VisibilityConfig) -> tuple[np.ndarray, ...]:
    """The rows to draw for a clip of ``num_frames`` label frames: (frame, class, source, azimuth, elevation) (M,)
    arrays, the visible events' rows in their original order followed by the silent objects' rows.

    Draws from ``rng`` in a fixed order (one number per event, in track order, then the silent objects), so a clip's
    choices depend only on its rows and the generator.
    """
    frame = np.asarray(frame, dtype=np.int64)
    class_index = np.asarray(class_index, dtype=np.int64)
    source = np.asarray(source, dtype=np.int64)
    azimuth_deg = np.asarray(azimuth_deg, dtype=np.float64)
    elevation_deg = np.asarray(elevation_deg, dtype=np.float64)
    keep = np.ones(len(frame), dtype=bool)
    for _, _, runs in track_runs(frame, class_index, source):
        for run in runs:
            if rng.random() < config.invisible_fraction:
                keep[run] = False
    # rows track_runs left out (duplicated (frame, class, source) rows) follow their event
    hidden = set(zip(class_index[~keep].tolist(), source[~keep].tolist(), frame[~keep].tolist()))
    if hidden:
        keep &= np.array([key not in hidden for key in zip(class_index.tolist(), source.tolist(), frame.tolist())])
    columns = [frame[keep], class_index[keep], source[keep], azimuth_deg[keep], elevation_deg[keep]]

    count = int(rng.poisson(config.silent_per_minute * num_frames / LABEL_FRAMES_PER_SECOND / 60))
    for k in range(count):
        length = max(1, int(round(rng.uniform(*config.silent_length_s) * LABEL_FRAMES_PER_SECOND)))
        start = int(rng.integers(0, max(1, num_frames)))
        frames = np.arange(start, min(num_frames, start + length), dtype=np.int64)
        cls = int(rng.integers(NUM_CLASSES))
        azimuth = float(rng.uniform(-180, 180))
        elevation = float(rng.uniform(*config.silent_elevation_deg))
        extra = [frames, np.full(len(frames), cls), np.full(len(frames), -1 - k), np.full(len(frames), azimuth),
                 np.full(len(frames), elevation)]
        columns = [np.concatenate([a, b.astype(a.dtype)]) for a, b in zip(columns, extra)]
    return tuple(columns)


__all__ = ["VisibilityConfig", "visible_rows"]
