"""Cache of frozen YOLO features per clip at the label rate, for fast audio-visual training.

One float16 ``.npy`` per clip, shape (T, C, rows, cols): T label frames (as many as the clip's audio has, else as
many as its video covers), C = the P3+P4+P5 channels of the encoder, pooled to the token grid
(:meth:`av_seld.models.visual.YoloVisualEncoder.pooled_features`). Label frames without a video frame (past the end of
the video) are stored as NaN; :func:`load_visual_features` turns them into zeros plus a ``valid`` mask.

Layout: ``<cache_root>/<tag>/<split>/<clip>.npy`` with ``<cache_root>`` = ``<DATASET_ROOT>/visual_features`` by
default and ``<tag>`` naming everything the features depend on (model, frame size, grid, padding, weights or seed);
``<cache_root>/<tag>/cache_info.json`` records the same. Files are written atomically and existing ones are skipped,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from av_seld.errors import InputError
from av_seld.geometry import DEFAULT_FRAME_SIZE, channels_first
from av_seld.io.dataset import Clip, index_dataset
from av_seld.timing import num_label_frames
from av_seld.utils.atomic import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)

CACHE_DIRNAME = "visual_features"
INFO_FILENAME = "cache_info.json"
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class VisualCacheSpec:
    """What cached features depend on; ``frame_size`` and ``token_grid`` are (rows, cols)."""

    model: str = "yolo11n"
    weights: str | None = None
    frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE
    token_grid: tuple[int, int] = (5, 10)
    circular_padding: bool = True
    seed: int = 0

    def tag(self) -> str:
        """Folder name, e.g. ``yolo11n_320x640_grid5x10_circular_random0``."""
        if self.weights is None:
            source = f"random{self.seed}"
        else:
            source = f"{Path(self.weights).stem}-{_file_digest(self.weights)[:8]}"
        padding = "circular" if self.circular_padding else "zeros"
        (h, w), (gh, gw) = self.frame_size, self.token_grid
        return f"{self.model}_{h}x{w}_grid{gh}x{gw}_{padding}_{source}"


def _file_digest(path: str | os.PathLike) -> str:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "YOLO weights file not found (av-seld never downloads weights: give a local .pt file)")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir(spec: VisualCacheSpec, dataset_root: str | os.PathLike,
              cache_root: str | os.PathLike | None = None) -> Path:
    """Folder holding the features of ``spec``: ``<cache_root or DATASET_ROOT/visual_features>/<tag>``."""
    base = Path(cache_root) if cache_root is not None else Path(dataset_root) / CACHE_DIRNAME
    return base / spec.tag()


def cache_file(folder: str | os.PathLike, clip: Clip) -> Path:
    """``<folder>/<split>/<clip name>.npy``."""
    return Path(folder) / clip.split / f"{clip.name}.npy"


def load_visual_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(features float16 (T, C, rows, cols), valid bool (T,))`` of a cached clip; invalid frames are zeros."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "cached visual features not found (run av-seld precompute-visual)")
    try:
        features = np.load(path)
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot be read as a .npy array: {e}") from e
    if features.ndim != 4 or features.dtype != np.float16:
        raise InputError(path, f"expected float16 (T, C, rows, cols), got {features.dtype} {features.shape}")
    valid = ~np.isnan(features.reshape(len(features), -1)[:, 0]) if len(features) else np.zeros(0, dtype=bool)
    features[~valid] = 0
    return features, valid


@dataclass
class ClipResult:
    """What happened to one clip: ``status`` is "cached", "exists" (skipped) or "no-video"."""

    clip: Clip
    path: Path
    status: str
    num_frames: int = 0
    num_valid: int = 0
    seconds: float = 0.0


def _num_label_frames(clip: Clip) -> int | None:
    """Label frames of the clip's audio, or None (then the video decides) when it has none."""
    from av_seld.io.audio import wav_info

    audio = clip.foa or clip.mic
    if audio is None:
        return None
    _, sample_rate, num_samples = wav_info(audio)
    return num_label_frames(num_samples, sample_rate)


def encode_clip(encoder, clip: Clip, *, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features of one clip's video at the label rate: ``(float32 (T, C, rows, cols), valid (T,))``; frames go
    to the encoder's device."""
    import torch

    from av_seld.io.video import read_video_at_label_rate

    height, width = encoder.frame_size
    video = read_video_at_label_rate(clip.video, num_label_frames=_num_label_frames(clip), width=width, height=height)
    valid_frames = video.frames[video.valid]  # (M, H, W, 3) uint8, a prefix of the label frames
    out = np.full((len(video.frames), encoder.feature_dim, *encoder.token_grid), np.nan, dtype=np.float32)
    device = next(encoder.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(valid_frames), batch_size):
            batch = channels_first(torch.from_numpy(valid_frames[start : start + batch_size])).to(device)
            out[start : start + len(batch)] = encoder.pooled_features(batch).float().cpu().numpy()
    return out, video.valid


def precompute_visual_features(
    dataset_root: str | os.PathLike,
    spec: VisualCacheSpec = VisualCacheSpec(),
    *,
    split: str | None = None,
    cache_root: str | os.PathLike | None = None,
    batch_size: int = 16,
    device: str = "cpu",
) -> Iterator[ClipResult]:
    """Cache the features of every clip with video under ``dataset_root`` (one split, or all); yields per clip.
    ``device``: where the encoder runs (see :func:`av_seld.utils.device.pick_device`).

    Clips whose file exists are skipped ("exists"); clips without video are reported ("no-video").
    """
    index = index_dataset(dataset_root, splits=None if split is None else [split])
    folder = cache_dir(spec, dataset_root, cache_root)
    todo = []
    for clip in index.clips:
        path = cache_file(folder, clip)
        if clip.video is None:
            yield ClipResult(clip, path, "no-video")
        elif path.exists():
            yield ClipResult(clip, path, "exists")
        else:
            todo.append((clip, path))
    if not todo:
        return

    from av_seld.models.visual import build_visual_encoder
    from av_seld.utils.device import pick_device

    encoder = build_visual_encoder(spec.model, weights=spec.weights, frame_size=spec.frame_size,
                                   token_grid=spec.token_grid, circular_padding=spec.circular_padding, seed=spec.seed,
                                   freeze=True).eval().to(pick_device(device))
    _write_info(folder, spec, encoder.channels)
    for clip, path in todo:
        start = time.perf_counter()
        features, valid = encode_clip(encoder, clip, batch_size=batch_size)
        finite = np.nan_to_num(features[valid], nan=0.0)
        if np.abs(finite).max(initial=0.0) > _FLOAT16_MAX:
            logger.warning("%s: visual features exceed the float16 range; clipped", clip.video)
        features[valid] = np.clip(finite, -_FLOAT16_MAX, _FLOAT16_MAX)
        with atomic_path(path) as tmp:
            np.save(tmp, features.astype(np.float16))
        yield ClipResult(clip, path, "cached", len(features), int(valid.sum()), time.perf_counter() - start)


def _write_info(folder: Path, spec: VisualCacheSpec, channels: tuple[int, ...]) -> None:
    """Write ``cache_info.json``, or check that an existing one describes the same features."""
    info = {**asdict(spec), "frame_size": list(spec.frame_size), "token_grid": list(spec.token_grid),
            "weights": None if spec.weights is None else Path(spec.weights).name,
            "weights_sha256": None if spec.weights is None else _file_digest(spec.weights),
            "channels": list(channels), "layout": "float16 (T, C, rows, cols); NaN rows = label frames without video"}
    path = folder / INFO_FILENAME
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(path, f"cannot be read as JSON: {e}") from e
        if {k: old.get(k) for k in info} != info:
            raise InputError(path, "describes different features than requested; use another cache folder")
        return
    write_text_atomic(path, json.dumps(info, indent=2) + "\n")
