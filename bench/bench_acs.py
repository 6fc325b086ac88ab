"""Speed of channel swapping: a 60 s 4-channel clip plus its 600 label-rate frames at 640×320 (goal: under 0.5 s).

Run: ``python bench/bench_acs.py [--repeats 5]``. Prints the best time per part for a few transforms (a mirror, a
quarter roll with a vertical flip, a half turn) with NumPy, and with torch on the CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from augment.acs import ChannelSwap
from av_seld.timing import SAMPLE_RATE


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    import torch

    rng = np.random.default_rng(0)
    num_frames = int(round(args.seconds * 10))
    audio = rng.standard_normal((4, int(args.seconds * SAMPLE_RATE))).astype(np.float32)
    frames = rng.integers(0, 256, (num_frames, 320, 640, 3), dtype=np.uint8)
    target = rng.standard_normal((num_frames, 6, 4, 13)).astype(np.float32)
    print(f"clip: {args.seconds:g} s of 4-channel audio {audio.shape}, {num_frames} frames {frames.shape[1:]} uint8 "
          f"({frames.nbytes / 1e6:.0f} MB), ADPIT target {target.shape}; best of {args.repeats}")
    tensors = {"audio": torch.from_numpy(audio), "frames": torch.from_numpy(frames), "target": torch.from_numpy(target)}
    for fmt, index in (("foa", 1), ("foa", 10), ("foa", 6), ("mic", 7)):
        t = ChannelSwap(fmt, index)
        for backend, data in (("numpy", {"audio": audio, "frames": frames, "target": target}), ("torch", tensors)):
            a = best_of(args.repeats, lambda: t.audio(data["audio"]))
            f = best_of(args.repeats, lambda: t.frames(data["frames"]))
            y = best_of(args.repeats, lambda: t.adpit(data["target"]))
            total = best_of(args.repeats, lambda: t.apply_to_sample(data))
            print(f"{fmt} {index:2d} {t.name:12s} {backend}: audio {a * 1e3:6.1f} ms  frames {f * 1e3:6.1f} ms  "
                  f"target {y * 1e3:5.2f} ms  all together {total * 1e3:6.1f} ms"
                  f"  {'OK' if total < 0.5 else 'SLOWER than the 0.5 s goal'}")


if __name__ == "__main__":
    main()
