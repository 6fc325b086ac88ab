"""Simulated label files for exercising the scorer: reference scenes and predictions with controlled errors.

Used by ``av-seld demo``, ``bench/bench_metrics.py`` and the tests. Seeded and pure: the same generator state gives
the same events.
"""

from __future__ import annotations

import numpy as np

from av_seld.classes import NUM_CLASSES
from av_seld.io.labels import Events


def simulate_reference(rng: np.random.Generator, num_frames: int, *, num_sources: int = 8,
                       num_classes: int = NUM_CLASSES, max_event_frames: int = 150,
                       max_speed_deg_per_frame: float = 4.0, with_distance: bool = False) -> Events:
    """A reference scene: ``num_sources`` events of random class, onset and length, static or moving.

    Directions are integer degrees and distances whole centimetres (as in STARSS23 files), rows sorted by frame.
    Drawing classes from a small ``num_classes`` gives plenty of same-class overlap.
    """
    cols: list[list] = [[] for _ in range(6)]
    for source in range(num_sources):
        cls = int(rng.integers(0, num_classes))
        start = int(rng.integers(0, max(1, num_frames - 5)))
        stop = min(num_frames, start + int(rng.integers(3, max_event_frames)))
        azimuth, elevation = rng.uniform(-180, 180), rng.uniform(-60, 60)
        speed = 0.0 if rng.random() < 0.5 else rng.uniform(-max_speed_deg_per_frame, max_speed_deg_per_frame)
        distance_cm = int(rng.integers(50, 500))
        frames = np.arange(start, stop)
        az = np.rint(azimuth + speed * (frames - start))
        az = (az + 180) % 360 - 180
        for values, col in zip((frames, np.full(len(frames), cls), np.full(len(frames), source), az,
                                np.full(len(frames), round(elevation)), np.full(len(frames), distance_cm)), cols):
            col.extend(values.tolist())
    order = np.argsort(np.asarray(cols[0], dtype=np.int64), kind="stable")
    arrays = [np.asarray(c)[order] for c in cols]
    return Events.from_arrays(*arrays[:5], arrays[5] / 100.0 if with_distance else None)


def simulate_prediction(reference: Events, rng: np.random.Generator, *, miss_rate: float = 0.15,
                        noise_deg: float = 10.0, false_alarms: int = 30, late_rate: float = 0.05,
                        num_classes: int = NUM_CLASSES) -> Events:
    """A prediction derived from ``reference``: misses, direction noise, late frames and false alarms.

    Distances (when the reference has them) are off by a random factor in [0.5, 1.8]. Rows sorted by frame.
    """
    n = len(reference)
    keep = rng.random(n) >= miss_rate
    scale = rng.choice([0.3, 1.0, 3.0], size=n) * noise_deg
    az = (reference.azimuth_deg + rng.normal(0, 1, n) * scale + 180) % 360 - 180
    el = np.clip(reference.elevation_deg + rng.normal(0, 1, n) * scale / 2, -90, 90)
    frame = reference.frame + (rng.random(n) < late_rate)
    last = max(reference.num_frames, 1)
    cols = [
        np.r_[frame[keep], rng.integers(0, last, false_alarms)],
        np.r_[reference.class_index[keep], rng.integers(0, num_classes, false_alarms)],
        np.r_[reference.source[keep], np.zeros(false_alarms, dtype=np.int64)],
        np.r_[az[keep], rng.uniform(-180, 180, false_alarms)],
        np.r_[el[keep], rng.uniform(-90, 90, false_alarms)],
    ]
    distance = None
    if reference.has_distance:
        distance = np.r_[reference.distance_m[keep] * rng.uniform(0.5, 1.8, keep.sum()),
                         rng.uniform(0.5, 5, false_alarms)]
    order = np.argsort(cols[0], kind="stable")
    return Events.from_arrays(*(c[order] for c in cols), None if distance is None else distance[order])
