"""Feature extraction speed: minutes of 4-channel audio turned into features per second of wall time.

Compares ``av_seld.features`` (on the CPU: torch FFTs and the fused numba loops, float32) with the librosa
implementation of the same DCASE baseline definitions (``tests/feature_reference.py``: one file at a time, channel by
channel, float64, as the baseline's ``cls_feature_class.py`` does), on the same generated wav files: once reading the
wav files inside the timed loop (scipy for the baseline, ``av_seld.io.audio.read_wav`` for av_seld), once from audio
already in memory. Generating the files is not timed; each side keeps its fastest of ``--repeats`` runs. Both
outputs are checked to agree before timing. Both sides run on ``--threads`` threads (default 1, one core): torch's
threads (its FFTs), and numpy's BLAS (the reference's mel projections) through threadpoolctl; numpy's FFT is
single-threaded, which is how the baseline runs on any machine.

    python bench/bench_features.py [--minutes 4] [--clip-s 60] [--batch 1] [--threads 1] [--repeats 3]
                                   [--kinds foa_logmel_iv mic_logmel_gcc mic_salsalite]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import feature_reference as reference  # noqa: E402

from augment.spatial import render_foa, render_mic  # noqa: E402
from av_seld import timing  # noqa: E402
from av_seld.features import FEATURE_SPECS, FeatureExtractor, feature_spec  # noqa: E402
from av_seld.io.audio import read_wav, write_wav  # noqa: E402


def make_files(folder: Path, audio_format: str, num_files: int, seconds: float) -> list[Path]:
    """Noise sources at two directions plus sensor noise: spectra like a busy scene, nothing digitally silent."""
    render = render_foa if audio_format == "foa" else render_mic
    paths = []
    for i in range(num_files):
        rng = np.random.default_rng(i)
        n = int(seconds * timing.SAMPLE_RATE)
        audio = render(0.2 * rng.standard_normal(n).astype(np.float32), rng.uniform(-180, 180), rng.uniform(-45, 45))
        audio += 0.01 * rng.standard_normal((4, n)).astype(np.float32)
        paths.append(folder / f"{audio_format}_{i:03d}.wav")
        write_wav(paths[-1], np.clip(audio, -1, 1))
    return paths


def run_reference(paths: list[Path], kind: str, audio: list[np.ndarray] | None = None) -> float:
    """Seconds to compute the features of every file, one at a time; ``audio`` given: from memory, not the files."""
    start = time.perf_counter()
    for i, path in enumerate(paths):
        reference.REFERENCE[kind](reference.load_wav_like_baseline(path) if audio is None else audio[i])
    return time.perf_counter() - start


def run_torch(paths: list[Path], kind: str, batch: int, audio: list[np.ndarray] | None = None) -> float:
    """Seconds to compute the features of every file, ``batch`` files per call; ``audio`` given: from memory."""
    extractor = FeatureExtractor(kind)
    start = time.perf_counter()
    for first in range(0, len(paths), batch):
        chunk = range(first, min(first + batch, len(paths)))
        clips = [read_wav(paths[i]) if audio is None else audio[i] for i in chunk]
        extractor(torch.from_numpy(clips[0] if len(clips) == 1 else np.stack(clips)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="audio per feature kind (default 4 minutes)")
    parser.add_argument("--clip-s", type=float, default=60.0, help="seconds per file (default 60, as STARSS23)")
    parser.add_argument("--batch", type=int, default=1,
                        help="files per torch call (default 1: file by file, as extract-features runs; stacking "
                             "files into a batch costs a copy of the audio)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for both sides (default 1: one core each): torch's threads and numpy's BLAS")
    parser.add_argument("--repeats", type=int, default=3,
                        help="time each side this many times and keep the fastest (default 3; the cores are shared)")
    parser.add_argument("--kinds", nargs="+", default=sorted(FEATURE_SPECS), choices=sorted(FEATURE_SPECS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # numpy's BLAS too, so that both sides use the same cores
    num_files = max(1, int(round(args.minutes * 60 / args.clip_s)))
    minutes = num_files * args.clip_s / 60
    print(f"{num_files} files of {args.clip_s:g} s ({minutes:g} min) per kind, {args.batch} file(s) per torch call, "
          f"{torch.get_num_threads()} torch threads, {args.threads} BLAS threads")
    with tempfile.TemporaryDirectory() as tmp:
        files = {fmt: make_files(Path(tmp), fmt, num_files, args.clip_s) for fmt in ("foa", "mic")}
        for kind in args.kinds:
            paths = files[feature_spec(kind).audio_format]
            # Warm up both (librosa's first STFT initialises lazily) and check they agree on the first file.
            audio = read_wav(paths[0])
            want = reference.REFERENCE[kind](audio[:, : 5 * timing.SAMPLE_RATE].astype(np.float64))
            got = FeatureExtractor(kind)(torch.from_numpy(audio[:, : 5 * timing.SAMPLE_RATE])).numpy()
            worst = float(np.max(np.abs(got[4:] - want[4:])))
            rates = {}
            for label, loaded in (("wav files -> features", None), ("features only (audio in memory)", True)):
                ref_audio = [reference.load_wav_like_baseline(p) for p in paths] if loaded else None
                torch_audio = [read_wav(p) for p in paths] if loaded else None
                ref_s = min(run_reference(paths, kind, ref_audio) for _ in range(args.repeats))
                torch_s = min(run_torch(paths, kind, args.batch, torch_audio) for _ in range(args.repeats))
                rates[label] = (minutes / ref_s, minutes / torch_s)
            print(f"{kind}  (spatial channels of the two agree within {worst:.1e})")
            for label, (ref_rate, torch_rate) in rates.items():
                print(f"  {label:32s} librosa, file by file: {ref_rate:6.2f} min/s   av_seld: "
                      f"{torch_rate:6.2f} min/s   speed-up {torch_rate / ref_rate:5.1f}x")


if __name__ == "__main__":
    main()
