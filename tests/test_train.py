"""End-to-end training smoke tests: debug_tiny trains, resumes, infers and scores; DDP ranks stay in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from av_seld.cli import main
from av_seld.config import load_config
from av_seld.io.labels import read_prediction_csv
from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "debug_tiny.yaml"


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    for split, clips, seed, fold in (("dev-train", 4, 1, 1), ("dev-val", 2, 2, 2)):
        assert main(["synth-audio", str(root), "--num-clips", str(clips), "--duration", "4", "--split", split,
                     "--seed", str(seed), "--fold", str(fold)]) == 0
    return root


def overrides(root, out_dir, *extra):
    return [f"data.roots=[{root}]", "data.val_splits=[dev-val]", "data.test_splits=[dev-val]",
            f"train.out_dir={out_dir}", "train.max_steps=3", *extra]


def test_debug_tiny_trains_resumes_and_infers(tiny_root, tmp_path, capsys):
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path)]) == 0
    run = tmp_path / "debug_tiny"
    for name in ("config.yaml", "train_log.csv", "val_log.csv", "last.pt", "best.pt", "eval/test/scores.json"):
        assert (run / name).is_file(), name
    assert len(list((run / "eval" / "test" / "pred").glob("*.csv"))) == 2
    captured = capsys.readouterr()
    out = captured.out
    assert "DCASE2023 segment-level SELD metrics" in out and "run folder" in out
    # the test table has its own heading, after the validation line; the phases after training show progress
    assert out.index("validation (best checkpoint") < out.index("test (best checkpoint") < out.index("DCASE2023")
    assert all(name in captured.err for name in ("predicting", "calibrating thresholds", "test: predicting"))
    assert load_config(run / "config.yaml").train.max_steps == 3

    # a second run into the same folder must not clobber it
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path)]) == 2

    # resume continues from the saved step
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path)[:-1], "train.max_steps=5", "--resume"]) == 0
    payload = load_checkpoint(run / "last.pt")
    assert payload["train_state"]["step"] == 5
    steps = [int(line.split(",")[0]) for line in (run / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] == 5

    # the model is rebuilt from the checkpoint alone; infer writes one CSV per clip, ensembles too
    best = load_checkpoint(run / "best.pt")
    assert best["thresholds"].shape == (13,)
    model = build_model_from_checkpoint(best)
    assert sum(p.numel() for p in model.parameters()) > 0
    audio = tiny_root / "foa_dev" / "dev-val"
    assert main(["infer", str(run / "best.pt"), str(run / "last.pt"), "--audio", str(audio),
                 "--out", str(tmp_path / "pred")]) == 0
    written = sorted((tmp_path / "pred").glob("*.csv"))
    assert [p.stem for p in written] == sorted(p.stem for p in audio.glob("*.wav"))
    for path in written:
        events = read_prediction_csv(path)
        assert len(events) == 0 or events.frame.max() < 40
    assert main(["evaluate", str(tiny_root / "metadata_dev" / "dev-val"), str(tmp_path / "pred")]) == 0

    # the test scores train reports are what infer + evaluate give on its best checkpoint
    assert main(["infer", str(run / "best.pt"), "--audio", str(audio), "--out", str(tmp_path / "pred_best")]) == 0
    assert main(["evaluate", str(tiny_root / "metadata_dev" / "dev-val"), str(tmp_path / "pred_best"),
                 "--json", str(tmp_path / "scores.json")]) == 0
    reported = json.loads((run / "eval" / "test" / "scores.json").read_text())
    keys = ("SELD", "ER", "F", "LE", "LR", "classwise")
    assert {k: json.loads((tmp_path / "scores.json").read_text())[k] for k in keys} == {k: reported[k] for k in keys}
    for path in sorted((tmp_path / "pred_best").glob("*.csv")):
        assert path.read_text() == (run / "eval" / "test" / "pred" / path.name).read_text()

    # MIC audio to an FOA checkpoint is refused where the folder says so; --video to an audio model is ignored aloud
    import shutil

    shutil.copytree(audio, tmp_path / "mic_dev" / "dev-val")
    assert main(["infer", str(run / "best.pt"), "--audio", str(tmp_path / "mic_dev" / "dev-val"),
                 "--out", str(tmp_path / "pred_mic")]) == 2
    assert "MIC audio" in capsys.readouterr().err
    assert main(["infer", str(run / "best.pt"), "--audio", str(audio), "--video", str(tmp_path),
                 "--out", str(tmp_path / "pred_v")]) == 0

    # av-seld test = infer + evaluate in one command
    assert main(["test", str(run / "best.pt"), str(tiny_root), "--split", "dev-val", "--out", str(tmp_path / "t")]) == 0
    tested = json.loads((tmp_path / "t" / "scores.json").read_text())
    assert {k: tested[k] for k in keys} == {k: reported[k] for k in keys}

    # the Python API gives the same events, from a path or from an array
    import av_seld
    from av_seld.io.audio import read_wav

    predictor = av_seld.load(run / "best.pt")
    assert predictor.audio_format == "foa" and not predictor.uses_video
    wav = sorted(audio.glob("*.wav"))[0]
    result = predictor.predict(wav)
    assert result.output.shape[1:] == (3, 3, 13)
    assert result.to_csv(tmp_path / "api.csv").read_text() == (tmp_path / "pred_best" / f"{wav.stem}.csv").read_text()
    np.testing.assert_array_equal(predictor.predict(read_wav(wav)).output, result.output)
    with pytest.raises(ValueError, match="4 channels"):
        predictor.predict(np.zeros((2, 24000), np.float32))

    # distillation from the run's checkpoint as a frozen teacher, with the intermediate-feature loss
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path)[:-1], "train.max_steps=2", "train.name=student",
                 f"distill.teacher={run / 'best.pt'}", "distill.feature_weight=0.5", "data.test_splits=[]", "data.acs=true"]) == 0
    assert (tmp_path / "student" / "best.pt").is_file()

    # fine-tuning: a new run starts from the checkpoint's weights with a fresh optimizer and schedule
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path)[:-1], "train.max_steps=1", "train.name=tuned",
                 f"train.init_from={run / 'best.pt'}", "optim.lr=1e-12", "optim.warmup_steps=0",
                 "data.test_splits=[]"]) == 0
    tuned = load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert tuned["train_state"]["step"] == 1
    for key, value in best["model_state"].items():
        if key.endswith("weight") and "norm" not in key and "bn" not in key:
            torch.testing.assert_close(tuned["model_state"][key], value, atol=1e-6, rtol=0)


def test_a_recipe_with_test_time_rotations_and_smoothing_reports_what_infer_gives(tiny_root, tmp_path):
    """eval.tta and eval.smooth_frames travel in the checkpoint: calibration, the test scores, infer and the API all
    rotate and smooth; --no-tta and tta=False turn the rotations off."""
    from dataclasses import replace

    import av_seld
    from av_seld.io.audio import read_wav
    from av_seld.postprocess import smooth_output
    from av_seld.training.predict import load_for_inference, predict_audio

    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path)[:-1], "train.max_steps=2", "eval.tta=true",
                 "eval.smooth_frames=3"]) == 0
    run = tmp_path / "debug_tiny"
    payload = load_checkpoint(run / "best.pt")
    assert payload["tta"] is True and payload["smooth_frames"] == 3
    audio = tiny_root / "foa_dev" / "dev-val"
    loaded = load_for_inference(run / "best.pt", torch.device("cpu"))
    samples = torch.from_numpy(read_wav(sorted(audio.glob("*.wav"))[0]))
    raw = predict_audio([replace(loaded, smooth_frames=1)], samples)
    np.testing.assert_allclose(predict_audio([loaded], samples), smooth_output(raw, 3), atol=1e-6)
    assert main(["infer", str(run / "best.pt"), "--audio", str(audio), "--out", str(tmp_path / "pred")]) == 0
    for path in sorted((tmp_path / "pred").glob("*.csv")):
        assert path.read_text() == (run / "eval" / "test" / "pred" / path.name).read_text()
    wav = sorted(audio.glob("*.wav"))[0]
    rotated, plain = av_seld.load(run / "best.pt").predict(wav), av_seld.load(run / "best.pt", tta=False).predict(wav)
    assert np.abs(rotated.output - plain.output).max() > 1e-4
    assert main(["infer", str(run / "best.pt"), "--audio", str(audio), "--out", str(tmp_path / "plain"),
                 "--no-tta"]) == 0
    assert (tmp_path / "plain" / f"{wav.stem}.csv").read_text() == \
        av_seld.load(run / "best.pt", tta=False).predict(wav).to_csv(tmp_path / "api.csv").read_text()


def test_init_stats_standardises_with_the_starting_checkpoints_statistics(tiny_root, tmp_path, capsys):
    """train.init_stats: the fine-tuned run reads (and keeps, for infer and --resume) the statistics of the checkpoint
    it starts from, not its training set's; without train.init_from it is a config error."""
    from av_seld.training.checkpoint import save_checkpoint

    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path)[:-1], "train.max_steps=1",
                 "data.test_splits=[]"]) == 0
    source = load_checkpoint(tmp_path / "debug_tiny" / "best.pt")
    source["feature_mean"] = np.asarray(source["feature_mean"]) + 3.0  # as if pre-trained on louder scenes
    source["feature_std"] = np.asarray(source["feature_std"]) * 2.0
    save_checkpoint(tmp_path / "pretrained.pt", source)
    tuned = ["train", str(TINY), *overrides(tiny_root, tmp_path)[:-1], "data.test_splits=[]",
             f"train.init_from={tmp_path / 'pretrained.pt'}", "train.init_stats=true"]
    assert main([*tuned, "train.max_steps=1", "train.name=tuned"]) == 0
    changed = dict(source, feature_mean=source["feature_mean"] + 5.0)
    save_checkpoint(tmp_path / "pretrained.pt", changed)  # a resumed run keeps the statistics it started with
    assert main([*tuned, "train.max_steps=2", "train.name=tuned", "--resume"]) == 0
    run = load_checkpoint(tmp_path / "tuned" / "best.pt")
    assert load_checkpoint(tmp_path / "tuned" / "last.pt")["train_state"]["step"] == 2
    np.testing.assert_allclose(np.asarray(run["feature_mean"]), source["feature_mean"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(run["feature_std"]), source["feature_std"], rtol=1e-6)
    capsys.readouterr()
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path), "train.init_stats=true",
                 "train.name=alone"]) == 2
    assert "train.init_stats" in capsys.readouterr().err


def test_init_lr_scale_slows_only_the_weights_init_from_loads(tiny_root, tmp_path, capsys):
    """optim.init_lr_scale: the parameters train.init_from loads train at that fraction of the rate (here almost
    none, so they stay as loaded), through --resume too; at 1 they move; without init_from it is a config error."""
    from av_seld.training.run import parameter_groups

    base = ["train", str(TINY), *overrides(tiny_root, tmp_path)[:-1], "data.test_splits=[]", "eval.calibrate=false"]
    assert main([*base, "train.max_steps=1"]) == 0
    source = load_checkpoint(tmp_path / "debug_tiny" / "best.pt")["model_state"]
    tuned = [*base, f"train.init_from={tmp_path / 'debug_tiny' / 'best.pt'}", "data.val_splits=[]"]
    assert main([*tuned, "optim.init_lr_scale=1e-9", "train.max_steps=2", "train.name=slow"]) == 0
    assert main([*tuned, "optim.init_lr_scale=1e-9", "train.max_steps=4", "train.name=slow", "--resume"]) == 0
    assert main([*tuned, "train.max_steps=4", "train.name=full"]) == 0
    slow, full = (load_checkpoint(tmp_path / name / "last.pt") for name in ("slow", "full"))
    assert slow["train_state"]["step"] == 4
    weights = [k for k in source if k.endswith(".weight") and "bn" not in k and "norm" not in k]
    assert weights
    for key in weights:
        torch.testing.assert_close(slow["model_state"][key], source[key], rtol=0, atol=1e-6)
    assert any(not torch.allclose(full["model_state"][k], source[k], atol=1e-4) for k in weights)

    config = load_config(TINY, [*tuned[2:], "optim.init_lr_scale=0.25"])
    model = build_model_from_checkpoint(load_checkpoint(tmp_path / "debug_tiny" / "best.pt"))
    extra = [torch.nn.Parameter(torch.zeros(2))]  # a loss's own parameter: always at the full rate
    groups = parameter_groups(model, extra, config)
    assert [g.get("lr_scale", 1.0) for g in groups] == [1.0, 0.25]
    assert groups[0]["params"] == extra and len(groups[1]["params"]) == len(list(model.parameters()))
    capsys.readouterr()
    assert main([*base, "optim.init_lr_scale=0.5", "train.name=alone"]) == 2
    assert "optim.init_lr_scale" in capsys.readouterr().err


def test_a_killed_run_resumes_from_its_last_step_checkpoint_without_duplicate_log_rows(tiny_root, tmp_path):
    from av_seld.training.hooks import Hook
    from av_seld.training.run import train

    class Die(Hook):  # a SIGKILL after step 5: nothing runs after it
        def after_step(self, trainer, metrics):
            if trainer.state.step == 5:
                raise SystemExit("killed")

    args = overrides(tiny_root, tmp_path)[:-1] + ["train.max_steps=8", "train.epochs=20", "train.log_every_steps=1",
                                                  "train.checkpoint_every_steps=2", "data.test_splits=[]",
                                                  "eval.calibrate=false"]
    with pytest.raises(SystemExit):
        train(load_config(TINY, args), extra_hooks=[Die()])
    run = tmp_path / "debug_tiny"
    assert load_checkpoint(run / "last.pt")["train_state"]["step"] == 4  # 3 steps per epoch: saved mid-epoch
    assert main(["train", str(TINY), *args, "--resume"]) == 0
    assert load_checkpoint(run / "last.pt")["train_state"]["step"] == 8
    steps = [int(line.split(",")[0]) for line in (run / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 9))
    val_steps = [int(line.split(",")[0]) for line in (run / "val_log.csv").read_text().splitlines()[1:]]
    assert val_steps == sorted(set(val_steps))


def test_resume_with_another_config_is_refused_before_writing_and_safe_changes_are_logged(tiny_root, tmp_path, capsys,
                                                                                         caplog):
    args = [*overrides(tiny_root, tmp_path)[:-1], "train.max_steps=2", "data.val_splits=[]", "data.test_splits=[]"]
    assert main(["train", str(TINY), *args]) == 0
    run = tmp_path / "debug_tiny"
    saved = (run / "config.yaml").read_bytes()
    checkpoint = (run / "last.pt").read_bytes()
    capsys.readouterr()
    for changed in (["model.params.dim=16", "model.params.heads=4"], ["optim.lr=0.01"]):
        assert main(["train", str(TINY), *args, *changed, "--resume"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err
        assert f"{TINY} + overrides: --resume: differs from the run's {run / 'config.yaml'} in" in err
        for item in changed:
            key, value = item.split("=")
            assert f"{key}: {float(value) if '.' in value else int(value)!r} here" in err
        assert (run / "config.yaml").read_bytes() == saved and (run / "last.pt").read_bytes() == checkpoint
    with caplog.at_level("INFO"):
        assert main(["train", str(TINY), *args[:-3], "train.max_steps=3", *args[-2:], "--resume"]) == 0
    assert "resuming" in caplog.text and "train.max_steps: 2 -> 3" in caplog.text
    assert load_config(run / "config.yaml").train.max_steps == 3
    assert load_checkpoint(run / "last.pt")["train_state"]["step"] == 3


def test_ctrl_c_saves_the_checkpoint_and_exits_130(tiny_root, tmp_path):
    import signal
    import time

    args = [*overrides(tiny_root, tmp_path)[:-1], "train.max_steps=100000", "train.epochs=100000",
            "train.log_every_steps=1", "train.checkpoint_every_steps=1000", "data.val_splits=[]", "data.test_splits=[]"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "av_seld", "train", str(TINY), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "debug_tiny" / "train_log.csv"
    deadline = time.monotonic() + 120
    while (not log.exists() or len(log.read_text().splitlines()) < 5) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    last = tmp_path / "debug_tiny" / "last.pt"
    step = load_checkpoint(last)["train_state"]["step"]
    assert f"av-seld train: interrupted by SIGINT at step {step}; saved {last} (continue with --resume)" in err
    assert "Traceback" not in err
    assert int(log.read_text().splitlines()[-1].split(",")[0]) == step  # every step logged is in the checkpoint


def test_sigkill_loses_at_most_one_checkpoint_interval_and_resume_completes(tiny_root, tmp_path):
    import time

    every = 4
    args = [*overrides(tiny_root, tmp_path)[:-1], "train.max_steps=40", "train.epochs=100", "train.log_every_steps=1",
            f"train.checkpoint_every_steps={every}", "data.val_splits=[]", "data.test_splits=[]"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "av_seld", "train", str(TINY), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "debug_tiny" / "train_log.csv"
    deadline = time.monotonic() + 120
    while (not log.exists() or len(log.read_text().splitlines()) < 12) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    logged = int(log.read_text().splitlines()[-1].split(",")[0])
    saved = load_checkpoint(tmp_path / "debug_tiny" / "last.pt")["train_state"]["step"]
    assert logged - every < saved <= logged  # saved every 4 steps and at each epoch end (3 steps)
    assert main(["train", str(TINY), *args, "--resume"]) == 0
    steps = [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]
    assert steps == list(range(1, 41))
    assert load_checkpoint(tmp_path / "debug_tiny" / "last.pt")["train_state"]["step"] == 40


def test_a_run_started_with_relative_paths_keeps_its_references(tiny_root, tmp_path, monkeypatch):
    # make demo passes relative folders; the report resolves reference.json from the evaluation folder.
    from av_seld.viz.report import find_evaluations

    monkeypatch.chdir(tiny_root.parent)
    out = os.path.relpath(tmp_path, tiny_root.parent)
    assert main(["train", str(TINY), *overrides(tiny_root.name, out)]) == 0
    [test_eval] = [e for e in find_evaluations(Path(out) / "debug_tiny") if e.name == "test"]
    assert sorted(test_eval.references) == sorted(p.name for p in (tiny_root / "metadata_dev" / "dev-val").glob("*.csv"))


def test_config_errors_are_reported_with_the_key(tiny_root, tmp_path, capsys):
    assert main(["train", str(TINY), "optim.lrr=1"]) == 2
    assert "optim.lrr" in capsys.readouterr().err


@pytest.mark.parametrize("override, message, checked_first", [
    ("model.params.depthh=2", "model.params.depthh: not an argument of resnet_conformer (its arguments: in_channels, ",
     True),
    ("model.name=resnet_conformr", "model.name: unknown model 'resnet_conformr' (available: av_conformer, resnet_",
     True),
    ("loss.name=adpitt", "loss.name: unknown loss 'adpitt' (available: adpit, ", True),
    # values are the model's to judge, when it is built
    ("model.params.heads=3", "model.params of resnet_conformer: dim (8) must be divisible by heads (3)", False),
])
def test_model_config_errors_name_the_recipe_and_key_and_list_the_choices(tiny_root, tmp_path, capsys, override,
                                                                         message, checked_first):
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path), override]) == 2
    err = capsys.readouterr().err
    assert f"av-seld train: error: {TINY} + overrides: {message}" in err and err.count("\n") == 1
    assert (tmp_path / "debug_tiny").exists() != checked_first  # names are checked before anything is written


def test_a_device_this_machine_lacks_is_one_error_line(tiny_root, tmp_path, capsys):
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path), "train.device=cuda:99"]) == 2
    err = capsys.readouterr().err
    assert f"av-seld train: error: {TINY} + overrides: train.device: cuda:99 was asked for, but torch sees " in err
    assert main(["infer", str(tmp_path / "none.pt"), "--audio", str(tmp_path), "--out", str(tmp_path / "p"),
                 "--device", "cuda:99"]) == 2
    assert "av-seld infer: error: --device: cuda:99 was asked for" in capsys.readouterr().err
    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path), "train.device=tpu"]) == 2
    assert "train.device: unknown device 'tpu'" in capsys.readouterr().err


def test_nested_model_arguments_are_checked():
    from av_seld.models import ModelArgumentError, check_model_arguments

    check_model_arguments("av_conformer", {"audio_model": "seldnet", "audio_kwargs": {"in_channels": 7}})
    with pytest.raises(ModelArgumentError, match=r"params.audio_kwargs.dimm: not an argument of resnet_conformer"):
        check_model_arguments("av_conformer", {"audio_kwargs": {"dimm": 8}})
    with pytest.raises(ModelArgumentError, match=r"params.audio_model: unknown model 'nope'"):
        check_model_arguments("av_conformer", {"audio_model": "nope"})


def test_unknown_yolo_model_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["precompute-visual", str(tmp_path), "--model", "yolo99x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --model: unknown YOLO model 'yolo99x'; expected one of yolov8{n,s,m,l,x}, yolo11{n,s,m,l,x}" in err


DDP_SCRIPT = """
import sys, torch
from av_seld.config import load_config
from av_seld.training import distributed
from av_seld.training.hooks import Hook
from av_seld.training.run import train

class SaveWeights(Hook):
    def after_train(self, trainer):
        # parameters only: batch-norm running statistics are per rank after the last forward (rank 0's are saved)
        weights = {k: v.detach() for k, v in trainer.module.named_parameters()}
        torch.save(weights, f"{sys.argv[1]}/rank{distributed.rank()}.pt")

torch.set_num_threads(1)
config = load_config(sys.argv[2], sys.argv[3:])
train(config, extra_hooks=[SaveWeights()])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo is exercised on Linux")
def test_ddp_two_cpu_ranks_end_with_identical_weights(tiny_root, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    # `python -m torch.distributed.run` is torchrun without its console script, whose shebang goes stale
    # when a virtual environment is moved or cached elsewhere.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path), str(TINY),
           *overrides(tiny_root, tmp_path / "runs"), "data.test_splits=[]", "data.val_splits=[]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    assert w0.keys() == w1.keys()
    for key in w0:
        torch.testing.assert_close(w0[key], w1[key], rtol=0, atol=0)
    saved = load_checkpoint(tmp_path / "runs" / "debug_tiny" / "last.pt")
    assert saved["train_state"]["step"] == 2  # 12 chunks, 6 per rank, batch 4: one step per epoch, two epochs
    for key, value in w0.items():
        torch.testing.assert_close(saved["trained_state"][key], value, rtol=0, atol=0)


DDP_SIGNAL_SCRIPT = """
import os, signal, sys, torch
from av_seld.config import load_config
from av_seld.errors import Interrupted
from av_seld.training import distributed
from av_seld.training.hooks import Hook
from av_seld.training.run import train

class SignalRankOne(Hook):  # as if only rank 1 got the Ctrl-C
    def after_step(self, trainer, metrics):
        if trainer.state.step == 2 and distributed.rank() == 1:
            os.kill(os.getpid(), signal.SIGINT)

torch.set_num_threads(1)
try:
    train(load_config(sys.argv[2], sys.argv[3:]), extra_hooks=[SignalRankOne()])
except Interrupted as err:
    print(f"rank {distributed.rank()}: {err}", flush=True)
    sys.exit(130)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo is exercised on Linux")
def test_ddp_ranks_stop_together_when_one_gets_the_signal(tiny_root, tmp_path):
    script = tmp_path / "ddp_signal.py"
    script.write_text(textwrap.dedent(DDP_SIGNAL_SCRIPT))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path), str(TINY), *overrides(tiny_root, tmp_path / "runs")[:-1], "train.max_steps=50",
           "train.epochs=50", "data.test_splits=[]", "data.val_splits=[]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    last = tmp_path / "runs" / "debug_tiny" / "last.pt"
    assert f"rank 0: SIGINT at step 2; saved {last}" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "rank 1: SIGINT at step 2" in proc.stdout
    assert load_checkpoint(last)["train_state"]["step"] == 2


def test_online_features_run_the_pipeline_on_the_device_and_train(tiny_root, tmp_path):
    """data.online_features: the training set stops its pipeline before featurize, and its device part turns the
    raw audio batches into the standardised, masked features the cached route gives (tests/test_pipeline.py checks
    the numbers); a run with channel swapping and masks trains."""
    from av_seld.config import load_config
    from av_seld.data.dataset import collate_samples
    from av_seld.training.run import build_datasets, feature_caches

    config = load_config(TINY, overrides(tiny_root, tmp_path / "runs", "data.online_features=true",
                                         "data.time_masks=1", "data.acs=true"))
    kind = config.data.features
    train_set, val_set, _, stats = build_datasets(config, feature_caches(config, kind), kind)
    assert train_set.output == "audio" and val_set.output == "features"
    assert train_set.pipeline.device_stages == ("featurize", "standardize", "spec_augment")
    batch = collate_samples([train_set[i] for i in range(3)])
    assert batch["audio"].shape[1] == 4 and batch["spec_mask"].dtype == torch.bool
    features = train_set.pipeline.device(batch)["features"]
    assert features.shape[1:] == val_set[0]["features"].shape and "acs_index" in batch

    assert main(["train", str(TINY), *overrides(tiny_root, tmp_path / "runs"), "data.online_features=true",
                 "data.acs=true", "data.time_masks=1"]) == 0
    assert (tmp_path / "runs" / "debug_tiny" / "best.pt").is_file()


def test_auto_class_weights_come_from_the_training_labels(tiny_root):
    from av_seld.data.dataset import SeldDataset
    from av_seld.io.labels import read_reference_csv
    from av_seld.losses import build_loss
    from av_seld.training.objective import auto_class_weights

    dataset = SeldDataset([tiny_root], splits=["dev-train"], chunk_s=2.0)
    weights = auto_class_weights(dataset.clips)
    counts = np.zeros(13)
    for entry in dataset.clips:
        events = read_reference_csv(entry.clip.metadata)
        for c in range(13):
            counts[c] += len(set(events.frame[events.class_index == c].tolist()))
    present = counts > 0
    assert abs(np.mean(weights) - 1) < 1e-9
    order = np.argsort(counts[present])  # rarer classes weigh more
    assert np.all(np.diff(np.asarray(weights)[present][order]) <= 1e-12)
    build_loss("adpit_activity", class_weights=weights)  # what loss.params.class_weights: auto builds


def test_a_second_train_of_the_same_run_is_refused_while_the_first_holds_it(tiny_root, tmp_path, capsys):
    from av_seld.utils.lock import output_lock

    args = overrides(tiny_root, tmp_path)
    lock = tmp_path / ".debug_tiny.train.lock"
    with output_lock(lock, "train into elsewhere"):  # as a running `av-seld train` of the same run holds it
        for extra in ([], ["--resume"]):
            assert main(["train", str(TINY), *args, *extra]) == 2
            err = capsys.readouterr().err
            assert f"{lock}: another process (pid {os.getpid()}" in err and "Traceback" not in err
    assert not (tmp_path / "debug_tiny").exists()  # refused before anything was written
    assert main(["train", str(TINY), *args, "data.val_splits=[]", "data.test_splits=[]"]) == 0
    assert (tmp_path / "debug_tiny" / "last.pt").exists() and not lock.exists()


def test_clip_names_shared_by_two_roots_stop_the_run_before_training(tiny_root, tmp_path, capsys):
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(tiny_root, twin, ignore=shutil.ignore_patterns("features", ".*"))
    out = tmp_path / "runs"
    args = [f"data.roots=[{tiny_root},{twin}]", "data.val_splits=[dev-val]", "data.test_splits=[]",
            f"train.out_dir={out}", "train.max_steps=3"]
    assert main(["train", str(TINY), *args]) == 2
    err = capsys.readouterr().err
    assert "is also used by" in err and "clip names must be unique across the roots of a split" in err
    assert not list(out.glob("*/*.pt"))  # stopped before the first step, not at the calibration after training
