#!/usr/bin/env python
"""Speed and memory of the audio-visual model (``av_conformer`` of configs/av_conformer.yaml) with live YOLO frames
against cached visual features.

1. Inference: seconds per minute of audio-visual input, sliding 50 %-overlapping windows of the recipe's
   ``chunk_s`` over one clip as ``av-seld infer`` does (``av_seld.training.inference.predict_clip``, 8 windows per
   call), (a) with live frames through the frozen YOLO encoder and (b) with the pooled features cached, as
   ``av-seld precompute-visual`` stores them (float16 (T, C, rows, cols)); the one-off cost of caching them (every
   frame through YOLO once) and of the audio features are printed too. Audio features are computed beforehand in
   all rows.
2. Training: seconds per step (forward + ADPIT loss + backward + gradient clipping + AdamW step, AMP on CUDA as the
   trainer does) at ``--batch`` clips of ``--seconds`` s, with live frames (uint8 (B, T, H, W, 3), as the data
   loader gives them) and with cached features, and the peak memory of each: on CUDA
   ``torch.cuda.max_memory_allocated``, on the CPU the peak resident set size during the phase above the process's
   size before it (sampled every 5 ms from /proc/self/statm).

The model is built as ``av-seld train`` builds it (``load_config`` + ``av_seld.training.run.model_params``), with
random YOLO weights unless the recipe names a local ``.pt``; inputs are random (speed does not depend on content).
Each timing is the best of ``--repeats`` runs after ``--warmup`` untimed ones (other jobs on a shared machine only
add time).

    python bench/bench_av.py [--config configs/av_conformer.yaml] [--device cpu|cuda] [--frame-size 640x320]
                             [--batch 16] [--seconds 5] [--infer-seconds 60] [--threads N] [--repeats 1]
                             [--warmup 1] [--skip-live-train]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import torch

from av_seld import features as feats
from av_seld import timing
from av_seld.config import load_config
from av_seld.models import build_model
from av_seld.training.inference import predict_clip
from av_seld.training.run import build_loss_fn, model_params
from av_seld.utils.sizes import SizeAction, SizeHelpFormatter

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn, repeats: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed run: the machine is shared


class PeakMemory:
    """Peak memory of a ``with`` block in bytes (``.peak``): CUDA allocations on a CUDA device, else the resident
    set size above its value on entry, sampled from /proc/self/statm by a thread."""

    def __init__(self, device: torch.device, interval_s: float = 0.005):
        self.device, self.interval_s, self.peak = device, interval_s, 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._rss())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._max = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, self._rss()) - self._base


def bench_inference(model, extractor, args, device: torch.device, window: int) -> None:
    seconds = args.infer_seconds
    steps = int(round(seconds * timing.LABEL_FRAMES_PER_SECOND))
    height, width = args.frame_size
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(4, int(seconds * timing.SAMPLE_RATE), generator=generator)
    frames = torch.randint(0, 256, (steps, height, width, 3), dtype=torch.uint8, generator=generator)
    model.eval()
    per_minute = 60.0 / seconds
    audio_dev = audio.to(device)
    feature_s = _best_seconds(lambda: extractor(audio_dev), args.repeats, args.warmup, device)
    features = extractor(audio_dev).cpu()

    def cache_visual() -> torch.Tensor:  # as av-seld precompute-visual: every frame through YOLO once, float16
        with torch.no_grad():
            chunks = [model.visual.pooled_features(chunk.to(device).permute(0, 3, 1, 2)).half().cpu()
                      for chunk in frames.split(64)]
        return torch.cat(chunks)

    hop = max(1, window // 2)
    with PeakMemory(device) as live_mem:
        live_s = _best_seconds(lambda: predict_clip(model, features, window_frames=window, hop_frames=hop,
                                                    num_frames=steps, frames=frames), args.repeats, args.warmup,
                               device)
    cache_s = _best_seconds(cache_visual, args.repeats, 0, device)
    pooled = cache_visual()
    with PeakMemory(device) as cached_mem:
        cached_s = _best_seconds(lambda: predict_clip(model, features, window_frames=window, hop_frames=hop,
                                                      num_frames=steps, visual_features=pooled),
                                 args.repeats, args.warmup, device)
    print(f"inference, one {seconds:g} s clip, {window} label-frame windows with hop {hop} (as av-seld infer), "
          f"seconds per minute of input:")
    print(f"  {'live frames (YOLO in the loop)':44s} {live_s * per_minute:8.2f} s   peak {live_mem.peak / 2**20:7.0f} MiB")
    print(f"  {'cached visual features':44s} {cached_s * per_minute:8.2f} s   peak "
          f"{cached_mem.peak / 2**20:7.0f} MiB")
    print(f"  {'  caching them once (precompute-visual)':44s} {cache_s * per_minute:8.2f} s")
    print(f"  {'  audio features (' + extractor.kind + ')':44s} {feature_s * per_minute:8.2f} s")


def bench_training(model, config, args, device: torch.device) -> None:
    batch, seconds = args.batch, args.seconds
    steps = int(round(seconds * timing.LABEL_FRAMES_PER_SECOND))
    height, width = args.frame_size
    generator = torch.Generator().manual_seed(1)
    in_channels = model.in_channels
    features = torch.randn(batch, in_channels, steps * timing.FEATURE_FRAMES_PER_LABEL_FRAME, feats.NUM_MEL_BINS,
                           generator=generator)
    target = (torch.rand(batch, steps, 6, 4, 13, generator=generator) < 0.05).float()
    frames = torch.randint(0, 256, (batch, steps, height, width, 3), dtype=torch.uint8, generator=generator)
    pooled = torch.randn(batch, steps, model.visual.feature_dim, *model.visual.token_grid, generator=generator).half()
    valid = torch.ones(batch, steps, dtype=torch.bool)
    loss_fn, extra, forward = build_loss_fn(config, device, model)
    params = [p for p in model.parameters() if p.requires_grad] + list(extra)
    optimizer = torch.optim.AdamW(params, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    amp = device.type == "cuda" and not args.no_amp
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    model.train()

    def step(visual: dict) -> None:
        # Host -> device copy included, as the trainer's move_to: the live batch carries the frames, 16x more data.
        data = {"features": features, "target": target, "video_valid": valid, **visual}
        data = {k: v.to(device, non_blocking=True) for k, v in data.items()}
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = loss_fn(forward(model, data), data)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.optim.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()

    rows = [("cached visual features", {"visual_features": pooled})]
    if not args.skip_live_train:
        rows.append(("live frames (frozen YOLO in the step)", {"frames": frames}))
    print(f"training step (forward + loss + backward + AdamW{', AMP' if amp else ''}), batch {batch} x {seconds:g} s "
          f"({batch * steps} video frames of {height}x{width}):")
    for label, visual in rows:
        with PeakMemory(device) as memory:
            took = _best_seconds(lambda: step(visual), args.repeats, args.warmup, device)
        print(f"  {label:44s} {took:8.2f} s per step   peak {memory.peak / 2**20:7.0f} MiB   "
              f"{batch / took:6.2f} clips/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=SizeHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "av_conformer.yaml"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--frame-size", action=SizeAction, legacy_pair=True, metavar="WxH", default=None,
                        checks=dict(multiple=32, equirectangular=True),
                        help="video frame size, width first (default: the recipe's data.video_size, 640x320)")
    parser.add_argument("--batch", type=int, default=16, help="training batch size in clips (default 16)")
    parser.add_argument("--seconds", type=float, default=5.0, help="training clip length in seconds (default 5)")
    parser.add_argument("--infer-seconds", type=float, default=60.0,
                        help="length of the clip run through inference (default 60 s; results are per minute)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per row, best kept (default 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing (default 1)")
    parser.add_argument("--no-amp", action="store_true", help="on CUDA, train in float32 (the trainer uses AMP)")
    parser.add_argument("--skip-live-train", action="store_true",
                        help="leave out the live-frame training step (the slowest row on a CPU)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = load_config(args.config)
    # from here on (height, width), as the model takes it
    args.frame_size = tuple(config.data.video_size) if args.frame_size is None else args.frame_size.hw
    if config.model.name != "av_conformer":
        parser.error(f"{args.config} builds {config.model.name}, not av_conformer")
    extractor = feats.FeatureExtractor(config.data.features).to(device)
    params = model_params(config, feats.feature_spec(config.data.features).num_channels)
    params["frame_size"] = args.frame_size
    torch.manual_seed(0)
    model = build_model(config.model.name, **params).to(device)
    window = int(round(config.data.chunk_s * timing.LABEL_FRAMES_PER_SECOND))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {os.cpu_count()} cores"
    print(f"av_conformer from {Path(args.config).name}: {params['audio_model']} + {params['visual_model']} "
          f"({'frozen' if params.get('freeze_visual', True) else 'trained'}), {total / 1e6:.2f} M parameters "
          f"({trainable / 1e6:.2f} M trainable), frames {args.frame_size[1]}x{args.frame_size[0]}, "
          f"features {config.data.features}")
    print(f"torch {torch.__version__} on {device_name}, {torch.get_num_threads()} threads, best of {args.repeats} "
          f"after {args.warmup} warm-up")
    bench_inference(model, extractor, args, device, window)
    bench_training(model, config, args, device)


if __name__ == "__main__":
    main()
