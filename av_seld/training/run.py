"""``av-seld train``: one function maps a :class:`~av_seld.config.Config` to datasets, model, loss and trainer.

The parts live in focused modules: the recipe's checks and model arguments (:mod:`~av_seld.training.recipe`), cache
filling (:mod:`~av_seld.training.caches`), datasets (:mod:`~av_seld.training.data`), the loss and distillation
(:mod:`~av_seld.training.objective`), and the final calibration and test scoring (:mod:`~av_seld.training.scoring`).

Run folder (``train.out_dir/train.name``)::

    config.yaml        the resolved configuration
    train_log.csv      step, epoch, loss, lr, grad_norm
    val_log.csv        step, epoch, ER, F, LE, LR, SELD on the validation split
    tensorboard/       the same curves for TensorBoard
    last.pt            weights + optimizer + counters, for --resume
    best.pt            the weights with the lowest validation SELD score, with calibrated thresholds
    eval/test/         pred/*.csv, scores.json, scores.txt on the test split (after training); with distance outputs
                       (model.params.distance) also scores_2024.json, scores_2024.txt
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from av_seld import features as feats
from av_seld.classes import NUM_CLASSES
from av_seld.config import Config, ConfigError, check_resume, config_to_dict, save_config
from av_seld.errors import InputError
from av_seld.training import distributed
from av_seld.training.caches import feature_caches
from av_seld.training.checkpoint import initialise_weights, initialised_parameters, load_checkpoint, save_checkpoint
from av_seld.training.data import build_datasets
from av_seld.training.evaluation import collect_outputs, references, validation_scores
from av_seld.training.hooks import CheckpointHook, Hook, LogHook, ValidationHook
from av_seld.training.objective import build_loss_fn
from av_seld.training.recipe import check_distance_labels, check_model_config, model_params, predicts_distance
from av_seld.utils.device import pick_device
from av_seld.utils.paths import shipped_path
from av_seld.training.schedule import learning_rate
from av_seld.training.scoring import score_best_checkpoint
from av_seld.training.trainer import Trainer, seed_everything

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    val_scores: dict[str, float]  # at the best checkpoint, calibrated thresholds
    test: Any | None  # av_seld.metrics.evaluate.Evaluation of the test split, when there is one
    steps: int
    test_set: Any | None = None  # the dataset the test split was scored on


def _checkpoint_payload(config: Config, params: dict, model: torch.nn.Module, kind: str, stats) -> dict[str, Any]:
    return {"model_name": config.model.name, "model_params": params, "model_state": model.state_dict(),
            "features": kind, "format": config.data.format, "chunk_s": config.data.chunk_s,
            "feature_mean": stats.mean, "feature_std": stats.std,
            "thresholds": np.full(NUM_CLASSES, config.eval.threshold),
            "merge_deg": config.eval.merge_deg, "tta": config.eval.tta,
            "smooth_frames": config.eval.smooth_frames, "config": config_to_dict(config)}


def init_standardisation(config: Config, kind: str, caches: list[Path], run_dir: Path, resume: bool):
    """With ``train.init_stats``, the feature statistics of the checkpoint the run starts from (``train.init_from``;
    on ``--resume``, the run's own ``last.pt``, which kept them), checked against the run's features; else None (the
    training set's statistics)."""
    if not config.train.init_stats:
        return None
    from av_seld.data.dataset import load_cache_stats
    from av_seld.data.feature_cache import FeatureStats

    source = run_dir / "last.pt" if resume and (run_dir / "last.pt").exists() else shipped_path(config.train.init_from)
    payload = load_checkpoint(source)
    own = load_cache_stats(caches)
    mean, std = np.asarray(payload["feature_mean"], np.float64), np.asarray(payload["feature_std"], np.float64)
    if payload["features"] != kind or mean.shape != own.mean.shape or std.shape != own.std.shape:
        raise InputError(source, f"train.init_stats: its features are {payload['features']} {tuple(mean.shape)}, "
                                 f"the run's {kind} {tuple(own.mean.shape)}")
    log.info("standardising features with the statistics of %s (train.init_stats)", source)
    return FeatureStats(kind, mean.astype(own.mean.dtype), std.astype(own.std.dtype), own.count)


def parameter_groups(model: torch.nn.Module, extra: list[torch.nn.Parameter], config: Config) -> list[dict]:
    """The optimizer's parameter groups: with ``optim.init_lr_scale`` other than 1, the trainable parameters that
    ``train.init_from`` loads form a group of their own whose ``lr_scale`` the trainer applies to every step's rate;
    the others (and ``extra``, the loss's own parameters) train at the schedule's rate."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if config.optim.init_lr_scale == 1.0:
        return [{"params": [p for _, p in trainable] + extra}]
    loaded = initialised_parameters(model, shipped_path(config.train.init_from))
    pretrained = [p for name, p in trainable if name in loaded]
    others = [p for name, p in trainable if name not in loaded] + extra
    log.info("optim.init_lr_scale %g: %d pre-trained parameter tensors at that fraction of the rate, %d at the full "
             "rate", config.optim.init_lr_scale, len(pretrained), len(others))
    groups = [{"params": others}, {"params": pretrained, "lr_scale": config.optim.init_lr_scale}]
    return [group for group in groups if group["params"]]


def train(config: Config, *, resume: bool = False, extra_hooks: list[Hook] | None = None,
          workers: int = 1) -> TrainResult:
    """Train the configured model, keep the best checkpoint by validation SELD score, calibrate its per-class
    thresholds, and score it on the test split. ``workers``: processes for filling feature caches."""
    if not config.data.roots:
        raise ConfigError("config", "data.roots is empty: give at least one dataset root")
    check_model_config(config)
    needs_init = [key for key, used in (("train.init_stats", config.train.init_stats),
                                        ("optim.init_lr_scale", config.optim.init_lr_scale != 1)) if used]
    if needs_init and config.train.init_from is None:
        raise ConfigError(getattr(config, "source", "config"), f"{' and '.join(needs_init)}: these options refer to "
                          "the checkpoint the run starts from; set train.init_from")
    device = distributed.setup(pick_device(config.train.device, key="train.device", where=getattr(config, "source", None)))
    seed_everything(config.train.seed + distributed.rank())
    run_dir = Path(config.train.out_dir) / (config.train.name or "run")
    if distributed.is_main():
        if run_dir.exists() and any(run_dir.iterdir()) and not resume:
            if (run_dir / "last.pt").exists():
                raise InputError(run_dir, "run folder already holds a run: pass --resume to continue it, or choose "
                                          "another train.name")
        if resume and (run_dir / "last.pt").exists() and (run_dir / "config.yaml").exists():
            for change in check_resume(config, run_dir / "config.yaml"):  # before anything is written
                log.info("resuming %s with %s", run_dir, change)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")

    kind = config.data.features
    spec = feats.feature_spec(kind)
    caches = feature_caches(config, kind, workers)
    train_set, val_set, test_set, stats = build_datasets(
        config, caches, kind, stats=init_standardisation(config, kind, caches, run_dir, resume))
    if predicts_distance(config):
        check_distance_labels(list(train_set.clips) + (list(val_set.clips) if val_set is not None else []))
    params = model_params(config, spec.num_channels)

    from av_seld.models import build_model

    # a path to an audio-only checkpoint starts the audio branch; the rebuilt model (checkpoint) does not need it
    # Files that start the weights (an audio checkpoint, a pretrain-visual checkpoint) are read once, here: the
    # checkpoint's model_params leave them out, as its weights already hold them, so it rebuilds without them.
    audio_init = params.pop("audio_state", None) if config.model.name == "av_conformer" else None
    visual_init = params.pop("visual_init", None) if config.model.name == "av_conformer" else None
    if audio_init is not None and not isinstance(audio_init, str):
        raise ConfigError("config", "model.params.audio_state: give the path of an av-seld audio checkpoint")
    try:
        model = build_model(config.model.name, **params)
    except InputError:  # a file the model reads (e.g. visual weights): the error names it
        raise
    except (ValueError, TypeError) as err:  # an argument value the model refuses
        raise ConfigError(getattr(config, "source", "config"), f"model.params of {config.model.name}: {err}") from None
    fresh = not (resume and (run_dir / "last.pt").exists())
    if fresh and visual_init is not None:
        from av_seld.models.visual import load_encoder_init

        load_encoder_init(model.visual, visual_init)
    if fresh and audio_init is not None:
        initialise_weights(model.audio, audio_init, what="model.params.audio_state")
    if fresh and config.train.init_from is not None:
        initialise_weights(model, shipped_path(config.train.init_from))
    loss_fn, extra_params, forward = build_loss_fn(config, device, model, train_set.clips, stats)
    if train_set.pipeline.device_stages:  # data.online_features: the pipeline's last stages run on the device
        model_forward_of_features = forward

        def forward(m, batch):  # the batch dict is shared with loss_fn, which then sees the features too
            return model_forward_of_features(m, train_set.pipeline.device(batch))
    sampler = None
    if distributed.is_distributed():
        sampler = torch.utils.data.distributed.DistributedSampler(train_set, seed=config.train.seed, drop_last=True)
    from av_seld.data.dataset import collate_samples

    generator = torch.Generator().manual_seed(config.train.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=config.data.batch_size, shuffle=sampler is None,
                                         sampler=sampler, drop_last=len(train_set) >= config.data.batch_size,
                                         num_workers=config.data.num_workers, collate_fn=collate_samples,
                                         generator=generator, persistent_workers=False)
    steps_per_epoch = len(loader)
    total_steps = config.train.epochs * steps_per_epoch
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)
    opt = config.optim
    optimizer = torch.optim.AdamW(parameter_groups(model, list(extra_params), config), lr=opt.lr,
                                  weight_decay=opt.weight_decay)

    def lr_at(step: int) -> float:
        return learning_rate(step, total_steps=total_steps, peak_lr=opt.lr, warmup_steps=opt.warmup_steps,
                             warmup_start_lr=opt.warmup_start_lr, min_lr_ratio=opt.min_lr_ratio)

    def set_epoch(epoch: int) -> None:
        train_set.set_epoch(epoch)
        generator.manual_seed(config.train.seed * 1000 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)

    def save(trainer: Trainer, path: Path) -> None:
        payload = _checkpoint_payload(config, params, trainer.eval_model, kind, stats)
        payload.update(trainer.state_dict(), trained_state=trainer.module.state_dict())
        save_checkpoint(path, payload)

    refs_val = references(val_set) if val_set is not None else {}

    def validate(eval_model) -> dict[str, float]:
        outputs = collect_outputs(eval_model, val_set, batch_size=config.data.batch_size, device=device)
        return validation_scores(outputs, refs_val, thresholds=config.eval.threshold,
                                 merge_deg=config.eval.merge_deg, edition=config.eval.edition)

    log_hook = LogHook(run_dir, every=config.train.log_every_steps)
    hooks: list[Hook] = [log_hook] if distributed.is_main() else []
    if val_set is not None:
        hooks.append(ValidationHook(validate, save, run_dir, config.train.val_every_epochs, log_hook))
    hooks.append(CheckpointHook(save, run_dir, every_steps=config.train.checkpoint_every_steps))
    hooks += extra_hooks or []
    trainer = Trainer(model=model, loss_fn=loss_fn, forward=forward, train_loader=loader, optimizer=optimizer,
                      lr_at=lr_at, total_steps=total_steps, device=device, amp=opt.amp, grad_clip=opt.grad_clip,
                      ema_decay=opt.ema_decay, hooks=hooks, set_epoch=set_epoch)
    if resume and (run_dir / "last.pt").exists():
        payload = load_checkpoint(run_dir / "last.pt")
        trainer.module.load_state_dict(payload["trained_state"])
        trainer.load_state_dict(payload)
        log.info("resumed %s at step %d (epoch %d)", run_dir, trainer.state.step, trainer.state.epoch)
    log.info("training %s (%d parameters) for %d steps (%d per epoch) on %s", config.model.name,
             sum(p.numel() for p in model.parameters()), total_steps, steps_per_epoch, device)
    state = trainer.train()
    distributed.barrier()
    if not distributed.is_main():
        distributed.cleanup()
        return TrainResult(run_dir, run_dir / "best.pt", {}, None, state.step)

    best_path = run_dir / ("best.pt" if (run_dir / "best.pt").exists() else "last.pt")
    payload = load_checkpoint(best_path)
    val_scores, test_eval = score_best_checkpoint(config, payload, best_path, val_set, test_set, run_dir, device)
    distributed.cleanup()
    return TrainResult(run_dir, run_dir / "best.pt", val_scores, test_eval, state.step, test_set)


__all__ = ["TrainResult", "train", "build_datasets", "init_standardisation", "parameter_groups", "build_loss_fn",
           "feature_caches", "model_params", "pick_device", "score_best_checkpoint", "shipped_path"]
