"""The TAU spatial room impulse response database as measured rooms: a tiny database of the same layout
(``rirdata.mat`` with the rooms and DOAs, one ``rirs_NN_<name>.mat`` per room, MATLAB v7.3 or older) read by
``open_response_sets`` and rendered by ``synth-audio --rooms``."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from augment import rooms
from augment.scenes import SceneConfig
from av_seld.arrays import MIC_CAPSULES_XYZ
from av_seld.data.synth_audio import synthesize_audio_dataset
from av_seld.errors import InputError
from av_seld.geometry import angular_distance_deg, cart_to_sph, sph_to_cart

SAMPLES = 480  # the real responses have 7200 (0.3 s at 24 kHz)
DELAY = 40  # samples from the start of a response to its direct sound


def trajectory_doas(rng: np.random.Generator, ntraj: int, heights: list[list[int]]) -> list[list[np.ndarray]]:
    """doa_xyz[t][h]: unit vectors along an arc per trajectory and height; heights[t][h] responses (0: empty)."""
    out = []
    for t in range(ntraj):
        row = []
        for h, count in enumerate(heights[t]):
            az = np.linspace(-170, 170, count) + 7 * t
            el = np.full(count, -20.0 + 15 * h) + rng.uniform(-2, 2, count)
            row.append(sph_to_cart(az, el).reshape(-1, 3))
        out.append(row)
    return out


def responses_for(doa: np.ndarray, fmt: str, rng: np.random.Generator) -> np.ndarray:
    """(N, 4, SAMPLES): the direct sound with the gains of its DOA (FOA W, Y, Z, X; MIC: the capsules' cardioid
    gains) at DELAY, then a small diffuse tail."""
    n = len(doa)
    out = 0.01 * rng.standard_normal((n, 4, SAMPLES)) * np.exp(-np.arange(SAMPLES) / 120.0)
    out[:, :, :DELAY] = 0
    if fmt == "foa":
        gains = np.stack([np.ones(n), doa[:, 1], doa[:, 2], doa[:, 0]], axis=1)
    else:
        gains = 0.5 + 0.5 * doa @ MIC_CAPSULES_XYZ.T
    out[:, :, DELAY] = gains
    return out


def write_matlab73_rirs(path, blocks: dict[str, list[list[np.ndarray]]]) -> None:
    """A MATLAB v7.3 MAT-file (HDF5 after a 512-byte header) holding the struct array rirs(t, h).foa / .mic, as
    MATLAB writes it: each field an h × t array of references to (N, 4, samples) datasets under #refs#."""
    ntraj, nheights = len(blocks["foa"]), len(blocks["foa"][0])
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        group = f.create_group("rirs")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        for fmt, per_traj in blocks.items():
            table = np.empty((nheights, ntraj), dtype=h5py.ref_dtype)
            for t in range(ntraj):
                for h in range(nheights):
                    block = per_traj[t][h]
                    if block.size:
                        ds = refs.create_dataset(f"{fmt}{t}{h}", data=block)
                        ds.attrs["MATLAB_class"] = np.bytes_("double")
                    else:
                        ds = refs.create_dataset(f"{fmt}{t}{h}", data=np.zeros(3, dtype=np.uint64))
                        ds.attrs["MATLAB_class"] = np.bytes_("double")
                        ds.attrs["MATLAB_empty"] = np.uint8(1)
                    table[h, t] = ds.ref
            group.create_dataset(fmt, data=table)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2022 HDF5 schema 1.00 .")


def write_v5_rirs(path, blocks: dict[str, list[list[np.ndarray]]]) -> None:
    """An older MAT-file (scipy.io.savemat): rirs(t, h).foa is a [samples × 4 × N] array."""
    ntraj, nheights = len(blocks["foa"]), len(blocks["foa"][0])
    table = np.empty((ntraj, nheights), dtype=[("foa", object), ("mic", object)])
    for t in range(ntraj):
        for h in range(nheights):
            for fmt in ("foa", "mic"):
                block = blocks[fmt][t][h]
                table[t, h][fmt] = block.transpose(2, 1, 0) if block.size else np.zeros((0, 0))
    savemat(path, {"rirs": table})


MIC_POSITION = (4.0, 3.0, 1.2)  # x, y, z of the array in the room, m (z as in the real measinfo.mat)
# measinfo.mat of the tiny database: 'gym' on circles, 'tc352' on a straight line (start, end: x, y, z in m)
GEOMETRY = {"gym": ("circular", np.array([2.5, 5.0]), np.array([0.8, 1.6])),
            "tc352": ("linear", np.array([[[7.0, 1.0, 1.5], [5.0, 7.0, 1.5]]]), np.array([0.6, 1.8]))}


def source_offsets(name: str, t: int, h: int, count: int) -> np.ndarray:
    """(count, 3) positions of the sources of trajectory t, height h of a room of GEOMETRY, relative to the array
    (m): around the circle of radius r_t, or along the line from its start to its end."""
    kind, paths, heights = GEOMETRY[name]
    if kind == "circular":
        az = np.radians(np.linspace(-170, 170, count) + 7 * t)
        xy = paths[t] * np.stack([np.cos(az), np.sin(az)], axis=1)
    else:
        start, end = paths[t][0, :2], paths[t][1, :2]
        xy = start + np.linspace(0.05, 0.95, count)[:, None] * (end - start) - np.array(MIC_POSITION[:2])
    return np.concatenate([xy, np.full((count, 1), heights[h] - MIC_POSITION[2])], axis=1)


def write_measinfo(path, rooms: dict[str, tuple[str, np.ndarray, np.ndarray]]) -> None:
    """measinfo.mat as the real database ships it: a struct array measinfo(r) with room, trajectories,
    trajectoryType, distances ([1 x T] radii, or [2 x 3 x T] start and end points), heights [1 x H], micPosition."""
    table = np.empty((len(rooms), 1), dtype=[(f, object) for f in ("room", "trajectories", "trajectoryType",
                                                                   "distances", "heights", "micPosition")])
    for r, (name, (kind, paths, heights)) in enumerate(rooms.items()):
        names = np.array([f"traj{t + 1}" for t in range(len(paths))], dtype=object).reshape(1, -1)
        distances = paths.reshape(1, -1) if kind == "circular" else paths.transpose(1, 2, 0)
        table[r, 0] = (name, names, kind, distances, heights.reshape(1, -1), np.array([MIC_POSITION]))
    savemat(path, {"measinfo": table})


def make_database(folder, layout=None, measinfo=False):
    """Two rooms: 'gym' (v7.3; 2 trajectories × 2 heights, one height of trajectory 2 unmeasured) and 'tc352' (older
    MAT-file; 1 × 2). Returns {room name: (M, 3) in file order}: the unit DOAs; with ``measinfo``, the sources'
    positions relative to the array in metres (sources on the trajectories of GEOMETRY; direction: the DOA written
    to rirdata.mat, length: the distance), and a measinfo.mat that lists the rooms in another order, with one more."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    layout = layout or {"gym": ("rirs_02_gym.mat", 2, [[5, 4], [6, 0]]),
                        "tc352": ("rirs_10_tc352.mat", 1, [[7, 3]])}
    room_table = np.empty((len(layout), 1), dtype=[("name", object), ("year", object), ("rirs", object)])
    all_doas = {}
    for r, (name, (filename, ntraj, heights)) in enumerate(layout.items()):
        if measinfo:
            offsets = [[source_offsets(name, t, h, count) for h, count in enumerate(heights[t])]
                       for t in range(ntraj)]
            doas = [[o / np.linalg.norm(o, axis=1, keepdims=True) for o in row] for row in offsets]
        else:
            offsets = doas = trajectory_doas(rng, ntraj, heights)
        doa_table = np.empty((ntraj, len(heights[0])), dtype=[("doa_xyz", object)])
        for t in range(ntraj):
            for h in range(len(heights[0])):
                doa_table[t, h]["doa_xyz"] = doas[t][h] if len(doas[t][h]) else np.zeros((0, 0))
        room_table[r, 0]["name"], room_table[r, 0]["year"], room_table[r, 0]["rirs"] = name, 2019, doa_table
        blocks = {fmt: [[responses_for(doas[t][h], fmt, rng) if len(doas[t][h]) else np.zeros((0, 4, SAMPLES))
                         for h in range(len(heights[0]))] for t in range(ntraj)] for fmt in ("foa", "mic")}
        (write_matlab73_rirs if filename.endswith("gym.mat") else write_v5_rirs)(folder / filename, blocks)
        all_doas[name] = np.concatenate([d for row in offsets for d in row if len(d)])
    savemat(folder / "rirdata.mat", {"rirdata": {"fs": 24000.0, "room": room_table}})
    if measinfo:  # another order than rirdata.mat's, and a room rirdata.mat does not list
        write_measinfo(folder / "measinfo.mat", {"tc352": GEOMETRY["tc352"],
                                                 "pb132": ("circular", np.array([1.5]), np.array([1.0])),
                                                 "gym": GEOMETRY["gym"]})
    return all_doas


def test_rooms_and_directions_are_read_from_rirdata(tmp_path):
    doas = make_database(tmp_path / "TAU-SRIR_DB")
    listed = rooms.tau_srir_rooms(tmp_path / "TAU-SRIR_DB")
    assert [r.name for r in listed] == ["gym", "tc352"]
    assert [r.path.name for r in listed] == ["rirs_02_gym.mat", "rirs_10_tc352.mat"]
    assert rooms.measured_room_count(tmp_path) == 2  # the parent folder of TAU-SRIR_DB works too
    for index, name in enumerate(("gym", "tc352")):
        sets = rooms.open_response_sets(tmp_path, ("foa", "mic"), room=index)
        az, el = cart_to_sph(doas[name])
        for s in sets.values():
            assert len(s.responses) == len(doas[name]) == len(s.azimuth_deg)
            np.testing.assert_allclose(s.azimuth_deg, az, atol=1e-9)
            np.testing.assert_allclose(s.elevation_deg, el, atol=1e-9)
            assert np.isnan(s.distance_m).all()


@pytest.mark.parametrize("room", [0, 1], ids=["matlab-v7.3", "older-mat"])
def test_responses_keep_the_direct_sound_and_gains_of_their_direction(tmp_path, room):
    doas = list(make_database(tmp_path / "TAU-SRIR_DB").values())[room]
    sets = rooms.open_response_sets(tmp_path / "TAU-SRIR_DB", ("foa", "mic"), room=room)
    for m in range(len(doas)):
        foa, mic = sets["foa"].responses[m], sets["mic"].responses[m]
        assert foa.shape == mic.shape == (4, SAMPLES + rooms.MEASURED_PRE_SAMPLES) and foa.dtype == np.float32
        x, y, z = doas[m]
        # the direct sound moved to MEASURED_PRE_SAMPLES with the FOA gains (W, Y, Z, X) of its DOA
        np.testing.assert_allclose(foa[:, rooms.MEASURED_PRE_SAMPLES], [1, y, z, x], atol=1e-6)
        np.testing.assert_allclose(mic[:, rooms.MEASURED_PRE_SAMPLES], 0.5 + 0.5 * MIC_CAPSULES_XYZ @ doas[m],
                                   atol=1e-6)


def test_synth_audio_renders_each_clip_in_the_next_room(tmp_path):
    doas = make_database(tmp_path / "db" / "TAU-SRIR_DB")
    results = list(synthesize_audio_dataset(tmp_path / "out", num_clips=3, split="dev-train-tau-srir", seed=3,
                                            formats=("foa", "mic"), scene=SceneConfig(duration_s=4.0),
                                            rooms=rooms.open_rooms(tmp_path / "db", ("foa", "mic"))))
    assert [r.name for r in results] == ["fold1_room1_mix001", "fold1_room2_mix002", "fold1_room1_mix003"]
    for result, name in zip(results, ("gym", "tc352", "gym")):
        az, el = cart_to_sph(doas[name])
        with open(tmp_path / "out" / "metadata_dev" / "dev-train-tau-srir" / f"{result.name}.csv") as f:
            rows = [[int(v) for v in row] for row in csv.reader(f)]
        assert rows
        for _, _, _, row_az, row_el in rows:  # every label is a measured direction of the clip's room (rounded)
            assert np.min(angular_distance_deg(row_az, row_el, az, el)) < 1.0
        assert (tmp_path / "out" / "mic_dev" / "dev-train-tau-srir" / f"{result.name}.wav").is_file()


def test_a_room_file_that_is_missing_or_lacks_a_format_is_named(tmp_path):
    folder = tmp_path / "TAU-SRIR_DB"
    make_database(folder)
    (folder / "rirs_10_tc352.mat").unlink()
    with pytest.raises(InputError, match="room 'tc352'.*rirs_NN_tc352.mat"):
        rooms.tau_srir_rooms(folder)
    make_database(folder)
    with h5py.File(folder / "rirs_02_gym.mat", "r+") as f:
        del f["rirs"]["mic"]
    with pytest.raises(InputError, match="rirs_02_gym.mat: has no rirs.mic"):
        rooms.open_response_sets(folder, ("foa", "mic"), room=0)
    with pytest.raises(InputError, match="has 2 rooms; room 5"):
        rooms.open_response_sets(folder, ("foa",), room=5)


def test_responses_that_do_not_match_their_doas_are_refused(tmp_path):
    folder = tmp_path / "TAU-SRIR_DB"
    make_database(folder)
    with h5py.File(folder / "rirs_02_gym.mat", "r+") as f:  # trajectory 1, height 1 loses a response
        table = f["rirs"]["foa"]
        shorter = f["#refs#"].create_dataset("shorter", data=f[table[0, 0]][()][:-1])
        refs = table[()]
        refs[0, 0] = shorter.ref
        table[...] = refs
    s = rooms.open_response_sets(folder, ("foa",), room=0)["foa"]
    with pytest.raises(InputError, match=r"rirs\(1, 1\).foa has shape .*expected \[samples x 4 x 5\]"):
        s.responses[0]
    (folder / "rirdata.mat").write_bytes(b"not a MAT-file")
    with pytest.raises(InputError, match="rirdata.mat: cannot be read"):
        rooms.tau_srir_rooms(folder)


def test_tau_clips_have_no_distance_column_and_the_log_says_why(tmp_path, caplog):
    """Without measinfo.mat, rirdata.mat gives unit DOA vectors only: random scenes and trajectories (even ones with
    distances) rendered in the TAU-SRIR DB are written without a distance column, and a warning says so, once, when
    the rooms are opened."""
    from av_seld.data.synth_timelines import synthesize_timeline_dataset, timeline_windows
    from av_seld.io.labels import read_reference_csv

    make_database(tmp_path / "db" / "TAU-SRIR_DB")
    with caplog.at_level("WARNING", logger="augment.rooms.selection"):
        spec = rooms.open_rooms(tmp_path / "db", ("foa",))
    [warning] = [r.getMessage() for r in caplog.records]
    assert "measinfo.mat (source trajectories and heights) was not found" in warning
    assert "no distance column" in warning
    [scene_clip] = synthesize_audio_dataset(tmp_path / "out", num_clips=1, split="s", seed=3,
                                            scene=SceneConfig(duration_s=3.0), rooms=spec)
    timeline = tmp_path / "timelines" / "t.csv"
    timeline.parent.mkdir()
    timeline.write_text("".join(f"{f},3,0,40,10,230\n" for f in range(2, 9)))  # a 2024 reference, with distances
    [timeline_clip] = synthesize_timeline_dataset(tmp_path / "out", windows=timeline_windows(timeline.parent),
                                                  split="t", rooms=spec)
    for split, result in (("s", scene_clip), ("t", timeline_clip)):
        events = read_reference_csv(tmp_path / "out" / "metadata_dev" / split / f"{result.name}.csv")
        assert len(events) and not events.has_distance


def test_distances_come_from_measinfo_for_circular_and_straight_trajectories(tmp_path):
    """measinfo.mat lists its rooms in another order than rirdata.mat, and one more: each room is found by name, and
    every response's distance is that of its source (on a circle, or where its DOA meets a straight path)."""
    offsets = make_database(tmp_path / "TAU-SRIR_DB", measinfo=True)
    for index, name in enumerate(("gym", "tc352")):
        for s in rooms.open_response_sets(tmp_path, ("foa", "mic"), room=index).values():
            np.testing.assert_allclose(s.distance_m, np.linalg.norm(offsets[name], axis=1), rtol=1e-9)
            az, el = cart_to_sph(offsets[name])
            np.testing.assert_allclose(s.azimuth_deg, az, atol=1e-9)
            np.testing.assert_allclose(s.elevation_deg, el, atol=1e-9)
    straight = np.linalg.norm(offsets["tc352"], axis=1)
    assert np.ptp(straight) > 1.0  # the distance changes along the line: read per response, not per trajectory


def _rows_match_measured_distances(csv_path, offsets: np.ndarray) -> int:
    """Check that every row of a 6-column reference carries the distance (cm) of a measured response within 1° of
    its direction; returns the row count."""
    from av_seld.io.labels import read_reference_csv

    events = read_reference_csv(csv_path)
    assert len(events) and events.has_distance
    az, el = cart_to_sph(offsets)
    measured_cm = np.round(np.linalg.norm(offsets, axis=1) * 100)
    for row_az, row_el, row_m in zip(events.azimuth_deg, events.elevation_deg, events.distance_m):
        near = angular_distance_deg(row_az, row_el, az, el) < 1.0
        assert near.any() and round(row_m * 100) in measured_cm[near]
    return len(events)


def test_tau_clips_carry_the_distances_of_measinfo(tmp_path, caplog):
    """With measinfo.mat, no warning, and clips rendered in the TAU rooms (random scenes and timelines, whose own
    distances cannot be honoured) carry the distance column of the responses they were rendered with."""
    from av_seld.data.synth_timelines import synthesize_timeline_dataset, timeline_windows

    offsets = make_database(tmp_path / "db" / "TAU-SRIR_DB", measinfo=True)
    with caplog.at_level("WARNING", logger="augment.rooms.selection"):
        spec = rooms.open_rooms(tmp_path / "db", ("foa",))
    assert not caplog.records
    scene_clips = list(synthesize_audio_dataset(tmp_path / "out", num_clips=2, split="s", seed=3,
                                                scene=SceneConfig(duration_s=3.0), rooms=spec))
    timeline = tmp_path / "timelines" / "t.csv"
    timeline.parent.mkdir()
    timeline.write_text("".join(f"{f},3,0,40,10,230\n" for f in range(2, 9)))  # a 2024 reference, with distances
    timeline_clips = list(synthesize_timeline_dataset(tmp_path / "out", windows=timeline_windows(timeline.parent),
                                                      split="t", num_clips=2, rooms=spec))
    for split, results in (("s", scene_clips), ("t", timeline_clips)):
        for result, name in zip(results, ("gym", "tc352")):
            assert _rows_match_measured_distances(
                tmp_path / "out" / "metadata_dev" / split / f"{result.name}.csv", offsets[name])


def test_a_measinfo_that_is_unreadable_or_lacks_a_room_is_named(tmp_path):
    folder = tmp_path / "TAU-SRIR_DB"
    make_database(folder, measinfo=True)
    write_measinfo(folder / "measinfo.mat", {"tc352": GEOMETRY["tc352"]})
    with pytest.raises(InputError, match="measinfo.mat: has no room 'gym'"):
        rooms.open_response_sets(folder, ("foa",), room=0)
    write_measinfo(folder / "measinfo.mat", {"gym": GEOMETRY["gym"], "tc352": ("linear", np.ones((1, 2, 2)),
                                                                             np.array([0.6, 1.8]))})
    with pytest.raises(InputError, match=r"measinfo.mat: cannot be read .*room 'tc352': a linear trajectory starts "
                                         r"where it ends"):
        rooms.tau_srir_rooms(folder)
    write_measinfo(folder / "measinfo.mat", {"gym": ("circular", np.array([2.5]), np.array([0.8, 1.6])),
                                             "tc352": GEOMETRY["tc352"]})
    with pytest.raises(InputError, match=r"measinfo.mat \(room 'gym'\): has 1 trajectories and 2 heights; "
                                         r"rirdata.mat has responses at trajectory 2"):
        rooms.tau_srir_rooms(folder)
    savemat(folder / "measinfo.mat", {"measinfo": {"room": "gym", "distances": np.array([[2.5, 5.0]])}})
    with pytest.raises(InputError, match="measinfo.mat: cannot be read .*no field 'trajectoryType'"):
        rooms.tau_srir_rooms(folder)
    (folder / "measinfo.mat").write_bytes(b"not a MAT-file")
    with pytest.raises(InputError, match="measinfo.mat: cannot be read as the TAU-SRIR DB's measinfo.mat"):
        rooms.open_rooms(folder, ("foa",))


def test_timelines_in_tau_rooms_are_labelled_with_the_measured_directions_rendered(tmp_path):
    """The trajectory route with measured responses writes, frame by frame, the nearest measured direction each
    frame was rendered at (not the input's direction, which no response was measured at), static or moving."""
    from av_seld.data.synth_timelines import synthesize_timeline_dataset, timeline_windows
    from av_seld.io.labels import read_reference_csv

    doas = make_database(tmp_path / "db" / "TAU-SRIR_DB")
    spec = rooms.open_rooms(tmp_path / "db", ("foa",))
    moving = {f: (int(round(-100 + 9.5 * (f - 3))), int(round(5 - 1.2 * (f - 3)))) for f in range(3, 21)}
    static = {f: (40, 10) for f in range(2, 9)}
    timeline = tmp_path / "timelines" / "t.csv"
    timeline.parent.mkdir()
    rows = [(f, 3, 0, *static[f]) for f in static] + [(f, 5, 1, *moving[f]) for f in moving]
    timeline.write_text("".join(",".join(map(str, row)) + "\n" for row in sorted(rows)))
    results = list(synthesize_timeline_dataset(tmp_path / "out", windows=timeline_windows(timeline.parent),
                                               split="t", num_clips=2, rooms=spec))
    off_grid = 0
    for result, name in zip(results, ("gym", "tc352")):
        az, el = cart_to_sph(doas[name])
        events = read_reference_csv(tmp_path / "out" / "metadata_dev" / "t" / f"{result.name}.csv")
        assert len(events) == len(rows) and not events.has_distance
        for frame, cls, row_az, row_el in zip(events.frame, events.class_index, events.azimuth_deg,
                                              events.elevation_deg):
            asked = (static if cls == 3 else moving)[int(frame)]
            nearest = int(np.argmax(sph_to_cart(az, el) @ sph_to_cart(*asked)))
            assert np.min(angular_distance_deg(row_az, row_el, az, el)) < 1.0  # a measured direction of the room
            assert angular_distance_deg(row_az, row_el, az[nearest], el[nearest]) < 0.75  # whole degrees of it
            off_grid += angular_distance_deg(*asked, az[nearest], el[nearest]) > 2.0
    assert off_grid > len(rows)  # most inputs lie between measured directions: the labels had to change


def test_a_response_that_misses_its_straight_path_gets_no_distance(caplog):
    """A DOA that cannot meet the straight trajectory's line (pointing away from it) is left unknown, with a warning;
    the other responses keep the distance of the ray-line intersection."""
    geometry = rooms.tau_srir.TauGeometry(circular=False, paths=np.array([[[2.0, 1.0], [2.0, -1.0]]]),
                                          heights_m=np.array([1.2]), mic_m=np.array([0.0, 0.0, 1.2]))
    doa = sph_to_cart(np.array([0.0, 26.565051177, 180.0]), np.zeros(3)).reshape(-1, 3)
    with caplog.at_level("WARNING", logger="augment.rooms.tau_srir"):
        [[distances]] = rooms.tau_srir.response_distances(geometry, ((doa,),), "measinfo.mat (room 'x')")
    np.testing.assert_allclose(distances[:2], [2.0, np.sqrt(5.0)], rtol=1e-6)
    assert np.isnan(distances[2])
    assert "1 responses of trajectory 1, height 1 do not point at the trajectory's line" in caplog.text
