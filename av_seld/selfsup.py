"""Self-supervised audio-visual pre-training of the visual encoder: 4-channel audio + 360° video, no labels.

The microphones already say where sound comes from; the visual encoder learns, from the frame alone, where the
sounding objects are.

**Audio side (the spatial model).** Every 100 ms label frame gets a set of time–frequency bins, each with a direction
of arrival ``d`` (unit vector) and a weight ``w``:

- FOA: the active intensity vector ``Re(W* · [X, Y, Z])`` of each STFT bin (20 ms hop, 5 STFT frames per label
  frame, 100 Hz–8 kHz); direction = the vector normalised, weight = its length times the directness of its
  neighbourhood (|mean intensity| / mean energy over the label frame's 5 STFT frames and 3 adjacent bins: 1 for a
  plane wave, near 0 for diffuse sound, as DirAC's 1 − diffuseness).
- MIC: per bin, the least-squares plane-wave direction of the three phase differences to M1 on the free-field
  tetrahedron (200 Hz–2 kHz, below spatial aliasing); weight = energy × how close the solution is to a unit
  vector (a plane wave gives exactly one) × the directness of its neighbourhood (as for FOA).

Only the ``num_bins`` heaviest bins of each frame are kept. Nothing here has parameters, and all of it is torch.

**Visual side.** :class:`~av_seld.models.visual.YoloVisualEncoder` (fine-tuned, not frozen: the point is to change
the YOLO features themselves, so that they also help when cached and frozen in the audio-visual model) gives one token
per cell of a ``map_grid`` (default 8 × 16, 22.5° cells); a small MLP turns each token into a logit. The softmax over
cells, ``V``, is the frame's map of sounding-object candidates.

**Objective: the likelihood of the audio directions under a mixture whose components are the visual candidates.**
Each bin's direction is drawn from

    p(d) = π₀ · 1/(4π) + (1 − π₀) · Σ_k V_k · vMF(d; c_k, κ)

(``c_k`` the cell centres, vMF the von Mises–Fisher density with concentration κ, a uniform component for diffuse
sound, reverberation and sources outside the frame's candidates). The loss is minus the weighted mean over bins of
``log p(d) − log(1/(4π))``: the information, in nats per bin, that the visual map adds about where sound arrives from
over a uniform guess (0 = uninformative). Its gradient pushes ``V`` towards the posterior responsibilities
``V_k vMF(d; c_k) / Σ_j V_j vMF(d; c_j)``: the audio checks which of the proposed candidates actually sound (an
EM-like step), rather than copying a noisy audio map. With several sources at once, each bin belongs to one of them
(W-disjoint orthogonality), so the mixture explains multiple sources naturally. The audio side learns κ (how sharp the
directions are in this data: reverberation widens them) and a gate ``π₀ = σ(MLP(relative log energy, directness))``
that says whether the frame has an active, localisable source at all. The gate cannot switch the task off: a uniform
explanation scores 0, so any frame with real directional energy rewards a visual map that explains it.

Why this and not a plain KL between an audio map and ``V``: the mixture is a proper likelihood of the microphone
signals' directions, is sharp where the audio is sharp (no blur from a fixed map kernel), and lets silent frames,
diffuse noise and visible-but-silent objects cost nothing instead of teaching the visual map noise.

Shapes: frames (B, 3, H, W) uint8 or float; directions (B, K, 3); weights (B, K); stats (B, 2); logits (B, N) with
N = rows·cols in row-major cell order (cell centres from :func:`av_seld.geometry.pixel_center_directions`).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from av_seld import timing
from av_seld.config import PretrainConfig
from av_seld.errors import InputError
from av_seld.features import stft
from av_seld.geometry import pixel_center_directions, sph_to_cart
from av_seld.models.visual import SELFSUP_MODEL_NAME, YoloVisualEncoder

log = logging.getLogger(__name__)

MODEL_NAME = SELFSUP_MODEL_NAME  # model_name in pre-training checkpoints
DEFAULT_FRAME_SIZE = (128, 256)
DEFAULT_MAP_GRID = (8, 16)
LOG_UNIFORM = -math.log(4 * math.pi)  # log density of a uniform direction on the unit sphere
CACHE_DIRNAME = "selfsup_cache"
EXPORT_NAME = "visual_yolo.pt"


# ---------------------------------------------------------------- audio side: directions of time-frequency bins

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


# ---------------------------------------------------------------- visual side

class SelfSupVisualModel(nn.Module):
    """YOLO visual encoder + per-cell candidate head, trained against the audio spatial model.

    ``forward(frames (B, 3, H, W)) -> logits (B, N)``; ``loss(logits, directions, weights, stats) -> scalar``.
    Args: as :class:`YoloVisualEncoder` (``map_grid`` is its token grid, ``freeze_backbone`` its ``freeze``), plus
    ``kappa_init`` of the audio side.
    """

    def __init__(self, *, model: str = "yolo11n", weights: str | os.PathLike | None = None,
                 frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE, map_grid: tuple[int, int] = DEFAULT_MAP_GRID,
                 embed_dim: int = 64, freeze_backbone: bool = False, circular_padding: bool = True, seed: int = 0,
                 kappa_init: float = 20.0):
        super().__init__()
        self.encoder = YoloVisualEncoder(model=model, weights=weights, frame_size=tuple(frame_size),
                                         token_grid=tuple(map_grid), embed_dim=embed_dim, freeze=freeze_backbone,
                                         circular_padding=circular_padding, seed=seed)
        self.head = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, 1))
        self.audio = AudioSide(kappa_init)
        self.register_buffer("cells", cell_directions(self.encoder.token_grid), persistent=False)

    @property
    def map_grid(self) -> tuple[int, int]:
        return self.encoder.token_grid

    def forward(self, frames: Tensor) -> Tensor:
        return self.head(self.encoder(frames)).squeeze(-1)  # (B, N)

    def visual_map(self, frames: Tensor) -> Tensor:
        """(B, rows, cols) distribution over the cells: the frame's sounding-object candidates."""
        return torch.softmax(self(frames), dim=-1).unflatten(-1, self.map_grid)

    def loss(self, logits: Tensor, directions: Tensor, weights: Tensor, stats: Tensor) -> Tensor:
        """Minus the mean information (nats per bin) over the frames that have sound."""
        info = self.audio.information(logits, directions, weights, stats, self.cells)
        has_sound = (weights.sum(-1) > 0).float()
        return -(info * has_sound).sum() / has_sound.sum().clamp_min(1.0)

    def peak_directions(self, logits: Tensor) -> Tensor:
        """(B, N) logits -> (B, 3) unit vector of each frame's highest-scoring cell."""
        return self.cells[logits.argmax(-1)]


def load_selfsup_model(path: str | os.PathLike, *, trained: bool = False) -> SelfSupVisualModel:
    """The pre-trained model (eval mode) in a checkpoint of :func:`pretrain_visual`; errors name the file.

    ``trained``: the raw trained weights rather than the EMA average (identical when EMA is off).
    """
    payload = _load_payload(path)
    model = SelfSupVisualModel(**_without_weights(payload["model_params"]))
    model.load_state_dict(payload["trained_state"] if trained and "trained_state" in payload
                          else payload["model_state"])
    return model.eval()


def _load_payload(path: str | os.PathLike) -> dict:
    """A checkpoint of :func:`pretrain_visual`; InputError naming the file for any other checkpoint."""
    from av_seld.training.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    if payload["model_name"] != MODEL_NAME:
        raise InputError(path, f"not a self-supervised visual checkpoint (model_name {payload['model_name']!r}, "
                               f"expected {MODEL_NAME!r}: made by av-seld pretrain-visual)")
    return payload


def _without_weights(params: dict) -> dict:
    # the YOLO weights the run started from are inside model_state; don't require the .pt to still exist
    return {**params, "weights": None}


def export_yolo_weights(model: SelfSupVisualModel, path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the fine-tuned YOLO layers as a full detection model's weights (:func:`save_yolo_model`: tensors only,
    loads without running code) that ``visual_weights`` / ``--weights`` / ``precompute-visual`` accept; the detect
    head keeps random weights."""
    from av_seld.models.visual import build_detection_model, save_yolo_model

    detection = build_detection_model(model.encoder.model_name, seed=seed)
    layers = model.encoder.layers.state_dict()
    full = detection.model.state_dict()
    full.update(layers)  # layer i of the encoder is layer i of the detection model
    detection.model.load_state_dict(full)
    return save_yolo_model(detection, model.encoder.model_name, path)


# ---------------------------------------------------------------- data

@dataclass
class _ClipCache:
    name: str
    frames: Path  # (T, H, W, 3) uint8 .npy
    audio: Path  # .npz: directions float16 (T, K, 3), weights float32 (T, K), stats float32 (T, 2), valid (T,)


def _clip_audio(clip, audio_format: str) -> Path | None:
    return clip.foa if audio_format == "foa" else clip.mic


def prepare_cache(root: str | os.PathLike, *, audio_format: str = "foa",
                  frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE, num_bins: int = 256,
                  splits: Sequence[str] | None = None, cache_dir: str | os.PathLike | None = None,
                  missing_video: str = "skip") -> list[_ClipCache]:
    """Decode each clip's video at the label rate and its audio's spatial bins once (resumable, atomic files).

    Metadata CSVs are never read. ``missing_video``: "skip" (warn, naming the clips) or "error" (InputError naming
    the audio file whose video is missing). Errors in a wav or video (channel count, sample rate, unreadable) name it.
    Cache: ``<cache_dir or root/selfsup_cache>/<format>_<H>x<W>_k<K>/<split>/<clip>.{frames.npy,audio.npz}``.
    """
    from av_seld.io.audio import read_wav
    from av_seld.io.dataset import index_dataset
    from av_seld.io.video import read_video_at_label_rate
    from av_seld.utils.atomic import atomic_path

    if missing_video not in ("skip", "error"):
        raise ValueError(f"missing_video must be 'skip' or 'error', got {missing_video!r}")
    root = Path(root)
    index = index_dataset(root, splits=list(splits) if splits else None)
    clips = [c for c in index.clips if _clip_audio(c, audio_format) is not None]
    if not clips:
        raise InputError(root, f"no {audio_format.upper()} audio found (expected {audio_format}_dev/<split>/*.wav)")
    without = [c for c in clips if c.video is None]
    if without:
        first = without[0]
        expected = root / "video_dev" / first.split / f"{first.name}.mp4"
        if missing_video == "error" or len(without) == len(clips):
            raise InputError(_clip_audio(first, audio_format), f"no 360° video for this clip (expected {expected}); "
                                                               f"{len(without)} of {len(clips)} clips lack video")
        log.warning("%d of %d clips have no video and are skipped, e.g. %s", len(without), len(clips), expected)
    height, width = frame_size
    base = Path(cache_dir) if cache_dir is not None else root / CACHE_DIRNAME
    folder = base / f"{audio_format}_{height}x{width}_k{num_bins}"
    entries = []
    for clip in clips:
        if clip.video is None:
            continue
        frames_path = folder / clip.split / f"{clip.name}.frames.npy"
        audio_path = folder / clip.split / f"{clip.name}.audio.npz"
        entries.append(_ClipCache(f"{clip.split}/{clip.name}", frames_path, audio_path))
        if frames_path.exists() and audio_path.exists():
            continue
        frames_path.parent.mkdir(parents=True, exist_ok=True)
        wav = _clip_audio(clip, audio_format)
        bins = spatial_bins(read_wav(wav), audio_format, num_bins=num_bins)
        video = read_video_at_label_rate(clip.video, num_label_frames=len(bins.weights), width=width, height=height)
        with atomic_path(audio_path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, directions=bins.directions.numpy().astype(np.float16),
                         weights=bins.weights.numpy().astype(np.float32), stats=bins.stats.numpy().astype(np.float32),
                         valid=np.asarray(video.valid, dtype=bool))
        with atomic_path(frames_path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, video.frames)
        log.info("%s: %d label frames cached", clip.name, len(bins.weights))
    return entries


class SelfSupDataset(torch.utils.data.Dataset):
    """One sample per label frame that has video and sound: ``{"frames": uint8 (3, H, W), "directions" (K, 3),
    "weights" (K,), "stats" (2,), "clip": int, "frame": int}`` (frames memory-mapped from the cache)."""

    def __init__(self, entries: Sequence[_ClipCache]):
        self.entries = list(entries)
        self.audio = [dict(np.load(e.audio)) for e in self.entries]
        self._frames: list[np.ndarray | None] = [None] * len(self.entries)
        self.samples = [(i, int(t)) for i, a in enumerate(self.audio)
                        for t in np.flatnonzero(a["valid"] & (a["weights"].sum(-1) > 0))]

    def __len__(self) -> int:
        return len(self.samples)

    def frames_of(self, clip: int) -> np.ndarray:
        if self._frames[clip] is None:
            self._frames[clip] = np.load(self.entries[clip].frames, mmap_mode="r")
        return self._frames[clip]

    def __getitem__(self, i: int) -> dict[str, Any]:
        clip, t = self.samples[i]
        audio = self.audio[clip]
        return {"frames": torch.from_numpy(np.array(self.frames_of(clip)[t])).permute(2, 0, 1),
                "directions": torch.from_numpy(audio["directions"][t].astype(np.float32)),
                "weights": torch.from_numpy(audio["weights"][t]), "stats": torch.from_numpy(audio["stats"][t]),
                "clip": clip, "frame": t}


# ---------------------------------------------------------------- training

@dataclass
class PretrainResult:
    run_dir: Path
    best_checkpoint: Path  # lowest validation loss, else the final weights
    exported_weights: Path  # the YOLO layers' weights (for visual_weights / precompute-visual)
    steps: int
    val_loss: float | None


@torch.no_grad()
def evaluate_loss(model: SelfSupVisualModel, dataset: SelfSupDataset, *, batch_size: int = 64,
                  device: str | torch.device = "cpu") -> float:
    """Mean self-supervised loss (nats per bin, lower is better) of ``model`` over ``dataset``."""
    was_training = model.training
    model.eval()
    total = count = 0.0
    for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
        logits = model(batch["frames"].to(device))
        n = float((batch["weights"].sum(-1) > 0).sum())
        total += float(model.loss(logits, batch["directions"].to(device), batch["weights"].to(device),
                                  batch["stats"].to(device))) * n
        count += n
    model.train(was_training)
    return total / max(count, 1.0)


def pretrain_visual(config: PretrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
                    extra_hooks: list | None = None, device: str | torch.device = "cpu") -> PretrainResult:
    """Train :class:`SelfSupVisualModel` on every clip with audio and video under ``config.roots`` (no labels).

    Run folder: ``config.yaml``, ``train_log.csv``, ``val_log.csv`` (with ``val_splits``), ``tensorboard/``,
    ``last.pt`` (for ``resume``), ``best.pt`` (lowest validation loss, else the final weights; the file for
    ``--visual-init``), ``visual_yolo.pt`` (the YOLO layers as an ultralytics ``.pt``). Turns on
    ``torch.set_flush_denormal`` for the process.
    """
    from av_seld.config import save_config
    from av_seld.training.checkpoint import load_checkpoint, save_checkpoint
    from av_seld.training.hooks import CheckpointHook, LogHook, ValidationHook
    from av_seld.training.schedule import learning_rate
    from av_seld.training.trainer import Trainer, seed_everything
    from av_seld.utils.atomic import atomic_path
    from av_seld.utils.device import pick_device

    if not config.roots:
        raise InputError("config", "roots is empty: give at least one dataset root")
    torch.set_flush_denormal(True)  # the fine-tuned YOLO's gradients underflow to denormals: 3x slower on CPU
    device = pick_device(device, key="device", where=getattr(config, "source", None))
    run_dir = Path(run_dir)
    if (run_dir / "last.pt").exists() and not resume:
        raise InputError(run_dir, "run folder already holds a run: pass --resume to continue it, or choose another")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    seed_everything(config.seed)

    def entries(splits):
        found = []
        for root in config.roots:
            found += prepare_cache(root, audio_format=config.audio_format, frame_size=config.frame_size,
                                   num_bins=config.num_bins, splits=splits, cache_dir=config.cache_dir)
        return found

    train_entries = entries(config.splits)
    val_set = None
    if config.val_splits:
        val_entries = entries(config.val_splits)
        val_names = {e.name for e in val_entries}
        train_entries = [e for e in train_entries if e.name not in val_names]
        val_set = SelfSupDataset(val_entries)
    train_set = SelfSupDataset(train_entries)
    if len(train_set) == 0:
        raise InputError(config.roots[0], "no label frame with both video and sound energy to train on")

    params = config.model_params()
    model = SelfSupVisualModel(**params)
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                         drop_last=len(train_set) >= config.batch_size, generator=generator,
                                         num_workers=config.num_workers)
    total_steps = config.epochs * len(loader)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        return learning_rate(step, total_steps=total_steps, peak_lr=config.lr, warmup_steps=config.warmup_steps)

    def save(trainer: Trainer, path: Path) -> None:
        payload = {"model_name": MODEL_NAME, "model_params": params, "model_state": trainer.eval_model.state_dict(),
                   "config": config.to_dict(), "trained_state": trainer.module.state_dict(), **trainer.state_dict()}
        save_checkpoint(path, payload)

    log_hook = LogHook(run_dir, every=config.log_every_steps)
    hooks = [log_hook]
    if val_set is not None:
        hooks.append(ValidationHook(lambda m: {"loss": evaluate_loss(m, val_set, device=device)}, save, run_dir,
                                    log_hook=log_hook, key="loss"))
    hooks.append(CheckpointHook(save, run_dir))
    hooks += extra_hooks or []
    trainer = Trainer(model=model, loss_fn=lambda logits, batch: model.loss(
                          logits, batch["directions"], batch["weights"], batch["stats"]),
                      forward=lambda m, batch: m(batch["frames"]), train_loader=loader, optimizer=optimizer,
                      lr_at=lr_at, total_steps=total_steps, device=device, grad_clip=config.grad_clip,
                      ema_decay=config.ema_decay, hooks=hooks,
                      set_epoch=lambda epoch: generator.manual_seed(config.seed * 1000 + epoch))
    if resume and (run_dir / "last.pt").exists():
        payload = load_checkpoint(run_dir / "last.pt")
        trainer.module.load_state_dict(payload["trained_state"])
        trainer.load_state_dict(payload)
        log.info("resumed %s at step %d (epoch %d)", run_dir, trainer.state.step, trainer.state.epoch)
    log.info("self-supervised visual pre-training: %d frames from %d clips, %d steps (%d per epoch) on %s",
             len(train_set), len(train_entries), total_steps, len(loader), device)
    state = trainer.train()

    best = run_dir / "best.pt"
    if val_set is None or not best.exists():
        with atomic_path(best) as tmp:
            shutil.copyfile(run_dir / "last.pt", tmp)
    exported = export_yolo_weights(load_selfsup_model(best), run_dir / EXPORT_NAME, seed=config.seed)
    val_loss = None if val_set is None else float(state.best_score)
    return PretrainResult(run_dir, best, exported, state.step, val_loss)
