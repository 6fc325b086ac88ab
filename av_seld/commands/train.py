"""``av-seld train`` and ``av-seld infer``."""

from __future__ import annotations

import argparse


def train_locked(config, **kwargs):
    """``training.run.train`` holding the run folder's lock (``OUT_DIR/.NAME.train.lock``, beside the folder): a
    second ``train`` (or ``--resume``) of the same run stops with an error naming the first one's pid instead of
    writing the same checkpoints. Under DDP only rank 0 takes it."""
    import os
    from pathlib import Path

    from av_seld.training.run import train
    from av_seld.utils.lock import output_lock

    if int(os.environ.get("RANK", "0")) != 0:  # torchrun's other ranks (the process group is not up yet)
        return train(config, **kwargs)
    name = config.train.name or "run"
    run_dir = Path(config.train.out_dir) / name
    with output_lock(Path(config.train.out_dir) / f".{name}.train.lock", f"train into {run_dir}"):
        return train(config, **kwargs)


def cmd_train(args: argparse.Namespace) -> int:
    from av_seld.config import load_config
    from av_seld.training.hooks import ProgressHook
    from av_seld.utils.device import pick_device
    from av_seld.utils.progress import progress_bars
    from av_seld.utils.text import count

    overrides = list(args.overrides)
    if args.device is not None:
        pick_device(args.device)  # a GPU this machine lacks: one error line naming --device, before any work
        overrides.append(f"train.device={args.device}")
    if args.visual_init:
        overrides.append(f"model.params.visual_init={args.visual_init}")
    config = load_config(args.config, overrides)
    with progress_bars():
        result = train_locked(config, resume=args.resume, extra_hooks=[ProgressHook()], workers=args.workers)
    if result.val_scores:
        print("validation (best checkpoint, calibrated thresholds): "
              + ", ".join(f"{k} {v:.3f}" for k, v in result.val_scores.items()))
    if result.test is not None:
        print(f"test (best checkpoint, calibrated thresholds; {result.run_dir / 'eval' / 'test'}):")
        print(result.test.format_table())
        if result.test.distance_2024 is not None:
            print(result.test.distance_2024.format_table())
    print(f"run folder: {result.run_dir} (best checkpoint {result.best_checkpoint}, {count(result.steps, 'step')})")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.training.predict import folder_clips, infer_folder
    from av_seld.utils.device import pick_device
    from av_seld.utils.text import count

    device = pick_device(args.device)
    if args.stream:
        return _infer_stream(args, device)
    with tqdm(total=len(folder_clips(args.audio, args.video)), desc="infer", unit="clip") as bar:
        written = infer_folder(args.checkpoints, args.audio, args.out, video_dir=args.video, device=device,
                               visual_stride=args.visual_stride, visual_backend=args.visual_backend,
                               tta=args.tta, progress=lambda _: bar.update(1))
    print(f"{count(len(written), 'prediction file')} in {args.out}")
    return 0


def _infer_stream(args: argparse.Namespace, device) -> int:
    """``infer --stream``: each clip fed in chunks through the streaming predictor; the same CSVs as offline."""
    import time
    from pathlib import Path

    from av_seld.postprocess import write_predictions
    from av_seld.training.predict import check_inputs, ensemble_thresholds, folder_clips, load_for_inference
    from av_seld.training.streaming import stream_clip
    from av_seld.utils.text import count

    models = [load_for_inference(c, device, args.visual_backend, args.tta) for c in args.checkpoints]
    check_inputs(models, args.audio, args.video)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = folder_clips(args.audio, args.video)
    for clip in clips:
        start = time.perf_counter()
        got = stream_clip(models, clip.audio, clip.video, chunk_s=args.chunk_s, visual_stride=args.visual_stride)
        took = time.perf_counter() - start
        write_predictions(out / f"{clip.name}.csv", got.output, ensemble_thresholds(models), models[0].merge_deg)
        seconds = len(got.output) / 10
        print(f"{clip.name}: {len(got.output)} label frames streamed in {got.num_chunks} chunks of {args.chunk_s:g} s, "
              f"largest latency {got.max_latency_s:.1f} s of input, {took / max(seconds, 1e-9):.3f} s per second")
    print(f"{count(len(clips), 'prediction file')} in {args.out}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from av_seld.training.evaluation import evaluate_split, root_clips
    from av_seld.training.predict import load_for_inference
    from av_seld.utils.device import pick_device

    device = pick_device(args.device)
    models = [load_for_inference(c, device, tta=args.tta) for c in args.checkpoints]
    clips, metadata = root_clips(args.dataset_root, args.split, models[0].audio_format, with_video=not args.no_video)
    out = Path(args.out) if args.out else Path(args.checkpoints[0]).parent / "eval" / args.split
    with tqdm(total=len(clips), desc="test", unit="clip") as bar:
        result = evaluate_split(models, clips, metadata, out, edition=args.edition, progress=lambda _: bar.update(1))
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
    from av_seld.export import FORMATS
    from av_seld.training.predict import VISUAL_BACKENDS, VISUAL_STRIDE
    from av_seld.utils.device import add_device_argument

    p = sub.add_parser("train", help="train a model from a recipe (configs/*.yaml)",
                       description="Train the model of a recipe; key=value arguments override recipe keys "
                                   "(e.g. optim.lr=3e-4 data.roots=[data/synth]).")
    p.add_argument("config", metavar="CONFIG", help="recipe, e.g. configs/debug_tiny.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe keys to override, e.g. optim.lr=3e-4")
    p.add_argument("--resume", action="store_true", help="continue the run in the run folder from last.pt")
    p.add_argument("--workers", type=int, default=1, help="processes for filling feature caches")
    add_device_argument(p, default=None, what="train.device")
    p.add_argument("--visual-init", metavar="PATH", help="initialise the visual encoder of an audio-visual model from "
                   "a pretrain-visual checkpoint (same as model.params.visual_init=PATH)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("infer", help="prediction CSVs for a folder of clips from one or several checkpoints")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="one checkpoint, or several: an ensemble")
    p.add_argument("--audio", required=True, metavar="DIR", help="folder of 4-channel 24 kHz wav files")
    p.add_argument("--video", metavar="DIR", help="folder of 360° mp4 files of the same names (audio-visual models)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the prediction CSVs (one per wav)")
    add_device_argument(p)
    p.add_argument("--visual-stride", type=int, default=VISUAL_STRIDE, metavar="N",
                   help="run the visual encoder on every N-th 100 ms label frame; the others read the nearest "
                        f"(default {VISUAL_STRIDE})")
    p.add_argument("--visual-backend", choices=VISUAL_BACKENDS, default="torch",
                   help="what runs the frozen YOLO trunk: torch, or onnx (exported at start, run by onnxruntime on "
                        "the CPU; the same numbers to float rounding) (default torch)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation: also predict each clip rotated by ±90° and 180° in azimuth and "
                        "average the outputs rotated back (4× the audio model's work; default: what the checkpoint's "
                        "recipe says, eval.tta)")
    p.add_argument("--stream", action="store_true", help="feed each clip in chunks through the streaming predictor "
                   "(events of each label frame as soon as it is final; the same CSVs)")
    p.add_argument("--chunk-s", type=float, default=0.5, metavar="S", help="with --stream: chunk length (default 0.5)")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("test", help="predict a labelled split with checkpoints and score it (infer + evaluate)",
                       description="Predict every clip of a split of a STARSS23-format root exactly as av-seld infer "
                                   "does (with the clips' videos for audio-visual checkpoints), write the prediction "
                                   "CSVs and score them with the DCASE metrics as av-seld evaluate does.")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="one checkpoint, or several: an ensemble")
    p.add_argument("dataset_root", metavar="DATASET_ROOT", help="STARSS23-layout root holding the split")
    p.add_argument("--split", required=True, help="split folder name (NAME also covers NAME-*), e.g. dev-test")
    p.add_argument("--no-video", action="store_true", help="audio-visual checkpoints: predict with the video masked")
    p.add_argument("--edition", choices=("2023", "2024"), default="2023", help="DCASE metric edition (default 2023)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time rotations on or off, as infer --tta (default: the checkpoint's eval.tta)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: CHECKPOINT's folder/eval/SPLIT)")
    add_device_argument(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("export", help="a checkpoint as a small inference checkpoint, a TorchScript program or an "
                                      "ONNX model",
                       description="inference: the checkpoint without optimizer and resume state (for infer, the "
                                   "Python API and train.init_from). torchscript: the network traced for one window, "
                                   "taking standardised features (and cached visual features for AV models); the "
                                   "statistics, thresholds and input names are stored in its av_seld.json extra file. "
                                   "onnx: the same network for onnxruntime, any batch and length, the same JSON in "
                                   "its metadata_props under av_seld.json.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint of av-seld train (best.pt, last.pt)")
    p.add_argument("--out", required=True, metavar="PATH", help="file to write")
    p.add_argument("--format", choices=FORMATS, default="inference",
                   help="what to write (default inference)")
    p.set_defaults(func=cmd_export)
