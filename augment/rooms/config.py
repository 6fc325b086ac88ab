"""The rooms YAML file: the ranges simulated shoebox rooms are drawn from (:class:`RoomConfig`) and the scene
parameters the file may set (``SCENE_KEYS``), read and checked by :func:`load_rooms_config`."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from augment.scenes import SceneConfig
from av_seld.errors import InputError

# Scene parameters a rooms YAML file may set (the rest of SceneConfig comes from the command line).
SCENE_KEYS = ("event_length_s", "gap_s", "gain_db", "snr_db", "moving_probability", "angular_speed_deg_s",
              "elevation_deg")


@dataclass(frozen=True)
class RoomConfig:
    """Ranges simulated shoebox rooms are drawn from (uniformly); metres, seconds, degrees."""

    num_rooms: int = 8  # distinct rooms, used in turn by consecutive clips
    length_m: tuple[float, float] = (4.0, 10.0)
    width_m: tuple[float, float] = (3.0, 8.0)
    height_m: tuple[float, float] = (2.5, 4.0)
    rt60_s: tuple[float, float] = (0.2, 0.7)
    listener_height_m: tuple[float, float] = (1.2, 1.8)
    source_distance_m: tuple[float, float] = (1.0, 3.0)
    wall_margin_m: float = 0.3  # sources keep at least this far from every wall
    max_response_s: float = 1.0  # responses end at min(RT60, this) after the direct sound
    max_images: int = 60_000  # about this many images per response at most (late ones thinned)
    early_ms: float = 50.0  # reflections this soon after the direct sound are exact (never thinned)
    grid_spacing_deg: float = 10.0  # direction grid of moving sources' early reflections
    crossfade_ms: float = 50.0  # hop of the crossfaded windows of moving sources
    mic_directivity: float = 0.0  # capsule directivity, as spatial.render_mic (0 = omni)

    def __post_init__(self):
        if self.num_rooms < 1:
            raise ValueError(f"num_rooms must be >= 1, got {self.num_rooms}")
        for name in ("length_m", "width_m", "height_m", "rt60_s", "listener_height_m", "source_distance_m"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if self.listener_height_m[1] > self.height_m[0] - 0.5:
            raise ValueError(f"listener_height_m {self.listener_height_m} must stay 0.5 m below the lowest ceiling "
                             f"(height_m {self.height_m})")
        if min(self.length_m[0], self.width_m[0]) < 2.0:
            raise ValueError("rooms must be at least 2 m long and wide")
        for name in ("wall_margin_m", "max_response_s", "early_ms", "grid_spacing_deg", "crossfade_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_images < 100:
            raise ValueError(f"max_images must be >= 100, got {self.max_images}")
        if not 0.0 <= self.mic_directivity <= 1.0:
            raise ValueError(f"mic_directivity must be in [0, 1], got {self.mic_directivity}")


@dataclass(frozen=True)
class RoomsFile:
    """A rooms YAML file: the room ranges and the scene parameters it sets (a subset of ``SCENE_KEYS``)."""

    room: RoomConfig
    scene: dict = field(default_factory=dict)


def _typed(value, kind: str, where: str, path):
    """``value`` from YAML checked against a dataclass field type ('int', 'float', 'tuple[float, float]')."""
    def number(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(path, f"{where} must be a number, got {v!r}")
        return float(v)

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(path, f"{where} must be an integer, got {value!r}")
        return value
    if kind == "float":
        return number(value)
    if kind == "tuple[float, float]":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise InputError(path, f"{where} must be a list [low, high], got {value!r}")
        return (number(value[0]), number(value[1]))
    raise InputError(path, f"{where} cannot be set in a YAML file")


def load_rooms_config(path: str | os.PathLike) -> RoomsFile:
    """Read a rooms YAML file: a ``room:`` mapping of :class:`RoomConfig` fields and an optional ``scene:`` mapping
    of ``SCENE_KEYS``. Unknown keys, wrong types and invalid ranges raise :class:`InputError` naming the key."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "rooms config not found") from None
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise InputError(path, "must be a mapping with a 'room' section (and optionally 'scene')")
    for key in data:
        if key not in ("room", "scene"):
            raise InputError(path, f"unknown key {key!r} (known: room, scene)")
    if not isinstance(data.get("room"), dict):
        raise InputError(path, "'room' must be a mapping of room parameters")
    sections = {}
    for section, cls, allowed in (("room", RoomConfig, None), ("scene", SceneConfig, SCENE_KEYS)):
        values = data.get(section) or {}
        if not isinstance(values, dict):
            raise InputError(path, f"'{section}' must be a mapping")
        types = {f.name: str(f.type) for f in dataclasses.fields(cls) if allowed is None or f.name in allowed}
        for key, value in values.items():
            if key not in types:
                raise InputError(path, f"unknown key '{section}.{key}' (known: {', '.join(types)})")
            values[key] = _typed(value, types[key], f"{section}.{key}", path)
        sections[section] = values
    try:
        room = RoomConfig(**sections["room"])
        SceneConfig(**sections["scene"])  # checks the ranges now, with the file's name on the error
    except ValueError as err:
        raise InputError(path, str(err)) from None
    return RoomsFile(room, sections["scene"])
