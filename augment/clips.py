"""Mono source clips by class: a user's folder or CSV manifest, or the built-in procedural sound bank.

A folder holds ``<root>/<class name or index>/*.wav`` (any sample rate; resampled to 24 kHz; multichannel clips
are downmixed with a warning); a ``distractors`` folder beside them (sounds of none of the classes) is not read
here. A manifest is a CSV of ``path,class`` rows (class as index or name; relative paths are relative to the
manifest). Clips are read lazily and cached per process.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from av_seld.classes import CLASS_NAMES
from av_seld.errors import InputError
from av_seld.timing import SAMPLE_RATE
from av_seld.utils.atomic import is_listed

log = logging.getLogger(__name__)

_AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}


def class_index(label: str, where: str | os.PathLike) -> int:
    """Class index from an index (``"3"``) or a name (``"telephone"``, ``"door_open_close"``), case-insensitive."""
    text = label.strip()
    if text.isdigit() and int(text) < len(CLASS_NAMES):
        return int(text)
    key = text.lower().replace("_", " ").replace("-", " ")
    for i, name in enumerate(CLASS_NAMES):
        if key == name or key == name.replace("/", " "):
            return i
    raise InputError(where, f"unknown class {label!r}; use 0..12 or one of: {', '.join(CLASS_NAMES)}")


@functools.lru_cache(maxsize=256)
def load_mono(path: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A clip as float32 mono at ``sample_rate`` (multichannel clips are averaged, with a warning)."""
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise InputError(path, f"cannot be read as audio: {err}") from None
    if audio.shape[0] == 0:
        raise InputError(path, "clip has no samples")
    if audio.shape[1] > 1:
        log.warning("%s: %d channels downmixed to mono", path, audio.shape[1])
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        g = gcd(int(rate), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(rate) // g).astype(np.float32)
    return mono


class ClipBank:
    """Source clips per class. ``clips[c]`` is a list of file paths for class ``c``."""

    def __init__(self, clips: dict[int, list[Path]], origin: str):
        self.clips = {c: sorted(paths) for c, paths in clips.items() if paths}
        self.origin = origin

    @classmethod
    def from_folder(cls, root: str | os.PathLike) -> "ClipBank":
        root = Path(root)
        if not root.is_dir():
            raise InputError(root, "clip folder not found")
        clips: dict[int, list[Path]] = {}
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and is_listed(p)):
            if sub.name == "distractors":  # sounds of none of the classes, beside the class folders of a bank
                continue
            c = class_index(sub.name, sub)
            clips.setdefault(c, []).extend(p for p in sub.iterdir()
                                           if p.suffix.lower() in _AUDIO_SUFFIXES and is_listed(p))
        return cls(clips, str(root))

    @classmethod
    def from_manifest(cls, path: str | os.PathLike) -> "ClipBank":
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "clip manifest not found")
        clips: dict[int, list[Path]] = {}
        with open(path, newline="", encoding="utf-8") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) != 2:
                    raise InputError(path, f"expected 2 columns (path, class), found {len(row)}", line=line)
                if line == 1 and row[0].strip().lower() == "path":
                    continue  # header
                clip = Path(row[0].strip())
                clip = clip if clip.is_absolute() else path.parent / clip
                if not clip.is_file():
                    raise InputError(path, f"clip {clip} not found", line=line)
                clips.setdefault(class_index(row[1], f"{path}:{line}"), []).append(clip)
        return cls(clips, str(path))

    @classmethod
    def open(cls, source: str | os.PathLike) -> "ClipBank":
        """A folder or a ``.csv`` manifest."""
        return cls.from_manifest(source) if str(source).lower().endswith(".csv") else cls.from_folder(source)

    def classes(self) -> list[int]:
        return sorted(self.clips)

    def missing_classes(self, wanted: list[int]) -> list[int]:
        return [c for c in wanted if c not in self.clips]

    def draw(self, class_index: int, duration_s: float, rng: np.random.Generator,
             sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """A random excerpt of up to ``duration_s`` from a random clip of the class (shorter when the clip is)."""
        paths = self.clips[class_index]
        return _excerpt(load_mono(str(paths[int(rng.integers(len(paths)))]), sample_rate), duration_s, rng, sample_rate)


class SoundFiles:
    """Unlabelled mono sounds (e.g. interferers that are none of the classes): every audio file under a folder."""

    def __init__(self, paths: list[Path], origin: str):
        self.paths = sorted(paths)
        self.origin = origin

    @classmethod
    def from_folder(cls, root: str | os.PathLike) -> "SoundFiles":
        """All ``.wav``/``.flac``/``.ogg`` files under ``root``, at any depth; raises when there are none."""
        root = Path(root)
        if not root.is_dir():
            raise InputError(root, "sound folder not found")
        paths = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _AUDIO_SUFFIXES]
        if not paths:
            raise InputError(root, f"no audio files ({', '.join(sorted(_AUDIO_SUFFIXES))}) in the folder")
        return cls(paths, str(root))

    def draw(self, duration_s: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """A random excerpt of up to ``duration_s`` from a random file, as :meth:`ClipBank.draw`."""
        path = self.paths[int(rng.integers(len(self.paths)))]
        return _excerpt(load_mono(str(path), sample_rate), duration_s, rng, sample_rate)


def _excerpt(audio: np.ndarray, duration_s: float, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A random stretch of up to ``duration_s`` of ``audio`` (all of it when shorter), normalised."""
    want = max(1, int(round(duration_s * sample_rate)))
    if len(audio) > want:
        start = int(rng.integers(0, len(audio) - want + 1))
        audio = audio[start:start + want]
    return _normalise(audio)


def _normalise(audio: np.ndarray, target_dbfs: float = -20.0) -> np.ndarray:
    """Scale to ``target_dbfs`` RMS (silent clips stay silent) and apply 5 ms fades so events start without clicks."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    out = audio * (10 ** (target_dbfs / 20) / rms) if rms > 1e-8 else audio.copy()
    fade = min(len(out) // 2, int(0.005 * SAMPLE_RATE))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        out[:fade] *= ramp
        out[-fade:] *= ramp[::-1]
    return np.clip(out, -1, 1).astype(np.float32)
