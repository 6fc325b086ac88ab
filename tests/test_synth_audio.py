"""Spatial scene synthesis: event sampling, rendering, labels, dataset writing, user clips, determinism, resuming."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
import soundfile as sf

from augment.clips import ClipBank, class_index
from augment.rooms import open_rooms
from augment.scenes import SceneConfig, render_scene, sample_events
from augment.spatial import foa_intensity_doa
from av_seld.cli import main
from av_seld.data.synth_audio import synthesize_audio_dataset
from av_seld.errors import InputError
from av_seld.geometry import angular_distance_deg
from av_seld.io.audio import read_wav
from av_seld.io.labels import read_reference_csv
from test_rooms import DIRECTIONS, write_response_folder  # a tiny folder of measured responses

SR = 24_000


def tone_source(class_index, duration_s, rng):
    n = int(round(duration_s * SR))
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("polyphony", [1, 3])
def test_sampled_events_respect_polyphony_and_ranges(polyphony):
    config = SceneConfig(duration_s=60, max_polyphony=polyphony)
    events = sample_events(np.random.default_rng(0), config)
    assert len(events) > 5 and [e.source for e in events] == list(range(len(events)))
    timeline = np.zeros(60_000, dtype=int)  # 1 ms resolution
    for e in events:
        assert 0 <= e.onset_s and e.onset_s + e.duration_s <= 60 + 1e-9
        assert e.duration_s <= config.event_length_s[1]
        assert config.gain_db[0] <= e.gain_db <= config.gain_db[1]
        assert e.angular_speed_deg_s == 0 or 10 <= e.angular_speed_deg_s <= 40
        timeline[int(e.onset_s * 1000): int((e.onset_s + e.duration_s) * 1000)] += 1
    assert timeline.max() <= polyphony
    if polyphony == 3:
        assert timeline.max() == 3
        assert any(e.angular_speed_deg_s > 0 for e in events) and any(e.angular_speed_deg_s == 0 for e in events)


def test_rows_are_the_rendered_events():
    config = SceneConfig(duration_s=6, max_polyphony=2, event_length_s=(1.0, 2.5), gap_s=(0.2, 1.0))
    rng = np.random.default_rng(5)
    events = sample_events(rng, config)
    scene = render_scene(events, tone_source, rng, config, formats=("foa", "mic"))
    assert scene.audio["foa"].shape == scene.audio["mic"].shape == (4, 6 * SR)
    rows = np.array(scene.rows)
    for e in events:
        mine = rows[rows[:, 2] == e.source]
        first, last = int(np.floor(e.onset_s * 10)), int(np.ceil((e.onset_s + e.duration_s) * 10)) - 1
        assert mine[:, 0].tolist() == list(range(first, last + 1)), e  # onset/offset within one label frame
        assert (mine[:, 1] == e.class_index).all()
        if e.angular_speed_deg_s == 0:
            assert (mine[:, 3] == (round(e.azimuth_deg) + 180) % 360 - 180).all()
            assert (mine[:, 4] == round(e.elevation_deg)).all()
        else:  # a moving source starts where the event says and moves
            start_error = angular_distance_deg(mine[0, 3], mine[0, 4], e.azimuth_deg, e.elevation_deg)
            assert start_error < 1 + e.angular_speed_deg_s * 0.1
            assert len(np.unique(mine[:, 3:5], axis=0)) > 1


def test_written_foa_direction_matches_the_csv(tmp_path):
    config = SceneConfig(duration_s=3, max_polyphony=1, event_length_s=(2.0, 2.0), gap_s=(0.1, 0.2),
                         moving_probability=0.0, snr_db=(40, 40))
    list(synthesize_audio_dataset(tmp_path, num_clips=1, split="s", seed=3, scene=config))
    foa = read_wav(tmp_path / "foa_dev" / "s" / "fold1_room0_mix001.wav")
    ref = read_reference_csv(tmp_path / "metadata_dev" / "s" / "fold1_room0_mix001.csv")
    # Static events, one at a time: each label is constant, and the intensity vector over the event points there.
    for source in set(ref.source.tolist()):
        mine = ref.select(ref.source == source)
        assert len(set(zip(mine.azimuth_deg, mine.elevation_deg))) == 1
        az, el = foa_intensity_doa(foa[:, (mine.frame[0] + 1) * 2400:mine.frame[-1] * 2400])
        assert angular_distance_deg(az, el, mine.azimuth_deg[0], mine.elevation_deg[0]) < 3.0  # 2° + rounding


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_layout_determinism_and_resume(tmp_path, caplog):
    config = SceneConfig(duration_s=2, max_polyphony=2, event_length_s=(0.5, 1.5), gap_s=(0.1, 0.5))
    kwargs = dict(num_clips=2, split="dev-train-synth", scene=config, formats=("foa", "mic"))
    results = list(synthesize_audio_dataset(tmp_path / "a", seed=1, **kwargs))
    assert [r.skipped for r in results] == [False, False]
    a = digest(tmp_path / "a")
    assert sorted(a) == [f"{folder}/dev-train-synth/fold1_room0_mix00{k}.{ext}" for folder, ext in
                         (("foa_dev", "wav"), ("metadata_dev", "csv"), ("mic_dev", "wav")) for k in (1, 2)]
    info = sf.info(str(tmp_path / "a" / "mic_dev" / "dev-train-synth" / "fold1_room0_mix001.wav"))
    assert (info.channels, info.samplerate, info.subtype) == (4, SR, "PCM_16")
    list(synthesize_audio_dataset(tmp_path / "b", seed=1, workers=2, **kwargs))
    assert digest(tmp_path / "b") == a  # same seed, same bytes, whatever the worker count
    list(synthesize_audio_dataset(tmp_path / "c", seed=2, **kwargs))
    assert digest(tmp_path / "c") != a
    # Resume: a clip missing its CSV (killed before the last rename) is redone, complete clips are skipped.
    (tmp_path / "a" / "metadata_dev" / "dev-train-synth" / "fold1_room0_mix002.csv").unlink()
    results = list(synthesize_audio_dataset(tmp_path / "a", seed=1, **kwargs))
    assert [r.skipped for r in results] == [True, False]
    assert digest(tmp_path / "a") == a
    assert not list((tmp_path / "a").rglob(".*tmp*"))


def test_user_clips_folder_resampled_downmixed_and_missing_classes(tmp_path, caplog):
    rng = np.random.default_rng(0)
    (tmp_path / "clips" / "telephone").mkdir(parents=True)
    (tmp_path / "clips" / "7").mkdir()
    sf.write(tmp_path / "clips" / "telephone" / "ring.wav", 0.1 * rng.standard_normal((48_000, 2)), 48_000)
    sf.write(tmp_path / "clips" / "7" / "door.wav", 0.1 * rng.standard_normal(16_000), 16_000)
    bank = ClipBank.open(tmp_path / "clips")
    assert bank.classes() == [3, 7]
    with caplog.at_level(logging.WARNING):
        ring = bank.draw(3, 5.0, rng)
    assert "2 channels downmixed" in caplog.text and len(ring) == SR  # 1 s at 48 kHz -> 24 000 samples
    config = SceneConfig(duration_s=2, max_polyphony=1, event_length_s=(0.5, 1.0), gap_s=(0.1, 0.3))
    with pytest.raises(InputError, match="no clips for class"):
        list(synthesize_audio_dataset(tmp_path / "out", num_clips=1, split="s", scene=config,
                                      clips=tmp_path / "clips", missing_class="error"))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        list(synthesize_audio_dataset(tmp_path / "out", num_clips=1, split="s", scene=config,
                                      clips=tmp_path / "clips"))
    assert "no clips for class(es) 0 (female speech)" in caplog.text
    classes = set(read_reference_csv(tmp_path / "out" / "metadata_dev" / "s" / "fold1_room0_mix001.csv").class_index)
    assert classes <= {3, 7}


def test_bad_clips_are_named(tmp_path):
    (tmp_path / "clips" / "bell").mkdir(parents=True)
    (tmp_path / "clips" / "bell" / "broken.wav").write_bytes(b"not audio at all")
    bank = ClipBank.open(tmp_path / "clips")
    with pytest.raises(InputError, match="broken.wav: cannot be read as audio"):
        bank.draw(11, 1.0, np.random.default_rng(0))
    (tmp_path / "m.csv").write_text("path,class\nclips/bell/broken.wav,gong\n")
    with pytest.raises(InputError, match="m.csv:2: unknown class 'gong'"):
        ClipBank.open(tmp_path / "m.csv")
    with pytest.raises(InputError, match="unknown class"):
        class_index("13", "x")
    assert class_index("Door_open_close", "x") == 7 and class_index("water tap", "x") == 10


def test_cli_synth_audio(tmp_path, capsys):
    args = ["synth-audio", str(tmp_path), "--num-clips", "1", "--duration", "2", "--split", "t", "--seed", "4"]
    assert main(args) == 0
    assert "1 clip written" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 clips written, 1 already complete" in capsys.readouterr().out
    assert (tmp_path / "metadata_dev" / "t" / "fold1_room0_mix001.csv").is_file()


# ------------------------------------------------------------------------------------------------------ rooms

ROOMS_YAML = """\
room:
  num_rooms: 2
  length_m: [4.0, 5.0]
  width_m: [3.0, 4.0]
  height_m: [2.5, 3.0]
  rt60_s: [0.2, 0.3]
  max_images: 3000
scene:
  event_length_s: [0.5, 1.0]
  gap_s: [0.2, 0.4]
"""


def test_dataset_with_simulated_rooms_names_rooms_and_is_deterministic(tmp_path):
    (tmp_path / "rooms.yaml").write_text(ROOMS_YAML)
    config = SceneConfig(duration_s=2, max_polyphony=2, event_length_s=(0.5, 1.0), gap_s=(0.2, 0.4))
    kwargs = dict(num_clips=3, split="s", scene=config, formats=("foa", "mic"),
                  rooms=open_rooms(tmp_path / "rooms.yaml", ("foa", "mic")))
    list(synthesize_audio_dataset(tmp_path / "a", seed=1, **kwargs))
    a = digest(tmp_path / "a")
    assert sorted(p for p in a if p.startswith("metadata_dev")) == [
        "metadata_dev/s/fold1_room1_mix001.csv", "metadata_dev/s/fold1_room1_mix003.csv",
        "metadata_dev/s/fold1_room2_mix002.csv"]
    list(synthesize_audio_dataset(tmp_path / "b", seed=1, workers=2, **kwargs))
    assert digest(tmp_path / "b") == a  # same seed, same bytes with rooms, whatever the worker count
    results = list(synthesize_audio_dataset(tmp_path / "a", seed=1, **kwargs))
    assert all(r.skipped for r in results)
    anechoic = {**kwargs, "rooms": None}
    list(synthesize_audio_dataset(tmp_path / "c", seed=1, **anechoic))
    foa_room = read_wav(tmp_path / "a" / "foa_dev" / "s" / "fold1_room1_mix001.wav")
    foa_dry = read_wav(tmp_path / "c" / "foa_dev" / "s" / "fold1_room0_mix001.wav")
    assert foa_room.shape == foa_dry.shape and not np.allclose(foa_room, foa_dry, atol=1e-3)


def test_cli_synth_audio_with_rooms(tmp_path, capsys):
    (tmp_path / "rooms.yaml").write_text(ROOMS_YAML)
    args = ["synth-audio", str(tmp_path / "out"), "--num-clips", "1", "--duration", "2", "--split", "t",
            "--rooms", str(tmp_path / "rooms.yaml"), "--format", "both"]
    assert main(args) == 0
    assert "1 clip written" in capsys.readouterr().out
    ref = read_reference_csv(tmp_path / "out" / "metadata_dev" / "t" / "fold1_room1_mix001.csv")
    durations = np.bincount(ref.source)
    assert len(ref) and durations[durations > 0].max() <= 11  # the YAML's 0.5-1.0 s events reached the scene
    (tmp_path / "bad.yaml").write_text("room:\n  rt60: [0.2, 0.3]\n")
    assert main(args[:-4] + ["--rooms", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown key 'room.rt60'" in capsys.readouterr().err


def test_cli_synth_audio_with_measured_responses(tmp_path, capsys):
    folder = write_response_folder(tmp_path / "measured", formats=("foa",))
    args = ["synth-audio", str(tmp_path / "out"), "--num-clips", "1", "--duration", "2", "--split", "t",
            "--rooms", str(folder)]
    assert main(args) == 0
    ref = read_reference_csv(tmp_path / "out" / "metadata_dev" / "t" / "fold1_room1_mix001.csv")
    measured = {(int((a + 180) % 360 - 180), int(e)) for a, e in DIRECTIONS}
    assert set(zip(ref.azimuth_deg.astype(int).tolist(), ref.elevation_deg.astype(int).tolist())) <= measured
    capsys.readouterr()
    assert main(args + ["--format", "mic"]) == 2
    assert "no MIC responses" in capsys.readouterr().err
