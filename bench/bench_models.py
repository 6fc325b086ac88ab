#!/usr/bin/env python
"""Training step time and peak memory of each registered audio model (default: batch 32 × 5 s of FOA features).

One step = forward, ADPIT loss, backward, Adam update, on random features (B, 7, 250, 64) and random ADPIT targets.
Each model runs in its own fresh process so that peak memory is its own:
- CUDA: torch.cuda.max_memory_allocated during the timed steps (tensors only, no allocator cache or CUDA context);
- CPU: growth of the process's peak resident set (ru_maxrss) from just before the first step to the end, i.e. the
  activations, gradients and optimizer state of a step on top of the model and the batch.
Prints the device, thread count and one line per model.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np

from _isolated import run_isolated  # bench/ is on sys.path when a bench script runs


def _step_stats(name: str, args: argparse.Namespace, queue) -> None:
    import torch

    from av_seld.io.labels import Events
    from av_seld.losses import build_loss
    from av_seld.models import build_model
    from av_seld.targets import events_to_adpit
    from av_seld.timing import SAMPLE_RATE, num_feature_frames, num_label_frames

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    num_samples = int(round(args.seconds * SAMPLE_RATE))
    frames_in, frames_out = num_feature_frames(num_samples), num_label_frames(num_samples)
    model = build_model(name, in_channels=args.channels).to(device).train()
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = build_loss(args.loss)
    features = torch.randn(args.batch, args.channels, frames_in, 64, device=device)
    rng = np.random.default_rng(0)
    n = 3 * frames_out
    events = Events.from_arrays(rng.integers(0, frames_out, n), rng.integers(0, 13, n), rng.integers(0, 3, n),
                                rng.uniform(-180, 180, n), rng.uniform(-90, 90, n))
    target = torch.from_numpy(events_to_adpit(events, frames_out)).to(device)
    target = target[None].expand(args.batch, -1, -1, -1, -1).contiguous()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(features), target)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    queue.put(dict(name=name, params=params, median_s=float(np.median(times)), min_s=float(np.min(times)),
                   peak_mib=peak_mib, frames_in=frames_in, frames_out=frames_out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="model names (default: every registered audio model)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length per batch item")
    parser.add_argument("--channels", type=int, default=7, help="feature channels (7 FOA, 10 MIC GCC)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--loss", default="adpit")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    args = parser.parse_args()

    import torch

    from av_seld.models import available_models, model_builder
    from av_seld.models.base import AudioSeldModel

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    names = args.models or [n for n in available_models() if isinstance(model_builder(n), type)
                            and issubclass(model_builder(n), AudioSeldModel)]
    if args.device == "cuda":
        where = f"CUDA {torch.cuda.get_device_name(0)}"
        memory = "peak torch.cuda.max_memory_allocated"
    else:
        where = f"CPU {platform.processor() or platform.machine()}, {args.threads} torch threads of {os.cpu_count()} cores"
        memory = "peak RSS growth during the steps"
    print(f"device: {where}; torch {torch.__version__}")
    print(f"training step (forward + {args.loss} loss + backward + Adam), batch {args.batch} x {args.seconds:g} s, "
          f"{args.channels} channels, median of {args.steps} steps after {args.warmup} warm-up; memory = {memory}")
    print(f"{'model':<18} {'params':>10} {'T_feat->T':>11} {'step s':>8} {'min s':>8} {'clips/s':>8} {'peak MiB':>9}")
    for name in names:
        exitcode, r = run_isolated(_step_stats, name, args)
        if exitcode != 0:
            print(f"{name:<18} failed (exit code {exitcode})")
            continue
        print(f"{name:<18} {r['params']:>10,} {r['frames_in']:>5}->{r['frames_out']:<5} {r['median_s']:>8.3f} "
              f"{r['min_s']:>8.3f} {args.batch / r['median_s']:>8.1f} {r['peak_mib']:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
