#!/usr/bin/env python
"""Speed of the YOLO visual encoder and of the AV fusion model on this CPU.

1. ms per 320×640 frame of the YOLO backbone + neck (P3–P5 maps) for each size, batch 8, frozen, inference mode;
2. the AV model (``av_conformer``: default ``resnet_conformer`` audio branch + frozen yolo11n visual encoder) on
   ``--seconds`` s clips: inference seconds per minute of audio-visual input with live frames (batch
   ``--live-batch``), with cached pooled features and with the video masked (batch ``--batch``), and the training
   step time (forward + backward + AdamW) with cached features and with live frames.

Timings are the best of ``--repeats`` runs after one warm-up run (other jobs on a shared machine only add time);
torch uses all its threads.
"""

from __future__ import annotations

import argparse
import time

import torch

from av_seld.models import build_model
from av_seld.models.visual import YoloVisualEncoder


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed run: the machine is shared


def bench_encoders(models: list[str], batch: int, repeats: int) -> None:
    frames = torch.rand(batch, 3, 320, 640)
    for name in models:
        encoder = YoloVisualEncoder(model=name).eval()
        with torch.inference_mode():
            took = _best_seconds(lambda: encoder.feature_maps(frames), repeats)
        print(f"{name:<8} backbone + neck, 320x640, batch {batch}: {1000 * took / batch:6.1f} ms per frame")


def bench_fusion(batch: int, live_batch: int, seconds: int, repeats: int) -> None:
    steps = 10 * seconds  # label frames
    torch.manual_seed(0)
    model = build_model("av_conformer", audio_kwargs={"in_channels": 7})

    def inputs(clips: int):
        features = torch.randn(clips, 7, 5 * steps, 64)
        frames = torch.randint(0, 256, (clips, steps, 3, 320, 640), dtype=torch.uint8)  # as the video reader gives
        return features, frames

    features, _ = inputs(batch)
    live_features, frames = inputs(live_batch)
    pooled = torch.randn(batch, steps, model.visual.feature_dim, *model.visual.token_grid).half()
    model.eval()
    with torch.inference_mode():
        live = _best_seconds(lambda: model(live_features, frames=frames), repeats)
        cached = _best_seconds(lambda: model(features, visual_features=pooled), repeats)
        masked = _best_seconds(lambda: model(features), repeats)
    per_minute = lambda took, clips: took / (clips * seconds / 60)  # noqa: E731
    print(f"av_conformer inference, {seconds} s clips: live frames {per_minute(live, live_batch):.2f} s "
          f"(batch {live_batch}), cached features {per_minute(cached, batch):.2f} s, video masked "
          f"{per_minute(masked, batch):.2f} s (batch {batch}) per minute of input")

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(features, **visual):
        optimizer.zero_grad(set_to_none=True)
        out = model(features, **visual)
        loss = torch.nn.functional.mse_loss(out, torch.zeros_like(out))
        loss.backward()
        optimizer.step()

    cached_step = _best_seconds(lambda: step(features, visual_features=pooled), repeats)
    live_step = _best_seconds(lambda: step(live_features, frames=frames), repeats)
    print(f"av_conformer training step, {seconds} s clips: batch {batch} with cached features {cached_step:.2f} s; "
          f"batch {live_batch} with live frames (frozen yolo11n) {live_step:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["yolo11n", "yolo11s", "yolov8n", "yolov8s"])
    parser.add_argument("--frame-batch", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16, help="AV model batch size (clips), cached features")
    parser.add_argument("--live-batch", type=int, default=2, help="AV model batch size (clips), live frames")
    parser.add_argument("--seconds", type=int, default=5, help="AV model clip length in seconds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_encoders(args.models, args.frame_batch, args.repeats)
    bench_fusion(args.batch, args.live_batch, args.seconds, args.repeats)


if __name__ == "__main__":
    main()
