"""Multi-ACCDOA decoding on hand-made outputs, down to the CSV rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from av_seld.geometry import sph_to_cart
from av_seld.io.labels import Events, read_prediction_csv
from av_seld.postprocess import multi_accdoa_to_events, write_predictions
from av_seld.targets import events_to_multi_accdoa


def _set(out, t, k, c, az, el, length=1.0):
    out[t, k, :, c] = length * sph_to_cart(az, el)


def test_hand_made_output_gives_expected_csv_rows(tmp_path):
    out = np.zeros((4, 3, 3, 13), dtype=np.float32)
    _set(out, 0, 0, 1, 90, 0, 0.9)  # one male speech event
    _set(out, 0, 1, 1, 0, 0, 0.4)  # below threshold: dropped
    # Frame 1, class 3: tracks 0 and 2 within 10° -> merged (mean direction 5°); track 1 far away -> its own event.
    _set(out, 1, 0, 3, 0, 0)
    _set(out, 1, 2, 3, 10, 0)
    _set(out, 1, 1, 3, -120, 30, 0.8)
    # Frame 2, class 12: 0~1 and 1~2 similar (chained, 0~2 at 20°) -> all three merged into one event at 0°.
    _set(out, 2, 0, 12, -10, 0)
    _set(out, 2, 1, 12, 0, 0)
    _set(out, 2, 2, 12, 10, 0)
    # Frame 3, class 0: two tracks 20° apart stay separate.
    _set(out, 3, 1, 0, 0, 40)
    _set(out, 3, 2, 0, 0, 20, 0.6)
    path = tmp_path / "pred.csv"
    write_predictions(path, out)
    assert path.read_text().splitlines() == [
        "0,1,0,90,0",
        "1,3,0,5,0",
        "1,3,1,-120,30",
        "2,12,0,0,0",
        "3,0,1,0,40",
        "3,0,2,0,20",
    ]
    back = read_prediction_csv(path)
    assert len(back) == 6


def test_per_class_thresholds_and_torch_input():
    out = torch.zeros(1, 3, 3, 13)
    out[0, 0, :, 4] = torch.tensor([0.0, 0.0, 0.6])  # laughter straight up, length 0.6
    out[0, 0, :, 5] = torch.tensor([0.0, -0.6, 0.0])  # domestic sounds at -90°, length 0.6
    thresholds = np.full(13, 0.5)
    thresholds[5] = 0.7
    events = multi_accdoa_to_events(out, threshold=thresholds, frame_offset=10)
    assert events.frame.tolist() == [10] and events.class_index.tolist() == [4]
    assert events.elevation_deg[0] == pytest.approx(90)
    assert len(multi_accdoa_to_events(out, threshold=0.65)) == 0
    with pytest.raises(ValueError):
        multi_accdoa_to_events(out, threshold=[0.5, 0.5])


def test_empty_output_gives_empty_csv(tmp_path):
    events = write_predictions(tmp_path / "empty.csv", np.zeros((5, 3, 3, 13)))
    assert len(events) == 0 and (tmp_path / "empty.csv").read_text() == ""


def test_targets_round_trip_through_decoding():
    rows = [(0, 0, 0, 30, 10), (1, 0, 0, 30, 10), (1, 0, 1, -100, 0), (2, 4, 0, 0, 0), (2, 4, 1, 90, 0),
            (2, 4, 2, 0, 90), (2, 7, 3, 170, -20)]
    events = Events.from_arrays(*zip(*rows))
    for duplicate in (False, True):
        decoded = multi_accdoa_to_events(events_to_multi_accdoa(events, 3, duplicate=duplicate))
        assert sorted(zip(decoded.frame, decoded.class_index, np.round(decoded.azimuth_deg, 3),
                          np.round(decoded.elevation_deg, 3))) == sorted(
            (f, c, float(a), float(e)) for f, c, _, a, e in rows)


def test_smoothing_averages_the_frames_around_each_frame_inside_the_clip():
    from av_seld.postprocess import smooth_output

    output = np.zeros((6, 3, 3, 13), np.float32)
    output[:, 0, 0, 2] = [0.0, 0.9, 0.3, 0.9, 0.9, 0.0]  # a one-frame dip inside an event
    np.testing.assert_array_equal(smooth_output(output, 1), output)
    three = smooth_output(output, 3)
    assert three.dtype == np.float32 and three.shape == output.shape
    np.testing.assert_allclose(three[:, 0, 0, 2], [0.45, 0.4, 0.7, 0.7, 0.6, 0.45], atol=1e-6)
    np.testing.assert_allclose(smooth_output(output, 2)[:, 0, 0, 2], [0.45, 0.6, 0.6, 0.9, 0.45, 0.0], atol=1e-6)
    assert not three[:, 1:].any() and not three[..., :2].any()
    # at threshold 0.5 the raw output decodes to two events around the dip, the smoothed one to one run of frames
    raw_frames = multi_accdoa_to_events(output, 0.5).frame
    assert list(raw_frames) == [1, 3, 4] and list(multi_accdoa_to_events(three, 0.5).frame) == [2, 3, 4]
    for bad in (0, 1.5, -3):
        with pytest.raises(ValueError, match="frames >= 1"):
            smooth_output(output, bad)
