"""A plain training loop plus hooks for evaluation, checkpoints and logging.

:meth:`Trainer.run_step` is one optimizer step: forward, loss, backward (AMP on CUDA), gradient clipping, step, EMA
update, learning-rate schedule. :meth:`Trainer.train` loops over epochs and calls the hooks; everything else
(validation, best-checkpoint selection, CSV/TensorBoard logs, the progress bar) is a hook, so the loop stays readable.
Under ``torchrun`` the model is wrapped in DistributedDataParallel and only rank 0 runs the hooks that write files.

SIGINT (Ctrl-C) and SIGTERM end training after the current step: the hooks' ``on_interrupt`` run (the checkpoint hook
saves ``last.pt``) and :meth:`Trainer.train` raises :class:`~av_seld.errors.Interrupted`. A second signal stops at
once. A run resumed from a checkpoint saved mid-epoch continues that epoch at the next batch, with the same order.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from av_seld.errors import Interrupted
from av_seld.training import distributed

log = logging.getLogger(__name__)

Batch = dict[str, Any]


@dataclass
class TrainState:
    """Counters saved in checkpoints so that ``--resume`` continues where the run stopped."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs completed
    epoch_step: int = 0  # batches of the current epoch done (a checkpoint saved mid-epoch resumes after them)
    best_score: float = math.inf  # lowest validation SELD score so far
    best_step: int = -1
    history: list[dict] = field(default_factory=list)  # one row per validation


class Hook:
    """Called by :class:`Trainer` at fixed points; override what you need."""

    def before_train(self, trainer: "Trainer") -> None: ...
    def after_step(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...
    def after_epoch(self, trainer: "Trainer") -> None: ...
    def after_train(self, trainer: "Trainer") -> None: ...
    def on_interrupt(self, trainer: "Trainer") -> None: ...  # SIGINT/SIGTERM: save what must not be lost


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def move_to(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    """Runs ``total_steps`` optimizer steps over ``train_loader`` (re-iterated each epoch).

    ``forward(model, batch)`` returns the model output for a batch and ``loss_fn(output, batch)`` the scalar loss;
    ``lr_at(step)`` gives the learning rate of each step. ``set_epoch(epoch)`` (optional) is called before each epoch
    so samplers and datasets can reshuffle deterministically.
    """

    def __init__(self, *, model: nn.Module, loss_fn: Callable[[Any, Batch], torch.Tensor],
                 forward: Callable[[nn.Module, Batch], Any], train_loader: Iterable[Batch],
                 optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float], total_steps: int,
                 device: torch.device, amp: bool = False, grad_clip: float | None = None,
                 ema_decay: float | None = None, hooks: list[Hook] | None = None,
                 set_epoch: Callable[[int], None] | None = None) -> None:
        self.device = device
        self.model = model.to(device)
        self.module = model  # the bare model (DDP wraps self.model)
        if distributed.is_distributed():
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.loss_fn = loss_fn
        self.forward = forward
        self.train_loader = train_loader
        self.optimizer = optimizer
        self.lr_at = lr_at
        self.total_steps = total_steps
        self.amp = amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.grad_clip = grad_clip
        self.ema = None
        if ema_decay is not None:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.module, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema_decay))
        self.hooks = hooks or []
        self.set_epoch = set_epoch
        self.state = TrainState()
        self.stop = False  # a hook may set this to end training after the current step
        self.stop_signal: int | None = None  # the signal that ended training, if one did
        self.saved: list = []  # files on_interrupt hooks saved, for the message

    @property
    def eval_model(self) -> nn.Module:
        """The weights to evaluate and keep: the EMA average when enabled, else the trained model."""
        return self.ema.module if self.ema is not None else self.module

    def run_step(self, batch: Batch) -> dict[str, float]:
        self.model.train()
        lr = self.lr_at(self.state.step)
        for group in self.optimizer.param_groups:  # a group's "lr_scale" (default 1) scales the schedule's rate
            group["lr"] = lr * group.get("lr_scale", 1.0)
        batch = move_to(batch, self.device)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            output = self.forward(self.model, batch)
            loss = self.loss_fn(output, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.state.step}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        grad_norm = float("nan")
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.module)
        self.state.step += 1
        return {"loss": float(loss.detach()), "lr": lr, "grad_norm": grad_norm}

    def train(self) -> TrainState:
        with _stop_on_signals(self):
            for hook in self.hooks:
                hook.before_train(self)
            while self.state.step < self.total_steps and not self.stop:
                self._train_epoch()
                if self.stop_signal is not None:
                    break
                self.state.epoch += 1
                self.state.epoch_step = 0
                for hook in self.hooks:
                    hook.after_epoch(self)
        if self.stop_signal is not None:
            for hook in self.hooks:
                hook.on_interrupt(self)
            saved = f"; saved {', '.join(map(str, self.saved))} (continue with --resume)" if self.saved else ""
            raise Interrupted(f"{signal.Signals(self.stop_signal).name} at step {self.state.step}{saved}")
        for hook in self.hooks:
            hook.after_train(self)
        return self.state

    def _train_epoch(self) -> None:
        """Steps through the epoch's batches after the ``state.epoch_step`` already done, until the epoch, the
        step budget or a stop request ends."""
        if self.set_epoch is not None:
            self.set_epoch(self.state.epoch)
        skip = self.state.epoch_step
        if skip:
            log.info("resuming epoch %d after its first %d batches", self.state.epoch, skip)
        stepped = False
        batches = itertools.islice(iter(self.train_loader), skip, None)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception:
                if self.stop_signal is not None:  # Ctrl-C reached the loader's worker processes too
                    return
                raise
            metrics = self.run_step(batch)
            self.state.epoch_step += 1
            stepped = True
            for hook in self.hooks:
                hook.after_step(self, metrics)
            if distributed.is_distributed():  # ranks stop together, or the next all-reduce would wait forever
                stop, signum = distributed.max_over_ranks([int(self.stop), self.stop_signal or 0], self.device)
                self.stop, self.stop_signal = bool(stop), signum or None
            if self.state.step >= self.total_steps or self.stop:
                break
        if not stepped and not skip:
            raise RuntimeError("the training data loader yielded no batch")

    # --- state for checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "train_state": self.state.__dict__.copy(), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.state = TrainState(**state["train_state"])
        torch.set_rng_state(state["torch_rng"])


class _stop_on_signals:
    """While training, SIGINT and SIGTERM ask the trainer to stop after the current step; a second one stops at once
    (KeyboardInterrupt). Signal handlers can only be set from the main thread: elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.trainer.stop_signal is not None:
            raise KeyboardInterrupt
        self.trainer.stop_signal = signum
        self.trainer.stop = True
        log.warning("%s: stopping after this step and saving the checkpoint (send it again to quit at once)",
                    signal.Signals(signum).name)

    def __enter__(self) -> "_stop_on_signals":
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
