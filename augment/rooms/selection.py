"""Which room each clip of a synthesised dataset is rendered in.

``open_rooms`` reads the ``rooms`` argument of ``synth-audio`` once: a rooms YAML file gives ``num_rooms`` simulated
shoebox rooms (and scene parameters); a folder of measured responses or a ``.sofa`` file is one room; the TAU-SRIR DB
folder holds several (nine). Clip k (1-based) is rendered in room (k − 1) mod num_rooms; simulated room r is drawn
from ``default_rng([seed, 0, r])``, so every clip of a seed sees the same rooms, whatever the worker count.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from augment.rooms.config import RoomConfig, load_rooms_config
from augment.rooms.images import sample_room
from augment.rooms.measured import MeasuredRoom, measured_room_count, open_response_sets
from augment.rooms.simulated import SimulatedRoom
from augment.rooms.tau_srir import tau_srir_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoomsSpec:
    """Where a dataset's rooms come from: ``config`` for simulated rooms, the measured responses at ``path``
    otherwise. ``scene``: the scene parameters a rooms YAML file sets (``SceneConfig`` keyword arguments)."""

    path: str
    config: RoomConfig | None  # None: measured responses at ``path``
    measured_rooms: int = 1  # rooms at ``path`` (the TAU-SRIR DB has several)
    scene: dict = field(default_factory=dict)

    @property
    def num_rooms(self) -> int:
        return self.config.num_rooms if self.config is not None else self.measured_rooms

    def room_index(self, number: int) -> int:
        """0-based room of clip ``number`` (1-based)."""
        return (number - 1) % self.num_rooms


def open_rooms(path: str | os.PathLike, formats: tuple[str, ...]) -> RoomsSpec:
    """A rooms YAML file (simulated rooms) or measured responses (folder or ``.sofa``), read and checked now."""
    if str(path).lower().endswith((".yaml", ".yml")):
        parsed = load_rooms_config(path)
        return RoomsSpec(str(path), parsed.room, scene=dict(parsed.scene))
    first = _measured_room(str(path), tuple(formats), 0)  # reads and checks the (first room's) responses, here
    if np.isnan(first.distance_m).any():
        why = ("the TAU-SRIR DB's measinfo.mat (source trajectories and heights) was not found, and rirdata.mat "
               "gives each response's direction only (doa_xyz, unit vectors), no distance"
               if tau_srir_folder(path) is not None else "not every response has a distance")
        log.warning("%s: %s, so the references of clips rendered with these responses have no distance column "
                    "(none is invented)", path, why)
    return RoomsSpec(str(path), None, measured_room_count(path))


@functools.lru_cache(maxsize=2)  # responses are read once per worker process
def _measured_room(path: str, formats: tuple[str, ...], room: int) -> MeasuredRoom:
    return MeasuredRoom(open_response_sets(path, formats, room=room))


def room_for_clip(rooms: RoomsSpec | None, number: int, seed: int,
                  formats: tuple[str, ...]) -> SimulatedRoom | MeasuredRoom | None:
    """The acoustics to render clip ``number`` with; None: anechoic."""
    if rooms is None:
        return None
    r = rooms.room_index(number)
    if rooms.config is None:
        return _measured_room(rooms.path, tuple(formats), r)
    shoebox = sample_room(np.random.default_rng([seed, 0, r]), rooms.config)
    return SimulatedRoom(shoebox, rooms.config, seed=[seed, number])
