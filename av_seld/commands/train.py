"""``av-seld train`` and ``av-seld infer``."""

from __future__ import annotations

import argparse


def cmd_train(args: argparse.Namespace) -> int:
    from av_seld.config import load_config
    from av_seld.training.hooks import ProgressHook
    from av_seld.training.run import train

    overrides = list(args.overrides)
    if args.visual_init:
        overrides.append(f"model.params.visual_init={args.visual_init}")
    config = load_config(args.config, overrides)
    result = train(config, resume=args.resume, extra_hooks=[ProgressHook()], workers=args.workers)
    if result.val_scores:
        print("validation (best checkpoint, calibrated thresholds): "
              + ", ".join(f"{k} {v:.3f}" for k, v in result.val_scores.items()))
    if result.test is not None:
        print(result.test.format_table())
    print(f"run folder: {result.run_dir} (best checkpoint {result.best_checkpoint}, {result.steps} steps)")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.training.predict import infer_folder

    bar = tqdm(desc="infer", unit="clip")
    written = infer_folder(args.checkpoints, args.audio, args.out, video_dir=args.video, device=args.device,
                           progress=lambda _: bar.update(1))
    bar.close()
    print(f"{len(written)} prediction files in {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a recipe (configs/*.yaml)",
                       description="Train the model of a recipe; key=value arguments override recipe keys "
                                   "(e.g. optim.lr=3e-4 data.roots=[data/synth]).")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder from last.pt")
    p.add_argument("--workers", type=int, default=1, help="processes for filling feature caches")
    p.add_argument("--visual-init", metavar="PATH", help="initialise the visual encoder of an audio-visual model from "
                   "a pretrain-visual checkpoint (same as model.params.visual_init=PATH)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("infer", help="prediction CSVs for a folder of clips from one or several checkpoints")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    p.add_argument("--audio", required=True, metavar="DIR", help="folder of 4-channel 24 kHz wav files")
    p.add_argument("--video", metavar="DIR", help="folder of 360° mp4 files of the same names (audio-visual models)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_infer)
