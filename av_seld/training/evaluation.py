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

CALIBRATION_GRID = tuple(np.round(np.arange(0.2, 0.81, 0.05), 2))


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
    """Per-class activity thresholds (13,) chosen on validation outputs.

    For each threshold of ``grid`` (applied to every class at once) the class-wise F, LE and LR are computed; a
    class's F, LE and LR depend only on that class's events, so each class takes the threshold that minimises its own
    ``(1 - F) + LE / 180 + (1 - LR)``. The error rate is shared by all classes and left out of the choice. Ties go to
    the threshold nearest 0.5.
    """
    grid = sorted(grid, key=lambda t: (abs(t - 0.5), t))
    best = np.full(NUM_CLASSES, 0.5)
    best_cost = np.full(NUM_CLASSES, np.inf)
    for threshold in grid:
        scores = score_outputs(outputs, refs, thresholds=threshold, merge_deg=merge_deg, edition=edition)
        for row in scores.classwise:
            le = row["LE"] if np.isfinite(row["LE"]) else 180.0
            cost = (1 - row["F"]) + le / 180.0 + (1 - row["LR"])
            if cost < best_cost[row["class"]] - 1e-12:
                best_cost[row["class"]] = cost
                best[row["class"]] = threshold
    return best


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
