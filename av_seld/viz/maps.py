"""Localization maps over the sphere, on an equirectangular grid (W × H = 2H × H, pixel centres from
``geometry.pixel_center_directions``), and their drawing over a panorama frame.

Acoustic (from the audio of a time window):

- :func:`foa_srp_map`: steered-response power of a first-order beam ``a0·W + a1·(d · [X, Y, Z])`` steered to every
  direction d. For a plane wave from u (SN3D: W = s, [X, Y, Z] = s·u) the beam has the pattern ``a0 + a1 cos γ``,
  γ the angle between d and u, so the map peaks at u. The power is ``g(d)ᵀ C g(d)`` with C the 4 × 4 channel
  covariance of the window (computed in the frequency domain, optionally band-limited).
- :func:`mic_srp_phat_map`: SRP-PHAT of the tetrahedral array: Σ over the 6 capsule pairs and frequency bins of
  the PHAT-weighted cross-spectrum steered by the free-field delays of ``av_seld.arrays.mic_delays_s`` (capsules
  ``MIC_CAPSULES_DEG`` on radius ``MIC_RADIUS_M``, ``SPEED_OF_SOUND``). The free-field model is only approximate
  for the real rigid-sphere array above a few hundred Hz (see ``augment.spatial``).

Visual (from a differentiable model):

- :func:`gradient_saliency_map`: |∂ activity(class, t) / ∂ frame_t| summed over colour, Gaussian-smoothed with a
  horizontal wrap at the seam: where in the panorama the model's evidence for that class comes from.

:func:`draw_map_overlay` blends any such map over an RGB panorama (``cv2.applyColorMap``) and rings its peak.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from av_seld.arrays import MIC_PAIRS, mic_delays_s
from av_seld.geometry import equirect_to_sph, pixel_center_directions, sph_to_cart
from av_seld.timing import SAMPLE_RATE

logger = logging.getLogger(__name__)

# First-order beam weights (a0 on W, a1 on the dipole d·[X, Y, Z]) for SN3D signals, on-axis gain 1.
_MAX_RE_A1 = 0.5773502691896258  # cos(137.9° / 2.407): the max-rE weight of order 1 in 3D
BEAM_PATTERNS: dict[str, tuple[float, float]] = {
    "hypercardioid": (0.25, 0.75),
    "cardioid": (0.5, 0.5),
    "max_re": (1 / (1 + _MAX_RE_A1), _MAX_RE_A1 / (1 + _MAX_RE_A1)),
}


def _window(audio: np.ndarray, sample_rate: int, start_s: float, duration_s: float | None) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 2 or audio.shape[0] != 4:
        raise ValueError(f"audio must be (4, samples), got shape {audio.shape}")
    start = int(round(start_s * sample_rate))
    stop = audio.shape[1] if duration_s is None else start + int(round(duration_s * sample_rate))
    if not 0 <= start < min(stop, audio.shape[1]):
        raise ValueError(f"window {start_s:g} s + {duration_s} s is outside the {audio.shape[1] / sample_rate:.3f} s "
                         "of audio")
    return audio[:, start:stop]


def _grid_xyz(width: int, height: int) -> np.ndarray:
    """(height, width, 3) unit vectors of the pixel centres of a width × height equirectangular grid."""
    azimuth, elevation = pixel_center_directions(width, height)
    return sph_to_cart(azimuth, elevation)


def foa_srp_map(foa: np.ndarray, *, sample_rate: int = SAMPLE_RATE, start_s: float = 0.0,
                duration_s: float | None = None, width: int = 180, height: int = 90, pattern: str = "hypercardioid",
                band_hz: tuple[float, float] | None = None) -> np.ndarray:
    """Beam power over the sphere from FOA audio (4, N) in ACN order W, Y, Z, X (SN3D): (height, width) float64.

    The window is ``[start_s, start_s + duration_s)`` (default: to the end). pattern: 'hypercardioid', 'cardioid'
    or 'max_re'. band_hz: (low, high) frequencies kept, default all.
    """
    if pattern not in BEAM_PATTERNS:
        raise ValueError(f"pattern must be one of {sorted(BEAM_PATTERNS)}, got {pattern!r}")
    x = _window(foa, sample_rate, start_s, duration_s)
    spectrum = np.fft.rfft(x, axis=1)  # (4, bins)
    if band_hz is not None:
        freqs = np.fft.rfftfreq(x.shape[1], 1 / sample_rate)
        spectrum = spectrum[:, (freqs >= band_hz[0]) & (freqs <= band_hz[1])]
    cov = np.real(spectrum @ spectrum.conj().T)  # (4, 4), W Y Z X
    a0, a1 = BEAM_PATTERNS[pattern]
    d = _grid_xyz(width, height)
    gains = np.concatenate([np.full(d.shape[:2] + (1,), a0), a1 * d[..., 1:2], a1 * d[..., 2:3], a1 * d[..., 0:1]],
                           axis=-1)  # (H, W, 4) in W Y Z X order
    return np.einsum("hwi,ij,hwj->hw", gains, cov, gains)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(C, N) -> (C, frames, n_fft // 2 + 1), Hann window of n_fft samples (the signal is zero-padded to one frame)."""
    if x.shape[1] < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - x.shape[1])))
    num_frames = (x.shape[1] - n_fft) // hop + 1
    index = np.arange(num_frames)[:, None] * hop + np.arange(n_fft)[None, :]
    return np.fft.rfft(x[:, index] * np.hanning(n_fft), axis=-1)


def mic_srp_phat_map(mic: np.ndarray, *, sample_rate: int = SAMPLE_RATE, start_s: float = 0.0,
                     duration_s: float | None = None, width: int = 180, height: int = 90, n_fft: int = 1024,
                     hop: int = 512, max_frequency_hz: float | None = None, lag_step: float = 0.02) -> np.ndarray:
    """SRP-PHAT over the sphere from tetrahedral MIC audio (4, N), capsules M1..M4: (height, width) float64.

    Per capsule pair (i, j) the PHAT cross-spectrum ``X_j X_i* / |X_j X_i*|`` is averaged over STFT frames, then
    steered with the delay difference ``τ_j(d) − τ_i(d)`` of every grid direction d and summed over pairs and bins
    up to ``max_frequency_hz`` (default 0.8 × Nyquist). Each pair's response is tabulated on a grid of lags
    ``lag_step`` samples apart and linearly interpolated. Higher is more likely; the values are not a power.
    """
    x = _window(mic, sample_rate, start_s, duration_s)
    spec = _stft(x, n_fft, hop)  # (4, frames, bins)
    if max_frequency_hz is None:
        max_frequency_hz = 0.8 * sample_rate / 2
    num_bins = min(spec.shape[-1], int(max_frequency_hz / sample_rate * n_fft) + 1)
    spec = spec[..., 1:num_bins]  # the DC bin carries no delay information
    omega = 2 * np.pi * np.arange(1, num_bins) / n_fft  # rad per sample
    cross = []
    for i, j in MIC_PAIRS:
        c = spec[j] * np.conj(spec[i])
        cross.append(np.mean(c / np.maximum(np.abs(c), 1e-12), axis=0))
    cross = np.stack(cross)  # (pairs, bins)
    azimuth, elevation = pixel_center_directions(width, height)
    delays = mic_delays_s(azimuth.reshape(-1), elevation.reshape(-1)) * sample_rate  # (D, 4) samples
    pair_i = np.array([i for i, _ in MIC_PAIRS])
    pair_j = np.array([j for _, j in MIC_PAIRS])
    tdoa = delays[:, pair_j] - delays[:, pair_i]  # (D, pairs): how much later j hears d than i
    # Each pair's steered response depends on d only through its lag: tabulate r(l) = Re Σ_k C_k e^{iω_k l} on a
    # fine lag grid over the possible lags and interpolate, instead of steering every direction at every bin.
    max_lag = float(np.abs(tdoa).max()) + 1.0
    lags = np.arange(-max_lag, max_lag + lag_step / 2, lag_step)
    response = np.real(cross @ np.exp(1j * omega[:, None] * lags[None, :]))  # (pairs, lags)
    power = np.zeros(len(tdoa))
    for p in range(len(MIC_PAIRS)):
        power += np.interp(tdoa[:, p], lags, response[p])
    return power.reshape(height, width)


def map_peak_direction(heat: np.ndarray) -> tuple[float, float]:
    """(azimuth_deg, elevation_deg) of the centre of the largest cell of an equirectangular map (H, W)."""
    height, width = heat.shape
    j, i = np.unravel_index(int(np.argmax(heat)), heat.shape)
    azimuth, elevation = equirect_to_sph(i + 0.5, j + 0.5, width, height)
    return float(azimuth), float(elevation)


def smooth_panorama_map(heat: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing of an equirectangular map (H, W) that wraps horizontally across the seam."""
    if sigma_px <= 0:
        return np.asarray(heat, dtype=np.float64)
    return gaussian_filter(np.asarray(heat, dtype=np.float64), sigma=sigma_px, mode=("nearest", "wrap"))


def activity_from_output(output):
    """(T, C) activity from a model output: (T, C) as it is, or multi-ACCDOA (T, 3, 3, C) (or (T, 3, 4, C) with
    distance) as the largest track vector length per class (torch tensors; differentiable)."""
    if output.ndim == 2:
        return output
    if output.ndim == 4 and output.shape[1] == 3 and output.shape[2] in (3, 4):
        return output[:, :, :3].norm(dim=2).amax(dim=1)  # (T, track, xyz, C) -> (T, track, C) -> (T, C)
    raise ValueError(f"model output must be (T, C) activity or (T, 3, 3, C) multi-ACCDOA, got {tuple(output.shape)}")


def gradient_saliency_map(model: Callable, frames, *, class_index: int, time_index: int,
                          frame_index: int | None = None, layout: str = "THWC",
                          sigma_px: float | None = None) -> np.ndarray:
    """Input-gradient heat map of one class's activity at one label frame, over the panorama: (H, W) float32 in [0, 1].

    model: differentiable callable ``model(frames) -> (T, C)`` activity or ``(T, 3, 3, C)`` multi-ACCDOA (wrap a
    batched model in a lambda that adds and removes the batch axis). frames: (T, H, W, 3) for layout 'THWC' or
    (T, 3, H, W) for 'TCHW', a NumPy array or torch tensor; uint8 frames are scaled to float32 in [0, 1], float
    frames are passed as they are. The map is |∂ activity[time_index, class_index] / ∂ frames[frame_index]| summed
    over colour (frame_index defaults to time_index), smoothed with a Gaussian of ``sigma_px`` (default W / 100)
    that wraps at the seam, and divided by its maximum (all zeros when the gradient is zero).
    """
    import torch

    if layout not in ("THWC", "TCHW"):
        raise ValueError(f"layout must be 'THWC' or 'TCHW', got {layout!r}")
    x = torch.as_tensor(frames)
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    x = x.detach().clone().requires_grad_(True)
    activity = activity_from_output(model(x))
    score = activity[time_index, class_index]
    (grad,) = torch.autograd.grad(score, x, allow_unused=True)
    frame_index = time_index if frame_index is None else frame_index
    if grad is None:
        logger.warning("the model output does not depend on the frames: the saliency map is zero")
        size = x.shape[1:3] if layout == "THWC" else x.shape[2:4]
        return np.zeros(tuple(size), dtype=np.float32)
    g = grad[frame_index].abs().sum(dim=-1 if layout == "THWC" else 0).detach().cpu().numpy()  # (H, W)
    heat = smooth_panorama_map(g, g.shape[1] / 100 if sigma_px is None else sigma_px)
    peak = heat.max()
    return (heat / peak if peak > 0 else heat).astype(np.float32)


def draw_map_overlay(frame_rgb: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5,
                     colormap: int = cv2.COLORMAP_JET, mark_peak: bool = True) -> np.ndarray:
    """Blend a map (h, w) of any scale over an RGB panorama (H, W, 3) uint8: returns a new (H, W, 3) uint8 RGB frame.

    The map is min-max normalised, resized to the frame, coloured with ``colormap``, blended with weight ``alpha``,
    and its peak direction (:func:`map_peak_direction`) marked with a white ring.
    """
    from av_seld.viz.overlay import draw_marker

    height, width = frame_rgb.shape[:2]
    heat = np.asarray(heat, dtype=np.float64)
    low, high = float(heat.min()), float(heat.max())
    norm = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    norm = cv2.resize(norm.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.cvtColor(cv2.applyColorMap((norm * 255).astype(np.uint8), colormap), cv2.COLOR_BGR2RGB)
    out = cv2.addWeighted(np.ascontiguousarray(frame_rgb), 1 - alpha, coloured, alpha, 0)
    if mark_peak:
        azimuth, elevation = map_peak_direction(heat)
        draw_marker(out, azimuth, elevation, (255, 255, 255), filled=False)
    return out
