"""Chunks of a :class:`~av_seld.data.dataset.SeldDataset` joined with cached visual features (``precompute-visual``).

Each sample gains ``"visual_features"`` float32 (T, C, rows, cols) — the frozen encoder's pooled P3–P5 grid of the
label frames of the chunk — and ``"video_valid"`` bool (T,), False where the clip has no cached video or the frame is
padding. With ``acs`` set, one random 360° channel swap per sample moves the (standardised) features, the target and
the visual grid together. The grid is an equirectangular layout, so the swap moves its cells exactly as it moves
pixels; a frozen encoder's features are only equivariant to the rotations (``φ + 90°·q``, with circular padding), not
to mirrors and flips, so only the four rotations are drawn (only 0° and 180° when the grid width is not a multiple
of 4).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from av_seld.data.visual_cache import cache_file, load_visual_features

log = logging.getLogger(__name__)


def rotation_indices(audio_format: str) -> list[int]:
    """Indices of the ACS transforms of ``audio_format`` that are pure azimuth rotations (φ' = φ + 90°·q)."""
    from augment.acs import ChannelSwap

    return [t.index for t in ChannelSwap.all(audio_format) if t.geometric_map[0] > 0 and t.geometric_map[2] > 0]


class VisualFeatureDataset(torch.utils.data.Dataset):
    """``base`` (a SeldDataset with ``output="features"``, no transform) plus cached visual features per root.

    cache_dirs: per root of ``base``, the folder of ``av_seld.data.visual_cache.cache_dir`` or None (no video).
    acs: draw one rotation per sample (see the module docstring); needs ``base.stats`` for exact feature swaps.
    warn_missing: log clips without cached features (off when masking the video on purpose).
    """

    def __init__(self, base, cache_dirs: Sequence[str | os.PathLike | None], *, acs: bool = False, seed: int = 0,
                 warn_missing: bool = True):
        if base.transform is not None:
            raise ValueError("give the base dataset no transform: channel swapping happens here, with the video")
        self.base = base
        self.cache_dirs = [None if d is None else Path(d) for d in cache_dirs]
        self.acs = acs
        self.seed = seed
        self._cache: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self._shape: tuple[int, int, int] | None = None
        self._swaps = None
        if acs:
            from augment.acs import ChannelSwap

            self._swaps = [ChannelSwap(base.audio_format, i) for i in rotation_indices(base.audio_format)]
        missing = [entry.key for entry in base.clips
                   if self.cache_dirs[entry.root_index] is None
                   or not cache_file(self.cache_dirs[entry.root_index], entry.clip).is_file()]
        if missing and warn_missing:
            log.warning("%d of %d clips have no cached visual features and train audio-only (e.g. %s)",
                        len(missing), len(base.clips), missing[0])

    def __len__(self) -> int:
        return len(self.base)

    @property
    def clips(self):
        return self.base.clips

    @property
    def audio_format(self) -> str:
        return self.base.audio_format

    @property
    def hop_frames(self) -> int:
        return self.base.hop_frames

    @property
    def chunk_frames(self) -> int:
        return self.base.chunk_frames

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def _clip_features(self, clip_index: int):
        entry = self.base.clips[clip_index]
        if entry.key not in self._cache:
            folder = self.cache_dirs[entry.root_index]
            path = None if folder is None else cache_file(folder, entry.clip)
            self._cache[entry.key] = load_visual_features(path) if path is not None and path.is_file() else None
        return self._cache[entry.key]

    def _grid_shape(self) -> tuple[int, int, int] | None:
        """(C, rows, cols) of the cached features, for the zeros of clips without video (looked up once)."""
        if self._shape is None:
            for i in range(len(self.base.clips)):
                cached = self._clip_features(i)
                if cached is not None:
                    self._shape = tuple(cached[0].shape[1:])
                    break
        return self._shape

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.base[index]
        clip_index, start = self.base.chunks[index]
        steps = self.base.chunk_frames
        cached = self._clip_features(clip_index)
        shape = cached[0].shape[1:] if cached is not None else self._grid_shape()
        grid = np.zeros((steps,) + tuple(shape or (1, 1, 1)), dtype=np.float32)
        valid = np.zeros(steps, dtype=bool)
        if cached is not None:
            features, ok = cached
            stop = min(len(features), start + steps)
            if stop > start:
                grid[:stop - start] = features[start:stop]
                valid[:stop - start] = ok[start:stop]
        valid &= sample["label_mask"].numpy()
        if self._swaps is not None:
            rng = np.random.default_rng([self.seed, self.base.epoch, index, 7])
            width = grid.shape[-1]  # a quarter turn moves whole cells only when the grid width divides by 4
            swaps = [s for s in self._swaps if (s.geometric_map[1] % 4) * width % 4 == 0]
            swap = swaps[rng.integers(len(swaps))]
            stats = self.base.stats
            feats = swap.features(sample["features"].numpy(), self.base.kind,
                                  mean=None if stats is None else stats.mean, std=None if stats is None else stats.std)
            sample["features"] = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
            sample["target"] = torch.from_numpy(np.ascontiguousarray(swap.target(sample["target"].numpy()),
                                                                     dtype=np.float32))
            grid = swap.frames(grid, channels_first=True)
            sample["acs_index"] = swap.index
        sample["visual_features"] = torch.from_numpy(np.ascontiguousarray(grid))
        sample["video_valid"] = torch.from_numpy(valid)
        return sample
