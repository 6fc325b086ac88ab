"""Read and write the 4-channel, 24 kHz, 16-bit PCM wav files of STARSS23 (FOA and MIC formats alike).

soundfile does the work: torchaudio 2.11 can load audio only through torchcodec and a system FFmpeg.
Arrays are float32 of shape (channels, samples) with values in [-1, 1].
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from av_seld.errors import AudioFormatError
from av_seld.timing import SAMPLE_RATE
from av_seld.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

NUM_CHANNELS = 4
# libsndfile's names for the RIFF/WAVE family (WAVEX: WAVE_FORMAT_EXTENSIBLE, common for 4-channel files).
_WAV_FORMATS = {"WAV", "WAVEX", "RF64"}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}  # the only sample types that can hold NaN or infinity


def _reason(error: RuntimeError) -> str:
    # LibsndfileError's str() repeats the path; its error_string is libsndfile's reason alone.
    return getattr(error, "error_string", None) or str(error)


def _info(path: str | os.PathLike):
    path = Path(path)
    if not path.exists():
        raise AudioFormatError(path, "file not found")
    try:
        info = sf.info(str(path))
    except RuntimeError as e:  # soundfile.LibsndfileError
        raise AudioFormatError(path, f"cannot be read as a wav file: {_reason(e)}") from e
    if info.format not in _WAV_FORMATS:
        raise AudioFormatError(path, f"not a wav file (found {info.format})")
    _warn_if_truncated(path, info)
    return info


_warned_truncated: set[str] = set()


def header_frames(path: str | os.PathLike, channels: int, bytes_per_sample: int) -> int | None:
    """Samples per channel that a RIFF/WAVE file's ``data`` chunk header announces; None when it cannot tell (RF64,
    an unknown sample size, no data chunk in the first 64 KiB)."""
    with open(path, "rb") as f:
        head = f.read(65536)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE" or not bytes_per_sample:
        return None
    offset = 12
    while offset + 8 <= len(head):
        chunk, size = head[offset:offset + 4], int.from_bytes(head[offset + 4:offset + 8], "little")
        if chunk == b"data":
            return size // (channels * bytes_per_sample)
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    return None


_BYTES_PER_SAMPLE = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


def _warn_if_truncated(path: Path, info) -> None:
    """libsndfile reads a file cut short (a copy or download that stopped) as a shorter clip without a word; its
    labels would then run past the audio. Say so, once per file, with both lengths."""
    promised = header_frames(path, info.channels, _BYTES_PER_SAMPLE.get(info.subtype, 0))
    if promised is not None and promised > info.frames and str(path) not in _warned_truncated:
        _warned_truncated.add(str(path))
        logger.warning("%s: truncated: its header announces %d samples (%.2f s), the file holds %d (%.2f s); it is "
                       "read as the shorter clip", path, promised, promised / info.samplerate, info.frames,
                       info.frames / info.samplerate)


def wav_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(num_channels, sample_rate in Hz, num_samples)`` of a wav file, read from its header only."""
    info = _info(path)
    return info.channels, info.samplerate, info.frames


def check_finite(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, first_sample: int = 0) -> None:
    """:class:`AudioFormatError` naming ``path`` and the first NaN or infinite sample of ``audio`` (samples,
    channels) read from sample ``first_sample`` on. Only float wavs can hold such samples; checked through a sum."""
    if np.isfinite(audio.sum(dtype=np.float64)):
        return
    bad = ~np.isfinite(audio)
    if not bad.any():
        return  # finite samples whose sum overflowed
    sample, channel = np.argwhere(bad)[0]
    sample += first_sample
    raise AudioFormatError(path, f"{int(bad.sum())} NaN or infinite samples, the first at {sample / sample_rate:.3f} s "
                                 f"(sample {sample}, channel {channel + 1})")


def read_wav(
    path: str | os.PathLike, *, num_channels: int | None = NUM_CHANNELS, sample_rate: int | None = SAMPLE_RATE
) -> np.ndarray:
    """Read a wav file as float32 of shape (channels, samples), values in [-1, 1).

    ``num_channels`` and ``sample_rate`` (Hz) are checked against the header before any sample is read;
    ``None`` skips a check. Raises :class:`AudioFormatError` naming the file and the problem, also for a file
    without samples and for NaN or infinite samples (possible in float wavs).
    """
    info = _info(path)
    if num_channels is not None and info.channels != num_channels:
        raise AudioFormatError(path, f"expected {num_channels} channels, found {info.channels}")
    if sample_rate is not None and info.samplerate != sample_rate:
        raise AudioFormatError(path, f"expected {sample_rate} Hz, found {info.samplerate} Hz")
    if info.frames == 0:
        raise AudioFormatError(path, "has no samples")
    # 16-bit PCM (STARSS23's format) is read as integers and scaled while transposing: one pass instead of
    # libsndfile's conversion plus a transposing copy, and the same values (x / 32768 is exact in float32).
    pcm16 = info.subtype == "PCM_16"
    try:
        audio, _ = sf.read(str(path), dtype="int16" if pcm16 else "float32", always_2d=True)  # (samples, channels)
    except RuntimeError as e:  # soundfile.LibsndfileError
        raise AudioFormatError(path, f"cannot be read as a wav file: {_reason(e)}") from e
    if not pcm16:
        if info.subtype in _FLOAT_SUBTYPES:
            check_finite(path, audio, info.samplerate)
        return np.ascontiguousarray(audio.T)
    out = np.empty(audio.shape[::-1], dtype=np.float32)
    np.multiply(audio.T, np.float32(1.0 / 32768.0), out=out)
    return out


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write float audio of shape (channels, samples) as 16-bit PCM wav, atomically.

    Values outside [-1, 1] are clipped (with a warning): libsndfile would wrap them around instead.
    Raises ``ValueError`` before touching ``path`` for a wrong shape or non-finite values.
    """
    audio = np.asarray(audio)
    if audio.ndim != 2 or not 0 < audio.shape[0] <= 64 or audio.shape[1] == 0:
        raise ValueError(f"{path}: audio must be (channels, samples) with 1 to 64 channels, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"{path}: audio must be a float array in [-1, 1], got dtype {audio.dtype}")
    if not np.isfinite(audio).all():
        raise ValueError(f"{path}: audio contains NaN or infinite values")
    num_clipped = int(np.count_nonzero(np.abs(audio) > 1.0))
    if num_clipped:
        logger.warning("%s: clipping %d of %d samples outside [-1, 1]", path, num_clipped, audio.size)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32).T  # soundfile wants (samples, channels)
    with atomic_path(path) as tmp:
        # The temporary name ends in ".tmp.wav"; say the format rather than let soundfile guess it from that.
        sf.write(str(tmp), audio, int(sample_rate), format="WAV", subtype="PCM_16")
