import logging

import cv2
import numpy as np
import pytest

from av_seld import timing
from av_seld.errors import VideoFormatError
from av_seld.io.video import read_video_at_label_rate, video_info

WIDTH, HEIGHT, NUM_BITS = 64, 32, 8
ON_RGB = (255, 255, 0)  # yellow bars: red and blue differ, so an RGB/BGR swap shows


def _write_video(path, fps, num_frames):
    """Frame k shows k in binary: NUM_BITS vertical bars, yellow for 1, black for 0 (bit 0 leftmost)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    bar = WIDTH // NUM_BITS
    for k in range(num_frames):
        rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        for bit in range(NUM_BITS):
            if k >> bit & 1:
                rgb[:, bit * bar : (bit + 1) * bar] = ON_RGB
        writer.write(rgb[..., ::-1])  # OpenCV writes BGR
    writer.release()
    return path


def _decode_index(frame):
    """Frame index from an (H, W, 3) RGB frame of any size: read the green channel at each bar's centre."""
    height, width = frame.shape[:2]
    centres = ((np.arange(NUM_BITS) + 0.5) * width / NUM_BITS).astype(int)
    bits = frame[height // 2, centres, 1] > 128
    return int(np.sum(bits << np.arange(NUM_BITS)))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    # 29.97: the container stores 29.97 as written; 25 fps puts odd label frames exactly between two video frames
    # (the tie goes to the later one); 7 fps makes neighbouring label frames share a video frame.
    specs = {"30": (30.0, 75), "29.97": (29.97, 80), "25": (25.0, 60), "7": (7.0, 20)}
    return {name: (_write_video(folder / f"clip_{name}.mp4", fps, n), fps, n) for name, (fps, n) in specs.items()}


def test_decoder_round_trip_of_the_index_code(videos):
    # The check below trusts _decode_index; make sure every frame decodes to its own index.
    path, _, num_frames = videos["29.97"]
    cap = cv2.VideoCapture(str(path))
    decoded = []
    while (ok_frame := cap.read())[0]:
        decoded.append(_decode_index(ok_frame[1][..., ::-1]))
    assert decoded == list(range(num_frames))


@pytest.mark.parametrize("name", ["30", "29.97", "25", "7"])
def test_frames_follow_the_timing_rule(videos, name):
    path, fps, num_frames = videos[name]
    assert video_info(path) == (num_frames, pytest.approx(fps), WIDTH, HEIGHT)
    video = read_video_at_label_rate(path, width=WIDTH, height=HEIGHT)

    n = timing.label_frames_covered_by_video(num_frames, fps)
    expected = timing.video_frame_for_label_frame(np.arange(n), fps)
    assert video.frames.shape == (n, HEIGHT, WIDTH, 3) and video.frames.dtype == np.uint8
    assert video.valid.all() and video.num_source_frames == num_frames and video.fps == pytest.approx(fps)
    assert [_decode_index(f) for f in video.frames] == expected.tolist()
    assert expected[-1] <= num_frames - 1 < timing.video_frame_for_label_frame(n, fps)  # covers the whole video
    if name == "25":
        assert expected[:4].tolist() == [0, 3, 5, 8]  # 2.5 -> 3 and 7.5 -> 8: ties go later


def test_rgb_order(videos):
    video = read_video_at_label_rate(videos["30"][0], width=WIDTH, height=HEIGHT)
    frame = video.frames[1]  # label frame 1 -> video frame 3: bits 0 and 1 on
    r, g, b = frame[HEIGHT // 2, WIDTH // 16].astype(int)
    assert r > 200 and g > 200 and b < 60


@pytest.mark.parametrize("size", [(32, 16), (96, 48), (48, 24), (40, 40)])
def test_resized_output(videos, size):
    # 48 wide is one of the widths decord 0.6 returns garbled (row padding read as channels): the reader falls back.
    path, fps, num_frames = videos["29.97"]
    width, height = size
    video = read_video_at_label_rate(path, width=width, height=height)
    assert video.frames.shape == (len(video.valid), height, width, 3)
    expected = timing.video_frame_for_label_frame(np.arange(len(video.valid)), fps)
    assert [_decode_index(f) for f in video.frames] == expected.tolist()


def test_short_video_is_padded_not_clamped(videos, caplog):
    path, fps, num_frames = videos["30"]  # 75 frames = 2.5 s: label frames 0..24 are inside
    with caplog.at_level(logging.WARNING, logger="av_seld.io.video"):
        video = read_video_at_label_rate(path, num_label_frames=40, width=WIDTH, height=HEIGHT)
    assert video.frames.shape == (40, HEIGHT, WIDTH, 3)
    assert video.valid.tolist() == [True] * 25 + [False] * 15
    assert not video.frames[25:].any()
    assert [_decode_index(f) for f in video.frames[:25]] == list(range(0, 75, 3))
    [record] = [r for r in caplog.records if r.name == "av_seld.io.video"]
    assert record.levelno == logging.WARNING
    assert "clip_30.mp4" in record.getMessage() and "padded 15 of 40" in record.getMessage()


def test_fewer_label_frames_than_the_video_reads_a_prefix(videos, caplog):
    path, _, _ = videos["30"]
    with caplog.at_level(logging.WARNING):
        video = read_video_at_label_rate(path, num_label_frames=4, width=WIDTH, height=HEIGHT)
    assert [_decode_index(f) for f in video.frames] == [0, 3, 6, 9] and video.valid.all()
    assert not caplog.records


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(VideoFormatError, match=r"absent\.mp4: file not found"):
        read_video_at_label_rate(tmp_path / "absent.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    for reader in (read_video_at_label_rate, video_info):
        with pytest.raises(VideoFormatError, match=r"garbage\.mp4: cannot be read as a video"):
            reader(garbage)
