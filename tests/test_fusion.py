"""Audio-visual cross-modal Conformer (av_seld.models.fusion): shapes, masks, gradients, cached features. Most tests
use the light stand-in visual encoder (av_seld.models.debug); one builds the real YOLO encoder."""

from __future__ import annotations

import pytest
import torch

from av_seld.models import available_models, build_model
from av_seld.models.base import VisualEncoder
from av_seld.models.debug import DebugVisualEncoder
from av_seld.models.fusion import AVConformer, CrossModalConformerBlock

B, T, H, W = 2, 3, 64, 128
AUDIO = dict(in_channels=7, widths=(8, 8, 8, 8), blocks=(1, 1, 1, 1), dim=32, depth=1, heads=2, dropout=0.0)


def _model(**kwargs) -> AVConformer:
    options = dict(audio_kwargs=AUDIO, frame_size=(H, W), token_grid=(2, 4), depth=1, heads=2, dropout=0.0,
                   visual_model="debug")
    return build_model("av_conformer", **{**options, **kwargs})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return _model().eval()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(B, 7, 5 * T, 64, generator=g)  # (B, C, T_feat, F): 5 feature frames per label frame
    frames = torch.rand(B, T, 3, H, W, generator=g)
    return features, frames


def test_registered_and_output_shape(model, inputs):
    assert "av_conformer" in available_models()
    features, frames = inputs
    with torch.no_grad():
        assert tuple(model(features, frames=frames).shape) == (B, T, 3, 3, 13)
        assert tuple(model.encode(features, frames=frames).shape) == (B, T, model.embed_dim)
    assert model.num_output_frames(24_000) == 10


@pytest.mark.parametrize("freeze_visual", [True, False])
def test_every_trainable_parameter_gets_a_gradient(freeze_visual, inputs):
    torch.manual_seed(0)
    model = _model(freeze_visual=freeze_visual, visual_context=1).train()
    features, frames = inputs
    mask = torch.tensor([[True, True, False], [False, True, True]])  # video and no-video frames in one batch
    model(features, frames=frames, visual_mask=mask).square().sum().backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    no_gradient = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_gradient == []
    assert any(n.startswith("audio.") for n in trainable) and any(n.startswith("visual.") for n in trainable)
    yolo = [p for n, p in model.named_parameters() if n.startswith("visual.layers.")]
    assert all(p.requires_grad for p in yolo) != freeze_visual


def test_fully_masked_video_is_ignored(model, inputs):
    features, frames = inputs
    off = torch.zeros(B, T, dtype=torch.bool)
    with torch.no_grad():
        a = model(features, frames=frames, visual_mask=off)
        b = model(features, frames=torch.rand_like(frames), visual_mask=off)
        c = model(features)  # no video at all
        d = model(features, visual_features=torch.randn(B, T, model.visual.feature_dim, 2, 4), visual_mask=off)
        e = model(features, frames=frames)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    torch.testing.assert_close(a, d, rtol=0, atol=0)
    assert (a - e).abs().max() > 1e-4  # the video does matter when it is not masked


def test_masked_frames_do_not_matter_and_seen_ones_do(model, inputs):
    features, frames = inputs
    mask = torch.tensor([[True, False, True], [True, True, False]])
    other = frames.clone()
    other[~mask] = torch.rand_like(other[~mask])
    with torch.no_grad():
        reference = model(features, frames=frames, visual_mask=mask)
        torch.testing.assert_close(model(features, frames=other, visual_mask=mask), reference, rtol=0, atol=0)
        other[0, 0] = 1 - other[0, 0]
        assert (model(features, frames=other, visual_mask=mask)[0] - reference[0]).abs().max() > 1e-5


def test_the_stand_in_and_the_yolo_encoder_keep_the_visual_encoder_contract(model):
    assert isinstance(model.visual, DebugVisualEncoder) and isinstance(model.visual, VisualEncoder)
    with pytest.raises(TypeError, match="not a VisualEncoder"):
        AVConformer(build_model("resnet_conformer", **AUDIO), torch.nn.Linear(2, 2))


@pytest.mark.parametrize("visual_model", ["debug", "yolo11n"])  # the one test that builds the real YOLO encoder
def test_cached_features_give_the_live_output(visual_model, inputs):
    torch.manual_seed(0)
    model = _model(visual_model=visual_model).eval()
    assert isinstance(model.visual, VisualEncoder)
    features, frames = inputs
    with torch.no_grad():
        pooled = model.visual.pooled_features(frames.flatten(0, 1)).unflatten(0, (B, T))  # (B, T, C, rows, cols)
        live = model(features, frames=frames)
        torch.testing.assert_close(model(features, visual_features=pooled), live)
        cached = model(features, visual_features=pooled.half())  # as stored by precompute-visual
    torch.testing.assert_close(cached, live, rtol=0, atol=1e-3)


def test_audio_branch_initialised_from_an_audio_only_checkpoint(inputs):
    features, _ = inputs
    torch.manual_seed(5)
    audio_only = build_model("resnet_conformer", **AUDIO).eval()
    model = _model(audio_state=audio_only.state_dict()).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.audio.encode(features), audio_only.encode(features))
    other = _model().eval()
    other.load_audio_state({"model": audio_only.state_dict(), "step": 10})  # a checkpoint dict works too
    assert torch.equal(other.audio.head.out.weight, audio_only.head.out.weight)


def test_mismatched_or_inconsistent_inputs_are_rejected(model, inputs):
    features, frames = inputs
    with pytest.raises(ValueError, match="one video frame per label frame"):
        model(features, frames=frames[:, :2])
    with pytest.raises(ValueError, match="visual_mask must be bool"):
        model(features, frames=frames, visual_mask=torch.ones(B, T))
    with pytest.raises(ValueError, match="neither frames nor visual_features"):
        model(features, visual_mask=torch.ones(B, T, dtype=torch.bool))
    with pytest.raises(ValueError, match="not both"):
        model(features, frames=frames, visual_features=torch.zeros(B, T, model.visual.feature_dim, 2, 4))


def test_visual_context_keys_cover_neighbouring_frames_and_pad_the_ends():
    torch.manual_seed(0)
    model = _model(visual_context=1)
    tokens = torch.arange(T, dtype=torch.float32)[None, :, None, None].expand(B, T, 8, 32)
    keys, padding = model._with_context(tokens)
    assert tuple(keys.shape) == (B, T, 3 * 8, 32) and tuple(padding.shape) == (B, T, 3 * 8)
    assert padding[:, 0, :8].all() and not padding[:, 0, 8:].any()  # frame 0 has no previous frame
    assert padding[:, -1, 16:].all() and not padding[:, 1].any()
    torch.testing.assert_close(keys[0, 1, :, 0], torch.tensor([0.0] * 8 + [1.0] * 8 + [2.0] * 8))


def test_cross_modal_block_shapes():
    block = CrossModalConformerBlock(16, heads=2, kernel_size=3)
    out = block(torch.randn(2, 5, 16), torch.randn(2, 5, 7, 16))
    assert tuple(out.shape) == (2, 5, 16)


def test_initialise_weights_between_audio_and_audio_visual_checkpoints(tmp_path):
    """train.init_from / model.params.audio_state: an audio-only checkpoint starts the AV model's audio branch, an AV
    checkpoint's audio branch starts an audio model, and shape mismatches are named."""
    from av_seld.training.checkpoint import CheckpointError, initialise_weights, save_checkpoint

    torch.manual_seed(3)
    audio_only = build_model("resnet_conformer", **AUDIO)
    save_checkpoint(tmp_path / "audio.pt", {"model_name": "resnet_conformer", "model_params": AUDIO,
                                            "model_state": audio_only.state_dict()})
    av = _model()
    missing, unexpected = initialise_weights(av, tmp_path / "audio.pt")
    assert not unexpected and missing and all(not k.startswith("audio.") for k in missing)
    for key, value in audio_only.state_dict().items():
        torch.testing.assert_close(av.state_dict()[f"audio.{key}"], value)

    save_checkpoint(tmp_path / "av.pt", {"model_name": "av_conformer", "model_params": {}, "model_state": av.state_dict()})
    fresh = build_model("resnet_conformer", **AUDIO)
    assert initialise_weights(fresh, tmp_path / "av.pt") == ([], [])
    torch.testing.assert_close(fresh.state_dict(), audio_only.state_dict())

    wider = build_model("resnet_conformer", **{**AUDIO, "dim": 16})
    with pytest.raises(CheckpointError, match=r"differ in shape.*audio\.pt|audio\.pt.*differ in shape"):
        initialise_weights(wider, tmp_path / "audio.pt")
