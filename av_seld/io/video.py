"""Read 360° equirectangular video at the label rate (one frame per 100 ms label frame) with decord.

Which video frame a label frame reads is :func:`av_seld.timing.video_frame_for_label_frame`'s rule; label frames
past the end of the video get a black frame marked invalid, never a clamped or shifted one.

decord resizes inside the decoder (``VideoReader(width=, height=)``, a stretch to exactly that size). For a few
output widths (8, 12, 16, 24, 48, 72 pixels: where its row padding is a whole number of pixels) decord 0.6 returns
the padded rows reinterpreted as 4 to 12 "channels" and ``get_batch`` fails, so the reader checks one frame's shape
and otherwise decodes at the source size and resizes with OpenCV.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import decord
import numpy as np

from av_seld import geometry, timing
from av_seld.errors import VideoFormatError

logger = logging.getLogger(__name__)

BATCH_FRAMES = 64  # frames decoded per get_batch call: 64 × 640 × 320 × 3 bytes ≈ 39 MB
_DECORD_ERRORS = (RuntimeError, decord.DECORDError)


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
    # decord's messages can carry a C++ stack trace after the first line.
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _open(path: str | os.PathLike, width: int = -1, height: int = -1) -> decord.VideoReader:
    path = Path(path)
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


def video_info(path: str | os.PathLike) -> tuple[int, float, int, int]:
    """``(num_frames, fps, width, height)`` of a video file (width and height in pixels)."""
    reader = _open(path)
    height, width = reader[0].shape[:2]
    return len(reader), float(reader.get_avg_fps()), int(width), int(height)


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
    path = Path(path)
    reader = _open(path, width, height)
    resize = None
    if reader[0].shape != (height, width, 3):  # decord's row-padding bug, see the module docstring
        logger.debug("%s: decord cannot resize to %dx%d, resizing with OpenCV", path, width, height)
        reader = _open(path)
        source_height, source_width = reader[0].shape[:2]
        shrink = width * height < source_width * source_height
        resize = (width, height), cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    fps, num_source_frames = float(reader.get_avg_fps()), len(reader)
    if num_label_frames is None:
        num_label_frames = timing.label_frames_covered_by_video(num_source_frames, fps)

    indices = timing.video_frame_for_label_frame(np.arange(num_label_frames), fps)  # (N,), non-decreasing
    valid = indices < num_source_frames  # a prefix of the label frames
    num_valid = int(valid.sum())
    frames = np.zeros((num_label_frames, height, width, 3), dtype=np.uint8)
    for start in range(0, num_valid, BATCH_FRAMES):
        wanted = indices[start : min(start + BATCH_FRAMES, num_valid)]
        unique, inverse = np.unique(wanted, return_inverse=True)  # below 10 fps label frames share video frames
        try:
            batch = _to_numpy(reader.get_batch(unique.tolist()))  # (B, h, w, 3) RGB
        except _DECORD_ERRORS as e:
            raise VideoFormatError(path, f"cannot decode frames {unique[0]}..{unique[-1]}: {_reason(e)}") from e
        if resize is not None:
            batch = np.stack([cv2.resize(f, resize[0], interpolation=resize[1]) for f in batch])
        frames[start : start + len(wanted)] = batch[inverse]

    num_padded = num_label_frames - num_valid
    if num_padded:
        logger.warning(
            "%s: video has %d frames at %.3f fps; padded %d of %d label frames past its end with black frames",
            path, num_source_frames, fps, num_padded, num_label_frames,
        )
    return VideoFrames(frames=frames, valid=valid, fps=fps, num_source_frames=num_source_frames, path=path)
