#!/usr/bin/env python
"""Training throughput and peak memory of each recipe in configs/ (its model, loss, batch size and chunk length).

Each recipe runs in its own process: the model is built exactly as ``av-seld train`` builds it, and timed optimizer
steps go through the same :class:`av_seld.training.trainer.Trainer.run_step` on random inputs of the recipe's shape
(features; frames at label rate for audio-visual recipes with ``data.video``). Prints clips (training examples) per
second and the peak memory of the steps (CUDA: max_memory_allocated; CPU: growth of the peak resident set).
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

from _isolated import run_isolated  # bench/ is on sys.path when a bench script runs

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("seldnet_foa", "resnet_gru_teacher", "resnet_conformer", "av_conformer", "debug_tiny")


def _measure(recipe: str, args: argparse.Namespace, queue) -> None:
    import torch

    from av_seld import features as feats
    from av_seld.config import load_config
    from av_seld.losses import build_loss
    from av_seld.models import build_model
    from av_seld.timing import FEATURE_FRAMES_PER_LABEL_FRAME, LABEL_FRAMES_PER_SECOND
    from av_seld.training.inference import model_forward
    from av_seld.training.run import model_params
    from av_seld.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(REPO / "configs" / f"{recipe}.yaml", [f"data.batch_size={args.batch}"] if args.batch else [])
    device = torch.device(args.device)
    spec = feats.feature_spec(config.data.features)
    model = build_model(config.model.name, **model_params(config, spec.num_channels))
    batch_size = config.data.batch_size
    steps = int(round(config.data.chunk_s * LABEL_FRAMES_PER_SECOND))
    batch = {"features": torch.randn(batch_size, spec.num_channels, steps * FEATURE_FRAMES_PER_LABEL_FRAME,
                                     spec.num_bins),
             "target": torch.zeros(batch_size, steps, 6, 4, 13)}
    batch["target"][:, :, 0, 0, 0] = 1.0
    batch["target"][:, :, 0, 1, 0] = 1.0
    if config.data.video:
        h, w = config.data.video_size
        batch["frames"] = torch.randint(0, 255, (batch_size, steps, h, w, 3), dtype=torch.uint8)
        batch["video_valid"] = torch.ones(batch_size, steps, dtype=torch.bool)
    loss = build_loss(config.loss.name, **config.loss.params)
    trainable = [p for p in model.parameters() if p.requires_grad]
    trainer = Trainer(model=model, loss_fn=lambda out, b: loss(out, b["target"]), forward=model_forward,
                      train_loader=[batch], optimizer=torch.optim.AdamW(trainable, lr=1e-4), lr_at=lambda s: 1e-4,
                      total_steps=args.steps + 1, device=device, amp=config.optim.amp)
    # CPU memory: peak resident-set growth from before the warm-up step, so activations, gradients and the
    # optimizer state (all first allocated in the warm-up) count, as in bench_models.py
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trainer.run_step(batch)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        trainer.run_step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    step_s = sorted(times)[len(times) // 2]
    queue.put((recipe, config.model.name, sum(p.numel() for p in model.parameters()), batch_size,
               config.data.chunk_s, step_s, batch_size / step_s, peak_mib))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per recipe (median reported)")
    parser.add_argument("--batch", type=int, default=None, help="override every recipe's batch size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU {platform.machine()}"
    print(f"device: {where}, {args.threads} torch threads; median of {args.steps} steps after one warm-up")
    print(f"{'recipe':<20}{'model':<18}{'params':>12}{'batch':>7}{'chunk s':>9}{'step s':>9}{'clips/s':>9}"
          f"{'peak MiB':>10}")
    for recipe in args.recipes:
        exitcode, result = run_isolated(_measure, recipe, args)
        if exitcode != 0:
            print(f"{recipe:<20}failed (exit code {exitcode})")
            continue
        name, model, params, batch, chunk, step, clips, peak = result
        print(f"{name:<20}{model:<18}{params:>12,}{batch:>7}{chunk:>9.1f}{step:>9.3f}{clips:>9.2f}{peak:>10.0f}")


if __name__ == "__main__":
    main()
