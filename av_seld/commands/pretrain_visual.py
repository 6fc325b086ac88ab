"""``av-seld pretrain-visual``: self-supervised visual pre-training from 4-channel audio + 360° video (no labels)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_pretrain_visual(args: argparse.Namespace) -> int:
    from av_seld.config import PretrainConfig, load_config
    from av_seld.selfsup import pretrain_visual
    from av_seld.training.hooks import ProgressHook
    from av_seld.utils.device import pick_device
    from av_seld.utils.text import count

    overrides = list(args.overrides)
    if args.device is not None:
        pick_device(args.device)  # a GPU this machine lacks: one error line naming --device, before any work
        overrides.append(f"device={args.device}")
    config = load_config(args.config, overrides, cls=PretrainConfig)
    run_dir = Path(config.out_dir) / config.name
    result = pretrain_visual(config, run_dir, resume=args.resume, extra_hooks=[ProgressHook("pretrain")],
                             device=config.device)
    if result.val_loss is not None:
        print(f"validation: {-result.val_loss:.4f} nats per bin of audio-direction information (best)")
    print(f"run folder: {result.run_dir} ({count(result.steps, 'step')})")
    print(f"  --visual-init {result.best_checkpoint}")
    print(f"  YOLO weights  {result.exported_weights}  (for visual_weights / precompute-visual --weights)")
    return 0


def register(sub) -> None:
    from av_seld.utils.device import add_device_argument

    p = sub.add_parser(
        "pretrain-visual", help="self-supervised visual pre-training from multichannel audio + 360° video (no labels)",
        description="Train the YOLO visual encoder, without labels, to predict from each 360° frame where the "
                    "microphones hear sound arriving from (intensity-vector or phase-difference directions of the "
                    "time-frequency bins under a mixture model over the frame's candidate cells). Metadata CSVs are "
                    "never read. The recipe (configs/pretrain_visual.yaml) holds every setting; key=value arguments "
                    "override it (e.g. roots=[data/synth] frame_size=[64,128]). The run folder (out_dir/name) gets "
                    "config.yaml, train_log.csv, tensorboard/, last.pt (--resume), best.pt (for av-seld train "
                    "--visual-init) and visual_yolo.pt (YOLO weights for --weights).")
    p.add_argument("config", metavar="CONFIG", help="recipe, e.g. configs/pretrain_visual.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe keys to override, e.g. roots=[data]")
    p.add_argument("--resume", action="store_true", help="continue the run in its run folder from last.pt")
    add_device_argument(p, default=None, what="device")
    p.set_defaults(func=cmd_pretrain_visual)
