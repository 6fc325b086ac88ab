"""Offline channel-swap expansion (av_seld.data.acs_expand, ``av-seld acs``) on a tiny generated dataset."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from augment import spatial
from augment.acs import ChannelSwap
from av_seld.cli import main
from av_seld.data.acs_expand import expand_dataset, output_name, parse_transforms
from av_seld.errors import InputError
from av_seld.geometry import angular_distance_deg, equirect_pixel
from av_seld.io.audio import read_wav, write_wav
from av_seld.io.dataset import index_dataset
from av_seld.io.labels import Events, read_reference_csv, write_reference_csv

SPLIT = "dev-train-x"
WIDTH, HEIGHT, FPS, NUM_FRAMES = 64, 32, 30.0, 6
AZIMUTH, ELEVATION = 30, 20


def _marker_video(path, azimuth, elevation):
    """A black video with a white 6×6 block centred on the direction's pixel (big enough to survive mp4v)."""
    i, j = equirect_pixel(azimuth, elevation, WIDTH, HEIGHT)
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[j - 3:j + 3, i - 3:i + 3] = 255
    frame[:2, :8] = (0, 0, 255)  # an asymmetric patch: mirrors and flips show in the pixels, not only the marker
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for _ in range(NUM_FRAMES):
        writer.write(frame)
    writer.release()


def _read_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (result := capture.read())[0]:
        frames.append(result[1])
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return np.stack(frames), fps


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "in"
    noise = np.random.default_rng(0).standard_normal(4800) * 0.2
    events = Events.from_arrays([0, 1, 1], [3, 3, 8], [0, 0, 1], [AZIMUTH, AZIMUTH, -150], [ELEVATION, ELEVATION, -40])
    for name in ("fold1_room1_mix001", "fold1_room1_mix002"):
        write_wav(root / "foa_dev" / SPLIT / f"{name}.wav", spatial.render_foa(noise, AZIMUTH, ELEVATION))
        write_wav(root / "mic_dev" / SPLIT / f"{name}.wav", spatial.render_mic(noise, AZIMUTH, ELEVATION))
        write_reference_csv(root / "metadata_dev" / SPLIT / f"{name}.csv", events)
    (root / "video_dev" / SPLIT).mkdir(parents=True)
    _marker_video(root / "video_dev" / SPLIT / "fold1_room1_mix001.mp4", AZIMUTH, ELEVATION)  # mix002: no video
    return root


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_all_foa_transforms_of_audio_labels_and_video(dataset, tmp_path):
    out = tmp_path / "out"
    results = list(expand_dataset(dataset, out, format="foa"))
    assert [(r.clip, r.written, r.skipped, r.has_video) for r in results] == [
        (f"{SPLIT}/fold1_room1_mix001", 16, 0, True), (f"{SPLIT}/fold1_room1_mix002", 16, 0, False)]
    files = _files(out)
    assert len(files) == 2 * 16 * 2 + 16 and not any(f.split("/")[-1].startswith(".") for f in files)
    original = read_wav(dataset / "foa_dev" / SPLIT / "fold1_room1_mix001.wav")
    labels = read_reference_csv(dataset / "metadata_dev" / SPLIT / "fold1_room1_mix001.csv")
    source_frames, source_fps = _read_frames(dataset / "video_dev" / SPLIT / "fold1_room1_mix001.mp4")
    for t in ChannelSwap.all("foa"):
        name = output_name("fold1_room1_mix001", t)
        assert name == f"fold1_room1_mix001_acs{t.index:02d}"  # FOA: map number = index
        np.testing.assert_array_equal(read_wav(out / "foa_dev" / SPLIT / f"{name}.wav"), t.audio(original))
        moved = read_reference_csv(out / "metadata_dev" / SPLIT / f"{name}.csv")
        np.testing.assert_array_equal(moved.azimuth_deg, np.round(t.events(labels).azimuth_deg))
        np.testing.assert_array_equal(moved.elevation_deg, t.events(labels).elevation_deg)
        frames, fps = _read_frames(out / "video_dev" / SPLIT / f"{name}.mp4")
        assert frames.shape == source_frames.shape and fps == pytest.approx(source_fps)
        expected = t.frames(source_frames)
        assert np.mean(np.abs(frames.astype(int) - expected)) < 2.0  # exact moves, then a lossy re-encode
        bright = frames[0, ..., 1] > 128  # the white marker (the red patch has no green)
        rows, cols = np.nonzero(bright)
        i, j = equirect_pixel(*t.directions(AZIMUTH, ELEVATION), WIDTH, HEIGHT)
        assert abs(np.median(cols) + 0.5 - i) <= 1 and abs(np.median(rows) + 0.5 - j) <= 1
    index = index_dataset(out)
    assert len(index.clips) == 32 and {c.fold for c in index.clips} == {1}


def test_rerun_skips_and_a_removed_file_is_redone(dataset, tmp_path):
    out = tmp_path / "out"
    list(expand_dataset(dataset, out, format="mic", transforms=3, seed=7, video=False))
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert len(first) == 2 * 3 * 2
    again = list(expand_dataset(dataset, out, format="mic", transforms=3, seed=7, video=False))
    assert [(r.written, r.skipped) for r in again] == [(0, 3), (0, 3)]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == first
    victim = sorted(out.rglob("*.wav"))[0]
    victim.unlink()
    redo = list(expand_dataset(dataset, out, format="mic", transforms=3, seed=7, video=False))
    assert sum(r.written for r in redo) == 1 and victim.exists()
    # MIC copies carry the FOA map number: a MIC and an FOA copy with one suffix share labels and video.
    suffixes = {int(p.stem[-2:]) for p in out.rglob("*.wav")}
    assert suffixes <= {t.map_index for t in ChannelSwap.all("mic")}


def test_mic_audio_copy_is_the_render_of_the_moved_direction(dataset, tmp_path):
    out = tmp_path / "out"
    list(expand_dataset(dataset, out, format="mic", transforms="1,4", video=False, split=SPLIT))
    for t in (ChannelSwap("mic", 1), ChannelSwap("mic", 4)):
        audio = read_wav(out / "mic_dev" / SPLIT / f"{output_name('fold1_room1_mix002', t)}.wav")
        direction = spatial.mic_doa_from_tdoa(spatial.mic_tdoa(audio))
        expected = t.directions(AZIMUTH, ELEVATION)
        assert angular_distance_deg(*direction, *expected) < 2.0


def test_cli(dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["acs", str(dataset), str(out), "--format", "mic", "--transforms", "0,5", "--split", SPLIT]) == 0
    assert "4 transformed clips written, 0 already complete, from 2 MIC clips (1 with video)" in capsys.readouterr().out
    assert (out / "video_dev" / SPLIT / "fold1_room1_mix001_acs04.mp4").is_file()  # MIC 5 is map 4 (−φ+90°, θ)
    assert main(["acs", str(dataset), str(out), "--transforms", "17"]) == 2
    assert "--transforms N must be in 1..16" in capsys.readouterr().err
    assert main(["acs", str(dataset), str(out), "--split", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_parse_transforms():
    assert parse_transforms("all", "mic") == ("all", tuple(range(8)))
    assert parse_transforms("16", "foa") == ("all", tuple(range(16)))
    assert parse_transforms("3", "foa") == ("count", (3,))
    assert parse_transforms("5,1,5", "foa") == ("list", (1, 5))
    for bad in ("9,", "0", "x", "-1,2"):
        with pytest.raises(InputError):
            parse_transforms(bad, "mic")
