#!/usr/bin/env python
"""Speed of synthetic 360° video: milliseconds per frame with 3 simultaneous events, one worker, per projection.

For each size, a clip (10 s by default) with three events active all the time (two static, one moving at 30°/s, one of
them at the seam) is rendered over the procedural room with the built-in sprites: composition alone on each route
(``--projection perspective``: background copy + three perspective-to-equirect warps per frame; ``cubemap``: each
crop converted once by py360convert's c2e, included in the time, then three turns of those layers per frame), then
composition plus encoding to a file on the perspective route (what synth-video does: H.264 through the system ffmpeg
when installed, else mp4v through OpenCV).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from augment.crops import procedural_sprite
from augment.mosaic import PROJECTIONS, MosaicConfig, plan_segments, procedural_room, render_mosaic_frames
from av_seld.io.video import VideoWriter


def _labels(seconds: float):
    frames = np.arange(int(seconds * 10))
    rows = [(n, 0, 0, 179.0, 5.0) for n in frames] + [(n, 8, 0, -60.0, -20.0) for n in frames]
    rows += [(n, 6, 1, 30.0 + 3.0 * n, 10.0) for n in frames]  # 30°/s
    return [np.array(column) for column in zip(*rows)]


def bench(width: int, height: int, seconds: float, fps: float = 30.0) -> None:
    rng = np.random.default_rng(0)
    config = MosaicConfig()
    start = time.perf_counter()
    background = np.ascontiguousarray(procedural_room(width, height, rng)[..., ::-1])
    segments = plan_segments(*_labels(seconds), draw_crop=procedural_sprite, rng=rng, width=width, config=config)
    setup = time.perf_counter() - start
    num_frames = int(round(seconds * fps))

    for projection in PROJECTIONS:
        routed = replace(config, projection=projection)
        start = time.perf_counter()
        for _ in render_mosaic_frames(segments, itertools.repeat(background), num_frames, fps, routed):
            pass
        ms = (time.perf_counter() - start) / num_frames * 1000
        print(f"{width}x{height} {projection:>11}: compose {ms:6.2f} ms per frame ({1000 / ms:6.1f} fps)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mp4"
        start = time.perf_counter()
        with VideoWriter(path, fps, (width, height), channels="bgr") as writer:
            for frame in render_mosaic_frames(segments, itertools.repeat(background), num_frames, fps, config):
                writer.write(frame)
        ms = (time.perf_counter() - start) / num_frames * 1000
    print(f"{width}x{height} perspective: compose + {writer.codec} encode {ms:6.2f} ms per frame ({1000 / ms:6.1f} "
          f"fps; {num_frames} frames, 3 events; room + plan {setup:.2f} s once per clip)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for width, height in ((640, 320), (1920, 960)):
        bench(width, height, args.seconds)


if __name__ == "__main__":
    main()
