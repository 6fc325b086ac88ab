"""Plain NumPy + librosa reference of the DCASE2023/2024 task 3 baseline features (``cls_feature_class.py``).

Written from the baseline's definitions, one channel and one pair at a time in float64, so that the batched torch
implementation in :mod:`av_seld.features` has something independent to be held equal to. It is also the "librosa
implementation, file by file" that ``bench/bench_features.py`` times.

Differences from the baseline script, all deliberate and shared with :mod:`av_seld.features`:
- the audio is zero-padded to a whole number of 100 ms label frames first and keeps ``num_feature_frames`` STFT
  frames (the baseline truncates to ``int(samples / hop)`` frames; both agree on clips of whole label frames);
- no ``+ 1e-8`` DC offset is added to the samples (the energy ``E`` keeps its ``1e-8``);
- the intensity vector channels come out in x, y, z order (the baseline emits them in ACN order y, z, x);
- outputs are channel-first, (C, T, F), instead of the baseline's (T, C * F).
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.io.wavfile

from av_seld import timing

SR = timing.SAMPLE_RATE
HOP = timing.FEATURE_HOP_SAMPLES
WIN = timing.FEATURE_WIN_SAMPLES
NFFT = timing.N_FFT
NUM_MEL = 64
EPS = 1e-8
MIC_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
# SALSA-lite constants of the baseline's parameters.py.
FMIN_DOA, FMAX_DOA, FMAX_SPECTRA, SPEED_OF_SOUND = 50.0, 2000.0, 9000.0, 343.0


def load_wav_like_baseline(path) -> np.ndarray:
    """(4, N) float64 in [-1, 1): scipy's int16 samples / 32768, as the baseline's ``_load_audio``."""
    _, audio = scipy.io.wavfile.read(path)
    return (audio[:, :4] / 32768.0).T


def spectrogram(audio: np.ndarray) -> np.ndarray:
    """Complex STFT (T, 513, C) of (C, N) audio: librosa, Hann window of 960 in a 1024 FFT, centred frames."""
    audio = np.asarray(audio, dtype=np.float64)
    num_samples = audio.shape[1]
    padded = np.zeros((audio.shape[0], timing.padded_num_samples(num_samples)))
    padded[:, :num_samples] = audio
    num_frames = timing.num_feature_frames(num_samples)
    spectra = []
    for channel in padded:
        stft = librosa.stft(np.asfortranarray(channel), n_fft=NFFT, hop_length=HOP, win_length=WIN, window="hann")
        spectra.append(stft[:, :num_frames])
    return np.array(spectra).T  # (C, F, T) -> (T, F, C), the baseline's layout


def mel_weights() -> np.ndarray:
    return librosa.filters.mel(sr=SR, n_fft=NFFT, n_mels=NUM_MEL).T  # (513, 64)


def log_mel(spectra: np.ndarray) -> np.ndarray:
    """(C, T, 64): ``power_to_db(|X|^2 @ mel)`` per channel (ref 1, amin 1e-10, top_db 80)."""
    weights = mel_weights()
    out = []
    for ch in range(spectra.shape[-1]):
        mel = np.dot(np.abs(spectra[:, :, ch]) ** 2, weights)
        out.append(librosa.power_to_db(mel))
    return np.stack(out)


def foa_intensity_vectors(spectra: np.ndarray) -> np.ndarray:
    """(3, T, 64) normalised active intensity (x, y, z) projected on the mel filters."""
    w = spectra[:, :, 0]
    intensity = np.real(np.conj(w)[:, :, None] * spectra[:, :, 1:])  # (T, F, 3) in ACN order y, z, x
    energy = EPS + (np.abs(w) ** 2 + (np.abs(spectra[:, :, 1:]) ** 2).sum(-1) / 3.0)
    normalised = intensity / energy[:, :, None]
    on_mel = np.stack([np.dot(normalised[:, :, k], mel_weights()) for k in range(3)])  # (3, T, 64): y, z, x
    return on_mel[[2, 0, 1]]


def gcc_phat(spectra: np.ndarray) -> np.ndarray:
    """(6, T, 64) GCC-PHAT of the pairs (1,2),(1,3),(1,4),(2,3),(2,4),(3,4); lags -32..31 samples."""
    out = []
    for m, n in MIC_PAIRS:
        cross = np.conj(spectra[:, :, m]) * spectra[:, :, n]
        cc = np.fft.irfft(np.exp(1j * np.angle(cross)))
        out.append(np.concatenate((cc[:, -NUM_MEL // 2:], cc[:, :NUM_MEL // 2]), axis=-1))
    return np.stack(out)


def salsalite_bins() -> tuple[int, int, int]:
    """(lower, upper, cutoff) FFT bins of SALSA-lite at 24 kHz / 1024 points: (2, 85, 384)."""
    lower = max(1, int(np.floor(FMIN_DOA * NFFT / SR)))
    upper = int(np.floor(min(FMAX_DOA, SR // 2) * NFFT / SR))
    cutoff = int(np.floor(FMAX_SPECTRA * NFFT / SR))
    return lower, upper, cutoff


def salsalite(spectra: np.ndarray) -> np.ndarray:
    """(7, T, 382): 4 log-power spectrograms, then NIPD of M2, M3, M4 against M1 (baseline ``_get_salsalite``)."""
    lower, upper, cutoff = salsalite_bins()
    delta = 2 * np.pi * SR / (NFFT * SPEED_OF_SOUND)
    freq = np.arange(NFFT // 2 + 1, dtype=np.float64)
    freq[0] = 1
    phase = np.angle(spectra[:, :, 1:] * np.conj(spectra[:, :, 0, None])) / (delta * freq[None, :, None])
    phase = phase[:, lower:cutoff, :]
    phase[:, upper:, :] = 0  # the baseline zeroes from index `upper` of the cropped axis
    power = np.abs(spectra) ** 2
    log_power = np.stack([librosa.power_to_db(power[:, :, ch], ref=1.0, amin=1e-10, top_db=None)
                          for ch in range(power.shape[-1])])[:, :, lower:cutoff]
    return np.concatenate([log_power, phase.transpose(2, 0, 1)])


def foa_logmel_iv(audio: np.ndarray) -> np.ndarray:
    """(7, T, 64) for (4, N) FOA audio (W, Y, Z, X)."""
    spectra = spectrogram(audio)
    return np.concatenate([log_mel(spectra), foa_intensity_vectors(spectra)])


def mic_logmel_gcc(audio: np.ndarray) -> np.ndarray:
    """(10, T, 64) for (4, N) MIC audio."""
    spectra = spectrogram(audio)
    return np.concatenate([log_mel(spectra), gcc_phat(spectra)])


def mic_salsalite(audio: np.ndarray) -> np.ndarray:
    """(7, T, 382) for (4, N) MIC audio."""
    return salsalite(spectrogram(audio))


REFERENCE = {"foa_logmel_iv": foa_logmel_iv, "mic_logmel_gcc": mic_logmel_gcc, "mic_salsalite": mic_salsalite}
