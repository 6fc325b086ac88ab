"""Build a crop bank from STARSS23-format audio-visual data: perspective crops of the video at steady events.

For each clip with both a reference CSV and a video, a label frame qualifies when its event's direction stays within
``max_motion_deg`` over ``steady_frames`` label frames on each side and no other event is within ``isolation_deg``
(so the crop shows one sound source); per track (class, source) at most one crop every ``min_gap_frames``. The crop
is a perspective view of ``fov_deg`` centred on the labelled direction (:func:`augment.mosaic.extract_perspective`),
``size × size`` pixels, from the video frame that the timing module assigns to the label frame; ``projection``
``"cubemap"`` cuts it from the frame's cubemap instead (:func:`augment.cubemap.extract_cubemap`). Output:
``OUT_DIR/<class index>/<clip>_f<frame>_s<source>.png`` and ``OUT_DIR/index.csv`` (path, class, clip, frame, azimuth,
elevation, fov), which ``av-seld synth-video --crops OUT_DIR`` reads. Resumable: existing PNGs are not redone.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from augment.crops import INDEX_COLUMNS, INDEX_NAME, write_crop
from augment.cubemap import extract_cubemap
from augment.mosaic import PROJECTIONS
from augment.perspective import extract_perspective
from av_seld import timing
from av_seld.geometry import angular_distance_xyz_deg
from av_seld.io.dataset import index_dataset
from av_seld.io.labels import Events, read_reference_csv
from av_seld.io.video import VideoReader
from av_seld.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropSpot:
    """A label frame whose event is steady and isolated: where to take a crop (directions in degrees)."""

    frame: int
    class_index: int
    source: int
    azimuth_deg: float
    elevation_deg: float


def steady_spots(events: Events, *, steady_frames: int = 3, max_motion_deg: float = 3.0, isolation_deg: float = 30.0,
                 min_gap_frames: int = 20) -> list[CropSpot]:
    """Label frames where an event is steady (±``steady_frames`` frames within ``max_motion_deg`` of it, all active)
    and no other event lies within ``isolation_deg``; at most one per track every ``min_gap_frames``."""
    xyz = events.xyz()
    by_frame: dict[int, list[int]] = {}
    for i, f in enumerate(events.frame.tolist()):
        by_frame.setdefault(f, []).append(i)
    spots: list[CropSpot] = []
    tracks = sorted(set(zip(events.class_index.tolist(), events.source.tolist())))
    for c, s in tracks:
        rows = np.flatnonzero((events.class_index == c) & (events.source == s))
        rows = rows[np.argsort(events.frame[rows], kind="stable")]
        frame_to_row = {int(events.frame[r]): int(r) for r in rows[::-1]}  # first row of a duplicated frame wins
        last = -min_gap_frames
        for f in sorted(frame_to_row):
            if f - last < min_gap_frames:
                continue
            here = frame_to_row[f]
            window = [frame_to_row.get(f + d) for d in range(-steady_frames, steady_frames + 1)]
            if any(r is None for r in window):
                continue
            if np.max(angular_distance_xyz_deg(xyz[window], xyz[here])) > max_motion_deg:
                continue
            others = [r for r in by_frame[f] if r != here]
            if others and np.min(angular_distance_xyz_deg(xyz[others], xyz[here])) < isolation_deg:
                continue
            spots.append(CropSpot(f, c, s, float(events.azimuth_deg[here]), float(events.elevation_deg[here])))
            last = f
    return sorted(spots, key=lambda spot: (spot.frame, spot.class_index, spot.source))


@dataclass(frozen=True)
class ExtractResult:
    clip: str
    num_crops: int  # crops of this clip in the index (written now or earlier)
    num_written: int


def crop_clips(dataset_root: str | os.PathLike, split: str | None = None) -> list:
    """The clips :func:`extract_crops` reads: those (of ``split``, or all) with both metadata and video."""
    index = index_dataset(dataset_root, None if split is None else [split])
    return [clip for clip in index.clips if clip.metadata is not None and clip.video is not None]


def extract_crops(dataset_root: str | os.PathLike, out_dir: str | os.PathLike, *, fov_deg: float = 60.0,
                  size: int = 224, split: str | None = None, steady_frames: int = 3, max_motion_deg: float = 3.0,
                  isolation_deg: float | None = None, min_gap_frames: int = 20,
                  projection: str = "perspective") -> Iterator[ExtractResult]:
    """Extract crops from every clip (of ``split``, or all) that has metadata and video; yields one result per clip
    and writes ``out_dir/index.csv`` when all are done. ``isolation_deg`` defaults to ``fov_deg``; ``projection``
    is ``"perspective"`` or ``"cubemap"``."""
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {projection!r}")
    extract = extract_cubemap if projection == "cubemap" else extract_perspective
    isolation = fov_deg if isolation_deg is None else isolation_deg
    clips = crop_clips(dataset_root, split)
    if not clips:
        log.warning("%s: no clip has both a reference CSV and a video", dataset_root)
    out_dir = Path(out_dir)
    rows: list[dict[str, object]] = []
    for clip in clips:
        spots = steady_spots(read_reference_csv(clip.metadata), steady_frames=steady_frames,
                             max_motion_deg=max_motion_deg, isolation_deg=isolation, min_gap_frames=min_gap_frames)
        written = 0
        todo = []
        for spot in spots:
            relative = Path(str(spot.class_index)) / f"{clip.name}_f{spot.frame:05d}_s{spot.source}.png"
            todo.append((spot, relative, not (out_dir / relative).exists()))
        needed = sorted({spot.frame for spot, _, missing in todo if missing})
        frames = _iter_frames(clip.video, needed) if needed else iter(())
        current: tuple[int, np.ndarray] | None = None
        kept = 0
        for spot, relative, missing in todo:  # in frame order, like ``needed``
            if missing:
                if current is None or current[0] < spot.frame:
                    current = next((item for item in frames if item[0] >= spot.frame), None)
                if current is None or current[0] != spot.frame:
                    continue  # past the end of the video
                crop = extract(current[1], spot.azimuth_deg, spot.elevation_deg, fov_deg, size)
                write_crop(out_dir / relative, crop)
                written += 1
            kept += 1
            rows.append({"path": relative.as_posix(), "class": spot.class_index, "clip": f"{clip.split}/{clip.name}",
                         "frame": spot.frame, "azimuth": f"{spot.azimuth_deg:g}",
                         "elevation": f"{spot.elevation_deg:g}", "fov": f"{fov_deg:g}"})
        yield ExtractResult(clip.name, kept, written)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / INDEX_NAME, text.getvalue())


def _iter_frames(path: Path, label_frames: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """``(label frame, RGB frame (H, W, 3))`` for the sorted ``label_frames`` whose video frame (the timing module's
    choice) lies inside the video; one decoded frame at a time, so memory does not grow with the number of crops."""
    reader = VideoReader(path)
    fps, count = reader.fps, len(reader)
    indices = timing.video_frame_for_label_frame(np.asarray(label_frames), fps)
    outside = int((indices >= count).sum())
    if outside:
        log.warning("%s: %d label frames lie past the video's end (%d frames)", path, outside, count)
    for n, k in zip(label_frames, indices.tolist()):
        if k < count:
            yield n, reader.read([k])[0]
