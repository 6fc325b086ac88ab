"""Timeline scenes: events from reference rows, per-sample directions, rendering that follows the labels (a moving
source's intensity vector follows its trajectory, anechoic and in a room), interferers, and sound filling."""

from __future__ import annotations

import numpy as np
import pytest

from augment import rooms
from augment.scenes import SceneConfig
from augment.spatial import direction_at_label_frames, foa_intensity_doa
from augment.trajectories import (InterfererConfig, fill_sound, render_timeline, sample_directions, timeline_events,
                                  track_runs)
from av_seld.geometry import angular_distance_deg

SR = 24_000
HOP = 2400


def noise_source(class_index, duration_s, rng):
    return (0.1 * rng.standard_normal(int(round(duration_s * SR)))).astype(np.float32)


def test_events_are_runs_of_consecutive_frames_per_track():
    # class 1 source 1 at frames 0-2 and 5-6; class 4 source 1 at 2-3 (a second track of the same source)
    frame = [0, 1, 2, 2, 3, 5, 6, 1]
    cls = [1, 1, 1, 4, 4, 1, 1, 1]
    src = [1, 1, 1, 1, 1, 1, 1, 1]
    az = [10, 11, 12, 50, 50, -90, -91, 11]  # the last row duplicates (1, 1, 1): left out
    el = [0, 0, 0, 5, 5, 0, 0, 0]
    runs = track_runs(frame, cls, src)
    assert [(c, s, [r.tolist() for r in rs]) for c, s, rs in runs] == [(1, 1, [[0, 1, 2], [5, 6]]), (4, 1, [[3, 4]])]
    events = timeline_events(frame, cls, src, az, el)
    assert [(e.class_index, e.frames.tolist()) for e in events] == [(1, [0, 1, 2]), (4, [2, 3]), (1, [5, 6])]
    assert not events[0].static and events[1].static


def test_sample_directions_hit_every_label_at_its_frame_centre():
    az = np.array([170.0, -175.0, -160.0, -160.0, 10.0])  # crosses the seam, then jumps
    el = np.array([0.0, 10.0, 20.0, 20.0, -30.0])
    sample_az, sample_el = sample_directions(az, el)
    assert sample_az.shape == (5 * HOP,)
    frames, got_az, got_el = direction_at_label_frames(sample_az, sample_el, onset_sample=7 * HOP)
    assert frames.tolist() == [7, 8, 9, 10, 11]
    assert np.allclose(angular_distance_deg(got_az, got_el, az, el), 0, atol=1e-6)
    # between the first two centres the path stays between them (the short way round the seam)
    mid = HOP // 2 + HOP // 2
    assert angular_distance_deg(sample_az[mid], sample_el[mid], 177.5, 5.0) < 1.0


def test_fill_sound_gives_exactly_the_length_from_short_draws():
    def short(class_index, duration_s, rng):
        return np.ones(min(1000, int(round(duration_s * SR))), np.float32)

    out = fill_sound(short, 3, 0.5, np.random.default_rng(0))
    assert out.shape == (12_000,) and out.dtype == np.float32


def _trajectory(num_frames: int):
    """A source sweeping 120° of azimuth at 20° elevation: 60°/s over 2 s."""
    frames = np.arange(5, 5 + num_frames)
    az = np.linspace(-60, 60, num_frames)
    el = np.full(num_frames, 20.0)
    return frames, az, el


def _small_room(rt60_s: float, max_images: int) -> rooms.SimulatedRoom:
    """A 6 × 5 × 3 m simulated room, sources at 1.5 m."""
    config = rooms.RoomConfig(length_m=(6.0, 6.0), width_m=(5.0, 5.0), height_m=(3.0, 3.0), rt60_s=(rt60_s, rt60_s),
                              source_distance_m=(1.5, 1.5), max_images=max_images)
    return rooms.SimulatedRoom(rooms.sample_room(np.random.default_rng(1), config), config, seed=[0, 1])


@pytest.mark.parametrize("in_room", [False, True])
def test_a_moving_source_is_heard_along_its_labelled_trajectory(in_room):
    frames, az, el = _trajectory(20)
    events = timeline_events(frames, np.full(20, 2), np.ones(20), np.round(az), el)
    config = SceneConfig(duration_s=3.0, gain_db=(0.0, 0.0), snr_db=(60.0, 60.0))
    room = _small_room(rt60_s=0.3, max_images=2000) if in_room else None
    scene = render_timeline(events, noise_source, np.random.default_rng(0), config, ("foa",), room=room)
    foa = scene.audio["foa"]
    assert foa.shape == (4, 3 * SR) and scene.num_events == 1
    # silence before the labelled onset (only the 60 dB ambient noise), sound from it on
    before = float(np.mean(foa[0, : 5 * HOP - 200] ** 2))
    during = float(np.mean(foa[0, 5 * HOP: 25 * HOP] ** 2))
    assert during > 1e4 * before
    # the intensity vector over each 200 ms follows the labels (room: reflections pull it a little)
    tolerance = 20.0 if in_room else 3.0
    for k in range(0, 20, 2):
        start = (5 + k) * HOP
        est = foa_intensity_doa(foa[:, start:start + 2 * HOP])
        label = (np.round(az[k]) + np.round(az[k + 1])) / 2, 20.0
        assert angular_distance_deg(*est, *label) < tolerance, (k, est, label)


@pytest.mark.parametrize("in_room", [False, True])
def test_a_room_that_renders_the_labels_exactly_reports_them_unchanged(in_room):
    """Anechoic and in a simulated room the direct sound follows the labels exactly: the directions a scene reports
    are the labels' own numbers, bit for bit (-180 stays -180, 12.5 stays 12.5), static or moving."""
    frames = np.arange(2, 12)
    az = np.array([170.0, 175.0, 179.0, -180.0, -176.0, -170.0, -150.5, -120.0, -90.0, 12.5])
    el = np.array([0.0, 5.0, 10.0, 12.0, 14.5, 20.0, 20.0, 30.0, -40.0, -89.0])
    events = timeline_events(np.r_[frames, frames[:4]], np.r_[np.zeros(10), np.ones(4)], np.zeros(14),
                             np.r_[az, np.full(4, -180.0)], np.r_[el, np.full(4, 7.5)])
    config = SceneConfig(duration_s=1.5)
    room = _small_room(rt60_s=0.2, max_images=500) if in_room else None
    scene = render_timeline(events, noise_source, np.random.default_rng(0), config, ("foa",), room=room)
    assert [scene.directions[(int(f), 0, 0)] for f in frames] == list(zip(az.tolist(), el.tolist()))
    assert [scene.directions[(int(f), 1, 0)] for f in frames[:4]] == [(-180.0, 7.5)] * 4


def test_the_direct_sound_starts_at_the_labelled_onset_in_a_room():
    frames = np.arange(10, 15)
    events = timeline_events(frames, np.zeros(5), np.zeros(5), np.full(5, 30.0), np.zeros(5))
    config = SceneConfig(duration_s=2.0, gain_db=(0.0, 0.0), snr_db=(80.0, 80.0))
    room_config = rooms.RoomConfig(length_m=(8.0, 8.0), width_m=(6.0, 6.0), height_m=(3.0, 3.0), rt60_s=(0.2, 0.2),
                                   source_distance_m=(2.5, 2.5), max_images=2000)
    room = rooms.SimulatedRoom(rooms.sample_room(np.random.default_rng(2), room_config), room_config, seed=[0, 2])
    foa = render_timeline(events, noise_source, np.random.default_rng(0), config, room=room).audio["foa"]
    onset = 10 * HOP
    assert np.abs(foa[0, onset - 100: onset - 20]).max() < 1e-3 * np.abs(foa[0, onset: onset + 200]).max()


def test_events_past_the_clip_end_are_cut_and_interferers_are_added():
    frames = np.arange(25, 40)  # the clip is 3 s = 30 frames long
    events = timeline_events(frames, np.full(15, 8), np.zeros(15), np.zeros(15), np.zeros(15))
    config = SceneConfig(duration_s=3.0)

    def interferer(duration_s, rng):
        return np.ones(int(round(duration_s * SR)), np.float32) * 0.05

    plain = render_timeline(events, noise_source, np.random.default_rng(0), config)
    mixed = render_timeline(events, noise_source, np.random.default_rng(0), config, interferers=interferer,
                            interferer_config=InterfererConfig(rate_per_minute=120.0))
    assert plain.num_events == mixed.num_events == 1 and plain.num_interferers == 0
    assert mixed.num_interferers > 0
    assert plain.audio["foa"].shape == (4, 3 * SR)
    assert not np.array_equal(plain.audio["foa"], mixed.audio["foa"])


def test_same_seed_same_bytes():
    frames, az, el = _trajectory(10)
    events = timeline_events(frames, np.full(10, 3), np.zeros(10), az, el)
    config = SceneConfig(duration_s=2.0)
    a = render_timeline(events, noise_source, np.random.default_rng(7), config, ("foa", "mic"))
    b = render_timeline(events, noise_source, np.random.default_rng(7), config, ("foa", "mic"))
    assert all(np.array_equal(a.audio[f], b.audio[f]) for f in ("foa", "mic"))


# ------------------------------------------------------------------------------------- dataset and command line


def _write_timeline(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(str(v) for v in row) + "\n" for row in rows))


def _timeline_rows():
    """Two overlapping events (one moving, same-class overlap at frames 12-14), a pause, a third event."""
    rows = []
    for f in range(5, 25):
        rows.append((f, 1, 1, -60 + 6 * (f - 5), 10))  # moving male speech
    for f in range(12, 15):
        rows.append((f, 1, 2, 120, -20))  # a second male speaker at once
    for f in range(30, 38):
        rows.append((f, 12, 3, -170, 0))  # knock
    rows.sort(key=lambda r: (r[0], r[2]))
    return rows


def test_synth_audio_trajectories_writes_the_input_labels(tmp_path):
    from av_seld.cli import main
    from av_seld.io.audio import read_wav

    folder = tmp_path / "timelines"
    rows = _timeline_rows()
    _write_timeline(folder / "a" / "fold3_room1_mix001.csv", rows)
    _write_timeline(folder / "fold3_room1_mix002.csv", [(0, 5, 0, 45, 30), (1, 5, 0, 45, 30, )])
    (tmp_path / "noise").mkdir()
    import soundfile as sf
    sf.write(tmp_path / "noise" / "hum.wav", 0.1 * np.sin(np.arange(SR) / 10), SR)
    out = tmp_path / "out"
    args = ["synth-audio", str(out), "--split", "t", "--trajectories", str(folder), "--interferers",
            str(tmp_path / "noise"), "--interferer-rate", "30", "--format", "both"]
    assert main(args) == 0
    first = (out / "metadata_dev" / "t" / "fold1_room0_mix001.csv").read_text()
    written = [line.split(",") for line in first.splitlines()]
    assert [r[:5] for r in written] == [[str(v) for v in row] for row in rows]  # labels out = labels in
    # the input has no distances: each event gets one, drawn from SceneConfig.distance_m (1-3 m), in centimetres
    per_source = {}
    for r in written:
        per_source.setdefault(r[2], set()).add(int(r[5]))
    assert all(len(d) == 1 and 100 <= next(iter(d)) <= 300 for d in per_source.values()), per_source
    audio = read_wav(out / "foa_dev" / "t" / "fold1_room0_mix001.wav")
    assert audio.shape == (4, 38 * HOP)  # the whole CSV, up to its last labelled frame
    mic = read_wav(out / "mic_dev" / "t" / "fold1_room0_mix002.wav")
    assert mic.shape == (4, 2 * HOP)
    # the moving speaker's direction, found in the audio while it sounds alone
    est = foa_intensity_doa(audio[:, 16 * HOP:24 * HOP])
    assert angular_distance_deg(*est, (-60 + 6 * 15.5), 10) < 12
    assert main(args) == 0  # resumable: nothing left to do


def test_trajectory_windows_cut_each_csv(tmp_path):
    from augment.rooms import open_rooms
    from av_seld.data.synth_timelines import synthesize_timeline_dataset, timeline_windows, window_events

    folder = tmp_path / "timelines"
    _write_timeline(folder / "x.csv", _timeline_rows())
    windows = timeline_windows(folder, duration_s=1.5)
    assert [(w.start_frame, w.num_frames) for w in windows] == [(0, 15), (15, 15)]
    second = window_events(windows[1])
    assert second.frame.tolist() == list(range(10)) and set(second.class_index) == {1}  # file frames 15-24: speech
    results = list(synthesize_timeline_dataset(tmp_path / "out", windows=windows, split="s", num_clips=3, seed=1,
                                               rooms=open_rooms("configs/synth/rooms_default.yaml", ("foa",))))
    assert [r.name for r in results] == ["fold1_room1_mix001", "fold1_room2_mix002", "fold1_room3_mix003"]
    csvs = [[line.rsplit(",", 1) for line in (tmp_path / "out" / "metadata_dev" / "s" / f"{r.name}.csv").read_text()
             .splitlines()] for r in results]
    labels = [[row[0] for row in csv] for csv in csvs]
    assert labels[0] == labels[2] != labels[1]  # clip 3 renders window 1 again (new sounds, another room)
    assert [row[1] for row in csvs[0]] != [row[1] for row in csvs[2]]  # at another distance: the room's own draw


def test_trajectories_folder_errors_name_the_folder(tmp_path):
    from av_seld.data.synth_timelines import timeline_windows
    from av_seld.errors import InputError

    with pytest.raises(InputError, match="no reference CSV"):
        timeline_windows(tmp_path)
    _write_timeline(tmp_path / "empty.csv", [])
    with pytest.raises(InputError, match="empty.csv.*no events"):
        timeline_windows(tmp_path)


def test_a_distance_column_is_kept(tmp_path):
    from av_seld.data.synth_timelines import synthesize_timeline_dataset, timeline_windows

    rows = [(f, 0, 2, 30, 5, 250) for f in range(3, 9)]
    _write_timeline(tmp_path / "in" / "d.csv", rows)
    results = list(synthesize_timeline_dataset(tmp_path / "out", windows=timeline_windows(tmp_path / "in"), split="s"))
    written = (tmp_path / "out" / "metadata_dev" / "s" / f"{results[0].name}.csv").read_text()
    assert written == "".join(",".join(map(str, r)) + "\n" for r in rows)


def _single_event(distance_cm=None, num_frames=8):
    rows = [(f, 0, 2, 30, 5) + (() if distance_cm is None else (distance_cm,)) for f in range(3, 3 + num_frames)]
    return rows


def test_timeline_distances_anechoic_keep_the_labels_or_draw_one_per_event_without_changing_the_audio():
    frames, az, el = _trajectory(10)
    config = SceneConfig(duration_s=2.0, distance_m=(1.2, 1.4))
    labelled = np.linspace(1.0, 2.0, 10)
    with_labels = render_timeline(timeline_events(frames, np.full(10, 3), np.zeros(10), az, el, labelled),
                                  noise_source, np.random.default_rng(7), config)
    assert [with_labels.distances[(int(f), 3, 0)] for f in frames] == pytest.approx(labelled)
    both = timeline_events(np.r_[frames, frames], np.r_[np.full(10, 3), np.full(10, 5)], np.zeros(20),
                           np.r_[az, -az], np.r_[el, el])
    drawn = render_timeline(both, noise_source, np.random.default_rng(7), config)
    for c in (3, 5):
        values = {drawn.distances[(int(f), c, 0)] for f in frames}
        assert len(values) == 1 and 1.2 <= values.pop() <= 1.4  # one distance per event, from distance_m
    assert drawn.distances[(int(frames[0]), 3, 0)] != drawn.distances[(int(frames[0]), 5, 0)]
    # the distances come from a child stream: the audio is what it is without them
    plain = render_timeline(timeline_events(frames, np.full(10, 3), np.zeros(10), az, el), noise_source,
                            np.random.default_rng(7), config)
    np.testing.assert_array_equal(plain.audio["foa"], with_labels.audio["foa"])


def test_a_simulated_room_renders_a_timeline_at_its_labelled_distance():
    room_config = rooms.RoomConfig(length_m=(8.0, 8.0), width_m=(6.0, 6.0), height_m=(3.0, 3.0), rt60_s=(0.2, 0.2),
                                   source_distance_m=(2.5, 2.5), max_images=2000)
    shoebox = rooms.ShoeboxRoom((8.0, 6.0, 3.0), 0.2, (4.0, 3.0, 1.5))
    config = SceneConfig(duration_s=1.5, gain_db=(0.0, 0.0), snr_db=(80.0, 80.0))

    def impulse(class_index, duration_s, rng):
        out = np.zeros(int(round(duration_s * SR)), np.float32)
        out[0] = 1.0
        return out

    frames = np.arange(3, 8)
    for labelled, rendered in ((1.2, 1.2), (1.6, 1.6), (9.0, 4.0 - 0.3)):  # 9 m: kept 0.3 m inside the wall 4 m ahead
        distance = np.full(5, labelled)
        events = timeline_events(frames, np.zeros(5), np.zeros(5), np.zeros(5), np.zeros(5), distance)
        room = rooms.SimulatedRoom(shoebox, room_config, seed=[0, 2])
        scene = render_timeline(events, impulse, np.random.default_rng(0), config, room=room)
        np.testing.assert_allclose(list(scene.distances.values()), rendered)
        # the direct impulse (at the labelled onset) has the level of its distance: W = 1 / d
        w = scene.audio["foa"][0, 3 * HOP - 2: 3 * HOP + 3]
        assert abs(np.abs(w).max() - 1.0 / rendered) < 0.05 / rendered
    # without labels the room draws its own (source_distance_m 2.5 m)
    events = timeline_events(frames, np.zeros(5), np.zeros(5), np.zeros(5), np.zeros(5))
    scene = render_timeline(events, impulse, np.random.default_rng(0), config, room=rooms.SimulatedRoom(
        shoebox, room_config, seed=[0, 2]))
    np.testing.assert_allclose(list(scene.distances.values()), 2.5)


def test_synth_audio_trajectories_in_a_room_writes_the_rendered_distances(tmp_path):
    from av_seld.data.synth_timelines import synthesize_timeline_dataset, timeline_windows
    from av_seld.io.labels import read_reference_csv

    rows = _single_event(150) + [(f, 4, 0, -90, 0, d) for f, d in zip(range(5, 9), (120, 140, 160, 180))]
    rows.sort()
    _write_timeline(tmp_path / "in" / "d.csv", rows)
    config = tmp_path / "rooms.yaml"
    config.write_text("room:\n  length_m: [7.0, 7.0]\n  width_m: [6.0, 6.0]\n  rt60_s: [0.2, 0.2]\n"
                      "  max_images: 2000\n  num_rooms: 1\n")
    [result] = synthesize_timeline_dataset(tmp_path / "out", windows=timeline_windows(tmp_path / "in"), split="s",
                                           rooms=rooms.open_rooms(config, ("foa",)))
    events = read_reference_csv(tmp_path / "out" / "metadata_dev" / "s" / f"{result.name}.csv")
    assert events.has_distance
    np.testing.assert_allclose(events.distance_m[events.class_index == 0], 1.5)  # as labelled: it fits the room
    np.testing.assert_allclose(events.distance_m[events.class_index == 4], 1.5)  # one distance: the labels' median
