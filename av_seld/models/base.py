"""What every audio SELD model shares: the multi-ACCDOA head, time pooling to label rate and frame counting.

Shapes: features ``(B, C, T_feat, F)`` (F = 64 mel bands for the log-mel layouts) → tokens ``(B, T_label, D)`` →
multi-ACCDOA ``(B, T_label, 3, 3, num_classes)``, with ``T_label = ceil(T_feat / 5)`` for any ``T_feat``; with
``distance=True`` ``(B, T_label, 3, 4, num_classes)``, each track's distance after its vector (``av_seld.targets``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from av_seld.classes import NUM_CLASSES
from av_seld.targets import NUM_TRACKS
from av_seld.timing import FEATURE_FRAMES_PER_LABEL_FRAME, num_label_frames


def label_frames_for_feature_frames(num_feature_frames: int) -> int:
    """Label frames the models output for ``num_feature_frames`` input frames: ``ceil(T_feat / 5)``."""
    return -(-int(num_feature_frames) // FEATURE_FRAMES_PER_LABEL_FRAME)


class MultiAccdoaHead(nn.Module):
    """Tokens ``(B, T, D)`` → ``(B, T, 3, 3, C)``: optional hidden Linear layers, then the output layer.

    ``kind="tanh"`` (the DCASE baseline): Linear to 3·3·C and tanh; a track's activity is its vector length.
    ``kind="gated"``: Linear to 3·4·C, an activity logit ``a`` and a direction ``d`` per track and class, plus a
    direction ``s`` per track shared by all classes; the output vector is ``sigmoid(a) · u`` with ``u`` the unit vector
    along ``d + s``. The output is still multi-ACCDOA (length = activity, direction = DOA), but whether a class sounds
    is one linear read-out of the tokens instead of a length that has to grow along the right direction, and the
    shared term learns "where is the sound" from every active frame of every class instead of from one class's frames
    only. On the demo data (audio-only, with ``activity_link="probability"`` and ``direction_weight=0.3`` in the
    ``adpit_activity`` loss) 800 steps reach held-out SELD 0.64 / F20 15 %; the previous demo recipe (tanh head,
    direction weight 1, same trunk) had SELD 0.82 / F20 5 % after 1584 steps (README, demo).

    ``distance=True`` (DCASE2024): one more output per track and class, the source distance in units of
    ``DISTANCE_SCALE_M`` through a softplus (positive, with a gradient everywhere; the DCASE2024 baseline's ReLU
    can stop learning where it outputs zero); the output is ``(B, T, 3, 4, C)``, rows ``(x, y, z, distance)``, the
    baseline's layout.
    """

    KINDS = ("tanh", "gated")

    def __init__(self, dim: int, hidden: tuple[int, ...] = (), num_classes: int = NUM_CLASSES,
                 num_tracks: int = NUM_TRACKS, dropout: float = 0.0, kind: str = "tanh", distance: bool = False):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"head kind must be one of {list(self.KINDS)}, got {kind!r}")
        if not isinstance(distance, bool):
            raise ValueError(f"distance must be true or false, got {distance!r}")
        layers: list[nn.Module] = []
        width = dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.Dropout(dropout)]
            width = size
        self.hidden = nn.Sequential(*layers)
        self.kind = kind
        self.distance = distance
        self.out = nn.Linear(width, num_tracks * ((3 if kind == "tanh" else 4) + int(distance)) * num_classes)
        self.shared = nn.Linear(width, num_tracks * 3) if kind == "gated" else None
        self.num_tracks = num_tracks
        self.num_classes = num_classes

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden(tokens)
        y = self.out(hidden)
        rows = (3 if self.kind == "tanh" else 4) + int(self.distance)
        y = rearrange(y, "b t (k a c) -> b t k a c", k=self.num_tracks, a=rows, c=self.num_classes)
        if self.kind == "tanh":
            vectors = torch.tanh(y[:, :, :, :3])
        else:
            shared = rearrange(self.shared(hidden), "b t (k a) -> b t k a 1", k=self.num_tracks, a=3)
            direction = y[:, :, :, 1:4] + shared
            unit = direction * torch.rsqrt(direction.square().sum(dim=3, keepdim=True) + 1e-8)
            vectors = torch.sigmoid(y[:, :, :, :1]) * unit
        if not self.distance:
            return vectors
        return torch.cat([vectors, F.softplus(y[:, :, :, -1:])], dim=3)  # (B, T, K, 4, C)


@runtime_checkable
class VisualEncoder(Protocol):
    """What an audio-visual model needs of its visual encoder (the YOLO encoder of :mod:`av_seld.models.visual`, or
    the test stand-in of :mod:`av_seld.models.debug`). Frames are RGB, uint8 or float in [0, 1], channels first.

    - ``frame_size`` (H, W) the frames it reads; ``token_grid`` (rows, cols); ``num_tokens`` = rows·cols;
      ``embed_dim`` D the token width; ``feature_dim`` C the channels of its pooled features;
    - ``pooled_features(frames (B, 3, H, W)) -> (B, C, rows, cols)``: the part that can be frozen and cached
      (``av-seld precompute-visual``), run ``frame_chunk`` frames at a time;
    - ``tokens_from_features(pooled (..., C, rows, cols)) -> (..., N, D)``: the trainable part;
    - ``__call__(frames (B, T, 3, H, W)) -> (B, T, N, D)``, both parts, or (B, 3, H, W) -> (B, N, D).
    """

    frame_size: tuple[int, int]
    token_grid: tuple[int, int]
    embed_dim: int
    feature_dim: int
    frame_chunk: int

    @property
    def num_tokens(self) -> int: ...

    def pooled_features(self, frames: torch.Tensor) -> torch.Tensor: ...

    def tokens_from_features(self, pooled: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, frames: torch.Tensor) -> torch.Tensor: ...


class AudioSeldModel(nn.Module):
    """Base class: subclasses implement :meth:`encode` and set ``self.head`` and ``self.embed_dim``.

    The model contract every registered model keeps (audio models here, ``av_conformer`` in
    :mod:`av_seld.models.fusion`): ``forward(features, *, frames=None, visual_features=None, visual_mask=None)`` returns
    multi-ACCDOA, ``tokens(...)`` with the same arguments the label-rate tokens its head reads, and ``uses_video``
    says whether the visual arguments change anything (audio models ignore them). Every model takes
    ``distance: bool = False``; with it the output has a distance row, ``(B, T, 3, 4, C)``.
    """

    in_channels: int
    embed_dim: int
    head: nn.Module
    uses_video: bool = False

    @classmethod
    def tiny_config(cls) -> dict:
        """Constructor keyword arguments of a very small version (a few thousand parameters) for tests."""
        raise NotImplementedError(f"{cls.__name__} defines no tiny_config()")

    def check_input(self, features: torch.Tensor) -> None:
        if features.dim() != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects features (B, {self.in_channels}, T_feat, F), "
                             f"got {tuple(features.shape)}")
        if features.shape[2] == 0:
            raise ValueError(f"{type(self).__name__} got features with no frames: {tuple(features.shape)}")

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, T_feat, F)`` → tokens ``(B, ceil(T_feat / 5), embed_dim)`` at the label rate."""
        raise NotImplementedError

    def tokens(self, features: torch.Tensor, *, frames: torch.Tensor | None = None,
               visual_features: torch.Tensor | None = None, visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Label-rate tokens (B, T, embed_dim) of :meth:`encode`; the visual arguments are ignored."""
        return self.encode(features)

    def forward(self, features: torch.Tensor, *, frames: torch.Tensor | None = None,
                visual_features: torch.Tensor | None = None, visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, T_feat, F)`` → multi-ACCDOA ``(B, ceil(T_feat / 5), 3, 3, num_classes)`` (visual arguments are
        ignored: the contract of every registered model)."""
        return self.head(self.encode(features))

    def num_output_frames(self, num_samples: int) -> int:
        """Label frames output for a clip of ``num_samples`` audio samples (24 kHz), features from av_seld.timing."""
        return num_label_frames(num_samples)
