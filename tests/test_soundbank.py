"""Tests of augment.soundbank: valid audio for every class, seeded purity, and classes that are told apart across
seeds while every draw differs."""

from __future__ import annotations

import random

import numpy as np
import pytest

from augment import soundbank
from augment.soundbank import NUM_CLASSES, SYNTHESIZERS, active_rms, synthesize
from av_seld.timing import SAMPLE_RATE

SR = SAMPLE_RATE
CLASSES = list(range(NUM_CLASSES))
DRAW_S = 2.0
TRAIN_SEEDS = list(range(8))
TEST_SEEDS = list(range(100, 108))
FEMALE, MALE = 0, 1


def draw(class_index: int, seed: int, duration_s: float = DRAW_S, sample_rate: int = SR) -> np.ndarray:
    return synthesize(class_index, duration_s, np.random.default_rng(seed), sample_rate)


@pytest.fixture(scope="module")
def draws() -> dict[tuple[int, int], np.ndarray]:
    """(class, seed) -> a 2 s draw, for seeds 0–7 and 100–107."""
    return {(c, s): draw(c, s) for c in CLASSES for s in TRAIN_SEEDS + TEST_SEEDS}


# ------------------------------------------------------------------------------------------ features for the checks

_FRAME, _HOP = 1024, 480
_BAND_EDGES_HZ = np.geomspace(50.0, 11_000.0, 21)
_MOD_EDGES_HZ = np.array([0.5, 2.0, 4.0, 8.0, 16.0, 25.0])


def _power_frames(audio: np.ndarray) -> np.ndarray:
    """Hann-windowed power spectra, (num_frames, _FRAME // 2 + 1), 20 ms hop."""
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), _FRAME)[::_HOP]
    return np.abs(np.fft.rfft(frames * np.hanning(_FRAME), axis=1)) ** 2


def summary(audio: np.ndarray) -> np.ndarray:
    """A level-free description of a sound, (30,): spectral shape in 20 log-spaced bands (dB, mean over active
    frames, mean removed), energy-envelope modulation in 5 bands (0.5–25 Hz, dB of the share), and 5 scalars:
    active fraction, spectral flatness, harmonicity (autocorrelation peak), spectral flux and log pitch."""
    power = _power_frames(audio)
    freqs = np.fft.rfftfreq(_FRAME, 1 / SR)
    bands = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(1)
                      for lo, hi in zip(_BAND_EDGES_HZ[:-1], _BAND_EDGES_HZ[1:])], axis=1)
    log_bands = 10 * np.log10(bands + 1e-10)
    energy_db = 10 * np.log10(power.sum(1) + 1e-10)
    active = energy_db > energy_db.max() - 30
    shape = log_bands[active].mean(0)
    shape -= shape.mean()

    envelope = np.maximum(energy_db, energy_db.max() - 40)
    modulation = np.abs(np.fft.rfft(envelope - envelope.mean())) ** 2
    mod_freqs = np.fft.rfftfreq(envelope.size, _HOP / SR)
    mod_bands = np.array([modulation[(mod_freqs >= lo) & (mod_freqs < hi)].sum()
                          for lo, hi in zip(_MOD_EDGES_HZ[:-1], _MOD_EDGES_HZ[1:])])
    mod_bands = 10 * np.log10(mod_bands / (modulation[1:].sum() + 1e-10) + 1e-6)

    spectra = power[active][:, 2:] + 1e-12
    flatness = np.mean(np.log(spectra).mean(1) - np.log(spectra.mean(1)))
    autocorr = np.fft.irfft(power[active], axis=1)
    autocorr /= autocorr[:, :1] + 1e-12
    lags = slice(SR // 500, SR // 50)  # 50–500 Hz
    peak = autocorr[:, lags].max(1)
    voiced = peak > 0.5
    best_lag = autocorr[:, lags].argmax(1) + lags.start
    log_pitch = np.log(SR / np.median(best_lag[voiced])) if voiced.any() else np.log(40.0)
    flux = np.abs(np.diff(log_bands[active], axis=0)).mean() / 5 if active.sum() > 1 else 0.0
    return np.concatenate([shape, mod_bands, [active.mean(), flatness, peak.mean(), flux, log_pitch]])


def median_pitch_hz(audio: np.ndarray) -> float:
    """Median autocorrelation pitch (60–400 Hz) over voiced 40 ms frames (10 ms hop) within 25 dB of the loudest.

    Per frame: the unbiased normalised autocorrelation; voiced if its peak exceeds 0.5; the pitch period is the
    shortest lag within 10 % of the peak, which avoids picking a multiple of the period.
    """
    size, hop = 960, 240
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), size)[::hop]
    frames = frames - frames.mean(1, keepdims=True)
    energy = (frames**2).sum(1)
    frames = frames[energy > energy.max() * 10 ** (-25 / 10)]
    spectrum = np.fft.rfft(frames, 2 * size, axis=1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :size]
    autocorr /= size - np.arange(size)  # unbiased
    autocorr /= autocorr[:, :1]
    lo, hi = SR // 400, SR // 60
    window = autocorr[:, lo:hi]
    peak = window.max(1)
    period = lo + np.argmax(window >= 0.9 * peak[:, None], axis=1)
    voiced = peak > 0.5
    assert voiced.sum() >= 5, "too few voiced frames"
    return float(np.median(SR / period[voiced]))


# ---------------------------------------------------------------------------------------------------- valid audio


def test_registry_covers_the_13_classes():
    assert NUM_CLASSES == 13
    assert sorted(SYNTHESIZERS) == CLASSES


@pytest.mark.parametrize("class_index", CLASSES)
def test_every_class_gives_valid_faded_audio_at_the_target_level(class_index, draws):
    fade = int(round(soundbank.FADE_S * SR))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    for seed in (0, 1, 2):
        audio = draws[class_index, seed]
        assert audio.dtype == np.float32 and audio.shape == (int(DRAW_S * SR),)
        assert np.all(np.isfinite(audio))
        assert np.abs(audio).max() <= 1.0
        # Not silent, and at the specified level over the active part (clipping may take off a hair).
        level_db = 20 * np.log10(active_rms(audio))
        assert soundbank.TARGET_RMS_DBFS - 0.5 <= level_db <= soundbank.TARGET_RMS_DBFS + 1e-3
        # Starts and stops at exactly zero, inside 5 ms raised-cosine fades (|audio| <= 1 under them).
        assert audio[0] == 0 and audio[-1] == 0
        assert np.all(np.abs(audio[:fade]) <= ramp + 1e-6)
        assert np.all(np.abs(audio[::-1][:fade]) <= ramp + 1e-6)


@pytest.mark.parametrize("class_index", CLASSES)
def test_lengths_short_durations_and_other_sample_rates(class_index):
    assert synthesize(class_index, 0.0, np.random.default_rng(0)).shape == (0,)
    assert synthesize(class_index, 0.0, np.random.default_rng(0)).dtype == np.float32
    for duration_s in (1 / SR, 0.003, 0.05, 1.23456):
        audio = draw(class_index, 3, duration_s)
        assert audio.shape == (round(duration_s * SR),)
        assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
    assert np.abs(draw(class_index, 3, 0.05)).max() > 0  # even a 50 ms event has its first sub-event
    for rate in (16_000, 48_000):
        audio = draw(class_index, 3, 0.5, sample_rate=rate)
        assert audio.shape == (rate // 2,) and np.all(np.isfinite(audio))
        assert 20 * np.log10(active_rms(audio, rate)) == pytest.approx(soundbank.TARGET_RMS_DBFS, abs=0.5)


def test_bad_arguments_raise():
    rng = np.random.default_rng(0)
    for bad in (-1, NUM_CLASSES):
        with pytest.raises(ValueError):
            synthesize(bad, 1.0, rng)
    with pytest.raises(TypeError):
        synthesize(1.5, 1.0, rng)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            synthesize(0, bad, rng)
    with pytest.raises(TypeError):
        synthesize(0, 1.0, 0)
    with pytest.raises(TypeError):
        synthesize(0, 1.0, np.random.RandomState(0))


def test_active_rms_ignores_silence_and_the_far_quieter_part():
    t = np.arange(SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    with_silence = np.concatenate([tone, np.zeros(SR)])
    assert active_rms(with_silence) == pytest.approx(0.3 / np.sqrt(2), rel=1e-3)
    with_hiss = np.concatenate([tone, 1e-3 * np.sin(2 * np.pi * 1000 * t)])  # 50 dB down: not active
    assert active_rms(with_hiss) == pytest.approx(0.3 / np.sqrt(2), rel=1e-3)
    assert active_rms(np.zeros(100)) == 0.0 and active_rms(np.zeros(0)) == 0.0


# ------------------------------------------------------------------------------------------------- purity and seeds


@pytest.mark.parametrize("class_index", CLASSES)
def test_same_seed_same_samples_and_no_global_randomness(class_index, draws):
    np.random.seed(1234)
    random.seed(1234)
    again = draw(class_index, 0)
    assert np.random.random() == np.random.RandomState(1234).random_sample()
    assert random.random() == random.Random(1234).random()
    np.testing.assert_array_equal(again, draws[class_index, 0])
    # The draw depends on the generator's state only: a generator advanced the same way gives the same sound.
    rng = np.random.default_rng(0)
    first = synthesize(class_index, DRAW_S, rng)
    second = synthesize(class_index, DRAW_S, rng)
    np.testing.assert_array_equal(first, draws[class_index, 0])
    assert not np.array_equal(first, second)


def test_classes_are_told_apart_across_seeds_and_draws_vary(draws):
    """A nearest-centroid classifier on ``summary`` features fitted to seeds 0–7 labels seeds 100–107 correctly at
    least 80 % of the time, and no two draws of a class are (nearly) the same sound."""
    train = np.array([[summary(draws[c, s]) for c in CLASSES] for s in TRAIN_SEEDS])  # (seeds, classes, features)
    test = np.array([[summary(draws[c, s]) for c in CLASSES] for s in TEST_SEEDS])
    mean = train.reshape(-1, train.shape[-1]).mean(0)
    std = train.reshape(-1, train.shape[-1]).std(0) + 1e-9
    train, test = (train - mean) / std, (test - mean) / std
    centroids = train.mean(0)  # (classes, features)
    distance = ((test[:, :, None, :] - centroids[None, None]) ** 2).sum(-1)  # (seeds, true class, centroid)
    predicted = distance.argmin(-1)
    accuracy = (predicted == np.arange(NUM_CLASSES)).mean()
    assert accuracy >= 0.8, f"accuracy {accuracy:.3f}; predictions per seed (rows) and class:\n{predicted}"

    both = np.concatenate([train, test])  # (16 draws, classes, features)
    for c in CLASSES:
        within = np.sqrt(((both[:, None, c] - both[None, :, c]) ** 2).sum(-1))
        closest = within[~np.eye(len(both), dtype=bool)].min()
        assert closest > 0.3, f"class {c}: two draws differ by only {closest:.3f} (z-scored feature distance)"


def test_female_speech_is_higher_pitched_than_male_speech(draws):
    """Every female draw has a higher median pitch than every male draw (16 of each), within the drawn ranges."""
    seeds = TRAIN_SEEDS + TEST_SEEDS
    female = np.array([median_pitch_hz(draws[FEMALE, s]) for s in seeds])
    male = np.array([median_pitch_hz(draws[MALE, s]) for s in seeds])
    assert female.min() > male.max(), f"female {np.round(female)} Hz vs male {np.round(male)} Hz"
    assert np.all((150 < female) & (female < 300)) and np.all((75 < male) & (male < 170)), (female, male)

