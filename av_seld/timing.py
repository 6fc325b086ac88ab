"""Time axes of av-seld: audio samples, STFT feature frames, 100 ms label frames and video frames.

Every conversion between these axes lives here (docs/conventions.md, "Time"):

- Audio is 24 kHz. A label frame is 100 ms (2400 samples); label frame ``n`` covers [0.1 n, 0.1 (n + 1)) s.
- Features hop 20 ms (480 samples) with a 40 ms window and a 1024-point FFT: 5 feature frames per label frame.
  A clip of any length has ``ceil(num_samples / 2400)`` label frames; encoders see the audio zero-padded to a whole
  number of label frames, so feature frame ``j`` always belongs to label frame ``j // 5``.
- Video frame ``k`` of a ``fps`` video is shown at ``k / fps`` s. **Frame-selection rule:** label frame ``n`` reads the
  video frame whose timestamp is nearest to the label frame's start ``t = 0.1 n``, i.e. ``k = floor(t * fps + 1/2)``
  (a tie goes to the later frame). A label frame past the end of the video has no frame (the reader pads it and
  reports it); the index is never clamped, so audio, video and labels never drift apart.

Index conversions (frame -> frame, time -> frame) accept NumPy arrays; counts (``num_*``) take single integers.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 24_000
LABEL_HOP_S = 0.1
LABEL_FRAMES_PER_SECOND = 10
LABEL_HOP_SAMPLES = 2_400
FEATURE_HOP_SAMPLES = 480
FEATURE_WIN_SAMPLES = 960
N_FFT = 1024
FEATURE_FRAMES_PER_LABEL_FRAME = LABEL_HOP_SAMPLES // FEATURE_HOP_SAMPLES  # 5
STARSS23_FPS = 30_000 / 1_001  # "29.97 fps" NTSC video of STARSS23
SYNTHETIC_FPS = 30.0

# Guards floor() against products such as 0.1 * 3 * 30 = 8.999999999999998.
_EPS = 1e-9


def _check_rate(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")


def seconds_to_samples(seconds, sample_rate: int = SAMPLE_RATE):
    """Number of whole samples in ``seconds`` (rounded to the nearest sample)."""
    return np.rint(np.asarray(seconds, dtype=np.float64) * sample_rate).astype(np.int64)


def samples_to_seconds(num_samples, sample_rate: int = SAMPLE_RATE):
    return np.asarray(num_samples, dtype=np.float64) / sample_rate


def num_label_frames(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Label frames (100 ms) needed to cover ``num_samples`` samples: a partial last frame counts."""
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    hop = label_hop_samples(sample_rate)
    return -(-int(num_samples) // hop)


def label_hop_samples(sample_rate: int = SAMPLE_RATE) -> int:
    hop = sample_rate * LABEL_HOP_S
    if abs(hop - round(hop)) > 1e-6:
        raise ValueError(f"a 100 ms label frame is not a whole number of samples at {sample_rate} Hz")
    return int(round(hop))


def padded_num_samples(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Length the audio is zero-padded to before feature extraction: a whole number of label frames."""
    return num_label_frames(num_samples, sample_rate) * label_hop_samples(sample_rate)


def num_feature_frames(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """STFT frames (20 ms hop) for a clip of ``num_samples``: 5 per label frame of the padded clip."""
    return num_label_frames(num_samples, sample_rate) * FEATURE_FRAMES_PER_LABEL_FRAME


def feature_frame_to_label_frame(feature_frame):
    """Label frame that feature frame ``j`` belongs to (``j // 5``)."""
    return np.asarray(feature_frame) // FEATURE_FRAMES_PER_LABEL_FRAME


def label_frame_to_feature_frames(label_frame):
    """First feature frame of label frame ``n`` (it spans 5 feature frames from there)."""
    return np.asarray(label_frame) * FEATURE_FRAMES_PER_LABEL_FRAME


def label_frame_start_s(label_frame):
    """Start time in seconds of label frame ``n``."""
    return np.asarray(label_frame, dtype=np.float64) * LABEL_HOP_S


def label_frame_sample_range(label_frame: int, sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """Samples ``[start, stop)`` that label frame ``n`` covers."""
    hop = label_hop_samples(sample_rate)
    return int(label_frame) * hop, (int(label_frame) + 1) * hop


def seconds_to_label_frame(seconds):
    """Label frame that contains time ``seconds``."""
    return np.floor(np.asarray(seconds, dtype=np.float64) / LABEL_HOP_S + _EPS).astype(np.int64)


def video_frame_for_label_frame(label_frame, fps: float):
    """Index of the video frame read for label frame ``n``: the frame nearest to ``t = 0.1 n`` (ties go later)."""
    _check_rate("fps", fps)
    t = label_frame_start_s(label_frame)
    return np.floor(t * fps + 0.5 + _EPS).astype(np.int64)


def num_video_frames(duration_s: float, fps: float) -> int:
    """Frames a video of ``duration_s`` seconds holds at ``fps`` (frame k shown at k / fps, k / fps < duration)."""
    _check_rate("fps", fps)
    return int(math.ceil(duration_s * fps - _EPS))


def label_frames_covered_by_video(num_frames: int, fps: float) -> int:
    """How many leading label frames have their selected video frame inside a video of ``num_frames`` frames."""
    _check_rate("fps", fps)
    if num_frames <= 0:
        return 0
    # Largest n with floor(0.1 n fps + 1/2) <= num_frames - 1, i.e. 0.1 n fps < num_frames - 1/2.
    n = int(math.floor((num_frames - 0.5) / (LABEL_HOP_S * fps) - _EPS))
    while video_frame_for_label_frame(n + 1, fps) <= num_frames - 1:
        n += 1
    while n >= 0 and video_frame_for_label_frame(n, fps) > num_frames - 1:
        n -= 1
    return n + 1
