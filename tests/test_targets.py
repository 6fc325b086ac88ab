"""ADPIT and multi-ACCDOA targets from events."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from av_seld.geometry import sph_to_cart
from av_seld.io.labels import Events
from av_seld.targets import adpit_to_tracks, events_to_adpit, events_to_multi_accdoa


def _events(rows):
    """rows: (frame, class, source, azimuth, elevation)."""
    cols = list(zip(*rows)) if rows else [[]] * 5
    return Events.from_arrays(*cols)


def _adpit_loop(events: Events, num_frames: int, num_classes: int = 13) -> np.ndarray:
    """The baseline's get_adpit_labels_for_file restated: per frame, group same-class events, fill A / B / C."""
    out = np.zeros((num_frames, 6, 4, num_classes), dtype=np.float32)
    for frame, evs in enumerate(events.per_frame(num_frames)):
        by_class: dict[int, list] = {}
        for ev in sorted(evs, key=lambda e: (e.class_index, e.source)):
            by_class.setdefault(ev.class_index, []).append(ev)
        for cls, group in by_class.items():
            n = min(len(group), 3)
            first = {1: 0, 2: 1, 3: 3}[n]
            for k in range(n):
                out[frame, first + k, 0, cls] = 1
                out[frame, first + k, 1:, cls] = sph_to_cart(group[k].azimuth_deg, group[k].elevation_deg)
    return out


def test_adpit_groups_one_two_three_same_class_events():
    events = _events([
        (0, 3, 0, 90, 0),  # one telephone -> A0
        (1, 0, 5, 0, 0), (1, 0, 2, 180, 0),  # two female speech, sources 2 and 5 -> B0 = source 2, B1 = source 5
        (2, 8, 1, 0, 90), (2, 8, 0, 0, -90), (2, 8, 7, -90, 0),  # three music -> C0 C1 C2 by source id
        (2, 1, 4, 45, 0),  # another class in the same frame -> its own A0
    ])
    target = events_to_adpit(events, 4)
    assert target.shape == (4, 6, 4, 13) and target.dtype == np.float32
    np.testing.assert_allclose(target[0, 0, :, 3], [1, 0, 1, 0], atol=1e-7)
    assert target[0, 1:, 0, 3].sum() == 0
    np.testing.assert_allclose(target[1, 1, :, 0], [1, -1, 0, 0], atol=1e-7)  # source 2 at 180°
    np.testing.assert_allclose(target[1, 2, :, 0], [1, 1, 0, 0], atol=1e-7)  # source 5 at 0°
    assert target[1, [0, 3, 4, 5], 0, 0].sum() == 0
    np.testing.assert_allclose(target[2, 3, :, 8], [1, 0, 0, -1], atol=1e-7)  # source 0 at -90° elevation
    np.testing.assert_allclose(target[2, 4, :, 8], [1, 0, 0, 1], atol=1e-7)
    np.testing.assert_allclose(target[2, 5, :, 8], [1, 0, -1, 0], atol=1e-7)
    np.testing.assert_allclose(target[2, 0, :, 1], [1, np.sqrt(0.5), np.sqrt(0.5), 0], atol=1e-7)
    assert not target[3].any()
    assert target[..., 0, :].sum() == 1 + 2 + 3 + 1


def test_adpit_more_than_three_same_class_keeps_lowest_three_source_ids():
    events = _events([(0, 2, s, 10 * s, 0) for s in (4, 1, 3, 0)])
    target = events_to_adpit(events, 1)
    assert target[0, :, 0, 2].tolist() == [0, 0, 0, 1, 1, 1]
    kept_az = np.degrees(np.arctan2(target[0, 3:, 2, 2], target[0, 3:, 1, 2]))
    np.testing.assert_allclose(kept_az, [0, 10, 30], atol=1e-4)


def test_adpit_matches_baseline_loop_on_random_events():
    rng = np.random.default_rng(0)
    n = 400
    events = Events.from_arrays(rng.integers(0, 30, n), rng.integers(0, 4, n), rng.integers(0, 6, n),
                                rng.uniform(-180, 180, n), rng.uniform(-90, 90, n))
    # Duplicate (frame, class, source) rows are not meaningful labels: keep the first of each.
    _, first = np.unique(np.stack([events.frame, events.class_index, events.source]), axis=1, return_index=True)
    events = events.select(np.sort(first))
    np.testing.assert_allclose(events_to_adpit(events, 25), _adpit_loop(events, 25), atol=1e-6)


def test_empty_events_and_zero_frames():
    assert not events_to_adpit(Events.empty(), 7).any()
    assert events_to_adpit(Events.empty(), 0).shape == (0, 6, 4, 13)
    assert events_to_multi_accdoa(Events.empty(), 0).shape == (0, 3, 3, 13)
    with pytest.raises(ValueError):
        events_to_adpit(Events.empty(), -1)


def test_multi_accdoa_slots_and_duplicates():
    events = _events([(0, 5, 0, 0, 0), (1, 5, 3, 90, 0), (1, 5, 1, 0, 0), (9, 5, 0, 0, 0)])
    plain = events_to_multi_accdoa(events, 2)
    assert plain.shape == (2, 3, 3, 13) and plain.dtype == np.float32
    np.testing.assert_allclose(plain[0, :, :, 5], [[1, 0, 0], [0, 0, 0], [0, 0, 0]], atol=1e-7)
    np.testing.assert_allclose(plain[1, :, :, 5], [[1, 0, 0], [0, 1, 0], [0, 0, 0]], atol=1e-7)
    dup = events_to_multi_accdoa(events, 2, duplicate=True)
    np.testing.assert_allclose(dup[0, :, :, 5], [[1, 0, 0]] * 3, atol=1e-7)
    np.testing.assert_allclose(dup[1, :, :, 5], [[1, 0, 0], [1, 0, 0], [0, 1, 0]], atol=1e-7)
    norms = np.linalg.norm(plain, axis=2)
    assert set(np.unique(np.round(norms, 6))) <= {0.0, 1.0}


def test_adpit_to_tracks_recovers_slots_numpy_and_torch():
    rng = np.random.default_rng(1)
    n = 200
    events = Events.from_arrays(rng.integers(0, 20, n), rng.integers(0, 13, n), rng.integers(0, 3, n),
                                rng.uniform(-180, 180, n), rng.uniform(-90, 90, n))
    _, first = np.unique(np.stack([events.frame, events.class_index, events.source]), axis=1, return_index=True)
    events = events.select(np.sort(first))
    adpit = events_to_adpit(events, 20)
    activity, xyz = adpit_to_tracks(adpit)
    np.testing.assert_allclose(xyz, events_to_multi_accdoa(events, 20), atol=1e-7)
    np.testing.assert_array_equal(activity, np.linalg.norm(xyz, axis=-2) > 0.5)
    t_act, t_xyz = adpit_to_tracks(torch.from_numpy(adpit)[None])
    np.testing.assert_allclose(t_xyz[0].numpy(), xyz)
    np.testing.assert_allclose(t_act[0].numpy(), activity)
