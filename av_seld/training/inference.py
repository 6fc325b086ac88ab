"""Clip-level inference: sliding windows with overlap for clips of any length, and ensembles of models.

A model maps a window of features (and, for audio-visual models, the window's frames at label rate) to multi-ACCDOA
``(T, 3, 3, 13)`` (``(T, 3, 4, 13)`` with distance) at 100 ms. :func:`predict_clip` slides a window of ``window_frames`` label frames with hop
``hop_frames`` over the whole clip, pads the last window, and averages the overlapping outputs frame by frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from av_seld.timing import FEATURE_FRAMES_PER_LABEL_FRAME


def visual_inputs(batch: dict) -> dict:
    """The visual keyword arguments of the model contract from a batch dict: ``frames`` (B, T, H, W, 3) uint8 at label
    rate moved channels-first, or cached ``visual_features`` (B, T, C, rows, cols), with ``video_valid`` (B, T) bool
    as the visual mask. Audio models ignore them."""
    frames = batch.get("frames")
    return {"frames": None if frames is None else frames.permute(0, 1, 4, 2, 3),
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
        visual = module.visual
        pooled = torch.zeros((padded_frames, visual.feature_dim, *visual.token_grid))
        if bool(valid.any()):
            seen = video[valid].permute(0, 3, 1, 2)  # (M, 3, H, W)
            pooled[valid] = torch.cat([visual.pooled_features(chunk.to(device)).float().cpu()
                                       for chunk in seen.split(visual.frame_chunk)])
        video, frames = pooled, None
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
