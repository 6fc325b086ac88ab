"""Long library phases report progress: a bar per phase where a command asks for bars, silence elsewhere."""

from __future__ import annotations

import numpy as np

from av_seld.io.labels import Events
from av_seld.training.evaluation import CALIBRATION_GRID, calibrate_thresholds
from av_seld.utils.progress import phase, progress_bars


def test_a_phase_is_silent_outside_progress_bars(capsys):
    with phase("predicting", 3) as update:
        for clip in ("a", "b", "c"):
            update(clip)  # a per-item callback: its argument is ignored
    assert capsys.readouterr().err == ""


def test_a_phase_shows_a_bar_with_its_total_inside_progress_bars(capsys):
    with progress_bars(), phase("predicting", 3) as update:
        for clip in ("a", "b", "c"):
            update(clip)
    err = capsys.readouterr().err
    assert "predicting:" in err and "0/3 [" in err  # a bar with its total (tqdm redraws it at most every 0.1 s)


def test_threshold_calibration_reports_each_trial(capsys):
    frames = 30
    reference = Events.from_arrays(np.arange(frames), np.full(frames, 3), np.zeros(frames), np.full(frames, 30.0),
                                   np.zeros(frames))
    output = np.zeros((frames, 3, 3, 13), np.float32)
    output[:, 0, :, 3] = 0.55 * np.array([np.cos(np.radians(30)), np.sin(np.radians(30)), 0.0])[None]
    with progress_bars():
        thresholds = calibrate_thresholds({"clip": output}, {"clip": reference})
    trials = len(CALIBRATION_GRID) + 13 * (len(CALIBRATION_GRID) - 1)
    err = capsys.readouterr().err
    assert "calibrating thresholds:" in err and f"0/{trials} [" in err
    assert thresholds[3] <= 0.5  # the 0.55-long vector is detected
