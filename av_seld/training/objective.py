"""What a training step minimises: the configured multi-ACCDOA loss (with class weights from the training labels on
request) and, with ``distill.teacher``, the distillation from a frozen teacher."""

from __future__ import annotations

import logging

import numpy as np
import torch

from av_seld.classes import NUM_CLASSES
from av_seld.config import Config, ConfigError
from av_seld.io.labels import read_reference_csv
from av_seld.training import distributed
from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint
from av_seld.training.inference import model_forward, visual_inputs
from av_seld.utils.paths import shipped_path

log = logging.getLogger(__name__)


def auto_class_weights(clips) -> list[float]:
    """``loss.params.class_weights: auto``: class-balanced weights from the active label frames of each class in the
    training clips (:func:`av_seld.losses.class_balanced_weights`)."""
    from av_seld.losses import class_balanced_weights

    counts = np.zeros(NUM_CLASSES)
    for entry in clips:
        events = read_reference_csv(entry.clip.metadata)
        pairs = np.unique(np.stack([events.frame, events.class_index]), axis=1) if len(events) else np.zeros((2, 0))
        counts += np.bincount(pairs[1].astype(int), minlength=NUM_CLASSES)[:NUM_CLASSES]
    return class_balanced_weights(counts)


def check_teacher_video(teacher: torch.nn.Module, student: torch.nn.Module, path, *, cached: bool) -> None:
    """An audio-visual teacher sees the student's video: without video in the batches it would only ever see its
    no-video token, and with cached visual features (``data.visual_features``) those are the student's frozen
    encoder's, so the teacher's visual encoder must hold the same weights. Raises :class:`ConfigError` otherwise."""
    if not getattr(student, "uses_video", False):
        raise ConfigError("config", f"distill.teacher {path} is an audio-visual model but the student reads no "
                                    "video; distil from an audio checkpoint or train an audio-visual student")
    if not cached:
        return
    trainable = {name for name, p in student.visual.named_parameters() if p.requires_grad}
    mine, theirs = _frozen_state(student.visual, trainable), _frozen_state(teacher.visual, trainable)
    same = mine.keys() == theirs.keys() and all(
        mine[k].shape == theirs[k].shape and torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in mine)
    if not same:
        raise ConfigError("config", f"distill.teacher {path}: the teacher's frozen visual encoder differs from the "
                                    "student's, and data.visual_features caches the student's features; use a "
                                    "teacher with the same visual encoder or set data.visual_features=false")


def _frozen_state(encoder: torch.nn.Module, trainable: set[str]) -> dict:
    """The state entries of a visual encoder that its cached features depend on: all but the trainable parameters."""
    return {k: v for k, v in encoder.state_dict().items() if k not in trainable}


def teacher_standardisation(payload: dict, stats, path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(scale, shift)`` (C, F) that turn features standardised with the student's ``stats`` into features
    standardised with the statistics the teacher was trained with (``x · scale + shift``); None when the checkpoint
    or the run has no statistics. A teacher of another feature kind than the student's is a :class:`ConfigError`."""
    kind = payload.get("features")
    if stats is not None and kind is not None and kind != stats.kind:
        raise ConfigError("config", f"distill.teacher {path} reads {kind} features, the student {stats.kind}")
    if stats is None or payload.get("feature_mean") is None:
        return None
    mean, std = np.asarray(payload["feature_mean"], np.float64), np.asarray(payload["feature_std"], np.float64)
    if mean.shape != np.shape(stats.mean):
        raise ConfigError("config", f"distill.teacher {path}: feature statistics of shape {mean.shape}, the "
                                    f"student's are {np.shape(stats.mean)}")
    return stats.std / std, (stats.mean - mean) / std


def build_loss_fn(config: Config, device: torch.device, model: torch.nn.Module, train_clips=(), stats=None):
    """``(loss_fn(output, batch), extra trainable parameters, forward(model, batch))`` for the configured
    multi-ACCDOA loss, plus distillation from a frozen teacher when ``distill.teacher`` is set. ``train_clips``:
    the training set's clip entries (for ``loss.params.class_weights: auto``); ``stats``: the
    :class:`~av_seld.data.feature_cache.FeatureStats` the student's features are standardised with (the teacher
    gets them re-standardised with its own checkpoint's statistics)."""
    from av_seld.losses import DistillationLoss, build_loss

    params = dict(config.loss.params)
    if params.get("class_weights") == "auto":
        params["class_weights"] = auto_class_weights(train_clips)
        log.info("class weights from the training split's label frames: %s",
                 ", ".join(f"{w:.2f}" for w in params["class_weights"]))
    base = build_loss(config.loss.name, **params)
    if config.distill.teacher is None:
        return (lambda output, batch: base(output, batch["target"])), [], model_forward
    path = shipped_path(config.distill.teacher)
    payload = load_checkpoint(path)
    teacher = build_model_from_checkpoint(payload, device=device)
    if getattr(teacher, "uses_video", False):
        check_teacher_video(teacher, model, path, cached=config.data.visual_features)
    standardise = teacher_standardisation(payload, stats, path)
    with_features = config.distill.feature_weight > 0
    loss = DistillationLoss(base, teacher, weight_teacher=config.distill.weight,
                            weight_feature=config.distill.feature_weight,
                            student_dim=model.embed_dim if with_features else None,
                            teacher_standardise=standardise).to(device)
    if not with_features:
        return (lambda output, batch: loss(output, batch["target"], batch["features"],
                                           teacher_inputs=visual_inputs(batch))), \
            loss.trainable_parameters(), model_forward
    if distributed.launched_by_torchrun():
        raise ConfigError("config", "distill.feature_weight > 0 is not supported under torchrun yet")

    def forward_with_tokens(m, batch):  # the student's tokens feed the intermediate-feature loss
        tokens = m.tokens(batch["features"], **visual_inputs(batch))
        return m.head(tokens), tokens

    return (lambda out, batch: loss(out[0], batch["target"], batch["features"], student_tokens=out[1],
                                    teacher_inputs=visual_inputs(batch))), \
        loss.trainable_parameters(), forward_with_tokens
