"""Scoring a model on a split during and after training, and per-class threshold calibration.

Two sources of outputs, one scorer. During training, the per-epoch validation that picks ``best.pt`` gathers
outputs from the cached features of a :class:`~av_seld.data.dataset.SeldDataset` whose chunks do not overlap
(``hop_s == chunk_s``; :func:`collect_outputs`): cheap, and only used to rank checkpoints. Everything a run reports
(the calibrated validation scores and the test table) comes from :func:`split_outputs` / :func:`evaluate_split`,
which predict each clip from its files through :func:`av_seld.training.predict.predict_output`, the path of
``av-seld infer``. Outputs are decoded with :func:`av_seld.postprocess.multi_accdoa_to_events` and scored with the
same counts and formulas as ``av-seld evaluate`` (:mod:`av_seld.metrics`).

A model with distance outputs is also scored with the DCASE2024 metrics with distance (F20° gated by a relative
distance error of at most 1, DOAE, RDE) next to the configured edition: validation rows gain the 2024 scores as
``KEY_2024`` columns, and a split scored through the infer path writes ``scores_2024.json`` / ``scores_2024.txt``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import json
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from av_seld.classes import NUM_CLASSES
from av_seld.io.labels import Events, read_reference_csv
from av_seld.metrics.evaluate import clip_counts
from av_seld.metrics.seld import SELDCounts, SELDScores, compute_scores
from av_seld.postprocess import multi_accdoa_to_events
from av_seld.targets import has_distance
from av_seld.training.inference import model_forward
from av_seld.training.trainer import move_to
from av_seld.utils.progress import phase

log = logging.getLogger(__name__)

CALIBRATION_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@torch.no_grad()
def collect_outputs(model: nn.Module, dataset, *, batch_size: int = 8, device: torch.device | None = None,
                    num_workers: int = 0) -> dict[str, np.ndarray]:
    """Multi-ACCDOA output (T, 3, 3, 13), or (T, 3, 4, 13) with distance, of every clip of ``dataset``
    (non-overlapping chunks), keyed by clip key."""
    from av_seld.data.dataset import collate_samples

    if dataset.hop_frames != dataset.chunk_frames:
        raise ValueError("evaluation needs non-overlapping chunks (hop_s == chunk_s)")
    device = device or next(model.parameters()).device
    model.eval()
    lengths = {entry.key: entry.num_label_frames for entry in dataset.clips}
    outputs: dict[str, np.ndarray] = {}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         collate_fn=collate_samples)
    with phase("validation", len(loader), unit="batch") as update:
        for batch in loader:
            clips, starts = batch["clip"], batch["start_frame"].tolist()
            out = model_forward(model, move_to(batch, device)).float().cpu().numpy()  # (B, T, 3, 3, 13)
            for key, start, chunk in zip(clips, starts, out):
                if key not in outputs:
                    outputs[key] = np.zeros((lengths[key],) + chunk.shape[1:], dtype=np.float32)
                end = min(lengths[key], start + chunk.shape[0])
                outputs[key][start:end] = chunk[:end - start]
            update()
    return outputs


def references(dataset) -> dict[str, Events]:
    """Reference events of every clip of ``dataset``, keyed like :func:`collect_outputs`."""
    return {entry.key: read_reference_csv(entry.clip.metadata) for entry in dataset.clips}


def outputs_have_distance(outputs: dict[str, np.ndarray]) -> bool:
    """Whether the outputs of :func:`collect_outputs` / :func:`split_outputs` carry distances."""
    return any(has_distance(o) for o in outputs.values())


def score_outputs(outputs: dict[str, np.ndarray], refs: dict[str, Events], *, thresholds: float | np.ndarray = 0.5,
                  merge_deg: float = 15.0, edition: str = "2023") -> SELDScores:
    """Macro-averaged DCASE scores of decoded outputs against the references; 2024 evaluates distance when the
    outputs have it (directions only otherwise)."""
    eval_distance = edition == "2024" and outputs_have_distance(outputs)
    counts = SELDCounts.zeros()
    for key, output in outputs.items():
        pred = multi_accdoa_to_events(output, thresholds, merge_deg)
        counts = counts + clip_counts(refs[key], pred, edition=edition, eval_distance=eval_distance)
    return compute_scores(counts, edition=edition, average="macro", eval_distance=eval_distance)


def validation_scores(outputs: dict[str, np.ndarray], refs: dict[str, Events], *,
                      thresholds: float | np.ndarray = 0.5, merge_deg: float = 15.0,
                      edition: str = "2023") -> dict[str, float]:
    """The summary of :func:`score_outputs` (``SELD``, ``F``...); for outputs with distance scored with the 2023
    metrics, followed by the DCASE2024 summary with distance, its keys suffixed ``_2024`` (``SELD_2024``,
    ``RDE_2024``...)."""
    scores = score_outputs(outputs, refs, thresholds=thresholds, merge_deg=merge_deg, edition=edition).summary()
    if edition != "2024" and outputs_have_distance(outputs):
        with_distance = score_outputs(outputs, refs, thresholds=thresholds, merge_deg=merge_deg, edition="2024")
        scores.update({f"{key}_2024": value for key, value in with_distance.summary().items()})
    return scores


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

    with phase("calibrating thresholds", len(grid) + NUM_CLASSES * (len(grid) - 1), unit="trial") as update:
        scored = []
        for i, t in enumerate(grid):
            scored.append((seld(t), i, t))
            update()
        best_score, _, start = min(scored)
        thresholds = np.full(NUM_CLASSES, float(start))
        for c in range(NUM_CLASSES):
            for t in grid:
                if t == thresholds[c]:
                    continue
                trial = thresholds.copy()
                trial[c] = t
                score = seld(trial)
                update()
                if score < best_score - 1e-12:
                    best_score, thresholds = score, trial
    return thresholds


# ------------------------------------------------------------------------------- scoring through the infer path


def clip_files(clips, audio_format: str, *, with_video: bool) -> tuple[list, dict[str, Path]]:
    """:class:`~av_seld.io.dataset.Clip` objects as :class:`~av_seld.training.predict.ClipFiles` (audio of
    ``audio_format``, video when ``with_video``) and their reference CSVs keyed by clip name (names must be unique)."""
    from av_seld.errors import InputError
    from av_seld.training.predict import ClipFiles

    files, metadata = [], {}
    for clip in clips:
        if clip.name in metadata:
            raise InputError(clip.metadata, f"clip name {clip.name} is also used by {metadata[clip.name]}; clip "
                                            "names must be unique across the roots of a split")
        metadata[clip.name] = Path(clip.metadata)
        files.append(ClipFiles(clip.name, Path(getattr(clip, audio_format)),
                               Path(clip.video) if with_video and clip.video is not None else None))
    return files, metadata


def split_clips(dataset, *, with_video: bool) -> tuple[list, dict[str, Path]]:
    """The clips of a :class:`~av_seld.data.dataset.SeldDataset` (see :func:`clip_files`)."""
    return clip_files([entry.clip for entry in dataset.clips], dataset.audio_format, with_video=with_video)


def root_clips(root: str | os.PathLike, split: str, audio_format: str, *,
               with_video: bool) -> tuple[list, dict[str, Path]]:
    """The labelled clips of one split (``NAME`` also covers ``NAME-*``) of a dataset root (see :func:`clip_files`)."""
    from av_seld.data.feature_cache import is_train_split
    from av_seld.errors import InputError
    from av_seld.io.dataset import index_dataset

    from av_seld.data.feature_cache import describe_splits
    from av_seld.utils.text import count

    clips = [c for c in index_dataset(root).clips if is_train_split(c.split, [split])
             and getattr(c, audio_format) is not None and c.metadata is not None]
    if not clips:
        raise InputError(root, f"no clips with {audio_format.upper()} audio and labels in split {split}")
    log.info("%s: %s %s", root, count(len(clips), "clip"), describe_splits([split], (c.split for c in clips)))
    return clip_files(clips, audio_format, with_video=with_video)


def split_outputs(models, clips, *, progress: Callable | None = None) -> dict[str, np.ndarray]:
    """Outputs of every clip through the infer path, keyed by clip name. Without ``progress``, a "predicting" phase
    (a bar where the command shows them, :mod:`av_seld.utils.progress`)."""
    from av_seld.training.predict import predict_outputs

    with phase("predicting", len(clips)) as update:
        return {clip.name: output for clip, output in predict_outputs(models, clips, progress=progress or update)}


def evaluate_split(models, clips, metadata: dict[str, Path], out_dir: str | os.PathLike, *, edition: str,
                   progress: Callable | None = None):
    """What ``av-seld infer`` + ``av-seld evaluate`` give: write ``OUT_DIR/pred/*.csv`` with the models' thresholds,
    score them against the references, and write ``scores.json``, ``scores.txt`` and ``reference.json`` (the
    reference folder, relative to ``OUT_DIR``). Returns the :class:`~av_seld.metrics.evaluate.Evaluation`.

    Models with distance write 7-column predictions; 2024 then evaluates distance, and 2023 is joined by the 2024
    scores with distance (``Evaluation.distance_2024``, ``scores_2024.json``, ``scores_2024.txt``) when the references
    have distances."""
    from av_seld.metrics import evaluate_folders
    from av_seld.training.predict import write_clip_predictions
    from av_seld.utils.atomic import write_text_atomic

    out_dir = Path(out_dir)
    with phase(f"{out_dir.name}: predicting", len(clips)) as update:
        write_clip_predictions(models, clips, out_dir / "pred", progress=progress or update)
    ref_dirs = {path.parent for path in metadata.values()}
    if len(ref_dirs) == 1:
        ref_dir = ref_dirs.pop()
    else:  # several splits or roots: gather the references next to the predictions
        ref_dir = out_dir / "ref"
        ref_dir.mkdir(parents=True, exist_ok=True)
        for path in metadata.values():
            write_text_atomic(ref_dir / path.name, path.read_text())
    distance = any(m.has_distance for m in models)
    result = evaluate_folders(ref_dir, out_dir / "pred", edition=edition, eval_distance=None if distance else False)
    result.write_json(out_dir / "scores.json")
    write_text_atomic(out_dir / "scores.txt", result.format_table() + "\n")
    if distance and edition != "2024":
        with_distance = evaluate_folders(ref_dir, out_dir / "pred", edition="2024")
        if with_distance.eval_distance:
            result.distance_2024 = with_distance
            with_distance.write_json(out_dir / "scores_2024.json")
            write_text_atomic(out_dir / "scores_2024.txt", with_distance.format_table() + "\n")
        else:
            log.warning("%s: the references have no distance column, so the model's distances are not scored",
                        ref_dir)
    # Relative to this folder, as readers resolve it (a path relative to the working directory would only hold
    # from where the run was started); a run folder that moves together with its data keeps its references.
    relative = os.path.relpath(Path(ref_dir).resolve(), out_dir.resolve())
    write_text_atomic(out_dir / "reference.json", json.dumps({"reference_dir": relative}) + "\n")
    return result
