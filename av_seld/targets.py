"""Training targets for multi-ACCDOA models: ADPIT dummy tracks and plain multi-ACCDOA track slots.

Layouts (docs/conventions.md, "Model output: multi-ACCDOA"):

- ADPIT target ``(T, 6, 4, C)``: 6 dummy tracks ``A0, B0, B1, C0, C1, C2`` (as the DCASE2023 baseline's
  ``get_adpit_labels_for_file``), then ``(activity, x, y, z)``, then class. For each frame and class exactly one group
  is filled: ``A0`` when one event of that class is active, ``B0, B1`` when two are, ``C0, C1, C2`` when three are.
- Multi-ACCDOA target ``(T, 3, 3, C)``: track, ``(x, y, z)``, class; the vector length is the activity.

With distance (DCASE2024, the baseline's multi-ACCDOA + distance per track and class) each row gains a last entry,
the source distance in units of :data:`DISTANCE_SCALE_M` (0 where inactive): ADPIT ``(T, 6, 5, C)`` =
``(activity, x, y, z, distance)``, multi-ACCDOA ``(T, 3, 4, C)`` = ``(x, y, z, distance)``. Models with
``distance=True`` output that multi-ACCDOA layout, and :mod:`av_seld.postprocess` turns their distances back into
metres with the same scale.

Same-class events of a frame are taken in order of source id (as :meth:`Events.to_dense` does). The baseline keeps
file order instead; the ADPIT loss tries every order within a group, so this changes nothing for training. **More than
three same-class events** in one frame: only the first three (lowest source ids) are kept, as the baseline keeps the
first three it reads; the rest are dropped and counted in a debug log message.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np

from av_seld.classes import NUM_CLASSES
from av_seld.io.labels import Events

logger = logging.getLogger(__name__)

NUM_TRACKS = 3
NUM_DUMMY_TRACKS = 6
# First dummy track of group n (n = number of same-class events): A0 = 0, B0 = 1, C0 = 3.
GROUP_START = {1: 0, 2: 1, 3: 3}
DUMMY_TRACK_NAMES = ("A0", "B0", "B1", "C0", "C1", "C2")
# Distances are learnt in units of 2 m, the middle of indoor source distances (synthetic rooms draw 1-3 m, STARSS23
# mostly 0.5-4 m), so that targets and outputs are of order 1 like the direction vectors.
DISTANCE_SCALE_M = 2.0


def has_distance(array) -> bool:
    """Whether a multi-ACCDOA output or target ``(..., K, 3 or 4, C)`` carries distance (its row axis has 4)."""
    if array.ndim < 2 or array.shape[-2] not in (3, 4):
        raise ValueError(f"multi-ACCDOA must be (..., tracks, 3 or 4, classes), got shape {tuple(array.shape)}")
    return array.shape[-2] == 4


def _dense(events: Events, num_frames: int, num_classes: int, distance: bool = False):
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if distance and len(events) and not events.has_distance:
        raise ValueError("distance targets need events with distances (a 6-column reference: frame, class, source, "
                         "azimuth, elevation, distance)")
    dense = events.to_dense(num_frames, num_tracks=NUM_TRACKS, num_classes=num_classes)
    past_end = int((events.frame >= num_frames).sum())
    too_many = dense.num_dropped - past_end
    if too_many:
        logger.debug("%d events dropped: more than %d same-class events in one frame", too_many, NUM_TRACKS)
    return dense


def events_to_adpit(events: Events, num_frames: int, num_classes: int = NUM_CLASSES,
                    distance: bool = False) -> np.ndarray:
    """ADPIT target ``(num_frames, 6, 4, num_classes)`` float32: dummy tracks A0, B0, B1, C0, C1, C2 × (act, x, y, z);
    with ``distance`` ``(num_frames, 6, 5, num_classes)``, × (act, x, y, z, distance / DISTANCE_SCALE_M).

    Events at frames ``>= num_frames`` are ignored; frames without events are all zero. ``distance`` needs events
    with distances (ValueError otherwise).
    """
    dense = _dense(events, num_frames, num_classes, distance)
    target = np.zeros((num_frames, NUM_DUMMY_TRACKS, 5 if distance else 4, num_classes), dtype=np.float32)
    count = dense.activity.sum(axis=1)  # (T, C) active same-class events, 0..3
    for n, start in GROUP_START.items():
        t, c = np.nonzero(count == n)
        for slot in range(n):
            target[t, start + slot, 0, c] = 1.0
            target[t, start + slot, 1:4, c] = dense.xyz[t, slot, c]
            if distance:
                target[t, start + slot, 4, c] = dense.distance_m[t, slot, c] / DISTANCE_SCALE_M
    return target


def events_to_multi_accdoa(events: Events, num_frames: int, num_classes: int = NUM_CLASSES,
                           duplicate: bool = False, distance: bool = False) -> np.ndarray:
    """Multi-ACCDOA target ``(num_frames, 3, 3, num_classes)`` float32: unit vectors where active, zero elsewhere;
    with ``distance`` ``(num_frames, 3, 4, num_classes)``, the distance / DISTANCE_SCALE_M after each vector.

    By default the ``n`` same-class events of a frame fill tracks ``0 .. n-1`` and the other tracks are zero. With
    ``duplicate=True`` the tracks hold the ADPIT loss's canonical permutation instead (one event: A0 A0 A0; two: B0 B0
    B1; three: C0 C1 C2), the output a model trained with ADPIT converges to; both decode to the same events.
    """
    dense = _dense(events, num_frames, num_classes, distance)
    xyz = np.moveaxis(dense.xyz, -1, 2)  # (T, K, 3, C)
    if distance:
        xyz = np.concatenate([xyz, dense.distance_m[:, :, None] / DISTANCE_SCALE_M], axis=2)  # (T, K, 4, C)
    if not duplicate:
        return np.ascontiguousarray(xyz, dtype=np.float32)
    count = dense.activity.sum(axis=1)  # (T, C)
    slot_of_track = {1: (0, 0, 0), 2: (0, 0, 1), 3: (0, 1, 2)}
    out = np.zeros_like(xyz)
    for n, slots in slot_of_track.items():
        t, c = np.nonzero(count == n)
        for track, slot in enumerate(slots):
            out[t, track, :, c] = xyz[t, slot, :, c]
    return np.ascontiguousarray(out, dtype=np.float32)


def adpit_to_tracks(target):
    """Reference tracks of an ADPIT target ``(..., 6, 4 or 5, C)``: ``(activity (..., 3, C), vectors (..., 3, 3 or 4,
    C))``, the vectors ``(x, y, z[, distance])``.

    Track ``k`` holds the ``k``-th same-class event (A0 or B0 or C0; B1 or C1; C2), since only one group is filled per
    frame and class. Works on NumPy arrays and torch tensors alike.
    """
    if target.ndim < 3 or target.shape[-3] != NUM_DUMMY_TRACKS or target.shape[-2] not in (4, 5):
        raise ValueError(f"ADPIT target must have shape (..., 6, 4 or 5, C), got {tuple(target.shape)}")
    a0, b0, b1, c0, c1, c2 = (target[..., i, :, :] for i in range(NUM_DUMMY_TRACKS))
    tracks = [a0 + b0 + c0, b1 + c1, c2]  # each (..., 4, C)
    if isinstance(target, np.ndarray):
        stacked = np.stack(tracks, axis=-3)
    else:
        import torch

        stacked = torch.stack(tracks, dim=-3)
    return stacked[..., 0, :], stacked[..., 1:, :]


# Training target kinds by name (``SeldDataset(target=...)``): events of a chunk -> its target.
TARGET_BUILDERS = {
    "adpit": events_to_adpit,
    "adpit_distance": partial(events_to_adpit, distance=True),
    "multi_accdoa": events_to_multi_accdoa,
    "multi_accdoa_distance": partial(events_to_multi_accdoa, distance=True),
}

