"""A folder of precomputed features, one ``.npy`` per clip, and the standardisation statistics of its training split.

Layout of a cache folder (default ``DATASET_ROOT/features/KIND``)::

    features.json                    kind, audio format, STFT parameters and the training splits of the statistics
    stats.npz                        mean, std (C, F) float64 and count: per channel and frequency bin, over every
                                     feature frame of the training clips
    <set>/<split>/<clip>.npy         float32 (C, T, F), T = timing.num_feature_frames(samples), un-normalised

Clip files are written to a temporary name and renamed, so a killed run leaves no half-written file; a rerun skips
clips whose file exists with the expected shape (resumable) and recomputes the statistics from the cached files.
The statistics are merged clip by clip with Chan et al.'s parallel update of (count, mean, M2) in float64, in clip
order, so they do not depend on the number of workers and equal ``np.mean`` / ``np.std`` over the concatenated
training frames (population std, as sklearn's StandardScaler in the DCASE baseline).
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from av_seld import features as feats
from av_seld import timing
from av_seld.errors import InputError, UnwritableError
from av_seld.io.audio import read_wav, wav_info
from av_seld.io.dataset import Clip, index_dataset
from av_seld.utils.atomic import atomic_path, write_text_atomic
from av_seld.utils.text import count

log = logging.getLogger(__name__)

META_FILE = "features.json"
STATS_FILE = "stats.npz"
CACHE_VERSION = 1
DEFAULT_TRAIN_SPLITS = ("dev-train",)


# ------------------------------------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class RunningStats:
    """Count, mean and sum of squared deviations (M2) per (channel, bin), for merging partial statistics."""

    count: int
    mean: np.ndarray  # (C, F) float64
    m2: np.ndarray  # (C, F) float64

    @classmethod
    def of(cls, features: np.ndarray) -> "RunningStats":
        """Statistics of the frames of one clip's features (C, T, F)."""
        x = np.asarray(features, dtype=np.float64)
        mean = x.mean(axis=1)
        return cls(int(x.shape[1]), mean, ((x - mean[:, None, :]) ** 2).sum(axis=1))

    def merge(self, other: "RunningStats") -> "RunningStats":
        """Statistics of both sets of frames together (Chan, Golub and LeVeque's pairwise update)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return RunningStats(count, mean, m2)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (C, F) (``np.std`` with ddof=0)."""
        return np.sqrt(self.m2 / self.count)


@dataclass(frozen=True)
class FeatureStats:
    """Per channel × bin mean and std (C, F) of a feature kind over a training set of ``count`` frames."""

    kind: str
    mean: np.ndarray
    std: np.ndarray
    count: int

    def same_as_file(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` holds exactly these statistics (False for a file that cannot be read)."""
        try:
            old = FeatureStats.load(path)
        except InputError:
            return False
        return (old.kind == self.kind and old.count == self.count and np.array_equal(old.mean, self.mean)
                and np.array_equal(old.std, self.std))

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mean=self.mean, std=self.std, count=np.int64(self.count), kind=np.str_(self.kind))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "statistics file not found (run av-seld extract-features)")
        try:
            with np.load(path) as data:
                return cls(str(data["kind"]), data["mean"], data["std"], int(data["count"]))
        except (OSError, KeyError, ValueError) as err:
            raise InputError(path, f"cannot be read as feature statistics: {err}") from None

    @classmethod
    def merge(cls, stats: Sequence["FeatureStats"]) -> "FeatureStats":
        """Statistics of several training sets together (e.g. the caches of a real and a synthetic root)."""
        if not stats:
            raise ValueError("no statistics to merge")
        kinds = {s.kind for s in stats}
        if len(kinds) > 1:
            raise ValueError(f"cannot merge statistics of different feature kinds: {sorted(kinds)}")
        total = RunningStats(0, np.zeros_like(stats[0].mean, dtype=np.float64), np.zeros_like(stats[0].mean))
        for s in stats:
            total = total.merge(RunningStats(s.count, np.asarray(s.mean, np.float64), s.std.astype(np.float64) ** 2
                                             * s.count))
        return cls(stats[0].kind, total.mean, total.std, total.count)


# --------------------------------------------------------------------------------------------------------- files


def default_cache_dir(dataset_root: str | os.PathLike, kind: str) -> Path:
    return Path(dataset_root) / "features" / kind


def clip_cache_path(cache_dir: str | os.PathLike, clip: Clip) -> Path:
    """Where ``clip``'s features live in ``cache_dir``: ``<set>/<split>/<name>.npy``."""
    return Path(cache_dir) / clip.set / clip.split / f"{clip.name}.npy"


def is_train_split(split: str, train_splits: Iterable[str]) -> bool:
    """A split is a training split when it equals one of ``train_splits`` or extends one with ``-...``
    (``dev-train`` covers ``dev-train-sony``, ``dev-train-tau`` and ``dev-train-synth``)."""
    return any(split == name or split.startswith(name + "-") for name in train_splits)


def describe_splits(asked: Iterable[str], used: Iterable[str]) -> str:
    """The splits a prefix rule picked, for logs: "from split dev-train" or "from splits dev-train-sony,
    dev-train-tau (dev-train covers dev-train-*)"."""
    asked, used = list(asked), sorted(set(used))
    text = f"from split{'' if len(used) == 1 else 's'} {', '.join(used) or 'none'}"
    widened = [name for name in asked if any(split.startswith(name + "-") for split in used)]
    if widened:
        text += " (" + "; ".join(f"{name} covers {name}-*" for name in widened) + ")"
    return text


def read_cache_meta(cache_dir: str | os.PathLike) -> dict:
    path = Path(cache_dir) / META_FILE
    if not path.is_file():
        raise InputError(cache_dir, f"not a feature cache ({META_FILE} not found; run av-seld extract-features)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read: {err}") from None


def load_cached_features(cache_dir: str | os.PathLike, clip: Clip, mmap: bool = True,
                         expected_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Un-normalised features (C, T, F) of ``clip`` from ``cache_dir`` (memory-mapped by default); InputError naming
    the file when it is missing, unreadable, or not of ``expected_shape``. Standardisation is a later stage
    (:class:`av_seld.data.pipeline.Standardize`)."""
    path = clip_cache_path(cache_dir, clip)
    if not path.is_file():
        raise InputError(path, "cached features not found (run av-seld extract-features)")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read as a .npy array: {err}") from None
    if expected_shape is not None and array.shape != tuple(expected_shape):
        raise InputError(path, f"cached features have shape {array.shape}, expected {tuple(expected_shape)}")
    return array


def _meta(kind: str, audio_format: str, train_splits: Sequence[str]) -> dict:
    spec = feats.feature_spec(kind)
    return {
        "version": CACHE_VERSION, "kind": kind, "audio_format": audio_format, "num_channels": spec.num_channels,
        "num_bins": spec.num_bins, "sample_rate": timing.SAMPLE_RATE, "hop_samples": timing.FEATURE_HOP_SAMPLES,
        "win_samples": timing.FEATURE_WIN_SAMPLES, "n_fft": timing.N_FFT, "top_db": feats.TOP_DB,
        "train_splits": list(train_splits),
    }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


# ------------------------------------------------------------------------------------------------------ extraction


@dataclass(frozen=True)
class ClipFeatureResult:
    clip: Clip
    skipped: bool  # already cached by an earlier run
    num_frames: int
    audio_seconds: float
    stats: RunningStats | None  # set for clips of the training splits


def _expected_shape(path: Path, kind: str) -> tuple[int, int, int]:
    spec = feats.feature_spec(kind)
    _, _, num_samples = wav_info(path)
    return spec.num_channels, timing.num_feature_frames(num_samples), spec.num_bins


def _cached_ok(path: Path, shape: tuple[int, int, int]) -> bool:
    try:
        existing = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return existing.shape == shape and existing.dtype == np.float32


def _process_clip(clip: Clip, *, cache_dir: Path, kind: str, audio_format: str, train: bool) -> ClipFeatureResult:
    wav = getattr(clip, audio_format)
    out = clip_cache_path(cache_dir, clip)
    shape = _expected_shape(wav, kind)
    skipped = out.exists() and _cached_ok(out, shape)
    if skipped:
        features = np.load(out, mmap_mode="r") if train else None
    else:
        if out.exists():
            log.info("%s: shape or type differs from the expected %s; recomputing", out, shape)
        features = feats.compute_features(read_wav(wav), kind)
        _save_npy(out, features)
    stats = RunningStats.of(features) if train else None
    return ClipFeatureResult(clip, skipped, shape[1], shape[1] * timing.FEATURE_HOP_SAMPLES / timing.SAMPLE_RATE,
                             stats)


def _init_worker() -> None:
    torch.set_num_threads(1)  # one clip per process: threads would only compete with the other workers


@dataclass
class FeatureCacheJob:
    """The clips of one dataset root to cache as one feature kind; :meth:`run` does the work."""

    root: Path
    cache_dir: Path
    kind: str
    audio_format: str
    train_splits: tuple[str, ...]
    clips: list[Clip]

    @property
    def train_clips(self) -> list[Clip]:
        return [c for c in self.clips if is_train_split(c.split, self.train_splits)]

    def run(self, workers: int = 1, progress: Callable[[ClipFeatureResult], None] | None = None) -> FeatureStats:
        """Cache every clip (skipping finished ones), then write and return the training statistics."""
        try:
            write_text_atomic(self.cache_dir / META_FILE,
                              json.dumps(_meta(self.kind, self.audio_format, self.train_splits), indent=2) + "\n")
        except UnwritableError as err:  # typically a read-only dataset root holding the default cache folder
            raise UnwritableError(err.path, f"{err.reason}: the feature cache can live elsewhere (train: "
                                            f"data.feature_cache, one folder per root; extract-features: --out)") from None
        train = {c for c in self.train_clips}
        tasks = [(c, c in train) for c in self.clips]
        work = partial(_run_task, cache_dir=self.cache_dir, kind=self.kind, audio_format=self.audio_format)
        spec = feats.feature_spec(self.kind)
        total = RunningStats(0, np.zeros((spec.num_channels, spec.num_bins)), np.zeros((spec.num_channels,
                                                                                          spec.num_bins)))
        # Clips are the unit of parallelism: every process, this one included, computes with one torch thread.
        # (Intra-op threads gain little on these small blocks and stall badly when the cores are shared.)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        if workers <= 1:
            results = map(work, tasks)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker)
            results = pool.map(work, tasks)
        try:
            for result in results:  # in clip order, whatever the worker count: the merged statistics are too
                if result.stats is not None:
                    total = total.merge(result.stats)
                if progress is not None:
                    progress(result)
        finally:
            torch.set_num_threads(threads)
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        stats = FeatureStats(self.kind, total.mean, total.std, total.count)
        path = self.cache_dir / STATS_FILE
        current = path.is_file() and stats.same_as_file(path)
        if not current:  # an unchanged file keeps its time stamp: nothing downstream sees new statistics
            stats.save(path)
        log.info("%s: statistics of %s (%d frames) %s %s %s", self.root, count(len(train), "training clip"),
                 total.count, describe_splits(self.train_splits, (c.split for c in train)),
                 "unchanged in" if current else "written to", path)
        return stats


def _run_task(task: tuple[Clip, bool], **kwargs) -> ClipFeatureResult:
    clip, train = task
    return _process_clip(clip, train=train, **kwargs)


def prepare_feature_cache(dataset_root: str | os.PathLike, *, audio_format: str, kind: str | None = None,
                          cache_dir: str | os.PathLike | None = None,
                          train_splits: Sequence[str] = DEFAULT_TRAIN_SPLITS) -> FeatureCacheJob:
    """Index ``dataset_root`` and plan caching its ``audio_format`` clips as ``kind`` (default: the format's
    log-mel kind) into ``cache_dir`` (default ``DATASET_ROOT/features/KIND``).

    Raises :class:`InputError` for a kind of the other format, a root without clips of the format, no clip in the
    training splits, or a cache folder that already holds another kind.
    """
    if audio_format not in feats.DEFAULT_KIND:
        raise ValueError(f"audio_format must be 'foa' or 'mic', got {audio_format!r}")
    kind = kind or feats.DEFAULT_KIND[audio_format]
    spec = feats.feature_spec(kind)
    if spec.audio_format != audio_format:
        raise InputError(None, f"feature kind {kind} is computed from {spec.audio_format.upper()} audio, "
                               f"not {audio_format.upper()}")
    root = Path(dataset_root)
    index = index_dataset(root)
    clips = [c for c in index.clips if getattr(c, audio_format) is not None]
    if not clips:
        raise InputError(root, f"no {audio_format.upper()} audio found ({audio_format}_dev/ or {audio_format}_eval/)")
    train_splits = tuple(train_splits)
    if not any(is_train_split(c.split, train_splits) for c in clips):
        raise InputError(root, f"no clip in the training split(s) {', '.join(train_splits)} for the statistics; "
                               f"splits found: {', '.join(sorted({c.split for c in clips}))}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(root, kind)
    if (cache_dir / META_FILE).is_file():
        meta = read_cache_meta(cache_dir)
        if meta.get("kind") != kind:
            raise InputError(cache_dir, f"holds {meta.get('kind')} features, not {kind}; choose another --out")
    return FeatureCacheJob(root, cache_dir, kind, audio_format, train_splits, clips)
