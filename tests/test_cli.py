"""The `av-seld` command line: evaluate, index and demo, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from av_seld.cli import main
from av_seld.demo import run_demo
from av_seld.io.labels import write_prediction_csv, write_reference_csv
from av_seld.metrics.simulate import simulate_prediction, simulate_reference

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def scored_folders(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(3):
        ref = simulate_reference(rng, 200, with_distance=True)
        write_reference_csv(tmp_path / "ref" / "dev-test-x" / f"clip{k}.csv", ref)
        write_prediction_csv(tmp_path / "pred" / f"clip{k}.csv", simulate_prediction(ref, rng), form="cartesian")
    return tmp_path / "ref", tmp_path / "pred"


def test_evaluate_prints_table_and_writes_json(scored_folders, tmp_path, capsys):
    ref, pred = scored_folders
    assert main(["evaluate", str(ref), str(pred), "--json", str(tmp_path / "s.json"), "--jackknife"]) == 0
    out = capsys.readouterr().out
    assert "DCASE2023 segment-level" in out and "SELD score" in out and "female speech" in out
    data = json.loads((tmp_path / "s.json").read_text())
    assert 0 <= data["F"] <= 1 and 0 <= data["LR"] <= 1 and data["num_clips"] == 3
    assert f"{data['SELD']:7.4f}" in out
    assert set(data["confidence_intervals_95"]) == {"ER", "F", "LE", "LR", "SELD"}


def test_evaluate_2024_edition(scored_folders, capsys):
    ref, pred = scored_folders
    assert main(["evaluate", str(ref), str(pred), "--edition", "2024", "--average", "micro"]) == 0
    out = capsys.readouterr().out
    assert "DCASE2024 frame-level" in out and "RDE_CD" in out


def test_bad_input_exits_2_with_the_file_named(scored_folders, capsys):
    ref, pred = scored_folders
    (pred / "clip1.csv").write_text("0,1,0,0\n")
    assert main(["evaluate", str(ref), str(pred)]) == 2
    err = capsys.readouterr().err
    assert "clip1.csv:1: expected 5 columns" in err


def test_index_reports_missing_parts(tmp_path, capsys):
    (tmp_path / "metadata_dev" / "dev-train-a").mkdir(parents=True)
    (tmp_path / "metadata_dev" / "dev-train-a" / "fold3_room1_mix001.csv").write_text("0,1,0,0,0\n")
    assert main(["index", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fold3_room1_mix001" in out


def test_demo_runs_and_ranks_the_simulated_systems(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert "not yet available" in capsys.readouterr().out
    assert len(list((tmp_path / "demo" / "predictions" / "good").glob("*.csv"))) == 6
    seld = run_demo(tmp_path / "again", seed=1)
    assert seld["good"] < seld["noisy_directions"] and seld["good"] < seld["misses_and_false_alarms"]


def test_console_script_and_tool_wrapper(scored_folders):
    ref, pred = scored_folders
    for cmd in ([str(Path(sys.executable).parent / "av-seld")], [sys.executable, str(REPO / "tools" / "evaluate.py")]):
        run = subprocess.run(cmd + ([] if cmd[-1].endswith(".py") else ["evaluate"]) + [str(ref), str(pred)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "SELD score" in run.stdout
