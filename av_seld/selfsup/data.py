"""The data of the self-supervised pre-training: a cache of each clip's spatial bins and frames at label rate, and
the dataset over it (see :mod:`av_seld.selfsup`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from av_seld.errors import InputError
from av_seld.selfsup.model import DEFAULT_FRAME_SIZE
from av_seld.selfsup.spatial import spatial_bins

log = logging.getLogger(__name__)

CACHE_DIRNAME = "selfsup_cache"


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
