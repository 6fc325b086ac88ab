"""Crop banks: the procedural sprites, folders of images, and crops extracted from 360° video at steady events."""

from __future__ import annotations

import csv
import os

import cv2
import numpy as np
import pytest

from augment import perspective
from augment.crops import CropBank, procedural_sprite, read_index, read_rgba
from av_seld.classes import NUM_CLASSES
from av_seld.data.crop_extract import extract_crops, steady_spots
from av_seld.errors import InputError
from av_seld.io.labels import Events, write_reference_csv


def test_procedural_sprites_cover_every_class_and_vary_with_the_seed():
    sprites = [procedural_sprite(c, np.random.default_rng(0)) for c in range(NUM_CLASSES)]
    for sprite in sprites:
        assert sprite.shape == (128, 128, 4) and sprite.dtype == np.uint8
        coverage = (sprite[..., 3] > 0).mean()
        assert 0.05 < coverage < 0.9  # an object on a transparent surround
    np.testing.assert_array_equal(sprites[3], procedural_sprite(3, np.random.default_rng(0)))
    assert np.abs(sprites[3].astype(int) - procedural_sprite(3, np.random.default_rng(1))).mean() > 3
    # Class-distinctive: every pair of classes differs clearly in shape (alpha) and colour, at 16 × 16.
    small = [cv2.resize(s, (16, 16), interpolation=cv2.INTER_AREA).astype(float) for s in sprites]
    for i in range(NUM_CLASSES):
        for j in range(i + 1, NUM_CLASSES):
            assert np.abs(small[i] - small[j]).mean() > 15, (i, j)
    assert procedural_sprite(12, np.random.default_rng(0), size=48).shape == (48, 48, 4)
    with pytest.raises(ValueError):
        procedural_sprite(13, np.random.default_rng(0))


def test_builtin_bank_draws_sprites():
    bank = CropBank.open("builtin")
    assert bank.classes() == list(range(NUM_CLASSES))
    crop = bank.draw(7, np.random.default_rng(5))
    np.testing.assert_array_equal(crop, procedural_sprite(7, np.random.default_rng(5)))


def test_folder_bank_reads_alpha_and_class_names(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 255  # red, in RGBA order
    rgba[:, :6, 3] = 255  # left half opaque
    (tmp_path / "telephone").mkdir()
    cv2.imwrite(str(tmp_path / "telephone" / "a.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    (tmp_path / "11").mkdir()
    cv2.imwrite(str(tmp_path / "11" / "b.jpg"), np.full((8, 8, 3), (255, 0, 0), np.uint8))  # blue, BGR on disk
    (tmp_path / "11" / "notes.txt").write_text("ignored")
    bank = CropBank.from_folder(tmp_path)
    assert bank.classes() == [3, 11] and bank.missing_classes([0, 3]) == [0]
    np.testing.assert_array_equal(bank.draw(3, np.random.default_rng(0)), rgba)
    bell = bank.draw(11, np.random.default_rng(0))
    assert bell.shape == (8, 8, 4) and (bell[..., 3] == 255).all() and bell[..., 2].min() > 240  # opaque blue
    with pytest.raises(KeyError):
        bank.draw(0, np.random.default_rng(0))
    assert read_rgba(tmp_path / "11" / "b.jpg")[0, 0, 2] > 240


def test_folder_bank_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match="crop folder not found"):
        CropBank.from_folder(tmp_path / "nope")
    (tmp_path / "kettle drum").mkdir()
    with pytest.raises(InputError, match="unknown class"):
        CropBank.from_folder(tmp_path)
    (tmp_path / "kettle drum").rmdir()
    (tmp_path / "5").mkdir()
    with pytest.raises(InputError, match="no images"):
        CropBank.from_folder(tmp_path)
    (tmp_path / "5" / "x.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot be read as an image"):
        read_rgba(tmp_path / "5" / "x.png")


def _events(rows):
    return Events.from_arrays(*zip(*rows))


def test_steady_spots_need_a_steady_isolated_event():
    rows = [(n, 0, 0, 30, 0) for n in range(0, 30)]  # steady speaker
    rows += [(n, 8, 1, -90 + 5 * n, 0) for n in range(0, 30)]  # music moving 5° per frame: never steady
    rows += [(n, 3, 2, 40, 5) for n in range(20, 30)]  # a phone 11° from the speaker: both not isolated then
    spots = steady_spots(_events(sorted(rows)), steady_frames=3, max_motion_deg=3, isolation_deg=30,
                         min_gap_frames=10)
    assert [(s.frame, s.class_index) for s in spots] == [(3, 0), (13, 0)]
    assert spots[0].azimuth_deg == 30 and spots[0].elevation_deg == 0


def _write_video(path, frames, fps=30.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()


@pytest.mark.parametrize("projection", ["perspective", "cubemap"])
def test_extract_crops_from_a_360_video(tmp_path, projection):
    """Paste a known sprite at a labelled direction into a video; the extracted crop is that sprite."""
    width, height = 512, 256
    sprite = procedural_sprite(4, np.random.default_rng(0), size=64)
    frame = np.full((height, width, 3), 40, np.uint8)
    perspective.paste_crop(frame, sprite[..., [2, 1, 0, 3]], 150, 20, fov_deg=40)  # BGR frame for the writer
    (tmp_path / "video_dev" / "s").mkdir(parents=True)
    _write_video(tmp_path / "video_dev" / "s" / "fold1_room0_mix001.mp4", [frame] * 20)
    write_reference_csv(tmp_path / "metadata_dev" / "s" / "fold1_room0_mix001.csv",
                        _events([(n, 4, 0, 150, 20) for n in range(8)]))
    out = tmp_path / "crops"
    results = list(extract_crops(tmp_path, out, fov_deg=40, size=64, projection=projection))
    assert [(r.num_crops, r.num_written) for r in results] == [(1, 1)]
    rows = read_index(out)
    assert rows == [{"path": "4/fold1_room0_mix001_f00003_s0.png", "class": "4", "clip": "s/fold1_room0_mix001",
                     "frame": "3", "azimuth": "150", "elevation": "20", "fov": "40"}]
    crop = read_rgba(out / rows[0]["path"])
    assert crop.shape == (64, 64, 4)
    opaque = sprite[..., 3] == 255
    blended = sprite[..., :3] * (sprite[..., 3:] / 255) + 40 * (1 - sprite[..., 3:] / 255)
    assert np.abs(crop[..., :3].astype(float) - blended)[opaque].mean() < 12
    assert CropBank.from_folder(out).classes() == [4]  # usable as --crops
    # Resumable: a second run writes nothing new but keeps the index.
    mtime = os.path.getmtime(out / rows[0]["path"])
    again = extract_crops(tmp_path, out, fov_deg=40, size=64, projection=projection)
    assert [(r.num_crops, r.num_written) for r in again] == [(1, 0)]
    assert os.path.getmtime(out / rows[0]["path"]) == mtime and read_index(out) == rows


@pytest.mark.shared_data
def test_extract_crop_at_the_blue_disc_of_the_calibration_video(shared_data_dir, tmp_path):
    video = shared_data_dir / "video360" / "calib_testRoom1_1920x960_12s.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent")
    (tmp_path / "video_dev" / "calib").mkdir(parents=True)
    os.symlink(video, tmp_path / "video_dev" / "calib" / "fold9_room1_mix001.mp4")
    write_reference_csv(tmp_path / "metadata_dev" / "calib" / "fold9_room1_mix001.csv",
                        _events([(n, 8, 0, 0, 0) for n in range(10)]))
    out = tmp_path / "crops"
    assert sum(r.num_written for r in extract_crops(tmp_path, out, fov_deg=30, size=64)) == 1
    with open(out / "index.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    crop = read_rgba(out / row["path"]).astype(int)[24:40, 24:40]
    assert (crop[..., 2] > 180).mean() > 0.9 and (crop[..., 0] < 90).mean() > 0.9  # the bright blue disc at φ = 0
