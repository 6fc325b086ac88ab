"""Fast inference: visual tokens at a lower frame rate than the labels (``visual_stride``), and streaming inference
that emits each label frame's events as soon as it is final and equals offline inference."""

from pathlib import Path

import numpy as np
import pytest
import torch

from av_seld.data.pipeline import FeatureFrontEnd
from av_seld.io.video import VideoReader, VideoWriter
from av_seld.training.inference import sampled_label_frames, sampled_needed, spread_sampled
from av_seld.training.predict import LoadedModel, predict_audio
from av_seld.training.streaming import StreamingPredictor

FRAME_SIZE = (64, 128)


def _tiny_av_model(seed: int = 0, window: int = 10) -> LoadedModel:
    from av_seld.models import build_model

    torch.manual_seed(seed)
    model = build_model("av_conformer", frame_size=FRAME_SIZE, token_grid=(2, 4), depth=1, heads=2, kernel_size=3,
                        audio_kwargs={"widths": [4, 8], "blocks": [1, 1], "pools": [[5, 2], [1, 2]], "dim": 16,
                                      "depth": 1, "heads": 2, "kernel_size": 3}).eval()
    rng = np.random.default_rng(seed)
    extractor = FeatureFrontEnd("foa_logmel_iv", mean=rng.normal(size=(7, 64)) * 0.1,
                                 std=1 + rng.random((7, 64)))
    # thresholds low enough that this untrained network detects something in most frames
    return LoadedModel(Path(f"tiny{seed}.pt"), model, extractor, "foa", window, np.full(13, 0.05), 20.0, FRAME_SIZE)


def _clip(tmp_path: Path, seconds: float, video_seconds: float | None = None) -> tuple[torch.Tensor, Path]:
    rng = np.random.default_rng(1)
    audio = torch.from_numpy((0.1 * rng.standard_normal((4, int(seconds * 24000)))).astype(np.float32))
    path = tmp_path / "clip.mp4"
    num = int(round((video_seconds or seconds) * 30))
    with VideoWriter(path, 30.0, (FRAME_SIZE[1], FRAME_SIZE[0])) as writer:
        for k in range(num):  # a bright square that moves across the panorama
            frame = np.full((*FRAME_SIZE, 3), 40, np.uint8)
            u = (4 * k) % FRAME_SIZE[1]
            frame[20:40, u:u + 16] = (250, 200, 30)
            writer.write(frame)
    return audio, path


def test_spread_sampled_nearest_and_linear():
    sampled = torch.tensor([[0.0], [10.0], [20.0]])
    valid = torch.tensor([True, True, False])
    near, near_valid = spread_sampled(sampled, valid, 9, 4)
    # frame n reads sample round(n / 4), a tie (n = 2, 6) the later one; past the last, the last
    assert near[:, 0].tolist() == [0, 0, 10, 10, 10, 10, 20, 20, 20]
    assert near_valid.tolist() == [True] * 6 + [False] * 3
    lin, lin_valid = spread_sampled(sampled, valid, 9, 4, mode="linear")
    # blends inside [0, 10]; between a valid and an invalid sample, the valid one
    assert lin[:, 0].tolist() == [0, 2.5, 5, 7.5, 10, 10, 10, 10, 20]
    assert lin_valid.tolist() == [True] * 8 + [False]
    assert sampled_label_frames(9, 4).tolist() == [0, 4, 8]
    assert sampled_needed(5, 4) == 1 and sampled_needed(6, 4) == 2 and sampled_needed(5, 4, "linear") == 2
    same, same_valid = spread_sampled(sampled, valid, 3, 1)
    assert torch.equal(same, sampled) and torch.equal(same_valid, valid)


def test_visual_stride_runs_fewer_frames_and_stride_one_is_unchanged(tmp_path):
    model = _tiny_av_model()
    audio, video = _clip(tmp_path, 3.0)
    calls = []
    hook = model.model.visual.layers[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    every = predict_audio([model], audio, video=video)
    seen_every = sum(calls)
    calls.clear()
    strided = predict_audio([model], audio, video=video, visual_stride=5)
    hook.remove()
    assert seen_every == 30 and sum(calls) == 6  # label frames 0, 5, ..., 25
    assert strided.shape == every.shape
    # the video matters to this network, and the strided tokens are close to but not the same as every frame's
    masked = predict_audio([model], audio)
    assert np.abs(every - masked).max() > 1e-3
    assert 0 < np.abs(strided - every).max() < np.abs(masked - every).max()


def test_the_onnx_visual_trunk_gives_torchs_pooled_features_and_predictions(tmp_path):
    """``infer --visual-backend onnx``: the YOLO trunk exported and run by onnxruntime gives the PyTorch trunk's
    pooled features and the same outputs, offline and streamed."""
    from av_seld.training.predict import with_visual_backend

    model = _tiny_av_model()
    onnx = with_visual_backend(model, "onnx")
    assert onnx.visual_trunk is not None and with_visual_backend(onnx, "torch").visual_trunk is None
    frames = torch.randint(0, 256, (5, 3, *FRAME_SIZE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model.model.visual.pooled_features(frames)
    # float32 convolutions summed in another order; pooled features here are O(1) to O(10) (seen: < 2e-5)
    torch.testing.assert_close(onnx.visual_trunk(frames), reference, rtol=1e-4, atol=1e-4)

    audio, video = _clip(tmp_path, 3.0)
    expected = predict_audio([model], audio, video=video)
    np.testing.assert_allclose(predict_audio([onnx], audio, video=video), expected, rtol=1e-4, atol=1e-4)
    stream = StreamingPredictor([onnx], video=True)
    reader = VideoReader(video, FRAME_SIZE[1], FRAME_SIZE[0])
    frames, valid = reader.read_label_frames(np.arange(30))
    streamed = [got.output for got in (stream.push(audio, frames, valid), stream.finish()) if got is not None]
    np.testing.assert_allclose(np.concatenate(streamed), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="visual backend must be one of"):
        with_visual_backend(model, "tensorrt")


@pytest.mark.parametrize("stride, spread, chunk_s, tta, smooth", [
    (1, "nearest", 0.37, False, 1), (3, "nearest", 1.0, False, 1), (4, "linear", 0.25, False, 1),
    (2, "nearest", 0.5, True, 1), (1, "nearest", 0.37, False, 5), (2, "nearest", 0.25, False, 4)])
def test_streaming_equals_offline(tmp_path, stride, spread, chunk_s, tta, smooth):
    """Audio and frames pushed in chunks give the offline outputs and events (an ensemble of two models, a video
    shorter than the audio; with test-time rotations too; with output smoothing, whose frames wait for the ones
    after them), each label frame emitted once, in order, within one window of input (and the smoothing's frames)."""
    from dataclasses import replace

    from av_seld.training.predict import with_tta

    models = [replace(with_tta(_tiny_av_model(k), tta), smooth_frames=smooth) for k in (0, 1)]
    audio, video = _clip(tmp_path, 4.3, video_seconds=3.5)
    offline = predict_audio(models, audio, video=video, visual_stride=stride, visual_spread=spread)

    reader = VideoReader(video, FRAME_SIZE[1], FRAME_SIZE[0])
    stream = StreamingPredictor(models, video=True, visual_stride=stride, visual_spread=spread)
    chunk = int(chunk_s * 24000)
    outputs, events, latencies = [], [], []
    pushed_frames = 0
    for first in range(0, audio.shape[1], chunk):
        piece = audio[:, first:first + chunk]
        label_end = -(-(first + piece.shape[1]) // 2400)
        frames, valid = reader.read_label_frames(np.arange(pushed_frames, min(label_end, 35)))
        pushed_frames += len(frames)
        got = stream.push(piece, frames, valid)
        if got is not None:
            assert got.first_frame == sum(len(o) for o in outputs)
            outputs.append(got.output)
            events.append(got.events)
            # input received after the end of the emitted frames
            latencies.append((first + piece.shape[1]) / 24000 - 0.1 * got.first_frame - 0.1)
    got = stream.finish()
    outputs.append(got.output)
    events.append(got.events)
    streamed = np.concatenate(outputs)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-4)
    # a window is 10 label frames (1 s)
    assert latencies and max(latencies) <= 1.0 + chunk_s + 0.1 * stride + 0.1 * (smooth // 2)

    from av_seld.postprocess import multi_accdoa_to_events

    expected = multi_accdoa_to_events(offline, models[0].thresholds, 20.0)
    frame = np.concatenate([e.frame for e in events])
    assert len(expected) > 0
    np.testing.assert_array_equal(frame, expected.frame)
    np.testing.assert_array_equal(np.concatenate([e.class_index for e in events]), expected.class_index)
    # directions, as angles between them: test-time rotations average this untrained network's near-constant
    # horizontal output away, leaving near-vertical vectors whose azimuth alone is ill-conditioned
    from av_seld.geometry import angular_distance_deg

    apart = angular_distance_deg(np.concatenate([e.azimuth_deg for e in events]),
                                 np.concatenate([e.elevation_deg for e in events]),
                                 expected.azimuth_deg, expected.elevation_deg)
    assert np.max(apart) < 0.05


def test_streaming_keeps_bounded_buffers_and_checks_its_input(tmp_path):
    model = _tiny_av_model(window=10)
    stream = StreamingPredictor([model], video=False)
    rng = np.random.default_rng(0)
    for _ in range(40):  # 20 s in 0.5 s pieces
        stream.push(0.1 * rng.standard_normal((4, 12000)).astype(np.float32))
        assert stream.audio.shape[1] <= 2400 * 17  # about one window (10 frames) plus a hop and context
    assert stream.emitted >= 190
    with pytest.raises(ValueError, match="4 channels"):
        stream.push(np.zeros((2, 100), np.float32))
    stream.finish()
    with pytest.raises(RuntimeError, match="finished"):
        stream.push(np.zeros((4, 100), np.float32))
    video_stream = StreamingPredictor([model], video=True)
    with pytest.raises(ValueError, match="frames must be uint8"):
        video_stream.push(np.zeros((4, 2400), np.float32), np.zeros((1, 32, 64, 3), np.uint8))


def test_gpu_bench_fails_in_one_line_without_cuda():
    import subprocess
    import sys

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: bench/gpu.sh would run")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", str(root / "bench" / "gpu.sh")], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "no CUDA device" in done.stderr
    bad = subprocess.run(["bash", str(root / "bench" / "gpu.sh"), "--fast"], capture_output=True, text=True)
    assert bad.returncode == 64 and "unknown argument --fast" in bad.stderr
