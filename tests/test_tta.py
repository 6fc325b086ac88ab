"""Test-time augmentation: a clip also predicted rotated by ±90° and 180° in azimuth, the outputs rotated back."""

from __future__ import annotations

import numpy as np
import torch

from augment.acs import ChannelSwap
from av_seld.training.inference import ensemble_outputs
from av_seld.training.predict import predict_audio, rotation_transforms, with_tta
from tests.test_realtime import _clip, _tiny_av_model


def test_rotation_transforms_are_the_four_azimuth_rotations_identity_first():
    model = _tiny_av_model()
    assert [s.index for s in rotation_transforms(model)] == [0]
    rotations = rotation_transforms(with_tta(model, True))
    assert rotations[0].is_identity
    assert sorted(s.geometric_map for s in rotations) == [(1, -1, 1), (1, 0, 1), (1, 1, 1), (1, 2, 1)]


def test_tta_is_the_mean_of_the_rotated_clips_predictions_rotated_back(tmp_path):
    model = _tiny_av_model()
    audio, _ = _clip(tmp_path, 3.0)
    plain = predict_audio([model], audio)
    by_hand = [plain]
    for swap in rotation_transforms(with_tta(model, True))[1:]:
        rotated = predict_audio([model], torch.from_numpy(np.ascontiguousarray(swap.audio(audio.numpy()))))
        by_hand.append(swap.inverse().accdoa(rotated))
        if swap.geometric_map[1] % 2:  # ±90°: rotating back the wrong way would be another output
            assert np.abs(swap.accdoa(rotated) - by_hand[-1]).max() > 1e-3
    tta = predict_audio([with_tta(model, True)], audio)
    np.testing.assert_allclose(tta, ensemble_outputs(by_hand), atol=1e-5)
    assert tta.shape == plain.shape and np.abs(tta - plain).max() > 1e-3


def test_tta_runs_each_frame_through_the_visual_encoder_once_and_rolls_its_grid(tmp_path, monkeypatch):
    from av_seld.training import predict

    model = with_tta(_tiny_av_model(), True)
    audio, video = _clip(tmp_path, 3.0)
    calls, grids = [], []
    hook = model.model.visual.layers[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    real = predict.predict_clip

    def spy(*args, visual_features=None, **kwargs):
        grids.append(visual_features)
        return real(*args, visual_features=visual_features, **kwargs)

    monkeypatch.setattr(predict, "predict_clip", spy)
    with_video = predict_audio([model], audio, video=video)
    hook.remove()
    assert sum(calls) == 30 and len(grids) == 4
    for swap, grid in zip(rotation_transforms(model), grids):
        quarter_turns = swap.geometric_map[1] % 4  # a grid 4 cells wide: a quarter turn is one cell
        assert torch.equal(grid, torch.roll(grids[0], -quarter_turns, dims=-1))
    assert np.abs(with_video - predict_audio([model], audio)).max() > 1e-3
