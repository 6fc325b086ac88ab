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


def make_database(folder, layout=None):
    """Two rooms: 'gym' (v7.3; 2 trajectories × 2 heights, one height of trajectory 2 unmeasured) and 'tc352' (older
    MAT-file; 1 × 2). Returns {room name: all DOAs (M, 3) in file order}."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    layout = layout or {"gym": ("rirs_02_gym.mat", 2, [[5, 4], [6, 0]]),
                        "tc352": ("rirs_10_tc352.mat", 1, [[7, 3]])}
    room_table = np.empty((len(layout), 1), dtype=[("name", object), ("year", object), ("rirs", object)])
    all_doas = {}
    for r, (name, (filename, ntraj, heights)) in enumerate(layout.items()):
        doas = trajectory_doas(rng, ntraj, heights)
        doa_table = np.empty((ntraj, len(heights[0])), dtype=[("doa_xyz", object)])
        for t in range(ntraj):
            for h in range(len(heights[0])):
                doa_table[t, h]["doa_xyz"] = doas[t][h] if len(doas[t][h]) else np.zeros((0, 0))
        room_table[r, 0]["name"], room_table[r, 0]["year"], room_table[r, 0]["rirs"] = name, 2019, doa_table
        blocks = {fmt: [[responses_for(doas[t][h], fmt, rng) if len(doas[t][h]) else np.zeros((0, 4, SAMPLES))
                         for h in range(len(heights[0]))] for t in range(ntraj)] for fmt in ("foa", "mic")}
        (write_matlab73_rirs if filename.endswith("gym.mat") else write_v5_rirs)(folder / filename, blocks)
        all_doas[name] = np.concatenate([d for row in doas for d in row if len(d)])
    savemat(folder / "rirdata.mat", {"rirdata": {"fs": 24000.0, "room": room_table}})
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
    """rirdata.mat gives unit DOA vectors only: random scenes and trajectories (even ones with distances) rendered in
    the TAU-SRIR DB are written without a distance column, and a warning says so, once, when the rooms are opened."""
    from av_seld.data.synth_timelines import synthesize_timeline_dataset, timeline_windows
    from av_seld.io.labels import read_reference_csv

    make_database(tmp_path / "db" / "TAU-SRIR_DB")
    with caplog.at_level("WARNING", logger="augment.rooms.selection"):
        spec = rooms.open_rooms(tmp_path / "db", ("foa",))
    [warning] = [r.getMessage() for r in caplog.records]
    assert "rirdata.mat doa_xyz, unit vectors) and no distance" in warning and "no distance column" in warning
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
