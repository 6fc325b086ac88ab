"""Proof experiment of self-supervised visual pre-training (issue 10), on synthetic audio-visual data.

1. Synthesise FOA scenes + 360° mosaic videos (train / val / test splits; the labels are written but pre-training
   never reads them).
2. ``pretrain_visual`` on the training split: audio + video only.
3. Localisation of the held-out test frames: how often the peak cell of the visual map lies within 20° of a labelled
   direction of that frame, for the pre-trained encoder, the same network untrained, a uniformly random cell
   (chance, computed exactly), a fixed "prior" cell (the peak of the mean audio map over the training frames, no
   labels), and the audio map itself (what the visual side is taught from).
4. The audio-visual Conformer (frozen, cached visual features, as in the demo) trained twice with the same budget:
   visual encoder from random weights, or from the self-supervised run (``visual_weights`` = its exported YOLO
   layers for the cache, ``visual_init`` = its checkpoint for the token layers); SELD on the held-out test split.

    python bench/bench_selfsup.py [--out runs/bench_selfsup] [--train-clips 16] [--duration 20] ...

The README numbers: --train-clips 48 --val-clips 4 --test-clips 10 --duration 30 --av-epochs 24 --threads 2 (the
demo's data).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch

from av_seld.config import Config
from av_seld.demo import SPLITS, DemoSize, demo_config, synthesize_data
from av_seld.utils.sizes import Size, SizeAction, SizeHelpFormatter


def label_directions(root: Path, split: str, entries) -> list[dict[int, np.ndarray]]:
    """Per cached clip: {label frame: (M, 3) unit vectors of the labelled events}. Only the bench reads labels."""
    from av_seld.geometry import sph_to_cart
    from av_seld.io.labels import read_reference_csv

    out = []
    for entry in entries:
        events = read_reference_csv(root / "metadata_dev" / split / f"{entry.name.split('/')[-1]}.csv")
        per: dict[int, list] = {}
        for frame, az, el in zip(events.frame, events.azimuth_deg, events.elevation_deg):
            per.setdefault(int(frame), []).append(sph_to_cart(float(az), float(el)))
        out.append({f: np.asarray(v, dtype=np.float64) for f, v in per.items()})
    return out


@torch.no_grad()
def hit_rates(models: dict, dataset, labels, cells: torch.Tensor, prior_cell: int, threshold_deg: float = 20.0):
    """Fraction of labelled test frames whose peak cell is within ``threshold_deg`` of a labelled direction."""
    from av_seld.selfsup import audio_direction_map

    cells_np = cells.double().numpy()
    keep = [i for i, (clip, t) in enumerate(dataset.samples) if t in labels[clip]]
    near = []  # (M frames, N cells) bool: cell centre within the threshold of a label
    for i in keep:
        clip, t = dataset.samples[i]
        cosine = np.clip(labels[clip][t] @ cells_np.T, -1, 1)  # (events, N)
        near.append((np.degrees(np.arccos(cosine)) <= threshold_deg).any(0))
    near = np.stack(near)
    results = {"chance (uniformly random cell)": float(near.mean()),
               "prior (fixed peak of the mean audio map)": float(near[:, prior_cell].mean())}
    subset = torch.utils.data.Subset(dataset, keep)
    peaks = {name: [] for name in models}
    audio_peaks = []
    for batch in torch.utils.data.DataLoader(subset, batch_size=64):
        for name, model in models.items():
            peaks[name].append(model(batch["frames"]).argmax(-1))
        audio_peaks.append(audio_direction_map(batch["directions"], batch["weights"], cells).argmax(-1))
    rows = np.arange(len(near))
    for name, parts in peaks.items():
        results[name] = float(near[rows, torch.cat(parts).numpy()].mean())
    results["audio map (the teacher signal)"] = float(near[rows, torch.cat(audio_peaks).numpy()].mean())
    return results, len(keep)


def av_config(root: Path, run_root: Path, name: str, size: DemoSize, seed: int,
              visual_weights: str | None = None, visual_init: str | None = None) -> Config:
    """The demo's recipe (small audio-visual Conformer over cached frozen YOLO11n features), run ``name``, its
    visual encoder from ``visual_weights`` (YOLO layers, for the cache) and ``visual_init`` (token layers)."""
    config = demo_config(root, run_root, size, seed, visual_weights)
    params = dict(config.model.params)
    if visual_init is not None:
        params["visual_init"] = visual_init
    return dataclasses.replace(config, model=dataclasses.replace(config.model, params=params),
                               train=dataclasses.replace(config.train, name=name, device="cpu",
                                                         val_every_epochs=max(1, size.epochs // 4)))


def main() -> None:
    class Formatter(SizeHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    parser.add_argument("--out", default="runs/bench_selfsup")
    parser.add_argument("--train-clips", type=int, default=16)
    parser.add_argument("--val-clips", type=int, default=2)
    parser.add_argument("--test-clips", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per clip")
    parser.add_argument("--frame-size", action=SizeAction, legacy_pair=True, metavar="WxH", default=Size(256, 128),
                        checks=dict(multiple=32, equirectangular=True), help="width first (default %(default)s)")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--pretrain-batch", type=int, default=32)
    parser.add_argument("--av-epochs", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-av", action="store_true", help="only the localisation hit rates")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    from av_seld.config import PretrainConfig
    from av_seld.selfsup import (SelfSupDataset, SelfSupVisualModel, audio_direction_map,
                                 load_selfsup_model, prepare_cache, pretrain_visual)

    out = Path(args.out)
    root = out / "data"
    frame_size = args.frame_size.hw  # (H, W)
    counts = {"train": args.train_clips, "val": args.val_clips, "test": args.test_clips}
    size = DemoSize(train_clips=args.train_clips, val_clips=args.val_clips, test_clips=args.test_clips,
                    duration_s=args.duration, frame_size=frame_size, epochs=args.av_epochs)
    start = time.perf_counter()
    synthesize_data(root, size, args.seed, workers=1)
    print(f"data: {counts} clips of {args.duration:g} s, {frame_size[1]}x{frame_size[0]} video "
          f"({time.perf_counter() - start:.0f} s)")

    run = out / "pretrain"
    config = PretrainConfig(roots=[str(root)], splits=[SPLITS["train"]], frame_size=frame_size, embed_dim=64,
                            epochs=1000, max_steps=args.pretrain_steps, batch_size=args.pretrain_batch, lr=1e-3,
                            warmup_steps=30, seed=args.seed, log_every_steps=25)
    t0 = time.perf_counter()
    if (run / "best.pt").exists() and (run / "visual_yolo.pt").exists():
        print(f"pre-training: reusing {run}")
    else:
        result = pretrain_visual(config, run, resume=(run / "last.pt").exists())
        print(f"pre-training: {result.steps} steps of {args.pretrain_batch} frames in "
              f"{time.perf_counter() - t0:.0f} s (labels never read)")
    import csv

    with open(run / "train_log.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    print(f"  training loss (minus nats per bin of audio-direction information): first {losses[0]:.3f}, "
          f"last {losses[-1]:.3f}")

    pretrained = load_selfsup_model(run / "best.pt")
    torch.manual_seed(args.seed)
    untrained = SelfSupVisualModel(**{**config.model_params(), "weights": None}).eval()
    train_set = SelfSupDataset(prepare_cache(root, frame_size=frame_size, splits=[SPLITS["train"]]))
    cells = pretrained.cells
    mean_map = torch.zeros(len(cells))
    for batch in torch.utils.data.DataLoader(train_set, batch_size=256):
        mean_map += audio_direction_map(batch["directions"], batch["weights"], cells).sum(0)
    test_entries = prepare_cache(root, frame_size=frame_size, splits=[SPLITS["test"]])
    test_set = SelfSupDataset(test_entries)
    labels = label_directions(root, SPLITS["test"], test_entries)
    rates, frames = hit_rates({"self-supervised encoder": pretrained, "untrained encoder (same network)": untrained},
                              test_set, labels, cells, int(mean_map.argmax()))
    print(f"\nlocalisation on {frames} labelled held-out test frames ({len(test_entries)} clips): peak cell of the "
          f"{pretrained.map_grid[0]}x{pretrained.map_grid[1]} map within 20° of a labelled direction")
    for name, rate in rates.items():
        print(f"  {name:<44}{100 * rate:6.1f} %")
    if args.skip_av:
        return

    from av_seld.training.run import train

    rows = {}
    for name, weights, init in [("av_random_init", None, None),
                                ("av_selfsup_init", str(run / "visual_yolo.pt"), str(run / "best.pt"))]:
        t0 = time.perf_counter()
        cfg = av_config(root, out / "runs", name, size, args.seed, weights, init)
        result = train(cfg, resume=(out / "runs" / name / "last.pt").exists())
        rows[name] = (result.test.scores.summary(), result.steps, time.perf_counter() - t0)
    print(f"\naudio-visual Conformer, same budget ({args.av_epochs} epochs), held-out test split "
          f"({args.test_clips} clips), DCASE2023 macro:")
    print(f"  {'visual encoder init':<24}{'SELD':>7}{'ER':>8}{'F20°':>9}{'LE':>9}{'LR':>9}{'steps':>7}{'time':>7}")
    for name, (s, steps, seconds) in rows.items():
        print(f"  {name:<24}{s['SELD']:7.3f}{s['ER']:8.3f}{100 * s['F']:8.1f}%{s['LE']:8.1f}°{100 * s['LR']:8.1f}%"
              f"{steps:7d}{seconds:6.0f}s")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
