"""Streaming inference: audio and label-rate frames arrive in chunks; each 100 ms label frame's output and events
come out as soon as every window that covers it has run.

The computation is the one of ``av-seld infer`` (:func:`av_seld.training.predict.predict_audio`): the same windows
(the training chunk, hop ``hop_fraction`` of it), the same sampled video frames (every ``visual_stride``-th label
frame through the visual encoder, spread to the label rate), the same frame-wise average of overlapping windows
and the same tracks-matched ensemble. Each window's features are computed from its own audio with one label frame
of context either side, which gives the offline features exactly, except for the log-mel floor (``top_db`` below
the maximum): offline it is the whole clip's maximum, here the window's, so the two differ only in bins more than
80 dB below the loudest one. So the emitted outputs equal the offline ones to float rounding, and the events too.

Latency: label frame ``n`` is final once the last window covering it has run, i.e. once the input reaches the end
of the window starting at ``hop·floor(n / hop)`` (plus 32 samples of STFT context, and with a stride the sampled
frame nearest to that window's last frame): at most one window (``chunk_s``, 5 s for the shipped recipes) plus
``visual_stride / 2`` label frames of input after the end of frame ``n``, plus the time to compute one window. A
checkpoint that smooths its output over ``smooth_frames`` label frames (``eval.smooth_frames``) holds each frame back
until the ``smooth_frames // 2`` frames after it are final as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from av_seld import timing
from av_seld.io.labels import Events
from av_seld.postprocess import multi_accdoa_to_events, smooth_output
from av_seld.training.inference import (ensemble_outputs, model_forward, pool_frames, sampled_needed,
                                        spread_sampled, window_starts)
from av_seld.training.predict import (HOP_FRACTION, VISUAL_SPREAD_DEFAULT, VISUAL_STRIDE, LoadedModel,
                                      _check_formats, ensemble_smooth_frames, ensemble_thresholds,
                                      rotation_transforms)

SAMPLES = timing.LABEL_HOP_SAMPLES  # audio samples per label frame
STEP = timing.FEATURE_FRAMES_PER_LABEL_FRAME
STFT_REACH = timing.N_FFT // 2 - timing.FEATURE_HOP_SAMPLES + 1  # samples past a label frame its last STFT reads


@dataclass
class StreamOutput:
    """Label frames ``first_frame .. first_frame + len(output) - 1`` of the stream, final."""

    first_frame: int
    output: np.ndarray  # (n, 3, 3, 13) multi-ACCDOA
    events: Events  # their events, frames numbered from the start of the stream


class _ModelStream:
    """One model's windows over the stream: pooled features of the sampled frames, running sums of window outputs
    (one per test-time rotation, :func:`~av_seld.training.predict.rotation_transforms`)."""

    def __init__(self, model: LoadedModel, hop_fraction: float, stride: int, spread: str):
        self.m, self.stride, self.spread = model, stride, spread
        self.swaps = rotation_transforms(model)
        self.window = model.window_frames
        self.hop = max(1, int(round(self.window * hop_fraction)))
        self.next_start = 0  # label frame where the next window starts
        self.pooled = self.pooled_valid = None  # sampled frames first_sampled, first_sampled + 1, ...
        self.first_sampled = 0
        self.sum_first = 0  # label frame of summed[k][0]
        self.summed = [np.zeros((0, 3, 3, 0)) for _ in self.swaps]
        self.weight = np.zeros(0)

    def add_frames(self, frames: torch.Tensor, valid: torch.Tensor) -> None:
        """Pool newly arrived sampled frames (S, H, W, 3) uint8 with their validity (S,)."""
        pooled = pool_frames(self.m.model.visual, frames, valid, self.m.visual_trunk)
        if self.pooled is None:
            self.pooled, self.pooled_valid = pooled, valid
        else:
            self.pooled = torch.cat([self.pooled, pooled])
            self.pooled_valid = torch.cat([self.pooled_valid, valid])

    def ready(self, start: int, samples_in: int, sampled_in: int | None, total: int | None) -> bool:
        """Whether the window at ``start`` has all its input (``sampled_in``: sampled frames received so far, None
        when the stream has no video; ``total``: the stream's label frames once it has ended)."""
        if total is not None:
            return True
        last = start + self.window - 1
        if samples_in < (last + 1) * SAMPLES + STFT_REACH:
            return False
        return sampled_in is None or sampled_in > sampled_needed(last, self.stride, self.spread)

    def run(self, start: int, audio: torch.Tensor, audio_first: int, total: int | None, video: bool) -> None:
        """Run the window at label frame ``start``; ``audio`` (4, N) holds the stream's samples from label frame
        ``audio_first`` on."""
        first = max(start - 1, 0)  # one label frame of context before the window, as the whole clip gives it
        stop = start + self.window + 1
        if total is not None:
            stop = min(stop, total)
        segment = audio[:, (first - audio_first) * SAMPLES:(stop - audio_first) * SAMPLES]
        device = next(self.m.model.parameters()).device
        pooled = valid = None
        if self.m.is_audio_visual and video and self.pooled is not None:
            frames = np.arange(start, start + self.window)
            pooled, valid = spread_sampled(self.pooled, self.pooled_valid, frames, self.stride, self.spread,
                                           self.first_sampled)
            if total is not None:
                valid = valid & torch.from_numpy(frames < total)
        end = start + self.window - self.sum_first
        grow = max(0, end - len(self.weight))
        self.weight = np.concatenate([self.weight, np.zeros(grow)])
        self.weight[start - self.sum_first:end] += 1
        for k, swap in enumerate(self.swaps):  # as predict_audio: the rotated window, its output rotated back
            rotated = segment if swap.is_identity else swap.audio(segment)
            features = self.m.extractor(rotated.to(device))[:, (start - first) * STEP:
                                                            (start - first + self.window) * STEP]
            if features.shape[1] < self.window * STEP:  # past the end of the stream: zeros, as predict_clip pads
                features = torch.nn.functional.pad(features, (0, 0, 0, self.window * STEP - features.shape[1]))
            batch = {"features": features[None]}
            if pooled is not None:
                grid = pooled if swap.is_identity else swap.frames(pooled, channels_first=True)
                batch["visual_features"], batch["video_valid"] = grid[None].to(device), valid[None].to(device)
            with torch.no_grad():
                out = model_forward(self.m.model, batch).float().cpu().numpy()[0]  # (window, 3, 3, C)
            if not swap.is_identity:
                out = swap.inverse().accdoa(out)
            summed = self.summed[k].reshape(-1, *out.shape[1:])
            self.summed[k] = np.concatenate([summed, np.zeros((grow,) + out.shape[1:])]) if grow else summed
            self.summed[k][start - self.sum_first:end] += out

    def take(self, stop: int) -> list[np.ndarray]:
        """The final outputs (n, 3, 3, C) of label frames ``sum_first .. stop - 1``, one per rotation, dropped from
        the sums."""
        n = stop - self.sum_first
        outs = [(summed[:n] / self.weight[:n, None, None, None]).astype(np.float32) for summed in self.summed]
        self.summed = [summed[n:] for summed in self.summed]
        self.weight, self.sum_first = self.weight[n:], stop
        return outs

    def first_sample_needed(self) -> int:
        """Sampled index below which no future window reads."""
        return max(0, self.next_start // self.stride - 1)


class StreamingPredictor:
    """Feed a clip in chunks with :meth:`push`, end it with :meth:`finish`; both return the label frames that
    became final (see the module docstring for what equals offline inference and the latency).

    ``models``: loaded checkpoints (an ensemble is averaged as offline); ``video``: whether frames will come with
    the audio (audio-visual models wait for them); ``visual_stride``, ``visual_spread``, ``hop_fraction`` as in
    :func:`~av_seld.training.predict.predict_audio`. Audio-visual models of one stream share one frame size.
    """

    def __init__(self, models: Sequence[LoadedModel], *, video: bool = False, hop_fraction: float = HOP_FRACTION,
                 visual_stride: int = VISUAL_STRIDE, visual_spread: str = VISUAL_SPREAD_DEFAULT):
        _check_formats(models)
        if visual_stride < 1:
            raise ValueError(f"visual stride must be >= 1, got {visual_stride}")
        self.models = list(models)
        sizes = {m.frame_size for m in self.models if m.is_audio_visual}
        if len(sizes) > 1:
            raise ValueError(f"audio-visual models of one stream must share a frame size, got {sorted(sizes)}")
        self.frame_size = sizes.pop() if sizes else None  # (H, W) of the frames to push
        self.video = video and self.frame_size is not None
        self.stride = visual_stride
        self.streams = [_ModelStream(m, hop_fraction, visual_stride, visual_spread) for m in self.models]
        self.thresholds = ensemble_thresholds(self.models)
        self.merge_deg = self.models[0].merge_deg
        self.audio = torch.zeros(4, 0)
        self.audio_first = 0  # label frame of self.audio[:, 0]
        self.samples_in = 0
        self.frames_in = 0  # label frames of video received
        self.smooth = ensemble_smooth_frames(self.models)
        self.emitted = 0  # label frames emitted
        self.raw_done = 0  # label frames whose unsmoothed ensemble output is final
        self.pending = None  # unsmoothed outputs of label frames pending_first .. raw_done - 1
        self.pending_first = 0
        self.finished = False

    def push(self, audio, frames=None, valid=None) -> StreamOutput | None:
        """Add ``audio`` (4, n) float at 24 kHz and, with ``video``, the next label frames' ``frames`` (m, H, W, 3)
        uint8 RGB at the models' frame size (``valid`` (m,) bool, default all True). Only every
        ``visual_stride``-th label frame's image is used; the others may be anything (e.g. left black).
        Returns the label frames that became final, or None."""
        if self.finished:
            raise RuntimeError("the stream has finished")
        audio = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        if audio.dim() != 2 or audio.shape[0] != 4:
            raise ValueError(f"audio must be (4 channels, samples), got {tuple(audio.shape)}")
        self.audio = torch.cat([self.audio, audio], dim=1)
        self.samples_in += audio.shape[1]
        if frames is not None and self.video:
            frames = torch.as_tensor(np.asarray(frames))
            if frames.dim() != 4 or tuple(frames.shape[1:]) != (*self.frame_size, 3) or frames.dtype != torch.uint8:
                raise ValueError(f"frames must be uint8 (m, {self.frame_size[0]}, {self.frame_size[1]}, 3), got "
                                 f"{frames.dtype} {tuple(frames.shape)}")
            valid = torch.ones(len(frames), dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool()
            label = self.frames_in + np.arange(len(frames))
            keep = torch.from_numpy(label % self.stride == 0)
            for stream in self.streams:
                if stream.m.is_audio_visual:
                    stream.add_frames(frames[keep], valid[keep])
            self.frames_in += len(frames)
        return self._advance(total=None)

    def finish(self) -> StreamOutput | None:
        """End the stream: run the remaining windows (padded past the end, as offline) and return the rest."""
        if self.finished:
            raise RuntimeError("the stream has finished")
        self.finished = True
        total = timing.num_label_frames(self.samples_in)
        if total == 0:
            return None
        if self.video:  # label frames past the end of the video: invalid, as offline
            missing = -(-total // self.stride) - -(-self.frames_in // self.stride)
            if missing > 0:
                blank = torch.zeros((missing, *self.frame_size, 3), dtype=torch.uint8)
                for stream in self.streams:
                    if stream.m.is_audio_visual:
                        stream.add_frames(blank, torch.zeros(missing, dtype=torch.bool))
                self.frames_in += missing * self.stride
        return self._advance(total=total)

    def _advance(self, total: int | None) -> StreamOutput | None:
        sampled_in = -(-self.frames_in // self.stride) if self.video else None
        for stream in self.streams:
            while True:
                start = stream.next_start
                if total is not None and start > window_starts(total, stream.window, stream.hop)[-1]:
                    break
                if not stream.ready(start, self.samples_in, sampled_in, total):
                    break
                stream.run(start, self.audio, self.audio_first, total, self.video)
                stream.next_start += stream.hop
        # frames before every model's next window are covered by no future window: final
        final = total if total is not None else min(s.next_start for s in self.streams)
        final = max(final, self.raw_done)
        self._trim()
        if final > self.raw_done:
            raw = ensemble_outputs([output for stream in self.streams for output in stream.take(final)])
            self.pending = raw if self.pending is None else np.concatenate([self.pending, raw])
            self.raw_done = final
        # a frame is final once the smoothing window after it is (at the end of the stream, every frame is)
        ready = self.raw_done if total is not None else max(self.emitted, self.raw_done - self.smooth // 2)
        if ready == self.emitted:
            return None
        output = smooth_output(self.pending, self.smooth)[self.emitted - self.pending_first:ready - self.pending_first]
        keep = max(self.pending_first, ready - (self.smooth - 1) // 2)  # the next frames' windows start there
        self.pending, self.pending_first = self.pending[keep - self.pending_first:], keep
        first, self.emitted = self.emitted, ready
        events = multi_accdoa_to_events(output, self.thresholds, self.merge_deg, frame_offset=first)
        return StreamOutput(first, output, events)

    def _trim(self) -> None:
        """Drop audio and pooled frames no future window reads (memory stays bounded on an endless stream)."""
        keep_from = max(0, min(s.next_start for s in self.streams) - 1)
        if keep_from > self.audio_first:
            self.audio = self.audio[:, (keep_from - self.audio_first) * SAMPLES:]
            self.audio_first = keep_from
        for stream in self.streams:
            if stream.pooled is None:
                continue
            drop = stream.first_sample_needed() - stream.first_sampled
            if drop > 0:
                stream.pooled, stream.pooled_valid = stream.pooled[drop:], stream.pooled_valid[drop:]
                stream.first_sampled += drop


@dataclass
class StreamStats:
    """What streaming one clip from files took: emitted outputs (T, 3, 3, 13), how many chunks were pushed, and the
    largest latency: input seconds received after the end of a label frame before it was emitted."""

    output: np.ndarray
    num_chunks: int
    max_latency_s: float


def stream_clip(models: Sequence[LoadedModel], audio_path, video_path=None, *, chunk_s: float = 0.5,
                hop_fraction: float = HOP_FRACTION, visual_stride: int = VISUAL_STRIDE,
                visual_spread: str = VISUAL_SPREAD_DEFAULT) -> StreamStats:
    """Feed a clip's wav (and mp4) to a :class:`StreamingPredictor` in chunks of ``chunk_s`` seconds, as a live
    source would deliver them (video frames of each chunk's label frames, only the sampled ones decoded)."""
    from pathlib import Path

    from av_seld.io.audio import read_wav
    from av_seld.io.video import VideoReader

    if chunk_s <= 0:
        raise ValueError(f"chunk_s must be positive, got {chunk_s}")
    audio = read_wav(audio_path)
    has_video = video_path is not None and Path(video_path).is_file()
    stream = StreamingPredictor(models, video=has_video, hop_fraction=hop_fraction, visual_stride=visual_stride,
                                visual_spread=visual_spread)
    reader = None
    if stream.video:
        reader = VideoReader(video_path, stream.frame_size[1], stream.frame_size[0])
    chunk = max(1, int(round(chunk_s * timing.SAMPLE_RATE)))
    outputs, latency, frames_in, num_chunks = [], 0.0, 0, 0
    for first in range(0, audio.shape[1], chunk):
        piece = audio[:, first:first + chunk]
        frames = valid = None
        if reader is not None:  # the label frames this chunk's audio reaches into
            labels = np.arange(frames_in, timing.num_label_frames(first + piece.shape[1]))
            frames, valid = reader.read_label_frames(labels, wanted=labels % visual_stride == 0)
            frames_in += len(labels)
        got = stream.push(piece, frames, valid)
        num_chunks += 1
        if got is not None:
            outputs.append(got.output)
            latency = max(latency, (first + piece.shape[1]) / timing.SAMPLE_RATE - timing.LABEL_HOP_S * (
                got.first_frame + 1))
    got = stream.finish()
    if got is not None:
        outputs.append(got.output)
    output = np.concatenate(outputs) if outputs else np.zeros((0, 3, 3, 13), np.float32)
    return StreamStats(output, num_chunks, latency)
