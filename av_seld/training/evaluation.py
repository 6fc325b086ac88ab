"""Scoring a model on a split during and after training, and per-class threshold calibration.

Outputs are gathered per clip from a :class:`~av_seld.data.dataset.SeldDataset` whose chunks do not overlap
(``hop_s == chunk_s``), decoded to events with :func:`av_seld.postprocess.multi_accdoa_to_events`, and scored with
the same counts and formulas as ``av-seld evaluate`` (:mod:`av_seld.metrics`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from av_seld.classes import NUM_CLASSES
from av_seld.io.labels import Events, read_reference_csv
from av_seld.metrics.evaluate import clip_counts
from av_seld.metrics.seld import SELDCounts, SELDScores, compute_scores
from av_seld.postprocess import multi_accdoa_to_events, write_predictions
from av_seld.training.inference import model_forward
from av_seld.training.trainer import move_to

log = logging.getLogger(__name__)

CALIBRATION_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@torch.no_grad()
def collect_outputs(model: nn.Module, dataset, *, batch_size: int = 8, device: torch.device | None = None,
                    num_workers: int = 0) -> dict[str, np.ndarray]:
    """Multi-ACCDOA output (T, 3, 3, 13) of every clip of ``dataset`` (non-overlapping chunks), keyed by clip key."""
    from av_seld.data.dataset import collate_samples

    if dataset.hop_frames != dataset.chunk_frames:
        raise ValueError("evaluation needs non-overlapping chunks (hop_s == chunk_s)")
    device = device or next(model.parameters()).device
    model.eval()
    lengths = {entry.key: entry.num_label_frames for entry in dataset.clips}
    outputs: dict[str, np.ndarray] = {}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         collate_fn=collate_samples)
    for batch in loader:
        clips, starts = batch["clip"], batch["start_frame"].tolist()
        out = model_forward(model, move_to(batch, device)).float().cpu().numpy()  # (B, T, 3, 3, 13)
        for key, start, chunk in zip(clips, starts, out):
            if key not in outputs:
                outputs[key] = np.zeros((lengths[key],) + chunk.shape[1:], dtype=np.float32)
            end = min(lengths[key], start + chunk.shape[0])
            outputs[key][start:end] = chunk[:end - start]
    return outputs


def references(dataset) -> dict[str, Events]:
    """Reference events of every clip of ``dataset``, keyed like :func:`collect_outputs`."""
    return {entry.key: read_reference_csv(entry.clip.metadata) for entry in dataset.clips}


def score_outputs(outputs: dict[str, np.ndarray], refs: dict[str, Events], *, thresholds: float | np.ndarray = 0.5,
                  merge_deg: float = 15.0, edition: str = "2023") -> SELDScores:
    """Macro-averaged DCASE scores of decoded outputs against the references (directions only for 2024)."""
    counts = SELDCounts.zeros()
    for key, output in outputs.items():
        pred = multi_accdoa_to_events(output, thresholds, merge_deg)
        counts = counts + clip_counts(refs[key], pred, edition=edition, eval_distance=False)
    return compute_scores(counts, edition=edition, average="macro", eval_distance=False)


def calibrate_thresholds(outputs: dict[str, np.ndarray], refs: dict[str, Events], *, merge_deg: float = 15.0,
                         edition: str = "2023", grid: Sequence[float] = CALIBRATION_GRID) -> np.ndarray:
    """Per-class activity thresholds (13,) chosen on validation outputs to minimise the SELD score.

    First the single threshold of ``grid`` with the lowest SELD score for all classes at once; then one pass over the
    classes, each trying every value of ``grid`` with the others fixed, keeping a change only when it lowers the
    score. Ties keep the earlier choice (the grid is tried from 0.5 outwards).
    """
    grid = sorted(grid, key=lambda t: (abs(t - 0.5), t))

    def seld(thresholds) -> float:
        return score_outputs(outputs, refs, thresholds=thresholds, merge_deg=merge_deg, edition=edition).SELD

    scored = [(seld(t), i, t) for i, t in enumerate(grid)]
    best_score, _, start = min(scored)
    thresholds = np.full(NUM_CLASSES, float(start))
    for c in range(NUM_CLASSES):
        for t in grid:
            if t == thresholds[c]:
                continue
            trial = thresholds.copy()
            trial[c] = t
            score = seld(trial)
            if score < best_score - 1e-12:
                best_score, thresholds = score, trial
    return thresholds


def write_prediction_folder(outputs: dict[str, np.ndarray], folder: str | os.PathLike, *,
                            thresholds: float | np.ndarray = 0.5, merge_deg: float = 15.0) -> list[Path]:
    """One prediction CSV per clip (``FOLDER/<clip name>.csv``), as ``av-seld evaluate`` reads them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, output in outputs.items():
        path = folder / f"{key.split('/')[-1]}.csv"
        write_predictions(path, output, thresholds, merge_deg)
        paths.append(path)
    return paths
