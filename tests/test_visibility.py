"""The realistic video variant: invisible sounding events and silent objects, per clip and seeded; labels untouched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from augment.visibility import VisibilityConfig, visible_rows
from av_seld.cli import main
from av_seld.io.audio import write_wav
from av_seld.io.labels import Events, write_reference_csv
from av_seld.io.video import read_video_at_label_rate

W, H = 128, 64


def _rows():
    rows = [(n, 2, 1, 40, 10) for n in range(0, 30)] + [(n, 8, 2, -100, -20) for n in range(10, 40)]
    return [np.array(col) for col in zip(*sorted(rows))]


def test_invisible_one_hides_every_event_and_zero_keeps_the_rows():
    rows = _rows()
    hidden = visible_rows(*rows, num_frames=40, rng=np.random.default_rng(0),
                          config=VisibilityConfig(invisible_fraction=1.0))
    assert all(len(col) == 0 for col in hidden)
    same = visible_rows(*rows, num_frames=40, rng=np.random.default_rng(0), config=VisibilityConfig())
    assert all(np.array_equal(a, b) for a, b in zip(same, rows))


def test_silent_objects_are_new_tracks_inside_the_clip():
    rows = _rows()
    config = VisibilityConfig(silent_per_minute=60.0, silent_length_s=(1.0, 2.0))
    frame, cls, source, az, el = visible_rows(*rows, num_frames=600, rng=np.random.default_rng(3), config=config)
    silent = source < 0
    assert len(np.unique(source[silent])) > 30  # Poisson(60) objects in a minute
    assert frame[silent].min() >= 0 and frame[silent].max() < 600
    assert np.all((el[silent] >= -30) & (el[silent] <= 30))
    assert np.array_equal(frame[~silent], rows[0])  # the sounding events are all still there


def test_half_invisible_hides_some_events_and_is_seeded():
    rows = [np.array(col) for col in zip(*[(n, n // 5 % 13, n // 5, 0, 0) for n in range(200)])]  # 40 events
    config = VisibilityConfig(invisible_fraction=0.5)
    a = visible_rows(*rows, num_frames=200, rng=np.random.default_rng(1), config=config)
    b = visible_rows(*rows, num_frames=200, rng=np.random.default_rng(1), config=config)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert 40 < len(a[0]) < 160 and len(a[0]) % 5 == 0  # whole events are hidden, not single frames


def _dataset(root):
    # one clip with a sounding event all along, one clip with no events at all (its length from the wav)
    write_reference_csv(root / "metadata_dev" / "s" / "fold1_room0_mix001.csv",
                        Events.from_arrays(*zip(*[(n, 3, 0, 0, 0) for n in range(20)])))
    write_reference_csv(root / "metadata_dev" / "s" / "fold1_room0_mix002.csv", Events.empty())
    write_wav(root / "foa_dev" / "s" / "fold1_room0_mix002.wav", np.zeros((4, 24000 * 2), np.float32))
    # one still panorama for both clips: a smooth gradient the codec keeps well
    y, x = np.mgrid[:H, :W]
    background = np.stack([60 + x * 100 // W, 60 + y * 100 // H, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    cv2.imwrite(str(root / "panorama.png"), background)


def _frames(root, name):
    return read_video_at_label_rate(root / "video_dev" / "s" / f"{name}.mp4", width=W, height=H).frames.astype(int)


def _drawn(frames, root):
    """Per frame, the share of pixels far from the still panorama background (codec noise stays far below 30)."""
    background = cv2.imread(str(root / "panorama.png")).astype(int)[None, ..., ::-1]
    return (np.abs(frames - background).max(axis=-1) > 30).mean(axis=(1, 2))


@pytest.mark.parametrize("variant", ["clean", "invisible", "silent"])
def test_synth_video_realistic_options(tmp_path, variant):
    _dataset(tmp_path)
    labels = {p.name: p.read_bytes() for p in (tmp_path / "metadata_dev" / "s").iterdir()}
    options = {"clean": [], "invisible": ["--invisible", "1.0"], "silent": ["--silent-objects", "120"]}[variant]
    assert main(["synth-video", str(tmp_path), "--split", "s", "--size", f"{W}x{H}", "--fps", "10", "--seed", "2",
                 "--background", str(tmp_path / "panorama.png"), *options]) == 0
    sounding = _drawn(_frames(tmp_path, "fold1_room0_mix001"), tmp_path)
    silent_clip = _drawn(_frames(tmp_path, "fold1_room0_mix002"), tmp_path)
    if variant == "invisible":
        assert sounding.max() == 0  # the sounding event is not drawn: every frame is the background
    else:
        assert sounding.min() > 0  # drawn in every frame (a sprite about 15 px wide, its colours vary)
    if variant == "silent":
        assert (silent_clip > 0.002).mean() > 0.5  # objects come and go in a clip that has no labels
    else:
        assert silent_clip.max() == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "metadata_dev" / "s").iterdir()} == labels  # never labelled
