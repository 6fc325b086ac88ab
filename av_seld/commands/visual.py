"""``av-seld precompute-visual``: cache frozen YOLO features of every clip's video (see av_seld.data.visual_cache)."""

from __future__ import annotations

import argparse

from av_seld.geometry import DEFAULT_FRAME_SIZE
from av_seld.utils.device import add_device_argument
from av_seld.utils.sizes import Size, SizeAction


def yolo_model(text: str) -> str:
    """An argparse type: ``text`` when it names a YOLO model av-seld can build, else the list of valid names."""
    from av_seld.models.visual import parse_model_name

    try:
        parse_model_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def cmd_precompute_visual(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.data.visual_cache import VisualCacheSpec, cache_dir, precompute_visual_features
    from av_seld.io.dataset import index_dataset
    from av_seld.utils.device import pick_device
    from av_seld.utils.text import count

    device = pick_device(args.device)  # a GPU this machine lacks: one error line naming --device, before any work
    spec = VisualCacheSpec(model=args.model, weights=args.weights, frame_size=args.size.hw, token_grid=args.grid.hw,
                           circular_padding=not args.no_circular, seed=args.seed)
    folder = cache_dir(spec, args.dataset_root, args.out)
    num_clips = len(index_dataset(args.dataset_root, splits=None if args.split is None else [args.split]).clips)
    counts = {"cached": 0, "exists": 0, "no-video": 0}
    frames = 0
    seconds = 0.0
    results = precompute_visual_features(args.dataset_root, spec, split=args.split, cache_root=args.out,
                                         batch_size=args.batch_size, device=str(device))
    for result in tqdm(results, total=num_clips, unit="clip", desc="precompute-visual"):
        counts[result.status] += 1
        frames += result.num_valid
        seconds += result.seconds
    speed = f" ({1000 * seconds / frames:.1f} ms per frame)" if frames else ""
    print(f"{count(counts['cached'], 'clip')} cached, {counts['exists']} already cached, {counts['no-video']} without "
          f"video; {count(frames, 'frame')} encoded{speed}; features in {folder}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "precompute-visual", help="cache frozen YOLO features of each clip's 360° video at the label rate",
        description="Encode the video of every clip under DATASET_ROOT at the label rate (10 fps) with a frozen YOLO "
                    "backbone + neck and save its P3-P5 maps, pooled to a token grid, as float16 .npy files in "
                    "CACHE/<tag>/<split>/<clip>.npy (CACHE defaults to DATASET_ROOT/visual_features). Resumable: "
                    "clips already cached are skipped. Never downloads anything: without --weights the encoder "
                    "has random weights (seeded by --seed).")
    p.add_argument("dataset_root", metavar="DATASET_ROOT", help="STARSS23-layout root with video_dev/")
    p.add_argument("--weights", metavar="PATH", help="local ultralytics .pt checkpoint of --model")
    p.add_argument("--model", default="yolo11n", type=yolo_model,
                   help="yolo11{n,s,m} or yolov8{n,s,m} (default yolo11n)")
    p.add_argument("--size", action=SizeAction, default=Size(*DEFAULT_FRAME_SIZE[::-1]), metavar="WxH",
                   checks=dict(multiple=32, equirectangular=True, legacy_hxw=True),
                   help="frame size in pixels, width first (like ffmpeg), W = 2 H, multiples of 32 "
                        "(default %(default)s)")
    p.add_argument("--grid", action=SizeAction, grid=True, default=Size(10, 5), metavar="COLSxROWS",
                   checks=dict(legacy_rows_first=True),
                   help="token grid each feature map is pooled to, columns first (default %(default)s)")
    p.add_argument("--split", metavar="NAME", help="only this split (default: all)")
    p.add_argument("--out", metavar="CACHE", help="cache folder (default DATASET_ROOT/visual_features)")
    p.add_argument("--no-circular", action="store_true", help="zero padding at the seam instead of circular")
    p.add_argument("--batch-size", type=int, default=16, help="frames per encoder call (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights when no --weights (default 0)")
    add_device_argument(p)
    p.set_defaults(func=cmd_precompute_visual)
