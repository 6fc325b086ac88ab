"""Self-describing checkpoints: weights plus everything needed to rebuild the model and resume the run.

A checkpoint is a dict saved with ``torch.save`` (written to a temporary file, then renamed) holding
``model_name`` and ``model_params`` (the registry entry and its keyword arguments), ``model_state``, the input
``features`` kind and ``format``, per-class ``thresholds`` and ``merge_deg`` for post-processing, the resolved
``config`` as a plain dict, the optimizer/scheduler/EMA state and counters for ``--resume``, and the av-seld version.

Loading a checkpoint runs no code: the file holds only tensors and plain values (numbers, strings, lists, tuples,
dicts; :func:`save_checkpoint` stores numpy arrays as tensors) and is read with ``torch.load(weights_only=True)``,
which refuses any other pickled object (numpy arrays of numbers, which older checkpoints hold, are accepted as the
data they are). A shared checkpoint is therefore as safe to load as a wav file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from av_seld import __version__
from av_seld.errors import CheckpointError
from av_seld.utils.payload import read_payload, write_payload

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("model_name", "model_params", "model_state")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Save ``payload`` (which must hold :data:`REQUIRED_KEYS`) atomically, stamped with the av-seld version."""
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    write_payload(path, dict(payload, av_seld_version=__version__))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file and what is wrong."""
    payload = read_payload(path, map_location)
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise CheckpointError(path, f"not an av-seld checkpoint (needs keys {', '.join(REQUIRED_KEYS)})")
    return payload


def build_model_from_checkpoint(payload: dict[str, Any], *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the registered model from the checkpoint alone and load its weights (eval mode).

    The visual encoder's starting weights (``visual_weights``, e.g. the recipe's ``assets/`` file) are not read
    again: the checkpoint's state holds every weight, so it rebuilds on a machine without that file, and the
    random-start warning, which does not apply here, is not logged."""
    import logging

    from av_seld.models import build_model

    params = dict(payload["model_params"])
    if "visual_weights" in params:
        params["visual_weights"] = None
    visual_log = logging.getLogger("av_seld.models.visual")
    level = visual_log.level
    visual_log.setLevel(logging.ERROR)
    try:
        model = build_model(payload["model_name"], **params)
    finally:
        visual_log.setLevel(level)
    model.load_state_dict(payload["model_state"])
    return model.to(device).eval()


def _state_for(model: torch.nn.Module, payload: dict) -> dict[str, torch.Tensor]:
    """A checkpoint payload's weights under ``model``'s names: an audio-only checkpoint's as the audio branch of an
    audio-visual model, an audio-visual checkpoint's audio branch as an audio-only model."""
    state = dict(payload["model_state"])
    target_av = model.uses_video
    source_av = payload["model_name"] == "av_conformer"
    if target_av and not source_av:
        return {f"audio.{k}": v for k, v in state.items()}
    if source_av and not target_av:
        return {k[len("audio."):]: v for k, v in state.items() if k.startswith("audio.")}
    return state


def initialised_parameters(model: torch.nn.Module, path: str | os.PathLike) -> set[str]:
    """Names of ``model``'s parameters that :func:`initialise_weights` sets from the checkpoint at ``path`` (read
    again on ``--resume``, so that the optimizer's parameter groups are the same)."""
    state = _state_for(model, load_checkpoint(path))
    return {name for name, _ in model.named_parameters() if name in state}


def initialise_weights(model: torch.nn.Module, path: str | os.PathLike, *, what: str = "train.init_from"
                       ) -> tuple[list[str], list[str]]:
    """Start ``model`` from the weights of the av-seld checkpoint at ``path`` (fine-tuning: the optimizer and
    schedule start afresh). Returns the (missing, unexpected) state keys, which are logged.

    An audio-only checkpoint initialises the audio branch of an audio-visual model, and an audio-visual checkpoint's
    audio branch initialises an audio-only model. Parameters whose shapes differ are an error that names them.
    """
    payload = load_checkpoint(path)
    state = _state_for(model, payload)
    own = model.state_dict()
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if mismatched:
        raise CheckpointError(path, f"{what}: {len(mismatched)} parameter(s) differ in shape from the configured "
                                    f"{type(model).__name__} (checkpoint vs model): " + "; ".join(mismatched[:5])
                              + (" ..." if len(mismatched) > 5 else ""))
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    loaded = len(state) - len(unexpected)
    if loaded == 0:
        raise CheckpointError(path, f"{what}: no parameter of the checkpoint ({payload['model_name']}) fits the "
                                    f"configured {type(model).__name__}")
    log.info("%s: %d tensors loaded from %s (%s); %d missing%s, %d unexpected%s", what, loaded, path,
             payload["model_name"], len(missing), f" ({', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''})"
             if missing else "", len(unexpected),
             f" ({', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''})" if unexpected else "")
    return missing, unexpected


# What inference and train.init_from read; the rest (optimizer, counters, trained_state) only serves --resume.
INFERENCE_KEYS = REQUIRED_KEYS + ("features", "format", "chunk_s", "feature_mean", "feature_std", "thresholds",
                                  "merge_deg", "config")


def slim_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, Any]:
    """Write the inference part of the checkpoint ``src`` to ``dst`` (a third of the size without the optimizer
    state): what ``av-seld infer``, the Python API and ``train.init_from`` read. Returns the written payload."""
    payload = load_checkpoint(src)
    slim = {k: payload[k] for k in INFERENCE_KEYS if k in payload}
    slim["slimmed_from"] = {"file": Path(src).name, "step": int(payload.get("train_state", {}).get("step", -1))}
    save_checkpoint(dst, slim)
    return slim
