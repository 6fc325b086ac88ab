"""Training examples from STARSS23-format roots: fixed-length chunks of features (or audio), targets and video.

Each clip of the selected splits is cut into chunks of ``chunk_s`` seconds every ``hop_s`` seconds (both whole
numbers of 100 ms label frames). A clip of ``L`` label frames gives ``1 + ceil(max(L - chunk, 0) / hop)`` chunks; the
last one may run past the clip's end and is padded: ``label_mask`` (T,) says which label frames are real, padded
feature frames are zero (after standardisation, i.e. the mean), padded audio is silence and padded targets are
inactive.

A sample (``__getitem__``) is a dict of torch tensors:

- ``"features"`` float32 (C, 5 T, F) of the chosen kind, standardised with ``stats`` when given, or with
  ``output="audio"``, ``"audio"`` float32 (4, 2400 T), whose features the training device computes
  (:meth:`av_seld.data.pipeline.SamplePipeline.device`, with ``"spec_mask"`` (5 T, F) bool when masks are on);
- ``"target"`` float32 (T, 6, 4, 13) ADPIT (``target="adpit"``) or (T, 3, 3, 13) multi-ACCDOA; the ``_distance``
  kinds add the distance row (``av_seld.targets``: (T, 6, 5, 13), (T, 3, 4, 13));
- ``"label_mask"`` bool (T,);
- with ``video=True``: ``"frames"`` uint8 (T, H, W, 3) RGB, the frame of each label frame by
  :func:`av_seld.timing.video_frame_for_label_frame`, and ``"video_valid"`` bool (T,), False where the clip has no
  video, the video has ended, or the label frame is padding (such frames are black);
- with ``visual_cache_dirs``: ``"visual_features"`` float32 (T, C, rows, cols), the frozen visual encoder's cached
  grid (``av-seld precompute-visual``), and ``"video_valid"`` as above (zeros where a clip has no cached features);
- with ``acs``: ``"acs_index"`` (int), the channel swap applied;
- ``"clip"`` (str, ``<root index>:<split>/<name>``), ``"start_frame"`` (int, first label frame), ``"index"`` (int).

The dataset is the ``read`` stage of :mod:`av_seld.data.pipeline`; the stages after it (channel swap, featurize,
standardize, SpecAugment) run in that module's order, with one generator per sample,
``np.random.default_rng([seed, epoch, index])``: a sample depends on the seed, the epoch
(:meth:`SeldDataset.set_epoch`) and its index only, not on the worker that loads it.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import soundfile as sf
import torch

from av_seld import features as feats
from av_seld import geometry, timing
from av_seld.data.feature_cache import FeatureStats, is_train_split, load_cached_features, read_cache_meta
from av_seld.data.pipeline import SamplePipeline, SpecAugment, acs_policy
from av_seld.errors import AudioFormatError, InputError
from av_seld.io.audio import check_finite, wav_info
from av_seld.io.dataset import Clip, index_dataset
from av_seld.io.labels import Events, read_reference_csv
from av_seld.targets import TARGET_BUILDERS as TARGETS

if TYPE_CHECKING:
    from av_seld.io.video import VideoReader

log = logging.getLogger(__name__)

FRAMES_PER_LABEL = timing.FEATURE_FRAMES_PER_LABEL_FRAME
_WARNED_SHORT: set[str] = set()  # videos shorter than their clip, already reported
_INHERITED_READERS: list = []  # video readers a forked worker inherited (see SeldDataset._worker_state)


def seconds_to_label_frames(seconds: float, what: str = "length") -> int:
    """A duration that must be a positive whole number of 100 ms label frames, as a frame count."""
    frames = seconds / timing.LABEL_HOP_S
    if not seconds > 0 or abs(frames - round(frames)) > 1e-6:
        raise ValueError(f"{what} must be a positive multiple of {timing.LABEL_HOP_S} s, got {seconds}")
    return int(round(frames))


def num_chunks(num_frames: int, chunk_frames: int, hop_frames: int) -> int:
    """Chunks of ``chunk_frames`` every ``hop_frames`` that cover ``num_frames`` label frames (the last padded)."""
    return 1 + -(-max(num_frames - chunk_frames, 0) // hop_frames)


# ----------------------------------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class ClipEntry:
    """One clip of the dataset: which root, its files, its length and its feature cache (None: on the fly)."""

    root_index: int
    clip: Clip
    num_samples: int
    cache_dir: Path | None

    @property
    def num_label_frames(self) -> int:
        return timing.num_label_frames(self.num_samples)

    @property
    def key(self) -> str:
        return f"{self.root_index}:{self.clip.split}/{self.clip.name}"


class SeldDataset(torch.utils.data.Dataset):
    """Chunks of the clips of one or more STARSS23-format roots (see the module docstring for the sample layout).

    roots: dataset roots read together (e.g. real and synthetic). splits: split names to use; a name also covers
    ``NAME-*`` (``dev-train`` = ``dev-train-sony`` + ``dev-train-tau`` + ...); None uses every split. Clips without
    audio of ``audio_format`` or without a label CSV are left out (logged).
    kind: feature kind (default: the format's log-mel kind). cache_dirs: per root, a folder written by
    ``av-seld extract-features`` or None to compute that root's features on the fly from the wav (per chunk, on CPU).
    stats: standardisation statistics (:meth:`FeatureStats.load` / ``merge``); None leaves features as computed.
    output: "features", or "audio" to stop the loader's part of the pipeline before ``featurize`` (the batch is
    finished by ``dataset.pipeline.device``). target: "adpit" (T, 6, 4, 13) or "multi_accdoa" (T, 3, 3, 13), or
    their ``_distance`` kinds (``av_seld.targets.TARGET_BUILDERS``).
    video, video_size: read frames at the label rate, (height, width) in pixels.
    visual_cache_dirs: per root, a folder of cached frozen visual features (``av_seld.data.visual_cache.cache_dir``)
    or None (that root trains audio-only); not with ``video``. warn_missing_visual: log clips without them.
    acs: 360° channel swapping, one transform per sample (:func:`av_seld.data.pipeline.acs_policy`: rotations only
    with cached visual features); True for the policy's transforms, or a sequence of transform indices.
    spec_augment: SpecAugment masks. seed: base seed of every sample's generator. video_dropout: the probability that
    a sample's video is masked whole (training; :class:`av_seld.data.pipeline.SamplePipeline`).
    """

    def __init__(self, roots: Sequence[str | os.PathLike] | str | os.PathLike, *, splits: Sequence[str] | None = None,
                 audio_format: str = "foa", kind: str | None = None, chunk_s: float = 5.0, hop_s: float | None = None,
                 cache_dirs: Sequence[str | os.PathLike | None] | None = None, stats: FeatureStats | None = None,
                 output: str = "features", target: str = "adpit", video: bool = False,
                 video_size: tuple[int, int] = geometry.DEFAULT_FRAME_SIZE,
                 visual_cache_dirs: Sequence[str | os.PathLike | None] | None = None, warn_missing_visual: bool = True,
                 acs: bool | Sequence[int] = False, spec_augment: SpecAugment | None = None, seed: int = 0,
                 video_cache_size: int = 4, video_dropout: float = 0.0):
        if isinstance(roots, (str, os.PathLike)):
            roots = [roots]
        roots = [Path(r) for r in roots]
        if not roots:
            raise ValueError("give at least one dataset root")
        if audio_format not in feats.DEFAULT_KIND:
            raise ValueError(f"audio_format must be 'foa' or 'mic', got {audio_format!r}")
        self.kind = kind or feats.DEFAULT_KIND[audio_format]
        self.spec = feats.feature_spec(self.kind)
        if self.spec.audio_format != audio_format:
            raise ValueError(f"feature kind {self.kind} needs {self.spec.audio_format.upper()} audio, "
                             f"not {audio_format.upper()}")
        if output not in ("features", "audio"):
            raise ValueError(f"output must be 'features' or 'audio', got {output!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {sorted(TARGETS)}, got {target!r}")
        if stats is not None and stats.kind != self.kind:
            raise ValueError(f"statistics are of {stats.kind}, the dataset reads {self.kind}")
        if cache_dirs is None:
            cache_dirs = [None] * len(roots)
        if len(cache_dirs) != len(roots):
            raise ValueError(f"give one cache folder (or None) per root: {len(roots)} roots, {len(cache_dirs)} caches")
        if visual_cache_dirs is not None:
            if video:
                raise ValueError("read live frames (video) or cached visual features (visual_cache_dirs), not both")
            if len(visual_cache_dirs) != len(roots):
                raise ValueError(f"give one visual cache folder (or None) per root: {len(roots)} roots, "
                                 f"{len(visual_cache_dirs)} folders")
        self.audio_format = audio_format
        self.chunk_frames = seconds_to_label_frames(chunk_s, "chunk_s")
        self.hop_frames = seconds_to_label_frames(chunk_s if hop_s is None else hop_s, "hop_s")
        self.stats = stats
        self.output = output
        self.target = target
        self.video = video
        self.video_size = (int(video_size[0]), int(video_size[1]))
        self.visual_cache_dirs = None if visual_cache_dirs is None else [None if d is None else Path(d)
                                                                         for d in visual_cache_dirs]
        self.seed = int(seed)
        self.epoch = 0
        self.video_cache_size = video_cache_size

        self.clips: list[ClipEntry] = []
        for root_index, (root, cache) in enumerate(zip(roots, cache_dirs)):
            self.clips += self._index_root(root_index, root, None if cache is None else Path(cache), splits)
        if not self.clips:
            raise InputError(None, f"no clips with {audio_format.upper()} audio and labels in split(s) "
                                   f"{', '.join(splits) if splits else '(all)'} of {', '.join(map(str, roots))}")
        if video:
            without = [entry.clip for entry in self.clips if entry.clip.video is None]
            if without:
                log.warning("%d of %d clips have no video and train with the \"no video\" token (e.g. %s)",
                            len(without), len(self.clips), without[0].metadata)
        self.visual_grid_shape = self._find_visual_grid(warn_missing_visual)
        self.chunks: list[tuple[int, int]] = [  # (clip index, first label frame)
            (i, k * self.hop_frames)
            for i, entry in enumerate(self.clips)
            for k in range(num_chunks(entry.num_label_frames, self.chunk_frames, self.hop_frames))
        ]
        policy = None
        if acs is not False:
            grid_width = None if self.visual_grid_shape is None else self.visual_grid_shape[-1]
            policy = acs_policy(audio_format, self.kind, frozen_visual_grid_width=grid_width,
                                indices=None if acs is True else tuple(acs))
        self.pipeline = SamplePipeline(self.kind, stats=stats, acs=policy, spec_augment=spec_augment,
                                       on_device=output == "audio", video_dropout=video_dropout)
        self._reset_worker_state()

    def _index_root(self, root_index: int, root: Path, cache: Path | None,
                    splits: Sequence[str] | None) -> list[ClipEntry]:
        if cache is not None:
            meta = read_cache_meta(cache)
            if meta.get("kind") != self.kind:
                raise InputError(cache, f"holds {meta.get('kind')} features, the dataset reads {self.kind}")
        entries = []
        for clip in index_dataset(root).clips:
            if splits is not None and not is_train_split(clip.split, splits):
                continue
            wav = getattr(clip, self.audio_format)
            if wav is None or clip.metadata is None:
                log.info("%s: %s/%s has no %s audio or no labels; left out", root, clip.split, clip.name,
                         self.audio_format.upper())
                continue
            channels, rate, num_samples = wav_info(wav)
            if channels != 4 or rate != timing.SAMPLE_RATE:
                raise AudioFormatError(wav, f"expected 4 channels at {timing.SAMPLE_RATE} Hz, found {channels} at "
                                            f"{rate} Hz")
            if num_samples == 0:
                raise AudioFormatError(wav, "has no samples")
            entries.append(ClipEntry(root_index, clip, num_samples, cache))
        return entries

    def _visual_file(self, entry: ClipEntry) -> Path | None:
        """The clip's cached visual features, or None when its root has no visual cache or the file is missing."""
        from av_seld.data.visual_cache import cache_file

        folder = self.visual_cache_dirs[entry.root_index]
        path = None if folder is None else cache_file(folder, entry.clip)
        return path if path is not None and path.is_file() else None

    def _find_visual_grid(self, warn_missing: bool) -> tuple[int, int, int] | None:
        """(C, rows, cols) of the cached visual features (from the first file's header), or None without them."""
        if self.visual_cache_dirs is None:
            return None
        files = [self._visual_file(entry) for entry in self.clips]
        missing = [entry.key for entry, path in zip(self.clips, files) if path is None]
        if missing and warn_missing:
            log.warning("%d of %d clips have no cached visual features and train audio-only (e.g. %s)",
                        len(missing), len(self.clips), missing[0])
        present = [path for path in files if path is not None]
        # No cached file at all: a (1, 1, 1) grid of zeros, which only the identity moves whole.
        return tuple(np.load(present[0], mmap_mode="r").shape[1:]) if present else (1, 1, 1)

    # Per-process state: memory-mapped features, parsed labels and open video readers are not shared between workers.
    def _reset_worker_state(self) -> None:
        self._pid = os.getpid()
        self._events: dict[int, Events] = {}
        self._memmaps: dict[int, np.ndarray] = {}
        self._visual: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        self._videos: OrderedDict[Path, VideoReader] = OrderedDict()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_events", "_memmaps", "_visual"):
            state[key] = {}
        state["_videos"] = OrderedDict()
        return state

    def _worker_state(self) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker: do not reuse the parent's open files
            # ... nor close them: a decord reader destroyed in a forked child crashes it (its decoder threads are
            # not there), so the inherited readers are kept alive, unused, for the life of the worker.
            _INHERITED_READERS.append(self._videos)
            self._reset_worker_state()

    def set_epoch(self, epoch: int) -> None:
        """Make the random draws of the next pass differ from the last one's (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.chunks)

    # ------------------------------------------------------------------------------------------- the read stage

    def _clip_events(self, clip_index: int) -> Events:
        if clip_index not in self._events:
            self._events[clip_index] = read_reference_csv(self.clips[clip_index].clip.metadata)
        return self._events[clip_index]

    def _chunk_target(self, clip_index: int, start: int) -> np.ndarray:
        events = self._clip_events(clip_index)
        keep = (events.frame >= start) & (events.frame < start + self.chunk_frames)
        chunk = events.select(keep)
        chunk = Events(chunk.frame - start, chunk.class_index, chunk.source, chunk.azimuth_deg, chunk.elevation_deg,
                       chunk.distance_m)
        try:
            return TARGETS[self.target](chunk, self.chunk_frames)
        except ValueError as err:  # e.g. distance targets from a reference without distances
            raise InputError(self.clips[clip_index].clip.metadata, str(err)) from None

    def _chunk_audio(self, entry: ClipEntry, start: int) -> np.ndarray:
        """(4, 2400 T) float32: the chunk's samples, zeros past the end of the clip."""
        hop = timing.LABEL_HOP_SAMPLES
        first = start * hop
        stop = min((start + self.chunk_frames) * hop, entry.num_samples)
        out = np.zeros((4, self.chunk_frames * hop), dtype=np.float32)
        path = getattr(entry.clip, self.audio_format)
        try:
            data, _ = sf.read(str(path), start=first, stop=stop, dtype="float32", always_2d=True)
        except RuntimeError as e:  # soundfile.LibsndfileError
            raise AudioFormatError(path, f"cannot read samples {first}..{stop}: {e}") from e
        check_finite(path, data, timing.SAMPLE_RATE, first_sample=first)
        out[:, : data.shape[0]] = data.T
        return out

    def _chunk_cached_features(self, clip_index: int, start: int) -> np.ndarray:
        """(C, 5 T, F) float32 un-normalised cached features of the chunk, zeros past the clip's end."""
        entry = self.clips[clip_index]
        if clip_index not in self._memmaps:
            expected = (self.spec.num_channels, timing.num_feature_frames(entry.num_samples), self.spec.num_bins)
            self._memmaps[clip_index] = load_cached_features(entry.cache_dir, entry.clip, expected_shape=expected)
        array = self._memmaps[clip_index]
        first = start * FRAMES_PER_LABEL
        part = np.asarray(array[:, first : first + self.chunk_frames * FRAMES_PER_LABEL], dtype=np.float32)
        out = np.zeros((array.shape[0], self.chunk_frames * FRAMES_PER_LABEL, array.shape[2]), dtype=np.float32)
        out[:, : part.shape[1]] = part
        return out

    def _chunk_video(self, entry: ClipEntry, start: int, label_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = self.video_size
        if entry.clip.video is None:
            return np.zeros((self.chunk_frames, height, width, 3), np.uint8), np.zeros(self.chunk_frames, bool)
        path = entry.clip.video
        reader = self._videos.get(path)
        if reader is None:
            from av_seld.io.video import VideoReader  # decord is imported only by datasets that read video

            reader = VideoReader(path, width, height)
            self._videos[path] = reader
            covered = timing.label_frames_covered_by_video(reader.num_frames, reader.fps)
            if covered < entry.num_label_frames and str(path) not in _WARNED_SHORT:
                _WARNED_SHORT.add(str(path))  # once per file and process
                log.warning("%s: video covers %d of the clip's %d label frames; the rest train with the \"no video\" "
                            "token", path, covered, entry.num_label_frames)
            while len(self._videos) > self.video_cache_size:
                self._videos.popitem(last=False)
        else:
            self._videos.move_to_end(path)
        return reader.read_label_frames(np.arange(start, start + self.chunk_frames), label_mask)

    def _chunk_visual_features(self, clip_index: int, start: int,
                               label_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, C, rows, cols) float32 cached visual grid of the chunk and its validity (T,); zeros where the clip has
        no cached features, its video has ended, or the label frame is padding."""
        from av_seld.data.visual_cache import load_visual_features

        if clip_index not in self._visual:
            path = self._visual_file(self.clips[clip_index])
            self._visual[clip_index] = None if path is None else load_visual_features(path)
        grid = np.zeros((self.chunk_frames,) + tuple(self.visual_grid_shape), dtype=np.float32)
        valid = np.zeros(self.chunk_frames, dtype=bool)
        cached = self._visual[clip_index]
        if cached is not None:
            features, ok = cached
            stop = min(len(features), start + self.chunk_frames)
            if stop > start:
                grid[: stop - start] = features[start:stop]
                valid[: stop - start] = ok[start:stop]
        return grid, valid & label_mask

    def read(self, index: int) -> dict[str, Any]:
        """The ``read`` stage: the chunk's raw inputs as torch tensors (audio or un-normalised features, frames or
        cached visual grid, target, label mask), before any other stage of the pipeline."""
        clip_index, start = self.chunks[index]
        entry = self.clips[clip_index]
        num_real = min(self.chunk_frames, entry.num_label_frames - start)
        label_mask = np.arange(self.chunk_frames) < num_real
        target = np.where(label_mask[:, None, None, None], self._chunk_target(clip_index, start), 0.0)
        sample: dict[str, Any] = {"target": target.astype(np.float32), "label_mask": label_mask}
        if self.output == "audio" or entry.cache_dir is None:
            sample["audio"] = self._chunk_audio(entry, start)  # featurized by the pipeline (in the loader or device)
        else:
            sample["features"] = self._chunk_cached_features(clip_index, start)
        if self.video:
            sample["frames"], sample["video_valid"] = self._chunk_video(entry, start, label_mask)
        if self.visual_cache_dirs is not None:
            sample["visual_features"], sample["video_valid"] = self._chunk_visual_features(clip_index, start,
                                                                                           label_mask)
        return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in sample.items()}

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.chunks):
            raise IndexError(f"index {index} out of range for {len(self.chunks)} chunks")
        self._worker_state()
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = self.pipeline.loader(self.read(index), rng)
        sample.update(clip=self.clips[self.chunks[index][0]].key, start_frame=self.chunks[index][1], index=index)
        return sample


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch: tensors along a new first axis, numbers into a tensor, anything else a list."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(first, np.ndarray):
            batch[key] = torch.from_numpy(np.stack(values))
        elif isinstance(first, (bool, int, float, np.integer, np.floating)) and not isinstance(first, str):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


def load_cache_stats(cache_dirs: Sequence[str | os.PathLike]) -> FeatureStats:
    """The statistics of several feature caches merged into one (a training set drawn from several roots)."""
    from av_seld.data.feature_cache import STATS_FILE

    return FeatureStats.merge([FeatureStats.load(Path(d) / STATS_FILE) for d in cache_dirs])


__all__ = ["SeldDataset", "collate_samples", "load_cache_stats", "num_chunks",
           "seconds_to_label_frames", "ClipEntry"]
