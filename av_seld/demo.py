"""``av-seld demo`` / ``make demo``: the main job end to end on an embedded default, with nothing but the repository.

1. Synthesise a small audio-visual dataset: FOA scenes from the built-in procedural sound bank (train / validation /
   test splits of different seeds and folds) and equirectangular mosaic videos of the built-in sprite crops placed
   at the events' directions.
2. Cache the frozen YOLO11n visual features of the videos (random weights unless ``--visual-weights`` gives a local
   ``.pt``), then train the audio-visual Conformer of ``configs/demo.yaml`` on CPU.
3. Score the best checkpoint on the held-out test clips with the DCASE2023 metrics, next to the same network
   untrained and the trained network with its video masked; a recipe whose model outputs distances
   (``model.params.distance``) also gets the DCASE2024 table with distance (the synthetic references have distances).
4. Draw the predictions over one test video, plot its tracks, the per-class metrics and the training curves, and
   write an HTML report of the run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from av_seld.config import Config, load_config
from av_seld.errors import InputError

log = logging.getLogger(__name__)

SPLITS = {"train": "dev-train-synth", "val": "dev-val-synth", "test": "dev-test-synth"}


@dataclass(frozen=True)
class DemoSize:
    """How much data and training the demo uses."""

    train_clips: int = 48
    val_clips: int = 4
    test_clips: int = 10  # enough events that every class is in the test split (the macro average counts all 13)
    duration_s: float = 30.0
    frame_size: tuple[int, int] = (128, 256)  # video and visual encoder input, height × width (token grid 4 × 8)
    epochs: int = 48
    max_steps: int | None = None
    batch_size: int = 16


FULL = DemoSize()
QUICK = DemoSize(train_clips=3, val_clips=1, test_clips=1, duration_s=4.0, frame_size=(64, 128), epochs=1,
                 max_steps=2, batch_size=4)  # for tests: every stage runs, nothing is learnt


def demo_recipe() -> Path:
    """``configs/demo.yaml`` of the repository this package runs from."""
    path = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    if not path.is_file():
        raise InputError(path, "the demo recipe is missing (av-seld demo runs from a clone of the repository)")
    return path


def demo_config(root: Path, run_root: Path, size: DemoSize, seed: int,
                visual_weights: str | None = None) -> Config:
    """The demo recipe (``configs/demo.yaml``) on the demo's data and run folder, sized by ``size``."""
    height, width = size.frame_size
    overrides = [f"data.video_size=[{height},{width}]", f"data.batch_size={size.batch_size}",
                 f"model.params.frame_size=[{height},{width}]",
                 f"model.params.token_grid=[{height // 32},{width // 32}]",
                 f"train.seed={seed}", f"train.epochs={size.epochs}",
                 f"train.max_steps={'null' if size.max_steps is None else size.max_steps}"]
    if size is QUICK:  # every stage runs on a network too small to learn anything
        overrides += ["model.params.audio_kwargs={widths: [4, 8], blocks: [1, 1], pools: [[5, 2], [1, 2]], dim: 8, "
                      "depth: 1, heads: 2, kernel_size: 3, head: gated}",
                      "model.params.heads=2", "model.params.kernel_size=3", "optim.warmup_steps=2"]
    config = load_config(demo_recipe(), overrides)
    # paths are set after parsing: the overrides are YAML, which a folder name may not be
    config.data.roots = [str(root)]
    config.train.out_dir = str(run_root)
    config.model.params["visual_weights"] = visual_weights
    return config


def synthesize_data(root: Path, size: DemoSize, seed: int, workers: int, progress: bool = False) -> None:
    """Audio scenes and mosaic videos of the three splits (resumable: finished clips are kept)."""
    from augment.scenes import SceneConfig
    from av_seld.data.synth_audio import synthesize_audio_dataset
    from av_seld.data.synth_video import synthesize_video_dataset

    counts = {"train": size.train_clips, "val": size.val_clips, "test": size.test_clips}
    scene = SceneConfig(duration_s=size.duration_s, max_polyphony=2)
    for fold, (part, split) in enumerate(SPLITS.items(), start=1):
        for _ in _bar(synthesize_audio_dataset(root, num_clips=counts[part], split=split, seed=seed * 100 + fold,
                                               scene=scene, fold=fold, workers=workers),
                      counts[part], f"audio {part}", progress):
            pass
        height, width = size.frame_size
        for _ in _bar(synthesize_video_dataset(root, split=split, width=width, height=height, fps=10.0,
                                               seed=seed * 100 + fold, workers=workers),
                      counts[part], f"video {part}", progress):
            pass


def _bar(iterable, total: int, desc: str, progress: bool):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="clip")


def _scores_line(name: str, scores: dict) -> str:
    return (f"  {name:<26}{scores['SELD']:7.3f}{scores['ER']:8.3f}{100 * scores['F']:8.1f}%{scores['LE']:8.1f}°"
            f"{100 * scores['LR']:8.1f}%")


COMPARISON_FILE = "comparison.json"  # in RUN/eval/: the table of systems av-seld report shows


def write_comparison(path: Path, rows: dict[str, dict], folders: dict[str, str], *, split: str, num_clips: int) -> None:
    """Save the systems' scores side by side (``{"split", "num_clips", "systems": [{"system", "eval", SELD, ER, F,
    LE, LR}]}``, ``eval`` the folder under ``RUN/eval/`` that holds each system's predictions and scores)."""
    import json

    from av_seld.utils.atomic import write_text_atomic

    systems = [{"system": name, "eval": folders[name], **{k: float(v) for k, v in scores.items()}}
               for name, scores in rows.items()]
    write_text_atomic(path, json.dumps({"split": split, "num_clips": num_clips, "systems": systems}, indent=2) + "\n")


@dataclass
class DemoResult:
    run_dir: Path
    trained: dict
    untrained: dict
    video_masked: dict
    overlay: Path | None
    report: Path | None
    seconds: float


def run_demo(out_dir: str | Path, *, seed: int = 0, size: DemoSize = FULL, workers: int = 2,
             visual_weights: str | None = None, progress: bool = False, device: str = "cpu") -> DemoResult:
    """Run every stage under ``out_dir`` (``data/``, ``runs/``); prints the metrics table and where things are.
    ``device``: where the network trains and predicts (auto, cpu, cuda or cuda:N)."""
    from av_seld.classes import NUM_CLASSES
    from av_seld.io.labels import read_prediction_csv, read_reference_csv
    from av_seld.models import build_model
    from av_seld.training.checkpoint import load_checkpoint
    from av_seld.training.evaluation import evaluate_split, split_clips
    from av_seld.training.predict import ClipFiles, loaded_from_payload, with_thresholds
    from av_seld.training.hooks import ProgressHook
    from av_seld.training.run import model_params, train
    from av_seld.utils.device import pick_device

    start = time.perf_counter()
    out_dir = Path(out_dir)
    root = out_dir / "data"
    print(f"[1/4] synthesising {size.train_clips}+{size.val_clips}+{size.test_clips} clips of {size.duration_s:g} s "
          f"(FOA audio + {size.frame_size[1]}x{size.frame_size[0]} 360° video) in {root}")
    synthesize_data(root, size, seed, workers, progress)

    config = demo_config(root, out_dir / "runs", size, seed, visual_weights)
    torch_device = pick_device(device)
    config.train.device = str(torch_device)
    where = "CPU" if torch_device.type == "cpu" else str(torch_device)
    print(f"[2/4] training {config.model.name} on {where} (visual features cached first)")
    result = train(config, resume=(Path(config.train.out_dir) / config.train.name / "last.pt").exists(),
                   extra_hooks=[ProgressHook("train")] if progress else [], workers=workers)

    print("[3/4] scoring the held-out test clips")
    # every row goes through the path of `av-seld infer` (sliding windows over features computed from the wav)
    checkpoint = load_checkpoint(result.best_checkpoint)
    trained = loaded_from_payload(result.best_checkpoint, checkpoint, torch_device)
    clips, metadata = split_clips(result.test_set, with_video=True)
    eval_root = result.run_dir / "eval"

    torch.manual_seed(config.train.seed)
    untrained_net = build_model(config.model.name, **model_params(config, trained.model.in_channels))
    untrained = with_thresholds(loaded_from_payload(result.best_checkpoint, checkpoint, torch_device,
                                                    model=untrained_net), np.full(NUM_CLASSES, config.eval.threshold))
    no_video = [ClipFiles(c.name, c.audio, None) for c in clips]  # every frame marked "without video"
    folders = {"trained (audio + video)": "test", "trained, video masked": "test_video_masked",
               "untrained (same network)": "test_untrained"}
    rows = {"trained (audio + video)": result.test.scores.summary(),
            "trained, video masked": evaluate_split([trained], no_video, metadata, eval_root / "test_video_masked",
                                                    edition=config.eval.edition).scores.summary(),
            "untrained (same network)": evaluate_split([untrained], clips, metadata, eval_root / "test_untrained",
                                                       edition=config.eval.edition).scores.summary()}
    write_comparison(eval_root / COMPARISON_FILE, rows, folders, split=SPLITS["test"], num_clips=len(clips))
    print(result.test.format_table())
    if result.test.distance_2024 is not None:
        print(result.test.distance_2024.format_table())
    print(f"\n  {'system':<26}{'SELD':>7}{'ER':>8}{'F20°':>9}{'LE':>9}{'LR':>9}")
    for name, row in rows.items():
        print(_scores_line(name, row))

    print("[4/4] drawing predictions over a test video, plots and the report")
    overlay = report = None
    try:
        from av_seld.viz.overlay import render_overlay_video
        from av_seld.viz.plots import plot_class_metrics, plot_tracks, plot_training_curves
        from av_seld.viz.report import write_report

        eval_dir = result.run_dir / "eval" / "test"
        clip = sorted((eval_dir / "pred").glob("*.csv"))[0].stem
        video = root / "video_dev" / SPLITS["test"] / f"{clip}.mp4"
        reference = read_reference_csv(root / "metadata_dev" / SPLITS["test"] / f"{clip}.csv")
        prediction = read_prediction_csv(eval_dir / "pred" / f"{clip}.csv")
        overlay = eval_dir / "overlays" / f"{clip}.mp4"
        overlay.parent.mkdir(parents=True, exist_ok=True)
        render_overlay_video(video, overlay, prediction, reference, size=(640, 320), snapshot_count=2)
        plot_tracks(eval_dir / f"{clip}_tracks.png", prediction, reference, title=clip, duration_s=size.duration_s)
        plot_class_metrics(eval_dir / "class_metrics.png", result.test.to_dict(), title="test split")
        plot_training_curves(result.run_dir / "training_curves.png", result.run_dir / "train_log.csv",
                             result.run_dir / "val_log.csv")
        report = write_report(result.run_dir)[0]
    except ImportError as err:  # the drawing stage is optional
        log.warning("skipping drawings: %s", err)
    seconds = time.perf_counter() - start
    print(f"\nDone in {seconds / 60:.1f} min.")
    print(f"  dataset      {root}")
    print(f"  run          {result.run_dir}  (config.yaml, best.pt, train_log.csv, val_log.csv, tensorboard/)")
    print(f"  predictions  {result.run_dir / 'eval' / 'test' / 'pred'}  (scores.txt, scores.json beside them)")
    if overlay is not None:
        print(f"  overlay      {overlay}")
    if report is not None:
        print(f"  report       {report}")
    return DemoResult(result.run_dir, rows["trained (audio + video)"], rows["untrained (same network)"],
                      rows["trained, video masked"], overlay, report, seconds)
