"""Learning-rate schedule: linear warm-up from a tiny rate to the peak, then cosine decay to a floor."""

from __future__ import annotations

import math


def learning_rate(step: int, *, total_steps: int, peak_lr: float, warmup_steps: int, warmup_start_lr: float = 1e-8,
                  min_lr_ratio: float = 0.01) -> float:
    """Rate for optimizer step ``step`` (0-based) of ``total_steps``.

    Steps ``0 .. warmup_steps`` rise linearly from ``warmup_start_lr`` to ``peak_lr``; the rest follow a half cosine
    from ``peak_lr`` down to ``peak_lr * min_lr_ratio`` at the last step.
    """
    if step < warmup_steps:
        return warmup_start_lr + (peak_lr - warmup_start_lr) * step / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    floor = peak_lr * min_lr_ratio
    return floor + (peak_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
