"""Training examples from STARSS23-format roots: fixed-length chunks of features (or audio), targets and video.

Each clip of the selected splits is cut into chunks of ``chunk_s`` seconds every ``hop_s`` seconds (both whole
numbers of 100 ms label frames). A clip of ``L`` label frames gives ``1 + ceil(max(L - chunk, 0) / hop)`` chunks; the
last one may run past the clip's end and is padded: ``label_mask`` (T,) says which label frames are real, padded
feature frames are zero (after standardisation, i.e. the mean), padded audio is silence and padded targets are
inactive.

A sample (``__getitem__``) is a dict of torch tensors:

- ``"features"`` float32 (C, 5 T, F) of the chosen kind, standardised with ``stats`` when given, or with
  ``output="audio"``, ``"audio"`` float32 (4, 2400 T) for feature extraction on the GPU
  (:class:`av_seld.features.FeatureExtractor`);
- ``"target"`` float32 (T, 6, 4, 13) ADPIT (``target="adpit"``) or (T, 3, 3, 13) multi-ACCDOA; the ``_distance``
  kinds add the distance row (``av_seld.targets``: (T, 6, 5, 13), (T, 3, 4, 13));
- ``"label_mask"`` bool (T,);
- with ``video=True``: ``"frames"`` uint8 (T, H, W, 3) RGB, the frame of each label frame by
  :func:`av_seld.timing.video_frame_for_label_frame`, and ``"video_valid"`` bool (T,), False where the clip has no
  video, the video has ended, or the label frame is padding (such frames are black);
- ``"clip"`` (str, ``<root index>:<split>/<name>``), ``"start_frame"`` (int, first label frame), ``"index"`` (int).

Order of operations: read features (un-normalised) -> ``transform(sample, rng)`` (online ACS acts on raw features, as
it must for exactness) -> standardise -> zero the padding -> SpecAugment masks. The generator passed to the
transform and to the masks is ``np.random.default_rng([seed, epoch, index])``: a sample depends on the seed, the epoch
(:meth:`SeldDataset.set_epoch`) and its index only, not on the worker that loads it.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import soundfile as sf
import torch

from av_seld import features as feats
from av_seld import geometry, timing
from av_seld.data.feature_cache import FeatureStats, clip_cache_path, is_train_split, read_cache_meta
from av_seld.errors import AudioFormatError, InputError
from av_seld.io.audio import check_finite, wav_info
from av_seld.io.dataset import Clip, index_dataset
from av_seld.io.labels import Events, read_reference_csv
from av_seld.targets import TARGET_BUILDERS as TARGETS

if TYPE_CHECKING:
    from av_seld.io.video import VideoReader

log = logging.getLogger(__name__)

Transform = Callable[[dict, np.random.Generator], dict]
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


# ------------------------------------------------------------------------------------------------- SpecAugment


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

    def regions(self, num_frames: int, num_bins: int, rng: np.random.Generator) -> list[tuple[slice, slice]]:
        """The (frames, bins) rectangles to mask: time masks, then frequency masks, then cutouts."""

        def span(size: int, max_width: int) -> slice:
            width = int(rng.integers(1, min(max_width, size) + 1))
            start = int(rng.integers(0, size - width + 1))
            return slice(start, start + width)

        every = slice(None)
        out = [(span(num_frames, self.time_mask_frames), every) for _ in range(self.time_masks)]
        out += [(every, span(num_bins, self.freq_mask_bins)) for _ in range(self.freq_masks)]
        out += [(span(num_frames, self.cutout_frames), span(num_bins, self.cutout_bins)) for _ in range(self.cutouts)]
        return out

    def __call__(self, features: np.ndarray | torch.Tensor, rng: np.random.Generator) -> np.ndarray | torch.Tensor:
        """A masked copy of ``features`` (C, T, F), a NumPy array or a torch tensor on any device."""
        out = features.clone() if isinstance(features, torch.Tensor) else np.array(features, copy=True)
        for frames, bins in self.regions(out.shape[1], out.shape[2], rng):
            out[:, frames, bins] = self.value
        return out


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
    output: "features" or "audio". target: "adpit" (T, 6, 4, 13) or "multi_accdoa" (T, 3, 3, 13), or
    their ``_distance`` kinds (``av_seld.targets.TARGET_BUILDERS``).
    video, video_size: read frames at the label rate, (height, width) in pixels.
    transform: ``transform(sample, rng) -> sample`` on NumPy arrays (the online ACS hook).
    spec_augment: masks for ``output="features"``. seed: base seed of every sample's generator.
    """

    def __init__(self, roots: Sequence[str | os.PathLike] | str | os.PathLike, *, splits: Sequence[str] | None = None,
                 audio_format: str = "foa", kind: str | None = None, chunk_s: float = 5.0, hop_s: float | None = None,
                 cache_dirs: Sequence[str | os.PathLike | None] | None = None, stats: FeatureStats | None = None,
                 output: str = "features", target: str = "adpit", video: bool = False,
                 video_size: tuple[int, int] = geometry.DEFAULT_FRAME_SIZE, transform: Transform | None = None,
                 spec_augment: SpecAugment | None = None, seed: int = 0, video_cache_size: int = 4):
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
        if output == "audio" and spec_augment is not None and spec_augment.enabled:
            raise ValueError("SpecAugment masks features; with output='audio' apply them after feature extraction")
        if stats is not None:
            if stats.kind != self.kind:
                raise ValueError(f"statistics are of {stats.kind}, the dataset reads {self.kind}")
            if output == "audio":
                raise ValueError("output='audio' returns raw audio: give the statistics to the FeatureExtractor")
        if cache_dirs is None:
            cache_dirs = [None] * len(roots)
        if len(cache_dirs) != len(roots):
            raise ValueError(f"give one cache folder (or None) per root: {len(roots)} roots, {len(cache_dirs)} caches")
        self.audio_format = audio_format
        self.chunk_frames = seconds_to_label_frames(chunk_s, "chunk_s")
        self.hop_frames = seconds_to_label_frames(chunk_s if hop_s is None else hop_s, "hop_s")
        self.stats = stats
        self.output = output
        self.target = target
        self.video = video
        self.video_size = (int(video_size[0]), int(video_size[1]))
        self.transform = transform
        self.spec_augment = spec_augment
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
        self.chunks: list[tuple[int, int]] = [  # (clip index, first label frame)
            (i, k * self.hop_frames)
            for i, entry in enumerate(self.clips)
            for k in range(num_chunks(entry.num_label_frames, self.chunk_frames, self.hop_frames))
        ]
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

    # Per-process state: memory-mapped features, parsed labels and open video readers are not shared between workers.
    def _reset_worker_state(self) -> None:
        self._pid = os.getpid()
        self._events: dict[int, Events] = {}
        self._memmaps: dict[int, np.ndarray] = {}
        self._videos: OrderedDict[Path, VideoReader] = OrderedDict()
        self._extractor: feats.FeatureExtractor | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_events", "_memmaps", "_videos", "_extractor"):
            state[key] = {} if key != "_extractor" else None
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

    # --------------------------------------------------------------------------------------------------- parts

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

    def _chunk_features(self, clip_index: int, start: int) -> np.ndarray:
        """(C, 5 T, F) float32 un-normalised features of the chunk (frames past the clip's end are left as
        computed here and zeroed after standardisation)."""
        entry = self.clips[clip_index]
        if entry.cache_dir is None:
            if self._extractor is None:
                self._extractor = feats.FeatureExtractor(self.kind)
            return self._extractor(torch.from_numpy(self._chunk_audio(entry, start))).numpy()
        if clip_index not in self._memmaps:
            path = clip_cache_path(entry.cache_dir, entry.clip)
            if not path.is_file():
                raise InputError(path, "cached features not found (run av-seld extract-features)")
            array = np.load(path, mmap_mode="r")
            expected = (self.spec.num_channels, timing.num_feature_frames(entry.num_samples), self.spec.num_bins)
            if array.shape != expected:
                raise InputError(path, f"cached features have shape {array.shape}, expected {expected}")
            self._memmaps[clip_index] = array
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

    # ------------------------------------------------------------------------------------------------- sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.chunks):
            raise IndexError(f"index {index} out of range for {len(self.chunks)} chunks")
        self._worker_state()
        clip_index, start = self.chunks[index]
        entry = self.clips[clip_index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        num_real = min(self.chunk_frames, entry.num_label_frames - start)
        label_mask = np.arange(self.chunk_frames) < num_real

        sample: dict[str, Any] = {"target": self._chunk_target(clip_index, start)}
        if self.output == "audio":
            sample["audio"] = self._chunk_audio(entry, start)
        else:
            sample["features"] = self._chunk_features(clip_index, start)
        if self.video:
            sample["frames"], sample["video_valid"] = self._chunk_video(entry, start, label_mask)
        if self.transform is not None:
            sample = self.transform(sample, rng)
        if self.output == "features":
            features = sample["features"]
            if self.stats is not None:
                features = self.stats.normalize(features)
            features = np.array(features, dtype=np.float32, copy=True)
            features[:, num_real * FRAMES_PER_LABEL:] = 0.0
            if self.spec_augment is not None and self.spec_augment.enabled:
                features = self.spec_augment(features, rng)
            sample["features"] = features
        sample["target"] = np.where(label_mask[:, None, None, None], sample["target"], 0.0).astype(np.float32)

        out = {key: torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
               for key, value in sample.items()}
        out.update(label_mask=torch.from_numpy(label_mask), clip=entry.key, start_frame=start, index=index)
        return out


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


__all__ = ["SeldDataset", "SpecAugment", "collate_samples", "load_cache_stats", "num_chunks",
           "seconds_to_label_frames", "ClipEntry"]
