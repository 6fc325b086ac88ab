"""Index a dataset root in the STARSS23 layout (docs/conventions.md, "Files and folders").

``<root>/{foa,mic,metadata,video}_{dev,eval}/<split>/<clip>.{wav,wav,csv,mp4}``: any split names, and any of the
folders may be missing. Files lying directly in a top-level folder (no split folder) get the set's name as split.
A clip is one (set, split, name): the same name in two splits is two clips.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from av_seld.errors import InputError
from av_seld.utils.atomic import is_listed
from av_seld.utils.text import count

logger = logging.getLogger(__name__)

SETS = ("dev", "eval")
MODALITY_SUFFIX = {"foa": ".wav", "mic": ".wav", "metadata": ".csv", "video": ".mp4"}
# "fold3_room21_mix001", optionally followed by "_<anything>" (e.g. "_ov1" in older synthetic sets).
_CLIP_NAME = re.compile(r"fold(\d+)_room(\d+)_mix(\d+)(?:_.*)?")


def parse_clip_name(name: str) -> tuple[int | None, int | None, int | None]:
    """``(fold, room, mix)`` from a clip name such as ``fold3_room21_mix001``; ``(None, None, None)`` otherwise."""
    match = _CLIP_NAME.fullmatch(name)
    return tuple(int(g) for g in match.groups()) if match else (None, None, None)


@dataclass(frozen=True)
class Clip:
    """One recording: its files (None where absent) and what its name says."""

    name: str
    split: str
    set: str  # "dev" or "eval"
    fold: int | None
    room: int | None
    mix: int | None
    foa: Path | None = None
    mic: Path | None = None
    metadata: Path | None = None
    video: Path | None = None

    @property
    def has_audio(self) -> bool:
        return self.foa is not None or self.mic is not None


@dataclass
class DatasetIndex:
    root: Path
    clips: list[Clip] = field(default_factory=list)  # sorted by set, split, name

    def splits(self) -> list[str]:
        """Split names present, sorted."""
        return sorted({clip.split for clip in self.clips})

    def select(self, split: str | None = None, fold: int | None = None, set: str | None = None) -> list[Clip]:
        """Clips matching every filter given."""
        return [
            clip
            for clip in self.clips
            if (split is None or clip.split == split)
            and (fold is None or clip.fold == fold)
            and (set is None or clip.set == set)
        ]

    def missing(self) -> dict[str, list[Clip]]:
        """Clips lacking ``"audio"`` (neither FOA nor MIC), ``"metadata"`` or ``"video"``."""
        return {
            "audio": [clip for clip in self.clips if not clip.has_audio],
            "metadata": [clip for clip in self.clips if clip.metadata is None],
            "video": [clip for clip in self.clips if clip.video is None],
        }

    def report(self, max_names: int = 10) -> str:
        """A short summary: clips per split, then which clips lack audio, metadata or video."""
        counts = Counter((clip.set, clip.split) for clip in self.clips)
        lines = [f"{self.root}: {count(len(self.clips), 'clip')} in {count(len(counts), 'split')}"]
        lines += [f"  {split} ({set_}): {count(n, 'clip')}" for (set_, split), n in sorted(counts.items())]
        for what, clips in self.missing().items():
            line = f"missing {what}: {len(clips)}"
            if clips:
                names = ", ".join(f"{clip.split}/{clip.name}" for clip in clips[:max_names])
                line += f" ({names}, ... ({len(clips) - max_names} more))" if len(clips) > max_names else f" ({names})"
            lines.append(line)
        return "\n".join(lines)


def data_files(folder: str | os.PathLike, suffix: str) -> list[Path]:
    """The files of ``folder`` ending in ``suffix`` (any case), sorted, without dot-files: temporary files of an
    unfinished write (:func:`av_seld.utils.atomic.atomic_path`) are dot-files and never data. [] for a missing
    folder."""
    if not Path(folder).is_dir():
        return []
    return sorted(path for path in Path(folder).iterdir()
                  if is_listed(path) and path.suffix.lower() == suffix and path.is_file())


def _files(folder: Path, suffix: str, set_: str):
    """Yield ``(split, name, path)`` for the files with ``suffix`` in ``folder``'s split folders (or in itself)."""
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and is_listed(entry):
            for file in data_files(entry, suffix):
                yield entry.name, file.stem, file
    for file in data_files(folder, suffix):
        yield set_, file.stem, file


def index_dataset(root: str | os.PathLike, splits: list[str] | None = None) -> DatasetIndex:
    """Index every clip under ``root``; ``splits`` keeps only those split names (each must exist)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "dataset root not found")
    folders = {
        (set_, modality): root / f"{modality}_{set_}"
        for set_ in SETS
        for modality in MODALITY_SUFFIX
        if (root / f"{modality}_{set_}").is_dir()
    }
    if not folders:
        expected = ", ".join(f"{modality}_{set_}" for set_ in SETS for modality in MODALITY_SUFFIX)
        raise InputError(root, f"no dataset folders found; expected at least one of {expected}")

    files: dict[tuple[str, str, str], dict[str, Path]] = {}  # (set, split, name) -> {modality: path}
    for (set_, modality), folder in folders.items():
        for split, name, path in _files(folder, MODALITY_SUFFIX[modality], set_):
            files.setdefault((set_, split, name), {})[modality] = path
    if splits is not None:
        unknown = sorted(set(splits) - {split for _, split, _ in files})
        if unknown:
            found = sorted({split for _, split, _ in files})
            raise InputError(root, f"split(s) {', '.join(unknown)} not found; found {', '.join(found) or 'none'}")
        files = {key: value for key, value in files.items() if key[1] in splits}

    clips = [
        Clip(name, split, set_, *parse_clip_name(name), **paths)
        for (set_, split, name), paths in sorted(files.items())
    ]
    logger.debug("%s: indexed %d clips", root, len(clips))
    return DatasetIndex(root=root, clips=clips)
