"""The two 4-channel recording formats and the channel layouts of the features built on them (docs/conventions.md,
"Audio channels"): the one home of these constants.

- FOA: ACN channel order W, Y, Z, X with SN3D normalisation.
- MIC: capsules M1..M4 of a tetrahedral array of radius 4.2 cm at the directions of ``MIC_CAPSULES_DEG``; the six
  capsule pairs of time differences and GCC-PHAT features in the order of ``MIC_PAIRS``; sound at 343 m/s;
  the free-field arrival times of a plane wave at the capsules (``mic_delays_s``).
- Feature kinds: the audio format each reads and its (channels, bins), ``FEATURE_SPECS``.

A leaf module: NumPy and av_seld's other leaf modules only, so ``augment`` and the visualisations can use it without
the feature extractor (torch) or the synthesis code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from av_seld.geometry import sph_to_cart
from av_seld.timing import N_FFT, SAMPLE_RATE

FORMATS = ("foa", "mic")

# ------------------------------------------------------------------------------------------------ recording arrays

FOA_CHANNELS = ("W", "Y", "Z", "X")
FOA_AXIS_CHANNEL = (3, 1, 2)  # FOA channel of the x, y, z components in (W, Y, Z, X)
MIC_CAPSULES_DEG = ((45, 35), (-45, -35), (135, -35), (-135, 35))  # (azimuth, elevation) of M1..M4
MIC_RADIUS_M = 0.042
MIC_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))  # 0-based capsule pairs: M1M2, M1M3, ..., M3M4
SPEED_OF_SOUND = 343.0  # m/s


MIC_CAPSULES_XYZ = sph_to_cart(*(np.array(v, dtype=np.float64) for v in zip(*MIC_CAPSULES_DEG)))  # (4, 3) unit
MIC_CAPSULES_XYZ.flags.writeable = False


def mic_delays_s(azimuth_deg, elevation_deg) -> np.ndarray:
    """Free-field plane-wave arrival time of M1..M4 relative to the array centre: (..., 4) seconds, float64.

    τ_m = −r (u_m · d) / c: negative for a capsule facing the source (it hears it earlier).
    """
    d = sph_to_cart(np.asarray(azimuth_deg, dtype=np.float64), np.asarray(elevation_deg, dtype=np.float64))
    return -MIC_RADIUS_M * (d @ MIC_CAPSULES_XYZ.T) / SPEED_OF_SOUND


# ------------------------------------------------------------------------------------------------ feature layouts

NUM_MEL_BINS = 64  # mel bands of the log-mel kinds; also the number of GCC-PHAT lags
# SALSA-lite frequency ranges (Hz) of the DCASE2023 baseline's parameters.
SALSA_FMIN_DOA_HZ = 50.0
SALSA_FMAX_DOA_HZ = 2000.0
SALSA_FMAX_SPECTRA_HZ = 9000.0


@dataclass(frozen=True)
class FeatureSpec:
    """What a feature kind is made of: the audio format it reads and its (channels, frequency bins)."""

    kind: str
    audio_format: str  # "foa" or "mic"
    num_channels: int
    num_bins: int


def salsalite_bins(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> tuple[int, int, int]:
    """``(lower, upper, cutoff)`` FFT bins of SALSA-lite: features keep bins ``lower:cutoff``; NIPD is zeroed from
    index ``upper`` of that cropped axis. (2, 85, 384) at 24 kHz with a 1024-point FFT."""
    lower = max(1, int(math.floor(SALSA_FMIN_DOA_HZ * n_fft / sample_rate)))
    upper = int(math.floor(min(SALSA_FMAX_DOA_HZ, sample_rate // 2) * n_fft / sample_rate))
    cutoff = int(math.floor(SALSA_FMAX_SPECTRA_HZ * n_fft / sample_rate))
    return lower, upper, cutoff


_LOWER, _UPPER, _CUTOFF = salsalite_bins()
# Channels: foa_logmel_iv = log-mel W, Y, Z, X + intensity x, y, z; mic_logmel_gcc = log-mel M1..M4 + GCC-PHAT of
# MIC_PAIRS; mic_salsalite = log power M1..M4 + phase differences of M2, M3, M4 against M1.
FEATURE_SPECS: dict[str, FeatureSpec] = {
    "foa_logmel_iv": FeatureSpec("foa_logmel_iv", "foa", 7, NUM_MEL_BINS),
    "mic_logmel_gcc": FeatureSpec("mic_logmel_gcc", "mic", 10, NUM_MEL_BINS),
    "mic_salsalite": FeatureSpec("mic_salsalite", "mic", 7, _CUTOFF - _LOWER),
}
DEFAULT_KIND = {"foa": "foa_logmel_iv", "mic": "mic_logmel_gcc"}


def feature_spec(kind: str) -> FeatureSpec:
    """The :class:`FeatureSpec` of ``kind``; ``ValueError`` names the known kinds for an unknown one."""
    try:
        return FEATURE_SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown feature kind {kind!r}; known: {', '.join(FEATURE_SPECS)}") from None
