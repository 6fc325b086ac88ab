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
        if result.test.distance_2024 is not None:
            print(result.test.distance_2024.format_table())
    print(f"run folder: {result.run_dir} (best checkpoint {result.best_checkpoint}, {result.steps} steps)")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.training.predict import infer_folder
    from av_seld.training.run import pick_device

    device = pick_device(args.device, key="--device")
    bar = tqdm(desc="infer", unit="clip")
    written = infer_folder(args.checkpoints, args.audio, args.out, video_dir=args.video, device=device,
                           progress=lambda _: bar.update(1))
    bar.close()
    print(f"{len(written)} prediction files in {args.out}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from av_seld.training.evaluation import evaluate_split, root_clips
    from av_seld.training.predict import load_for_inference

    models = [load_for_inference(c, torch.device(args.device)) for c in args.checkpoints]
    clips, metadata = root_clips(args.dataset_root, args.split, models[0].audio_format, with_video=not args.no_video)
    out = Path(args.out) if args.out else Path(args.checkpoints[0]).parent / "eval" / args.split
    bar = tqdm(total=len(clips), desc="test", unit="clip")
    result = evaluate_split(models, clips, metadata, out, edition=args.edition, progress=lambda _: bar.update(1))
    bar.close()
    print(result.format_table())
    if result.distance_2024 is not None:
        print(result.distance_2024.format_table())
    print(f"predictions and scores in {out} (pred/, scores.json, scores.txt"
          f"{', scores_2024.json, scores_2024.txt' if result.distance_2024 is not None else ''})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from av_seld.export import export_checkpoint

    out = export_checkpoint(args.checkpoint, args.out, args.format)
    print(f"{args.format} export of {args.checkpoint}: {out} ({out.stat().st_size / 1e6:.1f} MB)")
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
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("test", help="predict a labelled split with checkpoints and score it (infer + evaluate)",
                       description="Predict every clip of a split of a STARSS23-format root exactly as av-seld infer "
                                   "does (with the clips' videos for audio-visual checkpoints), write the prediction "
                                   "CSVs and score them with the DCASE metrics as av-seld evaluate does.")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="one checkpoint, or several: an ensemble")
    p.add_argument("dataset_root", metavar="DATASET_ROOT")
    p.add_argument("--split", required=True, help="split folder name (NAME also covers NAME-*), e.g. dev-test")
    p.add_argument("--no-video", action="store_true", help="audio-visual checkpoints: predict with the video masked")
    p.add_argument("--edition", choices=("2023", "2024"), default="2023", help="DCASE metric edition (default 2023)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: CHECKPOINT's folder/eval/SPLIT)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("export", help="a checkpoint as a small inference checkpoint or a TorchScript program",
                       description="inference: the checkpoint without optimizer and resume state (for infer, the "
                                   "Python API and train.init_from). torchscript: the network traced for one window, "
                                   "taking standardised features (and cached visual features for AV models); the "
                                   "statistics, thresholds and input names are stored in its av_seld.json extra file.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--out", required=True, metavar="PATH")
    p.add_argument("--format", choices=("inference", "torchscript"), default="inference",
                   help="what to write (default inference)")
    p.set_defaults(func=cmd_export)
