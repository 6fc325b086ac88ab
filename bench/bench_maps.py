#!/usr/bin/env python
"""How well localisation maps point at the labelled sources: the share of label frames whose map peaks within
``--max-deg`` (20°) of an active reference direction, against what a uniformly random cell of the same grid scores.

For every clip of ``DATASET_ROOT``'s split (``metadata_dev/SPLIT/*.csv`` with the wav of ``--format`` and, for
gradient maps, ``video_dev/SPLIT/<clip>.mp4``):

- acoustic maps (:func:`av_seld.viz.maps.acoustic_maps`, FOA beam power or MIC SRP-PHAT of each 100 ms): every label
  frame with at least one reference event counts; a hit is a peak within ``--max-deg`` of any of its events;
- gradient maps of each ``--checkpoint`` (:func:`av_seld.viz.maps.clip_gradient_maps`, plain and guided, the
  clip's labelled classes): every (label frame, class) with the class in the reference and a video frame counts; a
  hit is a peak of that class's map within ``--max-deg`` of one of the class's reference directions in that frame.
  Also shown: the (frame, class) pairs the model also predicts active.

The random-cell baseline of each counted item is the fraction of the map's grid cells within ``--max-deg`` of its
target directions (:func:`av_seld.viz.maps.random_cell_hit_rate`), averaged like the hits.

    python bench/bench_maps.py DATASET_ROOT --split dev-test-synth [--format foa|mic|both]
                               [--checkpoint RUN/best.pt ...] [--methods plain guided] [--grid 180] [--max-deg 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from av_seld.io.audio import read_wav
from av_seld.io.labels import read_reference_csv
from av_seld.timing import num_label_frames
from av_seld.viz.maps import acoustic_maps, clip_gradient_maps, peak_hits, random_cell_hit_rate


class Tally:
    def __init__(self):
        self.hits, self.chance = [], []

    def add(self, heat: np.ndarray, azimuth: np.ndarray, elevation: np.ndarray, max_deg: float) -> None:
        self.hits.append(peak_hits(heat, azimuth, elevation, max_deg))
        self.chance.append(random_cell_hit_rate(*heat.shape, azimuth, elevation, max_deg))

    def line(self, name: str) -> str:
        if not self.hits:
            return f"  {name:<44} no frames"
        return (f"  {name:<44} {100 * np.mean(self.hits):5.1f} %   random cell {100 * np.mean(self.chance):5.1f} %   "
                f"({len(self.hits)} frames)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", metavar="DATASET_ROOT")
    parser.add_argument("--split", required=True)
    parser.add_argument("--format", choices=("foa", "mic", "both"), default="foa", help="acoustic maps' audio")
    parser.add_argument("--checkpoint", nargs="*", default=[], help="audio-visual checkpoints for gradient maps")
    parser.add_argument("--methods", nargs="+", choices=("plain", "guided"), default=["plain", "guided"])
    parser.add_argument("--grid", type=int, default=180, help="acoustic grid width in cells (height half)")
    parser.add_argument("--max-deg", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = Path(args.root)
    refs = sorted((root / "metadata_dev" / args.split).glob("[!.]*.csv"))
    if not refs:
        raise SystemExit(f"no reference CSVs in {root / 'metadata_dev' / args.split}")
    formats = ("foa", "mic") if args.format == "both" else (args.format,)
    print(f"{len(refs)} clips of {root} / {args.split}; hit = map peak within {args.max_deg:g}° of an active "
          "reference direction")

    for fmt in formats:
        tally, start = Tally(), time.perf_counter()
        for ref_path in refs:
            events = read_reference_csv(ref_path)
            audio = read_wav(root / f"{fmt}_dev" / args.split / f"{ref_path.stem}.wav")
            maps = acoustic_maps(audio, fmt, num_frames=num_label_frames(audio.shape[1]), width=args.grid,
                                 height=args.grid // 2)
            for t in np.unique(events.frame):
                if t < len(maps):
                    here = events.frame == t
                    tally.add(maps[t], events.azimuth_deg[here], events.elevation_deg[here], args.max_deg)
        print(tally.line(f"acoustic {fmt.upper()} ({args.grid}x{args.grid // 2} grid)")
              + f"  {time.perf_counter() - start:.1f} s")

    if not args.checkpoint:
        return
    from av_seld.training.predict import load_for_inference

    for checkpoint in args.checkpoint:
        model = load_for_inference(checkpoint, torch.device("cpu"))
        for method in args.methods:
            labelled, predicted, start = Tally(), Tally(), time.perf_counter()
            for ref_path in refs:
                events = read_reference_csv(ref_path)
                audio = read_wav(root / f"{model.audio_format}_dev" / args.split / f"{ref_path.stem}.wav")
                classes = sorted({int(c) for c in events.class_index})
                result = clip_gradient_maps(model, audio, root / "video_dev" / args.split / f"{ref_path.stem}.mp4",
                                            classes=classes, method=method)
                for t, c in sorted({(int(t), int(c)) for t, c in zip(events.frame, events.class_index)}):
                    if t >= len(result.maps) or not result.video_valid[t]:
                        continue
                    here = (events.frame == t) & (events.class_index == c)
                    heat = result.maps[t, classes.index(c)]
                    labelled.add(heat, events.azimuth_deg[here], events.elevation_deg[here], args.max_deg)
                    if result.active[t, c]:
                        predicted.add(heat, events.azimuth_deg[here], events.elevation_deg[here], args.max_deg)
            h, w = model.frame_size
            print(f"gradient maps of {checkpoint}, {method} ({w}x{h} grid), {time.perf_counter() - start:.0f} s:")
            print(labelled.line("labelled (frame, class) pairs"))
            print(predicted.line("... that the model also predicts active"))


if __name__ == "__main__":
    main()
