"""``av-seld demo``: what runs end to end today.

The full demo (synthesize an audio-visual dataset, train, infer, draw predictions over the 360° video) lands with the
training issue. Until then the demo exercises the scorer: it writes simulated STARSS23-style reference CSVs and three
simulated systems' predictions, and scores each with the DCASE2023 metrics, as ``av-seld evaluate`` would.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from av_seld.io.labels import write_prediction_csv, write_reference_csv
from av_seld.metrics import evaluate_folders
from av_seld.metrics.simulate import simulate_prediction, simulate_reference

log = logging.getLogger(__name__)

SYSTEMS = {  # name: (miss rate, direction noise in degrees, false alarms per clip)
    "good": (0.05, 5.0, 10),
    "noisy_directions": (0.05, 25.0, 10),
    "misses_and_false_alarms": (0.4, 5.0, 120),
}


def run_demo(out_dir: Path, seed: int = 0, num_clips: int = 6, num_frames: int = 600) -> dict[str, float]:
    """Write simulated references and predictions under ``out_dir`` and score them; returns SELD score per system."""
    rng = np.random.default_rng(seed)
    ref_dir = out_dir / "metadata_dev" / "dev-test-sim"
    references = {f"fold4_room1_mix{k + 1:03d}.csv": simulate_reference(rng, num_frames) for k in range(num_clips)}
    for name, ref in references.items():
        write_reference_csv(ref_dir / name, ref)
    print("The end-to-end demo (synthesis -> training -> inference -> overlay video) is not yet available.")
    print(f"Scoring three simulated systems on {num_clips} simulated one-minute clips in {out_dir}:\n")
    seld = {}
    for system, (miss, noise, false_alarms) in SYSTEMS.items():
        pred_dir = out_dir / "predictions" / system
        for name, ref in references.items():
            pred = simulate_prediction(ref, rng, miss_rate=miss, noise_deg=noise, false_alarms=false_alarms)
            write_prediction_csv(pred_dir / name, pred, form="cartesian")
        result = evaluate_folders(out_dir / "metadata_dev", pred_dir, average="micro")
        s = result.scores
        seld[system] = s.SELD
        print(f"  {system:<26} SELD {s.SELD:.3f}   ER20 {s.ER:.3f}   F20 {100 * s.F:5.1f} %   "
              f"LE {s.LE:5.1f}°   LR {100 * s.LR:5.1f} %")
    print(f"\nScore them yourself: av-seld evaluate {out_dir}/metadata_dev {out_dir}/predictions/good")
    return seld
