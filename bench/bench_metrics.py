#!/usr/bin/env python
"""Time `av-seld evaluate` on 78 one-minute clips (the size of the STARSS23 dev-test split).

Prints the wall time of scoring a folder (CSV parsing included) for both editions, and, with --compare, the time the
loop-by-loop restatement of the official scorer (tests/official_reference.py) takes on the same files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from av_seld.io.labels import write_prediction_csv, write_reference_csv
from av_seld.metrics import evaluate_folders
from av_seld.metrics.simulate import simulate_prediction, simulate_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=78)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="also time the literal official restatement")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = 0
        for k in range(args.clips):
            ref = simulate_reference(rng, 600, num_sources=16, with_distance=True)
            pred = simulate_prediction(ref, rng, noise_deg=10.0, false_alarms=60)
            name = f"fold4_room{k % 10}_mix{k:03d}.csv"
            write_reference_csv(root / "ref" / "dev-test" / name, ref)
            write_prediction_csv(root / "pred" / name, pred, form="cartesian")
            rows += len(ref) + len(pred)
        print(f"{args.clips} one-minute clips, {rows} CSV rows in all")
        for edition in ("2023", "2024"):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = evaluate_folders(root / "ref", root / "pred", edition=edition)
                times.append(time.perf_counter() - start)
            print(f"av-seld evaluate --edition {edition}: {min(times):.3f} s (best of {args.repeats}), "
                  f"SELD {result.scores.SELD:.4f}")
        if args.compare:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            import official_reference as official

            refs = sorted((root / "ref" / "dev-test").glob("*.csv"))
            preds = [root / "pred" / p.name for p in refs]
            for edition, fn in (("2023", official.score_2023), ("2024", official.score_2024)):
                start = time.perf_counter()
                scores = fn(refs, preds)
                print(f"literal official restatement, {edition}: {time.perf_counter() - start:.3f} s, "
                      f"SELD {scores['SELD']:.4f}")


if __name__ == "__main__":
    main()
