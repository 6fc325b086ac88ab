"""bench/decode_sweep.py: the sweep calibrates on the smoothed validation outputs and scores both splits with the
same thresholds (window 1 is what av-seld train's calibration gives)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from av_seld.io.labels import Events
from av_seld.postprocess import smooth_output
from av_seld.training.evaluation import calibrate_thresholds, score_outputs

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("decode_sweep", REPO / "bench" / "decode_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clip(rng, frames: int = 40):
    """A class-1 source at azimuth 0 in frames 10-29 and its output: the vector with noise and a one-frame dip."""
    output = np.zeros((frames, 3, 3, 13), np.float32)
    output[10:30, 0, 0, 1] = 0.8 + 0.05 * rng.standard_normal(20)
    output[20, 0, 0, 1] = 0.1
    output += 0.02 * rng.standard_normal(output.shape).astype(np.float32)
    events = Events.from_arrays(np.arange(10, 30), np.full(20, 1), np.zeros(20, int), np.zeros(20), np.zeros(20))
    return output, events


def test_sweep_rows_are_calibrate_then_score_on_smoothed_outputs():
    sweep = _module().sweep
    rng = np.random.default_rng(0)
    outputs, refs = {"val": {}, "test": {}}, {"val": {}, "test": {}}
    for split in outputs:
        outputs[split]["c0"], refs[split]["c0"] = _clip(rng)
    grid = (0.3, 0.5, 0.7)  # small, so that the test is quick
    rows = sweep(outputs, refs, "val", "test", [1, 3], {"small": grid})
    assert [(r["grid"], r["window"]) for r in rows] == [("small", 1), ("small", 3)]
    for row in rows:
        smoothed = {split: {k: smooth_output(o, row["window"]) for k, o in outputs[split].items()} for split in outputs}
        thresholds = calibrate_thresholds(smoothed["val"], refs["val"], grid=grid)
        assert row["thresholds"] == [round(float(t), 2) for t in thresholds]
        assert row["test"] == score_outputs(smoothed["test"], refs["test"], thresholds=thresholds).summary()
    # the dip splits the event unsmoothed; three frames bridge it
    assert rows[1]["test"]["ER"] <= rows[0]["test"]["ER"]
