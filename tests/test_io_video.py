import logging
import shutil

import cv2
import numpy as np
import pytest

from av_seld import timing
from av_seld.errors import VideoFormatError
from av_seld.io.audio import write_wav
from av_seld.io.video import VideoReader, VideoWriter, read_video_at_label_rate, video_info

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


# ------------------------------------------------------------------------------------------ reader and writer API

HAS_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="no ffmpeg binary on PATH")


def _index_frames(num_frames, width=WIDTH, height=HEIGHT):
    """RGB frames showing their index in binary, as _write_video draws them."""
    bar = width // NUM_BITS
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    for k in range(num_frames):
        for bit in range(NUM_BITS):
            if k >> bit & 1:
                frames[k, :, bit * bar:(bit + 1) * bar] = ON_RGB
    return frames


@pytest.fixture
def no_ffmpeg(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "ffmpeg" else real_which(name, *a, **k))


def test_reader_reads_a_chunk_of_label_frames(videos):
    path, fps, num_frames = videos["29.97"]  # 80 frames: label frames 0..26 are inside
    reader = VideoReader(path, WIDTH, HEIGHT)
    assert (len(reader), reader.fps, reader.width, reader.height) == (num_frames, pytest.approx(fps), WIDTH, HEIGHT)
    label_frames = np.arange(20, 30)
    wanted = np.arange(10) != 2
    frames, valid = reader.read_label_frames(label_frames, wanted)
    assert frames.shape == (10, HEIGHT, WIDTH, 3)
    expected = timing.video_frame_for_label_frame(label_frames, fps)
    np.testing.assert_array_equal(valid, wanted & (expected < num_frames))
    assert [_decode_index(f) for f in frames[valid]] == expected[valid].tolist()
    assert not frames[~valid].any()
    # The chunk equals the same label frames of a whole-clip read.
    whole = read_video_at_label_rate(path, num_label_frames=30, width=WIDTH, height=HEIGHT)
    np.testing.assert_array_equal(frames[valid], whole.frames[20:30][valid])


def test_reader_batches_by_index_and_resizes_either_way(videos):
    path, _, num_frames = videos["30"]
    reader = VideoReader(path)  # the file's own size
    assert (reader.width, reader.height) == (WIDTH, HEIGHT)
    seen = []
    for indices, frames in reader.batches(start=5, batch_frames=16):
        assert len(indices) == len(frames) <= 16
        seen += [_decode_index(f) for f in frames]
        assert seen[-len(indices):] == indices.tolist()
    assert seen == list(range(5, num_frames))
    seen = []
    for indices, frames in reader.batches(batch_frames=10):  # sequential decoding, with random reads in between
        np.testing.assert_array_equal(frames, reader.read(indices))
        seen += [_decode_index(f) for f in frames]
    assert seen == list(range(num_frames))
    for resize in ("decoder", "opencv"):
        small = VideoReader(path, 48, 24, resize=resize).read([0, 7, 3])  # 48: decord's garbled width
        assert small.shape == (3, 24, 48, 3) and [_decode_index(f) for f in small] == [0, 7, 3]
    with pytest.raises(ValueError, match="both width and height"):
        VideoReader(path, 48)


@pytest.mark.parametrize("codec", ["mp4v", pytest.param("h264", marks=needs_ffmpeg)])
@pytest.mark.parametrize("channels", ["rgb", "bgr"])
def test_writer_round_trip(tmp_path, codec, channels):
    frames = _index_frames(40)
    path = tmp_path / "out" / "clip.mp4"
    with VideoWriter(path, 29.97, (WIDTH, HEIGHT), codec=codec, channels=channels) as writer:
        for frame in frames:
            writer.write(frame if channels == "rgb" else frame[..., ::-1])
    assert writer.codec == codec and writer.num_frames == 40 and not writer.audio_muxed
    assert video_info(path) == (40, pytest.approx(29.97, abs=1e-3), WIDTH, HEIGHT)
    decoded = VideoReader(path).read(np.arange(40))
    assert [_decode_index(f) for f in decoded] == list(range(40))
    r, g, b = decoded[1, HEIGHT // 2, WIDTH // 16].astype(int)  # frame 1: bit 0 on, yellow
    assert r > 200 and g > 200 and b < 60
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]


def test_writer_without_ffmpeg_writes_mp4v_silently_with_a_warning(tmp_path, no_ffmpeg, caplog):
    wav = tmp_path / "clip.wav"
    write_wav(wav, np.zeros((4, timing.SAMPLE_RATE), np.float32))
    path = tmp_path / "clip.mp4"
    with caplog.at_level(logging.WARNING, logger="av_seld.io.video"):
        with VideoWriter(path, 10, (WIDTH, HEIGHT), audio=wav) as writer:
            for frame in _index_frames(10):
                writer.write(frame)
    assert writer.codec == "mp4v" and not writer.audio_muxed
    assert "without the audio" in caplog.text and "ffmpeg" in caplog.text
    assert video_info(path)[0] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.wav"]
    with pytest.raises(VideoFormatError, match="H.264 needs the ffmpeg binary"):
        with VideoWriter(tmp_path / "h264.mp4", 10, (WIDTH, HEIGHT), codec="h264"):
            pass
    assert not (tmp_path / "h264.mp4").exists()


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["auto", "mp4v"])
def test_writer_muxes_audio_with_ffmpeg(tmp_path, codec):
    import decord

    wav = tmp_path / "clip.wav"
    write_wav(wav, 0.1 * np.ones((4, timing.SAMPLE_RATE), np.float32))
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, 10, (WIDTH, HEIGHT), audio=wav, codec=codec) as writer:
        for frame in _index_frames(10):
            writer.write(frame)
    assert writer.codec == ("h264" if codec == "auto" else "mp4v") and writer.audio_muxed  # mp4v: ffmpeg encodes it
    assert [_decode_index(f) for f in VideoReader(path).read(np.arange(10))] == list(range(10))
    assert decord.AudioReader(str(path)).shape[1] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.wav"]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("ffmpeg", [pytest.param(True, marks=needs_ffmpeg), False])
def test_a_failing_writer_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, ffmpeg):
    if not ffmpeg:
        monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"the previous video")
    with pytest.raises(_Stop):  # the caller fails half-way
        with VideoWriter(path, 10, (WIDTH, HEIGHT)) as writer:
            for frame in _index_frames(5):
                writer.write(frame)
            raise _Stop
    with pytest.raises(ValueError, match="frames must be uint8"):  # a frame of the wrong size
        with VideoWriter(path, 10, (WIDTH, HEIGHT)) as writer:
            writer.write(np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8))
    with pytest.raises(VideoFormatError, match="no frame was written"):
        with VideoWriter(path, 10, (WIDTH, HEIGHT)):
            pass
    if ffmpeg:  # the encoder itself fails: an audio file it cannot read
        bad = tmp_path / "bad.wav"
        bad.write_bytes(b"not audio")
        with pytest.raises(VideoFormatError, match="ffmpeg"):
            with VideoWriter(path, 10, (WIDTH, HEIGHT), audio=bad) as writer:
                for frame in _index_frames(5):
                    writer.write(frame)
    assert path.read_bytes() == b"the previous video"
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.wav", "clip.mp4"] if ffmpeg else ["clip.mp4"])


def test_odd_frame_sizes_fall_back_to_mp4v(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, 10, (65, 33)) as writer:
        for _ in range(3):
            writer.write(np.full((33, 65, 3), 128, np.uint8))
    assert writer.codec == "mp4v"
    size = (65, 33) if HAS_FFMPEG else (64, 32)  # OpenCV's mp4v drops the odd column and row (with a warning)
    assert video_info(path) == (3, pytest.approx(10), *size)


def test_only_the_video_module_decodes_or_encodes_video():
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    owner = repo / "av_seld" / "io" / "video.py"
    for package in ("av_seld", "augment", "tools", "bench"):
        for path in (repo / package).rglob("*.py"):
            if path == owner:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
            imports |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
            codecs = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                      and node.attr in ("VideoCapture", "VideoWriter", "VideoWriter_fourcc")
                      and isinstance(node.value, ast.Name) and node.value.id == "cv2"}
            assert "decord" not in imports and not codecs, f"{path.relative_to(repo)}: read and write video " \
                                                            "through av_seld.io.video"


@needs_ffmpeg
def test_an_ffmpeg_without_libx264_writes_mp4v(tmp_path, monkeypatch):
    monkeypatch.setattr("av_seld.io.video._has_libx264", lambda ffmpeg: False)
    with VideoWriter(tmp_path / "clip.mp4", 10, (WIDTH, HEIGHT)) as writer:
        for frame in _index_frames(3):
            writer.write(frame)
    assert writer.codec == "mp4v" and video_info(tmp_path / "clip.mp4")[0] == 3
    with pytest.raises(VideoFormatError, match="libx264"):
        with VideoWriter(tmp_path / "h264.mp4", 10, (WIDTH, HEIGHT), codec="h264"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_a_video_that_is_not_2_to_1_warns_once_when_stretched(tmp_path, caplog):
    path = tmp_path / "four_three.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(5):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    square = _write_video(tmp_path / "equirectangular.mp4", 10, 5)
    with caplog.at_level(logging.WARNING):
        read_video_at_label_rate(path, width=64, height=32)
        read_video_at_label_rate(path, width=128, height=64)
        VideoReader(path, 64, 32, resize="opencv")  # the reader of training with live video, and overlays
        read_video_at_label_rate(square, width=64, height=32)
    assert caplog.text.count("four_three.mp4: 64x48 video is not 2:1; it is stretched") == 1
    assert "equirectangular.mp4" not in caplog.text
