"""``av-seld extract-features``: cache the input features of every clip of a dataset and their training statistics."""

from __future__ import annotations

import argparse

from av_seld.arrays import FEATURE_SPECS

FEATURE_KINDS = tuple(FEATURE_SPECS)


def cmd_extract_features(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.data.feature_cache import DEFAULT_TRAIN_SPLITS, prepare_feature_cache
    from av_seld.utils.text import count

    job = prepare_feature_cache(args.dataset_root, audio_format=args.format, kind=args.kind, cache_dir=args.out,
                                train_splits=args.train_split or DEFAULT_TRAIN_SPLITS)
    computed = skipped = 0
    with tqdm(total=len(job.clips), unit="clip", desc=f"extract-features {job.kind}") as bar:
        def progress(result) -> None:
            nonlocal computed, skipped
            skipped += result.skipped
            computed += not result.skipped
            bar.update()

        job.run(workers=args.workers, progress=progress)  # logs where the statistics are, and of which splits
    print(f"{count(computed, 'clip')} computed, {skipped} already cached, in {job.cache_dir}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "extract-features", help="cache input features per clip and their standardisation statistics",
        description="Compute the features of every FOA or MIC clip of DATASET_ROOT (STARSS23 layout) into "
                    "OUT/<set>/<split>/<clip>.npy (float32, channels x frames x bins), and the per channel x bin "
                    "mean and std over the training split(s) into OUT/stats.npz. Resumable: cached clips are "
                    "skipped.")
    p.add_argument("dataset_root", metavar="DATASET_ROOT", help="STARSS23-layout root with foa_dev/ or mic_dev/")
    p.add_argument("--format", choices=("foa", "mic"), required=True, help="which audio to read")
    p.add_argument("--kind", choices=FEATURE_KINDS,
                   help="feature kind (default: foa_logmel_iv for FOA, mic_logmel_gcc for MIC)")
    p.add_argument("--out", metavar="DIR", help="cache folder (default: DATASET_ROOT/features/KIND)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--train-split", action="append", metavar="NAME",
                   help="split(s) the statistics are computed over; NAME also covers NAME-* splits "
                        "(repeatable; default: dev-train)")
    p.set_defaults(func=cmd_extract_features)
