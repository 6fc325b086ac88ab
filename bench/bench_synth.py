#!/usr/bin/env python
"""Speed of spatial scene synthesis: seconds of 4-channel scene audio produced per wall-clock second, per worker.

Renders 60 s scenes (default config: up to 3 overlapping events, half of them moving, diffuse ambient noise) with
the procedural sound bank, anechoic and in simulated shoebox rooms (``configs/synth/rooms_default.yaml``: one room
per scene, drawn as ``av-seld synth-audio --rooms`` draws them, RT60 0.2-0.7 s), for FOA, MIC and both formats,
plus the sound bank on its own. CPU = process time, less inflated than wall time on a busy machine. Times include
drawing the room and computing its responses (cached per clip).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pathlib import Path

from augment import rooms, soundbank
from augment.scenes import SceneConfig, render_scene, sample_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60.0)
    default_rooms = Path(__file__).resolve().parents[1] / "configs" / "synth" / "rooms_default.yaml"
    parser.add_argument("--rooms", default=str(default_rooms),
                        help="rooms YAML file (default: configs/synth/rooms_default.yaml)")
    args = parser.parse_args()
    config = SceneConfig(duration_s=args.duration)
    room_config = rooms.load_rooms_config(args.rooms).room

    start = time.perf_counter()
    for c in range(soundbank.NUM_CLASSES):
        soundbank.synthesize(c, 10.0, np.random.default_rng(c))
    took = time.perf_counter() - start
    print(f"procedural sound bank: {13 * 10 / took:.0f} s of mono audio per second (10 s of each class)")

    for formats in (("foa",), ("mic",), ("foa", "mic")):
        start, cpu = time.perf_counter(), time.process_time()
        for k in range(args.scenes):
            rng = np.random.default_rng(k)
            render_scene(sample_events(rng, config), soundbank.synthesize, rng, config, formats)
        took = (time.perf_counter() - start) / args.scenes
        cpu = (time.process_time() - cpu) / args.scenes
        print(f"anechoic {'+'.join(formats):<8} {args.duration:.0f} s scene in {took:.2f} s (CPU {cpu:.2f} s): "
              f"{args.duration / took:.1f} s of scene audio per second, one worker")

    for formats in (("foa",), ("mic",), ("foa", "mic")):
        times = []
        cpu = time.process_time()
        for k in range(args.scenes):
            start = time.perf_counter()
            rng = np.random.default_rng(k)
            shoebox = rooms.sample_room(np.random.default_rng([0, 0, k]), room_config)
            room = rooms.SimulatedRoom(shoebox, room_config, seed=[0, k])
            render_scene(sample_events(rng, config), soundbank.synthesize, rng, config, formats, room=room)
            times.append(time.perf_counter() - start)
        took = float(np.mean(times))
        cpu = (time.process_time() - cpu) / args.scenes
        print(f"rooms    {'+'.join(formats):<8} {args.duration:.0f} s scene in {took:.2f} s (CPU {cpu:.2f} s, "
              f"slowest {max(times):.2f} s): {args.duration / took:.1f} s of scene audio per second, one worker")


if __name__ == "__main__":
    main()
