"""``av-seld visualize`` (overlay video of a clip's predictions) and ``av-seld report`` (HTML report of a run)."""

from __future__ import annotations

import argparse
import logging

from av_seld.errors import InputError

log = logging.getLogger(__name__)


def cmd_visualize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from av_seld.io.labels import read_prediction_csv, read_reference_csv
    from av_seld.io.video import video_info
    from av_seld.utils.sizes import parse_size
    from av_seld.utils.text import count
    from av_seld.viz.overlay import parse_times, render_overlay_video

    try:
        size = parse_size(args.size, option="--size") if args.size else None
        times = parse_times(args.snapshot_times) if args.snapshot_times else []
    except ValueError as e:
        raise InputError(None, str(e)) from None
    prediction = read_prediction_csv(args.pred)
    reference = read_reference_csv(args.ref) if args.ref else None
    num_frames = video_info(args.video)[0]
    with tqdm(total=num_frames, unit="frame", desc="visualize") as bar:
        try:
            result = render_overlay_video(args.video, args.out, prediction, reference, audio_path=args.audio,
                                          size=size, trail_s=args.trail, snapshot_count=args.snapshots,
                                          snapshot_times_s=times, progress=bar.update)
        except ValueError as e:
            if isinstance(e, InputError):
                raise
            raise InputError(None, str(e)) from None
    audio = "" if args.audio is None else (", with audio" if result.audio_muxed else ", without audio (no ffmpeg)")
    print(f"wrote {result.path}: {count(result.num_frames, 'frame')} at {result.fps:.3f} fps, "
          f"{result.frame_size[0]}x{result.frame_size[1]}{audio}")
    for snap in result.snapshots:
        print(f"wrote {snap}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from av_seld.viz.report import write_report

    pages = write_report(args.run_dir, args.out, max_clips=args.max_clips)
    for page in pages:
        print(f"wrote {page}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("visualize", help="draw predicted (and reference) directions over a 360° video",
                              description="Write OUT.mp4: the clip's equirectangular frames with a marker per "
                                          "predicted event (disc) and reference event (ring), fading trails, and a "
                                          "timeline strip of class activity with a playhead under the panorama.")
    p.add_argument("--video", required=True, metavar="CLIP.mp4", help="equirectangular 360° video")
    p.add_argument("--pred", required=True, metavar="PRED.csv", help="prediction CSV (polar or Cartesian)")
    p.add_argument("--ref", metavar="REF.csv", help="reference CSV, drawn as rings")
    p.add_argument("--audio", metavar="CLIP.wav", help="audio to mux into the output (needs ffmpeg on PATH)")
    p.add_argument("--out", required=True, metavar="OUT.mp4", help="overlay video to write (H.264 with the system "
                   "ffmpeg, else mp4v)")
    p.add_argument("--size", metavar="WxH", help="panorama size in the output, width first (like ffmpeg; default: the "
                   "video's)")
    p.add_argument("--trail", type=float, default=1.0, metavar="SECONDS", help="trail length (default 1 s; 0: none)")
    p.add_argument("--snapshots", type=int, default=0, metavar="N",
                   help="also save N frames as PNG, spread over the frames that show events (reference events when "
                        "--ref is given, else predicted ones)")
    p.add_argument("--snapshot-times", metavar="T1,T2", help="also save the frames at these times (seconds) as PNG")
    p.set_defaults(func=cmd_visualize)

    p = subparsers.add_parser("report", help="write an offline HTML report of a run folder",
                              description="Read RUN_DIR/eval/<name>/scores.json (+ optional pred/, ref/, overlays/) "
                                          "and RUN_DIR/{train,val}_log.csv; write RUN_DIR/report/index.html and one "
                                          "page per evaluation (see av_seld/viz/report.py for the layout).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder of av-seld train (or any folder with eval/ or logs)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/report)")
    p.add_argument("--max-clips", type=int, default=20, help="clips with plots per evaluation (default 20)")
    p.set_defaults(func=cmd_report)
