"""Source distance (DCASE2024) end to end: synthesised 6-column references, targets and ADPIT with distance, the
masked distance loss, every model's distance output, 7-column predictions scored with the 2024 metric, and training
with ``model.params.distance``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from augment import rooms as room_models
from augment import soundbank
from augment.acs import ChannelSwap
from augment.scenes import EventSpec, SceneConfig, render_scene, sample_events
from av_seld.classes import NUM_CLASSES
from av_seld.cli import main
from av_seld.data.synth_audio import synthesize_audio_dataset
from av_seld.io.labels import Events, read_prediction_csv, read_reference_csv, write_reference_csv
from av_seld.losses import build_loss
from av_seld.metrics import evaluate_folders
from av_seld.models import available_models, build_model, model_builder
from av_seld.postprocess import multi_accdoa_to_events, write_predictions
from av_seld.targets import (DISTANCE_SCALE_M, adpit_to_tracks, events_to_adpit, events_to_multi_accdoa,
                             has_distance)
from av_seld.timing import SAMPLE_RATE

REPO = Path(__file__).resolve().parents[1]
ROOMS = REPO / "configs" / "synth" / "rooms_default.yaml"


# ------------------------------------------------------------------------------------------------------ synthesis


def test_anechoic_reference_has_the_drawn_distances_and_round_trips(tmp_path):
    scene = SceneConfig(duration_s=4.0, max_polyphony=2, distance_m=(1.5, 2.5))
    [result] = synthesize_audio_dataset(tmp_path, num_clips=1, split="s", seed=3, scene=scene)
    path = tmp_path / "metadata_dev" / "s" / f"{result.name}.csv"
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert rows and all(len(row) == 6 for row in rows)
    events = read_reference_csv(path)
    assert events.has_distance and ((events.distance_m >= 1.5) & (events.distance_m <= 2.5)).all()
    # one static anechoic source keeps its drawn distance
    drawn = {e.source: e.distance_m for e in sample_events(np.random.default_rng([3, 1]), scene)}
    for source in np.unique(events.source):
        np.testing.assert_allclose(events.distance_m[events.source == source], round(drawn[source] * 100) / 100)
    write_reference_csv(tmp_path / "again.csv", events)
    assert (tmp_path / "again.csv").read_text() == path.read_text()


def test_distance_labels_leave_every_other_draw_and_the_audio_unchanged():
    config = SceneConfig(duration_s=3.0, max_polyphony=2)
    rng = np.random.default_rng([7, 1])
    events = sample_events(rng, config)
    with_distance = render_scene(events, soundbank.synthesize, rng, config)
    rng = np.random.default_rng([7, 1])
    bare = [EventSpec(*[getattr(e, f) for f in ("source", "class_index", "onset_s", "duration_s", "gain_db",
                                                  "azimuth_deg", "elevation_deg", "angular_speed_deg_s")])
            for e in sample_events(rng, config)]
    without = render_scene(bare, soundbank.synthesize, rng, config)
    np.testing.assert_array_equal(with_distance.audio["foa"], without.audio["foa"])
    assert [r[:5] for r in with_distance.rows] == without.rows and all(len(r) == 5 for r in without.rows)
    assert all(len(r) == 6 for r in with_distance.rows)


def test_room_distance_is_the_direct_path_it_rendered():
    config = room_models.load_rooms_config(ROOMS).room
    room = room_models.SimulatedRoom(room_models.sample_room(np.random.default_rng([0, 0, 0]), config), config)
    signal = np.zeros(SAMPLE_RATE // 2, np.float32)
    signal[0] = 1.0
    out = room.render_event(signal, 30.0, 10.0, np.random.default_rng(1), ("foa",))
    distance = float(out.distance_m[0])
    assert config.source_distance_m[0] - 1e-9 <= distance <= config.source_distance_m[1] or distance < 1.0
    assert np.all(out.distance_m == distance)
    # the direct impulse arrives after distance / c at gain 1 / distance (W channel)
    w = out.audio["foa"][0]
    assert out.delay_samples == round(distance / 343.0 * SAMPLE_RATE)
    assert abs(w[out.delay_samples] - 1.0 / distance) < 0.05 / distance


def test_room_clips_write_their_distances(tmp_path):
    [result] = synthesize_audio_dataset(tmp_path, num_clips=1, split="r", seed=0, rooms=room_models.open_rooms(ROOMS, ("foa",)),
                                        scene=SceneConfig(duration_s=3.0, max_polyphony=2, gap_s=(0.1, 0.5)))
    events = read_reference_csv(tmp_path / "metadata_dev" / "r" / f"{result.name}.csv")
    assert len(events) and events.has_distance
    assert ((events.distance_m >= 0.2) & (events.distance_m <= 3.0)).all()


# ------------------------------------------------------------------------------------------------------ targets


def _events():
    # frame 0: class 2 once (2 m); frame 1: class 5 twice (1 m, 3 m); frame 2: class 5 three times
    return Events.from_arrays([0, 1, 1, 2, 2, 2], [2, 5, 5, 5, 5, 5], [0, 0, 1, 0, 1, 2],
                              [10, -90, 45, 0, 120, -120], [0, 20, -10, 0, 0, 30], [2.0, 1.0, 3.0, 0.5, 1.5, 4.0])


def test_adpit_with_distance_fills_the_groups_like_the_directions():
    events = _events()
    target = events_to_adpit(events, 4, distance=True)
    assert target.shape == (4, 6, 5, NUM_CLASSES)
    np.testing.assert_array_equal(target[..., :4, :], events_to_adpit(events, 4))  # the 2023 rows are unchanged
    np.testing.assert_allclose(target[0, 0, 4, 2], 2.0 / DISTANCE_SCALE_M)  # A0
    np.testing.assert_allclose(target[1, 1:3, 4, 5], np.array([1.0, 3.0]) / DISTANCE_SCALE_M)  # B0, B1
    np.testing.assert_allclose(target[2, 3:6, 4, 5], np.array([0.5, 1.5, 4.0]) / DISTANCE_SCALE_M)  # C0..C2
    assert target[..., 4, :].sum() == pytest.approx((2 + 1 + 3 + 0.5 + 1.5 + 4) / DISTANCE_SCALE_M)
    activity, vectors = adpit_to_tracks(target)
    np.testing.assert_allclose(vectors, events_to_multi_accdoa(events, 4, distance=True), atol=1e-7)
    assert has_distance(vectors) and not has_distance(vectors[:, :, :3])
    with pytest.raises(ValueError, match="distance"):
        events_to_adpit(Events.from_arrays([0], [1], [0], [0], [0]), 2, distance=True)
    assert events_to_adpit(Events.empty(), 3, distance=True).shape == (3, 6, 5, NUM_CLASSES)


def test_channel_swap_moves_directions_and_keeps_distances():
    events = _events()
    adpit, accdoa = events_to_adpit(events, 3, distance=True), events_to_multi_accdoa(events, 3, distance=True)
    for index in range(16):
        swap = ChannelSwap("foa", index)
        moved = swap.events(events)
        np.testing.assert_allclose(swap.target(adpit), events_to_adpit(moved, 3, distance=True), atol=1e-6)
        np.testing.assert_allclose(swap.target(accdoa), events_to_multi_accdoa(moved, 3, distance=True), atol=1e-6)


# --------------------------------------------------------------------------------------------------------- loss


@pytest.mark.parametrize("name", ["adpit", "adpit_activity", "hungarian", "hungarian_activity"])
def test_the_distance_loss_ignores_inactive_tracks(name):
    events = _events()
    target = torch.from_numpy(events_to_adpit(events, 3, distance=True))[None]
    perfect = torch.from_numpy(events_to_multi_accdoa(events, 3, duplicate=name.startswith("adpit"),
                                                      distance=True))[None]
    loss = build_loss(name)
    active = perfect[:, :, :, :3].norm(dim=3, keepdim=True) > 0.5  # (1, T, 3, 1, C)
    noisy = perfect.clone()
    noisy[:, :, :, 3:] = torch.where(active, perfect[:, :, :, 3:], torch.rand_like(perfect[:, :, :, 3:]) * 5)
    assert loss(noisy, target).item() == pytest.approx(loss(perfect, target).item(), abs=1e-6)
    off = perfect.clone()
    off[:, :, :, 3:] = torch.where(active, perfect[:, :, :, 3:] + 0.5, perfect[:, :, :, 3:])
    assert loss(off, target).item() > loss(perfect, target).item() + 1e-3
    grad = noisy.clone().requires_grad_(True)
    loss(grad, target).backward()
    assert torch.all(grad.grad[:, :, :, 3:][~active.expand_as(grad.grad[:, :, :, 3:])] == 0)


def test_distance_adds_the_baseline_share_to_the_mse_and_a_weighted_term_to_the_activity_loss():
    events = _events()
    target = torch.from_numpy(events_to_adpit(events, 3, distance=True))[None]
    output = torch.from_numpy(events_to_multi_accdoa(events, 3, duplicate=True, distance=True))[None]
    output = output * 0.8  # wrong lengths and distances
    plain_target, plain_output = target[:, :, :, :4], output[:, :, :, :3]
    # the mse is the mean over 4 rows instead of 3 (T = 3 frames, 3 tracks): its direction part keeps its sum
    mse, mse_plain = build_loss("adpit")(output, target), build_loss("adpit")(plain_output, plain_target)
    active = plain_output.norm(dim=3) > 0  # every canonical track of an active class is filled
    dist_sq = ((output[:, :, :, 3] - output[:, :, :, 3] / 0.8).square() * active).sum()
    assert dist_sq.item() > 0.01
    expected_sum = mse_plain.item() * (3 * 3 * 3 * NUM_CLASSES) + dist_sq.item()
    assert mse.item() * (3 * 3 * 4 * NUM_CLASSES) == pytest.approx(expected_sum, rel=1e-5)
    weighted = build_loss("adpit_activity", distance_weight=2.0)
    plain = build_loss("adpit_activity")(plain_output, plain_target)
    expected = plain + 2.0 * dist_sq / active.sum()
    assert weighted(output, target).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="output has distances and the target has none"):
        build_loss("adpit")(output, plain_target)
    with pytest.raises(ValueError, match="target has distances and the output has none"):
        build_loss("adpit")(plain_output, target)


# ------------------------------------------------------------------------------------------------------- models


def _tiny(name: str, head: str, **kwargs):
    if name == "av_conformer":
        audio = {**model_builder("resnet_conformer").tiny_config(), "in_channels": 7, "head": head}
        return build_model(name, audio_kwargs=audio, frame_size=(64, 128), token_grid=(2, 4), depth=1, heads=2,
                           **kwargs)
    return build_model(name, in_channels=7, head=head, **{**model_builder(name).tiny_config(), **kwargs})


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("head", ["tanh", "gated"])
def test_every_model_outputs_distance_when_asked(name, head):
    model = _tiny(name, head, distance=True)
    features = torch.randn(2, 7, 40, 64)
    output = model(features)
    assert tuple(output.shape) == (2, 8, 3, 4, NUM_CLASSES)
    assert bool((output[:, :, :, 3] > 0).all())
    target = torch.from_numpy(events_to_adpit(_events(), 8, distance=True))[None].repeat(2, 1, 1, 1, 1)
    build_loss("adpit_activity")(output, target).backward()
    assert model.head.out.weight.grad.abs().sum() > 0
    plain = _tiny(name, head)
    assert tuple(plain(features).shape) == (2, 8, 3, 3, NUM_CLASSES)
    assert not plain.head.distance and model.head.distance


# ----------------------------------------------------------------------------------------- predictions, metric


def test_seven_column_predictions_score_with_the_2024_metric(tmp_path):
    events = _events()
    ref_dir, pred_dir, far_dir = (tmp_path / d for d in ("ref", "pred", "far"))
    for d in (ref_dir, pred_dir, far_dir):
        d.mkdir()
    write_reference_csv(ref_dir / "clip.csv", events)
    output = events_to_multi_accdoa(events, 4, duplicate=True, distance=True)
    decoded = write_predictions(pred_dir / "clip.csv", output)
    np.testing.assert_allclose(np.sort(decoded.distance_m), np.sort(events.distance_m), atol=1e-6)
    assert all(len(line.split(",")) == 7 for line in (pred_dir / "clip.csv").read_text().splitlines())
    assert read_prediction_csv(pred_dir / "clip.csv").has_distance
    perfect = evaluate_folders(ref_dir, pred_dir, edition="2024")
    assert perfect.eval_distance and perfect.scores.RDE == pytest.approx(0.0, abs=1e-6)
    far = output.copy()
    far[:, :, 3] *= 2.5  # relative distance error 1.5: every pair fails the gate of 1.0, directions are exact
    write_predictions(far_dir / "clip.csv", far)
    gated = evaluate_folders(ref_dir, far_dir, edition="2024").scores
    assert gated.F == 0 and gated.RDE == pytest.approx(1.5) and gated.LE < 0.01  # 0.0008° for equal directions
    # without distance in the output the CSV stays polar, as before
    plain = multi_accdoa_to_events(output[:, :, :3])
    assert not plain.has_distance
    write_predictions(tmp_path / "polar.csv", output[:, :, :3])
    assert all(len(line.split(",")) == 5 for line in (tmp_path / "polar.csv").read_text().splitlines())


def test_an_empty_prediction_file_fits_the_distance_evaluation(tmp_path):
    for d in ("ref", "pred"):
        (tmp_path / d).mkdir()
    write_reference_csv(tmp_path / "ref" / "a.csv", _events())
    write_reference_csv(tmp_path / "ref" / "b.csv", _events())
    write_predictions(tmp_path / "pred" / "a.csv", events_to_multi_accdoa(_events(), 4, distance=True))
    write_predictions(tmp_path / "pred" / "b.csv", np.zeros((4, 3, 4, NUM_CLASSES)))  # nothing detected
    assert (tmp_path / "pred" / "b.csv").read_text() == ""
    result = evaluate_folders(tmp_path / "ref", tmp_path / "pred", edition="2024")
    assert result.eval_distance and 0 < result.scores.F < 1


# ---------------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def distance_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("distance")
    for split, clips, seed, fold in (("dev-train", 3, 1, 1), ("dev-val", 2, 2, 2)):
        assert main(["synth-audio", str(root), "--num-clips", str(clips), "--duration", "3", "--split", split,
                     "--seed", str(seed), "--fold", str(fold)]) == 0
    return root


def test_a_distance_model_trains_and_reports_the_2024_scores(distance_root, tmp_path, capsys):
    assert main(["train", str(REPO / "configs" / "debug_tiny.yaml"), f"data.roots=[{distance_root}]",
                 "data.val_splits=[dev-val]", "data.test_splits=[dev-val]", f"train.out_dir={tmp_path}",
                 "train.max_steps=2", "data.acs=true", "model.params.distance=true"]) == 0
    run = tmp_path / "debug_tiny"
    header = (run / "val_log.csv").read_text().splitlines()[0].split(",")
    assert {"SELD", "SELD_2024", "F_2024", "LE_2024", "RDE_2024"} <= set(header)
    scores = json.loads((run / "eval" / "test" / "scores_2024.json").read_text())
    assert scores["edition"] == "2024" and scores["RDE"] is None or scores["RDE"] >= 0
    out = capsys.readouterr().out
    assert "DCASE2023 segment-level" in out and "DCASE2024 frame-level SELD metrics (20° threshold, relative " \
                                              "distance gate 1.0)" in out
    for path in (run / "eval" / "test" / "pred").glob("*.csv"):
        assert all(len(line.split(",")) == 7 for line in path.read_text().splitlines())
    import av_seld

    result = av_seld.load(run / "best.pt").predict(sorted((distance_root / "foa_dev" / "dev-val").glob("*.wav"))[0])
    assert result.output.shape[1:] == (3, 4, NUM_CLASSES) and result.events.has_distance
    assert main(["test", str(run / "best.pt"), str(distance_root), "--split", "dev-val", "--out",
                 str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "scores_2024.json").is_file()


def test_a_distance_model_needs_references_with_distances(tmp_path, capsys):
    root = tmp_path / "root"
    for split, seed, fold in (("dev-train", 1, 1), ("dev-val", 2, 2)):
        assert main(["synth-audio", str(root), "--num-clips", "1", "--duration", "2", "--split", split,
                     "--seed", str(seed), "--fold", str(fold)]) == 0
    csv = next((root / "metadata_dev" / "dev-train").glob("*.csv"))
    csv.write_text("3,1,0,40,10\n4,1,0,40,10\n")  # a 2023 reference: no distance column
    assert main(["train", str(REPO / "configs" / "debug_tiny.yaml"), f"data.roots=[{root}]",
                 "data.val_splits=[dev-val]", "data.test_splits=[]", f"train.out_dir={tmp_path}",
                 "train.max_steps=1", "model.params.distance=true"]) == 2
    assert csv.name in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ does it learn distance?


def oracle_distances(output: np.ndarray, reference: Events) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) distances in metres on the frames where exactly one event of a class sounds: the model's
    distance of that class averaged over its three tracks (ADPIT teaches a lone event on every track), so the
    distance is read where the reference says a source is, whatever the detector does."""
    predicted, true = [], []
    keys, counts = np.unique(reference.frame * NUM_CLASSES + reference.class_index, return_counts=True)
    lone = set(keys[counts == 1].tolist())
    for i in range(len(reference)):
        f, c = int(reference.frame[i]), int(reference.class_index[i])
        if f * NUM_CLASSES + c in lone and f < len(output):
            predicted.append(output[f, :, 3, c].mean() * DISTANCE_SCALE_M)
            true.append(reference.distance_m[i])
    return np.asarray(predicted), np.asarray(true)


@pytest.mark.slow
def test_a_small_model_hears_distance_in_simulated_rooms(tmp_path):
    """Train a small distance model on simulated rooms and read its distances on held-out clips: the relative distance
    error must beat a constant predictor (the training mean) and the predictions must correlate with the truth.
    Prints the numbers (run with -s)."""
    import av_seld
    from av_seld.config import load_config
    from av_seld.training.run import train

    root = tmp_path / "rooms"
    scene = SceneConfig(duration_s=10.0, max_polyphony=1)
    for split, clips, seed, fold in (("dev-train", 16, 1, 1), ("dev-test", 4, 2, 2)):
        for _ in synthesize_audio_dataset(root, num_clips=clips, split=split, seed=seed, scene=scene, fold=fold,
                                          rooms=room_models.open_rooms(ROOMS, ("foa",)), workers=2):
            pass
    config = load_config(REPO / "configs" / "debug_tiny.yaml", [
        f"data.roots=[{root}]", "data.val_splits=[]", "data.test_splits=[]", f"train.out_dir={tmp_path}",
        "data.batch_size=8", "train.epochs=100", "train.max_steps=300", "optim.warmup_steps=20",
        "model.params={widths: [8, 16], blocks: [1, 1], pools: [[5, 2], [1, 2]], dim: 16, depth: 1, heads: 2, "
        "kernel_size: 3, head: gated, distance: true}",
        "loss.name=adpit_activity", "loss.params={activity_link: probability, direction_weight: 0.3}"])
    result = train(config)
    train_distances = np.concatenate([read_reference_csv(p).distance_m
                                      for p in sorted((root / "metadata_dev" / "dev-train").glob("*.csv"))])
    constant = float(train_distances.mean())
    model = av_seld.load(result.best_checkpoint)
    predicted, true = [], []
    for wav in sorted((root / "foa_dev" / "dev-test").glob("*.wav")):
        p, t = oracle_distances(model.predict(wav).output, read_reference_csv(
            root / "metadata_dev" / "dev-test" / f"{wav.stem}.csv"))
        predicted.append(p)
        true.append(t)
    predicted, true = np.concatenate(predicted), np.concatenate(true)
    rde_model = float(np.mean(np.abs(predicted - true) / true))
    rde_constant = float(np.mean(np.abs(constant - true) / true))
    correlation = float(np.corrcoef(predicted, true)[0, 1])
    print(f"\nheld-out frames {len(true)}, true distances {true.min():.2f}-{true.max():.2f} m (mean {true.mean():.2f}); "
          f"RDE model {rde_model:.3f}, constant {constant:.2f} m {rde_constant:.3f}; Pearson r {correlation:.3f}")
    assert rde_model < rde_constant and correlation > 0.2
