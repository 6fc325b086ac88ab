"""The TAU spatial room impulse response database (``TAU-SRIR_DB``, Zenodo record 6408611, ``av-seld download
tau-srir``) as a set of measured rooms: ``rirdata.mat`` names the rooms and gives the DOA of every response
(``rirdata.room(r).rirs(t, h).doa_xyz``, unit vectors), and each room's ``rirs_NN_<name>.mat`` (MATLAB v7.3) holds
``rirs(t, h).foa`` / ``.mic``, [7200 samples × 4 × N] at 24 kHz, per trajectory t and height h.

Distances come from ``measinfo.mat`` (:func:`tau_measinfo`), which says where the sources were: per room (matched to
``rirdata.mat``'s by name) its ``trajectoryType``, the ``distances`` of its trajectories (circular: the horizontal
radius r_t of each, m; a straight line: its start and end points (x, y[, z]), m), the source ``heights`` (m) and the
array's ``micPosition`` (x, y, z, m; the points share its frame). Response k of trajectory t and height h is at
horizontal distance d = r_t (circular), or d where the horizontal ray from the array at the response's DOA azimuth
meets the trajectory's line (straight), and at distance sqrt(d² + (heights_h − mic_z)²). Without ``measinfo.mat``
the distances are unknown (NaN) and nothing is invented.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augment.rooms.responses import ResponseSet, prepare_responses
from av_seld.errors import InputError
from av_seld.geometry import cart_to_sph, wrap_azimuth
from av_seld.timing import SAMPLE_RATE

log = logging.getLogger(__name__)

TAU_INFO_FILE = "rirdata.mat"
TAU_MEASINFO_FILE = "measinfo.mat"
TAU_FOLDER = "TAU-SRIR_DB"


def tau_srir_folder(path: str | os.PathLike) -> Path | None:
    """The TAU-SRIR DB folder at ``path`` (it holds ``rirdata.mat``) or in ``path/TAU-SRIR_DB``; None if neither."""
    path = Path(path)
    for folder in (path, path / TAU_FOLDER):
        if (folder / TAU_INFO_FILE).is_file():
            return folder
    return None


@dataclass(frozen=True)
class TauRoom:
    """One room of the TAU-SRIR DB: its name, its ``rirs_NN_<name>.mat`` and the DOAs (unit x, y, z) of its
    responses per trajectory and height, ``doa_xyz[t][h]`` (N, 3), in the order of the responses in the file;
    ``distance_m[t][h]`` (N,) their source distances in metres, None without ``measinfo.mat``."""

    name: str
    path: Path
    doa_xyz: tuple[tuple[np.ndarray, ...], ...]
    sample_rate: float
    distance_m: tuple[tuple[np.ndarray, ...], ...] | None = None


@dataclass(frozen=True)
class TauGeometry:
    """Where the sources of one room were measured (``measinfo.mat``): ``circular`` trajectories of horizontal radii
    ``paths`` (T,) m, or straight ones from ``paths[t, 0]`` to ``paths[t, 1]`` (T, 2, 2) (x, y) m; source heights
    ``heights_m`` (H,) and the array's position ``mic_m`` (3,) (x, y, z) m."""

    circular: bool
    paths: np.ndarray
    heights_m: np.ndarray
    mic_m: np.ndarray


def _mat_text(value) -> str:
    return str(np.asarray(value).ravel()[0])


def _measinfo_field(element, name: str) -> np.ndarray:
    if name not in (element.dtype.names or ()):
        raise KeyError(f"no field {name!r}")
    return np.asarray(element[name])


def tau_measinfo(folder: str | os.PathLike) -> dict[str, TauGeometry] | None:
    """The geometry of every room ``measinfo.mat`` lists, by room name (see the module docstring); None when the
    folder has no ``measinfo.mat``. Raises :class:`InputError` when it cannot be read as that layout: a struct array
    ``measinfo`` with fields ``room``, ``trajectoryType``, ``distances`` ([1 × T] radii, or [2 × 2|3 × T] start and
    end points), ``heights`` [1 × H] and ``micPosition`` [1 × 3]."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(folder) / TAU_MEASINFO_FILE
    if not path.is_file():
        return None
    out = {}
    try:
        measinfo = loadmat(path)["measinfo"]
        for element in measinfo.ravel():
            name = _mat_text(_measinfo_field(element, "room"))
            kind = _mat_text(_measinfo_field(element, "trajectoryType")).strip().lower()
            distances = np.asarray(_measinfo_field(element, "distances"), dtype=np.float64)
            heights = np.asarray(_measinfo_field(element, "heights"), dtype=np.float64).ravel()
            mic = np.asarray(_measinfo_field(element, "micPosition"), dtype=np.float64).ravel()
            if mic.shape != (3,):
                raise ValueError(f"room {name!r}: micPosition has {mic.size} values; expected x, y, z")
            if kind == "circular":
                paths = distances.ravel()
                if not (paths > 0).all():
                    raise ValueError(f"room {name!r}: circular distances must be positive radii, got {paths}")
            else:
                if distances.ndim == 2:  # MATLAB drops the trailing 1 of a single trajectory's [2 × 3 × 1]
                    distances = distances[:, :, None]
                if distances.ndim != 3 or distances.shape[:2] not in ((2, 2), (2, 3)):
                    raise ValueError(f"room {name!r}: a {kind} trajectory needs distances of [2 x 2|3 x "
                                     f"trajectories] (start and end points), got {list(distances.shape)}")
                paths = distances[:, :2, :].transpose(2, 0, 1)  # (T, start/end, x/y)
                if (np.linalg.norm(paths[:, 1] - paths[:, 0], axis=1) == 0).any():
                    raise ValueError(f"room {name!r}: a {kind} trajectory starts where it ends")
            out[name] = TauGeometry(kind == "circular", paths, heights, mic)
    except (OSError, ValueError, KeyError, IndexError, TypeError, MatReadError, NotImplementedError) as err:
        raise InputError(path, f"cannot be read as the TAU-SRIR DB's measinfo.mat (measinfo(r).room, "
                               f".trajectoryType, .distances, .heights, .micPosition): {err}") from None
    if not out:
        raise InputError(path, "lists no rooms")
    return out


def response_distances(geometry: TauGeometry, doa_xyz: tuple[tuple[np.ndarray, ...], ...],
                       where: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """Source distances (N,) m of the responses of ``doa_xyz[t][h]`` (N, 3) from the room's ``geometry`` (the
    formula of the module docstring). ``where`` names the room in errors."""
    out = []
    for t, row in enumerate(doa_xyz):
        per_height = []
        for h, doa in enumerate(row):
            if not len(doa):
                per_height.append(np.zeros(0))
                continue
            if t >= len(geometry.paths) or h >= len(geometry.heights_m):
                raise InputError(where, f"has {len(geometry.paths)} trajectories and {len(geometry.heights_m)} "
                                        f"heights; {TAU_INFO_FILE} has responses at trajectory {t + 1}, height "
                                        f"{h + 1}")
            if geometry.circular:
                horizontal = np.full(len(doa), geometry.paths[t])
            else:
                # the ray mic + d·u (u: the DOA's horizontal direction) meets the line start + s·(end − start)
                start, end = geometry.paths[t]
                along = end - start
                azimuth = np.arctan2(doa[:, 1], doa[:, 0])
                u = np.stack([np.cos(azimuth), np.sin(azimuth)], axis=1)
                offset = start - geometry.mic_m[:2]
                denominator = u[:, 0] * along[1] - u[:, 1] * along[0]
                parallel = np.abs(denominator) < 1e-9 * np.linalg.norm(along)
                horizontal = (offset[0] * along[1] - offset[1] * along[0]) / np.where(parallel, 1.0, denominator)
                bad = parallel | ~(horizontal > 0)
                if bad.any():  # left unknown (NaN) rather than invented; the rest of the room keeps its distances
                    k = int(np.flatnonzero(bad)[0])
                    log.warning("%s: %d responses of trajectory %d, height %d do not point at the trajectory's line "
                                "from %s to %s (micPosition %s; the first at azimuth %.1f deg): their distances are "
                                "unknown", where, int(bad.sum()), t + 1, h + 1, start.tolist(), end.tolist(),
                                geometry.mic_m.tolist(), np.degrees(azimuth[k]))
                    horizontal = np.where(bad, np.nan, horizontal)
            per_height.append(np.hypot(horizontal, geometry.heights_m[h] - geometry.mic_m[2]))
        out.append(tuple(per_height))
    return tuple(out)


def tau_srir_rooms(folder: str | os.PathLike) -> list[TauRoom]:
    """The rooms that ``rirdata.mat`` lists (``rirdata.room(r).name`` and ``.rirs(t, h).doa_xyz``, ``rirdata.fs``),
    each with its ``rirs_*_<name>.mat`` (checked to exist), in the database's order, and with its responses'
    distances when the folder has ``measinfo.mat`` (which must then describe every room)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    folder = Path(folder)
    info = folder / TAU_INFO_FILE
    try:
        rirdata = loadmat(info)["rirdata"][0, 0]
        rooms = rirdata["room"].ravel()
        rate = float(np.asarray(rirdata["fs"]).ravel()[0]) if "fs" in rirdata.dtype.names else float(SAMPLE_RATE)
        parsed = []
        for room in rooms:
            name = _mat_text(room["name"])
            rirs = room["rirs"]
            doa = tuple(tuple(np.asarray(rirs[t, h]["doa_xyz"], dtype=np.float64).reshape(-1, 3)
                              for h in range(rirs.shape[1])) for t in range(rirs.shape[0]))
            parsed.append((name, doa))
    except (OSError, ValueError, KeyError, IndexError, TypeError, MatReadError, NotImplementedError) as err:
        raise InputError(info, f"cannot be read as the TAU-SRIR DB's rirdata.mat (rirdata.room(r).name, "
                               f".rirs(t, h).doa_xyz): {err}") from None
    if not parsed:
        raise InputError(info, "lists no rooms")
    geometry = tau_measinfo(folder)
    out = []
    for name, doa in parsed:
        files = sorted(folder.glob(f"rirs_*_{name}.mat"))
        if len(files) != 1:
            raise InputError(folder, f"room {name!r} of {TAU_INFO_FILE} needs one rirs_NN_{name}.mat here, found "
                                     f"{len(files)}")
        distances = None
        if geometry is not None:
            measinfo = folder / TAU_MEASINFO_FILE
            if name not in geometry:
                raise InputError(measinfo, f"has no room {name!r} (it lists {', '.join(sorted(geometry))}); "
                                           f"{TAU_INFO_FILE} does")
            distances = response_distances(geometry[name], doa, f"{measinfo} (room {name!r})")
        out.append(TauRoom(name, files[0], doa, rate, distances))
    return out


class TauResponses:
    """The (M, 4, L) responses of one room and format, read from its ``.mat`` file when first asked for and
    prepared as the other measured responses (24 kHz, direct sound at ``MEASURED_PRE_SAMPLES``, float32).

    A room holds up to 6480 responses of 7200 samples per format (0.75 GB as float32), and a scene uses a few of
    them, so only the trajectory/height blocks that hold a used response are read (a block is one array of the
    file). ``rirs(t, h).<fmt>`` is a [samples × 4 × N] array: a MATLAB v7.3 (HDF5) file is read with h5py, an older
    MAT-file with scipy.io.loadmat.
    """

    def __init__(self, room: TauRoom, fmt: str, max_response_s: float):
        self.room, self.fmt = room, fmt
        self.blocks = [(t, h) for t, row in enumerate(room.doa_xyz) for h, doa in enumerate(row) if len(doa)]
        counts = [len(room.doa_xyz[t][h]) for t, h in self.blocks]
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.max_response_s = max_response_s
        self._prepared: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def check(self) -> None:
        """Raise :class:`InputError` unless the room's file has ``rirs.<fmt>`` (HDF5 files only: an older
        MAT-file would have to be read whole)."""
        import h5py

        path = self.room.path
        if not h5py.is_hdf5(path):
            return
        try:
            with h5py.File(path, "r") as f:
                found = "rirs" in f and self.fmt in f["rirs"]
        except OSError as err:
            raise InputError(path, f"cannot be read as a MATLAB v7.3 file: {err}") from None
        if not found:
            raise InputError(path, f"has no rirs.{self.fmt} ({self.fmt.upper()} responses)")

    def _read_block(self, t: int, h: int) -> np.ndarray:
        """(N, 4, samples) float64 of trajectory t, height h."""
        import h5py

        path = self.room.path
        try:
            if h5py.is_hdf5(path):
                with h5py.File(path, "r") as f:
                    field = f["rirs"][self.fmt]
                    # MATLAB stores a t × h struct array's field as an h × t array of references (dimensions
                    # reversed), and each [samples × 4 × N] array as an (N, 4, samples) dataset.
                    item = f[field[h, t]] if field.dtype == h5py.ref_dtype else field
                    block = np.asarray(item[()], dtype=np.float64)
            else:
                from scipy.io import loadmat

                rirs = loadmat(path, variable_names=["rirs"])["rirs"]
                block = np.asarray(rirs[t, h][self.fmt], dtype=np.float64).transpose(2, 1, 0)
        except (OSError, KeyError, ValueError, IndexError) as err:
            raise InputError(path, f"cannot read rirs({t + 1}, {h + 1}).{self.fmt}: {err}") from None
        expected = len(self.room.doa_xyz[t][h])
        if block.ndim != 3 or block.shape[:2] != (expected, 4):
            raise InputError(path, f"rirs({t + 1}, {h + 1}).{self.fmt} has shape {block.shape[::-1]} (MATLAB "
                                   f"order); expected [samples x 4 x {expected}] as its DOAs in {TAU_INFO_FILE}")
        return block

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if index not in self._prepared:
            b = int(np.searchsorted(self.starts, index, side="right")) - 1
            block = self._read_block(*self.blocks[b])
            keep = min(self.max_response_s, block.shape[2] / self.room.sample_rate)
            prepared = prepare_responses(block, self.room.sample_rate, keep)
            for k, response in enumerate(prepared):
                self._prepared[int(self.starts[b]) + k] = response
        return self._prepared[index]


def read_tau_srir(folder: str | os.PathLike, fmt: str, room: int = 0, max_response_s: float = 2.0) -> ResponseSet:
    """The ``fmt`` responses of room number ``room`` (0-based, in ``rirdata.mat``'s order) of the TAU-SRIR DB.

    Directions come from ``doa_xyz`` (unit vectors, x front, y left, z up: the axes of docs/conventions.md);
    distances (m) from ``measinfo.mat`` (see the module docstring), NaN when the folder has none. FOA is ACN/SN3D
    (W, Y, Z, X) and MIC M1..M4, the formats of STARSS23. Responses are read lazily (:class:`TauResponses`).
    """
    rooms = tau_srir_rooms(folder)
    if not 0 <= room < len(rooms):
        raise InputError(folder, f"has {len(rooms)} rooms; room {room} asked for")
    tau = rooms[room]
    doa = np.concatenate([d for row in tau.doa_xyz for d in row if len(d)])
    az, el = cart_to_sph(doa)
    distance = np.full(len(doa), np.nan) if tau.distance_m is None else np.concatenate(
        [d for row in tau.distance_m for d in row if len(d)])
    responses = TauResponses(tau, fmt, max_response_s)
    responses.check()
    return ResponseSet(fmt, responses, wrap_azimuth(np.asarray(az, float)),
                       np.asarray(el, dtype=np.float64), distance, f"{tau.path} ({tau.name})")
