"""ResNet trunk audio models: ``resnet_gru`` (the teacher) and ``resnet_conformer`` (the student).

The trunk is a ResNet-18-style stack of basic residual blocks on ``(B, C, T_feat, F)`` features; average pooling
after each stage shrinks (time, frequency), with time pooled by 5 in all (ceil mode, so any ``T_feat`` gives
``ceil(T_feat / 5)`` frames). The remaining frequency bins are averaged to ``freq_out`` bins and flattened with the
channels into one vector per label frame, then a BiGRU or Conformer blocks model time.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from av_seld.classes import NUM_CLASSES
from av_seld.models import register_model
from av_seld.models.base import AudioSeldModel, MultiAccdoaHead
from av_seld.models.conformer import ConformerBlock
from av_seld.targets import NUM_TRACKS
from av_seld.timing import FEATURE_FRAMES_PER_LABEL_FRAME


class BasicBlock(nn.Module):
    """3×3 conv → BN → ReLU → 3×3 conv → BN, plus the (1×1-projected when needed) input, → ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity() if in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class ResNetTrunk(nn.Module):
    """Stem conv + stages of basic blocks, each stage followed by average pooling ``pools[i]`` = (time, freq).

    ``(B, C, T_feat, F)`` → ``(B, T_label, out_dim)``; ``out_dim = widths[-1] * freq_out``. The time pools must
    multiply to 5 (feature frames per label frame).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (16, 32, 64, 128),
                 blocks: tuple[int, ...] = (2, 2, 2, 2),
                 pools: tuple[tuple[int, int], ...] = ((5, 2), (1, 2), (1, 2), (1, 1)),
                 freq_out: int = 2, dropout: float = 0.0):
        super().__init__()
        if not len(widths) == len(blocks) == len(pools):
            raise ValueError(f"widths, blocks and pools need one entry per stage, got {widths}, {blocks}, {pools}")
        if math.prod(p[0] for p in pools) != FEATURE_FRAMES_PER_LABEL_FRAME:
            raise ValueError(f"time pools must multiply to {FEATURE_FRAMES_PER_LABEL_FRAME}, got {pools}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        width = widths[0]
        for out_width, num_blocks, pool in zip(widths, blocks, pools):
            layers: list[nn.Module] = []
            for _ in range(num_blocks):
                layers.append(BasicBlock(width, out_width))
                width = out_width
            if tuple(pool) != (1, 1):
                layers.append(nn.AvgPool2d(tuple(pool), ceil_mode=True))
            layers.append(nn.Dropout2d(dropout))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.freq_pool = nn.AdaptiveAvgPool2d((None, freq_out))
        self.out_dim = width * freq_out

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(features))  # (B, W, T_label, F')
        x = self.freq_pool(x)  # (B, W, T_label, freq_out)
        return rearrange(x, "b w t f -> b t (w f)")


def _trunk_kwargs(widths, blocks, pools, freq_out, dropout) -> dict:
    return dict(widths=tuple(widths), blocks=tuple(blocks), pools=tuple(tuple(p) for p in pools),
                freq_out=freq_out, dropout=dropout)


@register_model("resnet_gru")
class ResNetGRU(AudioSeldModel):
    """ResNet trunk → BiGRU (``embed_dim = 2·rnn_size``) → multi-ACCDOA head. The teacher."""

    def __init__(self, in_channels: int = 7, widths: tuple[int, ...] = (16, 32, 64, 128),
                 blocks: tuple[int, ...] = (2, 2, 2, 2),
                 pools: tuple[tuple[int, int], ...] = ((5, 2), (1, 2), (1, 2), (1, 1)), freq_out: int = 2,
                 rnn_size: int = 128, rnn_layers: int = 2, dropout: float = 0.1,
                 num_classes: int = NUM_CLASSES, num_tracks: int = NUM_TRACKS, head: str = "tanh",
                 distance: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.trunk = ResNetTrunk(in_channels, **_trunk_kwargs(widths, blocks, pools, freq_out, dropout))
        self.gru = nn.GRU(self.trunk.out_dim, rnn_size, num_layers=rnn_layers, batch_first=True,
                          dropout=dropout if rnn_layers > 1 else 0.0, bidirectional=True)
        self.embed_dim = 2 * rnn_size
        self.head = MultiAccdoaHead(self.embed_dim, (), num_classes, num_tracks, kind=head, distance=distance)

    @classmethod
    def tiny_config(cls) -> dict:
        return dict(widths=(4, 8), blocks=(1, 1), pools=((5, 2), (1, 2)), rnn_size=8, rnn_layers=1)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        x, _ = self.gru(self.trunk(features))
        return x  # (B, T_label, 2 * rnn_size)


@register_model("resnet_conformer")
class ResNetConformer(AudioSeldModel):
    """ResNet trunk → Linear to ``dim`` → Conformer blocks → multi-ACCDOA head. The student."""

    def __init__(self, in_channels: int = 7, widths: tuple[int, ...] = (16, 32, 64, 128),
                 blocks: tuple[int, ...] = (2, 2, 2, 2),
                 pools: tuple[tuple[int, int], ...] = ((5, 2), (1, 2), (1, 2), (1, 1)), freq_out: int = 2,
                 dim: int = 128, depth: int = 4, heads: int = 4, ff_mult: int = 4, kernel_size: int = 15,
                 dropout: float = 0.1, num_classes: int = NUM_CLASSES, num_tracks: int = NUM_TRACKS,
                 head: str = "tanh", distance: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.trunk = ResNetTrunk(in_channels, **_trunk_kwargs(widths, blocks, pools, freq_out, dropout))
        self.proj = nn.Linear(self.trunk.out_dim, dim)
        self.blocks = nn.Sequential(*(ConformerBlock(dim, heads, ff_mult, kernel_size, dropout) for _ in range(depth)))
        self.embed_dim = dim
        self.head = MultiAccdoaHead(dim, (), num_classes, num_tracks, kind=head, distance=distance)

    @classmethod
    def tiny_config(cls) -> dict:
        return dict(widths=(4, 8), blocks=(1, 1), pools=((5, 2), (1, 2)), dim=8, depth=1, heads=2, kernel_size=3)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        return self.blocks(self.proj(self.trunk(features)))  # (B, T_label, dim)
