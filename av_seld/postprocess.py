"""Multi-ACCDOA output → events → prediction CSV.

Per label frame and class, a track is active when its vector length exceeds the class threshold (0.5 by default).
Active same-class tracks whose directions are within ``merge_deg`` (15°) of each other are one event: connected
groups of such pairs are merged, their vectors averaged. For three tracks this is the DCASE2023 baseline's rule (no
similar pair: three events; one similar pair: that pair merged, the third kept; two or three similar pairs: all
three merged). An event's ``source`` is the lowest track index of its group.

Outputs with distance ``(T, K, 4, C)`` (``av_seld.targets``) decode the same way on their vectors; an event's distance
is the mean of its group's distances, turned into metres with ``DISTANCE_SCALE_M``, and the prediction CSV is then
the 7-column Cartesian form with distance (DCASE2024).

Before decoding, :func:`smooth_output` may average each label frame's vectors with its neighbours'
(``eval.smooth_frames`` of a recipe, kept in its checkpoints): an event whose vector dips below its threshold for a
frame or two stays one event, and its direction is the mean over the window.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from av_seld.classes import NUM_CLASSES
from av_seld.geometry import angular_distance_xyz_deg, cart_to_sph
from av_seld.io.labels import Events, write_prediction_csv
from av_seld.targets import DISTANCE_SCALE_M, has_distance

DEFAULT_THRESHOLD = 0.5
MERGE_DEG = 15.0


def class_thresholds(threshold: float | Sequence[float] | np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Per-class activity thresholds ``(num_classes,)`` from one value or one value per class."""
    values = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (num_classes,)) if np.ndim(threshold) == 0 \
        else np.asarray(threshold, dtype=np.float64)
    if values.shape != (num_classes,):
        raise ValueError(f"threshold must be one value or {num_classes} values, got shape {values.shape}")
    return values


def smooth_output(output: np.ndarray, frames: int) -> np.ndarray:
    """A clip's multi-ACCDOA output ``(T, ...)`` averaged over ``frames`` label frames around each frame: frame ``n``
    becomes the mean of frames ``n - (frames - 1) // 2 .. n + frames // 2`` that lie in the clip (fewer at its ends).
    ``frames`` 1 returns ``output`` itself."""
    if int(frames) != frames or frames < 1:
        raise ValueError(f"smoothing needs a whole number of frames >= 1, got {frames!r}")
    frames = int(frames)
    if frames == 1 or len(output) == 0:
        return output
    count = len(output)
    before, after = (frames - 1) // 2, frames // 2
    sums = np.concatenate([np.zeros((1,) + output.shape[1:]), np.cumsum(output, axis=0, dtype=np.float64)])
    index = np.arange(count)
    low, high = np.maximum(index - before, 0), np.minimum(index + after + 1, count)
    widths = (high - low).reshape((count,) + (1,) * (output.ndim - 1))
    return ((sums[high] - sums[low]) / widths).astype(output.dtype)


def _groups(active: np.ndarray, similar: np.ndarray) -> list[list[int]]:
    """Connected groups of active tracks under the ``similar`` (K, K) relation, each sorted, by lowest index."""
    seen: set[int] = set()
    groups = []
    for start in np.flatnonzero(active):
        if start in seen:
            continue
        group, stack = [], [int(start)]
        seen.add(int(start))
        while stack:
            k = stack.pop()
            group.append(k)
            for j in np.flatnonzero(similar[k] & active):
                if int(j) not in seen:
                    seen.add(int(j))
                    stack.append(int(j))
        groups.append(sorted(group))
    return groups


def multi_accdoa_to_events(output, threshold: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
                           merge_deg: float = MERGE_DEG, frame_offset: int = 0) -> Events:
    """Events of one clip's multi-ACCDOA output ``(T, K, 3, C)`` (NumPy or torch), sorted by frame, class, track;
    with distance ``(T, K, 4, C)`` the events have distances in metres.

    ``threshold``: one value or one per class, on the vector length. ``frame_offset`` is added to the frame indices
    (for outputs of a chunk that starts later in the clip).
    """
    if hasattr(output, "detach"):
        output = output.detach().cpu().numpy()
    output = np.asarray(output, dtype=np.float64)
    if output.ndim != 4 or output.shape[2] not in (3, 4):
        raise ValueError(f"multi-ACCDOA output must be (T, tracks, 3 or 4, classes), got {output.shape}")
    num_frames, num_tracks, _, num_classes = output.shape
    with_distance = has_distance(output)
    thresholds = class_thresholds(threshold, num_classes)
    vectors = np.moveaxis(output[:, :, :3], 2, -1)  # (T, K, C, 3)
    distances = output[:, :, 3] * DISTANCE_SCALE_M if with_distance else None  # (T, K, C) metres
    active = np.linalg.norm(vectors, axis=-1) > thresholds  # (T, K, C)
    frames, classes, tracks, xyz, distance = [], [], [], [], []
    for t, c in zip(*np.nonzero(active.any(axis=1))):  # row-major: sorted by frame, then class
        v = vectors[t, :, c]  # (K, 3)
        similar = angular_distance_xyz_deg(v[:, None], v[None]) < merge_deg  # (K, K)
        for group in _groups(active[t, :, c], similar):
            frames.append(t + frame_offset)
            classes.append(c)
            tracks.append(group[0])
            xyz.append(v[group].mean(axis=0))
            if with_distance:
                distance.append(distances[t, group, c].mean())
    if not frames:
        return Events.empty(with_distance)
    azimuth, elevation = cart_to_sph(np.asarray(xyz))
    return Events.from_arrays(frames, classes, tracks, azimuth, elevation, distance if with_distance else None)


def prediction_form(events: Events) -> str:
    """The prediction CSV form of ``events``: Cartesian with distance (7 columns, DCASE2024) when they have distances,
    polar otherwise."""
    return "cartesian" if events.has_distance else "polar"


def write_predictions(path, output, threshold: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
                      merge_deg: float = MERGE_DEG, form: str | None = None) -> Events:
    """Decode one clip's output ``(T, K, 3 or 4, C)`` and write its prediction CSV atomically; returns the events.

    ``form``: 'polar' or 'cartesian'; None picks :func:`prediction_form` (7-column Cartesian for outputs with distance).
    """
    events = multi_accdoa_to_events(output, threshold, merge_deg)
    write_prediction_csv(path, events, form=prediction_form(events) if form is None else form)
    return events
