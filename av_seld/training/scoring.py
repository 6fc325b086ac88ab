"""After training: the best checkpoint's thresholds calibrated on the validation split and the test split scored,
through the path of ``av-seld infer``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from av_seld.classes import NUM_CLASSES
from av_seld.config import Config
from av_seld.io.labels import read_reference_csv
from av_seld.training.checkpoint import save_checkpoint
from av_seld.training.evaluation import calibrate_thresholds, validation_scores

log = logging.getLogger(__name__)


def score_best_checkpoint(config: Config, payload: dict, path: Path, val_set, test_set, run_dir: Path, device):
    """Calibrate the best checkpoint's per-class thresholds on the validation split, save them into ``best.pt``, and
    score the test split into ``RUN/eval/test``, all through the path of ``av-seld infer`` (so ``av-seld infer`` +
    ``av-seld evaluate`` on ``best.pt`` give the test scores printed here)."""
    from av_seld.training.evaluation import evaluate_split, split_clips, split_outputs
    from av_seld.training.predict import loaded_from_payload, with_thresholds

    with_video = config.model.name == "av_conformer"
    payload["tta"] = config.eval.tta  # the run's settings, also when they were changed on --resume
    payload["smooth_frames"] = config.eval.smooth_frames
    loaded = loaded_from_payload(path, payload, device)
    thresholds = np.full(NUM_CLASSES, config.eval.threshold)
    val_scores: dict[str, float] = {}
    if val_set is not None:
        clips, metadata = split_clips(val_set, with_video=with_video)
        log.info("validation: predicting %d clips for threshold calibration", len(clips))
        outputs = split_outputs([loaded], clips)
        refs = {name: read_reference_csv(path) for name, path in metadata.items()}
        if config.eval.calibrate:
            thresholds = calibrate_thresholds(outputs, refs, merge_deg=config.eval.merge_deg,
                                              edition=config.eval.edition)
        val_scores = validation_scores(outputs, refs, thresholds=thresholds, merge_deg=config.eval.merge_deg,
                                       edition=config.eval.edition)
    payload["thresholds"] = thresholds
    save_checkpoint(run_dir / "best.pt", payload)

    test_eval = None
    if test_set is not None:
        clips, metadata = split_clips(test_set, with_video=with_video)
        log.info("test: predicting and scoring %d clips", len(clips))
        test_eval = evaluate_split([with_thresholds(loaded, thresholds)], clips, metadata, run_dir / "eval" / "test",
                                   edition=config.eval.edition)
    return val_scores, test_eval
