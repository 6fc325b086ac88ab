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


def build_loss_fn(config: Config, device: torch.device, model: torch.nn.Module, train_clips=()):
    """``(loss_fn(output, batch), extra trainable parameters, forward(model, batch))`` for the configured
    multi-ACCDOA loss, plus distillation from a frozen teacher when ``distill.teacher`` is set. ``train_clips``:
    the training set's clip entries (for ``loss.params.class_weights: auto``)."""
    from av_seld.losses import DistillationLoss, build_loss

    params = dict(config.loss.params)
    if params.get("class_weights") == "auto":
        params["class_weights"] = auto_class_weights(train_clips)
        log.info("class weights from the training split's label frames: %s",
                 ", ".join(f"{w:.2f}" for w in params["class_weights"]))
    base = build_loss(config.loss.name, **params)
    if config.distill.teacher is None:
        return (lambda output, batch: base(output, batch["target"])), [], model_forward
    teacher = build_model_from_checkpoint(load_checkpoint(config.distill.teacher), device=device)
    with_features = config.distill.feature_weight > 0
    loss = DistillationLoss(base, teacher, weight_teacher=config.distill.weight,
                            weight_feature=config.distill.feature_weight,
                            student_dim=model.embed_dim if with_features else None).to(device)
    if not with_features:
        return (lambda output, batch: loss(output, batch["target"], batch["features"])), \
            loss.trainable_parameters(), model_forward
    if distributed.launched_by_torchrun():
        raise ConfigError("config", "distill.feature_weight > 0 is not supported under torchrun yet")

    def forward_with_tokens(m, batch):  # the student's tokens feed the intermediate-feature loss
        tokens = m.tokens(batch["features"], **visual_inputs(batch))
        return m.head(tokens), tokens

    return (lambda out, batch: loss(out[0], batch["target"], batch["features"], student_tokens=out[1])), \
        loss.trainable_parameters(), forward_with_tokens
