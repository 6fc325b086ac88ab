"""``av-seld precompute-visual``: cache frozen YOLO features of every clip's video (see av_seld.data.visual_cache)."""

from __future__ import annotations

import argparse

from av_seld.geometry import DEFAULT_FRAME_SIZE


def _pair(text: str, *, multiple: int = 1) -> tuple[int, int]:
    """``"320x640"`` -> (320, 640); both positive multiples of ``multiple``."""
    try:
        rows, cols = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS such as 320x640, got {text!r}") from None
    if rows <= 0 or cols <= 0 or rows % multiple or cols % multiple:
        raise argparse.ArgumentTypeError(f"{text}: both sizes must be positive multiples of {multiple}")
    return rows, cols


def _frame_size(text: str) -> tuple[int, int]:
    height, width = _pair(text, multiple=32)
    if width != 2 * height:
        raise argparse.ArgumentTypeError(f"{text}: an equirectangular frame is twice as wide as it is high")
    return height, width


def cmd_precompute_visual(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.data.visual_cache import VisualCacheSpec, cache_dir, precompute_visual_features
    from av_seld.io.dataset import index_dataset

    spec = VisualCacheSpec(model=args.model, weights=args.weights, frame_size=args.size, token_grid=args.grid,
                           circular_padding=not args.no_circular, seed=args.seed)
    folder = cache_dir(spec, args.dataset_root, args.out)
    num_clips = len(index_dataset(args.dataset_root, splits=None if args.split is None else [args.split]).clips)
    counts = {"cached": 0, "exists": 0, "no-video": 0}
    frames = 0
    seconds = 0.0
    results = precompute_visual_features(args.dataset_root, spec, split=args.split, cache_root=args.out,
                                         batch_size=args.batch_size)
    for result in tqdm(results, total=num_clips, unit="clip", desc="precompute-visual"):
        counts[result.status] += 1
        frames += result.num_valid
        seconds += result.seconds
    speed = f" ({1000 * seconds / frames:.1f} ms per frame)" if frames else ""
    print(f"{counts['cached']} clips cached, {counts['exists']} already cached, {counts['no-video']} without video; "
          f"{frames} frames encoded{speed}; features in {folder}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "precompute-visual", help="cache frozen YOLO features of each clip's 360° video at the label rate",
        description="Encode the video of every clip under DATASET_ROOT at the label rate (10 fps) with a frozen YOLO "
                    "backbone + neck and save its P3-P5 maps, pooled to a token grid, as float16 .npy files in "
                    "CACHE/<tag>/<split>/<clip>.npy (CACHE defaults to DATASET_ROOT/visual_features). Resumable: "
                    "clips already cached are skipped. Never downloads anything: without --weights the encoder "
                    "has random weights (seeded by --seed).")
    p.add_argument("dataset_root", metavar="DATASET_ROOT")
    p.add_argument("--weights", metavar="PATH", help="local ultralytics .pt checkpoint of --model")
    p.add_argument("--model", default="yolo11n", help="yolo11{n,s,m} or yolov8{n,s,m} (default yolo11n)")
    p.add_argument("--size", type=_frame_size, default=DEFAULT_FRAME_SIZE, metavar="HxW",
                   help="frame size in pixels, multiples of 32 (default %dx%d)" % DEFAULT_FRAME_SIZE)
    p.add_argument("--grid", type=_pair, default=(5, 10), metavar="ROWSxCOLS",
                   help="token grid each feature map is pooled to (default 5x10)")
    p.add_argument("--split", metavar="NAME", help="only this split (default: all)")
    p.add_argument("--out", metavar="CACHE", help="cache folder (default DATASET_ROOT/visual_features)")
    p.add_argument("--no-circular", action="store_true", help="zero padding at the seam instead of circular")
    p.add_argument("--batch-size", type=int, default=16, help="frames per encoder call (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights when no --weights (default 0)")
    p.set_defaults(func=cmd_precompute_visual)
