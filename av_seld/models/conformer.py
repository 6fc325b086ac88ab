"""Conformer building blocks (Gulati et al., 2020) on token sequences ``(B, T, D)``.

Macaron layout: ``x + ½·FF(x)``, ``+ MHSA``, ``+ Conv``, ``+ ½·FF``, then LayerNorm. Attention uses no positional
encoding: the depthwise convolution gives the block its sense of order, and SELD clips are cut into chunks of any
length, so the blocks stay free of a maximum length.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class FeedForward(nn.Module):
    """Pre-norm position-wise feed-forward: LayerNorm → Linear(dim, mult·dim) → SiLU → dropout → Linear → dropout."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, dim * mult),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(dim * mult, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return self.net(x)


class ConvModule(nn.Module):
    """Conformer convolution module: LayerNorm → pointwise (GLU) → depthwise conv over time → BN → SiLU → pointwise."""

    def __init__(self, dim: int, kernel_size: int = 15, dropout: float = 0.0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the sequence length, got {kernel_size}")
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, kernel_size=1)
        self.glu = nn.GLU(dim=1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.bn = nn.BatchNorm1d(dim)
        self.act = nn.SiLU()
        self.pointwise_out = nn.Conv1d(dim, dim, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        x = rearrange(self.norm(x), "b t d -> b d t")
        x = self.glu(self.pointwise_in(x))
        x = self.act(self.bn(self.depthwise(x)))
        x = self.dropout(self.pointwise_out(x))
        return rearrange(x, "b d t -> b t d")


class ConformerBlock(nn.Module):
    """One macaron Conformer block on ``(B, T, D)`` tokens."""

    def __init__(self, dim: int, heads: int = 4, ff_mult: int = 4, kernel_size: int = 15, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.ff1 = FeedForward(dim, ff_mult, dropout)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvModule(dim, kernel_size, dropout)
        self.ff2 = FeedForward(dim, ff_mult, dropout)
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        x = x + 0.5 * self.ff1(x)
        h = self.attn_norm(x)
        x = x + self.attn_dropout(self.attn(h, h, h, need_weights=False)[0])
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x)
