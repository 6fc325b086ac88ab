"""``av-seld pretrain-visual``: the training run of the self-supervised pre-training (see :mod:`av_seld.selfsup`)."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from av_seld.config import PretrainConfig
from av_seld.errors import InputError
from av_seld.selfsup.data import SelfSupDataset, prepare_cache
from av_seld.selfsup.model import MODEL_NAME, SelfSupVisualModel, export_yolo_weights, load_selfsup_model

log = logging.getLogger(__name__)

EXPORT_NAME = "visual_yolo.pt"  # the YOLO layers, exported beside the checkpoints for data.visual_features


@dataclass
class PretrainResult:
    run_dir: Path
    best_checkpoint: Path  # lowest validation loss, else the final weights
    exported_weights: Path  # the YOLO layers' weights (for visual_weights / precompute-visual)
    steps: int
    val_loss: float | None


@torch.no_grad()
def evaluate_loss(model: SelfSupVisualModel, dataset: SelfSupDataset, *, batch_size: int = 64,
                  device: str | torch.device = "cpu") -> float:
    """Mean self-supervised loss (nats per bin, lower is better) of ``model`` over ``dataset``."""
    was_training = model.training
    model.eval()
    total = count = 0.0
    for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
        logits = model(batch["frames"].to(device))
        n = float((batch["weights"].sum(-1) > 0).sum())
        total += float(model.loss(logits, batch["directions"].to(device), batch["weights"].to(device),
                                  batch["stats"].to(device))) * n
        count += n
    model.train(was_training)
    return total / max(count, 1.0)


def pretrain_visual(config: PretrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
                    extra_hooks: list | None = None, device: str | torch.device = "cpu") -> PretrainResult:
    """Train :class:`SelfSupVisualModel` on every clip with audio and video under ``config.roots`` (no labels).

    Run folder: ``config.yaml``, ``train_log.csv``, ``val_log.csv`` (with ``val_splits``), ``tensorboard/``,
    ``last.pt`` (for ``resume``), ``best.pt`` (lowest validation loss, else the final weights; the file for
    ``--visual-init``), ``visual_yolo.pt`` (the YOLO layers as an ultralytics ``.pt``). Turns on
    ``torch.set_flush_denormal`` for the process.
    """
    from av_seld.config import save_config
    from av_seld.training.checkpoint import load_checkpoint, save_checkpoint
    from av_seld.training.hooks import CheckpointHook, LogHook, ValidationHook
    from av_seld.training.schedule import learning_rate
    from av_seld.training.trainer import Trainer, seed_everything
    from av_seld.utils.atomic import atomic_path
    from av_seld.utils.device import pick_device

    if not config.roots:
        raise InputError("config", "roots is empty: give at least one dataset root")
    torch.set_flush_denormal(True)  # the fine-tuned YOLO's gradients underflow to denormals: 3x slower on CPU
    device = pick_device(device, key="device", where=getattr(config, "source", None))
    run_dir = Path(run_dir)
    if (run_dir / "last.pt").exists() and not resume:
        raise InputError(run_dir, "run folder already holds a run: pass --resume to continue it, or choose another")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    seed_everything(config.seed)

    def entries(splits):
        found = []
        for root in config.roots:
            found += prepare_cache(root, audio_format=config.audio_format, frame_size=config.frame_size,
                                   num_bins=config.num_bins, splits=splits, cache_dir=config.cache_dir)
        return found

    train_entries = entries(config.splits)
    val_set = None
    if config.val_splits:
        val_entries = entries(config.val_splits)
        val_names = {e.name for e in val_entries}
        train_entries = [e for e in train_entries if e.name not in val_names]
        val_set = SelfSupDataset(val_entries)
    train_set = SelfSupDataset(train_entries)
    if len(train_set) == 0:
        raise InputError(config.roots[0], "no label frame with both video and sound energy to train on")

    params = config.model_params()
    model = SelfSupVisualModel(**params)
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                         drop_last=len(train_set) >= config.batch_size, generator=generator,
                                         num_workers=config.num_workers)
    total_steps = config.epochs * len(loader)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        return learning_rate(step, total_steps=total_steps, peak_lr=config.lr, warmup_steps=config.warmup_steps)

    def save(trainer: Trainer, path: Path) -> None:
        payload = {"model_name": MODEL_NAME, "model_params": params, "model_state": trainer.eval_model.state_dict(),
                   "config": config.to_dict(), "trained_state": trainer.module.state_dict(), **trainer.state_dict()}
        save_checkpoint(path, payload)

    log_hook = LogHook(run_dir, every=config.log_every_steps)
    hooks = [log_hook]
    if val_set is not None:
        hooks.append(ValidationHook(lambda m: {"loss": evaluate_loss(m, val_set, device=device)}, save, run_dir,
                                    log_hook=log_hook, key="loss"))
    hooks.append(CheckpointHook(save, run_dir))
    hooks += extra_hooks or []
    trainer = Trainer(model=model, loss_fn=lambda logits, batch: model.loss(
                          logits, batch["directions"], batch["weights"], batch["stats"]),
                      forward=lambda m, batch: m(batch["frames"]), train_loader=loader, optimizer=optimizer,
                      lr_at=lr_at, total_steps=total_steps, device=device, grad_clip=config.grad_clip,
                      ema_decay=config.ema_decay, hooks=hooks,
                      set_epoch=lambda epoch: generator.manual_seed(config.seed * 1000 + epoch))
    if resume and (run_dir / "last.pt").exists():
        payload = load_checkpoint(run_dir / "last.pt")
        trainer.module.load_state_dict(payload["trained_state"])
        trainer.load_state_dict(payload)
        log.info("resumed %s at step %d (epoch %d)", run_dir, trainer.state.step, trainer.state.epoch)
    log.info("self-supervised visual pre-training: %d frames from %d clips, %d steps (%d per epoch) on %s",
             len(train_set), len(train_entries), total_steps, len(loader), device)
    state = trainer.train()

    best = run_dir / "best.pt"
    if val_set is None or not best.exists():
        with atomic_path(best) as tmp:
            shutil.copyfile(run_dir / "last.pt", tmp)
    exported = export_yolo_weights(load_selfsup_model(best), run_dir / EXPORT_NAME, seed=config.seed)
    val_loss = None if val_set is None else float(state.best_score)
    return PretrainResult(run_dir, best, exported, state.step, val_loss)
