"""Write a synthetic STARSS23-format dataset: ``OUT_ROOT/{foa_dev,mic_dev,metadata_dev}/SPLIT/foldF_roomR_mixNNN.*``.

Each clip is rendered from its own generator ``default_rng([seed, clip_number])``, so a clip's bytes depend only on
the seed and its number, not on the worker count or on which clips were already there. Resumable: a clip whose files
all exist is skipped; files are written to a temporary name and renamed, the CSV last, so a killed run leaves no
half-written file and the next run redoes only unfinished clips (and removes the temporary files the killed run left).
One run at a time per output: a second run into the same root and split is refused while the first holds
``OUT_ROOT/.synth-audio.SPLIT.lock`` (two runs with different seeds would otherwise mix one clip's files).

Rooms (``rooms=``): the :class:`augment.rooms.RoomsSpec` that ``augment.rooms.open_rooms`` read from a rooms YAML
file or measured responses (one read per run, by the caller: the command line also takes its scene parameters).
Clip k is rendered in room r = (k − 1) mod num_rooms (``augment.rooms.selection``) and named ``room{room + r + 1}``;
without rooms clips are anechoic and named ``room{room}``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from augment import soundbank
from augment.clips import ClipBank
from augment.rooms.selection import RoomsSpec, room_for_clip
from augment.scenes import SceneConfig, render_scene, sample_events
from av_seld.classes import CLASS_NAMES
from av_seld.errors import InputError
from av_seld.io.audio import write_wav
from av_seld.io.labels import Events, write_reference_csv
from av_seld.utils.atomic import remove_stale_temps
from av_seld.utils.lock import output_lock

log = logging.getLogger(__name__)
FOLDERS = {"foa": "foa_dev", "mic": "mic_dev"}


@dataclass(frozen=True)
class ClipResult:
    name: str
    skipped: bool  # already complete from an earlier run
    num_events: int
    audio_seconds: float
    wall_seconds: float


def clip_name(number: int, fold: int, room: int) -> str:
    return f"fold{fold}_room{room}_mix{number:03d}"


def clip_paths(out_root: Path, split: str, name: str, formats: tuple[str, ...]) -> dict[str, Path]:
    paths = {fmt: out_root / FOLDERS[fmt] / split / f"{name}.wav" for fmt in formats}
    paths["csv"] = out_root / "metadata_dev" / split / f"{name}.csv"
    return paths


def clip_room_index(rooms: RoomsSpec | None, number: int, room: int) -> int:
    """The R of ``roomR`` in clip ``number``'s name."""
    return room if rooms is None else room + 1 + rooms.room_index(number)


@functools.lru_cache(maxsize=4)  # one folder scan per worker process, not one per clip
def _sound_source(clips: str | None):
    return soundbank.synthesize if clips is None else ClipBank.open(clips).draw


def _render_clip(number: int, *, out_root: Path, split: str, seed: int, formats: tuple[str, ...], scene: SceneConfig,
                 clips: str | None, fold: int, room: int, rooms: RoomsSpec | None = None) -> ClipResult:
    name = clip_name(number, fold, clip_room_index(rooms, number, room))
    paths = clip_paths(out_root, split, name, formats)
    if all(p.exists() for p in paths.values()):
        return ClipResult(name, True, 0, scene.duration_s, 0.0)
    start = time.perf_counter()
    rng = np.random.default_rng([seed, number])
    events = sample_events(rng, scene)
    acoustics = room_for_clip(rooms, number, seed, formats)
    rendered = render_scene(events, _sound_source(clips), rng, scene, formats, room=acoustics)
    for fmt in formats:
        write_wav(paths[fmt], rendered.audio[fmt])
    write_reference_csv(paths["csv"], scene_events(rendered.rows))
    return ClipResult(name, False, len(events), scene.duration_s, time.perf_counter() - start)


def scene_events(rows) -> Events:
    """The reference events of a rendered scene's rows ``(frame, class, source, azimuth, elevation[, distance_m])``
    (:class:`augment.scenes.Scene`): written as the 6-column reference, distance in centimetres, when the scene has
    distances. A scene without events has none (its CSV is empty)."""
    return Events.from_arrays(*zip(*rows)) if rows else Events.empty()


def synthesize_audio_dataset(out_root: str | os.PathLike, *, num_clips: int, split: str, seed: int = 0,
                             formats: tuple[str, ...] = ("foa",), scene: SceneConfig = SceneConfig(),
                             clips: str | os.PathLike | None = None, missing_class: str = "skip", fold: int = 1,
                             room: int = 0, rooms: RoomsSpec | None = None,
                             workers: int = 1) -> Iterator[ClipResult]:
    """Render ``num_clips`` scenes into ``out_root``; yields one :class:`ClipResult` per clip as it finishes.

    ``clips``: a folder ``<root>/<class>/*.wav`` or a ``path,class`` CSV; None uses the procedural sound bank.
    ``missing_class``: what to do when the clips have no file for a class of ``scene.classes``: 'skip' drops the
    class from the scenes (logged), 'error' raises. ``rooms``: the rooms ``augment.rooms.open_rooms`` read (see the
    module docstring); None renders anechoic scenes.
    """
    if missing_class not in ("skip", "error"):
        raise ValueError(f"missing_class must be 'skip' or 'error', got {missing_class!r}")
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if clips is not None:
        bank = ClipBank.open(clips)
        missing = bank.missing_classes(list(scene.classes))
        if missing:
            names = ", ".join(f"{c} ({CLASS_NAMES[c]})" for c in missing)
            if missing_class == "error" or len(missing) == len(scene.classes):
                raise InputError(clips, f"no clips for class(es) {names}")
            log.warning("%s: no clips for class(es) %s; scenes use the other classes", clips, names)
            scene = SceneConfig(**{**scene.__dict__, "classes": tuple(c for c in scene.classes if c not in missing)})
        clips = str(clips)
    out_root = Path(out_root)
    render = partial(_render_clip, out_root=out_root, split=split, seed=seed, formats=tuple(formats),
                     scene=scene, clips=clips, fold=fold, room=room, rooms=rooms)
    yield from render_clips(render, range(1, num_clips + 1), out_root=out_root, split=split, workers=workers)


def render_clips(render, numbers, *, out_root: Path, split: str, workers: int) -> Iterator[ClipResult]:
    """``render(number)`` for each clip number, in ``workers`` processes, as the one writer of ``out_root``'s
    ``split`` (its lock held, the temporary files of a killed run removed first); yields the results in order."""
    with output_lock(out_root / f".synth-audio.{split}.lock", f"synth-audio into {out_root}, split {split}"):
        for folder in {**FOLDERS, "csv": "metadata_dev"}.values():
            remove_stale_temps(out_root / folder / split)
        if workers <= 1:
            yield from map(render, numbers)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(render, numbers)
