"""``av-seld download``: fetch STARSS23 or the TAU spatial room impulse responses from Zenodo and unpack them
(see av_seld.io.download)."""

from __future__ import annotations

import argparse
import os

# Replaces https://zenodo.org for every request (a mirror, or the local server of the tests).
BASE_URL_ENV = "AV_SELD_ZENODO_URL"


def cmd_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.errors import InputError
    from av_seld.io.download import DATASETS, ZENODO_URL, download_dataset

    dataset = DATASETS[args.dataset]
    if args.parts is None:
        parts = dataset.default_parts
    else:
        parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
        if not parts:
            raise InputError(None, "--parts is empty")
    bars: dict[str, tqdm] = {}

    def progress(name: str, done: int, total: int | None) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                                    leave=False)
        bar.update(done - bar.n)

    try:
        results = download_dataset(args.dataset, args.root, parts,
                                   base_url=os.environ.get(BASE_URL_ENV) or ZENODO_URL,
                                   remove_archives=args.remove_archives, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    for result in results:
        print(f"{result.folder}: {'already there' if result.skipped else 'downloaded, checked and unpacked'}")
    return 0


def register(subparsers) -> None:
    from av_seld.io.download import DATASETS

    starss = DATASETS["starss23"]
    p = subparsers.add_parser(
        "download", help="download STARSS23 or the TAU room impulse responses from Zenodo (needs network)",
        description="Fetch the official archives of a dataset from its Zenodo record into ROOT/archives/ (resumable: "
                    "a rerun continues a broken download), check their sizes and MD5 checksums, and unpack them: "
                    "starss23 into ROOT/{foa_dev,mic_dev,metadata_dev,video_dev}/ with the dev-train-sony, "
                    "dev-train-tau, dev-test-sony and dev-test-tau split folders (record 7880637); tau-srir into "
                    "ROOT/TAU-SRIR_DB/, the folder 'synth-audio --rooms' reads (record 6408611). A folder that "
                    "is already there is skipped.")
    p.add_argument("dataset", choices=tuple(DATASETS), help="which dataset: " + ", ".join(DATASETS))
    p.add_argument("root", metavar="ROOT", help="folder to download and unpack into (archives kept in ROOT/archives)")
    p.add_argument("--parts", metavar="LIST",
                   help=f"starss23: comma-separated parts among {','.join(starss.parts)} "
                        f"(default {','.join(starss.default_parts)})")
    p.add_argument("--remove-archives", action="store_true", help="delete each archive once it is unpacked")
    p.set_defaults(func=cmd_download)
