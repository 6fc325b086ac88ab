"""``av-seld infer``: prediction CSVs for folders of wav (and mp4) files from one or several checkpoints.

Each checkpoint rebuilds its model alone (registry name, constructor arguments, weights, feature kind and
standardisation, calibrated thresholds). Clips of any length are covered by sliding windows of the training chunk
length with 50 % overlap. Several checkpoints are combined by averaging their multi-ACCDOA outputs after matching
tracks; the ensemble uses the mean of the models' per-class thresholds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from av_seld import timing
from av_seld.errors import InputError
from av_seld.features import FeatureExtractor
from av_seld.io.audio import read_wav
from av_seld.postprocess import write_predictions
from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint
from av_seld.training.inference import ensemble_outputs, predict_clip

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    path: Path
    model: torch.nn.Module
    extractor: FeatureExtractor
    audio_format: str
    window_frames: int
    thresholds: np.ndarray
    merge_deg: float
    frame_size: tuple[int, int] | None  # (H, W) for audio-visual models


def load_for_inference(path: str | os.PathLike, device: torch.device) -> LoadedModel:
    payload = load_checkpoint(path)
    model = build_model_from_checkpoint(payload, device=device)
    for key in ("features", "format", "feature_mean", "feature_std", "chunk_s", "thresholds", "merge_deg"):
        if key not in payload:
            raise InputError(path, f"checkpoint lacks '{key}', which inference needs (was it written by av-seld train?)")
    extractor = FeatureExtractor(payload["features"], mean=payload["feature_mean"], std=payload["feature_std"]).to(device)
    frame_size = tuple(model.visual.frame_size) if hasattr(model, "visual_tokens") else None
    window = int(round(payload["chunk_s"] * timing.LABEL_FRAMES_PER_SECOND))
    return LoadedModel(Path(path), model, extractor, payload["format"], window,
                       np.asarray(payload["thresholds"], dtype=np.float64),
                       float(payload["merge_deg"]), frame_size)


def infer_folder(checkpoints: Sequence[str | os.PathLike], audio_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 *, video_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 hop_fraction: float = 0.5, progress: Callable[[Path], None] | None = None) -> list[Path]:
    """Write ``OUT_DIR/<clip>.csv`` for every ``AUDIO_DIR/*.wav``; returns the written paths."""
    device = torch.device(device)
    models = [load_for_inference(c, device) for c in checkpoints]
    if not models:
        raise ValueError("give at least one checkpoint")
    formats = {m.audio_format for m in models}
    if len(formats) > 1:
        raise InputError(models[0].path, f"the checkpoints expect different audio formats: {sorted(formats)}")
    audio_dir = Path(audio_dir)
    wavs = sorted(audio_dir.glob("*.wav"))
    if not wavs:
        raise InputError(audio_dir, "no .wav files found")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for wav in wavs:
        audio = torch.from_numpy(read_wav(wav))
        num_frames = timing.num_label_frames(audio.shape[1])
        outputs = []
        for m in models:
            feats = m.extractor(audio.to(device)).cpu()
            frames = valid = None
            if m.frame_size is not None and video_dir is not None:
                frames, valid = _video_for(Path(video_dir) / f"{wav.stem}.mp4", num_frames, m.frame_size)
            hop = max(1, int(round(m.window_frames * hop_fraction)))
            outputs.append(predict_clip(m.model, feats, window_frames=m.window_frames, hop_frames=hop,
                                        num_frames=num_frames, frames=frames, video_valid=valid))
        output = ensemble_outputs(outputs)
        thresholds = np.mean([m.thresholds for m in models], axis=0)
        path = out_dir / f"{wav.stem}.csv"
        write_predictions(path, output, thresholds, models[0].merge_deg)
        written.append(path)
        if progress is not None:
            progress(path)
    return written


def _video_for(path: Path, num_frames: int, frame_size: tuple[int, int]):
    """Frames (T, H, W, 3) uint8 at label rate and their validity; a clip without video runs audio-only."""
    if not path.is_file():
        log.warning("%s: no video, predicting from audio only", path)
        return None, None
    from av_seld.io.video import read_video_at_label_rate

    video = read_video_at_label_rate(path, num_label_frames=num_frames, height=frame_size[0], width=frame_size[1])
    return torch.from_numpy(np.ascontiguousarray(video.frames)), torch.from_numpy(np.asarray(video.valid))
