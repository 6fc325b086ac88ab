"""Tests of augment.spatial: FOA / free-field MIC rendering of static and moving sources, checked by localising them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from augment import spatial as sp
from av_seld.geometry import angular_distance_deg, sph_to_cart
from av_seld.timing import LABEL_HOP_SAMPLES, SAMPLE_RATE

# docs/conventions.md examples, the seam (±180), near the poles (±80) and the MIC capsule directions.
DIRECTIONS = [(0, 0), (90, 0), (-90, 0), (-180, 0), (179.5, 10), (30, 80), (-150, -80), (45, 35), (-135, 35),
              (135, -35), (-60, -20), (100, 60), (0, 90)]


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))


def _pair_differences(delays: np.ndarray) -> np.ndarray:
    return np.array([delays[j] - delays[i] for i, j in sp.MIC_PAIRS])


# ----------------------------------------------------------------------------------------------- gains, delays


def test_foa_gains_follow_conventions():
    for az, el in DIRECTIONS:
        a, e = math.radians(az), math.radians(el)
        # docs/conventions.md: W = s, Y = s sin φ cos θ, Z = s sin θ, X = s cos φ cos θ.
        expected = [1, math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)]
        np.testing.assert_allclose(sp.foa_gains(az, el), expected, atol=1e-12)
    np.testing.assert_allclose(sp.foa_gains(0, 0), [1, 0, 0, 1], atol=1e-12)  # front
    np.testing.assert_allclose(sp.foa_gains(90, 0), [1, 1, 0, 0], atol=1e-12)  # left
    np.testing.assert_allclose(sp.foa_gains(0, 90), [1, 0, 1, 0], atol=1e-12)  # up
    assert sp.FOA_CHANNELS == ("W", "Y", "Z", "X")


def test_gains_and_delays_broadcast():
    az, el = np.zeros((2, 3)), np.linspace(-80, 80, 3)
    assert sp.foa_gains(az, el).shape == (2, 3, 4)
    assert sp.mic_delays_s(az, el).shape == (2, 3, 4)
    assert sp.mic_delays_s(10, 20).shape == (4,)


def test_capsule_facing_the_source_hears_it_first():
    for m, (az, el) in enumerate(sp.MIC_CAPSULES_DEG):
        delays = sp.mic_delays_s(az, el)
        assert delays[m] == pytest.approx(-sp.MIC_RADIUS_M / sp.SPEED_OF_SOUND)
        assert np.argmin(delays) == m
    # Broadside to the x axis (straight up): capsules at +35° elevation lead, those at -35° lag, symmetrically.
    up = sp.mic_delays_s(0, 90)
    assert up[0] == pytest.approx(up[3]) and up[1] == pytest.approx(up[2]) and up[0] == pytest.approx(-up[1])


# ----------------------------------------------------------------------------------------------- static sources


@pytest.mark.parametrize("azimuth, elevation", DIRECTIONS)
def test_static_foa_is_localised_where_rendered(azimuth, elevation):
    foa = sp.render_foa(_noise(1.0), azimuth, elevation)
    assert foa.shape == (4, SAMPLE_RATE) and foa.dtype == np.float32
    est = sp.foa_intensity_doa(foa)
    assert angular_distance_deg(*est, azimuth, elevation) < 2.0


@pytest.mark.parametrize("azimuth, elevation", DIRECTIONS)
def test_static_mic_delays_and_direction(azimuth, elevation):
    mic = sp.render_mic(_noise(1.0), azimuth, elevation)
    assert mic.shape == (4, SAMPLE_RATE) and mic.dtype == np.float32
    tdoas = sp.mic_tdoa(mic)
    expected = _pair_differences(sp.mic_delays_s(azimuth, elevation))
    np.testing.assert_allclose(tdoas * SAMPLE_RATE, expected * SAMPLE_RATE, atol=0.05)  # samples
    est = sp.mic_doa_from_tdoa(tdoas)
    assert angular_distance_deg(*est, azimuth, elevation) < 3.0


def test_mic_doa_ignores_a_uniform_scaling_of_the_delays():
    # The rigid sphere's low-frequency delays are 1.5x the free-field ones for every pair (module docstring).
    tdoas = 1.5 * _pair_differences(sp.mic_delays_s(-70, 25))
    assert angular_distance_deg(*sp.mic_doa_from_tdoa(tdoas), -70, 25) < 1e-6


def test_fractional_delay_matches_an_exact_band_limited_delay():
    signal = _noise(0.5)
    spectrum = np.fft.rfft(signal)
    freqs = np.fft.rfftfreq(signal.size, 1 / SAMPLE_RATE)
    spectrum[freqs > 8000] = 0  # the kernel is specified below 8 kHz
    signal = np.fft.irfft(spectrum, n=signal.size)
    omega = 2 * np.pi * freqs / SAMPLE_RATE
    for azimuth, elevation in [(45, 35), (-100, 10)]:
        mic = sp.render_mic(signal, azimuth, elevation)
        for m, delay in enumerate(sp.mic_delays_s(azimuth, elevation) * SAMPLE_RATE):
            exact = np.fft.irfft(spectrum * np.exp(-1j * omega * delay), n=signal.size)
            inner = slice(200, -200)  # the exact delay is circular; the rendered one is not
            error = np.sqrt(np.mean((mic[m, inner] - exact[inner]) ** 2)) / np.std(signal)
            assert error < 1e-3


def test_directivity_gives_capsule_facing_the_source_more_level():
    signal = _noise(0.5)
    omni = sp.render_mic(signal, 45, 35)
    cardioid = sp.render_mic(signal, 45, 35, directivity=1.0)
    def rms(x):
        return np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1))

    ratio = rms(cardioid) / rms(omni)
    cos_angle = sph_to_cart(*np.array(sp.MIC_CAPSULES_DEG, dtype=float).T) @ sph_to_cart(45, 35)
    np.testing.assert_allclose(ratio, 0.5 * (1 + cos_angle), rtol=1e-3)
    assert np.argmax(ratio) == 0
    with pytest.raises(ValueError):
        sp.render_mic(signal, 0, 0, directivity=1.5)


def test_scalar_and_constant_per_sample_direction_render_the_same():
    signal = _noise(0.3)
    az, el = np.full(signal.size, -123.0), np.full(signal.size, 17.0)
    np.testing.assert_array_equal(sp.render_foa(signal, -123.0, 17.0), sp.render_foa(signal, az, el))
    np.testing.assert_array_equal(sp.render_mic(signal, -123.0, 17.0), sp.render_mic(signal, az, el))


def test_empty_signal_and_bad_shapes():
    assert sp.render_foa(np.zeros(0), 0, 0).shape == (4, 0)
    assert sp.render_mic(np.zeros(0), 0, 0).shape == (4, 0)
    with pytest.raises(ValueError):
        sp.render_foa(np.zeros(10), np.zeros(9), 0)
    with pytest.raises(ValueError):
        sp.render_mic(np.zeros((2, 10)), 0, 0)


# ----------------------------------------------------------------------------------------------- trajectories


def test_trajectory_moves_at_constant_speed_without_kinks():
    speed = 30.0
    az, el = sp.smooth_trajectory(170.0, 50.0, speed, 3.0, np.random.default_rng(7))
    assert az.shape == el.shape == (3 * SAMPLE_RATE,) and az.dtype == np.float64
    assert az[0] == pytest.approx(170.0) and el[0] == pytest.approx(50.0)
    assert np.all((az >= -180) & (az < 180)) and np.all(np.abs(el) <= sp.ELEVATION_LIMIT_DEG)
    xyz = sph_to_cart(az, el)
    step = np.degrees(np.arccos(np.clip(np.sum(xyz[1:] * xyz[:-1], axis=1), -1, 1)))
    assert step.max() <= 1.01 * speed / SAMPLE_RATE  # no jumps, the seam included
    assert step.min() >= 0.99 * speed / SAMPLE_RATE
    # No kinks: the direction of motion over 10 ms turns by a small angle from one 10 ms to the next.
    moves = xyz[240::240] - xyz[:-240:240]
    moves /= np.linalg.norm(moves, axis=1, keepdims=True)
    turn = np.degrees(np.arccos(np.clip(np.sum(moves[1:] * moves[:-1], axis=1), -1, 1)))
    assert turn.max() < 2.0


@pytest.mark.parametrize("start_elevation", [80.0, -80.0, 79.0, 55.0, -60.0])
def test_trajectory_stays_within_elevation_limits(start_elevation):
    for seed in range(4):
        az, el = sp.smooth_trajectory(0.0, start_elevation, 90.0, 10.0, np.random.default_rng(seed), sample_rate=1000)
        assert np.all(np.abs(el) <= sp.ELEVATION_LIMIT_DEG + 1e-9)
    with pytest.raises(ValueError):
        sp.smooth_trajectory(0.0, 85.0, 30.0, 1.0, np.random.default_rng(0))


def test_trajectory_is_deterministic_for_a_seed():
    first = sp.smooth_trajectory(-20.0, 10.0, 45.0, 2.0, np.random.default_rng(123))
    again = sp.smooth_trajectory(-20.0, 10.0, 45.0, 2.0, np.random.default_rng(123))
    other = sp.smooth_trajectory(-20.0, 10.0, 45.0, 2.0, np.random.default_rng(124))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.allclose(first[0], other[0])


def test_direction_at_label_frames_reads_the_sample_nearest_each_frame_centre():
    hop = LABEL_HOP_SAMPLES
    marker = np.arange(6000, dtype=np.float64)  # "azimuth" = event sample index
    frames, az, el = sp.direction_at_label_frames(marker, -marker, onset_sample=3000)
    np.testing.assert_array_equal(frames, [1, 2, 3])  # event covers clip samples [3000, 9000)
    np.testing.assert_array_equal(az, [hop + hop // 2 - 3000, 2 * hop + hop // 2 - 3000, 3 * hop + hop // 2 - 3000])
    np.testing.assert_array_equal(el, -az)
    # A short event straddling a frame boundary: both frames listed, centres clamped to the event's span.
    frames, az, _ = sp.direction_at_label_frames(marker[:200], marker[:200], onset_sample=2300)
    np.testing.assert_array_equal(frames, [0, 1])
    np.testing.assert_array_equal(az, [0, 199])


# ----------------------------------------------------------------------------------------------- moving sources


@pytest.fixture(scope="module")
def moving_source():
    """A 3 s white-noise source at 30°/s along a smooth trajectory starting at clip sample 0."""
    az, el = sp.smooth_trajectory(150.0, 20.0, 30.0, 3.0, np.random.default_rng(3))
    return _noise(3.0, seed=1), az, el


def test_moving_foa_follows_the_labels(moving_source):
    signal, az, el = moving_source
    foa = sp.render_foa(signal, az, el)
    errors = []
    for frame, ref_az, ref_el in zip(*sp.direction_at_label_frames(az, el, onset_sample=0)):
        est = sp.foa_intensity_doa(foa[:, frame * LABEL_HOP_SAMPLES:(frame + 1) * LABEL_HOP_SAMPLES])
        errors.append(angular_distance_deg(*est, ref_az, ref_el))
    assert len(errors) == 30 and max(errors) < 5.0


def test_moving_mic_follows_the_labels(moving_source):
    signal, az, el = moving_source
    mic = sp.render_mic(signal, az, el)
    errors = []
    for frame, ref_az, ref_el in zip(*sp.direction_at_label_frames(az, el, onset_sample=0)):
        tdoas = sp.mic_tdoa(mic[:, frame * LABEL_HOP_SAMPLES:(frame + 1) * LABEL_HOP_SAMPLES])
        errors.append(angular_distance_deg(*sp.mic_doa_from_tdoa(tdoas), ref_az, ref_el))
    assert len(errors) == 30 and max(errors) < 10.0


def test_moving_renders_have_no_clicks(moving_source):
    signal, az, el = moving_source
    static_step = np.abs(np.diff(sp.render_foa(signal, 0, 0)[0])).max()  # W of a static source
    foa_steps = np.abs(np.diff(sp.render_foa(signal, az, el), axis=1)).max(axis=1)
    assert np.all(foa_steps <= 1.01 * static_step)  # every channel, W included
    static_mic_step = np.abs(np.diff(sp.render_mic(signal, az[0], el[0]), axis=1)).max()
    moving_mic_step = np.abs(np.diff(sp.render_mic(signal, az, el), axis=1)).max()
    assert moving_mic_step <= 1.1 * static_mic_step
