"""Batched torch features equal the NumPy/librosa reference of the DCASE baseline definitions; shapes and physics.

Tolerances. The torch path in float64 is held to the reference within 1e-4 absolute everywhere (it agrees to about
1e-6 dB / 1e-9: only librosa's float32 mel filters differ). The production float32 path is held within 1e-4
absolute on the intensity vectors, GCC-PHAT and SALSA-lite phase channels (values of order 1), and on the log-mel
channels, whose values reach tens of dB, within 1e-4 relative: |a - b| <= 1e-4 * max(1, |b|) (observed: ~5e-6 dB).
SALSA-lite's log powers are single FFT bins: a bin that nearly cancels (power ~1e-7 of its frame's) carries float32
rounding of the whole frame, so there the test compares powers, |P32 - P| <= 1e-4 P + 1e-7 * (frame mean power),
i.e. within 1e-4 relative wherever the bin holds more than a millionth of the frame's power.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import feature_reference as ref
from augment.spatial import render_foa, render_mic
from av_seld import timing
from av_seld.features import (FEATURE_SPECS, FeatureExtractor, compute_features, feature_spec, mel_filterbank,
                              salsalite_bins, stft)

SR = timing.SAMPLE_RATE


def _scene(render, seconds: float, seed: int) -> np.ndarray:
    """(4, N) float32: a noise source from (30°, 20°), a second from (-100°, -10°), sensor noise, 16-bit values."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    audio = render(0.2 * rng.standard_normal(n).astype(np.float32), 30.0, 20.0)
    audio = audio + render(0.1 * rng.standard_normal(n).astype(np.float32), -100.0, -10.0)
    audio = audio + 0.01 * rng.standard_normal((4, n)).astype(np.float32)
    return (np.round(np.clip(audio, -1, 1) * 32767) / 32768).astype(np.float32)


@pytest.fixture(scope="module")
def clips():
    # 2.37 s: not a whole number of label frames, so the padding to 24 label frames is exercised.
    return {"foa": _scene(render_foa, 2.37, 0), "mic": _scene(render_mic, 2.37, 1)}


def _assert_close(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> None:
    err = np.abs(got - want) - rtol * np.maximum(1.0, np.abs(want))
    assert (err <= atol).all(), f"{name}: worst excess {err.max():.3g} at {np.unravel_index(err.argmax(), err.shape)}"


@pytest.mark.parametrize("kind", sorted(FEATURE_SPECS))
def test_float64_path_equals_the_reference(kind, clips):
    audio = clips[feature_spec(kind).audio_format]
    want = ref.REFERENCE[kind](audio.astype(np.float64))
    got = FeatureExtractor(kind, dtype=torch.float64)(torch.from_numpy(audio)).numpy()
    assert got.shape == want.shape == (feature_spec(kind).num_channels, timing.num_feature_frames(audio.shape[1]),
                                       feature_spec(kind).num_bins)
    _assert_close(kind, got, want, rtol=0.0, atol=1e-4)


@pytest.mark.parametrize("kind", sorted(FEATURE_SPECS))
def test_float32_path_equals_the_reference(kind, clips):
    audio = clips[feature_spec(kind).audio_format]
    want = ref.REFERENCE[kind](audio.astype(np.float64))
    got = compute_features(audio, kind)
    assert got.dtype == np.float32 and got.shape == want.shape
    if kind == "mic_salsalite":
        p_got, p_want = 10 ** (got[:4] / 10.0), 10 ** (want[:4] / 10.0)
        frame_mean = p_want.mean(axis=-1, keepdims=True)
        assert (np.abs(p_got - p_want) <= 1e-4 * p_want + 1e-7 * frame_mean).all()
        _assert_close(kind + " NIPD", got[4:], want[4:], rtol=0.0, atol=1e-4)
    else:
        _assert_close(kind + " log-mel", got[:4], want[:4], rtol=1e-4, atol=0.0)
        _assert_close(kind + " spatial", got[4:], want[4:], rtol=0.0, atol=1e-4)


def test_mel_filterbank_equals_librosa():
    import librosa

    want = librosa.filters.mel(sr=SR, n_fft=timing.N_FFT, n_mels=64, dtype=np.float64).T
    got = mel_filterbank(dtype=torch.float64).numpy()
    # torchaudio computes the filters in float32: within 5e-8 of librosa's float64 ones (largest weight 0.019),
    # zero exactly where librosa's are (the CPU kernels' triangle spans depend on it)
    np.testing.assert_allclose(got, want, rtol=0, atol=5e-8)
    np.testing.assert_array_equal(got > 0, want > 0)


def test_salsalite_frequency_range():
    assert salsalite_bins() == (2, 85, 384)  # 46.9 Hz .. 9 kHz kept; phase differences up to bin 86 (2.02 kHz)
    assert feature_spec("mic_salsalite").num_bins == 382


@pytest.mark.parametrize("num_samples", [1, 2399, 2400, 2401, 24_000, 30_001])
def test_frame_count_follows_timing(num_samples):
    audio = np.random.default_rng(num_samples).uniform(-0.5, 0.5, (4, num_samples)).astype(np.float32)
    for kind in FEATURE_SPECS:
        out = compute_features(audio, kind)
        assert out.shape[1] == timing.num_feature_frames(num_samples) == 5 * timing.num_label_frames(num_samples)
        assert np.isfinite(out).all()


def test_batched_equals_one_by_one(clips):
    rng = np.random.default_rng(3)
    batch = np.stack([clips["mic"], clips["mic"][::-1] * 0.5, rng.uniform(-0.1, 0.1, clips["mic"].shape)])
    batch = batch.astype(np.float32)
    for kind in ("mic_logmel_gcc", "mic_salsalite"):
        together = compute_features(batch, kind)
        for b in range(len(batch)):
            np.testing.assert_allclose(together[b], compute_features(batch[b], kind), rtol=1e-5, atol=1e-5)


def test_zero_padding_is_what_the_clip_end_sees(clips):
    # Features of a clip equal those of the same clip explicitly zero-padded to whole label frames.
    audio = clips["foa"]
    padded = np.zeros((4, timing.padded_num_samples(audio.shape[1])), np.float32)
    padded[:, : audio.shape[1]] = audio
    np.testing.assert_array_equal(compute_features(audio, "foa_logmel_iv"), compute_features(padded, "foa_logmel_iv"))


def test_intensity_vector_points_at_the_source():
    rng = np.random.default_rng(5)
    signal = 0.3 * rng.standard_normal(SR).astype(np.float32)
    for azimuth, elevation in [(0, 0), (90, 0), (-135, 30), (60, -60)]:
        iv = compute_features(render_foa(signal, azimuth, elevation), "foa_logmel_iv")[4:7]  # x, y, z
        direction = iv.mean(axis=(1, 2))
        direction /= np.linalg.norm(direction)
        a, e = np.radians(azimuth), np.radians(elevation)
        expected = [np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)]
        assert np.degrees(np.arccos(np.clip(direction @ expected, -1, 1))) < 1.0


def test_gcc_phat_peaks_at_the_delay():
    # M2 = M1 delayed by 3 samples, M3 advanced by 2, M4 = M1: pair (m, n) peaks at lag delay_n - delay_m.
    rng = np.random.default_rng(6)
    source = rng.standard_normal(SR + 100).astype(np.float32)
    delays = [0, 3, -2, 0]
    audio = np.stack([source[50 - d: 50 - d + SR] for d in delays]) * 0.3
    gcc = compute_features(audio, "mic_logmel_gcc")[4:]  # (6, T, 64), lag index 32 = zero lag
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    for channel, (m, n) in enumerate(pairs):
        peak_lag = int(np.argmax(gcc[channel, 5:-5].mean(axis=0))) - 32
        assert peak_lag == delays[n] - delays[m], (m, n)


def test_silence_is_finite_and_gcc_is_a_zero_lag_impulse():
    out = compute_features(np.zeros((4, 4800), np.float32), "mic_logmel_gcc")
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:4], -100.0)  # 10 log10(1e-10)
    impulse = np.zeros(64)
    impulse[32] = 1.0
    np.testing.assert_allclose(out[4:], np.broadcast_to(impulse, out[4:].shape), atol=1e-6)
    assert np.isfinite(compute_features(np.zeros((4, 4800), np.float32), "foa_logmel_iv")).all()


def test_extractor_checks_shapes(clips):
    spec = feature_spec("foa_logmel_iv")
    raw = compute_features(clips["foa"], "foa_logmel_iv")
    extractor = FeatureExtractor("foa_logmel_iv")
    np.testing.assert_array_equal(extractor(torch.from_numpy(clips["foa"])).numpy(), raw)
    assert extractor.num_frames(clips["foa"].shape[1]) == raw.shape[1]
    with pytest.raises(ValueError, match="audio must be"):
        extractor(torch.zeros(2, 3, 100))
    with pytest.raises(ValueError, match="unknown feature kind"):
        FeatureExtractor("stft")
    assert (spec.num_channels, spec.num_bins) == (7, 64)


def test_extractor_moves_with_to_and_keeps_top_db(clips):
    extractor = FeatureExtractor("mic_logmel_gcc").to(torch.float32)
    out = extractor(torch.from_numpy(clips["mic"])[None])
    assert out.shape == (1, 10, timing.num_feature_frames(clips["mic"].shape[1]), 64)
    logmel = out[0, :4].numpy()
    assert (logmel.max(axis=(1, 2)) - logmel.min(axis=(1, 2)) <= 80.0 + 1e-4).all()
    unfloored = FeatureExtractor("mic_logmel_gcc", top_db=None)(torch.from_numpy(clips["mic"]))
    assert torch.allclose(torch.maximum(unfloored[:4], unfloored[:4].amax(dim=(1, 2), keepdim=True) - 80.0),
                          out[0, :4], atol=1e-5)


@pytest.mark.parametrize("kind", sorted(FEATURE_SPECS))
def test_block_processing_does_not_change_the_result(kind, clips):
    # The CPU path processes frames block by block; block edges (and the clip's ends inside a block) change nothing.
    # 1.23 s pads to 1.3 s: the last blocks of 1 or 4 frames start past the clip's last sample.
    audio = torch.from_numpy(np.stack([clips[feature_spec(kind).audio_format][:, : int(1.23 * SR)]] * 2))
    whole = FeatureExtractor(kind, block_rows=10**9)(audio)
    for rows in (8, 36, 1000):  # 1, 4 and 125 frames per block for a batch of 2
        for kernels in ("numba", "torch"):
            torch.testing.assert_close(FeatureExtractor(kind, block_rows=rows, kernels=kernels)(audio), whole,
                                       rtol=1e-5, atol=1e-5)


def test_stft_equals_librosa(clips):
    import librosa

    channel = clips["foa"][0]
    padded = np.zeros(timing.padded_num_samples(len(channel)), np.float64)
    padded[: len(channel)] = channel
    want = librosa.stft(padded, n_fft=1024, hop_length=480, win_length=960, window="hann")
    got = stft(torch.from_numpy(channel.astype(np.float64)))
    assert got.shape == (timing.num_feature_frames(len(channel)), 513)
    np.testing.assert_allclose(got.numpy(), want[:, : got.shape[0]].T, atol=1e-9)


@pytest.mark.parametrize("kind", sorted(FEATURE_SPECS))
def test_fused_kernels_equal_the_torch_operations(kind, clips):
    # The CPU float32 path runs the element-wise work through numba loops; torch operations do it on CUDA. Both
    # must agree, digital silence included (a silent channel has angle 0 in GCC-PHAT, and a zero IV).
    audio = np.stack([clips[feature_spec(kind).audio_format], np.zeros_like(clips["foa"])])
    audio[0, 2, 5000:20000] = 0.0  # one channel silent for a while
    audio = torch.from_numpy(audio[..., :50_001])
    fused = FeatureExtractor(kind, kernels="numba")(audio)
    plain = FeatureExtractor(kind, kernels="torch")(audio)
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("kernels", ["numba", "torch"])
@pytest.mark.parametrize("kind", sorted(FEATURE_SPECS))
def test_non_finite_audio_is_refused_with_its_place(kind, kernels):
    for bad, channel in ((float("nan"), 0), (float("inf"), 2), (float("-inf"), 3), (float("nan"), 1)):
        audio = 0.01 * torch.randn(2, 4, 4800)
        audio[1, channel, 1234] = bad
        with pytest.raises(ValueError, match=f"1 NaN or infinite samples, the first at example 1, channel {channel}, "
                                             "sample 1234"):
            FeatureExtractor(kind, kernels=kernels)(audio)
    loud = torch.full((4, 4800), 1e35)  # features that overflow float32 are not a bad sample
    assert FeatureExtractor(kind, kernels=kernels)(loud).shape[:2] == (feature_spec(kind).num_channels, 10)


def test_kernel_choice_is_checked():
    with pytest.raises(ValueError, match="kernels must be"):
        FeatureExtractor("foa_logmel_iv", kernels="fast")
    with pytest.raises(ValueError, match="float32 audio on the CPU"):
        FeatureExtractor("foa_logmel_iv", kernels="numba", dtype=torch.float64)(torch.zeros(4, 4800))


def test_the_kernels_float32_log_matches_numpy():
    from numba import njit

    from av_seld.feature_kernels import log_float32

    @njit
    def logs(x, out):
        for i in range(x.shape[0]):
            out[i] = log_float32(x[i])

    x = np.exp(np.random.default_rng(0).uniform(np.log(1e-10), np.log(1e8), 200_000)).astype(np.float32)
    x[:6] = [1.0, 2.0, 0.5, 1e-10, 1.4142135, 1.4142137]  # the exponent and the sqrt(2) fold
    out = np.empty_like(x)
    logs(x, out)
    assert np.abs(out - np.log(x.astype(np.float64))).max() < 3e-6
    special = np.array([np.inf, np.nan], np.float32)
    logs(special, out[:2])
    assert out[0] == np.inf and np.isnan(out[1])


def test_the_kernels_float32_atan2_matches_numpy_signed_zeros_included():
    from numba import njit

    from av_seld.feature_kernels import atan2_float32

    @njit
    def angles(y, x, out):
        for i in range(y.shape[0]):
            out[i] = atan2_float32(y[i], x[i])

    rng = np.random.default_rng(0)
    y = (rng.standard_normal(200_000) * 10.0 ** rng.uniform(-8, 3, 200_000)).astype(np.float32)
    x = (rng.standard_normal(200_000) * 10.0 ** rng.uniform(-8, 3, 200_000)).astype(np.float32)
    zeros = np.array([0.0, -0.0, 1.0, -1.0], np.float32)
    y = np.concatenate([y, np.repeat(zeros, 4), [1.0, -1.0, 2.0]]).astype(np.float32)
    x = np.concatenate([x, np.tile(zeros, 4), [1.0, 1.0, -2.0]]).astype(np.float32)  # axes and diagonals too
    out = np.empty_like(y)
    angles(y, x, out)
    want = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    assert np.abs(out - want).max() < 3e-7
    np.testing.assert_array_equal(np.signbit(out[-19:]), np.signbit(want[-19:].astype(np.float32)))
    angles(np.array([np.nan, 1.0], np.float32), np.array([1.0, np.nan], np.float32), out[:2])
    assert np.isnan(out[:2]).all()
