"""The ``av-seld`` command: one entry point with a subcommand per tool (``tools/*.py`` call the same functions)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from pathlib import Path

from av_seld import __version__
from av_seld.errors import InputError, Interrupted
from av_seld.utils.atomic import UNWRITABLE_ERRNOS
from av_seld.utils.device import add_device_argument
from av_seld.utils.text import count

log = logging.getLogger("av_seld")

# Modules that add their own subcommands: each defines ``register(subparsers)``, which adds parsers whose
# ``func`` default runs the command. Keep their top-level imports light (import heavy modules inside the command).
COMMAND_MODULES: tuple[str, ...] = ("av_seld.commands.video", "av_seld.commands.visual", "av_seld.commands.viz",
                                     "av_seld.commands.features", "av_seld.commands.acs", "av_seld.commands.train",
                                     "av_seld.commands.pretrain_visual", "av_seld.commands.sounds",
                                     "av_seld.commands.download", "av_seld.commands.maps")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from av_seld.metrics import evaluate_folders

    result = evaluate_folders(args.reference_dir, args.prediction_dir, edition=args.edition, average=args.average,
                              use_jackknife=args.jackknife, eval_distance=False if args.no_distance else None)
    print(result.format_table())
    if args.json:
        result.write_json(args.json)
        print(f"\nwrote {args.json}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from av_seld.io.dataset import index_dataset

    print(index_dataset(args.dataset_root).report())
    return 0


def cmd_synth_audio(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from augment.scenes import SceneConfig
    from av_seld.data.synth_audio import synthesize_audio_dataset

    formats = ("foa", "mic") if args.format == "both" else (args.format,)
    if args.trajectories is None and (args.interferers is not None or args.interferer_rate is not None):
        raise InputError(None, "--interferers and --interferer-rate need --trajectories")
    rooms = None
    if args.rooms:
        from augment.rooms import open_rooms

        rooms = open_rooms(args.rooms, formats)  # read once: its scene parameters and rooms serve every clip
    scene_params = {} if rooms is None else rooms.scene
    if args.trajectories is not None:
        from augment.trajectories import InterfererConfig
        from av_seld.data.synth_timelines import synthesize_timeline_dataset, timeline_windows

        windows = timeline_windows(args.trajectories, args.duration)
        num_clips = len(windows) if args.num_clips is None else args.num_clips
        interferer_config = InterfererConfig() if args.interferer_rate is None else InterfererConfig(
            rate_per_minute=args.interferer_rate)
        results = synthesize_timeline_dataset(
            args.out_root, windows=windows, split=args.split, num_clips=num_clips, seed=args.seed, formats=formats,
            scene=SceneConfig(**scene_params), clips=args.clips, missing_class=args.missing_class, fold=args.fold,
            rooms=rooms, interferers=args.interferers, interferer_config=interferer_config,
            workers=args.workers)
    else:
        if args.num_clips is None:
            raise InputError(None, "--num-clips is required without --trajectories")
        num_clips = args.num_clips
        scene = SceneConfig(duration_s=60.0 if args.duration is None else args.duration,
                            max_polyphony=args.max_polyphony, **scene_params)
        results = synthesize_audio_dataset(args.out_root, num_clips=num_clips, split=args.split, seed=args.seed,
                                           formats=formats, scene=scene, clips=args.clips,
                                           missing_class=args.missing_class, fold=args.fold, rooms=rooms,
                                           workers=args.workers)
    made = skipped = 0
    audio_s = wall_s = 0.0
    for result in tqdm(results, total=num_clips, unit="clip", desc="synth-audio"):
        skipped += result.skipped
        if not result.skipped:
            made += 1
            audio_s += result.audio_seconds
            wall_s += result.wall_seconds
    speed = f", {audio_s / wall_s:.1f} s of audio per second per worker" if wall_s else ""
    print(f"{count(made, 'clip')} written, {skipped} already complete, in {args.out_root}{speed}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from av_seld.demo import FULL, QUICK, run_demo
    from av_seld.utils.device import pick_device
    from av_seld.utils.progress import progress_bars

    pick_device(args.device)  # a GPU this machine lacks: one error line naming --device, before any work
    with progress_bars():
        run_demo(Path(args.out), seed=args.seed, size=QUICK if args.quick else FULL, workers=args.workers,
                 visual_weights=args.visual_weights, progress=True, device=args.device)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="av-seld", description="Audio-visual sound event localization and detection.")
    parser.add_argument("--version", action="version", version=f"av-seld {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("evaluate", help="score prediction CSVs against reference CSVs (DCASE SELD metrics)",
                       description="Score every prediction CSV in PRED_DIR against the reference CSV of the same name "
                                   "in REF_DIR (flat, or in split sub-folders), exactly as the official DCASE scorer.")
    p.add_argument("reference_dir", metavar="REF_DIR", help="reference CSVs (flat, or in split sub-folders)")
    p.add_argument("prediction_dir", metavar="PRED_DIR", help="prediction CSVs of the same file names")
    p.add_argument("--edition", choices=("2023", "2024"), default="2023",
                   help="2023: segment-level (default); 2024: frame-level with distance")
    p.add_argument("--average", choices=("macro", "micro"), default="macro",
                   help="macro: mean over the 13 classes, as DCASE ranks (default); micro: over all events")
    p.add_argument("--jackknife", action="store_true", help="95%% jackknife confidence intervals (leave one clip out)")
    p.add_argument("--no-distance", action="store_true", help="2024: score directions only")
    p.add_argument("--json", metavar="OUT.json", help="also write the scores as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("index", help="list the clips of a STARSS23-layout dataset and what each lacks")
    p.add_argument("dataset_root", metavar="DATASET_ROOT", help="folder holding foa_dev/, mic_dev/, video_dev/, "
                   "metadata_dev/ (and *_eval/)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("synth-audio", help="synthesize a STARSS23-format FOA/MIC dataset of spatial sound scenes",
                       description="Render scenes of sound events (static and moving sources, same-class overlap, "
                                   "diffuse ambient noise) to OUT_ROOT/{foa_dev,mic_dev,metadata_dev}/SPLIT/. "
                                   "Resumable: finished clips are skipped.")
    p.add_argument("out_root", metavar="OUT_ROOT", help="dataset root to write (created when missing)")
    p.add_argument("--num-clips", type=int, help="clips to render (required without --trajectories; with it, "
                   "default one per timeline window)")
    p.add_argument("--duration", type=float, help="seconds per clip (default 60; with --trajectories: each CSV is cut "
                   "into windows of this length, default the whole CSV)")
    p.add_argument("--split", required=True, help="split folder name, e.g. dev-train-synth")
    p.add_argument("--seed", type=int, default=0, help="each clip depends only on the seed and its number "
                   "(default 0)")
    p.add_argument("--format", choices=("foa", "mic", "both"), default="foa", help="audio format(s) to render "
                   "(default foa)")
    p.add_argument("--clips", metavar="DIR_OR_CSV", help="mono clips by class (folder or path,class CSV); "
                   "default: the built-in procedural sound bank")
    p.add_argument("--missing-class", choices=("skip", "error"), default="skip",
                   help="a class without clips: leave it out of the scenes (default) or stop")
    p.add_argument("--max-polyphony", type=int, default=3, help="most events sounding at once (default 3)")
    p.add_argument("--fold", type=int, default=1, help="fold number in the clip names (default 1)")
    p.add_argument("--rooms", metavar="CONFIG_OR_DIR",
                   help="reverberant rooms: a YAML room config (simulated shoebox rooms, e.g. "
                        "configs/synth/rooms_default.yaml; its 'scene' section sets scene parameters), a folder of "
                        "measured 4-channel responses (foa.csv/mic.csv: file,azimuth,elevation[,distance]; or "
                        "foa.sofa/mic.sofa; or the TAU-SRIR DB folder of 'av-seld download tau-srir', one of its "
                        "rooms per clip in turn) or a .sofa file; default: anechoic")
    p.add_argument("--trajectories", metavar="DIR",
                   help="render each clip from a reference CSV of this folder (frame, class, source, azimuth, "
                        "elevation[, distance]; e.g. real STARSS22 labels) instead of random events: its events' "
                        "timing, classes, overlaps and moving directions as labelled; the written CSV is the input's "
                        "rows with what was rendered: its directions anechoic and in simulated rooms, the nearest "
                        "measured direction with measured responses; the distance column (DCASE2024): anechoic, the "
                        "input's distances, or without them one per event drawn from 1-3 m (a label only: plane waves "
                        "carry no distance cue); in a simulated room, the distance each event was rendered at (its "
                        "labelled median, kept inside the walls); with measured responses their measured distance, "
                        "none when they lack distances (the TAU-SRIR DB without measinfo.mat)")
    p.add_argument("--interferers", metavar="DIR", help="with --trajectories: a folder of mono sounds of none of the "
                   "13 classes, mixed unlabelled at random times and directions")
    p.add_argument("--interferer-rate", type=float, metavar="PER_MINUTE",
                   help="interferers per minute of clip (Poisson mean; default 4)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.set_defaults(func=cmd_synth_audio)

    p = sub.add_parser("demo", help="synthesise a small audio-visual dataset, train on it, score and draw (CPU)",
                       description="The main job end to end on built-in data: synthesise FOA scenes and 360° mosaic "
                                   "videos, train the audio-visual Conformer, score the held-out clips with the "
                                   "DCASE2023 metrics, draw predictions over a test video and write a report. "
                                   "Resumable: rerunning reuses what is done.")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default 0)")
    p.add_argument("--workers", type=int, default=2, help="processes for data synthesis (default 2)")
    p.add_argument("--visual-weights", metavar="PT", help="local YOLO11n .pt to start the visual encoder from")
    p.add_argument("--quick", action="store_true", help="a tiny run that checks every stage (learns nothing)")
    add_device_argument(p, default="cpu")
    p.set_defaults(func=cmd_demo)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            code = _run(argv)
        except SystemExit:  # argparse's --help, --version and usage errors
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a closed pipe shows here, not as an "Exception ignored" message at exit
        return code
    except BrokenPipeError:  # the reader went away (`av-seld ... | head`): stop quietly, as a command killed by SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter flushes stdout once more at exit
        return 128 + signal.SIGPIPE


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except InputError as err:
        print(f"av-seld {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a write outside atomic_path into a read-only or foreign folder
        if err.errno not in UNWRITABLE_ERRNOS:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"av-seld {args.command}: error: {where}cannot write here ({err.strerror})", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"av-seld {args.command}: interrupted by {err}", file=sys.stderr)
        return Interrupted.exit_code
    except KeyboardInterrupt:
        print(f"av-seld {args.command}: interrupted", file=sys.stderr)
        return Interrupted.exit_code


if __name__ == "__main__":
    sys.exit(main())
