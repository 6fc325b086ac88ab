"""``av-seld maps``: localisation maps of one clip drawn over its 360° video, one PNG per label frame and an mp4.

``--kind gradient``: where in the panorama an audio-visual checkpoint takes its evidence for each class
(:func:`av_seld.viz.maps.clip_gradient_maps`, through the prediction path of ``av-seld infer``); ``--kind acoustic``:
the beam power (FOA) or SRP-PHAT (MIC) of each 100 ms of audio (:func:`av_seld.viz.maps.acoustic_maps`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from av_seld.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_SIZE = "512x256"


def _class_folder(c: int) -> str:
    from av_seld.classes import CLASS_NAMES

    return f"{c:02d}_" + CLASS_NAMES[c].replace(" ", "_").replace("/", "_")


def _parse_classes(texts: list[str] | None) -> list[int] | None:
    from augment.clips import class_index

    if texts is None:
        return None
    names = [part for text in texts for part in text.split(",") if part.strip()]
    return list(dict.fromkeys(class_index(name, "--classes") for name in names))


def cmd_maps(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from av_seld.classes import CLASS_NAMES
    from av_seld.io.audio import read_wav
    from av_seld.io.video import read_video_at_label_rate
    from av_seld.timing import LABEL_HOP_S, num_label_frames
    from av_seld.utils.sizes import parse_size
    from av_seld.viz.maps import acoustic_maps, clip_gradient_maps, write_map_overlays

    try:
        width, height = parse_size(args.size, option="--size", equirectangular=True, even=True)
    except ValueError as e:
        raise InputError(None, str(e)) from None
    if not Path(args.video).is_file():
        raise InputError(args.video, "video not found")
    out = Path(args.out)
    audio = read_wav(args.audio)
    num_frames = num_label_frames(audio.shape[1])
    background = read_video_at_label_rate(args.video, num_label_frames=num_frames, width=width, height=height)
    times = [f"t {t * LABEL_HOP_S:.1f} s" for t in range(num_frames)]
    if args.kind == "acoustic":
        if args.classes is not None or args.method != "plain":
            log.warning("--classes and --method apply to gradient maps only; acoustic maps ignore them")
        audio_format = args.format
        if audio_format is None:
            if args.checkpoint is None:
                raise InputError(None, "acoustic maps need the audio format: give --format foa|mic (or a checkpoint)")
            from av_seld.training.checkpoint import load_checkpoint

            audio_format = load_checkpoint(args.checkpoint)["format"]
        maps = acoustic_maps(audio, audio_format, num_frames=num_frames, width=args.grid, height=args.grid // 2)
        what = "FOA beam power" if audio_format == "foa" else "MIC SRP-PHAT"
        pngs = write_map_overlays(maps, background.frames, background.valid, out / "acoustic",
                                  captions=[f"{t}  {what}" for t in times], video_path=out / "acoustic.mp4")
        print(f"wrote {len(pngs)} PNGs in {out / 'acoustic'} and {out / 'acoustic.mp4'} "
              f"({num_frames} label frames, {what}, {args.grid}x{args.grid // 2} grid)")
        return 0

    if args.checkpoint is None:
        raise InputError(None, "gradient maps need an audio-visual CHECKPOINT")
    from av_seld.training.predict import load_for_inference
    from av_seld.training.run import pick_device

    model = load_for_inference(args.checkpoint, pick_device(args.device, key="--device"))
    if args.format is not None and args.format != model.audio_format:
        raise InputError(args.checkpoint, f"was trained on {model.audio_format.upper()} audio, not "
                                          f"{args.format.upper()} (--format)")
    result = clip_gradient_maps(model, torch.from_numpy(audio), args.video, classes=_parse_classes(args.classes),
                                method=args.method)
    if not result.classes:
        print(f"no class is predicted active in {args.audio}: no maps written (choose classes with --classes)")
        return 0
    for k, c in enumerate(result.classes):
        captions = [f"{time}  {CLASS_NAMES[c]} {result.activity[t, c]:.2f}"
                    + ("" if result.active[t, c] else " (inactive)") for t, time in enumerate(times)]
        folder = _class_folder(c)
        pngs = write_map_overlays(result.maps[:, k], background.frames, background.valid, out / folder,
                                  captions=captions, video_path=out / f"{folder}.mp4")
        active = int(np.sum(result.active[:, c]))
        print(f"{CLASS_NAMES[c]}: {len(pngs)} PNGs in {out / folder} and {out / folder}.mp4 "
              f"(predicted active in {active} of {num_frames} label frames)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "maps", help="localisation maps of a clip over its 360° video (input gradients or acoustic maps)",
        description="Draw one localisation map per 100 ms label frame over the clip's equirectangular video: "
                    "OUT/<class>/NNNN.png per label frame with video (NNNN = label frame) and OUT/<class>.mp4 at "
                    "10 fps. gradient: for each class, |d(class activity summed over the inference window) / "
                    "d(frame)| of an audio-visual checkpoint, run as av-seld infer runs it (features from the wav, "
                    "frames at label rate, 50%-overlapping windows; overlapping windows averaged). acoustic: FOA "
                    "beam power or MIC SRP-PHAT of each 100 ms of audio (OUT/acoustic/, OUT/acoustic.mp4).")
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT",
                   help="an audio-visual checkpoint (av-seld train's best.pt); required for --kind gradient, for "
                        "--kind acoustic it only gives the audio format when --format is not given")
    p.add_argument("--audio", required=True, metavar="WAV", help="the clip's 4-channel 24 kHz wav (FOA or MIC)")
    p.add_argument("--video", required=True, metavar="MP4", help="the clip's equirectangular 360° video")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--kind", choices=("gradient", "acoustic"), default="gradient",
                   help="gradient: input-gradient maps of the checkpoint (default); acoustic: maps from the audio "
                        "alone")
    p.add_argument("--method", choices=("plain", "guided"), default="plain",
                   help="gradient maps: plain gradients (default) or guided backpropagation (the visual encoder's "
                        "activations pass only positive gradients back)")
    p.add_argument("--classes", nargs="+", metavar="CLASS",
                   help="gradient maps: classes to map, as indices or names (e.g. 3 telephone, or 0,3); default: the "
                        "classes the checkpoint predicts active somewhere in the clip")
    p.add_argument("--format", choices=("foa", "mic"),
                   help="audio format of the wav (default: the checkpoint's); acoustic maps need it without a "
                        "checkpoint")
    p.add_argument("--size", default=DEFAULT_SIZE, metavar="WxH",
                   help=f"size of the drawn panorama, width first (default {DEFAULT_SIZE})")
    p.add_argument("--grid", type=int, default=180, metavar="W",
                   help="acoustic maps: width of the direction grid in cells, height W/2 (default 180: 2°)")
    p.add_argument("--device", default="cpu", help="gradient maps: cpu, cuda or cuda:N (default cpu)")
    p.set_defaults(func=cmd_maps)
