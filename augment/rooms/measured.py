"""Events rendered with measured responses (:class:`MeasuredRoom`), from a CSV/SOFA folder, a ``.sofa`` file or the
TAU-SRIR DB (:func:`open_response_sets`). An event is rendered with the response of the nearest measured direction,
and that direction is the label; a moving event switches between measured directions with crossfaded windows
(:mod:`augment.rooms.switching`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from augment.rooms.responses import MEASURED_PRE_SAMPLES, ResponseSet, read_response_csv, read_sofa
from augment.rooms.switching import convolve, render_switched
from augment.rooms.tau_srir import read_tau_srir, tau_srir_folder, tau_srir_rooms
from augment.scenes import EventRender
from av_seld.errors import InputError
from av_seld.geometry import sph_to_cart
from av_seld.timing import SAMPLE_RATE

def measured_room_count(path: str | os.PathLike) -> int:
    """How many rooms the measured responses at ``path`` hold: the TAU-SRIR DB's rooms, else 1."""
    folder = tau_srir_folder(path)
    return 1 if folder is None else len(tau_srir_rooms(folder))


def open_response_sets(path: str | os.PathLike, formats: tuple[str, ...],
                       max_response_s: float = 2.0, room: int = 0) -> dict[str, ResponseSet]:
    """The measured responses of ``formats`` from a folder (``foa.csv``/``mic.csv``/``foa.sofa``/``mic.sofa``, or
    the TAU-SRIR DB, whose room number ``room`` is read) or one ``.sofa`` file; raises :class:`InputError` when a
    format is not there."""
    path = Path(path)
    sets = {}
    tau = tau_srir_folder(path) if path.is_dir() else None
    if room != 0 and tau is None:
        raise InputError(path, f"holds one room; room {room} asked for")
    if tau is not None:
        sets = {fmt: read_tau_srir(tau, fmt, room, max_response_s) for fmt in formats}
    elif path.is_file() and path.suffix.lower() == ".sofa":
        one = read_sofa(path, None, max_response_s)
        sets[one.fmt] = one
    elif path.is_dir():
        for fmt in formats:
            if (path / f"{fmt}.csv").is_file():
                sets[fmt] = read_response_csv(path / f"{fmt}.csv", fmt, max_response_s)
            elif (path / f"{fmt}.sofa").is_file():
                sets[fmt] = read_sofa(path / f"{fmt}.sofa", fmt, max_response_s)
    else:
        raise InputError(path, "room responses not found (a folder with foa.csv/mic.csv/foa.sofa/mic.sofa, "
                               "the TAU-SRIR DB folder, or a .sofa file)")
    missing = [fmt for fmt in formats if fmt not in sets]
    if missing:
        raise InputError(path, f"no {'/'.join(missing).upper()} responses here (found: "
                               f"{', '.join(sets) or 'none'}; a folder needs {missing[0]}.csv or {missing[0]}.sofa)")
    return {fmt: sets[fmt] for fmt in formats}


class MeasuredRoom:
    """Renders events with measured responses (one set per format, measured at the same directions)."""

    def __init__(self, sets: dict[str, ResponseSet], crossfade_ms: float = 50.0):
        if not sets:
            raise ValueError("at least one response set is needed")
        self.sets = sets
        self.crossfade_ms = crossfade_ms
        first = next(iter(sets.values()))
        self.azimuth_deg, self.elevation_deg = first.azimuth_deg, first.elevation_deg
        self.distance_m = first.distance_m  # NaN where unknown: such events get no distance label
        self.grid = sph_to_cart(self.azimuth_deg, self.elevation_deg)  # (M, 3)
        self.index = {}  # format → index of each grid direction in that format's set
        for fmt, s in sets.items():
            if np.array_equal(s.azimuth_deg, self.azimuth_deg) and np.array_equal(s.elevation_deg,
                                                                                  self.elevation_deg):
                self.index[fmt] = np.arange(len(self.grid))  # the usual case; (M, M) products are large for M ~ 6000
                continue
            other = sph_to_cart(s.azimuth_deg, s.elevation_deg)
            match = np.argmax(self.grid @ other.T, axis=1)
            error = np.degrees(np.arccos(np.clip(np.sum(self.grid * other[match], axis=1), -1, 1)))
            if len(s.azimuth_deg) != len(self.grid) or error.max() > 1.0:
                raise InputError(s.origin, f"{fmt.upper()} responses are not measured at the same directions as "
                                           f"{first.origin}")
            self.index[fmt] = match

    def render_event(self, signal, azimuth_deg, elevation_deg, rng: np.random.Generator,
                     formats: tuple[str, ...], distance_m: float | None = None) -> EventRender:
        """An event rendered with the response(s) of the nearest measured direction(s); no randomness used. The
        distance is the one measured there (``distance_m`` cannot be honoured), None when unknown."""
        del rng, distance_m
        signal = np.asarray(signal, dtype=np.float32)
        n = len(signal)
        az = np.broadcast_to(np.asarray(azimuth_deg, dtype=np.float64), (n,))
        el = np.broadcast_to(np.asarray(elevation_deg, dtype=np.float64), (n,))
        audio = {}
        if np.ndim(azimuth_deg) == 0:
            g = int(np.argmax(self.grid @ sph_to_cart(float(azimuth_deg), float(elevation_deg))))
            for fmt in formats:
                audio[fmt] = convolve(signal, self.sets[fmt].responses[self.index[fmt][g]])
            rendered = np.full(n, g)
        else:
            hop = max(1, int(round(self.crossfade_ms / 1000 * SAMPLE_RATE)))
            centres = np.minimum(np.arange(n // hop + 2) * hop, n - 1)
            nearest = np.argmax(sph_to_cart(az[centres], el[centres]) @ self.grid.T, axis=1)
            for fmt in formats:
                # one response at a time: responses may be read lazily (TauResponses)
                audio[fmt] = render_switched(signal, nearest, lambda g, fmt=fmt: self.sets[fmt].responses[
                    self.index[fmt][g]], hop)
            rendered = nearest[np.minimum((np.arange(n) + hop // 2) // hop, len(nearest) - 1)]  # nearest centre
        distance = self.distance_m[rendered]
        return EventRender(audio, MEASURED_PRE_SAMPLES, self.azimuth_deg[rendered], self.elevation_deg[rendered],
                           None if np.isnan(distance).any() else distance)
