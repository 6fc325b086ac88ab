"""Write a STARSS23-format dataset whose clips follow real reference timelines (``av-seld synth-audio --trajectories``).

Each clip renders one *window* of a reference CSV (``augment.trajectories``): its events' onsets, offsets, classes,
overlaps and moving directions exactly as labelled, with sounds drawn per event from the procedural bank or a clip
folder, in the rooms of ``rooms`` (as :mod:`av_seld.data.synth_audio`), plus optional unlabelled interferers. The
clip's reference CSV is the window's rows, frames counted from the window start, in file order, with what was
rendered at each frame (:func:`rendered_labels`): frames, classes and sources of the input; its directions anechoic
and in simulated rooms (rendered exactly), the nearest measured direction each frame was rendered at with measured
responses; and the distance column (DCASE2024) of what was rendered: the input's distances anechoic, else one drawn
per event; in a simulated room the distance each event was rendered at (its labelled median when the input has
distances); with measured responses the measured distance of the response used, none when they do not know it
(``augment.trajectories`` says how).

Windows: without a duration, a whole CSV (up to its last labelled frame) is one window; with ``duration_s`` each CSV
is cut into consecutive full windows of that length (a CSV shorter than that gives one window, silent after its last
label). Clip k (1-based) renders window (k − 1) mod W, from ``default_rng([seed, k])``, so its bytes depend only on
the seed, its number and its window. Resumable like ``synth_audio``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from augment import soundbank
from augment.clips import ClipBank, SoundFiles
from augment.rooms.selection import RoomsSpec, room_for_clip
from augment.scenes import SceneConfig
from augment.trajectories import InterfererConfig, render_timeline, timeline_events
from av_seld.classes import CLASS_NAMES
from av_seld.data.synth_audio import ClipResult, clip_name, clip_paths, clip_room_index, render_clips
from av_seld.errors import InputError
from av_seld.geometry import wrap_azimuth
from av_seld.io.audio import write_wav
from av_seld.io.labels import Events, read_reference_csv, write_reference_csv
from av_seld.timing import LABEL_HOP_S
from av_seld.utils.atomic import is_listed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimelineWindow:
    """Label frames ``start_frame .. start_frame + num_frames − 1`` of the reference CSV at ``path``."""

    path: str
    start_frame: int
    num_frames: int

    @property
    def duration_s(self) -> float:
        return self.num_frames * LABEL_HOP_S


def timeline_files(folder: str | os.PathLike) -> list[Path]:
    """Reference CSVs under ``folder`` (any depth), sorted by path; raises :class:`InputError` when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "trajectories folder not found")
    files = sorted(p for p in folder.rglob("*.csv") if is_listed(p))  # not the temporary files of a write
    if not files:
        raise InputError(folder, "no reference CSV files (frame, class, source, azimuth, elevation) in the folder")
    return files


def windows_of(path: str | os.PathLike, duration_s: float | None) -> list[TimelineWindow]:
    """The windows of one reference CSV (see the module docstring)."""
    events = read_reference_csv(path)
    if len(events) == 0:
        raise InputError(path, "reference CSV has no events: it gives no timeline")
    total = events.num_frames
    if duration_s is None:
        return [TimelineWindow(str(path), 0, total)]
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    length = int(round(duration_s / LABEL_HOP_S))
    if length < 1:
        raise ValueError(f"duration_s must be at least one label frame ({LABEL_HOP_S} s), got {duration_s}")
    starts = range(0, max(1, total - length + 1), length)
    return [TimelineWindow(str(path), start, length) for start in starts]


def timeline_windows(folder: str | os.PathLike, duration_s: float | None = None) -> list[TimelineWindow]:
    """The windows of every reference CSV under ``folder``, in file order then time order."""
    return [w for path in timeline_files(folder) for w in windows_of(path, duration_s)]


def window_events(window: TimelineWindow) -> Events:
    """The rows of ``window``, file order kept, frames counted from the window start."""
    events = read_reference_csv(window.path)
    keep = (events.frame >= window.start_frame) & (events.frame < window.start_frame + window.num_frames)
    cut = events.select(keep)
    return Events(cut.frame - window.start_frame, cut.class_index, cut.source, cut.azimuth_deg, cut.elevation_deg,
                  cut.distance_m)


def rendered_labels(labels: Events, directions: dict[tuple[int, int, int], tuple[float, float]],
                    distances: dict[tuple[int, int, int], float] | None) -> Events:
    """``labels`` (N rows) with the direction and distance rendered at each of their (frame, class, source) keys:
    ``directions`` (key → azimuth, elevation in degrees) and ``distances`` (key → metres; None: no distance column),
    as ``TimelineScene`` gives them. A direction other than the row's own is given in whole degrees, azimuth wrapped
    to [-180, 180) as the random-scene route writes it (179.6 → −180); a row's own direction is kept as it is."""
    keys = list(zip(labels.frame.tolist(), labels.class_index.tolist(), labels.source.tolist()))
    azimuth = np.array([directions[key][0] for key in keys], dtype=np.float64)
    elevation = np.array([directions[key][1] for key in keys], dtype=np.float64)
    moved = (azimuth != labels.azimuth_deg) | (elevation != labels.elevation_deg)
    azimuth[moved] = wrap_azimuth(np.round(azimuth[moved]))
    elevation[moved] = np.round(elevation[moved])
    column = None if distances is None else [distances[key] for key in keys]
    return Events.from_arrays(labels.frame, labels.class_index, labels.source, azimuth, elevation, column)


@functools.lru_cache(maxsize=4)  # one folder scan per worker process, not one per clip
def _sounds(clips: str | None, fallback: tuple[int, ...]):
    """The sound source of the events: the procedural bank, or a clip bank with the bank for ``fallback`` classes."""
    if clips is None:
        return soundbank.synthesize
    bank = ClipBank.open(clips)

    def draw(class_index: int, duration_s: float, rng: np.random.Generator) -> np.ndarray:
        if class_index in fallback:
            return soundbank.synthesize(class_index, duration_s, rng)
        return bank.draw(class_index, duration_s, rng)

    return draw


@functools.lru_cache(maxsize=4)
def _interferers(folder: str | None):
    return None if folder is None else SoundFiles.from_folder(folder).draw


def _render_timeline_clip(number: int, *, windows: tuple[TimelineWindow, ...], out_root: Path, split: str, seed: int,
                          formats: tuple[str, ...], scene: SceneConfig, clips: str | None, fallback: tuple[int, ...],
                          fold: int, room: int, rooms: RoomsSpec | None, interferers: str | None,
                          interferer_config: InterfererConfig) -> ClipResult:
    window = windows[(number - 1) % len(windows)]
    name = clip_name(number, fold, clip_room_index(rooms, number, room))
    paths = clip_paths(out_root, split, name, formats)
    if all(p.exists() for p in paths.values()):
        return ClipResult(name, True, 0, window.duration_s, 0.0)
    start = time.perf_counter()
    labels = window_events(window)
    events = timeline_events(labels.frame, labels.class_index, labels.source, labels.azimuth_deg,
                             labels.elevation_deg, labels.distance_m)
    config = SceneConfig(**{**scene.__dict__, "duration_s": window.duration_s})
    rng = np.random.default_rng([seed, number])
    acoustics = room_for_clip(rooms, number, seed, formats)
    rendered = render_timeline(events, _sounds(clips, fallback), rng, config, formats, room=acoustics,
                               interferers=_interferers(interferers), interferer_config=interferer_config)
    for fmt in formats:
        write_wav(paths[fmt], rendered.audio[fmt])
    write_reference_csv(paths["csv"], rendered_labels(labels, rendered.directions, rendered.distances))
    log.debug("%s: %s frames %d..%d, %d events, %d interferers", name, window.path, window.start_frame,
              window.start_frame + window.num_frames - 1, rendered.num_events, rendered.num_interferers)
    return ClipResult(name, False, rendered.num_events, window.duration_s, time.perf_counter() - start)


def synthesize_timeline_dataset(out_root: str | os.PathLike, *, windows: list[TimelineWindow], split: str,
                                num_clips: int | None = None, seed: int = 0, formats: tuple[str, ...] = ("foa",),
                                scene: SceneConfig = SceneConfig(), clips: str | os.PathLike | None = None,
                                missing_class: str = "skip", fold: int = 1, room: int = 0,
                                rooms: RoomsSpec | None = None,
                                interferers: str | os.PathLike | None = None,
                                interferer_config: InterfererConfig = InterfererConfig(),
                                workers: int = 1) -> Iterator[ClipResult]:
    """Render ``num_clips`` clips (default: one per window) from ``windows`` into ``out_root``; yields one
    :class:`ClipResult` per clip as it finishes.

    Each clip's reference CSV is its window's rows with what was rendered at each frame, so labels match the audio:
    the input's directions anechoic and in simulated rooms; with measured responses (``rooms`` a folder of responses
    or the TAU-SRIR DB) the nearest measured direction each frame was rendered at, and the measured distance when
    the responses know it (else no distance column); see the module docstring.

    ``scene`` gives the gain and SNR ranges (its duration is each window's). ``clips``: a folder or ``path,class``
    CSV of clips, None for the procedural bank; a class the clips lack is drawn from the procedural bank
    (``missing_class='skip'``, logged) or stops the run ('error'); labelled events are never dropped.
    ``rooms``: as :func:`av_seld.data.synth_audio.synthesize_audio_dataset`. ``interferers``: a folder of mono
    sounds of none of the classes, mixed unlabelled (``interferer_config``).
    """
    if missing_class not in ("skip", "error"):
        raise ValueError(f"missing_class must be 'skip' or 'error', got {missing_class!r}")
    if not windows:
        raise ValueError("windows must not be empty")
    num_clips = len(windows) if num_clips is None else num_clips
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    fallback: tuple[int, ...] = ()
    if clips is not None:
        missing = ClipBank.open(clips).missing_classes(list(range(len(CLASS_NAMES))))
        if missing:
            names = ", ".join(f"{c} ({CLASS_NAMES[c]})" for c in missing)
            if missing_class == "error":
                raise InputError(clips, f"no clips for class(es) {names}")
            log.warning("%s: no clips for class(es) %s; their events use the procedural sound bank", clips, names)
            fallback = tuple(missing)
        clips = str(clips)
    if interferers is not None:
        SoundFiles.from_folder(interferers)  # checked now, with the folder's name on the error
        interferers = str(interferers)
    render = partial(_render_timeline_clip, windows=tuple(windows), out_root=Path(out_root), split=split, seed=seed,
                     formats=tuple(formats), scene=scene, clips=clips, fallback=fallback, fold=fold, room=room,
                     rooms=rooms, interferers=interferers, interferer_config=interferer_config)
    yield from render_clips(render, range(1, num_clips + 1), out_root=Path(out_root), split=split, workers=workers)
