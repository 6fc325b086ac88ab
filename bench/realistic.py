#!/usr/bin/env python
"""A realistic audio-visual SELD benchmark you can run: deterministic data, recipes trained and scored on it.

Builds the data, deterministically, then (``--train``) trains recipes on it and scores them on its test split with
jackknife intervals.

The data (``--out``, default ``runs/realistic``):
- audio: FOA clips that follow **real STARSS22 timelines** (``../shared/data/starss22_labels``; events' onsets,
  offsets, classes, overlaps and moving directions exactly as annotated), split by file into train (``--train-clips``
  windows of ``--train-s`` s, at most one per file before any file gives a second), validation and test (one window
  per file, ``--test-clips`` × ``--test-s`` s), each split holding every class the timelines allow
  (``--cover-classes``, the default; see ``split_windows``); rendered in simulated reverberant rooms held out from
  pre-training (``configs/synth/rooms_benchmark.yaml``) with sounds from ``--clips`` (a folder of real recordings by
  class; default: the procedural bank) and optional unlabelled ``--interferers``.
- video: 360° mosaic video over real panoramas (``../shared/data/panoramas``), in two variants that share the audio
  and the labels (hard links): ``OUT/clean`` (objects appear where and while they sound) and ``OUT/realistic``
  (``--invisible`` of the sounding events are not drawn, ``--silent-objects`` per minute of silent objects are).
  Each root is a STARSS23 layout with splits ``dev-train``, ``dev-val``, ``dev-test``.
- ``OUT/benchmark.json``: the settings, which timeline window every clip renders, build times and sizes.

With ``--train`` each recipe (default ``configs/small_data.yaml`` and ``configs/seldnet_foa.yaml``) is trained through
the documented commands (``av-seld train RECIPE data.roots=[ROOT] ...``), then ``av-seld infer`` on the test split and
``av-seld evaluate --jackknife``; audio-only recipes are trained once (the video variant does not reach them),
audio-visual ones on each variant, and also scored with the video masked. One table (recipe, variant, SELD, F20°,
LE_CD, LR_CD with 95 % jackknife intervals) is printed and written to ``OUT/results.md`` and ``OUT/results.json``.

Every step is resumable: finished clips, videos, runs and scores are kept. The real data is looked for in
``../shared/data`` next to the checkout, else in ``$AV_SELD_SHARED_DATA`` (or ``--shared-data``); without it the script
says so and exits 0. Examples::

    python bench/realistic.py --build-only --workers 1                      # the data, procedural sounds
    python bench/realistic.py --clips /work/data/realsounds/benchmark --out runs/realistic_real --build-only
    python bench/realistic.py --train --recipe configs/seldnet_foa.yaml -o train.epochs=20
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's av_seld, not another one installed in the environment

from augment.rooms import RoomsSpec, open_rooms  # noqa: E402
from augment.scenes import SceneConfig  # noqa: E402
from augment.trajectories import InterfererConfig  # noqa: E402
from augment.visibility import VisibilityConfig  # noqa: E402
from av_seld.data.synth_timelines import (TimelineWindow, synthesize_timeline_dataset, timeline_files,  # noqa: E402
                                          windows_of)
from av_seld.data.synth_video import parse_size, synthesize_video_dataset  # noqa: E402
from av_seld.classes import NUM_CLASSES  # noqa: E402
from av_seld.io.labels import read_reference_csv  # noqa: E402
from av_seld.utils.atomic import write_text_atomic  # noqa: E402

log = logging.getLogger("bench.realistic")

def _default_shared_data() -> Path:
    """``../shared/data`` next to the checkout, else ``$AV_SELD_SHARED_DATA`` (as the tests look for it)."""
    beside = REPO.parent / "shared" / "data"
    if beside.is_dir() or not os.environ.get("AV_SELD_SHARED_DATA"):
        return beside
    return Path(os.environ["AV_SELD_SHARED_DATA"])


SHARED_DATA = _default_shared_data()
SPLITS = ("dev-train", "dev-val", "dev-test")
FOLDS = {"dev-train": 7, "dev-val": 8, "dev-test": 9}  # clip names fold7_... / fold8_... / fold9_...
VARIANTS = ("clean", "realistic")
DEFAULT_RECIPES = ("configs/small_data.yaml", "configs/seldnet_foa.yaml")
COVER_MIN_FRAMES = 3  # label frames a class must sound in a window to count as held by it
METRICS = (("SELD", "SELD", 1.0, "{:.3f}"), ("F", "F20 (%)", 100.0, "{:.1f}"), ("LE", "LE_CD (°)", 1.0, "{:.1f}"),
           ("LR", "LR_CD (%)", 100.0, "{:.1f}"))


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything the data depends on: the same spec (and the same sound folders) gives the same bytes."""

    train_clips: int = 50
    train_s: float = 30.0
    val_clips: int = 4
    val_s: float = 30.0
    test_clips: int = 10
    test_s: float = 60.0
    seed: int = 2023
    formats: tuple[str, ...] = ("foa",)
    video_size: str = "640x320"
    fps: float = 10.0
    invisible: float = 0.3
    silent_per_minute: float = 8.0
    interferers_per_minute: float = 4.0
    cover_classes: bool = True  # each split holds every class the timelines allow (split_windows)


# --------------------------------------------------------------------------------------------------- the split


def _class_frames(path: Path) -> np.ndarray:
    """Cumulative active-frame counts per class of a timeline: ``out[t, c]``, the frames before ``t`` where ``c``
    sounds."""
    events = read_reference_csv(path)
    active = np.zeros((events.num_frames, NUM_CLASSES), dtype=np.int64)
    active[events.frame, events.class_index] = 1
    return np.concatenate([np.zeros((1, NUM_CLASSES), dtype=np.int64), np.cumsum(active, axis=0)])


def _classes_in(cumulative: np.ndarray, start: int, frames: int) -> np.ndarray:
    """Which classes sound for at least ``COVER_MIN_FRAMES`` label frames in a window (bool per class)."""
    return cumulative[start + frames] - cumulative[start] >= COVER_MIN_FRAMES


def split_windows(trajectories: Path, spec: BenchmarkSpec) -> dict[str, list[TimelineWindow]]:
    """Windows of the timelines per split; every file serves one split only (test first, then validation, then
    training), in an order shuffled by ``spec.seed``. Test and validation take one window per file, training takes
    full windows of its files, round robin over the files.

    With ``spec.cover_classes`` each split is built to hold every class the timelines hold: while a class is missing
    from a split, its next window is the one (over the unused files, every start) that adds the most missing classes,
    the earliest such file in the shuffled order and a random start among its best; once nothing missing can be added,
    test and validation take the next unused file at a random start and training its files' windows in shuffled order
    (as without the option). Test and validation do not take the last unused file that holds a class while other
    files are left, so training keeps one of each. STARSS-like timelines hold door, bell and knock in few files, so a
    split left to chance may hold none of them, and the macro scores count a class absent from the test clips at F 0
    and LE_CD 180° whatever a system does."""
    files = timeline_files(trajectories)
    rng = np.random.default_rng([spec.seed, 1])
    order = [files[i] for i in rng.permutation(len(files))]
    counts = {path: _class_frames(path) for path in order}
    lengths = {path: len(counts[path]) - 1 for path in order}
    used: set[Path] = set()
    out: dict[str, list[TimelineWindow]] = {}
    for split, count, seconds in (("dev-test", spec.test_clips, spec.test_s), ("dev-val", spec.val_clips, spec.val_s)):
        frames = int(round(seconds * 10))
        chosen: list[TimelineWindow] = []
        covered = np.zeros(NUM_CLASSES, dtype=bool)
        while len(chosen) < count:
            free = [path for path in order if path not in used and lengths[path] >= frames]
            if spec.cover_classes:  # not the last unused file holding a class: training keeps one of each
                holders = sum(counts[path][-1] > 0 for path in order if path not in used)
                free = [path for path in free if not ((counts[path][-1] > 0) & (holders <= 1)).any()] or free
            if not free:
                break
            best: tuple[int, Path, np.ndarray] | None = None
            if spec.cover_classes:
                for path in free:
                    starts = np.arange(lengths[path] - frames + 1)
                    present = _classes_in(counts[path], starts, frames)
                    gain = (present & ~covered).sum(axis=1)
                    if gain.max() > (best[0] if best else 0):
                        best = (int(gain.max()), path, starts[gain == gain.max()])
            if best is None:
                path = free[0]
                start = int(rng.integers(0, lengths[path] - frames + 1))
            else:
                _, path, starts = best
                start = int(starts[rng.integers(0, len(starts))])
            chosen.append(TimelineWindow(str(path), start, frames))
            covered |= _classes_in(counts[path], start, frames)
            used.add(path)
        if len(chosen) < count:
            raise SystemExit(f"{trajectories}: only {len(chosen)} unused timelines of at least {seconds:g} s for "
                             f"{split}, {count} wanted")
        out[split] = chosen
    per_file = []
    for path in order:
        if path not in used:
            windows = windows_of(path, spec.train_s)
            per_file.append([windows[i] for i in rng.permutation(len(windows))])
    train: list[TimelineWindow] = []
    covered = np.zeros(NUM_CLASSES, dtype=bool)

    def gains(windows: list[TimelineWindow]) -> list[int]:
        if not spec.cover_classes:
            return [0] * len(windows)
        return [int((_classes_in(counts[Path(w.path)], w.start_frame, w.num_frames) & ~covered).sum())
                for w in windows]

    while len(train) < spec.train_clips and any(per_file):
        turn = [windows for windows in per_file if windows]  # one window from each file per round
        while turn and len(train) < spec.train_clips:
            best_gain = [max(gains(windows)) for windows in turn]
            windows = turn.pop(int(np.argmax(best_gain)))  # the first file of the best; the next one once none adds
            pick = int(np.argmax(gains(windows)))
            window = windows.pop(pick)
            covered |= _classes_in(counts[Path(window.path)], window.start_frame, window.num_frames)
            train.append(window)
    if len(train) < spec.train_clips:
        raise SystemExit(f"{trajectories}: only {len(train)} training windows of {spec.train_s:g} s, "
                         f"{spec.train_clips} wanted")
    out["dev-train"] = train
    return {split: out[split] for split in SPLITS}


# --------------------------------------------------------------------------------------------------- building


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link every file of ``source`` into ``target`` (copy where links are impossible); existing files stay."""
    for path in sorted(source.rglob("*")):
        if path.is_file():
            dest = target / path.relative_to(source)
            if dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dest)
            except OSError:
                shutil.copy2(path, dest)


def _rooms_id(rooms: RoomsSpec) -> str:
    """The rooms file by name and settings (not its comments), so the same rooms from another checkout are
    recognised."""
    settings = json.dumps({"room": dataclasses.asdict(rooms.config), "scene": rooms.scene}, sort_keys=True)
    return f"{Path(rooms.path).name} sha1:{hashlib.sha1(settings.encode()).hexdigest()[:12]}"


def _size_bytes(folder: Path) -> int:
    """Bytes on disk, hard-linked files counted once."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def _render_audio(root: Path, windows: list, split: str, *, spec: BenchmarkSpec, rooms: RoomsSpec, clips: str | None,
                  interferers: str | None, workers: int):
    """Render a split's timeline windows into ``root`` (the one call both the build and its check make)."""
    return synthesize_timeline_dataset(
        root, windows=windows, split=split, seed=spec.seed * 10 + SPLITS.index(split), formats=spec.formats,
        scene=SceneConfig(**rooms.scene), clips=clips, fold=FOLDS[split], rooms=rooms, interferers=interferers,
        interferer_config=InterfererConfig(rate_per_minute=spec.interferers_per_minute), workers=workers)


def check_rendering(out: Path, *, spec: BenchmarkSpec, trajectories: Path, rooms: RoomsSpec, clips: str | None,
                    interferers: str | None) -> None:
    """Render the first validation clip again, into a temporary folder, and compare it with the one ``out`` holds.

    A resumed build skips the clips it finds, so a folder built by an older version of the synthesis code would be
    kept as it is, and scores on it would not be what a fresh clone gets. One 30 s clip takes a few seconds; a
    difference stops the run with a SystemExit naming the file."""
    import tempfile

    split = "dev-val"
    window = split_windows(trajectories, spec)[split][:1]
    if not window:
        return
    with tempfile.TemporaryDirectory(dir=out, prefix=".render-check-") as tmp:
        result, = _render_audio(Path(tmp), window, split, spec=spec, rooms=rooms, clips=clips,
                                interferers=interferers, workers=1)
        for folder, suffix in (("metadata_dev", ".csv"), *((f"{fmt}_dev", ".wav") for fmt in spec.formats)):
            kept = out / "clean" / folder / split / f"{result.name}{suffix}"
            fresh = Path(tmp) / folder / split / f"{result.name}{suffix}"
            if kept.is_file() and kept.read_bytes() != fresh.read_bytes():
                raise SystemExit(f"{kept}: this checkout renders it differently (the synthesis code changed since "
                                 f"the benchmark was built), so its scores would not be what a fresh build gives; "
                                 f"delete {out} or use another --out")


def build(out: Path, *, spec: BenchmarkSpec, trajectories: Path, backgrounds: Path, rooms: RoomsSpec,
          clips: str | None, interferers: str | None, crops: str | None, workers: int) -> dict:
    """Build (or finish building) the benchmark under ``out``; returns the manifest written to benchmark.json."""
    started = time.perf_counter()
    windows = split_windows(trajectories, spec)
    clean, realistic = out / "clean", out / "realistic"
    manifest: dict = {"spec": dataclasses.asdict(spec), "trajectories": str(trajectories), "rooms": _rooms_id(rooms),
                      "clips": clips or "procedural sound bank", "interferers": interferers,
                      "crops": crops or "builtin", "backgrounds": str(backgrounds), "clips_by_split": {},
                      "seconds": {}}
    t = time.perf_counter()
    for split in SPLITS:
        results = _render_audio(clean, windows[split], split, spec=spec, rooms=rooms, clips=clips,
                                interferers=interferers, workers=workers)
        listing = []
        for window, result in zip(windows[split], results):
            log.info("audio %s/%s%s", split, result.name, " (done before)" if result.skipped else
                     f": {result.num_events} events, {result.wall_seconds:.1f} s")
            listing.append({"clip": result.name, "timeline": str(Path(window.path).relative_to(trajectories)),
                            "start_frame": window.start_frame, "num_frames": window.num_frames})
        manifest["clips_by_split"][split] = listing
    manifest["seconds"]["audio"] = round(time.perf_counter() - t, 1)
    for folder in ("metadata_dev", *(f"{fmt}_dev" for fmt in spec.formats)):
        _link_tree(clean / folder, realistic / folder)

    width, height = parse_size(spec.video_size)
    visibility = {"clean": VisibilityConfig(),
                  "realistic": VisibilityConfig(invisible_fraction=spec.invisible,
                                                silent_per_minute=spec.silent_per_minute)}
    for variant, root in (("clean", clean), ("realistic", realistic)):
        t = time.perf_counter()
        for split in SPLITS:
            for result in synthesize_video_dataset(root, split=split, crops=crops, background=backgrounds,
                                                   width=width, height=height, fps=spec.fps, seed=spec.seed,
                                                   workers=workers, visibility=visibility[variant]):
                log.info("video %s %s/%s%s", variant, split, result.name, " (done before)" if result.skipped else
                         f": {result.num_frames} frames, {result.wall_seconds:.1f} s")
        manifest["seconds"][f"video_{variant}"] = round(time.perf_counter() - t, 1)
    manifest["seconds"]["total"] = round(time.perf_counter() - started, 1)
    previous = out / "benchmark.json"  # a resumed build keeps the times of the build that made the data
    first = json.loads(previous.read_text()).get("first_build_seconds") if previous.exists() else None
    manifest["first_build_seconds"] = first or manifest["seconds"]
    manifest["size_mb"] = {name: round(_size_bytes(path) / 2**20, 1) for name, path in
                           (("all", out), ("clean", clean), ("realistic_video", realistic / "video_dev"))}
    manifest["audio_minutes"] = {split: round(sum(w.duration_s for w in windows[split]) / 60, 2) for split in SPLITS}
    write_text_atomic(out / "benchmark.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


# --------------------------------------------------------------------------------------------------- training


def _run(command: list[str], log_path: Path) -> None:
    """Run an av-seld command with this checkout first on the path; its output goes to ``log_path``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("$ %s  (log: %s)", " ".join(command), log_path)
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(f"\n$ {' '.join(command)}\n")
        f.flush()
        code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO).returncode
    if code != 0:
        raise SystemExit(f"command failed with exit code {code} (see {log_path}): {' '.join(command)}")


def _av_seld(*args: str) -> list[str]:
    return [sys.executable, "-m", "av_seld", *args]


def _recipe_reads_video(recipe: str) -> tuple[bool, str]:
    """(whether the recipe's model reads video, its audio format)."""
    from av_seld.config import load_config

    config = load_config(recipe)
    return bool(config.data.video or config.data.visual_features), config.data.format


def train_and_score(out: Path, recipes: list[str], overrides: list[str], device: str,
                    variants: tuple[str, ...] = VARIANTS) -> list[dict]:
    """Train each recipe on the benchmark (resumable), infer and score the test split; one result row per
    (recipe, variant). ``variants``: the video variants audio-visual recipes train on. The wall time of each
    training (caches included) is kept in its run folder's ``bench_done``."""
    rows = []
    for recipe in recipes:
        if not Path(recipe).is_file() and not (REPO / recipe).is_file():
            raise SystemExit(f"{recipe}: recipe not found")
        recipe = str(recipe if Path(recipe).is_file() else REPO / recipe)
        name = Path(recipe).stem
        reads_video, fmt = _recipe_reads_video(recipe)
        for variant in (variants if reads_video else ("clean",)):
            root = out / variant
            run_dir = out / "runs" / variant / name
            logs = out / "logs" / variant / name
            if not (run_dir / "bench_done").exists():
                resume = ["--resume"] if (run_dir / "last.pt").exists() else []
                started = time.perf_counter()
                _run(_av_seld("train", recipe, f"data.roots=[{root}]", "data.train_splits=[dev-train]",
                              "data.val_splits=[dev-val]", "data.test_splits=[dev-test]",
                              f"train.out_dir={out / 'runs' / variant}", f"train.name={name}", *overrides, *resume),
                     logs / "train.log")
                write_text_atomic(run_dir / "bench_done", json.dumps({"train_minutes": round(
                    (time.perf_counter() - started) / 60, 1), "resumed": bool(resume)}) + "\n")
            scorings = [("video", True), ("video masked", False)] if reads_video else [("not read", False)]
            for label, with_video in scorings:
                tag = label.replace(" ", "_")
                predictions = out / "predictions" / variant / name / tag
                scores = out / "scores" / variant / f"{name}_{tag}.json"
                if not scores.exists():
                    video = ["--video", str(root / "video_dev" / "dev-test")] if with_video else []
                    _run(_av_seld("infer", str(run_dir / "best.pt"), "--audio", str(root / f"{fmt}_dev" / "dev-test"),
                                  *video, "--out", str(predictions), "--device", device), logs / "infer.log")
                    _run(_av_seld("evaluate", str(root / "metadata_dev" / "dev-test"), str(predictions),
                                  "--jackknife", "--json", str(scores)), logs / "evaluate.log")
                result = json.loads(scores.read_text())
                try:
                    minutes = json.loads((run_dir / "bench_done").read_text()).get("train_minutes")
                except ValueError:
                    minutes = None
                rows.append({"recipe": name, "variant": variant if reads_video else "either (same audio)",
                             "video": label, "train_minutes": minutes, "scores": result})
    return rows


def present_class_seld(scores: dict) -> tuple[float, int] | None:
    """The mean per-class SELD score over the classes with reference events in the test clips, and how many there
    are; None when the scores carry no per-class support. The official macro average also counts the absent classes
    (F = 0, LE = 180°, LR = 0 whatever the system does); this column shows the part a system can change."""
    present = [r["SELD"] for r in scores.get("classwise") or [] if (r.get("support") or 0) > 0]
    return (sum(present) / len(present), len(present)) if present else None


def format_table(rows: list[dict]) -> str:
    """Markdown table: one line per row, each metric with its 95 % jackknife interval, then the SELD score over the
    classes present in the test clips (``present_class_seld``)."""
    head = ("| recipe | data | video | train min | " + " | ".join(title for _, title, _, _ in METRICS)
            + " | SELD, present classes |")
    lines = [head, "|" + "---|" * (5 + len(METRICS))]
    for row in rows:
        scores, intervals = row["scores"], row["scores"].get("confidence_intervals_95") or {}
        cells = []
        for key, _, scale, fmt in METRICS:
            value = scores.get(key)
            cell = "n/a" if value is None else fmt.format(value * scale)
            if intervals.get(key):
                lo, hi = intervals[key]
                cell += f" [{fmt.format(lo * scale)}, {fmt.format(hi * scale)}]"
            cells.append(cell)
        minutes = row.get("train_minutes")
        present = present_class_seld(scores)
        cells.append("n/a" if present is None else f"{present[0]:.3f} ({present[1]} classes)")
        lines.append(f"| {row['recipe']} | {row['variant']} | {row['video']} | "
                     f"{'n/a' if minutes is None else minutes} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--out", default="runs/realistic", help="benchmark folder (default runs/realistic)")
    parser.add_argument("--clips", metavar="DIR_OR_CSV", help="real recordings by class (as synth-audio --clips); "
                        "default: the procedural sound bank")
    parser.add_argument("--interferers", metavar="DIR", help="unlabelled sounds of none of the classes, mixed in")
    parser.add_argument("--crops", metavar="DIR", help="object images by class for the video; default built-in sprites")
    parser.add_argument("--shared-data", default=str(SHARED_DATA), metavar="DIR",
                        help=f"folder with starss22_labels/ and panoramas/ (default {SHARED_DATA})")
    parser.add_argument("--rooms", default=str(REPO / "configs" / "synth" / "rooms_benchmark.yaml"),
                        metavar="YAML", help="simulated rooms (default configs/synth/rooms_benchmark.yaml)")
    parser.add_argument("--workers", type=int, default=1, help="processes for rendering (default 1)")
    parser.add_argument("--build-only", action="store_true", help="build the data and stop (the default without "
                        "--train)")
    parser.add_argument("--train", action="store_true", help="also train, infer and score the recipes")
    parser.add_argument("--recipe", action="append", dest="recipes", metavar="YAML",
                        help=f"recipe to train (repeatable; default {' and '.join(DEFAULT_RECIPES)})")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override passed to every av-seld train (repeatable), e.g. train.epochs=20")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="video variants audio-visual recipes train on (default both)")
    parser.add_argument("--device", default="cpu", help="device for av-seld infer (training: the recipe's)")
    for field in dataclasses.fields(BenchmarkSpec):
        if isinstance(field.default, bool):
            parser.add_argument(f"--{field.name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                                default=field.default, help="(default %(default)s)")
        elif field.name != "formats":
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default,
                                help=f"(default {field.default})")
    parser.add_argument("--format", choices=("foa", "mic", "both"), default="foa")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    shared = Path(args.shared_data)
    trajectories, backgrounds = shared / "starss22_labels", shared / "panoramas"
    if not trajectories.is_dir() or not backgrounds.is_dir():
        print(f"bench/realistic.py: skipped: the real data is not here ({trajectories} and {backgrounds} are "
              "needed; see ../shared/data/README.md)", file=sys.stderr)
        return 0
    spec = BenchmarkSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchmarkSpec)
                            if f.name != "formats"},
                         formats=("foa", "mic") if args.format == "both" else (args.format,))
    out = Path(args.out)
    rooms = open_rooms(args.rooms, spec.formats)
    previous = out / "benchmark.json"
    if previous.exists():
        before = json.loads(previous.read_text())
        now = {"spec": json.loads(json.dumps(dataclasses.asdict(spec))), "clips": args.clips or "procedural sound bank",
               "rooms": _rooms_id(rooms), "interferers": args.interferers,
               "crops": args.crops or "builtin"}
        changed = [key for key, value in now.items() if before.get(key) != value]
        if changed:
            raise SystemExit(f"{previous}: built with other {', '.join(changed)}; use another --out or delete it")
        check_rendering(out, spec=spec, trajectories=trajectories, rooms=rooms, clips=args.clips,
                        interferers=args.interferers)
    manifest = build(out, spec=spec, trajectories=trajectories, backgrounds=backgrounds, rooms=rooms,
                     clips=args.clips, interferers=args.interferers, crops=args.crops, workers=args.workers)
    minutes = manifest["audio_minutes"]
    print(f"benchmark in {out}: {minutes['dev-train']:g} min train, {minutes['dev-val']:g} min val, "
          f"{minutes['dev-test']:g} min test; this run {manifest['seconds']['total']:.0f} s, first build "
          f"{manifest['first_build_seconds']['total']:.0f} s ({manifest['first_build_seconds']}); "
          f"{manifest['size_mb']['all']:.0f} MB")
    if not args.train:
        return 0
    rows = train_and_score(out, args.recipes or list(DEFAULT_RECIPES), args.override, args.device,
                           tuple(args.variants))
    table = format_table(rows)
    print(table)
    write_text_atomic(out / "results.md", f"Realistic benchmark ({out}), DCASE2023 macro scores on "
                      f"{spec.test_clips} test clips of {spec.test_s:g} s, 95 % jackknife intervals\n\n{table}\n")
    write_text_atomic(out / "results.json", json.dumps({"spec": dataclasses.asdict(spec), "rows": rows}, indent=2)
                      + "\n")
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
