"""SELD metrics as the official DCASE scorers compute them (2023 segment level, 2024 frame level)."""

from av_seld.metrics.evaluate import Evaluation, clip_counts, evaluate_folders
from av_seld.metrics.seld import (
    SELDCounts,
    SELDScores,
    compute_scores,
    frame_counts_2024,
    jackknife,
    segment_counts_2023,
)

__all__ = [
    "Evaluation",
    "SELDCounts",
    "SELDScores",
    "clip_counts",
    "compute_scores",
    "evaluate_folders",
    "frame_counts_2024",
    "jackknife",
    "segment_counts_2023",
]
