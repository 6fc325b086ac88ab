"""Reference and prediction CSVs: parsing, validation errors, dense arrays, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from av_seld.errors import LabelFormatError
from av_seld.io.labels import (
    Events,
    read_prediction_csv,
    read_reference_csv,
    write_prediction_csv,
    write_reference_csv,
)

REFERENCE = "0,1,0,-50,10\n0,1,1,120,-5\n1,1,0,-49,10\n3,4,2,180,0\n"


def test_read_reference_five_columns(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text(REFERENCE)
    ev = read_reference_csv(path)
    assert len(ev) == 4 and not ev.has_distance and ev.num_frames == 4
    assert ev.frame.tolist() == [0, 0, 1, 3]
    assert ev.source.tolist() == [0, 1, 0, 2]
    assert ev.azimuth_deg.tolist() == [-50, 120, -49, 180]
    frames = ev.per_frame()
    assert [len(f) for f in frames] == [2, 1, 0, 1]
    assert frames[0][1].azimuth_deg == 120 and frames[3][0].class_index == 4


def test_read_reference_distance_in_centimetres_becomes_metres(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text("5,2,0,10,20,153\n6,2,0,11,20,160\n")
    ev = read_reference_csv(path)
    assert ev.distance_m.tolist() == pytest.approx([1.53, 1.60])


@pytest.mark.parametrize(
    "text, message",
    [
        ("0,1,0,-50\n", ":1: expected 5 or 6 columns"),
        ("0,1,0,-50,10\n0,1,0,-50,10,3\n", ":2: expected 5 columns like the first row, found 6"),
        ("0,1,0,-50,x\n", ":1: elevation must be an integer, found 'x'"),
        ("0,1,0,-50.5,10\n", ":1: azimuth must be an integer"),
        ("-1,1,0,-50,10\n", ":1: frame must be >= 0, found -1"),
        ("0,13,0,-50,10\n", ":1: class must be in 0..12, found 13"),
        ("0,1,0,-181,10\n", ":1: azimuth must be in \\[-180, 180\\] degrees, found -181"),
        ("0,1,0,0,91\n", ":1: elevation must be in \\[-90, 90\\] degrees, found 91"),
        ("0,1,0,0,10,-3\n", ":1: distance must be >= 0"),
    ],
)
def test_reference_errors_name_file_line_and_problem(tmp_path, text, message):
    path = tmp_path / "bad_ref.csv"
    path.write_text(text)
    with pytest.raises(LabelFormatError, match="bad_ref.csv" + message):
        read_reference_csv(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(LabelFormatError, match="nothere.csv: file not found"):
        read_reference_csv(tmp_path / "nothere.csv")


def test_empty_file_is_no_events(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert len(read_reference_csv(path)) == 0
    assert len(read_prediction_csv(path)) == 0
    assert read_prediction_csv(path).num_frames == 0


def test_prediction_polar_and_cartesian(tmp_path):
    polar = tmp_path / "p.csv"
    polar.write_text("0,1,0,-50.5,10.25\n")
    ev = read_prediction_csv(polar)
    assert ev.azimuth_deg[0] == -50.5 and ev.elevation_deg[0] == 10.25 and ev.distance_m is None
    cart = tmp_path / "c.csv"
    cart.write_text("0,1,0,0,2,0\n")
    ev = read_prediction_csv(cart)  # 6 columns: Cartesian without distance; vectors need not be unit
    assert ev.azimuth_deg[0] == pytest.approx(90) and ev.elevation_deg[0] == pytest.approx(0)
    cart.write_text("1,2,1,0,0,-0.5,1.25\n")
    ev = read_prediction_csv(cart)
    assert ev.elevation_deg[0] == pytest.approx(-90) and ev.distance_m[0] == 1.25


@pytest.mark.parametrize(
    "text, message",
    [
        ("0,1,0,nan,0\n", ":1: azimuth must be finite"),
        ("0,1,0,0,0,0,0,0\n", ":1: expected 5 columns .* or 6/7 columns"),
        ("0,1,0,1,0,0,-2\n", ":1: distance must be >= 0"),
        ("0,1,0,200,0\n", ":1: azimuth must be in"),
        ("a,1,0,0,0\n", ":1: frame must be an integer, found 'a'"),
    ],
)
def test_prediction_errors(tmp_path, text, message):
    path = tmp_path / "bad_pred.csv"
    path.write_text(text)
    with pytest.raises(LabelFormatError, match="bad_pred.csv" + message):
        read_prediction_csv(path)


def test_write_and_read_back_both_forms(tmp_path):
    ev = Events.from_arrays([0, 0, 2], [1, 1, 5], [0, 1, 0], [-179.5, 33.25, 90], [10, -45.5, 89], [1.5, 2, 0.25])
    write_prediction_csv(tmp_path / "polar.csv", ev, form="polar")
    back = read_prediction_csv(tmp_path / "polar.csv")
    np.testing.assert_allclose(back.azimuth_deg, ev.azimuth_deg)
    write_prediction_csv(tmp_path / "cart.csv", ev, form="cartesian")
    assert len((tmp_path / "cart.csv").read_text().splitlines()[0].split(",")) == 7
    back = read_prediction_csv(tmp_path / "cart.csv")
    np.testing.assert_allclose(back.azimuth_deg, ev.azimuth_deg, atol=1e-3)
    np.testing.assert_allclose(back.elevation_deg, ev.elevation_deg, atol=1e-3)
    np.testing.assert_allclose(back.distance_m, ev.distance_m)
    write_reference_csv(tmp_path / "ref.csv", ev)
    assert (tmp_path / "ref.csv").read_text().splitlines()[0] == "0,1,0,-180,10,150"


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "pred.csv"
    path.write_text("old\n")
    with pytest.raises(ValueError):
        write_prediction_csv(path, Events.empty(), form="spherical")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]


def test_to_dense_same_class_slots_and_drops():
    # Frame 0: class 1 from sources 3 and 1 (slots follow source id); frame 1: four class-2 events, 3 fit.
    ev = Events.from_arrays([0, 0, 1, 1, 1, 1, 9], [1, 1, 2, 2, 2, 2, 0], [3, 1, 0, 1, 2, 3, 0],
                            [90, 0, 0, 0, 0, 0, 0], [0, 0, 90, 0, 0, 0, 0])
    dense = ev.to_dense(num_frames=5, num_tracks=3)
    assert dense.activity.shape == (5, 3, 13) and dense.xyz.shape == (5, 3, 13, 3)
    assert dense.activity[0, :, 1].tolist() == [True, True, False]
    np.testing.assert_allclose(dense.xyz[0, 0, 1], [1, 0, 0], atol=1e-7)  # source 1 at azimuth 0 -> slot 0
    np.testing.assert_allclose(dense.xyz[0, 1, 1], [0, 1, 0], atol=1e-7)  # source 3 at azimuth 90 -> slot 1
    np.testing.assert_allclose(dense.xyz[1, 0, 2], [0, 0, 1], atol=1e-7)
    assert dense.activity[1, :, 2].all()
    assert dense.num_dropped == 2  # the fourth class-2 event and the event at frame 9


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    write_prediction_csv(tmp_path / "p.csv", Events.empty())
    assert (tmp_path / "p.csv").stat().st_mode & 0o777 == 0o666 & ~umask
