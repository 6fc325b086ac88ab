"""Learning-rate schedule, sliding-window inference, track alignment for ensembles, checkpoints."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from av_seld.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from av_seld.training.inference import align_tracks, ensemble_outputs, predict_clip, window_starts
from av_seld.training.schedule import learning_rate


def test_schedule_warms_up_linearly_then_decays_to_the_floor():
    kw = dict(total_steps=101, peak_lr=1e-3, warmup_steps=10, warmup_start_lr=1e-8, min_lr_ratio=0.01)
    assert learning_rate(0, **kw) == pytest.approx(1e-8)
    assert learning_rate(5, **kw) == pytest.approx(1e-8 + (1e-3 - 1e-8) / 2)
    assert learning_rate(10, **kw) == pytest.approx(1e-3)
    assert learning_rate(100, **kw) == pytest.approx(1e-5)
    rates = [learning_rate(s, **kw) for s in range(101)]
    assert all(b <= a + 1e-15 for a, b in zip(rates[10:], rates[11:]))


class FramewiseModel(nn.Module):
    """Output of label frame t depends only on the features of that frame: windowing must not change it."""

    uses_video = False  # the model contract (av_seld.models.base.AudioSeldModel)

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x, **visual):  # (B, C, T_feat, F) -> (B, T, 3, 3, 13)
        b, _, t_feat, _ = x.shape
        per_frame = x.mean(dim=(1, 3)).reshape(b, t_feat // 5, 5).mean(-1)  # (B, T)
        return (self.scale * per_frame)[:, :, None, None, None].expand(b, t_feat // 5, 3, 3, 13)


def test_window_starts_cover_the_clip():
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 8]
    assert window_starts(3, 4, 2) == [0]
    for total, window, hop in [(37, 10, 5), (50, 50, 25), (1, 5, 5), (23, 7, 3)]:
        starts = window_starts(total, window, hop)
        covered = np.zeros(total, bool)
        for s in starts:
            covered[s:s + window] = True
        assert covered.all() and starts[-1] < total


@pytest.mark.parametrize("num_frames, window, hop", [(23, 10, 5), (23, 10, 10), (7, 10, 5), (40, 8, 3)])
def test_sliding_windows_reproduce_a_framewise_model(num_frames, window, hop):
    torch.manual_seed(0)
    feats = torch.randn(3, num_frames * 5, 8)
    out = predict_clip(FramewiseModel(), feats, window_frames=window, hop_frames=hop, batch_size=3)
    expected = feats.mean(dim=(0, 2)).reshape(num_frames, 5).mean(-1).numpy()
    assert out.shape == (num_frames, 3, 3, 13)
    np.testing.assert_allclose(out[:, 0, 0, 0], expected, atol=1e-6)


def test_av_sliding_windows_run_each_frame_once_and_match_window_by_window_frames():
    """Live video inference pools each frame's YOLO features once per clip; the output equals feeding each window's
    frames to the model (the old path), invalid frames included."""
    from av_seld.models import build_model

    torch.manual_seed(0)
    model = build_model("av_conformer", frame_size=(64, 128), token_grid=(2, 4), depth=1, heads=2, kernel_size=3,
                        audio_kwargs={"widths": [4, 8], "blocks": [1, 1], "pools": [[5, 2], [1, 2]], "dim": 16,
                                      "depth": 1, "heads": 2, "kernel_size": 3}).eval()
    total, window, hop = 13, 6, 3
    feats = torch.randn(7, total * 5, 64)
    frames = torch.randint(0, 256, (total, 64, 128, 3), dtype=torch.uint8)
    valid = torch.ones(total, dtype=torch.bool)
    valid[4:6] = False
    calls = []
    hook = model.visual.layers[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    out = predict_clip(model, feats, window_frames=window, hop_frames=hop, frames=frames, video_valid=valid)
    hook.remove()
    assert sum(calls) == int(valid.sum())  # every valid frame through YOLO exactly once

    starts = window_starts(total, window, hop)
    padded = starts[-1] + window
    feats_p = torch.nn.functional.pad(feats, (0, 0, 0, padded * 5 - feats.shape[1]))
    frames_p = torch.cat([frames, frames.new_zeros((padded - total, 64, 128, 3))])
    valid_p = torch.cat([valid, torch.zeros(padded - total, dtype=torch.bool)])
    summed, weight = np.zeros((padded, 3, 3, 13)), np.zeros(padded)
    with torch.no_grad():
        for s in starts:
            o = model(feats_p[None, :, s * 5:(s + window) * 5], frames=frames_p[None, s:s + window].permute(0, 1, 4, 2, 3),
                      visual_mask=valid_p[None, s:s + window])[0].numpy()
            summed[s:s + window] += o
            weight[s:s + window] += 1
    np.testing.assert_allclose(out, (summed / weight[:, None, None, None])[:total], atol=1e-5)

    with torch.no_grad():  # cached pooled features, as precompute-visual stores them, give the same output
        pooled = model.visual.pooled_features(frames.permute(0, 3, 1, 2)).half()
    cached = predict_clip(model, feats, window_frames=window, hop_frames=hop, visual_features=pooled,
                          video_valid=valid)
    np.testing.assert_allclose(cached, out, atol=2e-3)


def test_align_tracks_undoes_a_per_frame_permutation():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 3, 3, 13))
    perms = [rng.permutation(3) for _ in range(20 * 13)]
    other = ref.copy()
    for i, p in enumerate(perms):
        t, c = divmod(i, 13)
        other[t, :, :, c] = ref[t, p, :, c]
    np.testing.assert_allclose(align_tracks(ref, other), ref)
    np.testing.assert_allclose(ensemble_outputs([ref, other, other]), ref)


def test_checkpoint_round_trip_and_errors(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model_name": "x", "model_params": {"a": 1}, "model_state": {"w": torch.ones(2)}})
    payload = load_checkpoint(path)
    assert payload["model_params"] == {"a": 1} and "av_seld_version" in payload
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an av-seld checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


class RunsCodeWhenUnpickled:
    marker = None

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_checkpoint_holding_a_pickled_object_is_refused_without_running_it(tmp_path):
    evil = RunsCodeWhenUnpickled()
    evil.marker = tmp_path / "code-ran"
    path = tmp_path / "shared.pt"
    torch.save({"model_name": "x", "model_params": {}, "model_state": {}, "config": evil}, path)
    with pytest.raises(CheckpointError, match=r"shared.pt: refused to load: it holds a pickled \S*mkdir, .*run "
                                              r"arbitrary code"):
        load_checkpoint(path)
    assert not evil.marker.exists()
    # what av-seld saves loads safely: numpy arrays become tensors, numpy scalars and paths plain values
    save_checkpoint(path, {"model_name": "x", "model_params": {"frame_size": (2, 4), "root": tmp_path},
                           "model_state": nn.Linear(2, 1).state_dict(), "thresholds": np.full(13, 0.5),
                           "history": [{"SELD": np.float64(0.3)}]})
    payload = load_checkpoint(path)
    assert torch.equal(payload["thresholds"], torch.full((13,), 0.5, dtype=torch.float64))
    assert payload["model_params"] == {"frame_size": (2, 4), "root": str(tmp_path)}
    assert type(payload["history"][0]["SELD"]) is float
    nn.Linear(2, 1).load_state_dict(payload["model_state"])
    # checkpoints written before numpy arrays were stored as tensors still load (numpy arrays are plain data)
    torch.save({"model_name": "x", "model_params": {}, "model_state": {}, "thresholds": np.full(13, 0.5),
                "history": [{"SELD": np.float64(0.3)}]}, path)
    payload = load_checkpoint(path)
    np.testing.assert_array_equal(payload["thresholds"], np.full(13, 0.5))
    assert payload["history"][0]["SELD"] == 0.3
    with pytest.raises(ValueError, match=r"checkpoint.config: a RunsCodeWhenUnpickled cannot be stored"):
        save_checkpoint(path, {"model_name": "x", "model_params": {}, "model_state": {}, "config": evil})


def _toy_trainer(steps, ema=None):
    from av_seld.training.trainer import Trainer

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    loader = [{"x": x[i:i + 16], "y": y[i:i + 16]} for i in range(0, 64, 16)]
    model = nn.Linear(4, 1)
    return Trainer(model=model, loss_fn=lambda out, b: ((out[:, 0] - b["y"]) ** 2).mean(),
                   forward=lambda m, b: m(b["x"]), train_loader=loader,
                   optimizer=torch.optim.AdamW(model.parameters(), weight_decay=0.0), lr_at=lambda s: 0.2,
                   total_steps=steps, device=torch.device("cpu"), grad_clip=10.0, ema_decay=ema)


def test_trainer_learns_and_resumes_exactly():
    full = _toy_trainer(40)
    first = full.run_step(full.train_loader[0])["loss"]
    full = _toy_trainer(40)
    state = full.train()
    assert state.step == 40 and state.epoch == 10
    assert full.run_step(full.train_loader[0])["loss"] < first / 10

    part = _toy_trainer(40)
    part.total_steps = 20
    part.train()
    saved = {"model": {k: v.clone() for k, v in part.module.state_dict().items()}, **part.state_dict()}
    resumed = _toy_trainer(40)
    resumed.module.load_state_dict(saved["model"])
    resumed.load_state_dict(saved)
    resumed.train()
    full2 = _toy_trainer(40)
    full2.train()
    for a, b in zip(resumed.module.parameters(), full2.module.parameters()):
        torch.testing.assert_close(a, b)


def test_a_run_resumed_from_a_mid_epoch_checkpoint_continues_that_epoch_exactly():
    import copy

    from av_seld.training.trainer import Hook

    class Snapshot(Hook):  # what a checkpoint every 6 steps would hold; the run itself dies later
        def after_step(self, trainer, metrics):
            if trainer.state.step == 6:  # 4 batches per epoch: 2 batches into the second epoch
                self.saved = copy.deepcopy({"model": trainer.module.state_dict(), **trainer.state_dict()})

    part = _toy_trainer(40)
    part.hooks.append(snapshot := Snapshot())
    part.train()
    assert snapshot.saved["train_state"]["epoch_step"] == 2
    resumed = _toy_trainer(40)
    resumed.module.load_state_dict(snapshot.saved["model"])
    resumed.load_state_dict(snapshot.saved)
    state = resumed.train()
    assert (state.step, state.epoch) == (40, 10)
    full = _toy_trainer(40)
    full.train()
    for a, b in zip(resumed.module.parameters(), full.module.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_after_the_step_and_saves_a_checkpoint(tmp_path, signum):
    from av_seld.errors import Interrupted
    from av_seld.training.hooks import CheckpointHook
    from av_seld.training.trainer import Hook

    class SendSignal(Hook):
        def after_step(self, trainer, metrics):
            if trainer.state.step == 5:
                os.kill(os.getpid(), signum)

    saved = []
    trainer = _toy_trainer(40)
    trainer.hooks += [SendSignal(), CheckpointHook(lambda t, path: saved.append((t.state.step, path)), tmp_path,
                                                   every_steps=2)]
    previous = signal.getsignal(signum)
    with pytest.raises(Interrupted, match=rf"{signal.Signals(signum).name} at step 5; saved .*last.pt"):
        trainer.train()
    assert [step for step, _ in saved] == [2, 4, 4, 5] and saved[-1][1] == tmp_path / "last.pt"
    assert trainer.state.epoch_step == 1 and signal.getsignal(signum) == previous


def test_a_resumed_log_has_no_duplicate_steps(tmp_path):
    from av_seld.training.hooks import CSVWriter

    log = CSVWriter(tmp_path / "train_log.csv")
    for step in range(1, 8):
        log.write({"step": step, "loss": 1.0 / step})
    log.drop_rows_after(4)  # the checkpoint the run resumes from is at step 4
    for step in range(5, 9):
        log.write({"step": step, "loss": 0.5})
    steps = [int(line.split(",")[0]) for line in (tmp_path / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 9))


def test_trainer_keeps_an_ema_of_the_weights():
    trainer = _toy_trainer(8, ema=0.5)
    trainer.train()
    ema_w, w = trainer.eval_model.weight, trainer.module.weight
    assert not torch.equal(ema_w, w) and torch.isfinite(ema_w).all()


def test_calibration_raises_the_threshold_of_a_class_with_weak_false_alarms():
    from av_seld.io.labels import Events
    from av_seld.training.evaluation import calibrate_thresholds, score_outputs

    frames = 50
    output = np.zeros((frames, 3, 3, 13), dtype=np.float32)
    output[:, 0, :, 0] = [0.7, 0.0, 0.0]  # class 0: confident and right (azimuth 0)
    output[:, 0, :, 1] = [0.0, 0.55, 0.0]  # class 1: never present, weak false alarm at azimuth 90
    output[10:40, 0, :, 2] = [0.0, -0.35, 0.0]  # class 2: present, weak but right (azimuth -90)
    ref = Events.from_arrays(list(range(frames)) + list(range(10, 40)), [0] * frames + [2] * 30,
                             [0] * (frames + 30), [0] * frames + [-90] * 30, [0] * (frames + 30))
    outputs, refs = {"a": output}, {"a": ref}
    thresholds = calibrate_thresholds(outputs, refs)
    assert thresholds[1] > 0.55 and thresholds[0] < 0.7 and thresholds[2] < 0.35
    assert score_outputs(outputs, refs, thresholds=thresholds).SELD < score_outputs(outputs, refs).SELD
