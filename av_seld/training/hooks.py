"""Trainer hooks: metric logs (CSV and TensorBoard), progress bar, periodic validation with best-checkpoint selection,
and the resumable ``last.pt`` checkpoint. Hooks that write files run on rank 0 only."""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from av_seld.training import distributed
from av_seld.training.trainer import Hook, Trainer
from av_seld.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)


class CSVWriter:
    """Appends rows to a CSV file, writing the header once; the columns are fixed by the first row."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.is_file() and self.path.stat().st_size:
            with self.path.open() as f:
                self.columns = next(csv.reader(f))

    def drop_rows_after(self, step: int) -> None:
        """Remove the rows logged after optimizer step ``step``: a resumed run redoes those steps and logs them
        again (the checkpoint it resumes from may be older than the log's last row)."""
        if self.columns is None or "step" not in self.columns:
            return
        with self.path.open(newline="") as f:
            lines = f.read().splitlines(keepends=True)
        column = self.columns.index("step")
        kept = [line for line in lines[1:] if int(float(next(csv.reader([line]))[column])) <= step]
        if len(kept) < len(lines) - 1:
            write_text_atomic(self.path, "".join(lines[:1] + kept))
            log.info("%s: dropped %d rows after step %d, which the resumed run redoes", self.path,
                     len(lines) - 1 - len(kept), step)

    def write(self, row: dict[str, Any]) -> None:
        new = self.columns is None
        if new:
            self.columns = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


class LogHook(Hook):
    """Training loss, learning rate and gradient norm every ``every`` steps to ``train_log.csv`` and TensorBoard."""

    def __init__(self, run_dir: str | os.PathLike, every: int = 20, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.every = max(1, every)
        self.tensorboard = tensorboard
        self.writer = None
        self.csv = CSVWriter(self.run_dir / "train_log.csv")
        self._sum = 0.0
        self._count = 0

    def before_train(self, trainer: Trainer) -> None:
        self.csv.drop_rows_after(trainer.state.step)
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # TensorBoard shows the latest events of a step, so the redone steps replace the lost ones there
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def after_step(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._sum += metrics["loss"]
        self._count += 1
        step = trainer.state.step
        if step % self.every and step != trainer.total_steps:
            return
        row = {"step": step, "epoch": trainer.state.epoch, "loss": self._sum / self._count, "lr": metrics["lr"],
               "grad_norm": metrics["grad_norm"]}
        self._sum, self._count = 0.0, 0
        self.csv.write(row)
        if self.writer is not None:
            for key in ("loss", "lr", "grad_norm"):
                if not math.isnan(row[key]):
                    self.writer.add_scalar(f"train/{key}", row[key], step)

    def log_validation(self, step: int, scores: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in scores.items():
                if value is not None and not math.isnan(value):
                    self.writer.add_scalar(f"val/{key}", value, step)

    def after_train(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()

    on_interrupt = after_train


class ProgressHook(Hook):
    """A tqdm bar over optimizer steps with the running loss (for command-line tools, not the library)."""

    def __init__(self, desc: str = "train") -> None:
        self.desc = desc
        self.bar = None

    def before_train(self, trainer: Trainer) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=trainer.total_steps, initial=trainer.state.step, desc=self.desc, unit="step")

    def after_step(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")

    def after_train(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()

    on_interrupt = after_train


class ValidationHook(Hook):
    """Every ``every_epochs`` epochs (and after the last step): score the model on the validation clips, append the
    scores to ``val_log.csv``, and save ``best.pt`` when the score ``key`` (lower is better) is the lowest so far.

    ``evaluate(model) -> dict`` returns at least ``key`` (default ``SELD``); ``checkpoint(trainer, path)`` saves a
    checkpoint.
    """

    def __init__(self, evaluate: Callable[[Any], dict[str, float]], checkpoint: Callable[[Trainer, Path], None],
                 run_dir: str | os.PathLike, every_epochs: int = 1, log_hook: LogHook | None = None,
                 key: str = "SELD") -> None:
        self.evaluate = evaluate
        self.key = key
        self.checkpoint = checkpoint
        self.run_dir = Path(run_dir)
        self.every = max(1, every_epochs)
        self.log_hook = log_hook
        self.csv = CSVWriter(self.run_dir / "val_log.csv")
        self._validated_at = -1

    def before_train(self, trainer: Trainer) -> None:
        if distributed.is_main():
            self.csv.drop_rows_after(trainer.state.step)

    def _validate(self, trainer: Trainer) -> None:
        if trainer.state.step == self._validated_at:
            return
        self._validated_at = trainer.state.step
        scores = self.evaluate(trainer.eval_model)
        row = {"step": trainer.state.step, "epoch": trainer.state.epoch, **scores}
        trainer.state.history.append(row)
        self.csv.write(row)
        if self.log_hook is not None:
            self.log_hook.log_validation(trainer.state.step, scores)
        improved = scores[self.key] < trainer.state.best_score
        if improved:
            trainer.state.best_score = scores[self.key]
            trainer.state.best_step = trainer.state.step
            self.checkpoint(trainer, self.run_dir / "best.pt")
        log.info("step %d: %s%s", trainer.state.step,
                 ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)),
                 " (best so far)" if improved else "")

    def after_epoch(self, trainer: Trainer) -> None:
        if distributed.is_main() and trainer.state.epoch % self.every == 0:
            self._validate(trainer)

    def after_train(self, trainer: Trainer) -> None:
        if distributed.is_main():
            self._validate(trainer)


class CheckpointHook(Hook):
    """Saves ``last.pt`` (weights, optimizer, counters) for ``--resume``: every ``every_steps`` optimizer steps (None:
    never mid-epoch), after every epoch, at the end, and when SIGINT/SIGTERM stops training."""

    def __init__(self, checkpoint: Callable[[Trainer, Path], None], run_dir: str | os.PathLike,
                 every_steps: int | None = None) -> None:
        self.checkpoint = checkpoint
        self.path = Path(run_dir) / "last.pt"
        self.every_steps = every_steps

    def after_step(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.every_steps and trainer.state.step % self.every_steps == 0 and distributed.is_main():
            self.checkpoint(trainer, self.path)

    def after_epoch(self, trainer: Trainer) -> None:
        if distributed.is_main():
            self.checkpoint(trainer, self.path)

    def after_train(self, trainer: Trainer) -> None:
        self.after_epoch(trainer)

    def on_interrupt(self, trainer: Trainer) -> None:
        if distributed.is_main():
            self.checkpoint(trainer, self.path)
            trainer.saved.append(self.path)
