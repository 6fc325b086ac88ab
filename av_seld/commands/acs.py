"""``av-seld acs``: offline channel-swap expansion of a STARSS23-format dataset (see av_seld.data.acs_expand)."""

from __future__ import annotations

import argparse


def cmd_acs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.data.acs_expand import clips_to_expand, expand_dataset, parse_transforms
    from av_seld.utils.text import count

    parse_transforms(args.transforms, args.format)  # a bad --transforms fails before any indexing
    total = len(clips_to_expand(args.dataset_root, args.format, args.split))
    written = skipped = with_video = 0
    results = expand_dataset(args.dataset_root, args.out_root, format=args.format, transforms=args.transforms,
                             split=args.split, seed=args.seed, video=not args.no_video, workers=args.workers)
    for result in tqdm(results, total=total, unit="clip", desc="acs"):
        written += result.written
        skipped += result.skipped
        with_video += result.has_video
    print(f"{count(written, 'transformed clip')} written, {skipped} already complete, from "
          f"{count(total, args.format.upper() + ' clip')} ({with_video} with video) in {args.out_root}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "acs", help="write every 360° channel-swapped copy of a dataset's clips (audio, labels, video)",
        description="Write a new STARSS23-format dataset in OUT_ROOT holding each clip of DATASET_ROOT under every "
                    "chosen channel-swap transform: wav, csv and (where present) mp4, named <clip>_acsNN with NN the "
                    "transform's map number (00 = identity; FOA 00-15, MIC 00, 04, 05, 06, 09, 10, 11, 15). "
                    "Resumable: finished files are skipped.")
    p.add_argument("dataset_root", metavar="DATASET_ROOT", help="STARSS23-layout root to read")
    p.add_argument("out_root", metavar="OUT_ROOT", help="dataset root to write the transformed clips to")
    p.add_argument("--transforms", default="all", metavar="all|N|I,J,...",
                   help="all transforms (default; 16 FOA, 8 MIC), N per clip drawn at random (seeded), or a comma "
                        "list of transform indices of the format (FOA 0-15, MIC 0-7)")
    p.add_argument("--format", choices=("foa", "mic"), default="foa", help="audio format to transform (default foa)")
    p.add_argument("--split", metavar="NAME", help="only this split (default: every split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-clip draw for --transforms N")
    p.add_argument("--no-video", action="store_true", help="leave the mp4 files out")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.set_defaults(func=cmd_acs)
