#!/usr/bin/env python
"""Held-out scores of one audio-visual checkpoint against the visual stride of ``av-seld infer``.

Predicts every labelled clip of ``--split`` of a STARSS23-format root through the infer path
(:func:`av_seld.training.predict.predict_outputs`) at each ``--strides`` value, with the video masked too, and scores
them with the DCASE metrics and the checkpoint's thresholds (``av-seld test``'s numbers at stride 1). The noise
level to compare against: the leave-one-clip-out jackknife interval of the stride-1 SELD score. Also prints how far
each stride's outputs are from stride 1's (mean absolute difference of the multi-ACCDOA vectors) and the share of
frame-class activity decisions that flip.

    python bench/bench_visual_stride.py CHECKPOINT ROOT --split dev-test-synth [--strides 1,2,5,10] [--spread nearest]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from av_seld.io.labels import read_reference_csv  # noqa: E402
from av_seld.metrics.evaluate import clip_counts  # noqa: E402
from av_seld.metrics.seld import SELDCounts, compute_scores, jackknife  # noqa: E402
from av_seld.postprocess import multi_accdoa_to_events  # noqa: E402
from av_seld.training.evaluation import root_clips  # noqa: E402
from av_seld.training.predict import ClipFiles, ensemble_thresholds, load_for_inference, predict_outputs  # noqa: E402


def scores(outputs, refs, thresholds, merge_deg):
    per_clip = [clip_counts(refs[name], multi_accdoa_to_events(out, thresholds, merge_deg), edition="2023",
                            eval_distance=False) for name, out in outputs.items()]
    total = sum(per_clip[1:], per_clip[0]) if per_clip else SELDCounts.zeros()
    return compute_scores(total, edition="2023", average="macro", eval_distance=False), per_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("root")
    parser.add_argument("--split", required=True)
    parser.add_argument("--strides", default="1,2,5,10")
    parser.add_argument("--spread", default="nearest", choices=("nearest", "linear"))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_for_inference(args.checkpoint, torch.device("cpu"))
    if not model.is_audio_visual:
        raise SystemExit(f"{args.checkpoint} is an audio-only checkpoint")
    clips, metadata = root_clips(args.root, args.split, model.audio_format, with_video=True)
    refs = {name: read_reference_csv(path) for name, path in metadata.items()}
    thresholds = ensemble_thresholds([model])
    print(f"{args.checkpoint}: {len(clips)} clips of {args.split}; DCASE2023 macro, the checkpoint's thresholds")
    print(f"{'system':24s} {'SELD':>6s} {'ER':>6s} {'F20':>7s} {'LE':>7s} {'LR':>7s}   mean|d out|  flips   CPU s")
    reference = None
    runs = [(f"stride {s} ({args.spread})", int(s), clips) for s in args.strides.split(",")]
    runs.append(("video masked", 1, [ClipFiles(c.name, c.audio, None) for c in clips]))
    for label, stride, these in runs:
        start = time.process_time()
        if args.spread == "nearest":
            outputs = dict((c.name, o) for c, o in predict_outputs([model], these, visual_stride=stride))
        else:  # the linear spread is a predict_audio option only
            from av_seld.io.audio import read_wav
            from av_seld.training.predict import predict_audio

            outputs = {c.name: predict_audio([model], torch.from_numpy(read_wav(c.audio)), video=c.video,
                                             visual_stride=stride, visual_spread="linear") for c in these}
        took = time.process_time() - start
        s, per_clip = scores(outputs, refs, thresholds, model.merge_deg)
        if reference is None:
            reference, first_scores = outputs, s
            interval = jackknife(per_clip, lambda c: compute_scores(c, edition="2023", average="macro",
                                                                     eval_distance=False).as_vector())
        diff = np.mean([np.abs(outputs[k] - reference[k]).mean() for k in outputs])
        act = lambda o: np.linalg.norm(o, axis=2) > thresholds  # noqa: E731
        flips = np.mean([np.mean(act(outputs[k]) != act(reference[k])) for k in outputs])
        print(f"{label:24s} {s.SELD:6.3f} {s.ER:6.3f} {100 * s.F:6.1f}% {s.LE:6.1f}° "
              f"{100 * s.LR:6.1f}%   {diff:10.5f} {100 * flips:5.2f}% {took:7.1f}")
    lo, hi = interval.interval[list(first_scores.summary()).index("SELD")]
    print(f"noise: jackknife 95 % interval of the stride-{runs[0][1]} SELD score [{lo:.3f}, {hi:.3f}]")


if __name__ == "__main__":
    main()
