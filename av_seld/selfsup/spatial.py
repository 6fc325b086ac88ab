"""The audio side of the self-supervised pre-training: per label frame, the directions and weights of the
time–frequency bins (FOA intensity, MIC plane-wave fits), the cell directions and the spatial model
(:class:`AudioSide`) of the mixture likelihood (see :mod:`av_seld.selfsup`)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from av_seld import timing
from av_seld.features import stft
from av_seld.geometry import pixel_center_directions, sph_to_cart

log = logging.getLogger(__name__)

LOG_UNIFORM = -math.log(4 * math.pi)  # log density of a uniform direction on the unit sphere


@dataclass
class SpatialBins:
    """Per label frame: the heaviest time–frequency bins' directions and weights, and two frame statistics.

    directions (T, K, 3) unit vectors (toward the source); weights (T, K) >= 0; stats (T, 2) = (log10 of the frame's
    energy minus the clip's median, directness = directional weight / energy in [0, 1]).
    """

    directions: Tensor
    weights: Tensor
    stats: Tensor


def _frequencies_hz() -> Tensor:
    return torch.fft.rfftfreq(timing.N_FFT, d=1.0 / timing.SAMPLE_RATE)


def _label_frames(x: Tensor) -> Tensor:
    """(T_feat, F, ...) -> (T, 5·F, ...): the STFT bins of each 100 ms label frame together."""
    per = timing.LABEL_HOP_SAMPLES // timing.FEATURE_HOP_SAMPLES
    steps = x.shape[0] // per
    return x[: steps * per].reshape(steps, per * x.shape[1], *x.shape[2:])


def _local_directness(vectors: Tensor, energy: Tensor, freq_kernel: int = 3) -> Tensor:
    """|mean vector| / mean energy over each bin's neighbourhood (the 5 STFT frames of its label frame × ``freq_kernel``
    adjacent bins): 1 for a plane wave, near 0 for diffuse sound (DirAC's 1 − diffuseness). (T_feat, F) in [0, 1]."""
    per = timing.LABEL_HOP_SAMPLES // timing.FEATURE_HOP_SAMPLES
    steps, bins = vectors.shape[0] // per, vectors.shape[1]
    grouped = torch.cat([vectors[: steps * per], energy[: steps * per, :, None]], dim=-1)  # (T_feat', F, 4)
    grouped = grouped.reshape(steps, per, bins, 4).mean(1)  # (T, F, 4)
    smooth = F.avg_pool1d(grouped.permute(0, 2, 1), freq_kernel, stride=1, padding=freq_kernel // 2,
                          count_include_pad=False).permute(0, 2, 1)
    ratio = (smooth[..., :3].norm(dim=-1) / smooth[..., 3].clamp_min(1e-20)).clamp(0, 1)  # (T, F)
    out = torch.zeros_like(energy)
    out[: steps * per] = ratio.repeat_interleave(per, dim=0)
    return out


def _finish(directions: Tensor, weights: Tensor, energy: Tensor, num_bins: int) -> SpatialBins:
    """Keep the ``num_bins`` heaviest bins per label frame; frame stats from all bins."""
    directions, weights, energy = _label_frames(directions), _label_frames(weights), _label_frames(energy)
    frame_energy = energy.sum(1)  # (T,)
    directness = (weights.sum(1) / frame_energy.clamp_min(1e-12)).clamp(0, 1)
    log_energy = torch.log10(frame_energy.clamp_min(1e-12))
    relative = log_energy - log_energy.median() if len(log_energy) else log_energy
    k = min(num_bins, weights.shape[1])
    top, index = weights.topk(k, dim=1)
    chosen = directions.gather(1, index[..., None].expand(-1, -1, 3))
    return SpatialBins(chosen, top, torch.stack([relative, directness], dim=-1))


def foa_spatial_bins(audio: Tensor | np.ndarray, *, num_bins: int = 256, min_hz: float = 100.0,
                     max_hz: float = 8000.0) -> SpatialBins:
    """Intensity-vector directions of the bins of FOA audio (4, N) (ACN W, Y, Z, X; SN3D) at 24 kHz."""
    spec = stft(torch.as_tensor(audio, dtype=torch.float32))  # (4, T_feat, 513)
    freqs = _frequencies_hz()
    band = (freqs >= min_hz) & (freqs <= max_hz)
    w, y, z, x = spec[..., band]  # (T_feat, F') each
    intensity = torch.stack([(w.conj() * c).real for c in (x, y, z)], dim=-1)  # (T_feat, F', 3), toward the source
    magnitude = intensity.norm(dim=-1)
    energy = 0.5 * sum(c.abs() ** 2 for c in (w, x, y, z))  # = |W|² = |I| for a plane wave
    weights = magnitude * _local_directness(intensity, energy)
    return _finish(intensity / magnitude.clamp_min(1e-20)[..., None], weights, energy, num_bins)


def mic_spatial_bins(audio: Tensor | np.ndarray, *, num_bins: int = 256, min_hz: float = 200.0,
                     max_hz: float = 2000.0) -> SpatialBins:
    """Per-bin plane-wave directions of tetrahedral MIC audio (4, N) (M1..M4) at 24 kHz, free-field model.

    X_m X_1* of a plane wave from d has phase 2πf·r(u_m − u_1)·d / c; the three phases give d by least squares.
    Above ~2.5 kHz the phases wrap, so ``max_hz`` stays below that.
    """
    from av_seld.arrays import MIC_CAPSULES_DEG, MIC_RADIUS_M, SPEED_OF_SOUND

    spec = stft(torch.as_tensor(audio, dtype=torch.float32))  # (4, T_feat, 513)
    freqs = _frequencies_hz()
    band = (freqs >= min_hz) & (freqs <= max_hz)
    spec, freqs = spec[..., band], freqs[band]
    capsules = sph_to_cart(torch.tensor([a for a, _ in MIC_CAPSULES_DEG]),
                           torch.tensor([e for _, e in MIC_CAPSULES_DEG])).float()  # (4, 3)
    geometry = MIC_RADIUS_M * (capsules[1:] - capsules[:1])  # (3, 3) metres
    phase = torch.stack([torch.angle(spec[m] * spec[0].conj()) for m in (1, 2, 3)], dim=-1)  # (T_feat, F', 3)
    path = phase * SPEED_OF_SOUND / (2 * math.pi * freqs)[None, :, None]  # metres
    raw = torch.linalg.solve(geometry, path.reshape(-1, 3).T).T.reshape(path.shape)  # (T_feat, F', 3)
    norm = raw.norm(dim=-1)
    energy = (spec.abs() ** 2).mean(0)
    plane_wave = torch.exp(-(((norm - 1) / 0.25) ** 2))  # 1 when the phases fit a plane wave exactly
    directions = raw / norm.clamp_min(1e-12)[..., None]
    weights = energy * plane_wave
    weights = weights * _local_directness(directions * weights[..., None], energy)
    return _finish(directions, weights, energy, num_bins)


def spatial_bins(audio: Tensor | np.ndarray, audio_format: str, *, num_bins: int = 256) -> SpatialBins:
    """:func:`foa_spatial_bins` or :func:`mic_spatial_bins` by ``audio_format`` ("foa" or "mic")."""
    if audio_format == "foa":
        return foa_spatial_bins(audio, num_bins=num_bins)
    if audio_format == "mic":
        return mic_spatial_bins(audio, num_bins=num_bins)
    raise ValueError(f"audio_format must be 'foa' or 'mic', got {audio_format!r}")


def cell_directions(grid: tuple[int, int]) -> Tensor:
    """Unit vectors (rows·cols, 3) of the cell centres of an equirectangular ``(rows, cols)`` grid, row-major."""
    azimuth, elevation = pixel_center_directions(grid[1], grid[0])
    return torch.as_tensor(sph_to_cart(azimuth, elevation), dtype=torch.float32).reshape(-1, 3)


def audio_direction_map(directions: Tensor, weights: Tensor, cells: Tensor, kappa: float = 20.0) -> Tensor:
    """Where sound energy comes from, per frame: (..., K, 3), (..., K) -> (..., N) distribution over the cells.

    Each bin spreads its weight over the cells by softmax(κ d·c_k) (its vMF posterior under a uniform prior);
    frames without weight give zeros.
    """
    share = torch.softmax(kappa * directions @ cells.T, dim=-1)  # (..., K, N)
    total = weights.sum(-1, keepdim=True)
    return (weights[..., None] * share).sum(-2) / total.clamp_min(1e-20)


def log_vmf(cosine: Tensor, kappa: Tensor) -> Tensor:
    """log of the von Mises–Fisher density on the unit sphere at ``cosine`` = d·c, concentration ``kappa`` > 0."""
    # κ / (4π sinh κ) · exp(κ cos) = κ / (2π (1 − exp(−2κ))) · exp(κ (cos − 1)), stable for large κ
    return torch.log(kappa) - math.log(2 * math.pi) - torch.log1p(-torch.exp(-2 * kappa)) + kappa * (cosine - 1)


class AudioSide(nn.Module):
    """The learned part of the spatial model: the vMF concentration κ and the per-frame "active source" gate.

    ``information(logits, directions, weights, stats, cells) -> (B,)``: weighted mean over each frame's bins of
    ``log p(d) − log(1/4π)`` in nats (see the module docstring); frames without weight give 0.
    """

    def __init__(self, kappa_init: float = 20.0, kappa_range: tuple[float, float] = (2.0, 200.0), hidden: int = 8):
        super().__init__()
        self.kappa_range = kappa_range
        self.log_kappa = nn.Parameter(torch.tensor(math.log(kappa_init)))
        self.gate = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    @property
    def kappa(self) -> Tensor:
        return self.log_kappa.exp().clamp(*self.kappa_range)

    def background(self, stats: Tensor) -> Tensor:
        """π₀ (B,): probability that a bin of the frame comes from no visual candidate (diffuse, silent, unseen)."""
        return torch.sigmoid(self.gate(stats.float())).squeeze(-1).clamp(1e-4, 1 - 1e-4)

    def information(self, logits: Tensor, directions: Tensor, weights: Tensor, stats: Tensor,
                    cells: Tensor) -> Tensor:
        log_v = torch.log_softmax(logits.float(), dim=-1)  # (B, N)
        cosine = directions.float() @ cells.T  # (B, K, N)
        mixture = torch.logsumexp(log_v[:, None, :] + log_vmf(cosine, self.kappa), dim=-1)  # (B, K)
        pi0 = self.background(stats)[:, None]
        log_p = torch.logaddexp(torch.log(pi0) + LOG_UNIFORM, torch.log1p(-pi0) + mixture)
        weights = weights.float()
        total = weights.sum(-1)
        return ((weights * (log_p - LOG_UNIFORM)).sum(-1) / total.clamp_min(1e-20)) * (total > 0)
