"""Every registered audio model: shapes, gradients, frame counts for any clip length, and overfitting one batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from av_seld.io.labels import Events
from av_seld.losses import build_loss
from av_seld.models import available_models, build_model, model_builder, register_model
from av_seld.models.base import AudioSeldModel, MultiAccdoaHead, label_frames_for_feature_frames
from av_seld.models.conformer import ConformerBlock, ConvModule, FeedForward
from av_seld.targets import events_to_adpit
from av_seld.timing import SAMPLE_RATE, num_feature_frames, num_label_frames

AUDIO_MODELS = [name for name in available_models()
                if isinstance(model_builder(name), type) and issubclass(model_builder(name), AudioSeldModel)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(name: str, in_channels: int = 7, **kwargs) -> AudioSeldModel:
    torch.manual_seed(0)
    return build_model(name, in_channels=in_channels, **{**model_builder(name).tiny_config(), **kwargs})


def test_registry_holds_the_three_audio_models():
    assert {"seldnet", "resnet_gru", "resnet_conformer"} <= set(AUDIO_MODELS)
    with pytest.raises(KeyError, match="available"):
        build_model("no_such_model")
    with pytest.raises(ValueError, match="already registered"):
        register_model("seldnet")(object)


@pytest.mark.parametrize("head", MultiAccdoaHead.KINDS)
@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_forward_backward_every_parameter_gets_a_gradient(name, head):
    model = _tiny(name, in_channels=10, head=head).train()
    features = torch.randn(2, 10, 60, 64)
    tokens = model.encode(features)
    assert tokens.shape == (2, 12, model.embed_dim)
    output = model.head(tokens)
    assert output.shape == (2, 12, 3, 3, 13)
    assert output.abs().max() <= 1
    target = torch.from_numpy(events_to_adpit(Events.from_arrays([0, 5], [2, 7], [0, 0], [10, -50], [0, 20]), 12))
    loss = build_loss("adpit")(output, target[None].expand(2, -1, -1, -1, -1))
    loss.backward()
    assert torch.isfinite(loss)
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(features), model.head(model.encode(features)))


@pytest.mark.parametrize("name", AUDIO_MODELS)
@pytest.mark.parametrize("seconds", [3.37, 0.05, 1.0, 2.41])
def test_output_frames_equal_label_frames_for_any_clip_length(name, seconds):
    model = _tiny(name).eval()
    num_samples = int(round(seconds * SAMPLE_RATE))
    expected = num_label_frames(num_samples)
    assert model.num_output_frames(num_samples) == expected
    labels = events_to_adpit(Events.empty(), expected)
    # Features of the padded clip (av_seld.timing), and of the unpadded clip (floor of whole 20 ms hops, >= 1).
    for frames in {num_feature_frames(num_samples), max(1, num_samples // 480)}:
        with torch.no_grad():
            out = model(torch.randn(1, 7, frames, 64))
        assert out.shape[1] == label_frames_for_feature_frames(frames)
        if frames == num_feature_frames(num_samples):
            assert out.shape[1] == expected == labels.shape[0]
    assert label_frames_for_feature_frames(168) == 34  # 3.37 s without padding still gives its 34 label frames


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_wrong_input_layout_is_rejected(name):
    model = _tiny(name)
    with pytest.raises(ValueError, match="expects features"):
        model(torch.randn(1, 4, 50, 64))
    with pytest.raises(ValueError):
        model(torch.randn(7, 50, 64))


@pytest.mark.parametrize("name", ["seldnet", "resnet_gru", "resnet_conformer"])
def test_other_frequency_sizes_work(name):
    model = _tiny(name, num_freq_bins=191) if name == "seldnet" else _tiny(name)
    with torch.no_grad():
        assert model(torch.randn(1, 7, 23, 191)).shape == (1, 5, 3, 3, 13)


def test_constructor_arguments_reach_the_submodules():
    model = build_model("resnet_conformer", in_channels=4, widths=(8, 16, 24), blocks=(1, 2, 1),
                        pools=((1, 2), (5, 2), (1, 2)), dim=24, depth=3, heads=3, kernel_size=7, ff_mult=2,
                        freq_out=3)
    assert len(model.blocks) == 3 and model.embed_dim == 24
    block = model.blocks[0]
    assert block.attn.num_heads == 3 and block.conv.depthwise.kernel_size == (7,)
    assert block.ff1.net[1].out_features == 48
    assert model.trunk.stem[0].in_channels == 4 and len(model.trunk.stages[1]) == 2 + 2  # 2 blocks, pool, dropout
    assert model.proj.in_features == 24 * 3
    gru = build_model("resnet_gru", in_channels=7, rnn_size=32, rnn_layers=3)
    assert gru.gru.hidden_size == 32 and gru.gru.num_layers == 3 and gru.embed_dim == 64
    seld = build_model("seldnet", conv_channels=16, rnn_size=32, heads=4, attention_layers=3)
    assert len(seld.attention) == 3 and seld.attention[0].num_heads == 4 and seld.gru.input_size == 16 * 2
    with pytest.raises(ValueError, match="multiply to 5"):
        build_model("resnet_gru", pools=((2, 2), (2, 2), (1, 2), (1, 1)))


def test_conformer_parts_keep_the_shape():
    x = torch.randn(2, 9, 16)
    assert FeedForward(16, 2, 0.1)(x).shape == x.shape
    assert ConvModule(16, 5, 0.1)(x).shape == x.shape
    assert ConformerBlock(16, heads=4, ff_mult=2, kernel_size=5, dropout=0.1)(x).shape == x.shape
    with pytest.raises(ValueError):
        ConvModule(16, 4)
    with pytest.raises(ValueError):
        ConformerBlock(16, heads=3)


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_model_overfits_one_tiny_batch(name):
    """Adam on one batch of 2 × 1 s: the ADPIT loss falls below a fifth of the all-zero output's loss."""
    rng = np.random.default_rng(0)
    rows = [(t, int(rng.integers(13)), 0, rng.uniform(-180, 180), rng.uniform(-60, 60)) for t in range(10)
            for _ in range(2)]
    target = torch.from_numpy(events_to_adpit(Events.from_arrays(*zip(*rows)), 10))[None].repeat(2, 1, 1, 1, 1)
    target[1] = target[1].flip(0)
    loss_fn = build_loss("adpit")
    goal = 0.2 * loss_fn(torch.zeros(2, 10, 3, 3, 13), target).item()
    model = _tiny(name, dropout=0.0).train()
    features = torch.randn(2, 7, 50, 64, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(400):
        optimizer.zero_grad()
        loss = loss_fn(model(features), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] < goal:
            break
    assert losses[-1] < goal, f"{name}: loss {losses[0]:.4f} -> {losses[-1]:.4f} after {len(losses)} steps"


def test_gated_head_lengths_are_sigmoid_activities_along_class_plus_shared_directions():
    torch.manual_seed(0)
    head = MultiAccdoaHead(6, kind="gated")
    tokens = torch.randn(2, 5, 6)
    out = head(tokens)
    assert out.shape == (2, 5, 3, 3, 13)
    raw = head.out(tokens).reshape(2, 5, 3, 4, 13)
    torch.testing.assert_close(out.norm(dim=3), torch.sigmoid(raw[:, :, :, 0]), atol=1e-5, rtol=0)
    direction = raw[:, :, :, 1:] + head.shared(tokens).reshape(2, 5, 3, 3, 1)
    cos = torch.nn.functional.cosine_similarity(out, direction, dim=3)
    torch.testing.assert_close(cos, torch.ones_like(cos), atol=1e-5, rtol=0)
    # the shared per-track direction moves every class's direction at once
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.zero_()
        head.shared.weight.zero_()
        head.shared.bias.copy_(torch.tensor([0.0, 0.0, 1.0] * 3))
    torch.testing.assert_close(head(tokens)[..., 2, :], torch.full((2, 5, 3, 13), 0.5), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="head kind"):
        MultiAccdoaHead(6, kind="softmax")
    with pytest.raises(ValueError, match="head kind"):
        _tiny("resnet_conformer", head="nope")
