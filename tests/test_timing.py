"""Tests of av_seld.timing against docs/conventions.md ("Time") and brute-force versions of its rules."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from av_seld import timing as t

SR = t.SAMPLE_RATE
# Exact frame rates for the brute-force references; the float ones are what the module gets.
EXACT_FPS = {t.SYNTHETIC_FPS: Fraction(30), t.STARSS23_FPS: Fraction(30_000, 1_001)}
FPS = list(EXACT_FPS)


def _nearest_video_frame(label_frame: int, fps: float) -> int:
    """Brute force: the frame k whose timestamp k / fps is nearest to 0.1 n (exact arithmetic, ties to the later)."""
    start = Fraction(label_frame, 10)
    fps = EXACT_FPS.get(fps, Fraction(fps))
    around = int(start * fps)
    candidates = range(max(around - 3, 0), around + 4)
    return min(candidates, key=lambda k: (abs(Fraction(k) / fps - start), -k))


def _num_video_frames(num_samples: int, fps: float) -> int:
    """Brute force: frames k with k / fps < duration, for a video as long as ``num_samples`` of audio."""
    duration = Fraction(num_samples, SR)
    fps = EXACT_FPS[fps]
    k = 0
    while Fraction(k) / fps < duration:
        k += 1
    return k


# ---------------------------------------------------------------------------------------------- label and features


@pytest.mark.parametrize(
    "num_samples, expected",
    [
        (0, 0),
        (1, 1),
        (2_399, 1),
        (2_400, 1),
        (2_401, 2),
        (60 * SR, 600),  # docs/conventions.md: a 60 s clip has 600 label frames
        (int(60.05 * SR), 601),  # a partial last frame counts
        (60 * SR + 1, 601),
        (int(0.25 * SR), 3),
    ],
)
def test_num_label_frames(num_samples, expected):
    assert t.num_label_frames(num_samples) == expected
    assert t.num_feature_frames(num_samples) == 5 * expected
    assert t.padded_num_samples(num_samples) == expected * 2_400


def test_num_label_frames_rejects_negative_lengths():
    with pytest.raises(ValueError):
        t.num_label_frames(-1)


def test_constants_agree():
    assert t.LABEL_HOP_SAMPLES == t.label_hop_samples() == round(SR * t.LABEL_HOP_S)
    assert t.FEATURE_FRAMES_PER_LABEL_FRAME * t.FEATURE_HOP_SAMPLES == t.LABEL_HOP_SAMPLES
    assert t.FEATURE_WIN_SAMPLES == 2 * t.FEATURE_HOP_SAMPLES and t.N_FFT >= t.FEATURE_WIN_SAMPLES
    assert t.label_hop_samples(48_000) == 4_800
    with pytest.raises(ValueError):
        t.label_hop_samples(44_105)  # 4410.5 samples per label frame


@pytest.mark.parametrize("num_samples", [1, 2_399, 2_400, 2_401, 12_345, int(60.05 * SR)])
def test_feature_frames_map_onto_label_frames(num_samples):
    num_labels = t.num_label_frames(num_samples)
    features = np.arange(t.num_feature_frames(num_samples))
    labels = t.feature_frame_to_label_frame(features)
    # Every label frame owns exactly 5 consecutive feature frames, starting at label_frame_to_feature_frames(n).
    np.testing.assert_array_equal(np.bincount(labels), np.full(num_labels, 5))
    np.testing.assert_array_equal(np.diff(labels) >= 0, True)
    first = t.label_frame_to_feature_frames(np.arange(num_labels))
    np.testing.assert_array_equal(labels[first], np.arange(num_labels))
    # Feature frame j and its label frame start at the same sample or the label frame starts earlier.
    feature_start = features * t.FEATURE_HOP_SAMPLES
    label_start = np.array([t.label_frame_sample_range(n)[0] for n in labels])
    assert np.all((feature_start >= label_start) & (feature_start < label_start + t.LABEL_HOP_SAMPLES))


@pytest.mark.parametrize("num_samples", [0, 1, 2_400, 2_401, 59_999, int(60.05 * SR)])
def test_sample_ranges_tile_the_padded_clip(num_samples):
    ranges = [t.label_frame_sample_range(n) for n in range(t.num_label_frames(num_samples))]
    padded = t.padded_num_samples(num_samples)
    assert 0 <= padded - num_samples < t.LABEL_HOP_SAMPLES
    if not ranges:
        assert padded == 0
        return
    assert ranges[0][0] == 0 and ranges[-1][1] == padded
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(ranges, ranges[1:]))
    assert all(stop - start == t.LABEL_HOP_SAMPLES for start, stop in ranges)
    assert ranges[-1][0] < max(num_samples, 1)  # the last label frame holds real audio


def test_seconds_and_label_frames_round_trip():
    n = np.arange(100_000)
    np.testing.assert_array_equal(t.seconds_to_label_frame(t.label_frame_start_s(n)), n)
    # Any instant inside a label frame maps to it, including the ones float arithmetic makes awkward (0.3 s, 0.7 s).
    np.testing.assert_array_equal(t.seconds_to_label_frame(t.label_frame_start_s(n) + 0.0999), n)
    assert t.seconds_to_label_frame(0.3) == 3 and t.seconds_to_label_frame(0.7) == 7
    assert t.seconds_to_samples(60.05) == 1_441_200 and t.samples_to_seconds(1_441_200) == pytest.approx(60.05)


# --------------------------------------------------------------------------------------------------------- video


def test_video_frame_at_30_fps_is_three_label_frames():
    n = np.arange(20_000)
    np.testing.assert_array_equal(t.video_frame_for_label_frame(n, t.SYNTHETIC_FPS), 3 * n)


@pytest.mark.parametrize("fps", FPS + [25.0, 24.0, 5.0])
def test_video_frame_is_the_nearest_timestamp(fps):
    # Every n up to 200, then a spread up to 6000 (10 minutes), against an exact nearest-timestamp search.
    n = np.concatenate([np.arange(201), np.arange(201, 6_001, 37), [5_999, 6_000]])
    expected = [_nearest_video_frame(int(i), fps) for i in n]
    np.testing.assert_array_equal(t.video_frame_for_label_frame(n, fps), expected)
    assert t.video_frame_for_label_frame(int(n[-1]), fps) == expected[-1]


def test_video_frame_ties_go_to_the_later_frame():
    # At 5 fps, label frame 1 (0.1 s) is 0.1 s from frame 0 (0.0 s) and from frame 1 (0.2 s).
    assert t.video_frame_for_label_frame(1, 5.0) == 1
    assert t.video_frame_for_label_frame(np.array([1, 3, 5]), 25.0).tolist() == [3, 8, 13]


def test_video_frame_at_29_97_fps_known_values():
    # 0.1 n s * 29.97 fps = 2.997 n frames: from n = 167 (0.003 n > 1/2) the frame is 3n - 1, from n = 501 3n - 2...
    n = np.array([0, 1, 2, 166, 167, 500, 501, 600, 1_800, 6_000])
    expected = [0, 3, 6, 498, 500, 1_499, 1_501, 1_798, 5_395, 17_982]
    np.testing.assert_array_equal(t.video_frame_for_label_frame(n, t.STARSS23_FPS), expected)


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize("num_frames", [0, 1, 2, 3, 4, 359, 360, 1_798, 1_799, 1_800])
def test_label_frames_covered_by_video(fps, num_frames):
    expected = 0
    while num_frames > 0 and _nearest_video_frame(expected, fps) <= num_frames - 1:
        expected += 1
    assert t.label_frames_covered_by_video(num_frames, fps) == expected


@pytest.mark.parametrize("fps", FPS)
def test_num_video_frames(fps):
    for num_samples in [0, 1, 799, 800, 801, 2_400, 24_001, 60 * SR, int(60.05 * SR)]:
        assert t.num_video_frames(num_samples / SR, fps) == _num_video_frames(num_samples, fps)


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize("seconds", [0.05, 1.0, 2.95, 7.3333, 12.0, 59.999, 60.0, 60.05, 61.26])
def test_audio_video_and_labels_line_up(fps, seconds):
    """For audio of S samples and a video as long, each label frame's video frame is within half a frame of 0.1 n."""
    num_samples = round(seconds * SR)
    num_labels = t.num_label_frames(num_samples)
    n = np.arange(num_labels)
    video_time = t.video_frame_for_label_frame(n, fps) / fps
    assert np.all(np.abs(video_time - t.label_frame_start_s(n)) <= 0.5 / fps + 1e-9)
    # Label frame n's 5 feature frames start at its own start sample, on the same clock as its video frame.
    np.testing.assert_array_equal(t.label_frame_to_feature_frames(n) * t.FEATURE_HOP_SAMPLES, n * t.LABEL_HOP_SAMPLES)
    # The video serves every label frame but possibly the last one: at 29.97 fps its nearest frame can fall
    # just past the end of the video (the reader pads it); at 30 fps the frame 3n always exists.
    covered = t.label_frames_covered_by_video(t.num_video_frames(num_samples / SR, fps), fps)
    assert covered >= num_labels - (0 if fps == t.SYNTHETIC_FPS else 1)


def test_last_label_frame_can_miss_a_29_97_fps_video_of_the_same_length():
    # 2401 samples (0.10004 s) make 2 label frames; a video as long holds frames 0-2 (up to 0.0667 s), but label
    # frame 1 (0.1 s) selects frame 3 (0.1001 s), the nearer one: it has no frame and is padded, never clamped.
    num_frames = t.num_video_frames(2_401 / SR, t.STARSS23_FPS)
    assert (t.num_label_frames(2_401), num_frames) == (2, 3)
    assert t.video_frame_for_label_frame(1, t.STARSS23_FPS) == 3
    assert t.label_frames_covered_by_video(num_frames, t.STARSS23_FPS) == 1


@pytest.mark.parametrize("bad_fps", [0.0, -30.0])
def test_non_positive_fps_is_rejected(bad_fps):
    for call in (
        lambda: t.video_frame_for_label_frame(1, bad_fps),
        lambda: t.num_video_frames(1.0, bad_fps),
        lambda: t.label_frames_covered_by_video(10, bad_fps),
    ):
        with pytest.raises(ValueError):
            call()
