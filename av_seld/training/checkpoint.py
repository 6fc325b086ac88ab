"""Self-describing checkpoints: weights plus everything needed to rebuild the model and resume the run.

A checkpoint is a dict saved with ``torch.save`` (written to a temporary file, then renamed) holding
``model_name`` and ``model_params`` (the registry entry and its keyword arguments), ``model_state``, the input
``features`` kind and ``format``, per-class ``thresholds`` and ``merge_deg`` for post-processing, the resolved
``config`` as a plain dict, the optimizer/scheduler/EMA state and counters for ``--resume``, and the av-seld version.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from av_seld import __version__
from av_seld.errors import InputError
from av_seld.utils.atomic import atomic_path

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("model_name", "model_params", "model_state")


class CheckpointError(InputError):
    """A checkpoint file that is missing, unreadable, or lacks what av-seld needs."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Save ``payload`` (which must hold :data:`REQUIRED_KEYS`) atomically, stamped with the av-seld version."""
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    payload = dict(payload, av_seld_version=__version__)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise CheckpointError(path, f"not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise CheckpointError(path, f"not an av-seld checkpoint (needs keys {', '.join(REQUIRED_KEYS)})")
    return payload


def build_model_from_checkpoint(payload: dict[str, Any], *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the registered model from the checkpoint alone and load its weights (eval mode)."""
    from av_seld.models import build_model

    model = build_model(payload["model_name"], **payload["model_params"])
    model.load_state_dict(payload["model_state"])
    return model.to(device).eval()
