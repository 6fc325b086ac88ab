"""The real-sound bank builder on a tiny fake package folder: layout, manifest, split by source file, errors."""

from __future__ import annotations

import csv
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from augment.clips import ClipBank
from av_seld.data.sound_sources import (build_sound_bank, class_dir_name, cut_segments, fetch_packages,
                                        load_sound_sources, read_sf2_samples, SegmentParams, split_pool, trim_silence)
from av_seld.errors import InputError
from av_seld.timing import SAMPLE_RATE

REPO = Path(__file__).resolve().parents[1]


def tone(seconds: float, rate: int, freq: float = 440.0, silence_s: float = 0.3) -> np.ndarray:
    """A tone with ``silence_s`` of silence before and after, as (samples, 2) stereo."""
    t = np.arange(int(seconds * rate)) / rate
    pad = np.zeros(int(silence_s * rate))
    mono = np.concatenate([pad, 0.5 * np.sin(2 * np.pi * freq * t), pad])
    return np.stack([mono, 0.5 * mono], axis=1).astype(np.float32)


def write_sf2(path: Path, names: list[str], rate: int = 22050) -> None:
    """A minimal SoundFont 2 file: a smpl chunk and shdr headers, one mono sample per name, each 0.2 s with a loop."""
    length = int(0.2 * rate)
    data, headers = b"", b""
    for i, name in enumerate(names):
        start = len(data) // 2
        wave = (0.5 * np.sin(2 * np.pi * (220 + 110 * i) * np.arange(length) / rate) * 32767).astype("<i2")
        data += wave.tobytes() + bytes(92)  # SoundFont samples are followed by 46 zero samples
        headers += struct.pack("<20sIIIIIBbHH", name.encode(), start, start + length, start + length // 2,
                               start + length - 10, rate, 60, 0, 0, 1)
    headers += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return tag + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")

    sdta = chunk(b"LIST", b"sdta" + chunk(b"smpl", data))
    pdta = chunk(b"LIST", b"pdta" + chunk(b"shdr", headers))
    info = chunk(b"LIST", b"INFO" + chunk(b"ifil", struct.pack("<HH", 2, 1)))
    path.write_bytes(chunk(b"RIFF", b"sfbk" + info + sdta + pdta))


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    root = tmp_path / "packages"
    sounds = root / "fake-sounds" / "usr" / "share" / "sounds"
    sounds.mkdir(parents=True)
    sf.write(sounds / "ring.ogg", tone(1.0, 44100), 44100, format="OGG", subtype="VORBIS")
    sf.write(sounds / "bell.wav", tone(0.5, 48000, 880.0), 48000)
    sf.write(sounds / "song.flac", tone(20.0, 22050, 330.0), 22050)
    (sounds / "voices").mkdir()
    for i in range(12):
        sf.write(sounds / "voices" / f"word{i:02d}.wav", tone(0.4 + 0.05 * i, 16000, 200.0 + 10 * i), 16000)
    sf.write(sounds / "silent.wav", np.zeros((8000, 1), np.float32), 16000)
    game = root / "fake-game" / "data"
    game.mkdir(parents=True)
    buffer = tone(0.6, 22050, 150.0)
    sf.write(game / "engine.wav", buffer, 22050)
    with zipfile.ZipFile(game / "pak0.pk3", "w") as pak:
        pak.write(game / "engine.wav", "sound/engine.wav")
        pak.write(sounds / "bell.wav", "sound/steps/step1.wav")
    write_sf2(root / "fake-game" / "data" / "bank.sf2", ["Piano C4", "Sawtooth Wave", "Telephone"])
    return root


def write_sources(path: Path, sources: str, benchmark_percent: float = 30.0) -> Path:
    path.write_text(f"""
segments: {{segment_s: 8.0, benchmark_percent: {benchmark_percent}}}
packages:
  debian: [fake-sounds, fake-game]
sources:
{sources}
""")
    return path


GOOD_SOURCES = """
  - {package: fake-sounds, glob: usr/share/sounds/ring.ogg, class: telephone, licence: CC0-1.0}
  - {package: fake-sounds, glob: "usr/share/sounds/*.wav", exclude: "**/silent.wav", class: 11, licence: GPL-2+}
  - {package: fake-sounds, glob: "usr/share/sounds/**/*.flac", class: music, licence: CC-BY-SA-3.0}
  - {package: fake-sounds, glob: "usr/share/sounds/voices/*.wav", class: female speech, licence: CC-BY-3.0}
  - {package: fake-game, archive: data/pak0.pk3, glob: "sound/steps/*.wav", class: footsteps, licence: GPL-2+}
  - {package: fake-game, archive: data/pak0.pk3, glob: "sound/engine.wav", class: distractor, licence: GPL-2+}
  - {package: fake-game, glob: data/bank.sf2, kind: sf2, sample_exclude: "(?i)(saw|telephone)",
     class: musical instrument, licence: MIT}
  - {package: fake-game, glob: data/bank.sf2, kind: sf2, sample_include: "^Telephone", class: telephone,
     licence: MIT}
"""


def read_manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_bank_layout_manifest_and_split_by_source_file(packages: Path, tmp_path: Path):
    config = load_sound_sources(write_sources(tmp_path / "sources.yaml", GOOD_SOURCES))
    out = tmp_path / "bank"
    summary = build_sound_bank(config, packages, out)
    rows = read_manifest(out)
    assert rows == summary.rows and len(rows) > 0

    by_class = {row["class"] for row in rows}
    assert by_class == {"telephone", "bell", "music", "female speech", "footsteps", "distractor",
                        "musical instrument"}
    for row in rows:
        path = out / row["path"]
        audio, rate = sf.read(path)
        assert rate == SAMPLE_RATE and audio.ndim == 1
        assert 0.15 <= len(audio) / rate <= 8.0 + 1e-6
        assert abs(float(row["duration_s"]) - len(audio) / rate) < 1e-3
        assert path.parts[-3] == row["pool"] and path.parts[-2] == (
            "distractors" if row["class"] == "distractor" else class_dir_name(int(row["class_index"])))
        assert row["licence"] and row["source_package"] in ("fake-sounds", "fake-game")

    # silence trimmed: the 1 s tone with 0.3 s of silence each side comes out near 1 s (plus 50 ms pads)
    ring = next(r for r in rows if r["original_file"] == "usr/share/sounds/ring.ogg")
    assert 0.95 <= float(ring["duration_s"]) <= 1.2
    # a 20 s file is cut into segments of at most 8 s, all in one pool
    song = [r for r in rows if r["original_file"].endswith("song.flac")]
    assert len(song) == 3 and len({r["pool"] for r in song}) == 1
    # archive members and SoundFont samples are named inside their container; the sawtooth was excluded
    assert {r["original_file"] for r in rows if r["class"] == "footsteps"} == {"data/pak0.pk3:sound/steps/step1.wav"}
    assert {r["original_file"] for r in rows if r["class"] == "musical instrument"} == {"data/bank.sf2#Piano C4"}
    assert "data/bank.sf2#Telephone" in {r["original_file"] for r in rows if r["class"] == "telephone"}
    # the SoundFont note's sustain loop was repeated to at least 1.5 s
    piano = next(r for r in rows if r["class"] == "musical instrument")
    assert float(piano["duration_s"]) >= 1.4
    # the silent file matched no entry (excluded); every source id is in exactly one pool
    pools_of: dict[str, set[str]] = {}
    for row in rows:
        pools_of.setdefault(row["source_id"], set()).add(row["pool"])
    assert all(len(p) == 1 for p in pools_of.values())
    assert {p for ps in pools_of.values() for p in ps} == {"pretrain", "benchmark"}

    # a pool folder is what synth-audio --clips reads; its distractors folder is left aside
    bank = ClipBank.from_folder(out / "pretrain")
    assert set(bank.classes()) <= {3, 11, 8, 0, 6, 9}

    # same input, same bank: rebuilding gives the same manifest and files
    again = build_sound_bank(config, packages, out)
    assert again.rows == rows
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == sorted(r["path"] for r in rows)
    assert "female speech" in summary.format_table()


def test_pool_depends_only_on_the_source_id():
    ids = [f"{i:012x}" for i in range(2000)]
    pools = [split_pool(i, 20.0) for i in ids]
    assert pools == [split_pool(i, 20.0) for i in ids]
    assert 0.15 < pools.count("benchmark") / len(pools) < 0.25
    assert all(split_pool(i, 0.0) == "pretrain" for i in ids[:50])
    assert all(split_pool(i, 100.0) == "benchmark" for i in ids[:50])


def test_silent_file_is_left_out_with_a_warning(packages: Path, tmp_path: Path, caplog):
    sources = "  - {package: fake-sounds, glob: usr/share/sounds/silent.wav, class: bell, licence: GPL-2+}\n"
    summary = build_sound_bank(load_sound_sources(write_sources(tmp_path / "s.yaml", sources)), packages,
                               tmp_path / "bank")
    assert summary.rows == [] and summary.skipped_silent == ["fake-sounds:usr/share/sounds/silent.wav"]
    assert "silent.wav" in caplog.text


def test_unreadable_file_names_the_file(packages: Path, tmp_path: Path):
    broken = packages / "fake-sounds" / "usr" / "share" / "sounds" / "broken.ogg"
    broken.write_bytes(b"OggS not really an ogg file")
    sources = "  - {package: fake-sounds, glob: \"usr/share/sounds/*.ogg\", class: telephone, licence: GPL-2+}\n"
    config = load_sound_sources(write_sources(tmp_path / "s.yaml", sources))
    with pytest.raises(InputError, match=r"broken\.ogg.*cannot be decoded"):
        build_sound_bank(config, packages, tmp_path / "bank")


def test_unknown_class_names_the_file_and_entry(tmp_path: Path):
    sources = ("  - {package: fake-sounds, glob: a.wav, class: telephone, licence: GPL-2+}\n"
               "  - {package: fake-sounds, glob: b.wav, class: vacuum cleaner, licence: GPL-2+}\n")
    path = write_sources(tmp_path / "sources.yaml", sources)
    with pytest.raises(InputError, match=r"sources\.yaml \(sources entry 2\).*unknown class 'vacuum cleaner'"):
        load_sound_sources(path)


@pytest.mark.parametrize("entry, message", [
    ("{package: not-listed, glob: a.wav, class: bell, licence: GPL-2+}", "not listed under 'packages'"),
    ("{package: fake-sounds, glob: a.wav, class: bell}", "missing 'licence'"),
    ("{package: fake-sounds, glob: a.wav, class: bell, licence: x, colour: red}", "unknown keys"),
    ("{package: fake-sounds, glob: a.wav, class: bell, licence: x, kind: mp4}", "kind must be"),
    ("{package: fake-sounds, glob: \"a[12].wav\", class: bell, licence: x}", "sets are not supported"),
])
def test_bad_entries_are_refused(tmp_path: Path, entry: str, message: str):
    with pytest.raises(InputError, match=message):
        load_sound_sources(write_sources(tmp_path / "s.yaml", f"  - {entry}\n"))


def test_missing_package_and_empty_glob_are_named(packages: Path, tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text("packages: {debian: [fake-sounds, not-fetched]}\nsources:\n"
                    "  - {package: not-fetched, glob: a.wav, class: bell, licence: GPL-2+}\n")
    with pytest.raises(InputError, match=r"packages not fetched: not-fetched.*fetch-sounds"):
        build_sound_bank(load_sound_sources(path), packages, tmp_path / "bank")
    sources = "  - {package: fake-sounds, glob: \"nothing/*.wav\", class: bell, licence: GPL-2+}\n"
    with pytest.raises(InputError, match=r"fake-sounds: no file matches \['nothing/\*\.wav'\]"):
        build_sound_bank(load_sound_sources(write_sources(tmp_path / "s2.yaml", sources)), packages,
                         tmp_path / "bank")


def test_trim_and_cut():
    audio = tone(2.0, SAMPLE_RATE, silence_s=1.0)[:, 0]
    trimmed = trim_silence(audio, -45.0)
    assert abs(len(trimmed) / SAMPLE_RATE - 2.1) < 0.05
    assert len(trim_silence(np.zeros(SAMPLE_RATE, np.float32), -45.0)) == 0
    pieces = cut_segments(np.ones(int(19.5 * SAMPLE_RATE), np.float32), SegmentParams(segment_s=8.0), 10)
    assert [start for start, _ in pieces] == [0, 8 * SAMPLE_RATE]  # the 3.5 s tail is under half a segment
    assert len(cut_segments(np.ones(30 * SAMPLE_RATE, np.float32), SegmentParams(segment_s=8.0), 2)) == 2


def test_sf2_reader_keeps_names_rates_and_loops(tmp_path: Path):
    write_sf2(tmp_path / "b.sf2", ["Violin A4", "Flute C5"], rate=32000)
    samples = read_sf2_samples(tmp_path / "b.sf2")
    assert [s.name for s in samples] == ["Violin A4", "Flute C5"]
    assert all(s.rate == 32000 and len(s.audio) == 6400 and s.loop == (3200, 6390) for s in samples)
    (tmp_path / "bad.sf2").write_bytes(b"RIFF\0\0\0\0WAVE")
    with pytest.raises(InputError, match=r"bad\.sf2.*not a SoundFont 2"):
        read_sf2_samples(tmp_path / "bad.sf2")


def test_the_shipped_sources_file_loads():
    config = load_sound_sources(REPO / "configs" / "sounds" / "real_sources.yaml")
    labels = {s.label for s in config.sources}
    assert set(range(13)) <= labels and None in labels  # every class and some distractors
    assert all(s.licence for s in config.sources)


def test_a_file_selected_twice_goes_to_the_first_entry(packages: Path, tmp_path: Path, caplog):
    sources = ("  - {package: fake-sounds, glob: usr/share/sounds/bell.wav, class: bell, licence: GPL-2+}\n"
               "  - {package: fake-sounds, glob: \"usr/share/sounds/*.wav\", exclude: \"**/silent.wav\", class: knock,"
               " licence: GPL-2+}\n")
    summary = build_sound_bank(load_sound_sources(write_sources(tmp_path / "s.yaml", sources)), packages,
                               tmp_path / "bank")
    assert [row["class"] for row in summary.rows] == ["bell"]
    assert "1 of its 1 files were already taken" in caplog.text


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_unpacks_what_apt_get_downloads_then_build_runs_offline(tmp_path: Path, monkeypatch):
    # a real tiny .deb, and a stand-in apt-get on PATH that "downloads" it into the current folder
    tree = tmp_path / "deb" / "usr" / "share" / "sounds"
    tree.mkdir(parents=True)
    sf.write(tree / "bell.wav", tone(0.5, 16000)[:, 0], 16000)
    (tmp_path / "deb" / "DEBIAN").mkdir()
    (tmp_path / "deb" / "DEBIAN" / "control").write_text(
        "Package: fake-bells\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n")
    subprocess.run(["dpkg-deb", "--build", str(tmp_path / "deb"), str(tmp_path / "fake-bells_1.0_all.deb")],
                   check=True, capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\n[ \"$1\" = download ] && cp {tmp_path}/$2_1.0_all.deb .\n")
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    sources = write_sources(tmp_path / "s.yaml", "  - {package: fake-bells, glob: \"usr/share/sounds/*.wav\", "
                                                 "class: bell, licence: CC0-1.0}\n").read_text()
    (tmp_path / "s.yaml").write_text(sources.replace("[fake-sounds, fake-game]", "[fake-bells]"))
    config = load_sound_sources(tmp_path / "s.yaml")
    packages = tmp_path / "packages"
    assert fetch_packages(config, packages) == ["fake-bells"]
    assert (packages / "fake-bells" / "usr" / "share" / "sounds" / "bell.wav").is_file()
    assert fetch_packages(config, packages) == []  # already there
    assert [p.name for p in packages.iterdir()] == ["fake-bells"]  # no partial or download folders left
    summary = build_sound_bank(config, packages, tmp_path / "bank")
    assert [row["class"] for row in summary.rows] == ["bell"]


def test_a_failing_download_names_the_command(tmp_path: Path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'E: Unable to locate package no-such-sounds' >&2\nexit 100\n")
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    path = tmp_path / "s.yaml"
    path.write_text("packages: {debian: [no-such-sounds]}\nsources:\n"
                    "  - {package: no-such-sounds, glob: a.wav, class: bell, licence: GPL-2+}\n")
    with pytest.raises(InputError, match=r"apt-get download no-such-sounds failed: E: Unable to locate"):
        fetch_packages(load_sound_sources(path), tmp_path / "packages")
