"""Write synthetic 360° video that matches a dataset's labels: ``ROOT/video_dev/SPLIT/<clip>.mp4`` for each
``ROOT/metadata_dev/SPLIT/<clip>.csv``.

Each video is equirectangular, ``width × height`` at ``fps``, and as long as the clip: the matching FOA or MIC wav's
length when one exists, else its label frames × 100 ms; it has ``timing.num_video_frames(duration, fps)`` frames
(= round(duration × fps) whenever that product is whole, as for every 100 ms-multiple clip at 10·k fps). Every active
event is a crop of its class pasted at its labelled direction (:mod:`augment.mosaic`, through ``config.projection``)
over a background: a procedural room (default), a panorama image (one file, or a folder of them: one drawn per clip)
or real 360° video (a video file, a folder of them, or a STARSS-style dataset root: one video drawn per clip, starting
at a random frame, looped). A video with labels (a CSV of the same name beside it, or the dataset root's
``metadata_dev``) offers only its event-free frames: those whose 100 ms label frame has no row, played in order with
the events cut out; a video without labels is taken as event-free throughout.

Each clip is rendered from generators seeded with ``[seed, crc32(clip name)]``, so its frames depend only on the
seed and the clip, not on the worker count. Frames stream to :class:`av_seld.io.video.VideoWriter` (H.264 through the
system ffmpeg, else mp4v) under a temporary name that is renamed at the end: memory does not grow with the clip's
length, and a killed run leaves no half-written file.
Resumable: clips whose video exists are skipped, and temporary files a killed run left are removed. One run at a time
per output: a second run into the same root and split is refused while the first holds
``ROOT/.synth-video.SPLIT.lock``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from augment.crops import IMAGE_SUFFIXES, CropBank, procedural_sprite
from augment.mosaic import MosaicConfig, plan_segments, procedural_room, render_mosaic_frames
from augment.visibility import VisibilityConfig, visible_rows
from av_seld import timing
from av_seld.classes import CLASS_NAMES
from av_seld.errors import InputError
from av_seld.io.audio import wav_info
from av_seld.io.dataset import data_files, index_dataset
from av_seld.io.labels import read_reference_csv
from av_seld.io.video import VideoReader, VideoWriter
from av_seld.utils import sizes
from av_seld.utils.atomic import remove_stale_temps
from av_seld.utils.lock import output_lock
from av_seld.utils.text import count

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm"}


@dataclass(frozen=True)
class VideoClipResult:
    name: str
    skipped: bool  # the video existed already
    num_frames: int
    num_events: int
    wall_seconds: float


def parse_size(text: str) -> tuple[int, int]:
    """``"640x320"`` → (640, 320): WxH (:func:`av_seld.utils.sizes.parse_size`), W = 2 H, both even (video codecs)."""
    return tuple(sizes.parse_size(text, equirectangular=True, even=True))


def clip_duration_s(root: Path, split: str, name: str, num_label_frames: int) -> float:
    """Seconds of a clip: its FOA (else MIC) wav's length when one exists, else ``num_label_frames`` × 0.1 s."""
    for folder in ("foa_dev", "mic_dev"):
        wav = root / folder / split / f"{name}.wav"
        if wav.exists():
            _, rate, samples = wav_info(wav)
            return samples / rate
    return num_label_frames * timing.LABEL_HOP_S


# ------------------------------------------------------------------------------------ backgrounds


def _files_with(path: Path, suffixes: set[str]) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix.lower() in suffixes else []
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


@dataclass(frozen=True)
class BackgroundVideo:
    """A 360° video to draw backgrounds from. ``runs``: the (start, stop) frame ranges where its labels have no
    event active; None for a video without labels, whose every frame is taken as event-free."""

    path: Path
    runs: tuple[tuple[int, int], ...] | None = None
    num_frames: int | None = None  # of a labelled video


@dataclass(frozen=True)
class Backgrounds:
    """What ``--background`` offers: labelled or unlabelled videos and panorama images (see the module docstring)."""

    origin: Path
    videos: tuple[BackgroundVideo, ...]
    images: tuple[Path, ...]


def event_free_runs(events, num_frames: int, fps: float) -> tuple[tuple[int, int], ...]:
    """The (start, stop) ranges of video frames ``0 .. num_frames − 1`` whose label frame (the 100 ms frame holding
    the frame's time, :func:`av_seld.timing.seconds_to_label_frame`) has no row in ``events``."""
    label = timing.seconds_to_label_frame(np.arange(num_frames) / fps)
    free = ~np.isin(label, np.unique(events.frame))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], free.astype(np.int8), [0]])))
    return tuple((int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]))


def _labelled_video(video: Path, metadata: Path) -> BackgroundVideo:
    reader = VideoReader(video)
    return BackgroundVideo(video, event_free_runs(read_reference_csv(metadata), len(reader), reader.fps), len(reader))


def scan_backgrounds(background: str | os.PathLike) -> Backgrounds:
    """Find the backgrounds ``background`` names; raise :class:`InputError` when there are none.

    A dataset root (``video_dev`` / ``video_eval`` folders): every clip with both a video and a reference CSV is a
    labelled video; clips without labels are left out (with a warning). A video file or a folder of them: a video
    with ``<name>.csv`` beside it is labelled, one without is taken as event-free as it is. Panorama images are
    taken as they are. Labelled videos offer only their frames without an active event; how many qualify is logged,
    and labelled videos where none does are left out.
    """
    path = Path(background)
    if not path.exists():
        raise InputError(path, "background not found")
    videos: list[BackgroundVideo] = []
    images: list[Path] = []
    if path.is_dir() and any((path / f"video_{set_}").is_dir() for set_ in ("dev", "eval")):
        clips = [clip for clip in index_dataset(path).clips if clip.video is not None]
        unlabelled = [clip.name for clip in clips if clip.metadata is None]
        if unlabelled:
            log.warning("%s: %s without a reference CSV not used as backgrounds (%s%s)", path,
                        count(len(unlabelled), "video"), ", ".join(unlabelled[:3]), ", ..." if len(unlabelled) > 3 else "")
        videos = [_labelled_video(clip.video, clip.metadata) for clip in clips if clip.metadata is not None]
    else:
        for video in _files_with(path, VIDEO_SUFFIXES):
            labels = video.with_suffix(".csv")
            videos.append(_labelled_video(video, labels) if labels.is_file() else BackgroundVideo(video))
        images = _files_with(path, IMAGE_SUFFIXES)
    labelled = [v for v in videos if v.runs is not None]
    if labelled:
        free = sum(b - a for v in labelled for a, b in v.runs)
        total = sum(v.num_frames for v in labelled)
        log.info("background %s: %d of %d frames of %d labelled videos have no event active and qualify", path, free,
                 total, len(labelled))
        empty = [v.path.name for v in labelled if not v.runs]
        if empty:
            log.warning("%s: every frame of %d labelled videos has an event active; they are left out (%s)", path,
                        len(empty), ", ".join(empty[:3]))
        videos = [v for v in videos if v.runs is None or v.runs]
        if not videos and not images:
            raise InputError(path, f"no background frame qualifies: every frame of its {len(labelled)} labelled "
                                   "video(s) has an event active in the reference CSV")
    if not videos and not images:
        raise InputError(path, "not a panorama image or 360° video, nor a folder of them, nor a dataset root with "
                               "video_dev and metadata_dev")
    return Backgrounds(path, tuple(videos), tuple(images))


def check_background(background: str | os.PathLike | None) -> Backgrounds | None:
    """:func:`scan_backgrounds`, or None for the procedural room."""
    return None if background is None else scan_backgrounds(background)


def _read_panorama(path: Path, width: int, height: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR
    if image is None:
        raise InputError(path, "cannot be read as an image")
    if image.shape[:2] != (height, width):
        shrink = image.shape[1] > width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image


def _video_frames(video: BackgroundVideo, width: int, height: int,
                  rng: np.random.Generator) -> Iterator[np.ndarray]:
    """BGR frames of a 360° video, resized to width × height, looping forever: all frames from a random start, or
    for a labelled video its event-free runs in order, from a random frame of them."""
    reader = VideoReader(video.path, width, height, resize="opencv")
    runs = ((0, len(reader)),) if video.runs is None else video.runs
    lengths = np.array([b - a for a, b in runs])
    position = int(rng.integers(lengths.sum()))
    first = int(np.searchsorted(np.cumsum(lengths), position, side="right"))
    offset = position - int(lengths[:first].sum())
    while True:
        for k in range(first, len(runs)):
            start, stop = runs[k]
            for _, batch in reader.batches(start + offset, stop, batch_frames=8):
                yield from (cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) for rgb in batch)
            offset = 0
        first = 0


def backgrounds_for_clip(backgrounds: Backgrounds | None, width: int, height: int,
                         rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless BGR uint8 (height, width, 3) backgrounds for one clip (see the module docstring for the choices)."""
    if backgrounds is None:
        return itertools.repeat(np.ascontiguousarray(procedural_room(width, height, rng)[..., ::-1]))
    videos, images = backgrounds.videos, backgrounds.images
    if videos and (not images or rng.random() < len(videos) / (len(videos) + len(images))):
        return _video_frames(videos[int(rng.integers(len(videos)))], width, height, rng)
    return itertools.repeat(_read_panorama(images[int(rng.integers(len(images)))], width, height))


# ------------------------------------------------------------------------------------ one clip


@functools.lru_cache(maxsize=4)  # one folder scan per worker process
def _crop_bank(spec: str | None) -> CropBank:
    return CropBank.open(spec)


def _draw_with_fallback(bank: CropBank, class_index: int, rng: np.random.Generator) -> np.ndarray:
    if class_index in bank.classes():
        return bank.draw(class_index, rng)
    return procedural_sprite(class_index, rng)  # the dataset-level check has logged which classes fall back


def clip_seed(seed: int, name: str) -> list[int]:
    return [seed, zlib.crc32(name.encode("utf-8"))]


def render_clip_video(metadata_path: Path, out_path: Path, *, root: Path, split: str, crops: str | None,
                      background: Backgrounds | None, width: int, height: int, fps: float, seed: int,
                      config: MosaicConfig = MosaicConfig(),
                      visibility: VisibilityConfig = VisibilityConfig()) -> VideoClipResult:
    """Render one clip's video to ``out_path`` (skipped when it exists). See the module docstring."""
    name = metadata_path.stem
    if out_path.exists():
        return VideoClipResult(name, True, 0, 0, 0.0)
    start = time.perf_counter()
    events = read_reference_csv(metadata_path)
    duration = clip_duration_s(root, split, name, events.num_frames)
    num_frames = timing.num_video_frames(duration, fps) if duration > 0 else 0
    if num_frames == 0:
        raise InputError(metadata_path, "clip has no duration: no events and no wav to take the length from")
    bank = _crop_bank(crops)
    plan_rng, background_rng = (np.random.default_rng([*clip_seed(seed, name), k]) for k in (0, 1))
    rows = (events.frame, events.class_index, events.source, events.azimuth_deg, events.elevation_deg)
    if visibility.changes_anything:  # its own generator: the clean variant's plan stays as it was
        rows = visible_rows(*rows, num_frames=int(math.ceil(duration / timing.LABEL_HOP_S - 1e-6)),
                            rng=np.random.default_rng([*clip_seed(seed, name), 2]), config=visibility)
    segments = plan_segments(*rows, draw_crop=partial(_draw_with_fallback, bank), rng=plan_rng,
                             width=width, config=config, bgr=True)
    frames = render_mosaic_frames(segments, backgrounds_for_clip(background, width, height, background_rng),
                                  num_frames, fps, config)
    with VideoWriter(out_path, fps, (width, height), channels="bgr") as writer:
        for frame in frames:
            writer.write(frame)
    return VideoClipResult(name, False, num_frames, len(segments), time.perf_counter() - start)


# ------------------------------------------------------------------------------------ a dataset


def metadata_files(root: str | os.PathLike, split: str) -> list[Path]:
    """``root/metadata_dev/split/*.csv``, sorted; raises :class:`InputError` when the folder has none."""
    folder = Path(root) / "metadata_dev" / split
    if not folder.is_dir():
        raise InputError(folder, "metadata folder not found")
    files = data_files(folder, ".csv")
    if not files:
        raise InputError(folder, "no reference CSV files")
    return files


def synthesize_video_dataset(root: str | os.PathLike, *, split: str, crops: str | os.PathLike | None = None,
                             background: str | os.PathLike | None = None, width: int = 1920, height: int = 960,
                             fps: float = timing.SYNTHETIC_FPS, seed: int = 0, workers: int = 1,
                             config: MosaicConfig = MosaicConfig(),
                             visibility: VisibilityConfig = VisibilityConfig()) -> Iterator[VideoClipResult]:
    """Render ``root/video_dev/split/<clip>.mp4`` for every reference CSV of ``split``; yields one result per clip.

    ``crops``: None or ``"builtin"`` for procedural sprites, else a folder ``<root>/<class>/*.png|jpg`` (classes it
    lacks use the sprites, with a warning). ``background``: None (procedural room), a panorama image, a 360° video, a
    folder of either, or a labelled dataset root (:func:`scan_backgrounds`: labelled videos give only their frames
    without an active event). ``width × height`` in pixels (width = 2 × height), ``fps`` frames per second.
    ``visibility``: the realistic variant (``augment.visibility``): share of sounding events not drawn, silent
    objects drawn; chosen per clip from ``[seed, crc32(clip name), 2]``. The default draws every event, nothing else.
    """
    parse_size(f"{width}x{height}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    root = Path(root)
    files = metadata_files(root, split)
    crops = None if crops is None or str(crops) == "builtin" else str(crops)
    bank = CropBank.open(crops)
    missing = bank.missing_classes(range(len(CLASS_NAMES)))
    if missing:
        log.warning("%s: no crops for class(es) %s; they use the built-in sprites", crops,
                    ", ".join(f"{c} ({CLASS_NAMES[c]})" for c in missing))
    backgrounds = check_background(background)
    out_dir = root / "video_dev" / split
    render = partial(_render_one, root=root, split=split, out_dir=out_dir, crops=crops,
                     background=backgrounds, width=width, height=height, fps=fps,
                     seed=seed, config=config, visibility=visibility)
    with output_lock(root / f".synth-video.{split}.lock", f"synth-video into {root}, split {split}"):
        remove_stale_temps(out_dir)
        if workers <= 1:
            yield from map(render, files)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(render, files)


def _render_one(metadata_path: Path, *, out_dir: Path, **kwargs) -> VideoClipResult:
    return render_clip_video(metadata_path, out_dir / f"{metadata_path.stem}.mp4", **kwargs)
