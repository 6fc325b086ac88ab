#!/usr/bin/env python
"""Where the time of ``av-seld infer`` with live video goes, and what each speed lever buys.

One generated clip (``--seconds`` of 4-channel noise and a 360° video at ``--source-size`` / ``--fps`` with a moving
pattern, written with av-seld's VideoWriter) goes through the stages of
:func:`av_seld.training.predict.predict_audio`, each timed alone: decoding the label-rate frames at the encoder's
size, the frozen YOLO encoder, the audio features, the windowed model over cached visual features, and decoding the
output to events and a CSV. Then the whole path (``predict_audio`` + events + CSV, what ``av-seld infer`` runs per
clip) at each ``--strides`` value, and the levers measured beside it: decoding at the source size and resizing with
OpenCV instead of in the decoder, frames per YOLO call, channels-last and bfloat16 autocast for YOLO, and YOLO run by
onnxruntime. ``--visual-backend onnx`` runs the stage and whole-path rows with the trunk in onnxruntime (as ``av-seld
infer --visual-backend onnx``).

Times are CPU seconds of this process (all its threads) per minute of input, the best of ``--repeats``: on a
machine shared with other jobs, wall time measures the other jobs, CPU time much less so. The real-time factor is
CPU seconds per second of input (a wall-clock factor on N free cores can be up to N times lower).
The model is the recipe's, built with random weights as ``av-seld train`` builds it (speed does not depend on
them), or ``--checkpoint``'s.

    python bench/bench_realtime.py [--config configs/av_conformer.yaml | --checkpoint PT] [--seconds 30]
        [--source-size 640x320] [--fps 30] [--strides 1,5,10] [--threads 2] [--repeats 2] [--skip-levers]
        [--visual-backend torch|onnx]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from av_seld import timing  # noqa: E402
from av_seld.config import load_config  # noqa: E402
from av_seld.data.pipeline import FeatureFrontEnd  # noqa: E402
from av_seld.features import feature_spec  # noqa: E402
from av_seld.io.labels import write_prediction_csv  # noqa: E402
from av_seld.io.video import VideoReader, VideoWriter  # noqa: E402
from av_seld.models import build_model  # noqa: E402
from av_seld.postprocess import multi_accdoa_to_events  # noqa: E402
from av_seld.training.inference import pool_frames, predict_clip, sampled_label_frames  # noqa: E402
from av_seld.training.predict import (HOP_FRACTION, VISUAL_BACKENDS, LoadedModel, load_for_inference,  # noqa: E402
                                      predict_audio, read_clip_frames, with_visual_backend)
from av_seld.utils.sizes import SizeAction, SizeHelpFormatter  # noqa: E402


def cpu_seconds(fn, repeats: int, device: torch.device) -> tuple[float, float, object]:
    """(cost, wall seconds, result) of ``fn()``, the least costly of ``repeats`` runs; the cost is CPU seconds on
    the CPU, wall seconds (after synchronising) on CUDA."""
    best = (float("inf"), float("inf"), None)
    for _ in range(max(1, repeats)):
        cpu, wall = time.process_time(), time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu = wall if device.type == "cuda" else cpu
        if cpu < best[0]:
            best = (cpu, wall, result)
    return best


def write_clip(folder: Path, seconds: float, size: tuple[int, int], fps: float) -> tuple[torch.Tensor, Path]:
    """Noise audio (4, N) and an mp4 of ``size`` (W, H) with a bright block moving over a textured panorama."""
    rng = np.random.default_rng(0)
    audio = torch.from_numpy((0.05 * rng.standard_normal((4, int(seconds * timing.SAMPLE_RATE)))).astype(np.float32))
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) % 64) * 4], -1).astype(np.uint8)
    path = folder / "clip.mp4"
    with VideoWriter(path, fps, (width, height)) as writer:
        for k in range(int(round(seconds * fps))):
            frame = base.copy()
            u = int(k * width / (fps * 6)) % width  # one turn in 6 s
            frame[height // 3:height // 2, u:u + width // 16] = (250, 220, 40)
            writer.write(frame)
    return audio, path


def load_model(args, device: torch.device) -> LoadedModel:
    if args.checkpoint:
        return load_for_inference(args.checkpoint, device)
    from av_seld.training.run import model_params

    config = load_config(args.config)
    params = model_params(config, feature_spec(config.data.features).num_channels)
    torch.manual_seed(0)
    model = build_model(config.model.name, **params).to(device).eval()
    if not getattr(model, "uses_video", False):
        raise SystemExit(f"{args.config} builds {config.model.name}, an audio-only model")
    window = int(round(config.data.chunk_s * timing.LABEL_FRAMES_PER_SECOND))
    return LoadedModel(Path(args.config), model, FeatureFrontEnd(config.data.features).to(device), config.data.format,
                       window,
                       np.full(13, 0.5), 20.0, tuple(model.visual.frame_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=SizeHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "av_conformer.yaml"))
    parser.add_argument("--checkpoint", help="an audio-visual checkpoint instead of the recipe's random weights")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30; results per minute)")
    parser.add_argument("--source-size", action=SizeAction, metavar="WxH", default=None,
                        checks=dict(equirectangular=True), help="video file size, width first (default: the model's)")
    parser.add_argument("--fps", type=float, default=30.0, help="video file frame rate (default 30)")
    parser.add_argument("--strides", default="1,5,10", help="visual strides of the whole-path rows (default 1,5,10)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N); on CUDA times are wall seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per row, least CPU kept (default 2)")
    parser.add_argument("--skip-levers", action="store_true", help="only the stages and the whole-path rows")
    parser.add_argument("--visual-backend", choices=VISUAL_BACKENDS, default="torch",
                        help="what runs YOLO in the stage and whole-path rows (default torch)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    m = load_model(args, device)
    cpu = time.process_time()
    m = with_visual_backend(m, args.visual_backend)
    export_cpu = time.process_time() - cpu
    height, width = m.frame_size
    source = (width, height) if args.source_size is None else (args.source_size.width, args.source_size.height)
    per_minute = 60.0 / args.seconds
    total = timing.num_label_frames(int(args.seconds * timing.SAMPLE_RATE))
    hop = max(1, int(round(m.window_frames * HOP_FRACTION)))
    visual = m.model.visual
    print(f"{m.path.name}: {sum(p.numel() for p in m.model.parameters()) / 1e6:.2f} M parameters, frames "
          f"{width}x{height}, token grid {visual.token_grid[1]}x{visual.token_grid[0]}, windows of "
          f"{m.window_frames} label frames, hop {hop}")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} cores"
    print(f"torch {torch.__version__} on {where}, {torch.get_num_threads()} threads; clip "
          f"{args.seconds:g} s, video {source[0]}x{source[1]} at {args.fps:g} fps; "
          f"{'wall' if device.type == 'cuda' else 'CPU'} s per minute of input (least of {args.repeats}), wall beside")
    if m.visual_trunk is not None:
        print(f"visual backend {args.visual_backend}: the trunk's ONNX export took {export_cpu:.1f} CPU s (once per "
              "model load)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        audio, video = write_clip(folder, args.seconds, source, args.fps)
        rows: list[tuple[str, float, float]] = []

        def row(label: str, fn, repeats: int = args.repeats):
            cpu, wall, result = cpu_seconds(fn, repeats, device)
            rows.append((label, cpu * per_minute, wall * per_minute))
            print(f"  {label:58s} {cpu * per_minute:7.2f} s  ({wall * per_minute:6.2f} s wall)", flush=True)
            return result

        def decode_and_events(stride: int, spread: str = "nearest") -> None:
            out = predict_audio([m], audio, video=video, visual_stride=stride, visual_spread=spread)
            events = multi_accdoa_to_events(out, m.thresholds, m.merge_deg)
            write_prediction_csv(folder / "pred.csv", events)

        print("stages at visual stride 1 (today's infer):")
        frames, valid = row("decode label-rate frames at the encoder's size",
                            lambda: read_clip_frames(video, total, m.frame_size, 1))
        pooled = row(f"visual encoder (frozen YOLO in {args.visual_backend}, every label frame)",
                     lambda: pool_frames(visual, frames, valid, m.visual_trunk))
        features = row(f"audio features ({m.extractor.kind})", lambda: m.extractor(audio.to(device)).cpu())
        output = row("model over the windows (cached visual features)",
                     lambda: predict_clip(m.model, features, window_frames=m.window_frames, hop_frames=hop,
                                          num_frames=total, visual_features=pooled, video_valid=valid))
        row("events + prediction CSV", lambda: write_prediction_csv(
            folder / "pred.csv", multi_accdoa_to_events(output, m.thresholds, m.merge_deg)))
        parts = sum(r[1] for r in rows)
        print(f"  {'sum of the stages':58s} {parts:7.2f} s   shares: " + ", ".join(
            f"{label.split(' (')[0].split(' at ')[0]} {100 * cpu / parts:.0f} %" for label, cpu, _ in rows))

        print("whole path (predict_audio + events + CSV, as av-seld infer per clip):")
        base = None
        for stride in [int(s) for s in args.strides.split(",")]:
            label = f"visual stride {stride} ({10 / stride:g} visual frames/s)"
            before = len(rows)
            row(label, lambda: decode_and_events(stride))
            cpu = rows[before][1]
            base = cpu if base is None else base
            print(f"  {'':58s} real-time factor {cpu / 60:.3f}, {base / cpu:.1f}x faster than the first row")
        if args.skip_levers or device.type == "cuda":
            return

        print("levers, each against its own baseline:")
        sampled = sampled_label_frames(total, 1)
        row("decode: decord resizes (what infer does)",
            lambda: VideoReader(video, width, height).read_label_frames(sampled))
        row("decode: source size, then OpenCV resize",
            lambda: VideoReader(video, width, height, resize="opencv").read_label_frames(sampled))
        row("decode: every 5th label frame only", lambda: read_clip_frames(video, total, m.frame_size, 5))
        chunk = visual.frame_chunk
        for frames_per_call in (1, chunk, 64):
            visual.frame_chunk = frames_per_call
            row(f"YOLO, {frames_per_call} frames per call", lambda: pool_frames(visual, frames, valid), 1)
        visual.frame_chunk = chunk
        reference = pool_frames(visual, frames[:16], valid[:16])
        visual.layers.to(memory_format=torch.channels_last)
        row("YOLO, channels-last weights", lambda: pool_frames(visual, frames, valid), 1)
        visual.layers.to(memory_format=torch.contiguous_format)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            row("YOLO, bfloat16 autocast", lambda: pool_frames(visual, frames, valid), 1)
            bf16 = pool_frames(visual, frames[:16], valid[:16])
        deviation = float((bf16 - reference).norm() / reference.norm())
        print(f"  {'':58s} bfloat16 pooled features deviate by {100 * deviation:.2f} % (relative L2)")
        with contextlib.suppress(ImportError):
            import onnxruntime  # noqa: F401

            trunk = with_visual_backend(m, "onnx").visual_trunk
            row("YOLO, onnxruntime (the trunk exported to ONNX)", lambda: pool_frames(visual, frames, valid, trunk), 1)
            got = pool_frames(visual, frames[:16], valid[:16], trunk)
            deviation = float((got - reference).norm() / reference.norm())
            print(f"  {'':58s} onnxruntime pooled features deviate by {100 * deviation:.5f} % (relative L2)")


if __name__ == "__main__":
    main()
