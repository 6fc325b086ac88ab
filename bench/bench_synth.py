#!/usr/bin/env python
"""Speed of spatial scene synthesis: seconds of 4-channel scene audio produced per wall-clock second, per worker.

Renders 60 s scenes (default config: up to 3 overlapping events, half of them moving, diffuse ambient noise) with
the procedural sound bank, anechoic, for FOA, MIC and both formats, plus the sound bank on its own.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from augment import soundbank
from augment.scenes import SceneConfig, render_scene, sample_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    config = SceneConfig(duration_s=args.duration)

    start = time.perf_counter()
    for c in range(soundbank.NUM_CLASSES):
        soundbank.synthesize(c, 10.0, np.random.default_rng(c))
    took = time.perf_counter() - start
    print(f"procedural sound bank: {13 * 10 / took:.0f} s of mono audio per second (10 s of each class)")

    for formats in (("foa",), ("mic",), ("foa", "mic")):
        start = time.perf_counter()
        for k in range(args.scenes):
            rng = np.random.default_rng(k)
            render_scene(sample_events(rng, config), soundbank.synthesize, rng, config, formats)
        took = (time.perf_counter() - start) / args.scenes
        print(f"anechoic {'+'.join(formats):<8} {args.duration:.0f} s scene in {took:.2f} s: "
              f"{args.duration / took:.1f} s of scene audio per second, one worker")


if __name__ == "__main__":
    main()
