"""Overlay videos: markers land on the geometry module's pixels (across the seam too), every input frame comes out,
video frames show the labels of their label frame, and bad inputs name the file."""

from __future__ import annotations

import logging

import cv2
import decord
import numpy as np
import pytest

from av_seld import timing
from av_seld.cli import main
from av_seld.errors import LabelFormatError, VideoFormatError
from av_seld.geometry import equirect_pixel, sph_to_equirect
from av_seld.io.labels import Events, write_prediction_csv, write_reference_csv
from av_seld.viz import class_colour_bgr
from av_seld.classes import CLASS_NAMES, NUM_CLASSES
from av_seld.viz import CLASS_COLOURS_RGB
from av_seld.viz.overlay import (
    OverlayRenderer,
    draw_label,
    draw_marker,
    label_frames_of_video_frames,
    render_overlay_video,
    snapshot_frames,
)

W, H, FPS, NUM_FRAMES = 128, 64, 10.0, 20  # 2 s
BACKGROUND = 90


def write_video(path, width=W, height=H, fps=FPS, num_frames=NUM_FRAMES):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for _ in range(num_frames):
        writer.write(np.full((height, width, 3), BACKGROUND, np.uint8))
    writer.release()
    return path


def static_events(class_index, azimuth, elevation, num_frames=NUM_FRAMES, source=0):
    n = np.arange(num_frames)
    return Events.from_arrays(n, np.full(num_frames, class_index), np.full(num_frames, source),
                              np.full(num_frames, float(azimuth)), np.full(num_frames, float(elevation)))


@pytest.mark.parametrize("fps", [30.0, 29.97, 25.0, 10.0, 7.0])
def test_each_video_frame_shows_its_label_frame(fps):
    num_frames = 95
    label = label_frames_of_video_frames(num_frames, fps)
    k = np.arange(num_frames)
    # Frame k shows the latest label frame whose selected frame (timing's rule) is at or before k.
    assert np.all(timing.video_frame_for_label_frame(label, fps) <= k)
    assert np.all(timing.video_frame_for_label_frame(label + 1, fps) > k)
    if fps == 30.0:
        np.testing.assert_array_equal(label, k // 3)


@pytest.mark.parametrize("azimuth, elevation", [(0, 0), (90, 45), (-90, -45), (37.3, 12.8), (-120, 80), (179, 10),
                                                (-179, -20), (-180, 0)])
def test_marker_lands_on_the_geometry_pixel(azimuth, elevation):
    image = np.zeros((H, W, 3), np.uint8)
    colour = (10, 200, 30)
    i, j = draw_marker(image, azimuth, elevation, colour, radius=3)
    assert (i, j) == equirect_pixel(azimuth, elevation, W, H)
    assert tuple(image[j, i]) == colour
    # The disc is centred there: its coloured pixels are symmetric about the pixel (up to the seam wrap).
    rows, cols = np.nonzero(np.all(image == colour, axis=-1))
    assert rows.min() == j - 3 and rows.max() == j + 3
    offsets = (cols - i + W // 2) % W - W // 2
    assert offsets.min() == -3 and offsets.max() == 3


@pytest.mark.parametrize("azimuth", [179.0, -179.0, 180.0])
def test_marker_near_the_seam_is_drawn_on_both_edges(azimuth):
    image = np.zeros((H, W, 3), np.uint8)
    colour = (255, 0, 255)
    _, j = draw_marker(image, azimuth, 0.0, colour, radius=3)
    assert tuple(image[j, 0]) == colour and tuple(image[j, W - 1]) == colour
    # ... and nowhere near the centre of the panorama.
    assert not np.any(np.all(image[:, 8:W - 8] == colour, axis=-1))


def test_renderer_frame_layout_and_playhead():
    pred = static_events(3, 45.0, 20.0)
    renderer = OverlayRenderer(pred, None, width=W, height=H, num_label_frames=NUM_FRAMES)
    black = np.zeros((H, W, 3), np.uint8)
    first, last = renderer.render(black, 0, 0.0), renderer.render(black, 19, 1.9)
    assert first.shape == (H + renderer.strip_h, W, 3) and renderer.strip_h % 2 == 0

    def playhead(frame):
        strip = frame[H + renderer.header_px:, renderer.label_w:]
        return np.flatnonzero(np.all(strip == 255, axis=-1).all(axis=0))

    assert playhead(first)[0] < playhead(last)[0]
    # Class 3's prediction sub-row is lit along the timeline, in the class colour; other classes' rows are not.
    row = H + renderer.header_px + 3 * renderer.row_px + renderer.row_px // 2
    lit = np.all(last[row, renderer.label_w:] == class_colour_bgr(3), axis=-1)
    assert lit.mean() > 0.9
    other = H + renderer.header_px + 5 * renderer.row_px + renderer.row_px // 2
    assert not np.any(np.all(last[other, renderer.label_w:] == class_colour_bgr(5), axis=-1))


def test_overlay_video_end_to_end(tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    pred_path, ref_path = tmp_path / "pred.csv", tmp_path / "ref.csv"
    # Class 0 static at the seam, class 8 static at (60, 20), in Cartesian form as models write it.
    pred = Events.from_arrays(*[np.concatenate(pair) for pair in zip(
        *[(e.frame, e.class_index, e.source, e.azimuth_deg, e.elevation_deg)
          for e in (static_events(0, 179.0, 0.0), static_events(8, 60.0, 20.0))])])
    write_prediction_csv(pred_path, pred, form="cartesian")
    write_reference_csv(ref_path, static_events(8, 90.0, 20.0))
    out = tmp_path / "out" / "overlay.mp4"
    assert main(["visualize", "--video", str(video), "--pred", str(pred_path), "--ref", str(ref_path),
                 "--out", str(out), "--snapshot-times", "0.5,1.55", "--snapshots", "1"]) == 0

    reader = decord.VideoReader(str(out))
    assert len(reader) == NUM_FRAMES and reader.get_avg_fps() == pytest.approx(FPS)
    assert reader[0].shape[1] == W
    snaps = sorted(out.parent.glob("overlay_frame*.png"))
    assert [p.name for p in snaps] == ["overlay_frame000005.png", "overlay_frame000010.png",  # --snapshots 1: the
                                       "overlay_frame000016.png"]                            # middle event frame
    assert not list(out.parent.glob(".*"))  # no temporary files left behind
    frame = cv2.imread(str(snaps[1]))  # lossless: exact colours
    assert frame.shape[:2] == (reader[0].shape[0], W)
    i, j = equirect_pixel(60.0, 20.0, W, H)
    assert tuple(frame[j, i]) == class_colour_bgr(8)
    _, j = equirect_pixel(179.0, 0.0, W, H)
    assert tuple(frame[j, 0]) == class_colour_bgr(0) and tuple(frame[j, W - 1]) == class_colour_bgr(0)
    # The reference ring (90°, 20°) is drawn in the class colour around its pixel, not on it.
    i, j = equirect_pixel(90.0, 20.0, W, H)
    ring = np.all(frame[j - 8:j + 9, i - 8:i + 9] == class_colour_bgr(8), axis=-1)
    assert ring.any() and not ring[8, 8]


def test_moving_source_leaves_a_fading_trail(tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    n = np.arange(NUM_FRAMES)
    azimuth = -40.0 + 6.0 * n  # 60°/s to the left
    pred = Events.from_arrays(n, np.full(NUM_FRAMES, 2), np.zeros(NUM_FRAMES), azimuth, np.zeros(NUM_FRAMES))
    render_overlay_video(video, tmp_path / "o.mp4", pred, snapshot_times_s=[1.5], trail_s=1.0)
    frame = cv2.imread(str(tmp_path / "o_frame000015.png")).astype(float)
    colour = np.array(class_colour_bgr(2), float)
    u_now, v = sph_to_equirect(azimuth[15], 0.0, W, H)

    def tint(az):  # how far the trail pixel at that azimuth moved from the background towards the class colour
        u, _ = sph_to_equirect(az, 0.0, W, H)
        pixel = frame[int(v), int(u)]
        return float(np.dot(pixel - BACKGROUND, colour - BACKGROUND) / np.dot(colour - BACKGROUND, colour - BACKGROUND))

    recent, older, beyond = tint(azimuth[11]), tint(azimuth[7]), tint(azimuth[2])
    assert recent > older > 0.05  # fading into the past
    assert abs(beyond) < 0.05  # trails reach back about 1 s only
    # Nothing is drawn ahead of the source.
    assert abs(tint(azimuth[15] + 30)) < 0.05


def test_frame_count_kept_at_29_97_fps_and_resized(tmp_path):
    video = write_video(tmp_path / "clip.mp4", width=96, height=48, fps=29.97, num_frames=50)
    result = render_overlay_video(video, tmp_path / "o.mp4", static_events(1, 0.0, 0.0, num_frames=30),
                                  size=(W, H))
    reader = decord.VideoReader(str(result.path))
    assert len(reader) == result.num_frames == 50
    assert reader.get_avg_fps() == pytest.approx(29.97, abs=0.01)
    assert reader[0].shape[:2] == (result.frame_size[1], W)


def test_audio_without_ffmpeg_warns_and_writes_the_video(tmp_path, monkeypatch, caplog):
    from av_seld.io.audio import write_wav

    video = write_video(tmp_path / "clip.mp4")
    wav = tmp_path / "clip.wav"
    write_wav(wav, np.zeros((4, 2 * timing.SAMPLE_RATE), np.float32))
    monkeypatch.setattr("av_seld.io.video.shutil.which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="av_seld.io.video"):
        result = render_overlay_video(video, tmp_path / "o.mp4", static_events(0, 0, 0), audio_path=wav)
    assert not result.audio_muxed
    assert "without the audio" in caplog.text and "ffmpeg" in caplog.text
    assert len(decord.VideoReader(str(result.path))) == NUM_FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.wav", "o.mp4"]


@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="no ffmpeg binary on PATH")
def test_audio_is_muxed_with_ffmpeg(tmp_path):
    from av_seld.io.audio import write_wav

    video = write_video(tmp_path / "clip.mp4")
    wav = tmp_path / "clip.wav"
    write_wav(wav, 0.1 * np.ones((4, 2 * timing.SAMPLE_RATE), np.float32))
    result = render_overlay_video(video, tmp_path / "o.mp4", static_events(0, 0, 0), audio_path=wav)
    assert result.audio_muxed
    assert len(decord.VideoReader(str(result.path))) == NUM_FRAMES
    assert decord.AudioReader(str(result.path)).shape[1] > 0


def test_missing_video_and_bad_csv_name_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoFormatError, match="nope.mp4"):
        render_overlay_video(missing, tmp_path / "o.mp4", static_events(0, 0, 0))
    video = write_video(tmp_path / "clip.mp4")
    bad = tmp_path / "bad_pred.csv"
    bad.write_text("0,1,0,10,20\n1,1,0,ten,20\n")
    assert main(["visualize", "--video", str(video), "--pred", str(bad), "--out", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err
    assert "av-seld visualize: error:" in err and "bad_pred.csv:2" in err
    with pytest.raises(LabelFormatError, match="bad_pred.csv"):
        from av_seld.io.labels import read_prediction_csv

        read_prediction_csv(bad)
    good = tmp_path / "pred.csv"
    write_prediction_csv(good, static_events(0, 0, 0))
    assert main(["visualize", "--video", str(missing), "--pred", str(good), "--out", str(tmp_path / "o.mp4")]) == 2
    assert "nope.mp4" in capsys.readouterr().err
    assert main(["visualize", "--video", str(video), "--pred", str(good), "--out", str(tmp_path / "o.mp4"),
                 "--snapshot-times", "9"]) == 2
    assert "outside the video" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_snapshots_are_frames_that_show_events(tmp_path):
    # No event: spread over the whole video, the middle of each share (never the empty first frame by rule).
    assert snapshot_frames(20, FPS, 2, []) == [5, 15]
    active = np.zeros(20, bool)
    active[12:18] = True
    assert snapshot_frames(20, FPS, 2, [], active) == [13, 16]
    assert snapshot_frames(20, FPS, 1, [0.0], active) == [0, 15]  # times are kept as asked
    video = write_video(tmp_path / "clip.mp4")
    events = static_events(2, 45.0, 0.0).select(np.arange(NUM_FRAMES) >= 12)  # sounding from 1.2 s on
    result = render_overlay_video(video, tmp_path / "o.mp4", events, events, snapshot_count=3)
    shown = [int(p.stem.rsplit("_frame", 1)[1]) for p in result.snapshots]
    assert len(shown) == 3 and all(12 <= k < NUM_FRAMES for k in shown)


def _luma(bgr) -> float:
    b, g, r = (float(c) for c in bgr)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("background", [0, 255, 128])
def test_labels_stand_out_from_any_background(background):
    """Every class colour sits on a plate at least 60 grey levels (luma) lighter or darker than itself, over a black,
    white or mid-grey frame."""
    for c in range(NUM_CLASSES):
        image = np.full((60, 300, 3), background, np.uint8)
        x0, y0, x1, y1 = draw_label(image, CLASS_NAMES[c], 10, 40, class_colour_bgr(c), 0.6)
        plate = image[y0, x0 + 1:x1 - 1].astype(float)  # the top row of the plate lies above the text
        assert abs(_luma(class_colour_bgr(c)) - _luma(np.median(plate, axis=0))) >= 60, CLASS_NAMES[c]


def test_rings_are_named_unless_a_prediction_of_their_class_hits_them():
    width, height = 640, 320
    hit, missed = static_events(8, 60.0, 20.0), static_events(2, -90.0, 0.0)
    reference = Events.from_arrays(*[np.concatenate(pair) for pair in zip(
        *[(e.frame, e.class_index, e.source, e.azimuth_deg, e.elevation_deg) for e in (hit, missed)])])
    renderer = OverlayRenderer(hit, reference, width=width, height=height, num_label_frames=NUM_FRAMES)
    frame = renderer.render(np.full((height, width, 3), BACKGROUND, np.uint8), 5, 0.5)

    def coloured(box, class_index):  # pixels near the class colour (text is anti-aliased), far from grey and plate
        return (np.abs(box.astype(int) - class_colour_bgr(class_index)).sum(axis=-1) < 150).sum()

    i, j = equirect_pixel(-90.0, 0.0, width, height)
    assert coloured(frame[j + 10:j + 40, i - 60:i + 60], 2) > 20  # the missed event's name under its ring
    i, j = equirect_pixel(60.0, 20.0, width, height)
    assert coloured(frame[j + 10:j + 40, i - 60:i + 60], 8) == 0  # the hit is named once, beside its disc
    assert coloured(frame[j - 12:j + 12, i + 8:i + 120], 8) > 20


@pytest.mark.parametrize("width", [256, 640, 1920])
def test_timeline_names_whole_and_a_time_readout(width):
    renderer = OverlayRenderer(static_events(3, 0.0, 0.0), None, width=width, height=width // 2,
                               num_label_frames=NUM_FRAMES)
    room = renderer.label_w - renderer.swatch_px - 6
    assert [renderer._fit(name, room) for name in CLASS_NAMES] == list(CLASS_NAMES)
    black = np.zeros((width // 2, width, 3), np.uint8)
    start, later = renderer.render(black, 0, 0.0), renderer.render(black, 15, 1.5)
    header = slice(width // 2, width // 2 + renderer.header_px)
    assert np.any(start[header, renderer.clock_x:] != later[header, renderer.clock_x:])  # the clock moved
    assert renderer._clock(1.5) == "1.5 / 2.0 s"


def test_class_colours_are_far_apart():
    lab = cv2.cvtColor(np.array([CLASS_COLOURS_RGB], np.float32) / 255, cv2.COLOR_RGB2Lab)[0]
    distances = np.linalg.norm(lab[:, None] - lab[None], axis=-1)[np.triu_indices(NUM_CLASSES, 1)]
    assert len(set(CLASS_COLOURS_RGB)) == NUM_CLASSES and distances.min() > 28  # CIELAB ΔE*ab
