"""Read and write 360° equirectangular video: the one module of the library that decodes or encodes a video file.

Reading (decord): :class:`VideoReader` gives a file's frames as uint8 RGB ``(H, W, 3)``, optionally resized, by frame
index (:meth:`VideoReader.read`), in batches from a start frame (:meth:`VideoReader.batches`) or at the label rate
(:meth:`VideoReader.read_label_frames`, one frame per 100 ms label frame, for a whole clip or a chunk of one);
:func:`read_video_at_label_rate` reads a whole clip that way and :func:`video_info` tells a file's length, rate and
size.

Which video frame a label frame reads is :func:`av_seld.timing.video_frame_for_label_frame`'s rule; label frames
past the end of the video get a black frame marked invalid, never a clamped or shifted one.

Two ways to resize. ``resize="decoder"`` (the label-rate reads): decord resizes inside the decoder
(``VideoReader(width=, height=)``, a stretch to exactly that size). For a few output widths (8, 12, 16, 24, 48, 72
pixels: where its row padding is a whole number of pixels) decord 0.6 returns the padded rows reinterpreted as 4 to
12 "channels" and ``get_batch`` fails, so the reader checks one frame's shape and otherwise decodes at the source size
and resizes with OpenCV. ``resize="opencv"``: always decode at the source size and resize with OpenCV
(:func:`resize_frames`: ``INTER_AREA`` when shrinking, ``INTER_LINEAR`` when enlarging).

Writing: :class:`VideoWriter` streams frames to a temporary file beside the target and renames it when the last frame
is in, so a failed or killed run never leaves a half-written video under the target's name. With the system
``ffmpeg`` binary on ``PATH`` it encodes H.264 (libx264, yuv420p, CRF 18; MPEG-4 part 2 for odd frame sizes) and
muxes a wav in as AAC in the same pass; without it, OpenCV's MPEG-4 part 2 (``mp4v``, the encoder OpenCV's wheels
ship) writes the video, silent, and a warning says so when audio was asked for.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import decord
import numpy as np

from av_seld import geometry, timing
from av_seld.errors import VideoFormatError
from av_seld.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

BATCH_FRAMES = 64  # frames decoded per get_batch call: 64 × 640 × 320 × 3 bytes ≈ 39 MB
H264_CRF = 18  # x264 quality (lower is better)
H264_PRESET = "veryfast"  # a synthetic 1920x960 clip: 3x smaller than OpenCV's mp4v, +0.8 dB PSNR, half its speed
MP4V_QUALITY = 3  # ffmpeg's mpeg4 -q:v (1 best .. 31)
AUDIO_BITRATE = "192k"
_DECORD_ERRORS = (RuntimeError, decord.DECORDError)
_RESIZE = ("decoder", "opencv")
_CODECS = ("auto", "h264", "mp4v")


# ------------------------------------------------------------------------------------------------------ reading


@dataclass
class VideoFrames:
    """Video frames at the label rate.

    frames: uint8 (N, H, W, 3) RGB, one per label frame; black where ``valid`` is False.
    valid: bool (N,), False for label frames past the end of the video.
    fps: the container's average frame rate (frames per second).
    num_source_frames: frames in the video file.
    """

    frames: np.ndarray
    valid: np.ndarray
    fps: float
    num_source_frames: int
    path: Path


def _reason(error: Exception) -> str:
    # decord's and ffmpeg's messages can carry a stack trace or a banner after the first line.
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _open(path: Path, width: int = -1, height: int = -1) -> decord.VideoReader:
    if not path.exists():
        raise VideoFormatError(path, "file not found")
    try:
        reader = decord.VideoReader(str(path), width=width, height=height)
    except _DECORD_ERRORS as e:
        raise VideoFormatError(path, f"cannot be read as a video: {_reason(e)}") from e
    if len(reader) == 0 or not reader.get_avg_fps() > 0:
        raise VideoFormatError(path, f"cannot be read as a video: {len(reader)} frames at {reader.get_avg_fps()} fps")
    return reader


def _to_numpy(batch) -> np.ndarray:
    # decord returns its own NDArray, or a torch/other tensor when someone set a global decord bridge.
    return batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frames`` (H, W, C) or (N, H, W, C) resized to ``width × height`` with OpenCV: ``INTER_AREA`` when the
    result has fewer pixels, else ``INTER_LINEAR``. Returned as is when already that size."""
    source_height, source_width = frames.shape[-3:-1]
    if (source_width, source_height) == (width, height):
        return frames
    shrink = width * height < source_width * source_height
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    if frames.ndim == 3:
        return cv2.resize(frames, (width, height), interpolation=interpolation)
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in frames])


_warned_not_equirectangular: set[str] = set()


def warn_if_not_equirectangular(path: str | os.PathLike, width: int, height: int) -> None:
    """Warn once per file when a ``width × height`` video is not 2:1: a reader stretches it to an equirectangular
    frame, so the directions it shows are off."""
    if width != 2 * height and str(path) not in _warned_not_equirectangular:
        _warned_not_equirectangular.add(str(path))
        logger.warning("%s: %dx%d video is not 2:1; it is stretched to an equirectangular frame, so the directions "
                       "it shows are off", path, width, height)


def _source_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the container header (no frame decoded); None when OpenCV cannot tell."""
    capture = cv2.VideoCapture(str(path))
    try:
        size = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    return size if min(size) > 0 else None


class VideoReader:
    """A video file's frames as uint8 RGB ``(height, width, 3)``; see the module docstring.

    width, height: output size in pixels (both or neither; default the file's own size; resizing a video that is not
    2:1 warns once per file, :func:`warn_if_not_equirectangular`). resize: ``"decoder"``
    (decord resizes, OpenCV where decord cannot) or ``"opencv"`` (decode at the source size, then
    :func:`resize_frames`). Raises :class:`VideoFormatError` naming the file when it is missing, is not a video or a
    frame cannot be decoded.

    Attributes: path, fps (the container's average frame rate), num_frames (``len(reader)``), width, height.
    """

    def __init__(self, path: str | os.PathLike, width: int | None = None, height: int | None = None, *,
                 resize: str = "decoder") -> None:
        if (width is None) != (height is None):
            raise ValueError(f"give both width and height or neither, got {width}x{height}")
        if width is not None and (width <= 0 or height <= 0):
            raise ValueError(f"width and height must be positive, got {width}x{height}")
        if resize not in _RESIZE:
            raise ValueError(f"resize must be one of {_RESIZE}, got {resize!r}")
        self.path = Path(path)
        self._resize = False  # True: decode at the source size, resize with OpenCV
        if width is not None and resize == "decoder":
            self._reader = _open(self.path, width, height)
            if self._reader[0].shape != (height, width, 3):  # decord's row-padding bug, see the module docstring
                logger.debug("%s: decord cannot resize to %dx%d, resizing with OpenCV", self.path, width, height)
                self._reader, self._resize = _open(self.path), True
            if str(self.path) not in _warned_not_equirectangular:
                source = _source_size(self.path)
                if source is not None and source != (width, height):
                    warn_if_not_equirectangular(self.path, *source)
        else:
            self._reader = _open(self.path)
            source_height, source_width = self._reader[0].shape[:2]
            if width is None:
                width, height = source_width, source_height
            self._resize = (source_width, source_height) != (width, height)
            if self._resize:
                warn_if_not_equirectangular(self.path, source_width, source_height)
        self.width, self.height = int(width), int(height)
        self.fps = float(self._reader.get_avg_fps())
        self.num_frames = len(self._reader)
        self._cursor: int | None = None  # the frame the decoder's next() returns, when known

    def __len__(self) -> int:
        return self.num_frames

    def read(self, indices) -> np.ndarray:
        """uint8 (len(indices), height, width, 3) RGB: the frames with these indices (each in 0 .. len - 1)."""
        indices = [int(k) for k in np.asarray(indices).reshape(-1)]
        self._cursor = None  # get_batch moves the decoder: the next sequential batch seeks again
        if not indices:
            return np.zeros((0, self.height, self.width, 3), np.uint8)
        try:
            batch = _to_numpy(self._reader.get_batch(indices))
        except _DECORD_ERRORS as e:
            raise VideoFormatError(self.path, f"cannot decode frames {min(indices)}..{max(indices)}: {_reason(e)}") \
                from e
        return resize_frames(batch, self.width, self.height) if self._resize else batch

    def batches(self, start: int = 0, stop: int | None = None,
                batch_frames: int = BATCH_FRAMES) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(indices, frames)`` for frames ``start .. stop - 1`` (default: to the end), ``batch_frames`` at a time.

        Decodes sequentially (one seek, then frame after frame): about twice as fast as :meth:`read` of the
        same frames, which seeks for every batch. The frames are the same.
        """
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        for first in range(start, stop, batch_frames):
            indices = np.arange(first, min(first + batch_frames, stop))
            try:
                if self._cursor != first:  # first batch, or someone read elsewhere in between
                    self._reader.seek_accurate(first)
                frames = [_to_numpy(self._reader.next()) for _ in indices]
            except (*_DECORD_ERRORS, StopIteration) as e:
                self._cursor = None
                raise VideoFormatError(self.path, f"cannot decode frames {first}..{indices[-1]}: {_reason(e)}") \
                    from e
            self._cursor = indices[-1] + 1
            batch = np.stack(frames)
            yield indices, resize_frames(batch, self.width, self.height) if self._resize else batch

    def read_label_frames(self, label_frames, wanted=None) -> tuple[np.ndarray, np.ndarray]:
        """``(frames uint8 (N, height, width, 3) RGB, valid bool (N,))`` for label frames ``label_frames`` (N,).

        A label frame reads the video frame of :func:`av_seld.timing.video_frame_for_label_frame`; it is black and
        invalid when that frame lies past the end of the video, or where ``wanted`` (bool (N,), optional) is False.
        """
        label_frames = np.asarray(label_frames)
        index = timing.video_frame_for_label_frame(label_frames, self.fps)
        valid = index < self.num_frames
        if wanted is not None:
            valid &= np.asarray(wanted, dtype=bool)
        frames = np.zeros((len(label_frames), self.height, self.width, 3), dtype=np.uint8)
        rows = np.flatnonzero(valid)
        for first in range(0, len(rows), BATCH_FRAMES):
            part = rows[first:first + BATCH_FRAMES]
            unique, inverse = np.unique(index[part], return_inverse=True)  # below 10 fps label frames share frames
            frames[part] = self.read(unique)[inverse]
        return frames, valid


def video_info(path: str | os.PathLike) -> tuple[int, float, int, int]:
    """``(num_frames, fps, width, height)`` of a video file (width and height in pixels)."""
    reader = VideoReader(path)
    return reader.num_frames, reader.fps, reader.width, reader.height


def read_video_at_label_rate(
    path: str | os.PathLike, *, num_label_frames: int | None = None, width: int = geometry.DEFAULT_FRAME_SIZE[1],
    height: int = geometry.DEFAULT_FRAME_SIZE[0],
) -> VideoFrames:
    """Read the frame of each label frame ``n = 0 .. num_label_frames - 1``, resized to ``width × height`` pixels.

    ``num_label_frames=None`` reads the label frames the video covers. Label frames whose frame lies past the end
    of the video are black with ``valid=False``, and one warning names the file and how many were padded.
    Returns :class:`VideoFrames` with ``frames`` uint8 (num_label_frames, height, width, 3) RGB.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    reader = VideoReader(path, width, height)
    if num_label_frames is None:
        num_label_frames = timing.label_frames_covered_by_video(reader.num_frames, reader.fps)
    frames, valid = reader.read_label_frames(np.arange(num_label_frames))
    num_padded = num_label_frames - int(valid.sum())
    if num_padded:
        logger.warning(
            "%s: video has %d frames at %.3f fps; padded %d of %d label frames past its end with black frames",
            reader.path, reader.num_frames, reader.fps, num_padded, num_label_frames,
        )
    return VideoFrames(frames=frames, valid=valid, fps=reader.fps, num_source_frames=reader.num_frames,
                       path=reader.path)


# ------------------------------------------------------------------------------------------------------ writing


def ffmpeg_binary() -> str | None:
    """The system ``ffmpeg`` binary on ``PATH``, or None."""
    return shutil.which("ffmpeg")


@functools.lru_cache(maxsize=4)
def _has_libx264(ffmpeg: str) -> bool:
    """Whether this ffmpeg build has the libx264 encoder (Debian's and most builds do; minimal ones may not)."""
    try:
        done = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and " libx264 " in done.stdout


def _rate(fps: float) -> str:
    """ffmpeg's frame rate argument: 30 -> '30', 29.97 -> '2997/100', 30000/1001 -> '30000/1001'."""
    return str(Fraction(fps).limit_denominator(100_000))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


class VideoWriter:
    """Write a video file atomically, frame by frame; a context manager::

        with VideoWriter(path, fps, (width, height), audio=wav) as writer:
            for frame in frames:  # uint8 (height, width, 3)
                writer.write(frame)

    The frames go to a temporary file beside ``path``, renamed to ``path`` when the block ends without an error and
    the encoder finished; otherwise the temporary file is removed and an existing ``path`` is left untouched.

    codec: ``"auto"`` (H.264 when the system ffmpeg is on PATH, has libx264 and both sizes are even, else
    ``mp4v``), ``"h264"`` (needs ffmpeg) or ``"mp4v"`` (MPEG-4 part 2). The system ffmpeg encodes whenever it is on
    PATH, OpenCV (``mp4v`` only) otherwise. channels: order of the frames given, ``"rgb"`` (as :class:`VideoReader`
    returns them) or ``"bgr"`` (OpenCV's). audio: a sound file muxed in as AAC; needs ffmpeg, without it the video
    is written silent with a warning. After the block: ``codec`` (the one used), ``audio_muxed`` and ``num_frames``.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], *,
                 audio: str | os.PathLike | None = None, codec: str = "auto", channels: str = "rgb") -> None:
        width, height = (int(s) for s in size)
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if codec not in _CODECS:
            raise ValueError(f"codec must be one of {_CODECS}, got {codec!r}")
        if channels not in ("rgb", "bgr"):
            raise ValueError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
        self.path, self.fps, self.width, self.height = Path(path), float(fps), width, height
        self.audio = None if audio is None else Path(audio)
        self.channels, self.codec = channels, codec
        self.audio_muxed = False
        self.num_frames = 0
        self._process: subprocess.Popen | None = None
        self._stderr = None
        self._cv2: cv2.VideoWriter | None = None

    # ------------------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            self._start()
        except BaseException:
            self._close(abort=True)
            if not self._atomic.__exit__(*sys.exc_info()):
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self._close(abort=exc_type is not None)
        except BaseException:
            if not self._atomic.__exit__(*sys.exc_info()):
                raise
            return False
        return bool(self._atomic.__exit__(exc_type, exc, tb))

    def _start(self) -> None:
        ffmpeg = ffmpeg_binary()
        even = self.width % 2 == 0 and self.height % 2 == 0
        if self.codec == "auto":
            self.codec = "h264" if ffmpeg is not None and even and _has_libx264(ffmpeg) else "mp4v"
        if self.codec == "h264":
            if ffmpeg is None:
                raise VideoFormatError(self.path, "H.264 needs the ffmpeg binary on PATH")
            if not _has_libx264(ffmpeg):
                raise VideoFormatError(self.path, f"H.264 needs an ffmpeg with libx264; {ffmpeg} has none")
            if not even:
                raise VideoFormatError(self.path, f"H.264 (yuv420p) needs even sizes, got {self.width}x{self.height}")
        if ffmpeg is not None:
            self._start_ffmpeg(ffmpeg)
            return
        if self.audio is not None:
            logger.warning("no ffmpeg binary on PATH: writing %s without the audio of %s", self.path, self.audio)
        if not even:
            logger.warning("no ffmpeg binary on PATH: OpenCV's mp4v writes %s at %dx%d, not %dx%d", self.path,
                           self.width // 2 * 2, self.height // 2 * 2, self.width, self.height)
        self._cv2 = cv2.VideoWriter(os.fspath(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                    (self.width, self.height))
        if not self._cv2.isOpened():
            raise VideoFormatError(self.path, "OpenCV cannot open an mp4v video writer for this path")

    def _start_ffmpeg(self, ffmpeg: str) -> None:
        cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", f"{self.channels}24",
               "-s", f"{self.width}x{self.height}", "-r", _rate(self.fps), "-i", "pipe:0"]
        if self.audio is not None:
            cmd += ["-i", os.fspath(self.audio), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac",
                    "-b:a", AUDIO_BITRATE]
        if self.codec == "h264":
            cmd += ["-c:v", "libx264", "-preset", H264_PRESET, "-crf", str(H264_CRF)]
        else:  # ffmpeg's own MPEG-4 part 2 encoder, as OpenCV's
            cmd += ["-c:v", "mpeg4", "-q:v", str(MP4V_QUALITY)]
        cmd += ["-pix_fmt", "yuv420p", os.fspath(self._tmp)]
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty ffmpeg cannot block on it
        self._process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def _ffmpeg_error(self) -> str:
        self._stderr.seek(0)
        return _last_line(self._stderr.read().decode("utf-8", "replace"))

    def _close(self, *, abort: bool) -> None:
        try:
            if self._process is not None:
                self._close_ffmpeg(abort)
            elif self._cv2 is not None:
                self._cv2.release()
                if not abort and self.num_frames == 0:
                    raise VideoFormatError(self.path, "no frame was written")
        finally:
            if self._stderr is not None:
                self._stderr.close()
        if not abort:
            logger.debug("%s: %d frames at %.3f fps, %dx%d, %s%s", self.path, self.num_frames, self.fps, self.width,
                         self.height, self.codec, ", with audio" if self.audio_muxed else "")

    def _close_ffmpeg(self, abort: bool) -> None:
        process = self._process
        if abort:
            process.kill()  # before closing its input, which would let it finish the file
        with contextlib.suppress(OSError):
            process.stdin.close()
        if abort:
            process.wait()
            return
        returncode = process.wait()
        if self.num_frames == 0:
            raise VideoFormatError(self.path, "no frame was written")
        if returncode != 0:
            raise VideoFormatError(self.path, f"ffmpeg could not encode the video: {self._ffmpeg_error()}")
        self.audio_muxed = self.audio is not None

    # ------------------------------------------------------------------------------------------- frames
    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 (height, width, 3) frame in the writer's channel order."""
        if self._process is None and self._cv2 is None:
            raise RuntimeError("VideoWriter.write outside its with block")
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be uint8 ({self.height}, {self.width}, 3), got "
                             f"{frame.dtype} {frame.shape}")
        if self._process is not None:
            try:
                self._process.stdin.write(np.ascontiguousarray(frame).data)
            except (BrokenPipeError, ValueError, OSError) as e:  # the encoder exited
                self._process.wait()
                raise VideoFormatError(self.path, f"ffmpeg stopped encoding after {self.num_frames} frames: "
                                                  f"{self._ffmpeg_error()}") from e
        else:
            frame = np.ascontiguousarray(frame)
            self._cv2.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if self.channels == "rgb" else frame)
        self.num_frames += 1


__all__ = ["BATCH_FRAMES", "VideoFrames", "VideoReader", "VideoWriter", "ffmpeg_binary", "read_video_at_label_rate",
           "resize_frames", "video_info"]
