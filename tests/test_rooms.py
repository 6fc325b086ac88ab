"""Tests of augment.rooms: shoebox image sources, RT60, reverberant scenes and their labels, moving sources in rooms,
measured responses (CSV folder and SOFA), the rooms YAML file."""

from __future__ import annotations

import h5py
import numpy as np
import pyroomacoustics as pra
import pytest
import soundfile as sf

from augment import rooms, spatial
from augment.rooms.switching import convolve
from augment.scenes import EventSpec, SceneConfig, render_scene
from av_seld.errors import InputError
from av_seld.geometry import angular_distance_deg
from av_seld.timing import LABEL_HOP_SAMPLES, SAMPLE_RATE

SR = SAMPLE_RATE
ROOM = rooms.ShoeboxRoom((6.0, 5.0, 3.0), 0.3, (3.1, 2.4, 1.5))
FAST = rooms.RoomConfig(source_distance_m=(1.0, 1.0), max_images=5_000, max_response_s=0.3)


def noise_source(class_index, duration_s, rng):
    return (0.1 * rng.standard_normal(int(round(duration_s * SR)))).astype(np.float32)


# --------------------------------------------------------------------------------------------- image sources


def test_image_sources_match_pyroomacoustics():
    source = np.array([1.2, 3.1, 0.9])
    images = rooms.image_sources(ROOM, source, max_distance_m=60.0, early_distance_m=60.0, max_images=10**7)
    mine = {tuple(np.round(v + ROOM.listener_m, 3)): (o, a * d) for v, o, a, d in
            zip(images.vectors, images.order, images.amplitude, images.distance) if o <= 3}
    alpha = ROOM.absorption
    room = pra.ShoeBox(list(ROOM.size_m), fs=SR, materials=pra.Material(alpha), max_order=3)
    room.add_source(source)
    room.add_microphone(list(ROOM.listener_m))
    room.image_source_model()
    theirs = {tuple(np.round(p.astype(np.float64), 3)): (o, g) for p, o, g in
              zip(room.sources[0].images.T, room.sources[0].orders, room.sources[0].damping[0]) if o > 0}
    assert set(mine) == set(theirs) and len(mine) == 62  # 6 + 18 + 38 images of orders 1, 2, 3
    for position, (order, gain) in mine.items():
        assert order == theirs[position][0]
        assert gain == pytest.approx(theirs[position][1], rel=1e-6)  # β^order, β = √(1 − α)


def test_simulated_rt60_roughly_matches_the_target():
    # Schroeder decay (pyroomacoustics' measure_rt60, T20) of the W response; a small room keeps it fast.
    for size, rt60 in (((4.0, 3.0, 2.5), 0.3), ((6.0, 5.0, 3.0), 0.2)):
        room = rooms.ShoeboxRoom(size, rt60, (size[0] * 0.45, size[1] * 0.55, 1.5))
        sim = rooms.SimulatedRoom(room, rooms.RoomConfig(max_images=20_000), seed=0)
        w = sim.impulse_response(30.0, 10.0, 1.5, "foa")[0]
        measured = pra.experimental.measure_rt60(w, SR, decay_db=20)
        assert measured == pytest.approx(rt60, rel=0.15), (size, rt60, measured)


def test_impulse_response_direct_sound_and_formats():
    sim = rooms.SimulatedRoom(ROOM, FAST, seed=0)
    foa = sim.impulse_response(60.0, 20.0, 1.0, "foa")
    delay = int(round(1.0 / spatial.SPEED_OF_SOUND * SR))
    peak = int(np.argmax(np.abs(foa[0])))
    assert abs(peak - delay) <= 1 and foa[0, peak] == pytest.approx(1.0, rel=0.05)  # 1/d at 1 m
    np.testing.assert_allclose(foa[:, peak] / foa[0, peak], spatial.foa_gains(60.0, 20.0), atol=0.05)
    mic = sim.impulse_response(60.0, 20.0, 1.0, "mic")
    direct = mic[:, delay - 20:delay + 20]
    tdoas = spatial.mic_tdoa(np.pad(direct, ((0, 0), (200, 200))))
    expected = np.array([d[j] - d[i] for d in [spatial.mic_delays_s(60.0, 20.0)] for i, j in spatial.MIC_PAIRS])
    np.testing.assert_allclose(tdoas * SR, expected * SR, atol=0.15)


# ------------------------------------------------------------------------------------- reverberant scenes


def test_reverberant_scene_rows_are_the_rendered_events():
    config = SceneConfig(duration_s=8, max_polyphony=1, snr_db=(40, 40))
    events = [EventSpec(0, 3, 0.33, 1.2, 0.0, 40.0, 10.0, 0.0), EventSpec(1, 5, 2.27, 1.5, 0.0, -120.0, -20.0, 30.0),
              EventSpec(2, 8, 4.61, 1.0, 0.0, 170.0, 30.0, 0.0), EventSpec(3, 1, 6.55, 1.3, 0.0, -60.0, 0.0, 25.0)]
    rng = np.random.default_rng(2)
    room = rooms.SimulatedRoom(ROOM, FAST, seed=0)
    scene = render_scene(events, noise_source, rng, config, ("foa", "mic"), room=room)
    rows = np.array(scene.rows)
    w = scene.audio["foa"][0].astype(np.float64)
    envelope = np.sqrt(np.convolve(w**2, np.ones(48) / 48, mode="same"))  # 2 ms RMS
    for e in events:
        mine = rows[rows[:, 2] == e.source]
        assert (mine[:, 1] == e.class_index).all() and np.all(np.diff(mine[:, 0]) == 1)
        # Direct-path onset and offset in the audio: the envelope crosses a third of its level during the event.
        start, stop = int(e.onset_s * SR) - SR // 5, int((e.onset_s + e.duration_s) * SR) + SR // 5
        level = np.median(envelope[int(e.onset_s * SR) + 2400:int((e.onset_s + e.duration_s) * SR) - 2400])
        loud = np.flatnonzero(envelope[start:stop] > level / 3) + start
        onset, offset = loud[0], loud[-1]
        assert mine[0, 0] * LABEL_HOP_SAMPLES - LABEL_HOP_SAMPLES <= onset < (mine[0, 0] + 1) * LABEL_HOP_SAMPLES
        assert mine[-1, 0] * LABEL_HOP_SAMPLES <= offset < (mine[-1, 0] + 2) * LABEL_HOP_SAMPLES
        assert abs(onset - (e.onset_s * SR + 70)) < 48  # the direct sound arrives 1 m / c = 70 samples late
        if e.angular_speed_deg_s == 0:
            assert (mine[:, 3] == round(e.azimuth_deg)).all() and (mine[:, 4] == round(e.elevation_deg)).all()
        else:
            assert len(np.unique(mine[:, 3:5], axis=0)) > 1
            assert angular_distance_deg(mine[0, 3], mine[0, 4], e.azimuth_deg, e.elevation_deg) < 2


def test_static_source_direct_sound_is_where_the_label_says():
    # One static noise burst 1 m away. The first reflection (the floor, under a listener 1.5 m up) arrives ≥ 5 ms
    # after the direct sound, so the intensity vector of the first 3 ms after the direct-path onset (70 samples
    # after the event onset) sees the direct sound only.
    config = SceneConfig(duration_s=2, max_polyphony=1, snr_db=(40, 40))
    for az, el in ((40.0, 10.0), (-135.0, -25.0), (100.0, 45.0)):
        event = EventSpec(0, 0, 0.5, 1.0, 0.0, az, el, 0.0)
        room = rooms.SimulatedRoom(ROOM, FAST, seed=1)
        scene = render_scene([event], noise_source, np.random.default_rng(0), config, ("foa",), room=room)
        label = scene.rows[0][3:5]
        start = int(0.5 * SR) + 70
        early = rooms_doa(scene.audio["foa"][:, start:start + 72])
        assert angular_distance_deg(*early, *label) < 3.0


def rooms_doa(foa):
    return spatial.foa_intensity_doa(foa, n_fft=64, hop=32)


def test_moving_source_in_a_room_has_no_clicks():
    # A 200 Hz tone moving at 40°/s: the output is a slowly modulated 200 Hz tone, whose second difference is about
    # (2π·200/24000)² ≈ 0.003 of its amplitude. A switch between responses without a crossfade leaves a step of a
    # good fraction of the amplitude there (shown below by switching halfway without one).
    n = 3 * SR
    t = np.arange(n) / SR
    tone = (np.sin(2 * np.pi * 200 * t) * np.minimum(1, np.minimum(t, t[::-1]) / 0.05)).astype(np.float32)
    az, el = spatial.smooth_trajectory(-30.0, 10.0, 40.0, 3.0, np.random.default_rng(0))
    sim = rooms.SimulatedRoom(ROOM, FAST, seed=0)
    out = sim.render_event(tone, az, el, np.random.default_rng(0), ("foa", "mic"))
    for fmt, audio in out.audio.items():
        for channel in audio[:, : n]:
            second = np.abs(np.diff(channel.astype(np.float64), 2))
            assert second.max() < 0.01 * np.abs(channel).max(), fmt
    # Control: the same measure flags a hard switch between two grid responses.
    grid_a, grid_b = (sim.response(np.asarray(ROOM.listener_m) + d, "foa", "early") for d in
                      ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)))
    hard = convolve(tone[: n // 2], grid_a)[0, : n // 2]
    hard = np.concatenate([hard, convolve(tone[n // 2:], grid_b)[0, : n // 2]])
    assert np.abs(np.diff(hard.astype(np.float64), 2)).max() > 0.01 * np.abs(hard).max()


def test_crossfade_windows_sum_to_one_and_switched_equals_plain_convolution():
    centres, weight = rooms.crossfade_windows(1000, 64)
    assert centres[1] == 64 and weight[0] == 1.0 and 0 < weight[32] < 1
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    h = np.random.default_rng(1).standard_normal((4, 50)).astype(np.float32)
    index = np.zeros(len(centres), dtype=int)
    np.testing.assert_allclose(rooms.render_switched(x, index, [h], 64), convolve(x, h), atol=1e-5)


def test_same_seed_same_audio_with_rooms():
    config = SceneConfig(duration_s=3, max_polyphony=2, event_length_s=(0.5, 1.5), gap_s=(0.2, 0.5))
    from augment.scenes import sample_events

    def render(seed):
        rng = np.random.default_rng(seed)
        room = rooms.SimulatedRoom(rooms.sample_room(np.random.default_rng([seed, 0, 0]), FAST), FAST, seed=seed)
        return render_scene(sample_events(rng, config), noise_source, rng, config, ("foa", "mic"), room=room)

    a, b, c = render(7), render(7), render(8)
    assert a.rows == b.rows and all(np.array_equal(a.audio[f], b.audio[f]) for f in ("foa", "mic"))
    assert not np.array_equal(a.audio["foa"], c.audio["foa"])


# ------------------------------------------------------------------------------------- measured responses


DIRECTIONS = [(0.0, 0.0), (90.0, 0.0), (180.0, 0.0), (-90.0, 0.0), (45.0, 30.0), (-135.0, -30.0)]


def measured_response(fmt: str, az: float, el: float, rate: int) -> np.ndarray:
    """(N, 4) plane-wave response at ``rate`` with a 20 ms pre-delay and a small decaying diffuse tail."""
    n = int(0.2 * rate)
    impulse = np.zeros(n)
    impulse[int(0.02 * rate)] = 0.5
    render = spatial.render_foa if fmt == "foa" else spatial.render_mic
    out = render(impulse, az, el, sample_rate=rate) if fmt == "mic" else render(impulse, az, el)
    tail = np.random.default_rng(0).standard_normal((4, n)) * 0.01 * np.exp(-np.arange(n) / (0.03 * rate))
    tail[:, : int(0.025 * rate)] = 0
    return (out + tail).T


def write_response_folder(root, formats=("foa", "mic"), rate=48_000):
    root.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        lines = ["file,azimuth,elevation,distance"]
        for k, (az, el) in enumerate(DIRECTIONS):
            sf.write(root / f"{fmt}_{k}.wav", measured_response(fmt, az, el, rate), rate, subtype="FLOAT")
            lines.append(f"{fmt}_{k}.wav,{az},{el},1.5")
        (root / f"{fmt}.csv").write_text("\n".join(lines) + "\n")
    return root


def test_measured_folder_loads_and_renders_at_the_nearest_direction(tmp_path):
    sets = rooms.open_response_sets(write_response_folder(tmp_path / "r"), ("foa", "mic"))
    foa = sets["foa"]
    assert foa.responses.shape[:2] == (6, 4) and foa.distance_m[0] == 1.5
    assert np.argmax(np.abs(foa.responses[0, 0])) == rooms.MEASURED_PRE_SAMPLES  # 48 kHz → 24 kHz, aligned
    room = rooms.MeasuredRoom(sets)
    config = SceneConfig(duration_s=3, max_polyphony=1, snr_db=(40, 40))
    events = [EventSpec(0, 2, 0.2, 1.0, 0.0, 50.0, 20.0, 0.0), EventSpec(1, 4, 1.6, 1.2, 0.0, 80.0, 0.0, 60.0)]
    scene = render_scene(events, noise_source, np.random.default_rng(0), config, ("foa", "mic"), room=room)
    rows = np.array(scene.rows)
    static, moving = rows[rows[:, 2] == 0], rows[rows[:, 2] == 1]
    assert (static[:, 3] == 45).all() and (static[:, 4] == 30).all()  # the nearest measured direction
    onset = int(0.2 * SR) + rooms.MEASURED_PRE_SAMPLES
    doa = spatial.foa_intensity_doa(scene.audio["foa"][:, onset:onset + SR - 2400])
    assert angular_distance_deg(*doa, 45, 30) < 3
    assert set(map(tuple, moving[:, 3:5].tolist())) <= {(int(a), int(e)) for a, e in
                                                       [(((a + 180) % 360) - 180, e) for a, e in DIRECTIONS]}
    mic_doa = spatial.mic_doa_from_tdoa(spatial.mic_tdoa(scene.audio["mic"][:, onset:onset + SR - 2400]))
    assert angular_distance_deg(*mic_doa, 45, 30) < 5


def test_measured_errors_name_the_file(tmp_path):
    root = write_response_folder(tmp_path / "r", formats=("foa",))
    with pytest.raises(InputError, match="no MIC responses"):
        rooms.open_response_sets(root, ("foa", "mic"))
    csv_path = root / "foa.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:2] + ["foa_1.wav,ninety,0"] + lines[3:]) + "\n")
    with pytest.raises(InputError, match=r"foa\.csv:3: azimuth, elevation and distance must be numbers"):
        rooms.open_response_sets(root, ("foa",))
    csv_path.write_text("\n".join(lines[:2] + ["two.wav,90,0"]) + "\n")
    sf.write(root / "two.wav", np.zeros((100, 2)), SR)
    with pytest.raises(InputError, match=r"two\.wav: has 2 channel\(s\); room responses need 4"):
        rooms.open_response_sets(root, ("foa",))
    csv_path.write_text("missing.wav,90,0\n")
    with pytest.raises(InputError, match=r"foa\.csv:1: response file .*missing\.wav not found"):
        rooms.open_response_sets(root, ("foa",))


def write_sofa(path, convention="AmbisonicsDRIR", kind="spherical", receivers=4):
    ir = np.stack([measured_response("foa", az, el, SR).T for az, el in DIRECTIONS])[:, :receivers]
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = "SOFA"
        f.attrs["SOFAConventions"] = convention
        f.create_dataset("Data.IR", data=ir)
        f.create_dataset("Data.SamplingRate", data=np.array([float(SR)])).attrs["Units"] = "hertz"
        if kind == "spherical":
            position = np.array([[az, el, 2.0] for az, el in DIRECTIONS])
        else:
            from av_seld.geometry import sph_to_cart

            position = 2.0 * sph_to_cart(np.array(DIRECTIONS)[:, 0], np.array(DIRECTIONS)[:, 1]) + [1.0, 2.0, 0.5]
            f.create_dataset("ListenerPosition", data=np.array([[1.0, 2.0, 0.5]])).attrs["Type"] = "cartesian"
        dataset = f.create_dataset("SourcePosition", data=position)
        dataset.attrs["Type"] = kind
        dataset.attrs["Units"] = "degree, degree, metre" if kind == "spherical" else "metre"


@pytest.mark.parametrize("kind", ["spherical", "cartesian"])
def test_sofa_loads_and_renders(tmp_path, kind):
    write_sofa(tmp_path / "room.sofa", kind=kind)
    sets = rooms.open_response_sets(tmp_path / "room.sofa", ("foa",))
    s = sets["foa"]
    assert s.fmt == "foa" and s.responses.shape[:2] == (6, 4)
    np.testing.assert_allclose(s.azimuth_deg, [0, 90, -180, -90, 45, -135], atol=1e-6)
    np.testing.assert_allclose(s.elevation_deg, [0, 0, 0, 0, 30, -30], atol=1e-6)
    np.testing.assert_allclose(s.distance_m, 2.0)
    out = rooms.MeasuredRoom(sets).render_event(np.ones(2400, np.float32), -100.0, 5.0, None, ("foa",))
    assert (out.azimuth_deg == -90).all() and out.audio["foa"].shape[0] == 4
    with pytest.raises(InputError, match="no MIC responses"):
        rooms.open_response_sets(tmp_path / "room.sofa", ("mic",))


def test_bad_sofa_is_named(tmp_path):
    write_sofa(tmp_path / "two.sofa", receivers=2)
    with pytest.raises(InputError, match=r"two\.sofa: Data\.IR has shape \(6, 2, 4800\)"):
        rooms.read_sofa(tmp_path / "two.sofa")
    (tmp_path / "junk.sofa").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"junk\.sofa: cannot be read as SOFA"):
        rooms.read_sofa(tmp_path / "junk.sofa")
    write_sofa(tmp_path / "mic.sofa", convention="SingleRoomSRIR")
    assert rooms.read_sofa(tmp_path / "mic.sofa").fmt == "mic"


# ----------------------------------------------------------------------------------------------- config file


def test_rooms_yaml(tmp_path):
    from pathlib import Path

    default = rooms.load_rooms_config(Path(__file__).resolve().parents[1] / "configs" / "synth" / "rooms_default.yaml")
    assert default.room == rooms.RoomConfig() and default.scene["gap_s"] == (0.5, 5.0)
    path = tmp_path / "r.yaml"
    path.write_text("room:\n  rt60_s: [0.3, 0.4]\n  num_rooms: 2\nscene:\n  snr_db: [20, 25]\n")
    loaded = rooms.load_rooms_config(path)
    assert loaded.room.rt60_s == (0.3, 0.4) and loaded.room.num_rooms == 2 and loaded.scene == {"snr_db": (20, 25)}
    for text, message in (("room:\n  rt60: [0.3, 0.4]\n", "unknown key 'room.rt60'"),
                          ("room: {}\nscene:\n  duration_s: 5\n", "unknown key 'scene.duration_s'"),
                          ("room: {}\nextra: 1\n", "unknown key 'extra'"),
                          ("room:\n  num_rooms: 2.5\n", "room.num_rooms must be an integer"),
                          ("room:\n  rt60_s: 0.3\n", r"room.rt60_s must be a list \[low, high\]"),
                          ("room:\n  rt60_s: [0.5, 0.3]\n", "rt60_s must be"),
                          ("scene: {}\n", "'room' must be a mapping")):
        path.write_text(text)
        with pytest.raises(InputError, match=message) as err:
            rooms.load_rooms_config(path)
        assert str(path) in str(err.value)
