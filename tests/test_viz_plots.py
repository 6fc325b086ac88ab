"""Plots render headless (no display, no pyplot), break lines at the azimuth seam and at pauses, and read the
evaluation's scores in either form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from av_seld.errors import InputError
from av_seld.io.labels import Events, write_prediction_csv, write_reference_csv
from av_seld.metrics import evaluate_folders
from av_seld.metrics.simulate import simulate_prediction, simulate_reference
from av_seld.viz.plots import (
    plot_class_metrics,
    plot_tracks,
    plot_training_curves,
    read_log_csv,
    track_polylines,
)

REPO = Path(__file__).resolve().parents[1]


def png_size(path):
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable PNG"
    return image.shape[1], image.shape[0]


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    root = tmp_path_factory.mktemp("scored")
    rng = np.random.default_rng(3)
    for k in range(2):
        ref = simulate_reference(rng, 300)
        write_reference_csv(root / "ref" / f"clip{k}.csv", ref)
        write_prediction_csv(root / "pred" / f"clip{k}.csv", simulate_prediction(ref, rng))
    return root, evaluate_folders(root / "ref", root / "pred")


def test_track_lines_break_at_the_seam_and_at_pauses():
    frames = np.array([0, 1, 2, 3, 6, 7])
    azimuth = np.array([170.0, 175.0, 179.0, -178.0, -170.0, -165.0])  # crosses ±180 between frames 2 and 3
    events = Events.from_arrays(frames, np.zeros(6), np.zeros(6), azimuth, np.zeros(6))
    [(t, az, el)] = track_polylines(events, 0)
    breaks = np.flatnonzero(np.isnan(az))
    assert list(breaks) == [3, 5]  # after frame 2 (seam) and after frame 3 (pause)
    np.testing.assert_allclose(t[~np.isnan(t)], frames * 0.1)
    np.testing.assert_array_equal(az[~np.isnan(az)], azimuth)
    # Two tracks of one class stay separate lines; other classes are not mixed in.
    two = Events.from_arrays([0, 0, 1, 1, 0], [2, 2, 2, 2, 5], [0, 1, 0, 1, 0], [10, -90, 12, -88, 0], [0, 0, 0, 0, 0])
    assert len(track_polylines(two, 2)) == 2 and len(track_polylines(two, 5)) == 1


def test_track_plot_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    ref = simulate_reference(rng, 200)
    path = tmp_path / "plots" / "tracks.png"
    plot_tracks(path, simulate_prediction(ref, rng), ref, title="clip")
    width, height = png_size(path)
    assert width > 600 and height > 300
    assert [p.name for p in path.parent.iterdir()] == ["tracks.png"]  # atomic: no temporary file left
    plot_tracks(tmp_path / "pred_only.png", simulate_prediction(ref, rng))
    plot_tracks(tmp_path / "empty.png", Events.empty(), None)
    assert png_size(tmp_path / "empty.png")[0] > 0


def test_class_metrics_from_scores_and_from_json(evaluation, tmp_path):
    root, result = evaluation
    plot_class_metrics(tmp_path / "a.png", result.scores)
    result.write_json(root / "scores.json")
    plot_class_metrics(tmp_path / "b.png", json.loads((root / "scores.json").read_text()))
    # The same picture either way.
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a.png")), cv2.imread(str(tmp_path / "b.png")))
    micro = evaluate_folders(root / "ref", root / "pred", average="micro")
    with pytest.raises(ValueError, match="per-class"):
        plot_class_metrics(None, micro.scores)


def test_training_curves(tmp_path):
    train, val = tmp_path / "train_log.csv", tmp_path / "val_log.csv"
    train.write_text("step,epoch,loss,lr,grad_norm\n" + "".join(
        f"{s},{s // 50},{1 / (1 + s):.5f},{1e-3 * min(1, s / 20):.6f},{2.0:.2f}\n" for s in range(1, 201, 10)))
    val.write_text("step,epoch,ER,F,LE,LR,SELD\n50,1,0.9,0.1,60,0.3,0.7\n100,2,0.8,0.2,50,0.4,0.6\n")
    plot_training_curves(tmp_path / "curves.png", train, val)
    assert png_size(tmp_path / "curves.png")[1] > 800  # 2 training + 5 validation panels
    plot_training_curves(tmp_path / "val_only.png", None, val)
    assert read_log_csv(val)["SELD"].tolist() == [0.7, 0.6]
    bad = tmp_path / "bad_log.csv"
    bad.write_text("step,loss\n1,0.5\n2\n")
    with pytest.raises(InputError, match="bad_log.csv:3"):
        read_log_csv(bad)


def test_training_curves_of_a_one_step_run_show_their_points(tmp_path):
    train, val = tmp_path / "train_log.csv", tmp_path / "val_log.csv"
    train.write_text("step,epoch,loss,lr,grad_norm\n1,0,1.05,1e-08,2.0\n")
    val.write_text("step,epoch,ER,F,LE,LR,SELD\n1,1,0.0,0.0,180,0.0,0.75\n")
    fig = plot_training_curves(None, train, val)
    loss_line = fig.axes[0].lines[0]
    assert loss_line.get_marker() == "o" and loss_line.get_xdata().tolist() == [1.0]  # a lone point is drawn
    assert fig.axes[-1].get_xlim() == (0.0, 2.0)  # a window around the step, not matplotlib's ±0.05
    long = tmp_path / "long_log.csv"
    long.write_text("step,epoch,loss,lr,grad_norm\n" + "".join(f"{s},0,1.0,0.001,1.0\n" for s in range(1, 101)))
    assert plot_training_curves(None, long).axes[0].lines[0].get_marker() in ("None", None, "")  # many: a line


def test_plots_render_without_a_display(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from av_seld.metrics.simulate import simulate_reference\n"
        "from av_seld.viz.plots import plot_tracks\n"
        "ref = simulate_reference(np.random.default_rng(0), 100)\n"
        f"plot_tracks({str(tmp_path / 'x.png')!r}, ref, ref)\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert png_size(tmp_path / "x.png")[0] > 0
