"""The TAU spatial room impulse response database (``TAU-SRIR_DB``, Zenodo record 6408611, ``av-seld download
tau-srir``) as a set of measured rooms: ``rirdata.mat`` names the rooms and gives the DOA of every response
(``rirdata.room(r).rirs(t, h).doa_xyz``, unit vectors), and each room's ``rirs_NN_<name>.mat`` (MATLAB v7.3) holds
``rirs(t, h).foa`` / ``.mic``, [7200 samples × 4 × N] at 24 kHz, per trajectory t and height h.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augment.rooms.responses import ResponseSet, prepare_responses
from av_seld.errors import InputError
from av_seld.geometry import cart_to_sph, wrap_azimuth
from av_seld.timing import SAMPLE_RATE

TAU_INFO_FILE = "rirdata.mat"
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
    responses per trajectory and height, ``doa_xyz[t][h]`` (N, 3), in the order of the responses in the file."""

    name: str
    path: Path
    doa_xyz: tuple[tuple[np.ndarray, ...], ...]
    sample_rate: float


def _mat_text(value) -> str:
    return str(np.asarray(value).ravel()[0])


def tau_srir_rooms(folder: str | os.PathLike) -> list[TauRoom]:
    """The rooms that ``rirdata.mat`` lists (``rirdata.room(r).name`` and ``.rirs(t, h).doa_xyz``, ``rirdata.fs``),
    each with its ``rirs_*_<name>.mat`` (checked to exist), in the database's order."""
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
    out = []
    for name, doa in parsed:
        files = sorted(folder.glob(f"rirs_*_{name}.mat"))
        if len(files) != 1:
            raise InputError(folder, f"room {name!r} of {TAU_INFO_FILE} needs one rirs_NN_{name}.mat here, found "
                                     f"{len(files)}")
        out.append(TauRoom(name, files[0], doa, rate))
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
    distances are not given per response (NaN). FOA is ACN/SN3D (W, Y, Z, X) and MIC M1..M4, the formats of
    STARSS23. Responses are read lazily (:class:`TauResponses`).
    """
    rooms = tau_srir_rooms(folder)
    if not 0 <= room < len(rooms):
        raise InputError(folder, f"has {len(rooms)} rooms; room {room} asked for")
    tau = rooms[room]
    doa = np.concatenate([d for row in tau.doa_xyz for d in row if len(d)])
    az, el = cart_to_sph(doa)
    responses = TauResponses(tau, fmt, max_response_s)
    responses.check()
    return ResponseSet(fmt, responses, wrap_azimuth(np.asarray(az, float)),
                       np.asarray(el, dtype=np.float64), np.full(len(doa), np.nan), f"{tau.path} ({tau.name})")
