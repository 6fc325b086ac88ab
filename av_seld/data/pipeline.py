"""One training or inference example, stage by stage: the only place a sample is assembled.

Every route a chunk can take (cached or online features, live frames or a cached visual grid) runs the same stages
in the same order (``STAGES``):

1. ``read`` — the dataset reads the chunk: raw audio (4, N) or un-standardised cached features (C, 5 T, F); frames
   (T, H, W, 3) or the frozen encoder's cached grid (T, C, rows, cols); the target of its events; ``label_mask`` (T,).
2. ``channel_swap`` — one 360° ACS transform (:func:`acs_policy`) moves whatever the sample holds — audio or raw
   features, frames or visual grid, target — together. It acts before standardisation, which keeps it exact.
3. ``featurize`` — audio becomes features (:class:`Featurize`); a no-op when the features were read from a cache.
4. ``standardize`` — ``(x − mean) / std`` with the training statistics, then the padding mask: feature frames of
   label frames past the clip's end are set to 0, the mean (:class:`Standardize`).
5. ``spec_augment`` — SpecAugment masks (:class:`SpecAugment`).

Before the stages, training's video dropout (``video_dropout``, off by default) may mask a sample's video whole:
its ``video_valid`` becomes all False, so the model reads its "no video" token for every frame, as for a clip without
video, and learns to localise from the audio alone where the view does not help.

Randomness: one generator per sample, ``np.random.default_rng([seed, epoch, index])``, made by the dataset. The
video dropout draws from it first (only when enabled), then the channel swap, then the masks. All draws happen in
the loader, even for stages that run on the device, so a sample depends on (seed, epoch, index) only — not on the
worker or the device.

Split point: a :class:`SamplePipeline` runs every stage in the loader workers, or — with ``on_device`` (training's
``data.online_features``) — stops before ``DEVICE_SPLIT`` (``featurize``): the batch then carries raw audio and the
masks drawn for it (``"spec_mask"``), and :meth:`SamplePipeline.device` runs the remaining stages on the batch's
device. Inference (:mod:`av_seld.training.predict`) runs the same ``featurize`` and ``standardize`` modules
(:class:`FeatureFrontEnd`) on whole clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from av_seld import timing
from av_seld.arrays import feature_spec, salsalite_bins

STAGES = ("read", "channel_swap", "featurize", "standardize", "spec_augment")
DEVICE_SPLIT = "featurize"  # with on_device, this stage and the ones after it run on the training device
MIN_STD = 1e-8  # floor of the standardisation's std (a constant feature channel would divide by zero)


# ------------------------------------------------------------------------------------------------- channel swap


def rotation_indices(audio_format: str, grid_width: int | None = None) -> tuple[int, ...]:
    """ACS transforms of ``audio_format`` that are pure azimuth rotations (φ' = φ + 90°·q): the only ones a frozen
    visual encoder's cached features follow (its convolutions are equivariant to rolls with circular padding, not
    to mirrors and flips). With ``grid_width`` (cells), only the rotations that move whole cells: the quarter turns
    need a width divisible by 4, the half turn an even width."""
    from augment.acs import ChannelSwap

    rotations = [t for t in ChannelSwap.all(audio_format) if t.geometric_map[0] > 0 and t.geometric_map[2] > 0]
    if grid_width is not None:
        rotations = [t for t in rotations if (t.geometric_map[1] % 4) * grid_width % 4 == 0]
    return tuple(t.index for t in rotations)


def acs_policy(audio_format: str, kind: str, *, frozen_visual_grid_width: int | None = None,
               indices: tuple[int, ...] | None = None):
    """The one channel-swap policy of training: a :class:`augment.acs.RandomACS` over every transform of the format,
    or only the rotations that move whole cells when frozen visual features are cached (their grid width given).
    ``indices`` restricts it further (all of them must be allowed)."""
    from augment.acs import RandomACS, salsalite_ipd_period

    allowed = (rotation_indices(audio_format, frozen_visual_grid_width) if frozen_visual_grid_width is not None
               else None)
    if indices is not None and allowed is not None and not set(indices) <= set(allowed):
        raise ValueError(f"ACS indices {sorted(set(indices) - set(allowed))} are not rotations a cached visual grid "
                         f"{frozen_visual_grid_width} cells wide follows (allowed: {list(allowed)})")
    options = {}
    if kind == "mic_salsalite":  # phase differences re-referenced to the new M1 need the wrap period per bin
        lower, upper, cutoff = salsalite_bins()
        options["ipd_period"] = salsalite_ipd_period(lower, upper, cutoff - lower)
    return RandomACS(audio_format, feature_layout=kind, indices=indices if indices is not None else allowed,
                     **options)


# ----------------------------------------------------------------------------------------------------- featurize


class Featurize(nn.Module):
    """Audio (..., 4, N) → un-standardised features (..., C, T, F) of ``kind``
    (:class:`av_seld.features.FeatureExtractor`); a module, so it runs on the device its audio is on."""

    def __init__(self, kind: str):
        super().__init__()
        from av_seld.features import FeatureExtractor

        self.kind = kind
        self.extractor = FeatureExtractor(kind)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.extractor.to(audio.device)(audio)


# --------------------------------------------------------------------------------------------------- standardize


class Standardize(nn.Module):
    """``(features − mean) / std`` per channel and bin, then the padding mask.

    mean, std: (C, F) training statistics (:class:`av_seld.data.feature_cache.FeatureStats`), or None to only
    apply the padding mask; std is floored at ``MIN_STD``. Computes in float32.
    """

    def __init__(self, mean: np.ndarray | torch.Tensor | None = None, std: np.ndarray | torch.Tensor | None = None):
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.enabled = mean is not None
        if self.enabled:
            mean, std = (np.asarray(v.cpu() if torch.is_tensor(v) else v, dtype=np.float64) for v in (mean, std))
            if mean.ndim != 2 or mean.shape != std.shape:
                raise ValueError(f"mean and std must both be (C, F), got {mean.shape} and {std.shape}")
            self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)), persistent=False)
            self.register_buffer("std", torch.from_numpy(np.maximum(std, MIN_STD).astype(np.float32)),
                                 persistent=False)

    def forward(self, features: torch.Tensor, label_mask: torch.Tensor | None = None) -> torch.Tensor:
        """features (..., C, 5 T, F); label_mask (..., T) bool, False for padded label frames (None: all real)."""
        if self.enabled:
            if tuple(features.shape[-3::2]) != tuple(self.mean.shape):
                raise ValueError(f"features (..., C, T, F) {tuple(features.shape)} do not match statistics of "
                                 f"shape {tuple(self.mean.shape)}")
            mean, std = self.mean.to(features.device), self.std.to(features.device)
            features = (features - mean[:, None, :]) / std[:, None, :]
        if label_mask is not None:
            real = label_mask.to(features.device).repeat_interleave(timing.FEATURE_FRAMES_PER_LABEL_FRAME, dim=-1)
            features = torch.where(real[..., None, : features.shape[-2], None], features, 0.0)
        return features


class FeatureFrontEnd(nn.Module):
    """``featurize`` then ``standardize``: audio (..., 4, N) → standardised features (..., C, T, F), the input of
    every model, in training (:class:`SamplePipeline`) and inference alike."""

    def __init__(self, kind: str, *, mean=None, std=None):
        super().__init__()
        self.kind = kind
        self.featurize = Featurize(kind)
        self.standardize = Standardize(mean, std)

    def forward(self, audio: torch.Tensor, label_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.standardize(self.featurize(audio), label_mask)


# -------------------------------------------------------------------------------------------------- SpecAugment


@dataclass(frozen=True)
class SpecAugment:
    """SpecAugment-style masks on features (C, T, F), the same for every channel; off by default.

    Each of ``time_masks`` masks sets up to ``time_mask_frames`` consecutive feature frames to ``value``, each of
    ``freq_masks`` masks up to ``freq_mask_bins`` bins, and each of ``cutouts`` a rectangle of up to
    ``cutout_frames`` × ``cutout_bins``. Widths are drawn uniformly from 1 to the maximum, positions uniformly.
    ``value`` 0 is the training mean for standardised features.
    """

    time_masks: int = 0
    time_mask_frames: int = 20
    freq_masks: int = 0
    freq_mask_bins: int = 8
    cutouts: int = 0
    cutout_frames: int = 20
    cutout_bins: int = 16
    value: float = 0.0

    def __post_init__(self):
        for name in ("time_masks", "freq_masks", "cutouts"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("time_mask_frames", "freq_mask_bins", "cutout_frames", "cutout_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def enabled(self) -> bool:
        return bool(self.time_masks or self.freq_masks or self.cutouts)

    def mask(self, num_frames: int, num_bins: int, rng: np.random.Generator) -> torch.Tensor:
        """(num_frames, num_bins) bool, True where the features are masked: time masks, then frequency masks, then
        cutouts, drawn in that order."""

        def span(size: int, max_width: int) -> slice:
            width = int(rng.integers(1, min(max_width, size) + 1))
            start = int(rng.integers(0, size - width + 1))
            return slice(start, start + width)

        every = slice(None)
        regions = [(span(num_frames, self.time_mask_frames), every) for _ in range(self.time_masks)]
        regions += [(every, span(num_bins, self.freq_mask_bins)) for _ in range(self.freq_masks)]
        regions += [(span(num_frames, self.cutout_frames), span(num_bins, self.cutout_bins))
                    for _ in range(self.cutouts)]
        out = torch.zeros((num_frames, num_bins), dtype=torch.bool)
        for frames, bins in regions:
            out[frames, bins] = True
        return out

    def apply(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``features`` (..., C, T, F) with ``value`` where ``mask`` (..., T, F) is True (every channel alike)."""
        return features.masked_fill(mask.to(features.device).unsqueeze(-3), self.value)

    def __call__(self, features: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """A masked copy of ``features`` (C, T, F) with masks drawn from ``rng``."""
        return self.apply(features, self.mask(features.shape[-2], features.shape[-1], rng))


# ------------------------------------------------------------------------------------------------------ pipeline


class SamplePipeline:
    """The stages after ``read`` (see the module docstring), for one feature ``kind``.

    stats: training statistics (``mean``, ``std``) or None (features stay as computed, padding still zeroed).
    acs: a :func:`acs_policy` (``transform(sample, rng) -> sample``) or None. spec_augment: masks or None.
    on_device: stop the loader's part before ``featurize`` and finish batches with :meth:`device`.
    video_dropout: the probability that a sample's video is masked whole (see the module docstring).
    """

    def __init__(self, kind: str, *, stats=None, acs=None, spec_augment: SpecAugment | None = None,
                 on_device: bool = False, video_dropout: float = 0.0):
        if not 0.0 <= video_dropout <= 1.0:
            raise ValueError(f"video_dropout must be in [0, 1], got {video_dropout}")
        self.video_dropout = video_dropout
        self.kind = kind
        self.spec = feature_spec(kind)
        self.front_end = FeatureFrontEnd(kind, mean=None if stats is None else stats.mean,
                                         std=None if stats is None else stats.std)
        self.acs = acs
        self.spec_augment = spec_augment if spec_augment is not None and spec_augment.enabled else None
        self.split = DEVICE_SPLIT if on_device else None

    @property
    def loader_stages(self) -> tuple[str, ...]:
        """The stages the dataset runs in the loader workers (``read`` included)."""
        return STAGES if self.split is None else STAGES[:STAGES.index(self.split)]

    @property
    def device_stages(self) -> tuple[str, ...]:
        """The stages :meth:`device` runs on batches."""
        return STAGES[len(self.loader_stages):]

    # One method per stage; a sample (the loader) or a batch (the device), in place. ``rng`` is None on the device.
    def _channel_swap(self, sample: dict, rng) -> dict:
        return sample if self.acs is None else self.acs(sample, rng)

    def _featurize(self, sample: dict, rng) -> dict:
        if "audio" in sample:
            sample["features"] = self.front_end.featurize(sample.pop("audio"))
        return sample

    def _standardize(self, sample: dict, rng) -> dict:
        sample["features"] = self.front_end.standardize(sample["features"], sample["label_mask"])
        return sample

    def _spec_augment(self, sample: dict, rng) -> dict:
        if self.spec_augment is None:
            return sample
        features = sample["features"]
        mask = sample.pop("spec_mask") if rng is None else self.spec_augment.mask(*features.shape[-2:], rng)
        sample["features"] = self.spec_augment.apply(features, mask)
        return sample

    def loader(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Run the loader's stages after ``read`` on one sample of torch tensors (``features`` (C, 5 T, F) or
        ``audio`` (4, N), ``label_mask`` (T,), ...); with ``on_device``, also draw the masks the device applies."""
        if self.video_dropout and "video_valid" in sample and rng.random() < self.video_dropout:
            sample["video_valid"] = torch.zeros_like(sample["video_valid"])
        for stage in self.loader_stages[1:]:
            sample = getattr(self, f"_{stage}")(sample, rng)
        if self.split is not None and self.spec_augment is not None:
            frames = timing.FEATURE_FRAMES_PER_LABEL_FRAME * len(sample["label_mask"])
            sample["spec_mask"] = self.spec_augment.mask(frames, self.spec.num_bins, rng)
        return sample

    @torch.no_grad()
    def device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Run the device's stages on a collated batch (``audio`` (B, 4, N) → ``features`` (B, C, 5 T, F)), in
        place: the same dict is returned (the loss reads it too)."""
        for stage in self.device_stages:  # featurize, standardize and mask change the dict they are given
            getattr(self, f"_{stage}")(batch, None)
        return batch

    def __repr__(self) -> str:
        return (f"SamplePipeline({self.kind!r}, loader={list(self.loader_stages)}, "
                f"device={list(self.device_stages)}, acs={self.acs!r}, spec_augment={self.spec_augment!r}, "
                f"video_dropout={self.video_dropout})")


__all__ = ["STAGES", "DEVICE_SPLIT", "SamplePipeline", "FeatureFrontEnd", "Featurize", "Standardize", "SpecAugment",
           "acs_policy", "rotation_indices"]
