"""Reference and prediction CSVs (DCASE / STARSS23 format), as arrays of events.

Reference CSV, no header, one row per active event per 100 ms label frame:
    ``frame, class, source, azimuth, elevation[, distance]``   integers; distance in centimetres.
Prediction CSV:
    ``frame, class, track, azimuth, elevation``                polar, degrees
    ``frame, class, track, x, y, z[, distance]``               Cartesian; distance in metres.

In memory both are an :class:`Events` (one entry per row, file order kept, distance in metres). File order matters:
the official scorer identifies same-class reference tracks by their position within a frame.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from av_seld.classes import NUM_CLASSES
from av_seld.errors import LabelFormatError
from av_seld.geometry import sph_to_cart
from av_seld.utils.atomic import write_text_atomic

CM_PER_M = 100.0


class Event(NamedTuple):
    class_index: int
    source: int
    azimuth_deg: float
    elevation_deg: float
    distance_m: float | None


@dataclass(frozen=True)
class Events:
    """Events of one clip: parallel arrays of length N, one entry per CSV row, in file order.

    ``source`` is the reference's source identity or the prediction's track index. ``distance_m`` is None when the
    file has no distance column.
    """

    frame: np.ndarray  # (N,) int64, label frame index
    class_index: np.ndarray  # (N,) int64
    source: np.ndarray  # (N,) int64
    azimuth_deg: np.ndarray  # (N,) float64, [-180, 180]
    elevation_deg: np.ndarray  # (N,) float64, [-90, 90]
    distance_m: np.ndarray | None = None  # (N,) float64

    def __post_init__(self):
        n = len(self.frame)
        for name in ("class_index", "source", "azimuth_deg", "elevation_deg"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Events.{name} has {len(getattr(self, name))} entries, expected {n}")
        if self.distance_m is not None and len(self.distance_m) != n:
            raise ValueError(f"Events.distance_m has {len(self.distance_m)} entries, expected {n}")

    @classmethod
    def from_arrays(cls, frame, class_index, source, azimuth_deg, elevation_deg, distance_m=None) -> "Events":
        return cls(
            frame=np.asarray(frame, dtype=np.int64).reshape(-1),
            class_index=np.asarray(class_index, dtype=np.int64).reshape(-1),
            source=np.asarray(source, dtype=np.int64).reshape(-1),
            azimuth_deg=np.asarray(azimuth_deg, dtype=np.float64).reshape(-1),
            elevation_deg=np.asarray(elevation_deg, dtype=np.float64).reshape(-1),
            distance_m=None if distance_m is None else np.asarray(distance_m, dtype=np.float64).reshape(-1),
        )

    @classmethod
    def empty(cls, with_distance: bool = False) -> "Events":
        return cls.from_arrays([], [], [], [], [], [] if with_distance else None)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def has_distance(self) -> bool:
        return self.distance_m is not None

    @property
    def num_frames(self) -> int:
        """Frames up to and including the last annotated one (0 for no events)."""
        return int(self.frame.max()) + 1 if len(self) else 0

    def xyz(self) -> np.ndarray:
        """Unit direction vectors, (N, 3)."""
        return sph_to_cart(self.azimuth_deg, self.elevation_deg)

    def select(self, mask) -> "Events":
        """The events where ``mask`` (bool (N,) or index array) is set, order kept."""
        return Events(
            self.frame[mask], self.class_index[mask], self.source[mask], self.azimuth_deg[mask],
            self.elevation_deg[mask], None if self.distance_m is None else self.distance_m[mask],
        )

    def per_frame(self, num_frames: int | None = None) -> list[list[Event]]:
        """Event lists for frames ``0 .. num_frames - 1`` (default: up to the last annotated frame)."""
        n = self.num_frames if num_frames is None else num_frames
        out: list[list[Event]] = [[] for _ in range(n)]
        dist = self.distance_m
        for i in range(len(self)):
            f = int(self.frame[i])
            if f < n:
                out[f].append(Event(int(self.class_index[i]), int(self.source[i]), float(self.azimuth_deg[i]),
                                    float(self.elevation_deg[i]), None if dist is None else float(dist[i])))
        return out

    def to_dense(self, num_frames: int, num_tracks: int = 3, num_classes: int = NUM_CLASSES) -> "DenseLabels":
        """Dense per-frame arrays with up to ``num_tracks`` same-class events per frame.

        Same-class events of a frame fill track slots in order of source id (so a source keeps its slot while the set
        of active sources does not change). Events past ``num_frames`` or beyond ``num_tracks`` are left out and counted
        in ``DenseLabels.num_dropped``.
        """
        activity = np.zeros((num_frames, num_tracks, num_classes), dtype=bool)
        xyz = np.zeros((num_frames, num_tracks, num_classes, 3), dtype=np.float32)
        distance = np.zeros((num_frames, num_tracks, num_classes), dtype=np.float32)
        keep = self.frame < num_frames
        order = np.lexsort((self.source, self.class_index, self.frame))
        order = order[keep[order]]
        f, c = self.frame[order], self.class_index[order]
        # Slot = rank within the (frame, class) group.
        group = f * num_classes + c
        starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1] if len(group) else np.zeros(0, dtype=np.int64)
        slot = np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))
        fits = slot < num_tracks
        idx, f, c, slot = order[fits], f[fits], c[fits], slot[fits]
        activity[f, slot, c] = True
        xyz[f, slot, c] = self.xyz()[idx]
        if self.distance_m is not None:
            distance[f, slot, c] = self.distance_m[idx]
        dropped = int(len(self) - fits.sum())
        return DenseLabels(activity=activity, xyz=xyz, distance_m=distance, num_dropped=dropped)


@dataclass(frozen=True)
class DenseLabels:
    activity: np.ndarray  # (T, K, C) bool
    xyz: np.ndarray  # (T, K, C, 3) float32 unit vectors, 0 where inactive
    distance_m: np.ndarray  # (T, K, C) float32, 0 where inactive or unknown
    num_dropped: int  # events that did not fit (past the last frame or more than K same-class)


def _parse_int(text: str, path, line: int, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise LabelFormatError(path, f"{what} must be an integer, found {text.strip()!r}", line=line) from None


def _parse_float(text: str, path, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LabelFormatError(path, f"{what} must be a number, found {text.strip()!r}", line=line) from None
    if not math.isfinite(value):
        raise LabelFormatError(path, f"{what} must be finite, found {text.strip()!r}", line=line)
    return value


def _read_rows(path) -> list[tuple[int, list[str]]]:
    path = Path(path)
    if not path.is_file():
        raise LabelFormatError(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LabelFormatError(path, f"cannot be read: {err}") from None
    return [(i, line.split(",")) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _check_common(path, line: int, frame: int, cls: int, num_classes: int) -> None:
    if frame < 0:
        raise LabelFormatError(path, f"frame must be >= 0, found {frame}", line=line)
    if not 0 <= cls < num_classes:
        raise LabelFormatError(path, f"class must be in 0..{num_classes - 1}, found {cls}", line=line)


def _check_direction(path, line: int, azimuth: float, elevation: float) -> None:
    if not -180 <= azimuth <= 180:
        raise LabelFormatError(path, f"azimuth must be in [-180, 180] degrees, found {azimuth:g}", line=line)
    if not -90 <= elevation <= 90:
        raise LabelFormatError(path, f"elevation must be in [-90, 90] degrees, found {elevation:g}", line=line)


def read_reference_csv(path: str | os.PathLike, num_classes: int = NUM_CLASSES) -> Events:
    """Read a reference CSV: ``frame, class, source, azimuth, elevation[, distance_cm]``, all integers.

    Distances are returned in metres. Every row must have the same number of columns.
    """
    rows = _read_rows(path)
    width = len(rows[0][1]) if rows else 5
    if width not in (5, 6):
        raise LabelFormatError(path, "expected 5 or 6 columns (frame, class, source, azimuth, elevation"
                               f"[, distance]), found {width}", line=rows[0][0])
    cols: list[list] = [[] for _ in range(width)]
    names = ("frame", "class", "source", "azimuth", "elevation", "distance")
    for line, fields in rows:
        if len(fields) != width:
            raise LabelFormatError(path, f"expected {width} columns like the first row, found {len(fields)}", line=line)
        values = [_parse_int(t, path, line, names[k]) for k, t in enumerate(fields)]
        _check_common(path, line, values[0], values[1], num_classes)
        _check_direction(path, line, values[3], values[4])
        if width == 6 and values[5] < 0:
            raise LabelFormatError(path, f"distance must be >= 0, found {values[5]}", line=line)
        for k in range(width):
            cols[k].append(values[k])
    distance = np.asarray(cols[5], dtype=np.float64) / CM_PER_M if width == 6 else None
    return Events.from_arrays(cols[0], cols[1], cols[2], cols[3], cols[4], distance)


def read_prediction_csv(path: str | os.PathLike, num_classes: int = NUM_CLASSES) -> Events:
    """Read a prediction CSV in polar (5 columns) or Cartesian (6, or 7 with distance in metres) form.

    Cartesian rows are converted to azimuth/elevation as the official scorer does (``atan2``); vectors need not be unit.
    """
    rows = _read_rows(path)
    width = len(rows[0][1]) if rows else 5
    if width not in (5, 6, 7):
        raise LabelFormatError(path, "expected 5 columns (frame, class, track, azimuth, elevation) or 6/7 columns "
                               f"(frame, class, track, x, y, z[, distance]), found {width}", line=rows[0][0])
    frame, cls, track, a, b, c, dist = [], [], [], [], [], [], []
    for line, fields in rows:
        if len(fields) != width:
            raise LabelFormatError(path, f"expected {width} columns like the first row, found {len(fields)}", line=line)
        f = _parse_int(fields[0], path, line, "frame")
        k = _parse_int(fields[1], path, line, "class")
        _check_common(path, line, f, k, num_classes)
        frame.append(f)
        cls.append(k)
        track.append(_parse_int(fields[2], path, line, "track"))
        if width == 5:
            az = _parse_float(fields[3], path, line, "azimuth")
            el = _parse_float(fields[4], path, line, "elevation")
            _check_direction(path, line, az, el)
            a.append(az)
            b.append(el)
        else:
            a.append(_parse_float(fields[3], path, line, "x"))
            b.append(_parse_float(fields[4], path, line, "y"))
            c.append(_parse_float(fields[5], path, line, "z"))
            if width == 7:
                d = _parse_float(fields[6], path, line, "distance")
                if d < 0:
                    raise LabelFormatError(path, f"distance must be >= 0, found {d:g}", line=line)
                dist.append(d)
    if width == 5:
        return Events.from_arrays(frame, cls, track, a, b)
    x, y, z = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    azimuth = np.arctan2(y, x) * 180 / np.pi
    elevation = np.arctan2(z, np.sqrt(x**2 + y**2)) * 180 / np.pi
    return Events.from_arrays(frame, cls, track, azimuth, elevation, dist if width == 7 else None)


def _fmt(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_prediction_rows(events: Events, form: str = "polar") -> str:
    """CSV text of ``events`` as predictions: ``polar`` (5 columns) or ``cartesian`` (7 columns).

    The Cartesian form always carries the distance column (metres; 0 when the events have no distance), as the DCASE
    baselines write it, so that the official scorers read it as Cartesian.
    """
    if form not in ("polar", "cartesian"):
        raise ValueError(f"form must be 'polar' or 'cartesian', got {form!r}")
    lines = []
    xyz = events.xyz() if form == "cartesian" else None
    for i in range(len(events)):
        head = f"{events.frame[i]},{events.class_index[i]},{events.source[i]}"
        if form == "polar":
            lines.append(f"{head},{_fmt(events.azimuth_deg[i], 4)},{_fmt(events.elevation_deg[i], 4)}")
        else:
            d = 0.0 if events.distance_m is None else events.distance_m[i]
            x, y, z = (_fmt(v, 6) for v in xyz[i])
            lines.append(f"{head},{x},{y},{z},{_fmt(d, 4)}")
    return "".join(line + "\n" for line in lines)


def write_prediction_csv(path: str | os.PathLike, events: Events, form: str = "polar") -> None:
    """Write a prediction CSV atomically (temporary file, then rename)."""
    write_text_atomic(path, format_prediction_rows(events, form))


def write_reference_csv(path: str | os.PathLike, events: Events) -> None:
    """Write a reference CSV atomically: integer degrees, and the distance column in centimetres when known."""
    lines = []
    for i in range(len(events)):
        row = [events.frame[i], events.class_index[i], events.source[i],
               int(round(events.azimuth_deg[i])), int(round(events.elevation_deg[i]))]
        if events.distance_m is not None:
            row.append(int(round(events.distance_m[i] * CM_PER_M)))
        lines.append(",".join(str(int(v)) for v in row) + "\n")
    write_text_atomic(path, "".join(lines))
