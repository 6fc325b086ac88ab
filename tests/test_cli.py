"""The `av-seld` command line: evaluate, index and demo, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from av_seld.cli import main
from av_seld.demo import QUICK, run_demo
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


def test_quick_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "DCASE2023 segment-level SELD metrics" in out and "untrained (same network)" in out
    run = tmp_path / "demo" / "runs" / "av_conformer"
    for name in ("best.pt", "config.yaml", "eval/test/scores.json", "report/index.html", "training_curves.png"):
        assert (run / name).is_file(), name
    assert len(list((run / "eval" / "test" / "overlays").glob("*.mp4"))) == 1
    assert len(list((tmp_path / "demo" / "data" / "video_dev" / "dev-test-synth").glob("*.mp4"))) == 1
    # a second run reuses the data and the finished training
    result = run_demo(tmp_path / "demo", size=QUICK, workers=1)
    assert result.report is not None and 0 <= result.trained["F"] <= 1


def test_console_script_and_tool_wrapper(scored_folders):
    ref, pred = scored_folders
    for cmd in ([str(Path(sys.executable).parent / "av-seld")], [sys.executable, str(REPO / "tools" / "evaluate.py")]):
        run = subprocess.run(cmd + ([] if cmd[-1].endswith(".py") else ["evaluate"]) + [str(ref), str(pred)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "SELD score" in run.stdout
