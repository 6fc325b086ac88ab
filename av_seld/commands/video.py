"""``av-seld synth-video`` and ``av-seld extract-crops``: synthetic 360° video that matches the labels, and the crop
bank it can draw objects from."""

from __future__ import annotations

import argparse


def cmd_synth_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from augment.mosaic import MosaicConfig
    from augment.visibility import VisibilityConfig
    from av_seld.data.synth_video import metadata_files, parse_size, synthesize_video_dataset
    from av_seld.utils.text import count

    from av_seld.errors import InputError

    try:
        width, height = parse_size(args.size)
    except ValueError as err:
        raise InputError(None, f"--size: {err}") from None
    try:
        visibility = VisibilityConfig(invisible_fraction=args.invisible, silent_per_minute=args.silent_objects)
    except ValueError as err:
        raise InputError(None, f"--invisible / --silent-objects: {err}") from None
    total = len(metadata_files(args.dataset_root, args.split))
    results = synthesize_video_dataset(args.dataset_root, split=args.split, crops=args.crops,
                                       background=args.background, width=width, height=height, fps=args.fps,
                                       seed=args.seed, workers=args.workers, visibility=visibility,
                                       config=MosaicConfig(projection=args.projection))
    made = skipped = frames = 0
    wall_s = 0.0
    for result in tqdm(results, total=total, unit="clip", desc="synth-video"):
        skipped += result.skipped
        if not result.skipped:
            made += 1
            frames += result.num_frames
            wall_s += result.wall_seconds
    speed = f", {frames / wall_s:.1f} frames per second per worker" if wall_s else ""
    print(f"{count(made, 'video')} written, {skipped} already complete, in "
          f"{args.dataset_root}/video_dev/{args.split} ({width}x{height}, {args.fps:g} fps){speed}")
    return 0


def cmd_extract_crops(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.data.crop_extract import crop_clips, extract_crops
    from av_seld.utils.text import count

    crops = written = clips = 0
    results = extract_crops(args.dataset_root, args.out_dir, fov_deg=args.fov, size=args.size, split=args.split,
                            projection=args.projection)
    for result in tqdm(results, total=len(crop_clips(args.dataset_root, args.split)), unit="clip",
                       desc="extract-crops"):
        clips += 1
        crops += result.num_crops
        written += result.num_written
    print(f"{count(crops, 'crop')} from {count(clips, 'clip')} in {args.out_dir} ({written} new), index in "
          f"{args.out_dir}/index.csv")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth-video", help="synthesize 360° equirectangular video that matches a dataset's labels",
        description="For each DATASET_ROOT/metadata_dev/SPLIT/*.csv, write DATASET_ROOT/video_dev/SPLIT/<clip>.mp4: "
                    "every active event is a crop of its class pasted at its labelled direction over a background. "
                    "As long as the clip (its wav when present, else its labels). Resumable: existing videos are kept.")
    p.add_argument("dataset_root", metavar="DATASET_ROOT", help="STARSS23-layout root with metadata_dev/SPLIT/")
    p.add_argument("--split", required=True, help="split folder name, e.g. dev-train-synth")
    p.add_argument("--crops", default="builtin", metavar="builtin|DIR",
                   help="object images per class, DIR/<class name or index>/*.png|jpg (e.g. from extract-crops); "
                        "default: built-in procedural sprites")
    p.add_argument("--background", metavar="PANORAMA_VIDEO_OR_DATASET",
                   help="an equirectangular panorama or 360° video, a folder of them, or a STARSS-style dataset root "
                        "(one drawn per clip); a video with labels (<name>.csv beside it, or the root's metadata_dev) "
                        "gives only frames with no event active, and their count is logged; default: a procedural "
                        "room")
    p.add_argument("--size", default="1920x960", metavar="WxH", help="frame size, width first (like ffmpeg), W = 2 H "
                   "(default 1920x960; 640x320 for quick runs)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    p.add_argument("--seed", type=int, default=0, help="each video depends only on the seed and its clip (default 0)")
    p.add_argument("--silent-objects", type=float, default=0.0, metavar="PER_MINUTE",
                   help="realistic variant: objects of random classes drawn still at random directions for 2-10 s, "
                        "never labelled (they make no sound); mean number per minute of clip (default 0)")
    p.add_argument("--invisible", type=float, default=0.0, metavar="FRACTION",
                   help="realistic variant: share of sounding events not drawn (out of sight; still labelled; "
                        "default 0)")
    p.add_argument("--projection", choices=("perspective", "cubemap"), default="perspective",
                   help="how a crop is laid onto the sphere: perspective (one warp, default) or cubemap (the crop on a "
                        "cube face, py360convert's c2e, turned onto the label direction; softer and slower)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.set_defaults(func=cmd_synth_video)

    p = subparsers.add_parser(
        "extract-crops", help="extract perspective crops of steady, isolated events from 360° video",
        description="For clips of DATASET_ROOT with video and metadata, write a perspective crop centred on each "
                    "steady event's direction to OUT_DIR/<class>/*.png, and OUT_DIR/index.csv. "
                    "synth-video --crops OUT_DIR uses them.")
    p.add_argument("dataset_root", metavar="DATASET_ROOT", help="STARSS23-layout root with video_dev/ and "
                   "metadata_dev/")
    p.add_argument("out_dir", metavar="OUT_DIR", help="crop bank to write (OUT_DIR/<class>/*.png, index.csv)")
    p.add_argument("--fov", type=float, default=60.0, help="horizontal field of view in degrees (default 60)")
    p.add_argument("--size", type=int, default=224, help="crop width and height in pixels (default 224)")
    p.add_argument("--split", help="only this split (default: all)")
    p.add_argument("--projection", choices=("perspective", "cubemap"), default="perspective",
                   help="perspective: a view centred on the event (default); cubemap: the window of the frame's "
                        "cube face (py360convert's e2c) around it, or a view turned onto it (e2p) where the face's "
                        "edge would cut it or the face is the top or bottom one")
    p.set_defaults(func=cmd_extract_crops)
