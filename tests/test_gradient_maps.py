"""Input-gradient maps of the audio-visual model (av_seld.viz.maps) and the ``av-seld maps`` command: gradients reach
the frames through the frozen YOLO encoder, guided backpropagation changes them and leaves no hook behind, and the
command writes one PNG per label frame for a tiny checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment.spatial import render_foa
from av_seld.cli import main
from av_seld.geometry import equirect_pixel
from av_seld.io.audio import write_wav
from av_seld.io.video import VideoWriter
from av_seld.models import build_model
from av_seld.timing import SAMPLE_RATE
from av_seld.training.checkpoint import save_checkpoint
from av_seld.viz.maps import gradient_saliency_map, guided_backprop, window_gradient_maps

pytestmark = pytest.mark.usefixtures("one_torch_thread")

AUDIO = {"in_channels": 7, "widths": [4, 8], "blocks": [1, 1], "pools": [[5, 2], [1, 2]], "dim": 16, "depth": 1,
         "heads": 2, "kernel_size": 3}
AV = {"audio_model": "resnet_conformer", "audio_kwargs": AUDIO, "frame_size": [64, 128], "token_grid": [2, 4],
      "depth": 1, "heads": 2, "kernel_size": 3, "freeze_visual": True}
T = 4  # label frames


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("av_conformer", **AV).eval()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(7, 5 * T, 64, generator=g)  # (C, T_feat, F)
    frames = torch.randint(0, 256, (T, 64, 128, 3), dtype=torch.uint8, generator=g)
    return features, frames


def yolo_parameters(model):
    return [p for n, p in model.named_parameters() if n.startswith("visual.layers.")]


def test_gradients_reach_the_frames_through_the_frozen_encoder(model, inputs):
    features, frames = inputs
    maps = window_gradient_maps(model, features, frames, classes=[0, 5], window_frames=T, hop_frames=T)
    assert maps.shape == (T, 2, 64, 128) and maps.dtype == np.float32
    assert (maps.reshape(T * 2, -1).max(axis=1) > 0).all()  # every frame, every class
    assert all(not p.requires_grad and p.grad is None for p in yolo_parameters(model))
    # The single-frame map of gradient_saliency_map, which was all zeros behind the frozen encoder.
    heat = gradient_saliency_map(lambda x: model(features[None], frames=x.permute(0, 3, 1, 2)[None])[0], frames,
                                 class_index=5, time_index=2)
    assert heat.max() == pytest.approx(1.0)
    assert all(p.grad is None for p in model.parameters())  # autograd.grad leaves every .grad alone
    with torch.no_grad():  # without frames that ask for gradients the frozen encoder still records no graph
        assert not model.visual.pooled_features(frames[:1].permute(0, 3, 1, 2)).requires_grad


def test_windows_cover_the_clip_and_frames_without_video_get_no_map(model, inputs):
    features, frames = inputs
    valid = torch.tensor([True, False, True, True])
    maps = window_gradient_maps(model, features, frames, classes=[3], window_frames=3, hop_frames=2,
                                video_valid=valid)  # windows start at 0 and 2; the second runs past the end
    peaks = maps[:, 0].reshape(T, -1).max(axis=1)
    assert peaks[1] == 0 and (peaks[[0, 2, 3]] > 0).all()


def test_guided_backprop_differs_from_plain_and_removes_its_hooks(model, inputs):
    features, frames = inputs
    plain = window_gradient_maps(model, features, frames, classes=[2], window_frames=T, hop_frames=T)
    guided = window_gradient_maps(model, features, frames, classes=[2], window_frames=T, hop_frames=T,
                                  method="guided")
    assert guided.max() > 0
    assert np.abs(guided - plain).max() > 0.05 * plain.max()
    assert not any(m._backward_hooks for m in model.modules())
    again = window_gradient_maps(model, features, frames, classes=[2], window_frames=T, hop_frames=T)
    np.testing.assert_array_equal(again, plain)
    with guided_backprop(model.visual) as hooked:  # YOLO's SiLU modules (one shared instance at least)
        assert hooked >= 1 and any(m._backward_hooks for m in model.visual.modules())
    assert not any(m._backward_hooks for m in model.modules())
    with pytest.raises(RuntimeError, match="boom"), guided_backprop(model.visual):
        raise RuntimeError("boom")
    assert not any(m._backward_hooks for m in model.modules())


def test_guided_backprop_passes_only_positive_gradients():
    layer = torch.nn.Sequential(torch.nn.SiLU())
    x = torch.tensor([-3.0, -0.5, 0.5, 3.0], requires_grad=True)
    weights = torch.tensor([1.0, -1.0, -1.0, 1.0])
    (plain,) = torch.autograd.grad((layer(x) * weights).sum(), x)
    with guided_backprop(layer):
        (guided,) = torch.autograd.grad((layer(x) * weights).sum(), x)
    torch.testing.assert_close(guided, plain.clamp(min=0))
    assert (plain < 0).any()


def test_audio_only_models_are_refused(inputs):
    features, frames = inputs
    audio_model = build_model("resnet_conformer", **AUDIO)
    with pytest.raises(ValueError, match="does not use video"):
        window_gradient_maps(audio_model, features, frames, classes=[0], window_frames=T, hop_frames=T)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 1 s clip: FOA noise from (-90°, 0°) and a 128 × 64 video with a white square there."""
    root = tmp_path_factory.mktemp("clip")
    azimuth, elevation = -90.0, 0.0
    signal = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    write_wav(root / "clip.wav", render_foa(signal, azimuth, elevation))
    frame = np.full((64, 128, 3), 40, np.uint8)
    i, j = equirect_pixel(azimuth, elevation, 128, 64)
    frame[j - 4:j + 4, i - 4:i + 4] = 255
    with VideoWriter(root / "clip.mp4", 10.0, (128, 64)) as writer:
        for _ in range(10):
            writer.write(frame)
    torch.manual_seed(0)
    av = build_model("av_conformer", **AV)
    save_checkpoint(root / "best.pt", {
        "model_name": "av_conformer", "model_params": AV, "model_state": av.state_dict(),
        "features": "foa_logmel_iv", "format": "foa", "chunk_s": 0.6, "feature_mean": np.zeros((7, 64), np.float32),
        "feature_std": np.ones((7, 64), np.float32), "thresholds": np.full(13, 0.5), "merge_deg": 15.0,
        "config": {}})
    return root


def test_maps_command_writes_a_png_per_label_frame(clip, tmp_path, capsys):
    out = tmp_path / "maps"
    argv = ["maps", str(clip / "best.pt"), "--audio", str(clip / "clip.wav"), "--video", str(clip / "clip.mp4"),
            "--out", str(out), "--size", "128x64"]
    assert main([*argv, "--classes", "telephone", "0", "--method", "guided"]) == 0
    for folder in ("03_telephone", "00_female_speech"):
        pngs = sorted((out / folder).glob("*.png"))
        assert [p.name for p in pngs] == [f"{t:04d}.png" for t in range(10)]
        assert (out / f"{folder}.mp4").stat().st_size > 0
    assert "telephone: 10 PNGs" in capsys.readouterr().out

    assert main(["maps", "--kind", "acoustic", "--format", "foa", *argv[2:]]) == 0
    assert len(list((out / "acoustic").glob("*.png"))) == 10 and (out / "acoustic.mp4").is_file()
    assert not list(out.rglob(".*"))  # no temporary file left behind


def test_maps_command_errors_name_the_problem(clip, tmp_path, capsys):
    base = ["--audio", str(clip / "clip.wav"), "--video", str(clip / "clip.mp4"), "--out", str(tmp_path)]
    assert main(["maps", *base]) == 2
    assert "need an audio-visual CHECKPOINT" in capsys.readouterr().err
    assert main(["maps", "--kind", "acoustic", *base]) == 2
    assert "--format" in capsys.readouterr().err
    assert main(["maps", str(clip / "best.pt"), *base, "--classes", "kazoo"]) == 2
    assert "unknown class 'kazoo'" in capsys.readouterr().err
    assert main(["maps", str(clip / "best.pt"), *base[:2], "--video", str(tmp_path / "none.mp4"),
                 "--out", str(tmp_path)]) == 2
    assert "none.mp4: video not found" in capsys.readouterr().err
