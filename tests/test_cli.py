"""The `av-seld` command line: evaluate, index and demo, as a user runs them; the conventions every command keeps
(help texts, --device, a closed pipe, counts in messages)."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from av_seld.cli import build_parser, main
from av_seld.demo import QUICK, run_demo
from av_seld.errors import InputError
from av_seld.io.dataset import index_dataset
from av_seld.io.labels import write_prediction_csv, write_reference_csv
from av_seld.metrics.simulate import simulate_prediction, simulate_reference
from av_seld.utils.device import pick_device
from av_seld.utils.text import count

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
    # the comparison the demo prints is saved beside the evaluations it comes from, and the report shows it
    comparison = json.loads((run / "eval" / "comparison.json").read_text())
    printed = {line.split("  ")[1].strip(): line for line in out.splitlines() if line.startswith("  trained")
               or line.startswith("  untrained")}
    assert [s["system"] for s in comparison["systems"]] == list(printed)
    for system in comparison["systems"]:
        scores = json.loads((run / "eval" / system["eval"] / "scores.json").read_text())
        assert system["SELD"] == pytest.approx(scores["SELD"]) and f"{scores['SELD']:7.3f}" in printed[system["system"]]
    assert "Systems compared" in (run / "report" / "index.html").read_text()
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


def _actions_without_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{path} {name}")
                missing += _actions_without_help(sub, f"{path} {name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_subcommand_option_and_argument_has_help():
    assert _actions_without_help(build_parser(), "av-seld") == []


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_device_option_is_the_same_on_every_command_that_runs_a_model():
    commands = _subcommands()
    helps = {}
    for name in ("train", "infer", "test", "pretrain-visual", "precompute-visual", "demo"):
        [device] = [a for a in commands[name]._actions if "--device" in a.option_strings]
        helps[name] = device.help.split(" (default")[0]
    assert len(set(helps.values())) == 1, helps
    assert "auto, cpu, cuda or cuda:N" in helps["infer"]


def test_pick_device_parses_every_form_and_names_the_option():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match=r"--device: unknown device 'gpu' \(expected auto, cpu, cuda or cuda:N\)"):
        pick_device("gpu")
    with pytest.raises(InputError, match="device: unsupported device 'meta'"):
        pick_device("meta", key="device")
    count = torch.cuda.device_count()
    with pytest.raises(InputError, match=f"--device: cuda:{count} was asked for, but torch sees"):
        pick_device(f"cuda:{count}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("argv", [["infer", "missing.pt", "--audio", "a", "--out", "o"],
                                  ["test", "missing.pt", "root", "--split", "dev-test"],
                                  ["train", "missing.yaml"],
                                  ["pretrain-visual", "missing.yaml"],
                                  ["precompute-visual", "missing_root"],
                                  ["demo", "--out", "unused"]])
def test_asking_for_cuda_without_a_gpu_is_one_error_line_before_any_work(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"av-seld {argv[0]}: error: --device: cuda was asked for, but torch sees no "
                                        "GPU here; use cpu or auto"]
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.parametrize("argv", [["--help"], ["index", "ROOT"]])
def test_a_closed_pipe_ends_the_command_quietly(argv, tmp_path):
    """`av-seld ... | head`: the reader goes away before the output is written; no traceback, SIGPIPE's status."""
    if argv[-1] == "ROOT":
        for k in range(40):  # a listing longer than a pipe buffer is not needed: the pipe is closed before output
            (tmp_path / "metadata_dev" / "dev-train-a").mkdir(parents=True, exist_ok=True)
            (tmp_path / "metadata_dev" / "dev-train-a" / f"fold1_room1_mix{k:03d}.csv").write_text("0,1,0,0,0\n")
        argv = ["index", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "av_seld", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    status = proc.wait(timeout=120)
    # argparse's --help ignores a failed write and exits 0; a command's output gets SIGPIPE's status
    assert status == (0 if argv == ["--help"] else 128 + signal.SIGPIPE)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err


def test_counts_agree_with_their_nouns(tmp_path):
    assert [count(n, "clip") for n in (0, 1, 2)] == ["0 clips", "1 clip", "2 clips"]
    assert count(1, "transformed clip") == "1 transformed clip" and count(3, "GPU") == "3 GPUs"
    (tmp_path / "metadata_dev" / "dev-train-a").mkdir(parents=True)
    (tmp_path / "metadata_dev" / "dev-train-a" / "fold3_room1_mix001.csv").write_text("0,1,0,0,0\n")
    report = index_dataset(tmp_path).report()
    assert "1 clip in 1 split" in report and "dev-train-a (dev): 1 clip" in report


def test_evaluate_table_of_one_clip_says_clip(scored_folders, tmp_path, capsys):
    ref, pred = scored_folders
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "clip0.csv").write_text((pred / "clip0.csv").read_text())
    assert main(["evaluate", str(ref), str(tmp_path / "one")]) == 0
    out = capsys.readouterr().out
    assert "macro average, 1 clip\n" in out and "2 reference files had no prediction and were not scored" in out
