"""``seldnet``: the DCASE2023 Task 3 baseline CRNN (Shimada/Politis et al.), kept as the reference point.

Conv blocks (3×3 conv → BN → ReLU → max-pool → dropout) pooling (time, frequency) by (5, 4), (1, 4), (1, 2); a
2-layer BiGRU whose two directions are tanh-gated into one ``rnn_size`` vector; self-attention layers with residual
and LayerNorm; linear layers and a tanh multi-ACCDOA output. The defaults are the baseline's sizes (64 filters,
128 GRU units, 2 attention layers of 8 heads, one 128-unit linear layer, dropout 0.05).

Unlike the baseline, time pooling uses ceil mode, so any number of feature frames gives ``ceil(T_feat / 5)`` outputs.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from av_seld.classes import NUM_CLASSES
from av_seld.models import register_model
from av_seld.models.base import AudioSeldModel, MultiAccdoaHead
from av_seld.targets import NUM_TRACKS
from av_seld.timing import FEATURE_FRAMES_PER_LABEL_FRAME


@register_model("seldnet")
class SeldNet(AudioSeldModel):
    def __init__(self, in_channels: int = 7, num_freq_bins: int = 64, conv_channels: int = 64,
                 freq_pools: tuple[int, ...] = (4, 4, 2), rnn_size: int = 128, rnn_layers: int = 2,
                 attention_layers: int = 2, heads: int = 8, fnn_sizes: tuple[int, ...] = (128,),
                 dropout: float = 0.05, num_classes: int = NUM_CLASSES, num_tracks: int = NUM_TRACKS,
                 head: str = "tanh", distance: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.embed_dim = rnn_size
        blocks: list[nn.Module] = []
        freq = num_freq_bins
        for i, f_pool in enumerate(freq_pools):
            t_pool = FEATURE_FRAMES_PER_LABEL_FRAME if i == 0 else 1
            blocks += [
                nn.Conv2d(in_channels if i == 0 else conv_channels, conv_channels, kernel_size=3, padding=1),
                nn.BatchNorm2d(conv_channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d((t_pool, f_pool), ceil_mode=True),
                nn.Dropout2d(dropout),
            ]
            freq = math.ceil(freq / f_pool)
        self.conv = nn.Sequential(*blocks)
        self.gru = nn.GRU(conv_channels * freq, rnn_size, num_layers=rnn_layers, batch_first=True,
                          dropout=dropout if rnn_layers > 1 else 0.0, bidirectional=True)
        self.attention = nn.ModuleList(
            nn.MultiheadAttention(rnn_size, heads, dropout=dropout, batch_first=True) for _ in range(attention_layers))
        self.attention_norms = nn.ModuleList(nn.LayerNorm(rnn_size) for _ in range(attention_layers))
        self.head = MultiAccdoaHead(rnn_size, tuple(fnn_sizes), num_classes, num_tracks, kind=head, distance=distance)

    @classmethod
    def tiny_config(cls) -> dict:
        return dict(conv_channels=4, rnn_size=8, rnn_layers=1, attention_layers=1, heads=2, fnn_sizes=(8,))

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        self.check_input(features)
        x = self.conv(features)  # (B, conv_channels, T_label, F')
        x = rearrange(x, "b c t f -> b t (c f)")
        x, _ = self.gru(x)  # (B, T, 2 * rnn_size)
        x = torch.tanh(x)
        forward_dir, backward_dir = x.chunk(2, dim=-1)
        x = backward_dir * forward_dir  # the baseline's gating of the two directions
        for attention, norm in zip(self.attention, self.attention_norms):
            x = norm(x + attention(x, x, x, need_weights=False)[0])
        return x  # (B, T_label, rnn_size)
