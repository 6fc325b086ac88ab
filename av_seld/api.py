"""The Python API: load checkpoints, predict clips, get events.

>>> import av_seld
>>> model = av_seld.load("runs/small_data/best.pt")              # several paths: an ensemble
>>> result = model.predict("clip.wav", video="clip.mp4")        # or a (4, samples) array at 24 kHz
>>> result.events.class_index, result.events.azimuth_deg        # one row per (frame, class, track)
>>> result.to_csv("clip.csv")                                   # the DCASE prediction CSV

It runs the code of ``av-seld infer`` (:func:`av_seld.training.predict.predict_audio`), so the events equal the CSV
that command writes for the same files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from av_seld.io.labels import Events, write_prediction_csv
from av_seld.postprocess import multi_accdoa_to_events, prediction_form

PathLike = str | os.PathLike


@dataclass
class Prediction:
    """One clip's prediction: the multi-ACCDOA ``output`` (T, 3, 3, 13) at 100 ms and its decoded ``events``; with a
    distance model (T, 3, 4, 13) and events with ``distance_m``."""

    output: np.ndarray
    events: Events

    def to_csv(self, path: PathLike, form: str | None = None) -> Path:
        """Write the DCASE prediction CSV atomically and return its path: ``form="polar"`` (frame, class, track,
        azimuth, elevation) or ``"cartesian"`` (x, y, z, distance); None: Cartesian with distance for a distance
        model, polar otherwise (what ``av-seld infer`` writes)."""
        write_prediction_csv(path, self.events, form=prediction_form(self.events) if form is None else form)
        return Path(path)


class SeldPredictor:
    """One or several av-seld checkpoints (an ensemble averages their outputs after matching tracks)."""

    def __init__(self, checkpoints: PathLike | Sequence[PathLike], device: str | torch.device = "auto",
                 tta: bool | None = None):
        from av_seld.training.predict import _check_formats, load_for_inference
        from av_seld.utils.device import pick_device

        paths = [checkpoints] if isinstance(checkpoints, (str, os.PathLike)) else list(checkpoints)
        device = pick_device(device, key="device")
        self.models = [load_for_inference(p, device, tta=tta) for p in paths]
        _check_formats(self.models)

    @property
    def audio_format(self) -> str:
        """"foa" or "mic": the 4-channel format the checkpoints were trained on."""
        return self.models[0].audio_format

    @property
    def uses_video(self) -> bool:
        return any(m.is_audio_visual for m in self.models)

    @property
    def thresholds(self) -> np.ndarray:
        """Per-class activity thresholds (13,) used to decode events (the calibrated ones of the checkpoints)."""
        from av_seld.training.predict import ensemble_thresholds

        return ensemble_thresholds(self.models)

    def predict(self, audio: PathLike | np.ndarray | torch.Tensor, *, video: PathLike | None = None,
                visual_stride: int | None = None) -> Prediction:
        """Predict one clip: ``audio`` a 4-channel 24 kHz wav path or an array (4, samples) in the checkpoints'
        format; ``video`` the clip's 360° mp4 (audio-visual checkpoints; ignored by audio-only ones);
        ``visual_stride`` as ``av-seld infer --visual-stride`` (default: infer's)."""
        from av_seld.io.audio import read_wav
        from av_seld.training.predict import VISUAL_STRIDE, predict_audio

        if isinstance(audio, (str, os.PathLike)):
            audio = read_wav(audio)
        audio = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        output = predict_audio(self.models, audio, video=None if video is None else Path(video),
                               visual_stride=VISUAL_STRIDE if visual_stride is None else visual_stride)
        events = multi_accdoa_to_events(output, self.thresholds, self.models[0].merge_deg)
        return Prediction(output, events)

    def stream(self, *, video: bool = False, visual_stride: int | None = None):
        """A :class:`~av_seld.training.streaming.StreamingPredictor`: ``push(audio_chunk, frames)`` then
        ``finish()``, each returning the label frames that became final (their output and events); the outputs
        equal :meth:`predict`'s. ``video``: frames (at label rate, ``frame_size`` of the stream) come with the audio."""
        from av_seld.training.predict import VISUAL_STRIDE
        from av_seld.training.streaming import StreamingPredictor

        return StreamingPredictor(self.models, video=video,
                                  visual_stride=VISUAL_STRIDE if visual_stride is None else visual_stride)


def load(checkpoints: PathLike | Sequence[PathLike], device: str | torch.device = "auto",
         tta: bool | None = None) -> SeldPredictor:
    """Load one checkpoint, or several as an ensemble, for prediction (see :class:`SeldPredictor`). ``tta``: test-time
    rotations on or off, as ``av-seld infer --tta/--no-tta`` (None: each checkpoint's ``eval.tta``)."""
    return SeldPredictor(checkpoints, device, tta)
