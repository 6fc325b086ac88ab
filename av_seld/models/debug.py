"""A light stand-in visual encoder for tests (as pyannote-audio's ``models/segmentation/debug.py``): it keeps the
:class:`~av_seld.models.base.VisualEncoder` contract of the YOLO encoder without building ultralytics.

``pooled_features``: one 3×3 convolution of the RGB frame (circular across the seam, like the YOLO encoder's
padding), average-pooled to the token grid; ``tokens_from_features``: LayerNorm, a projection to the token width and
a learned position embedding per cell. Any frame size works. Select it with ``model.params.visual_model: debug``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from av_seld.geometry import DEFAULT_FRAME_SIZE

DEBUG_VISUAL_MODEL = "debug"


class DebugVisualEncoder(nn.Module):
    """``forward(frames (B, T, 3, H, W)) -> (B, T, N, D)`` (or (B, 3, H, W) -> (B, N, D)), N = rows·cols.

    ``layers`` (the convolution) plays the YOLO layers: ``freeze`` keeps it fixed; ``seed`` fixes its initial
    weights, so cached features match a live encoder built with the same seed.
    """

    model_name = DEBUG_VISUAL_MODEL

    def __init__(self, *, frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE, token_grid: tuple[int, int] = (5, 10),
                 embed_dim: int = 256, feature_dim: int = 16, freeze: bool = True, seed: int = 0,
                 frame_chunk: int = 16):
        super().__init__()
        if len(token_grid) != 2 or min(token_grid) < 1:
            raise ValueError(f"token_grid must be (rows, cols) >= 1, got {token_grid}")
        self.frame_size = tuple(int(s) for s in frame_size)
        self.token_grid = tuple(int(g) for g in token_grid)
        self.embed_dim = embed_dim
        self.feature_dim = feature_dim
        self.channels = (feature_dim,)  # one "level" (the YOLO encoder has P3, P4, P5)
        self.freeze = freeze
        self.frame_chunk = frame_chunk
        generator = torch.Generator().manual_seed(seed)
        conv = nn.Conv2d(3, feature_dim, 3)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.3)
            conv.bias.zero_()
        self.layers = nn.Sequential(conv, nn.ReLU())
        if freeze:
            self.layers.requires_grad_(False)
        self.norm = nn.LayerNorm(feature_dim)
        self.projection = nn.Linear(feature_dim, embed_dim)
        self.position = nn.Parameter(torch.randn(self.num_tokens, embed_dim, generator=generator) * 0.02)

    @property
    def num_tokens(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    def pooled_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 or float in [0, 1] -> (B, feature_dim, rows, cols)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (B, 3, H, W), got {tuple(frames.shape)}")
        x = frames.float() / 255 if frames.dtype == torch.uint8 else frames
        x = F.pad(F.pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1))  # the seam wraps, the poles do not
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return F.adaptive_avg_pool2d(self.layers(x), self.token_grid)

    def tokens_from_features(self, pooled: torch.Tensor) -> torch.Tensor:
        """(..., feature_dim, rows, cols) -> (..., N, D), cells in row-major order."""
        if tuple(pooled.shape[-3:]) != (self.feature_dim, *self.token_grid):
            raise ValueError(f"pooled features must be (..., {self.feature_dim}, {self.token_grid[0]}, "
                             f"{self.token_grid[1]}), got {tuple(pooled.shape)}")
        cells = pooled.flatten(-2).transpose(-1, -2).float()  # (..., N, C)
        return self.projection(self.norm(cells)) + self.position

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim == 4:
            return self.tokens_from_features(self.pooled_features(frames))
        if frames.ndim != 5:
            raise ValueError(f"frames must be (B, T, 3, H, W) or (B, 3, H, W), got {tuple(frames.shape)}")
        tokens = self.tokens_from_features(self.pooled_features(frames.flatten(0, 1)))
        return tokens.unflatten(0, frames.shape[:2])
