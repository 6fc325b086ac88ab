"""av-seld synth-video: videos as long as the clips, events where the labels say, deterministic, resumable."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from augment.mosaic import MosaicConfig
from av_seld import geometry as g
from av_seld.cli import main
from av_seld.data.synth_video import parse_size, synthesize_video_dataset
from av_seld.errors import InputError
from av_seld.io.audio import write_wav
from av_seld.io.labels import Events, write_reference_csv
from av_seld.io.video import read_video_at_label_rate, video_info

W, H = 256, 128


def _write_labels(root, split, name, rows):
    write_reference_csv(root / "metadata_dev" / split / f"{name}.csv", Events.from_arrays(*zip(*rows)))


def _disc_bank(root):
    """A crop folder with a white disc (alpha outside) for every class: symmetric, so its centroid is its centre."""
    y, x = np.mgrid[:48, :48] + 0.5
    disc = np.zeros((48, 48, 4), np.uint8)
    disc[np.hypot(x - 24, y - 24) < 21] = 255
    for c in range(13):
        (root / str(c)).mkdir(parents=True)
        cv2.imwrite(str(root / str(c) / "disc.png"), disc)
    return root


def _sphere_centroid(weight):
    azimuth, elevation = g.pixel_center_directions(weight.shape[1], weight.shape[0])
    w = weight * np.cos(np.radians(elevation))
    az, el = g.cart_to_sph((g.sph_to_cart(azimuth, elevation) * w[..., None]).sum(axis=(0, 1)))
    return float(az), float(el)


def test_video_length_follows_the_labels_or_the_wav(tmp_path):
    _write_labels(tmp_path, "s", "fold1_room0_mix001", [(n, 2, 0, 10, 0) for n in range(3, 20)])  # 20 frames: 2.0 s
    _write_labels(tmp_path, "s", "fold1_room0_mix002", [(1, 2, 0, 10, 0)])
    write_wav(tmp_path / "foa_dev" / "s" / "fold1_room0_mix002.wav", np.zeros((4, 24000 * 5 // 2), np.float32))
    results = {r.name: r for r in synthesize_video_dataset(tmp_path, split="s", width=W, height=H, fps=30)}
    assert {name: r.num_frames for name, r in results.items()} == {"fold1_room0_mix001": 60, "fold1_room0_mix002": 75}
    for name, duration in (("fold1_room0_mix001", 2.0), ("fold1_room0_mix002", 2.5)):
        num_frames, fps, width, height = video_info(tmp_path / "video_dev" / "s" / f"{name}.mp4")  # decord
        assert (num_frames, fps, width, height) == (round(duration * 30), 30.0, W, H)
    assert sorted(p.name for p in (tmp_path / "video_dev" / "s").iterdir()) == ["fold1_room0_mix001.mp4",
                                                                                 "fold1_room0_mix002.mp4"]
    # Resumable: a rerun keeps both.
    assert all(r.skipped for r in synthesize_video_dataset(tmp_path, split="s", width=W, height=H))


@pytest.mark.parametrize("fps, projection", [(30.0, "perspective"), (10.0, "perspective"), (10.0, "cubemap")])
def test_decoded_events_sit_at_their_label_directions(tmp_path, fps, projection):
    """Label directions at the seam and at θ = ±60°, read back from the decoded mp4 at the label rate."""
    rows = []
    for n in range(12):
        rows += [(n, 0, 0, 179, 0), (n, 5, 1, -179, -60), (n, 9, 0, 60, 60), (n, 11, 3, -90 + 2 * n, 10)]
    _write_labels(tmp_path, "s", "fold1_room0_mix001", rows)
    background = tmp_path / "black.png"
    cv2.imwrite(str(background), np.zeros((H, W, 3), np.uint8))
    list(synthesize_video_dataset(tmp_path, split="s", crops=_disc_bank(tmp_path / "crops"), background=background,
                                  width=W, height=H, fps=fps, seed=3, config=MosaicConfig(projection=projection)))
    video = read_video_at_label_rate(tmp_path / "video_dev" / "s" / "fold1_room0_mix001.mp4", width=W, height=H)
    assert video.valid.all() and len(video.frames) == 12
    directions = g.pixel_center_directions(W, H)
    for n in (0, 5, 11):
        brightness = video.frames[n].mean(axis=-1) / 255.0
        brightness[brightness < 0.1] = 0  # codec ringing on black
        for _, _, _, azimuth, elevation in [r for r in rows if r[0] == n]:
            near = g.angular_distance_deg(*directions, azimuth, elevation) < 22
            found = _sphere_centroid(brightness * near)
            assert g.angular_distance_deg(*found, azimuth, elevation) < 1.5, (n, azimuth, elevation, found)


def test_same_seed_same_frames_and_workers_do_not_matter(tmp_path):
    rows = [(n, n % 13, 0, 20 * n - 170, 30 - 5 * n) for n in range(15)] + [(n, 1, 4, 0, 0) for n in range(15)]
    for k in (1, 2):
        _write_labels(tmp_path / "a", "s", f"fold1_room0_mix00{k}", sorted(rows))
        _write_labels(tmp_path / "b", "s", f"fold1_room0_mix00{k}", sorted(rows))
        _write_labels(tmp_path / "c", "s", f"fold1_room0_mix00{k}", sorted(rows))
    list(synthesize_video_dataset(tmp_path / "a", split="s", width=W, height=H, seed=7))
    list(synthesize_video_dataset(tmp_path / "b", split="s", width=W, height=H, seed=7, workers=2))
    list(synthesize_video_dataset(tmp_path / "c", split="s", width=W, height=H, seed=8))

    def frames(root, k):
        return read_video_at_label_rate(root / "video_dev" / "s" / f"fold1_room0_mix00{k}.mp4", width=W,
                                        height=H).frames

    for k in (1, 2):
        np.testing.assert_array_equal(frames(tmp_path / "a", k), frames(tmp_path / "b", k))
        assert np.abs(frames(tmp_path / "a", k).astype(int) - frames(tmp_path / "c", k)).mean() > 3
    # Two clips with the same labels still differ: each clip has its own generator.
    assert np.abs(frames(tmp_path / "a", 1).astype(int) - frames(tmp_path / "a", 2)).mean() > 3


def test_video_background_and_round_trip_of_the_two_projections(tmp_path):
    """Real-video backgrounds stream; a crop extracted from the synthetic video at a label direction and pasted back
    at that direction reproduces the region."""
    from augment.mosaic import procedural_room
    from augment.perspective import extract_perspective, paste_crop

    room = procedural_room(W, H, np.random.default_rng(0))
    (tmp_path / "bg").mkdir()
    writer = cv2.VideoWriter(str(tmp_path / "bg" / "room.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (W, H))
    for _ in range(10):  # shorter than the clip: it loops
        writer.write(room)
    writer.release()
    _write_labels(tmp_path, "s", "fold1_room0_mix001", [(n, 6, 0, -120, 25) for n in range(15)])
    list(synthesize_video_dataset(tmp_path, split="s", background=tmp_path / "bg", width=W, height=H, seed=1))
    frame = read_video_at_label_rate(tmp_path / "video_dev" / "s" / "fold1_room0_mix001.mp4", width=W,
                                     height=H).frames[7]
    crop = extract_perspective(frame, -120, 25, fov_deg=45, crop_width=40)
    pasted = np.zeros_like(frame)
    paste_crop(pasted, np.concatenate([crop, np.full((40, 40, 1), 255, np.uint8)], -1), -120, 25, fov_deg=45)
    probe = np.zeros_like(frame)
    paste_crop(probe, np.full((32, 32, 4), 255, np.uint8), -120, 25, fov_deg=np.degrees(2 * np.arctan(np.tan(
        np.radians(22.5)) * 32 / 40)))
    inside = probe[..., 0] == 255
    error = np.abs(pasted[inside].astype(int) - frame[inside])
    assert inside.sum() > 300 and error.mean() < 6
    # The event is visible: the region differs from the plain room background there.
    assert np.abs(frame[inside].astype(int) - cv2.cvtColor(room, cv2.COLOR_BGR2RGB)[inside]).mean() > 10


def test_input_errors(tmp_path):
    with pytest.raises(InputError, match="metadata folder not found"):
        list(synthesize_video_dataset(tmp_path, split="nope", width=W, height=H))
    _write_labels(tmp_path, "s", "fold1_room0_mix001", [(0, 1, 0, 0, 0)])
    with pytest.raises(InputError, match="background not found"):
        list(synthesize_video_dataset(tmp_path, split="s", background=tmp_path / "missing.jpg", width=W, height=H))
    for bad in ("640x640", "64x", "641x320.5", "0x0"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert parse_size("640x320") == (640, 320)


def test_cli(tmp_path, capsys):
    _write_labels(tmp_path, "s", "fold1_room0_mix001", [(n, 3, 0, 45, 0) for n in range(10)])
    assert main(["synth-video", str(tmp_path), "--split", "s", "--size", "256x128", "--seed", "2"]) == 0
    assert "1 video written, 0 already complete" in capsys.readouterr().out
    assert video_info(tmp_path / "video_dev" / "s" / "fold1_room0_mix001.mp4")[0] == 30
    assert main(["synth-video", str(tmp_path), "--split", "s", "--size", "256x128"]) == 0
    assert "0 videos written, 1 already complete" in capsys.readouterr().out
    assert main(["synth-video", str(tmp_path), "--split", "s", "--size", "300x100"]) == 2
    assert "error: --size" in capsys.readouterr().err
    assert main(["synth-video", str(tmp_path), "--split", "s", "--crops", str(tmp_path / "nope")]) == 2
    assert main(["extract-crops", str(tmp_path), str(tmp_path / "crops"), "--fov", "50", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "1 crop from 1 clip" in out and (tmp_path / "crops" / "3").is_dir()
    assert main(["extract-crops", str(tmp_path), str(tmp_path / "cube"), "--size", "32", "--projection", "cubemap"]) == 0
    assert "1 crop from 1 clip in" in capsys.readouterr().out and (tmp_path / "cube" / "3").is_dir()
    (tmp_path / "video_dev" / "s" / "fold1_room0_mix001.mp4").unlink()
    assert main(["synth-video", str(tmp_path), "--split", "s", "--size", "256x128", "--projection", "cubemap"]) == 0
    assert "1 video written" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["synth-video", str(tmp_path), "--split", "s", "--projection", "fisheye"])


def _grey_video(path, levels, fps=10):
    """A video whose frame k is flat grey ``levels[k]``: which source frame a background came from is readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    for level in levels:
        writer.write(np.full((H, W, 3), level, np.uint8))
    writer.release()


def test_event_free_runs_follow_the_label_frames():
    from av_seld.data.synth_video import event_free_runs

    events = Events.from_arrays(*zip(*[(1, 0, 0, 0, 0), (2, 3, 1, 10, 0), (5, 0, 0, 0, 0)]))
    assert event_free_runs(events, 24, 30.0) == ((0, 3), (9, 15), (18, 24))  # label n = video frames 3n .. 3n + 2
    assert event_free_runs(events, 8, 10.0) == ((0, 1), (3, 5), (6, 8))
    assert event_free_runs(Events.from_arrays(*zip(*[(0, 0, 0, 0, 0)])), 0, 10.0) == ()


def test_labelled_background_video_gives_only_event_free_frames(tmp_path, caplog):
    """A background video with a CSV beside it: frames 0-9 have events (dark), 10-19 not (light); only light ones
    are used, the count is logged, and a video that is busy throughout is an error."""
    levels = [10 + 10 * k for k in range(20)]
    _grey_video(tmp_path / "bg" / "room.mp4", levels)
    write_reference_csv(tmp_path / "bg" / "room.csv", Events.from_arrays(*zip(*[(n, 1, 0, 30, 0) for n in range(10)])))
    _write_labels(tmp_path / "out", "s", "fold1_room0_mix001", [(n, 6, 0, 90, 0) for n in range(25)])  # 2.5 s
    with caplog.at_level("INFO", logger="av_seld"):
        list(synthesize_video_dataset(tmp_path / "out", split="s", background=tmp_path / "bg", width=W, height=H,
                                      fps=10, seed=4))
    assert "10 of 20 frames of 1 labelled videos have no event active and qualify" in caplog.text
    frames = read_video_at_label_rate(tmp_path / "out" / "video_dev" / "s" / "fold1_room0_mix001.mp4", width=W,
                                      height=H).frames
    away = frames[:, H // 2 - 10 : H // 2 + 10, 3 * W // 4 - 10 : 3 * W // 4 + 10].mean(axis=(1, 2, 3))  # φ = −90
    assert len(away) == 25 and away.min() > 100, away  # never an event frame (levels ≤ 100)
    assert len(np.unique(np.round(away / 10))) >= 8  # the event-free frames play, looped

    # A STARSS-style dataset root: labelled clips qualify the same way; a clip without labels is left out.
    root = tmp_path / "starss"
    _grey_video(root / "video_dev" / "dev-train" / "fold3_room1_mix001.mp4", levels)
    _grey_video(root / "video_dev" / "dev-train" / "fold3_room1_mix002.mp4", levels[:5])
    write_reference_csv(root / "metadata_dev" / "dev-train" / "fold3_room1_mix001.csv",
                        Events.from_arrays(*zip(*[(n, 1, 0, 30, 0) for n in range(3, 8)])))
    from av_seld.data.synth_video import scan_backgrounds

    found = scan_backgrounds(root)
    assert [(v.path.name, v.runs) for v in found.videos] == [("fold3_room1_mix001.mp4", ((0, 3), (8, 20)))]
    assert "1 video without a reference CSV not used" in caplog.text

    write_reference_csv(tmp_path / "bg" / "room.csv", Events.from_arrays(*zip(*[(n, 1, 0, 30, 0) for n in range(20)])))
    with pytest.raises(InputError, match="no background frame qualifies"):
        list(synthesize_video_dataset(tmp_path / "out", split="s", background=tmp_path / "bg", width=W, height=H))
