"""Decoding settings swept on one trained checkpoint: output smoothing windows and threshold calibration grids.

Predicts the validation and test splits of a dataset root once through the path of ``av-seld infer`` (the
checkpoint's own test-time rotations, its smoothing turned off), then for every smoothing window
(:func:`av_seld.postprocess.smooth_output`) and calibration grid calibrates the per-class thresholds on the smoothed
validation outputs, as ``av-seld train`` does, and scores both splits with them (DCASE macro, the scorer of
``av-seld evaluate``). The row a run's recipe would pick is the one with the lowest validation SELD; the test column
says what that choice is worth on held-out clips::

    python bench/decode_sweep.py RUN/best.pt DATA --val-split dev-val --test-split dev-test \\
        --windows 1 3 5 7 --cache RUN/decode_outputs.npz

``--cache`` keeps the raw outputs, so a second sweep skips the predictions. ``--no-video`` masks the video of
audio-visual checkpoints.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from av_seld.io.labels import read_reference_csv  # noqa: E402
from av_seld.postprocess import smooth_output  # noqa: E402
from av_seld.training.evaluation import (CALIBRATION_GRID, calibrate_thresholds, root_clips,  # noqa: E402
                                         score_outputs, split_outputs)
from av_seld.utils.atomic import atomic_path, write_text_atomic  # noqa: E402

LOW_GRID = (0.1,) + CALIBRATION_GRID  # thresholds down to 0.1: rotated passes average to shorter vectors


def raw_outputs(checkpoint: Path, root: Path, splits: list[str], *, with_video: bool, cache: Path | None,
                device: str = "cpu") -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Path]]]:
    """Unsmoothed outputs of each split's clips and their reference CSVs, keyed by split then clip name (the outputs
    from ``cache`` when it holds them)."""
    import torch

    from av_seld.training.checkpoint import load_checkpoint
    from av_seld.training.predict import loaded_from_payload

    payload = load_checkpoint(checkpoint)
    listed = {split: root_clips(root, split, payload["format"], with_video=with_video) for split in splits}
    metadata = {split: clip_metadata for split, (_, clip_metadata) in listed.items()}
    made_by = f"{checkpoint.resolve()} video={with_video}"  # a cache of another checkpoint is predicted again
    if cache is not None and cache.is_file():
        stored = np.load(cache, allow_pickle=True)
        if "made_by" in stored and str(stored["made_by"]) == made_by and all(split in stored for split in splits):
            return {split: stored[split].item() for split in splits}, metadata
    model = replace(loaded_from_payload(checkpoint, payload, torch.device(device)), smooth_frames=1)
    outputs = {split: split_outputs([model], clips) for split, (clips, _) in listed.items()}
    if cache is not None:
        with atomic_path(cache) as tmp:
            np.savez(tmp, made_by=made_by, **{split: np.array(o, dtype=object) for split, o in outputs.items()})
    return outputs, metadata


def sweep(outputs: dict[str, dict[str, np.ndarray]], refs: dict[str, dict], val_split: str, test_split: str,
          windows: list[int], grids: dict[str, tuple[float, ...]]) -> list[dict]:
    """One row per (grid, window): thresholds calibrated on the smoothed validation outputs, both splits scored."""
    rows = []
    for grid_name, grid in grids.items():
        for window in windows:
            smoothed = {split: {k: smooth_output(o, window) for k, o in outputs[split].items()}
                        for split in (val_split, test_split)}
            thresholds = calibrate_thresholds(smoothed[val_split], refs[val_split], grid=grid)
            val = score_outputs(smoothed[val_split], refs[val_split], thresholds=thresholds).summary()
            test = score_outputs(smoothed[test_split], refs[test_split], thresholds=thresholds).summary()
            rows.append({"grid": grid_name, "window": window, "thresholds": [round(float(t), 2) for t in thresholds],
                         "val": val, "test": test})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint of av-seld train (best.pt)")
    parser.add_argument("root", type=Path, help="STARSS23-layout dataset root with the two splits")
    parser.add_argument("--val-split", default="dev-val", help="split the thresholds are calibrated on")
    parser.add_argument("--test-split", default="dev-test", help="held-out split to score")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 3, 5, 7], help="smoothing windows (label frames)")
    parser.add_argument("--no-video", action="store_true", help="audio-visual checkpoints: the video masked")
    parser.add_argument("--cache", type=Path, help="npz file keeping the raw outputs between sweeps")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    splits = [args.val_split, args.test_split]
    outputs, metadata = raw_outputs(args.checkpoint, args.root, splits, with_video=not args.no_video, cache=args.cache)
    refs = {split: {name: read_reference_csv(path) for name, path in metadata[split].items()} for split in splits}
    rows = sweep(outputs, refs, args.val_split, args.test_split, args.windows,
                 {"default": CALIBRATION_GRID, "from 0.1": LOW_GRID})
    print("| grid | window | val SELD | test SELD | test ER | test F20 (%) | test LE_CD | test LR_CD (%) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        t = row["test"]
        print(f"| {row['grid']} | {row['window']} | {row['val']['SELD']:.3f} | {t['SELD']:.3f} | {t['ER']:.2f} | "
              f"{100 * t['F']:.1f} | {t['LE']:.0f} | {100 * t['LR']:.1f} |")
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
