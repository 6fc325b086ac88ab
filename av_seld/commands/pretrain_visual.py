"""``av-seld pretrain-visual``: self-supervised visual pre-training from 4-channel audio + 360° video (no labels)."""

from __future__ import annotations

import argparse


def cmd_pretrain_visual(args: argparse.Namespace) -> int:
    from av_seld.selfsup import PretrainConfig, pretrain_visual
    from av_seld.training.hooks import ProgressHook

    config = PretrainConfig(
        roots=list(args.dataset_roots), splits=args.split, val_splits=args.val_split, audio_format=args.format,
        model=args.model, weights=args.weights, frame_size=tuple(args.frame_size), map_grid=tuple(args.grid),
        embed_dim=args.embed_dim, freeze_backbone=args.freeze_backbone, num_bins=args.num_bins, epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        ema_decay=args.ema, seed=args.seed, num_workers=args.num_workers, log_every_steps=args.log_every,
        cache_dir=args.cache_dir)
    result = pretrain_visual(config, args.out, resume=args.resume, extra_hooks=[ProgressHook("pretrain")],
                             device=args.device)
    if result.val_loss is not None:
        print(f"validation: {-result.val_loss:.4f} nats per bin of audio-direction information (best)")
    print(f"run folder: {result.run_dir} ({result.steps} steps)")
    print(f"  --visual-init {result.best_checkpoint}")
    print(f"  YOLO weights  {result.exported_weights}  (for visual_weights / precompute-visual --weights)")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain-visual", help="self-supervised visual pre-training from multichannel audio + 360° video (no labels)",
        description="Train the YOLO visual encoder, without labels, to predict from each 360° frame where the "
                    "microphones hear sound arriving from (intensity-vector or phase-difference directions of the "
                    "time-frequency bins under a mixture model over the frame's candidate cells). Metadata CSVs are "
                    "never read. The run folder gets config.yaml, train_log.csv, tensorboard/, last.pt (--resume), "
                    "best.pt (for av-seld train --visual-init) and visual_yolo.pt (ultralytics format).")
    p.add_argument("dataset_roots", nargs="+", metavar="DATASET_ROOT")
    p.add_argument("--out", default="runs/pretrain_visual", metavar="RUN_DIR", help="run folder")
    p.add_argument("--format", choices=("foa", "mic"), default="foa")
    p.add_argument("--split", action="append", metavar="NAME", help="train on this split (repeatable; default all)")
    p.add_argument("--val-split", action="append", metavar="NAME",
                   help="held-out split for best.pt by the self-supervised loss (repeatable)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--ema", type=float, metavar="DECAY", help="keep an EMA of the weights (e.g. 0.999)")
    p.add_argument("--frame-size", type=int, nargs=2, default=[128, 256], metavar=("H", "W"),
                   help="frame height and width in pixels (multiples of 32, W = 2H; default 128 256)")
    p.add_argument("--grid", type=int, nargs=2, default=[8, 16], metavar=("ROWS", "COLS"),
                   help="cells of the candidate map (default 8 16: 22.5° cells)")
    p.add_argument("--model", default="yolo11n", help="YOLO model (yolo11n, yolov8s, ...)")
    p.add_argument("--weights", metavar="PT", help="local ultralytics .pt to start from (default: random)")
    p.add_argument("--embed-dim", type=int, default=64,
                   help="token width; equal to the AV model's audio width to initialise its token layers too")
    p.add_argument("--freeze-backbone", action="store_true", help="train only the token layers and the head")
    p.add_argument("--num-bins", type=int, default=256, help="time-frequency bins kept per 100 ms frame")
    p.add_argument("--cache-dir", metavar="DIR", help="decoded frames and audio directions (default "
                   "DATASET_ROOT/selfsup_cache)")
    p.add_argument("--num-workers", type=int, default=0, help="data loader processes")
    p.add_argument("--log-every", type=int, default=10, help="steps between train_log.csv rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from last.pt")
    p.set_defaults(func=cmd_pretrain_visual)
