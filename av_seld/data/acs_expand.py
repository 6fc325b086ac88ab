"""Offline channel swapping: write a new STARSS23-format dataset holding every ACS-transformed copy of each clip.

``OUT_ROOT/{foa,mic}_<set>/<split>/<clip>_acsNN.wav``, ``metadata_<set>/<split>/<clip>_acsNN.csv`` and, where the
clip has a video, ``video_<set>/<split>/<clip>_acsNN.mp4``. ``NN`` is the transform's geometric map in the FOA
numbering of :mod:`augment.acs` (``ChannelSwap.map_index``, 00..15; MIC copies use the 8 maps
00, 04, 05, 06, 09, 10, 11, 15), so an FOA and a MIC copy with the same suffix share their labels and video, and
both formats can be expanded into one root. ``acs00`` is the identity (a copy of the original).

- wav: the 16-bit samples are permuted (and for FOA sign-flipped) exactly; only a sample of −32768 negated
  saturates to +32767.
- csv: azimuth and elevation transformed (integer degrees stay integers), azimuth wrapped to [-180, 180).
- mp4: decoded in small batches, moved by exact pixel operations, re-encoded at the source frame rate and size
  through :mod:`av_seld.io.video` (H.264 when the system ffmpeg is installed, else MPEG-4 part 2 "mp4v"): streamed,
  one decode for all of a clip's transforms. The re-encoding is lossy, so the pixels are exact only up to the codec.

Resumable: every file is written to a temporary name and renamed; a transformed clip whose files all exist is
skipped. Clips run in parallel over a process pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from augment.acs import NUM_TRANSFORMS, ChannelSwap
from av_seld.errors import InputError, VideoFormatError
from av_seld.io.audio import read_wav, wav_info, write_wav
from av_seld.io.dataset import Clip, index_dataset
from av_seld.io.labels import read_reference_csv, write_reference_csv
from av_seld.io.video import VideoReader, VideoWriter

log = logging.getLogger(__name__)

DECODE_BATCH = 8  # source frames decoded at a time: 8 × 1920 × 960 × 3 bytes ≈ 44 MB


@dataclass(frozen=True)
class ExpandResult:
    clip: str  # "<split>/<name>"
    written: int  # transformed copies written now
    skipped: int  # transformed copies already complete
    has_video: bool
    wall_seconds: float


def output_name(clip_name: str, transform: ChannelSwap) -> str:
    """``fold1_room1_mix001`` + map 5 → ``fold1_room1_mix001_acs05``."""
    return f"{clip_name}_acs{transform.map_index:02d}"


def parse_transforms(spec: str | int | Sequence[int], format: str) -> tuple[str, tuple[int, ...]]:
    """('all', every index) | ('count', (N,)) | ('list', indices) from 'all', 'N' or 'i,j,k' (indices of ``format``)."""
    total = NUM_TRANSFORMS[format]
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return "all", tuple(range(total))
        try:
            if "," in text:
                return _check_list([int(v) for v in text.split(",") if v.strip()], format)
            spec = int(text)
        except ValueError:
            raise InputError(None, f"--transforms must be 'all', a count N or a comma list of indices, got {spec!r}") \
                from None
    if isinstance(spec, (int, np.integer)):
        if not 1 <= spec <= total:
            raise InputError(None, f"--transforms N must be in 1..{total} for {format.upper()}, got {spec}")
        return ("all", tuple(range(total))) if spec == total else ("count", (int(spec),))
    return _check_list([int(v) for v in spec], format)


def _check_list(indices: list[int], format: str) -> tuple[str, tuple[int, ...]]:
    total = NUM_TRANSFORMS[format]
    bad = [i for i in indices if not 0 <= i < total]
    if bad or not indices:
        raise InputError(None, f"{format.upper()} transform indices must be in 0..{total - 1}, got {indices}")
    return "list", tuple(sorted(set(indices)))


def transforms_for_clip(mode: str, values: tuple[int, ...], format: str, clip_key: str, seed: int) -> list[ChannelSwap]:
    """The transforms one clip gets: all, a listed set, or N drawn without replacement from a generator seeded by
    ``seed`` and the clip (so a clip's draw does not depend on the others or on the worker count)."""
    if mode == "count":
        rng = np.random.default_rng([seed, zlib.crc32(clip_key.encode())])
        values = tuple(sorted(rng.choice(NUM_TRANSFORMS[format], size=values[0], replace=False).tolist()))
    return [ChannelSwap(format, i) for i in values]


def _paths(out_root: Path, clip: Clip, format: str, transform: ChannelSwap, video: bool) -> dict[str, Path]:
    name = output_name(clip.name, transform)
    paths = {"audio": out_root / f"{format}_{clip.set}" / clip.split / f"{name}.wav"}
    if clip.metadata is not None:
        paths["csv"] = out_root / f"metadata_{clip.set}" / clip.split / f"{name}.csv"
    if video and clip.video is not None:
        paths["video"] = out_root / f"video_{clip.set}" / clip.split / f"{name}.mp4"
    return paths


def _transform_video(source: Path, targets: list[tuple[ChannelSwap, Path]]) -> None:
    """Decode ``source`` once and write each transform's video, frame by frame, atomically."""
    reader = VideoReader(source)
    width, height = reader.width, reader.height
    if width % 4 and any(t.geometric_map[1] % 4 for t, _ in targets):
        raise VideoFormatError(source, f"width {width} is not divisible by 4, as a 90° roll of the frame needs")
    with contextlib.ExitStack() as stack:  # every file is renamed only if every frame of every file was written
        writers = [(transform, stack.enter_context(VideoWriter(path, reader.fps, (width, height))))
                   for transform, path in targets]
        for _, frames in reader.batches(batch_frames=DECODE_BATCH):
            for frame in frames:  # RGB; the pixel moves do not care about channel order
                for transform, writer in writers:
                    writer.write(transform.frames(frame))


def expand_clip(clip: Clip, *, out_root: Path, format: str, mode: str, values: tuple[int, ...], seed: int,
                video: bool) -> ExpandResult:
    """Write every missing transformed copy of one clip; returns what was written and what was already there."""
    start = time.perf_counter()
    key = f"{clip.split}/{clip.name}"
    audio_path = getattr(clip, format)
    transforms = transforms_for_clip(mode, values, format, key, seed)
    todo = [(t, _paths(out_root, clip, format, t, video)) for t in transforms]
    todo = [(t, paths) for t, paths in todo if not all(p.exists() for p in paths.values())]
    has_video = video and clip.video is not None
    if not todo:
        return ExpandResult(key, 0, len(transforms), has_video, 0.0)
    videos = [(t, paths["video"]) for t, paths in todo if "video" in paths and not paths["video"].exists()]
    if videos:
        _transform_video(clip.video, videos)
    _, sample_rate, _ = wav_info(audio_path)
    audio = read_wav(audio_path, sample_rate=None)
    events = read_reference_csv(clip.metadata) if clip.metadata is not None else None
    for t, paths in todo:
        if not paths["audio"].exists():
            write_wav(paths["audio"], t.audio(audio), sample_rate=sample_rate)
        if events is not None and not paths["csv"].exists():
            write_reference_csv(paths["csv"], t.events(events))
    return ExpandResult(key, len(todo), len(transforms) - len(todo), has_video, time.perf_counter() - start)


def clips_to_expand(dataset_root: str | os.PathLike, format: str, split: str | None = None) -> list[Clip]:
    """The clips of ``dataset_root`` (one split, or all) that have ``format`` audio; the others are logged."""
    if format not in NUM_TRANSFORMS:
        raise ValueError(f"format must be 'foa' or 'mic', got {format!r}")
    index = index_dataset(dataset_root, splits=None if split is None else [split])
    clips = [clip for clip in index.clips if getattr(clip, format) is not None]
    lacking = len(index.clips) - len(clips)
    if lacking:
        log.warning("%s: %d clip(s) have no %s audio and are left out", dataset_root, lacking, format.upper())
    if not clips:
        raise InputError(dataset_root, f"no clip with {format.upper()} audio"
                                       + (f" in split {split}" if split is not None else ""))
    return clips


def expand_dataset(dataset_root: str | os.PathLike, out_root: str | os.PathLike, *, format: str = "foa",
                   transforms: str | int | Sequence[int] = "all", split: str | None = None, seed: int = 0,
                   video: bool = True, workers: int = 1) -> Iterator[ExpandResult]:
    """Expand every clip of ``dataset_root`` (or of one ``split``) into ``out_root``; yields one result per clip.

    transforms: 'all', a count N (N transforms per clip drawn with ``seed``), or a list / comma string of indices
    of ``format``. video: also transform the clips' mp4 files. Output names: see :func:`output_name`.
    """
    out_root, dataset_root = Path(out_root), Path(dataset_root)
    if out_root.resolve() == dataset_root.resolve():
        raise InputError(out_root, "OUT_ROOT must differ from DATASET_ROOT")
    mode, values = parse_transforms(transforms, format)
    clips = clips_to_expand(dataset_root, format, split)
    run = partial(expand_clip, out_root=out_root, format=format, mode=mode, values=values, seed=seed, video=video)
    if workers <= 1:
        yield from map(run, clips)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(run, clips)


__all__ = ["ExpandResult", "output_name", "parse_transforms", "transforms_for_clip", "expand_clip",
           "clips_to_expand", "expand_dataset"]
