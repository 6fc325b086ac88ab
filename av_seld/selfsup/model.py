"""The visual side of the self-supervised pre-training: the YOLO encoder with a per-cell logit head, its checkpoints
and the export of its YOLO layers (``visual_yolo.pt``) for the audio-visual model (see :mod:`av_seld.selfsup`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from av_seld.errors import InputError
from av_seld.models.visual import SELFSUP_MODEL_NAME, YoloVisualEncoder
from av_seld.selfsup.spatial import AudioSide, cell_directions

log = logging.getLogger(__name__)

MODEL_NAME = SELFSUP_MODEL_NAME  # model_name in pre-training checkpoints
DEFAULT_FRAME_SIZE = (128, 256)
DEFAULT_MAP_GRID = (8, 16)


class SelfSupVisualModel(nn.Module):
    """YOLO visual encoder + per-cell candidate head, trained against the audio spatial model.

    ``forward(frames (B, 3, H, W)) -> logits (B, N)``; ``loss(logits, directions, weights, stats) -> scalar``.
    Args: as :class:`YoloVisualEncoder` (``map_grid`` is its token grid, ``freeze_backbone`` its ``freeze``), plus
    ``kappa_init`` of the audio side.
    """

    def __init__(self, *, model: str = "yolo11n", weights: str | os.PathLike | None = None,
                 frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE, map_grid: tuple[int, int] = DEFAULT_MAP_GRID,
                 embed_dim: int = 64, freeze_backbone: bool = False, circular_padding: bool = True, seed: int = 0,
                 kappa_init: float = 20.0):
        super().__init__()
        self.encoder = YoloVisualEncoder(model=model, weights=weights, frame_size=tuple(frame_size),
                                         token_grid=tuple(map_grid), embed_dim=embed_dim, freeze=freeze_backbone,
                                         circular_padding=circular_padding, seed=seed)
        self.head = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, 1))
        self.audio = AudioSide(kappa_init)
        self.register_buffer("cells", cell_directions(self.encoder.token_grid), persistent=False)

    @property
    def map_grid(self) -> tuple[int, int]:
        return self.encoder.token_grid

    def forward(self, frames: Tensor) -> Tensor:
        return self.head(self.encoder(frames)).squeeze(-1)  # (B, N)

    def visual_map(self, frames: Tensor) -> Tensor:
        """(B, rows, cols) distribution over the cells: the frame's sounding-object candidates."""
        return torch.softmax(self(frames), dim=-1).unflatten(-1, self.map_grid)

    def loss(self, logits: Tensor, directions: Tensor, weights: Tensor, stats: Tensor) -> Tensor:
        """Minus the mean information (nats per bin) over the frames that have sound."""
        info = self.audio.information(logits, directions, weights, stats, self.cells)
        has_sound = (weights.sum(-1) > 0).float()
        return -(info * has_sound).sum() / has_sound.sum().clamp_min(1.0)

    def peak_directions(self, logits: Tensor) -> Tensor:
        """(B, N) logits -> (B, 3) unit vector of each frame's highest-scoring cell."""
        return self.cells[logits.argmax(-1)]


def load_selfsup_model(path: str | os.PathLike, *, trained: bool = False) -> SelfSupVisualModel:
    """The pre-trained model (eval mode) in a checkpoint of :func:`pretrain_visual`; errors name the file.

    ``trained``: the raw trained weights rather than the EMA average (identical when EMA is off).
    """
    payload = _load_payload(path)
    model = SelfSupVisualModel(**_without_weights(payload["model_params"]))
    model.load_state_dict(payload["trained_state"] if trained and "trained_state" in payload
                          else payload["model_state"])
    return model.eval()


def _load_payload(path: str | os.PathLike) -> dict:
    """A checkpoint of :func:`pretrain_visual`; InputError naming the file for any other checkpoint."""
    from av_seld.training.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    if payload["model_name"] != MODEL_NAME:
        raise InputError(path, f"not a self-supervised visual checkpoint (model_name {payload['model_name']!r}, "
                               f"expected {MODEL_NAME!r}: made by av-seld pretrain-visual)")
    return payload


def _without_weights(params: dict) -> dict:
    # the YOLO weights the run started from are inside model_state; don't require the .pt to still exist
    return {**params, "weights": None}


def export_yolo_weights(model: SelfSupVisualModel, path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the fine-tuned YOLO layers as a full detection model's weights (:func:`save_yolo_model`: tensors only,
    loads without running code) that ``visual_weights`` / ``--weights`` / ``precompute-visual`` accept; the detect
    head keeps random weights."""
    from av_seld.models.visual import build_detection_model, save_yolo_model

    detection = build_detection_model(model.encoder.model_name, seed=seed)
    layers = model.encoder.layers.state_dict()
    full = detection.model.state_dict()
    full.update(layers)  # layer i of the encoder is layer i of the detection model
    detection.model.load_state_dict(full)
    return save_yolo_model(detection, model.encoder.model_name, path)
