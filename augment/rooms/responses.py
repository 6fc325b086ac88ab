"""Measured 4-channel room responses from CSV folders and SOFA files (:class:`ResponseSet`).

``MeasuredRoom`` renders with user-supplied 4-channel responses measured at known directions: a folder with
``foa.csv`` and/or ``mic.csv`` (rows ``file, azimuth, elevation[, distance]``, degrees and metres, optional header,
wav paths relative to the CSV) or ``foa.sofa`` / ``mic.sofa``; or a single ``.sofa`` file, which is FOA when its
``SOFAConventions`` is ``AmbisonicsDRIR`` and MIC otherwise. SOFA is read with h5py: ``Data.IR`` of shape (M, 4, N)
(or (M, 4, 1, N)), ``Data.SamplingRate``, and ``SourcePosition`` (M or 1, 3) of ``Type`` ``spherical`` (azimuth,
elevation in degrees as in docs/conventions.md, radius in m) or ``cartesian`` (m; ``ListenerPosition`` is subtracted
when it is cartesian too; ``ListenerView`` is not applied, i.e. the listener must face +x). FOA responses must be
ACN/SN3D; MIC responses in M1..M4 order. Responses are resampled to 24 kHz, aligned so that the direct sound (first
sample within 20 dB of the peak) is at sample ``MEASURED_PRE_SAMPLES``, and cut to ``max_response_s``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.signal import resample_poly

from av_seld.errors import InputError
from av_seld.geometry import cart_to_sph, wrap_azimuth
from av_seld.timing import SAMPLE_RATE

MEASURED_PRE_SAMPLES = 16  # a measured response keeps this many samples before its direct sound

@dataclass(frozen=True)
class ResponseSet:
    """Measured responses of one format: (M, 4, L) float32 at 24 kHz, direct sound at ``MEASURED_PRE_SAMPLES``,
    measured at azimuth_deg / elevation_deg (M,) and distance_m (M,) (NaN when unknown). ``responses`` is an array,
    or for the TAU-SRIR DB a :class:`TauResponses` that reads them when indexed (``responses[m]`` is (4, L))."""

    fmt: str
    responses: np.ndarray | Sequence[np.ndarray]
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    distance_m: np.ndarray
    origin: str


def prepare_responses(ir: np.ndarray, rate: float, max_response_s: float) -> np.ndarray:
    """(M, 4, N) at ``rate`` → (M, 4, L) float32 at 24 kHz, direct sound aligned at MEASURED_PRE_SAMPLES."""
    ir = np.asarray(ir, dtype=np.float64)
    if rate != SAMPLE_RATE:
        g = gcd(int(round(rate)), SAMPLE_RATE)
        ir = resample_poly(ir, SAMPLE_RATE // g, int(round(rate)) // g, axis=-1)
    length = int(round(max_response_s * SAMPLE_RATE)) + MEASURED_PRE_SAMPLES
    out = np.zeros((ir.shape[0], 4, length), dtype=np.float32)
    for m, h in enumerate(ir):
        envelope = np.abs(h).max(axis=0)
        onset = int(np.argmax(envelope >= 0.1 * envelope.max()))
        h = h[:, max(0, onset - MEASURED_PRE_SAMPLES):]
        shift = max(0, MEASURED_PRE_SAMPLES - onset)
        take = min(h.shape[1], length - shift)
        out[m, :, shift:shift + take] = h[:, :take]
    return out


def _read_response_wav(path: Path, where: Path, line: int) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if not path.is_file():
        raise InputError(where, f"response file {path} not found", line=line)
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise InputError(path, f"cannot be read as audio: {err}") from None
    if audio.shape[1] != 4:
        raise InputError(path, f"has {audio.shape[1]} channel(s); room responses need 4")
    if audio.shape[0] == 0 or not np.any(audio):
        raise InputError(path, "response is empty or silent")
    return audio.T, rate


def read_response_csv(path: str | os.PathLike, fmt: str, max_response_s: float = 2.0) -> ResponseSet:
    """Responses listed in a CSV of ``file, azimuth, elevation[, distance]`` rows (optional header row)."""
    path = Path(path)
    irs, az, el, dist = [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if line == 1 and row[0].strip().lower() in ("file", "path"):
                continue
            if len(row) not in (3, 4):
                raise InputError(path, f"expected 3 or 4 columns (file, azimuth, elevation[, distance]), "
                                       f"found {len(row)}", line=line)
            try:
                values = [float(v) for v in row[1:]]
            except ValueError:
                raise InputError(path, f"azimuth, elevation and distance must be numbers, got {row[1:]}",
                                 line=line) from None
            if not -90 <= values[1] <= 90:
                raise InputError(path, f"elevation {values[1]} is outside [-90, 90]", line=line)
            wav = Path(row[0].strip())
            audio, rate = _read_response_wav(wav if wav.is_absolute() else path.parent / wav, path, line)
            irs.append(prepare_responses(audio[None], rate, max_response_s)[0])
            az.append(values[0]), el.append(values[1]), dist.append(values[2] if len(values) == 3 else np.nan)
    if not irs:
        raise InputError(path, "lists no responses")
    return ResponseSet(fmt, np.stack(irs), wrap_azimuth(np.array(az)), np.array(el), np.array(dist), str(path))


def _attr(obj, name: str, default=None):
    value = obj.attrs.get(name, default)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        value = value.ravel()[0]
        return value.decode() if isinstance(value, bytes) else str(value)
    return value


def read_sofa(path: str | os.PathLike, fmt: str | None = None, max_response_s: float = 2.0) -> ResponseSet:
    """Responses of a SOFA file (see the module docstring for what is supported). fmt None: from the conventions."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read as SOFA (netCDF4/HDF5): {err}") from None
    with f:
        if fmt is None:
            fmt = "foa" if _attr(f, "SOFAConventions", "") == "AmbisonicsDRIR" else "mic"
        for name in ("Data.IR", "Data.SamplingRate", "SourcePosition"):
            if name not in f:
                raise InputError(path, f"SOFA variable {name} is missing")
        ir = np.asarray(f["Data.IR"][()], dtype=np.float64)
        if ir.ndim == 4 and ir.shape[2] == 1:
            ir = ir[:, :, 0, :]
        if ir.ndim != 3 or ir.shape[1] != 4:
            raise InputError(path, f"Data.IR has shape {ir.shape}; need (M, 4, N) (4 receivers)")
        rates = np.unique(np.asarray(f["Data.SamplingRate"][()], dtype=np.float64).ravel())
        if len(rates) != 1 or rates[0] <= 0:
            raise InputError(path, f"Data.SamplingRate must be one positive value, got {rates}")
        position = np.asarray(f["SourcePosition"][()], dtype=np.float64).reshape(-1, 3)
        kind = str(_attr(f["SourcePosition"], "Type", "spherical")).lower()
        if position.shape[0] not in (1, ir.shape[0]):
            raise InputError(path, f"SourcePosition has {position.shape[0]} rows for {ir.shape[0]} measurements")
        position = np.broadcast_to(position, (ir.shape[0], 3))
        if kind == "cartesian":
            if "ListenerPosition" in f and str(_attr(f["ListenerPosition"], "Type", "cartesian")).lower() \
                    == "cartesian":
                position = position - np.asarray(f["ListenerPosition"][()], dtype=np.float64).reshape(-1, 3)
            az, el = cart_to_sph(position)
            dist = np.linalg.norm(position, axis=1)
        elif kind == "spherical":
            az, el, dist = position[:, 0], position[:, 1], position[:, 2]
        else:
            raise InputError(path, f"SourcePosition Type {kind!r} is not supported (spherical or cartesian)")
    return ResponseSet(fmt, prepare_responses(ir, float(rates[0]), max_response_s), wrap_azimuth(np.asarray(az, float)),
                       np.asarray(el, dtype=np.float64), np.asarray(dist, dtype=np.float64), str(path))
