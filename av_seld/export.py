"""``av-seld export``: a checkpoint as a smaller inference checkpoint, or as a TorchScript program.

- ``inference``: the av-seld checkpoint without its optimizer and resume state (what ``av-seld infer``, the Python API
  and ``train.init_from`` read), about a third of the size.
- ``torchscript``: the network traced with ``torch.jit.trace`` for one window of ``chunk_s`` seconds, loadable with
  ``torch.jit.load`` and no av-seld code. Inputs: standardised features (B, C, 5 T, F) — the checkpoint's
  ``feature_mean``/``feature_std`` are stored beside the program in ``extra_files`` as JSON — and, for audio-visual
  models, the frozen visual encoder's pooled features (B, T, C_v, rows, cols) with a (B, T) bool mask, as
  ``precompute-visual`` caches them. Output: multi-ACCDOA (B, T, 3, 3, 13), or (B, T, 3, 4, 13) with distance.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from av_seld import timing
from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint, slim_checkpoint
from av_seld.utils.atomic import atomic_path

FORMATS = ("inference", "torchscript")


class _CachedVisual(nn.Module):
    """An audio-visual model called positionally on cached visual features (what tracing needs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, visual_features: torch.Tensor, visual_mask: torch.Tensor) -> torch.Tensor:
        return self.model(features, visual_features=visual_features, visual_mask=visual_mask)


def example_inputs(model: nn.Module, payload: dict, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Random inputs of one window of the checkpoint's chunk length (see the module docstring for the layout)."""
    from av_seld import features as feats

    spec = feats.feature_spec(payload["features"])
    frames = int(round(payload["chunk_s"] * timing.LABEL_FRAMES_PER_SECOND))
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(batch, spec.num_channels, frames * timing.FEATURE_FRAMES_PER_LABEL_FRAME, spec.num_bins,
                           generator=generator)
    if not model.uses_video:
        return (features,)
    visual = model.visual
    pooled = torch.randn(batch, frames, visual.feature_dim, *visual.token_grid, generator=generator)
    return features, pooled, torch.ones(batch, frames, dtype=torch.bool)


def export_checkpoint(path: str | os.PathLike, out: str | os.PathLike, fmt: str = "inference") -> Path:
    """Write the export of the checkpoint at ``path`` to ``out`` (atomically); returns ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    if fmt == "inference":
        slim_checkpoint(path, out)
        return out
    payload = load_checkpoint(path)
    model = build_model_from_checkpoint(payload)
    wrapped = _CachedVisual(model) if model.uses_video else model
    inputs = example_inputs(model, payload)
    with torch.no_grad(), warnings.catch_warnings():
        # the shape checks of forward become constants of the traced window, as intended; torch.jit is deprecated
        # in favour of torch.export, whose programs need torch to load as well
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        program = torch.jit.trace(wrapped, inputs, check_trace=False)
    meta = {"model_name": payload["model_name"], "features": payload["features"], "format": payload["format"],
            "chunk_s": float(payload["chunk_s"]), "thresholds": [float(t) for t in payload["thresholds"]],
            "merge_deg": float(payload["merge_deg"]),
            "feature_mean": torch.as_tensor(payload["feature_mean"]).tolist(),
            "feature_std": torch.as_tensor(payload["feature_std"]).tolist(),
            "inputs": ["features", "visual_features", "visual_mask"] if model.uses_video else ["features"]}
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(program, str(tmp), _extra_files={"av_seld.json": json.dumps(meta)})
    return out
