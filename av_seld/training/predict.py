"""``av-seld infer``: the one prediction path from audio (and video) files to events.

Everything that turns a checkpoint and a clip into scores goes through :func:`predict_output`: ``av-seld infer``,
the validation calibration and test scoring at the end of ``av-seld train``, and the demo's comparison rows. So the
numbers a run reports are the numbers ``av-seld infer`` + ``av-seld evaluate`` give on the same checkpoint.

Each checkpoint rebuilds its model alone (registry name, constructor arguments, weights, feature kind and
standardisation, calibrated thresholds, output smoothing). Clips of any length are covered by sliding windows of the
training chunk length with 50 % overlap. Several checkpoints are combined by averaging their multi-ACCDOA outputs after
matching tracks; the ensemble uses the mean of the models' per-class thresholds and of their smoothing windows
(rounded), and the smoothing (:func:`av_seld.postprocess.smooth_output`) applies to the combined output.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from av_seld import timing
from av_seld.errors import InputError
from av_seld.data.pipeline import FeatureFrontEnd
from av_seld.io.audio import read_wav
from av_seld.io.dataset import data_files
from av_seld.postprocess import smooth_output, write_predictions
from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint
from av_seld.training.inference import (ensemble_outputs, pool_frames, predict_clip, sampled_label_frames,
                                        spread_sampled)

log = logging.getLogger(__name__)

HOP_FRACTION = 0.5  # window hop of clip inference, as a fraction of the training chunk
VISUAL_STRIDE = 1  # label frames per visual-encoder frame at inference
VISUAL_SPREAD_DEFAULT = "nearest"  # how the label frames between two sampled ones read them
VISUAL_BACKENDS = ("torch", "onnx")  # what runs the frozen YOLO trunk of audio-visual models (see with_visual_backend)


@dataclass
class LoadedModel:
    path: Path
    model: torch.nn.Module
    extractor: FeatureFrontEnd  # the training pipeline's featurize and standardize stages
    audio_format: str
    window_frames: int
    thresholds: np.ndarray
    merge_deg: float
    frame_size: tuple[int, int] | None  # (H, W) for audio-visual models
    visual_trunk: Callable[[torch.Tensor], torch.Tensor] | None = None  # runs pooled_features instead of torch
    tta: bool = False  # average over the sound field's azimuth rotations (see rotation_transforms)
    smooth_frames: int = 1  # output averaged over this many label frames before decoding (eval.smooth_frames)

    @property
    def is_audio_visual(self) -> bool:
        return self.frame_size is not None

    @property
    def has_distance(self) -> bool:
        """Whether the model outputs distances (``model.params.distance``; every registered model's head says)."""
        return bool(getattr(self.model.head, "distance", False))


@dataclass(frozen=True)
class ClipFiles:
    """One clip to predict: its name (the prediction CSV's stem), its wav and, optionally, its 360° mp4."""

    name: str
    audio: Path
    video: Path | None = None


def loaded_from_payload(path: str | os.PathLike, payload: dict, device: torch.device,
                        model: torch.nn.Module | None = None) -> LoadedModel:
    """A :class:`LoadedModel` of a checkpoint's payload; ``model`` replaces the checkpoint's weights (e.g. the same
    network untrained, to compare against)."""
    for key in ("features", "format", "feature_mean", "feature_std", "chunk_s", "thresholds", "merge_deg"):
        if key not in payload:
            raise InputError(path, f"checkpoint lacks '{key}', which inference needs (was it written by av-seld train?)")
    model = (model if model is not None else build_model_from_checkpoint(payload)).to(device).eval()
    extractor = FeatureFrontEnd(payload["features"], mean=payload["feature_mean"],
                                std=payload["feature_std"]).to(device)
    frame_size = tuple(model.visual.frame_size) if model.uses_video else None
    window = int(round(payload["chunk_s"] * timing.LABEL_FRAMES_PER_SECOND))
    return LoadedModel(Path(path), model, extractor, payload["format"], window,
                       np.asarray(payload["thresholds"], dtype=np.float64), float(payload["merge_deg"]), frame_size,
                       tta=bool(payload.get("tta", False)), smooth_frames=int(payload.get("smooth_frames", 1)))


def load_for_inference(path: str | os.PathLike, device: torch.device, visual_backend: str = "torch",
                       tta: bool | None = None) -> LoadedModel:
    """A checkpoint ready for :func:`predict_audio`; ``tta`` True/False overrides its recipe's ``eval.tta``."""
    model = with_visual_backend(loaded_from_payload(path, load_checkpoint(path), torch.device(device)), visual_backend)
    return model if tta is None else with_tta(model, tta)


def with_visual_backend(model: LoadedModel, backend: str) -> LoadedModel:
    """``model`` with its frozen YOLO trunk run by ``backend``: ``torch`` (the model's own layers) or ``onnx`` (the
    trunk exported to ONNX once, in memory, and run by onnxruntime on the CPU:
    :class:`~av_seld.export.OnnxVisualTrunk`). Audio-only models have no trunk and are returned as they are."""
    if backend not in VISUAL_BACKENDS:
        raise ValueError(f"visual backend must be one of {VISUAL_BACKENDS}, got {backend!r}")
    if backend == "torch" or not model.is_audio_visual:
        return replace(model, visual_trunk=None)
    device = next(model.model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"the onnx visual backend runs on the CPU, but {model.path} is on {device}: use --device cpu")
    from av_seld.export import OnnxVisualTrunk

    return replace(model, visual_trunk=OnnxVisualTrunk(model.model.visual))


def with_thresholds(model: LoadedModel, thresholds: np.ndarray) -> LoadedModel:
    return replace(model, thresholds=np.asarray(thresholds, dtype=np.float64))


def with_tta(model: LoadedModel, tta: bool) -> LoadedModel:
    return replace(model, tta=bool(tta))


def rotation_transforms(model: LoadedModel) -> list:
    """The channel swaps one clip goes through for test-time augmentation: the azimuth rotations (0°, ±90°, 180°)
    that training's ACS uses with cached visual features (:func:`av_seld.data.pipeline.rotation_indices`; for an
    audio-visual model only those that move whole cells of its visual grid), identity first. Without ``model.tta``,
    the identity alone."""
    from augment.acs import ChannelSwap
    from av_seld.data.pipeline import rotation_indices

    if not model.tta:
        return [ChannelSwap(model.audio_format, 0)]
    grid_width = model.model.visual.token_grid[1] if model.is_audio_visual else None
    return [ChannelSwap(model.audio_format, i) for i in rotation_indices(model.audio_format, grid_width)]


def _check_formats(models: Sequence[LoadedModel]) -> None:
    if not models:
        raise ValueError("give at least one checkpoint")
    formats = {m.audio_format for m in models}
    if len(formats) > 1:
        raise InputError(models[0].path, f"the checkpoints expect different audio formats: {sorted(formats)}")


def predict_output(models: Sequence[LoadedModel], clip: ClipFiles, *, hop_fraction: float = HOP_FRACTION,
                   visual_stride: int = VISUAL_STRIDE) -> np.ndarray:
    """Multi-ACCDOA output (T, 3, 3, 13) of one clip's files (see :func:`predict_audio`)."""
    _check_formats(models)
    return predict_audio(models, torch.from_numpy(read_wav(clip.audio)), video=clip.video, hop_fraction=hop_fraction,
                         visual_stride=visual_stride)


def predict_audio(models: Sequence[LoadedModel], audio: torch.Tensor, *, video: Path | None = None,
                  hop_fraction: float = HOP_FRACTION, visual_stride: int = VISUAL_STRIDE,
                  visual_spread: str = VISUAL_SPREAD_DEFAULT) -> np.ndarray:
    """Multi-ACCDOA output (T, 3, 3, 13) of one clip: ``audio`` (4, N) float at 24 kHz in the checkpoints' format;
    features, the clip's frames for audio-visual models (``video`` None: the "no video" token), sliding windows, and
    the tracks-matched ensemble mean. A model with ``tta`` also predicts the clip rotated by ±90° and 180° in
    azimuth (audio channels swapped, its visual grid rolled), rotates those outputs back and joins them to the mean.
    The mean is then smoothed over :func:`ensemble_smooth_frames` label frames.

    ``visual_stride``: only every ``visual_stride``-th label frame's video is decoded and run through the visual
    encoder; the frames in between read the nearest one's features (``visual_spread="linear"``: a blend of the two
    around it; see :func:`~av_seld.training.inference.spread_sampled`). 1 runs every 100 ms label frame.
    """
    _check_formats(models)
    if audio.dim() != 2 or audio.shape[0] != 4:
        raise ValueError(f"audio must be (4 channels, samples), got {tuple(audio.shape)}")
    num_frames = timing.num_label_frames(audio.shape[1])
    outputs = []
    frame_cache: dict[tuple[int, int], tuple] = {}  # frame size -> sampled frames, their validity
    for m in models:
        device = next(m.model.parameters()).device
        features = m.extractor(audio.to(device)).cpu()
        pooled = valid = None
        if m.is_audio_visual and video is not None:
            if m.frame_size not in frame_cache:
                frame_cache[m.frame_size] = read_clip_frames(Path(video), num_frames, m.frame_size, visual_stride)
            frames, sampled_valid = frame_cache[m.frame_size]
            if frames is not None:
                pooled, valid = spread_sampled(pool_frames(m.model.visual, frames, sampled_valid, m.visual_trunk),
                                               sampled_valid, num_frames, visual_stride, visual_spread)
        hop = max(1, int(round(m.window_frames * hop_fraction)))
        for swap in rotation_transforms(m):
            if not swap.is_identity:  # the rotated scene: its audio, and the frozen encoder's grid rolled with it
                features = m.extractor(swap.audio(audio).to(device)).cpu()
            output = predict_clip(m.model, features, window_frames=m.window_frames, hop_frames=hop,
                                  num_frames=num_frames, video_valid=valid,
                                  visual_features=pooled if pooled is None or swap.is_identity
                                  else swap.frames(pooled, channels_first=True))
            outputs.append(output if swap.is_identity else swap.inverse().accdoa(output))
    return smooth_output(ensemble_outputs(outputs), ensemble_smooth_frames(models))


def ensemble_thresholds(models: Sequence[LoadedModel]) -> np.ndarray:
    return np.mean([m.thresholds for m in models], axis=0)


def ensemble_smooth_frames(models: Sequence[LoadedModel]) -> int:
    """The smoothing window of combined outputs: the mean of the models' (one model: its own), rounded."""
    return max(1, int(np.floor(np.mean([m.smooth_frames for m in models]) + 0.5)))


def predict_outputs(models: Sequence[LoadedModel], clips: Sequence[ClipFiles], *,
                    hop_fraction: float = HOP_FRACTION, visual_stride: int = VISUAL_STRIDE,
                    progress: Callable[[ClipFiles], None] | None = None) -> Iterator[tuple[ClipFiles, np.ndarray]]:
    """``(clip, output)`` for every clip, in order (see :func:`predict_output`)."""
    for clip in clips:
        output = predict_output(models, clip, hop_fraction=hop_fraction, visual_stride=visual_stride)
        if progress is not None:
            progress(clip)
        yield clip, output


def write_clip_predictions(models: Sequence[LoadedModel], clips: Sequence[ClipFiles], out_dir: str | os.PathLike, *,
                           hop_fraction: float = HOP_FRACTION, visual_stride: int = VISUAL_STRIDE,
                           progress: Callable[[Path], None] | None = None) -> list[Path]:
    """Write ``OUT_DIR/<clip name>.csv`` (DCASE prediction CSV) for every clip; returns the written paths."""
    _check_formats(models)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    thresholds = ensemble_thresholds(models)
    written = []
    for clip, output in predict_outputs(models, clips, hop_fraction=hop_fraction, visual_stride=visual_stride):
        path = out_dir / f"{clip.name}.csv"
        write_predictions(path, output, thresholds, models[0].merge_deg)
        written.append(path)
        if progress is not None:
            progress(path)
    return written


def folder_clips(audio_dir: str | os.PathLike, video_dir: str | os.PathLike | None = None) -> list[ClipFiles]:
    """The clips of a folder of wavs (``AUDIO_DIR/*.wav``), each with ``VIDEO_DIR/<name>.mp4`` when given."""
    audio_dir = Path(audio_dir)
    wavs = data_files(audio_dir, ".wav")
    if not wavs:
        raise InputError(audio_dir, "no .wav files found")
    return [ClipFiles(w.stem, w, None if video_dir is None else Path(video_dir) / f"{w.stem}.mp4") for w in wavs]


def infer_folder(checkpoints: Sequence[str | os.PathLike], audio_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 *, video_dir: str | os.PathLike | None = None, device: str | torch.device = "auto",
                 hop_fraction: float = HOP_FRACTION, visual_stride: int = VISUAL_STRIDE, visual_backend: str = "torch",
                 tta: bool | None = None, progress: Callable[[Path], None] | None = None) -> list[Path]:
    """Write ``OUT_DIR/<clip>.csv`` for every ``AUDIO_DIR/*.wav``; returns the written paths. ``device``: auto, cpu,
    cuda or cuda:N (:func:`av_seld.utils.device.pick_device`); ``visual_backend`` as in :func:`with_visual_backend`;
    ``tta``: test-time rotations on or off (None: each checkpoint's own ``eval.tta``)."""
    from av_seld.utils.device import pick_device

    device = pick_device(device, key="device")
    models = [load_for_inference(c, device, visual_backend, tta) for c in checkpoints]
    _check_formats(models)
    check_inputs(models, audio_dir, video_dir)
    clips = folder_clips(audio_dir, video_dir)
    return write_clip_predictions(models, clips, out_dir, hop_fraction=hop_fraction, visual_stride=visual_stride,
                                  progress=progress)


def check_inputs(models: Sequence[LoadedModel], audio_dir: str | os.PathLike,
                 video_dir: str | os.PathLike | None) -> None:
    """Refuse audio of the other format where the folder says which it is (STARSS23's ``foa_*`` / ``mic_*``
    folders: FOA and MIC wavs both have 4 channels, so the files cannot tell); warn once when video is given to
    audio-only checkpoints (ignored) or missing for audio-visual ones (they run with their "no video" token)."""
    expected = models[0].audio_format
    other = "mic" if expected == "foa" else "foa"
    folder = Path(audio_dir).resolve()
    for part in (folder, *folder.parents):
        name = part.name.lower()
        if name.startswith(f"{other}_") or name == other:
            raise InputError(audio_dir, f"this folder holds {other.upper()} audio ({part.name}), but the checkpoint "
                                        f"{models[0].path} was trained on {expected.upper()}")
        if name.startswith(f"{expected}_") or name == expected:
            break
    uses_video = any(m.is_audio_visual for m in models)
    if video_dir is not None and not uses_video:
        log.warning("--video %s is ignored: the checkpoint(s) are audio-only", video_dir)
    if video_dir is None and uses_video:
        log.warning("%s is an audio-visual checkpoint but no --video was given: predicting from the audio alone "
                    "(every frame gets the model's \"no video\" token)", models[0].path)


def read_clip_frames(path: Path, num_frames: int, frame_size: tuple[int, int], stride: int = 1):
    """Frames (S, H, W, 3) uint8 of label frames 0, stride, 2·stride, ... (decoded at the encoder's size) and their
    validity (S,) bool; (None, None) for a missing file: the clip runs audio-only."""
    if not path.is_file():
        log.warning("%s: no video, predicting from audio only", path)
        return None, None
    from av_seld.io.video import VideoReader

    reader = VideoReader(path, frame_size[1], frame_size[0])
    frames, valid = reader.read_label_frames(sampled_label_frames(num_frames, stride))
    covered = timing.label_frames_covered_by_video(reader.num_frames, reader.fps)
    if covered < num_frames:
        log.warning("%s: video has %d frames at %.3f fps; the %d label frames past its end run without video",
                    path, reader.num_frames, reader.fps, num_frames - covered)
    return torch.from_numpy(np.ascontiguousarray(frames)), torch.from_numpy(np.asarray(valid))
