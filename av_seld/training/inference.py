"""Clip-level inference: sliding windows with overlap for clips of any length, and ensembles of models.

A model maps a window of features (and, for audio-visual models, the window's frames at label rate) to multi-ACCDOA
``(T, 3, 3, 13)`` (``(T, 3, 4, 13)`` with distance) at 100 ms. :func:`predict_clip` slides a window of ``window_frames`` label frames with hop
``hop_frames`` over the whole clip, pads the last window, and averages the overlapping outputs frame by frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from av_seld.geometry import channels_first
from av_seld.timing import FEATURE_FRAMES_PER_LABEL_FRAME


def visual_inputs(batch: dict) -> dict:
    """The visual keyword arguments of the model contract from a batch dict: ``frames`` (B, T, H, W, 3) uint8 at label
    rate moved channels-first, or cached ``visual_features`` (B, T, C, rows, cols), with ``video_valid`` (B, T) bool
    as the visual mask. Audio models ignore them."""
    frames = batch.get("frames")
    return {"frames": None if frames is None else channels_first(frames),
            "visual_features": batch.get("visual_features"), "visual_mask": batch.get("video_valid")}


def model_forward(model: nn.Module, batch: dict) -> torch.Tensor:
    """Call any registered model on a batch dict (``features`` plus :func:`visual_inputs`)."""
    return model(batch["features"], **visual_inputs(batch))


def window_starts(num_frames: int, window_frames: int, hop_frames: int) -> list[int]:
    """Label-frame starts of the windows that cover ``num_frames`` (the last one may run past the end)."""
    if window_frames <= 0 or hop_frames <= 0:
        raise ValueError("window and hop must be positive")
    starts = list(range(0, max(1, num_frames - window_frames + hop_frames), hop_frames))
    return starts or [0]


@torch.no_grad()
def pool_frames(visual: nn.Module, frames: torch.Tensor, valid: torch.Tensor,
                trunk: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Pooled YOLO features (M, C, rows, cols) float32 on the CPU of frames (M, H, W, 3) uint8; zeros where ``valid``
    (M,) bool is False (those frames are not run). Each frame goes through the backbone once, ``frame_chunk`` at a
    time, on the encoder's device; ``trunk`` runs the chunks instead of ``visual.pooled_features`` (the same
    numbers, e.g. :class:`~av_seld.export.OnnxVisualTrunk`)."""
    device = next(visual.parameters()).device
    run = visual.pooled_features if trunk is None else trunk
    pooled = torch.zeros((frames.shape[0], visual.feature_dim, *visual.token_grid))
    if bool(valid.any()):
        seen = channels_first(frames[valid])  # (M', 3, H, W)
        pooled[valid] = torch.cat([run(chunk.to(device)).float().cpu() for chunk in seen.split(visual.frame_chunk)])
    return pooled


def sampled_label_frames(num_frames: int, stride: int) -> np.ndarray:
    """The label frames whose video goes through the visual encoder at ``stride``: 0, stride, 2·stride, ... (S,)."""
    if stride < 1:
        raise ValueError(f"visual stride must be >= 1, got {stride}")
    return np.arange(0, num_frames, stride)


VISUAL_SPREAD = ("nearest", "linear")


def spread_sampled(sampled: torch.Tensor, sampled_valid: torch.Tensor, label_frames: int | np.ndarray, stride: int,
                   mode: str = "nearest", first_sampled: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Visual inputs at the label rate from those of every ``stride``-th label frame.

    ``sampled`` (S, ...) float and ``sampled_valid`` (S,) bool, ``sampled[j]`` being label frame
    ``(first_sampled + j)·stride``'s; ``label_frames``: how many label frames from 0 (an int T) or which ones (T,).
    Returns ``(T, ...)``, ``(T,)``. Indices past the last sampled frame read the last one.

    ``mode="nearest"``: each label frame reads its nearest sampled frame (an exact tie takes the later one, as
    :func:`av_seld.timing.video_frame_for_label_frame` does). ``"linear"``: label frame ``i·stride + r`` reads
    ``(1 - r/stride)·sampled[i] + (r/stride)·sampled[i + 1]`` (pooled features are averages, so a blend is a
    feature of the same kind), or the valid one of the two when the other is not.
    """
    if mode not in VISUAL_SPREAD:
        raise ValueError(f"visual spread must be one of {VISUAL_SPREAD}, got {mode!r}")
    frame = np.arange(label_frames) if np.ndim(label_frames) == 0 else np.asarray(label_frames)
    last = max(len(sampled) - 1, 0)
    if mode == "nearest" or stride == 1:
        index = torch.from_numpy(np.clip((frame + stride // 2) // stride - first_sampled, 0, last))
        return sampled[index], sampled_valid[index]
    lo = np.clip(frame // stride - first_sampled, 0, last)
    hi = np.minimum(lo + 1, last)
    weight = torch.from_numpy(np.where(hi > lo, (frame % stride) / stride, 0.0)).float()
    lo, hi = torch.from_numpy(lo), torch.from_numpy(hi)
    valid_lo, valid_hi = sampled_valid[lo], sampled_valid[hi]
    weight = torch.where(valid_hi & ~valid_lo, 1.0, torch.where(valid_lo & ~valid_hi, 0.0, weight))
    weight = weight.reshape(-1, *[1] * (sampled.dim() - 1))
    return (1 - weight) * sampled[lo] + weight * sampled[hi], valid_lo | valid_hi


def sampled_needed(label_frame: int, stride: int, mode: str = "nearest") -> int:
    """The last sampled index :func:`spread_sampled` reads for ``label_frame`` (before clipping at the clip's end)."""
    return (label_frame + stride // 2) // stride if mode == "nearest" or stride == 1 else label_frame // stride + 1


@torch.no_grad()
def predict_clip(model: nn.Module, features: torch.Tensor, *, window_frames: int, hop_frames: int,
                 num_frames: int | None = None, frames: torch.Tensor | None = None,
                 video_valid: torch.Tensor | None = None, visual_features: torch.Tensor | None = None,
                 batch_size: int = 8) -> np.ndarray:
    """Multi-ACCDOA output (T, 3, 3, 13), (T, 3, 4, 13) with distance, of one clip.

    ``features``: (C, T_feat, F) for the whole clip; ``num_frames``: label frames of the clip (default
    ceil(T_feat / 5)). Audio-visual models also take ``frames`` (T, H, W, 3) uint8 at label rate, or the visual
    encoder's cached pooled ``visual_features`` (T, C, rows, cols), with ``video_valid`` (T,) bool. Windows are padded
    with zeros (and invalid video) past the end of the clip. Overlapping windows share frames, so each valid frame goes
    through the visual backbone once per clip and the windows slide over its pooled features (the same numbers, as
    the model is in eval mode).
    """
    if frames is not None and visual_features is not None:
        raise ValueError("give frames or visual_features, not both")
    model.eval()
    device = next(model.parameters()).device
    step = FEATURE_FRAMES_PER_LABEL_FRAME
    total = num_frames if num_frames is not None else -(-features.shape[1] // step)
    starts = window_starts(total, window_frames, hop_frames)
    padded_frames = starts[-1] + window_frames

    def pad_to_windows(x: torch.Tensor, length: int, dim: int = 0) -> torch.Tensor:
        shape = list(x.shape)
        shape[dim] = max(0, length - x.shape[dim])
        return torch.cat([x, x.new_zeros(shape)], dim=dim)

    feats = pad_to_windows(features, padded_frames * step, dim=1)
    video = frames if frames is not None else visual_features
    if video is not None:
        valid = video_valid if video_valid is not None else torch.ones(total, dtype=torch.bool)
        valid = pad_to_windows(valid[:total].bool(), padded_frames)
        video = pad_to_windows(video[:padded_frames], padded_frames)
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    if frames is not None and module.uses_video:
        video, frames = pool_frames(module.visual, video, valid), None
    video_key = "frames" if frames is not None else "visual_features"
    summed = None
    weight = np.zeros(padded_frames)
    for first in range(0, len(starts), batch_size):
        group = starts[first:first + batch_size]
        batch = {"features": torch.stack([feats[:, s * step:(s + window_frames) * step] for s in group]).to(device)}
        if video is not None:
            batch[video_key] = torch.stack([video[s:s + window_frames] for s in group]).to(device)
            batch["video_valid"] = torch.stack([valid[s:s + window_frames] for s in group]).to(device)
        out = model_forward(model, batch).float().cpu().numpy()  # (b, window, 3, 3, 13)
        if summed is None:
            summed = np.zeros((padded_frames,) + out.shape[2:], dtype=np.float64)
        for s, o in zip(group, out):
            summed[s:s + window_frames] += o[:window_frames]
            weight[s:s + window_frames] += 1
    return (summed / weight[:, None, None, None])[:total].astype(np.float32)


def _track_directions(output: np.ndarray) -> np.ndarray:
    """Unit vectors (…, 3 tracks, 3 xyz, C) of the tracks, zero where a track is silent."""
    norm = np.linalg.norm(output, axis=-2, keepdims=True)
    return np.where(norm > 1e-6, output / np.maximum(norm, 1e-6), 0.0)


def align_tracks(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` with its tracks permuted, per frame and class, to best match ``reference`` (both (T, 3, 3, C), or
    (T, 3, 4, C) with distance: a track's distance moves with its vector).

    Multi-ACCDOA track order is arbitrary within a class, so two models can put the same source on different tracks;
    the permutation maximising the summed cosine similarity of the track vectors is chosen (6 permutations of 3).
    """
    from itertools import permutations

    perms = np.array(list(permutations(range(other.shape[1]))))  # (P, 3)
    ref_dir = _track_directions(reference[:, :, :3])
    oth_dir = _track_directions(other[:, :, :3])
    # similarity[t, p, c] = sum_k <ref[t, k], other[t, perm_p[k]]>
    similarity = np.einsum("tkac,tpkac->tpc", ref_dir, oth_dir[:, perms])
    best = similarity.argmax(axis=1)  # (T, C)
    chosen = perms[best]  # (T, C, 3)
    t_idx = np.arange(other.shape[0])[:, None, None]
    c_idx = np.arange(other.shape[-1])[None, :, None]
    aligned = other.transpose(0, 3, 1, 2)[t_idx, c_idx, chosen]  # (T, C, 3 tracks, 3 xyz [+ distance])
    return aligned.transpose(0, 2, 3, 1)


def ensemble_outputs(outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Average of several models' multi-ACCDOA outputs of one clip after matching tracks to the first model's."""
    if not outputs:
        raise ValueError("no outputs to ensemble")
    if len({o.shape for o in outputs}) > 1:
        raise ValueError(f"the models' outputs differ in shape ({sorted({o.shape for o in outputs})}): an ensemble "
                         "needs models that all output distance, or none")
    aligned = [outputs[0]] + [align_tracks(outputs[0], o) for o in outputs[1:]]
    return np.mean(aligned, axis=0)
