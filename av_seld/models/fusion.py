"""Audio-visual SELD: an audio encoder's label-rate tokens attend to the visual tokens of their video frames.

Shapes (B = batch, T = label frames, N = visual tokens per frame, D = token width):

- audio features (B, C, T_feat, F) -> audio tokens (B, T, D) with T = ceil(T_feat / 5) (any registered audio model);
- frames (B, T, 3, H, W) at the label rate: ``frames[:, n]`` is the video frame of label frame ``n``, chosen by
  :func:`av_seld.timing.video_frame_for_label_frame` (what :func:`av_seld.io.video.read_video_at_label_rate` returns,
  moved to channels-first); or cached pooled YOLO features (B, T, C, rows, cols) from :mod:`av_seld.data.visual_cache`;
- ``visual_mask`` (B, T) bool, True where the frame has video; masked frames (clips without video, label frames past
  the end of a video) see a learned "no video" token instead, so the same network runs audio-only;
- output multi-ACCDOA (B, T, 3, 3, num_classes) from the audio model's own head ((B, T, 3, 4, num_classes) with
  ``distance``).

A :class:`CrossModalConformerBlock` is a macaron Conformer block with a cross-attention step after self-attention:
each audio frame (query) attends to the tokens of its own video frame and of ``visual_context`` frames either side.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from av_seld.models import build_model, register_model
from av_seld.models.conformer import ConvModule, FeedForward
from av_seld.models.base import VisualEncoder
from av_seld.models.visual import DEFAULT_FRAME_SIZE, DEFAULT_TOKEN_GRID, build_visual_encoder, load_encoder_init


class CrossModalConformerBlock(nn.Module):
    """``x + ½FF``, ``+ self-attention`` over audio frames, ``+ cross-attention`` to visual tokens, ``+ Conv``,
    ``+ ½FF``, LayerNorm.

    forward(audio (B, T, D), visual (B, T, K, D), visual_padding (B, T, K) bool or None) -> (B, T, D);
    ``visual_padding`` True marks keys to ignore (every row must keep at least one key).
    """

    def __init__(self, dim: int, heads: int = 4, ff_mult: int = 4, kernel_size: int = 15, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.ff1 = FeedForward(dim, ff_mult, dropout)
        self.self_norm = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(dim)
        self.visual_norm = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.conv = ConvModule(dim, kernel_size, dropout)
        self.ff2 = FeedForward(dim, ff_mult, dropout)
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, visual: torch.Tensor,
                visual_padding: torch.Tensor | None = None) -> torch.Tensor:
        batch, steps, dim = x.shape
        x = x + 0.5 * self.ff1(x)
        h = self.self_norm(x)
        x = x + self.dropout(self.self_attn(h, h, h, need_weights=False)[0])
        query = self.cross_norm(x).reshape(batch * steps, 1, dim)  # one query per audio frame
        keys = self.visual_norm(visual).flatten(0, 1)  # (B·T, K, D): that frame's visual tokens
        padding = None if visual_padding is None else visual_padding.flatten(0, 1)
        attended = self.cross_attn(query, keys, keys, key_padding_mask=padding, need_weights=False)[0]
        x = x + self.dropout(attended.reshape(batch, steps, dim))
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x)


class AVConformer(nn.Module):
    """Audio model tokens -> cross-modal Conformer blocks with visual tokens -> the audio model's multi-ACCDOA head.

    Args:
        audio: a registered audio model (``encode``, ``head``, ``embed_dim``, ``num_output_frames``).
        visual: a :class:`~av_seld.models.base.VisualEncoder` whose ``embed_dim`` equals ``audio.embed_dim``.
        depth, heads, ff_mult, kernel_size, dropout: the cross-modal blocks.
        visual_context: each audio frame attends to the video frames n - c .. n + c (clipped at the clip's ends).
    """

    def __init__(self, audio: nn.Module, visual: VisualEncoder, *, depth: int = 2, heads: int = 4,
                 ff_mult: int = 4, kernel_size: int = 15, dropout: float = 0.1, visual_context: int = 0):
        super().__init__()
        if not isinstance(visual, VisualEncoder):
            raise TypeError(f"{type(visual).__name__} is not a VisualEncoder (see av_seld.models.base)")
        if visual.embed_dim != audio.embed_dim:
            raise ValueError(f"visual embed_dim {visual.embed_dim} != audio embed_dim {audio.embed_dim}")
        if visual_context < 0:
            raise ValueError(f"visual_context must be >= 0, got {visual_context}")
        self.audio = audio
        self.visual = visual
        self.embed_dim = audio.embed_dim
        self.visual_context = visual_context
        self.no_video = nn.Parameter(torch.randn(self.embed_dim) * 0.02)  # the token of a frame without video
        self.blocks = nn.ModuleList(CrossModalConformerBlock(self.embed_dim, heads, ff_mult, kernel_size, dropout)
                                    for _ in range(depth))

    @property
    def in_channels(self) -> int:
        return self.audio.in_channels

    @property
    def head(self) -> nn.Module:
        return self.audio.head

    def num_output_frames(self, num_samples: int) -> int:
        return self.audio.num_output_frames(num_samples)

    def load_audio_state(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True):
        """Initialise the audio branch (encoder and head) from an audio-only model's state dict.

        Accepts the audio model's ``state_dict()``, or a checkpoint dict holding it under ``"model"``.
        Returns torch's (missing_keys, unexpected_keys).
        """
        if "model" in state_dict and isinstance(state_dict["model"], Mapping):
            state_dict = state_dict["model"]
        return self.audio.load_state_dict(state_dict, strict=strict)

    def visual_tokens(self, batch: int, steps: int, *, frames: torch.Tensor | None = None,
                      visual_features: torch.Tensor | None = None,
                      visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Visual tokens (B, T, N, D) of each label frame; masked frames get the "no video" token.

        Only the unmasked frames go through the visual encoder. ``frames`` (B, T, 3, H, W) or
        ``visual_features`` (B, T, C, rows, cols), or neither (everything masked).
        """
        if frames is not None and visual_features is not None:
            raise ValueError("give frames or visual_features, not both")
        source = frames if frames is not None else visual_features
        device = self.no_video.device
        if source is not None and tuple(source.shape[:2]) != (batch, steps):
            raise ValueError(f"visual input has (B, T) = {tuple(source.shape[:2])}, but the audio gives "
                             f"{(batch, steps)}: give one video frame per label frame")
        if visual_mask is None:
            visual_mask = torch.full((batch, steps), source is not None, dtype=torch.bool, device=device)
        elif tuple(visual_mask.shape) != (batch, steps) or visual_mask.dtype != torch.bool:
            raise ValueError(f"visual_mask must be bool (B, T) = {(batch, steps)}, got "
                             f"{visual_mask.dtype} {tuple(visual_mask.shape)}")
        if source is None and bool(visual_mask.any()):
            raise ValueError("visual_mask marks frames with video, but neither frames nor visual_features were given")
        tokens = self.no_video.expand(batch, steps, self.visual.num_tokens, self.embed_dim)
        # all masked: skip the encoder. torch.export (ONNX export) cannot branch on the mask's values, so there the
        # masked-index path below runs for any mask (with none valid it places no token: the same output)
        if source is None or (not torch.compiler.is_exporting() and not bool(visual_mask.any())):
            return tokens
        if frames is not None:
            seen = self.visual(frames[visual_mask])  # (M, N, D)
        else:
            seen = self.visual.tokens_from_features(visual_features[visual_mask])
        placed = torch.zeros_like(tokens, dtype=seen.dtype).index_put((visual_mask,), seen)
        return torch.where(visual_mask[:, :, None, None], placed, tokens)

    def _with_context(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, N, D) -> keys (B, T, (2c+1)·N, D) of frames n-c..n+c and their padding mask (True = outside)."""
        c = self.visual_context
        if c == 0:
            return tokens, None
        batch, steps, num, dim = tokens.shape
        padded = F.pad(tokens, (0, 0, 0, 0, c, c))  # (B, T + 2c, N, D)
        keys = torch.cat([padded[:, k : k + steps] for k in range(2 * c + 1)], dim=2)
        frame = torch.arange(steps, device=tokens.device)[:, None] + torch.arange(-c, c + 1, device=tokens.device)
        outside = (frame < 0) | (frame >= steps)  # (T, 2c+1)
        padding = outside.repeat_interleave(num, dim=1).expand(batch, steps, (2 * c + 1) * num)
        return keys, padding

    uses_video = True

    def encode(self, features: torch.Tensor, *, frames: torch.Tensor | None = None,
               visual_features: torch.Tensor | None = None, visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Fused tokens (B, T, D) at the label rate; arguments as in :meth:`forward`."""
        x = self.audio.encode(features)  # (B, T, D)
        visual = self.visual_tokens(x.shape[0], x.shape[1], frames=frames, visual_features=visual_features,
                                    visual_mask=visual_mask)
        keys, padding = self._with_context(visual)
        for block in self.blocks:
            x = block(x, keys, padding)
        return x

    tokens = encode  # the model contract's name (see av_seld.models.base.AudioSeldModel)

    def forward(self, features: torch.Tensor, *, frames: torch.Tensor | None = None,
                visual_features: torch.Tensor | None = None, visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Multi-ACCDOA (B, T, 3, 3, num_classes).

        features: audio features (B, C, T_feat, F), T = ceil(T_feat / 5).
        frames: (B, T, 3, H, W) RGB, float in [0, 1] or uint8, one per label frame; None = no video.
        visual_mask: (B, T) bool, True where the frame has video; default all True when frames or visual_features
            are given, else all False.
        visual_features: cached pooled features (B, T, C, rows, cols) instead of frames.
        """
        return self.head(self.encode(features, frames=frames, visual_mask=visual_mask,
                                     visual_features=visual_features))


@register_model("av_conformer", nested={"audio_kwargs": "audio_model"})
def build_av_conformer(
    *,
    audio_model: str = "resnet_conformer",
    audio_kwargs: Mapping | None = None,
    visual_model: str = "yolo11n",
    visual_weights: str | os.PathLike | None = None,
    frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE,
    token_grid: tuple[int, int] = DEFAULT_TOKEN_GRID,
    freeze_visual: bool = True,
    circular_padding: bool = True,
    visual_seed: int = 0,
    depth: int = 2,
    heads: int = 4,
    ff_mult: int = 4,
    kernel_size: int = 15,
    dropout: float = 0.1,
    visual_context: int = 0,
    audio_state: Mapping[str, torch.Tensor] | None = None,
    visual_init: str | os.PathLike | None = None,
    distance: bool = False,
) -> AVConformer:
    """The AV model: ``audio_model`` (built from the registry with ``audio_kwargs``) + a visual encoder
    (``visual_model``: a YOLO model with local ``visual_weights`` or random weights seeded by ``visual_seed``, or
    ``debug``, the light stand-in for tests; :func:`~av_seld.models.visual.build_visual_encoder`) + cross-modal
    blocks.

    ``audio_state``: an audio-only model's state dict to initialise the audio branch (see ``load_audio_state``).
    ``visual_init``: a checkpoint of ``av-seld pretrain-visual`` (self-supervised) to initialise the visual encoder
    from (its YOLO layers, and its token layers when the widths match); applied after ``visual_weights``. With cached
    visual features (``data.visual_features``) training caches the features of the ``visual_yolo.pt`` exported
    beside that checkpoint. ``distance``: the audio model's head also outputs distances (``audio_kwargs`` may not
    set it as well).
    """
    audio_kwargs = dict(audio_kwargs or {})
    if "distance" in audio_kwargs:
        raise ValueError("set distance on the audio-visual model (model.params.distance), not in its audio_kwargs")
    audio = build_model(audio_model, **audio_kwargs, distance=distance)
    visual = build_visual_encoder(visual_model, weights=visual_weights, frame_size=frame_size, token_grid=token_grid,
                                  embed_dim=audio.embed_dim, freeze=freeze_visual,
                                  circular_padding=circular_padding, seed=visual_seed)
    if visual_init is not None:
        load_encoder_init(visual, visual_init)
    model = AVConformer(audio, visual, depth=depth, heads=heads, ff_mult=ff_mult, kernel_size=kernel_size,
                        dropout=dropout, visual_context=visual_context)
    if audio_state is not None:
        model.load_audio_state(audio_state)
    return model
