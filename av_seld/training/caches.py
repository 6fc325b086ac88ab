"""The caches ``av-seld train`` fills before training (resumable; on rank 0 under torchrun): audio features per
dataset root with their training statistics, and the frozen visual encoder's features for ``data.visual_features``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from av_seld.config import Config, ConfigError
from av_seld.training import distributed
from av_seld.training.recipe import model_params

log = logging.getLogger(__name__)


def feature_caches(config: Config, kind: str, workers: int = 1) -> list[Path]:
    """One feature cache per dataset root (filled now where clips are missing; resumable), statistics from the
    training splits."""
    from av_seld.data.feature_cache import prepare_feature_cache

    data = config.data
    if data.feature_cache is not None and len(data.feature_cache) != len(data.roots):
        raise ConfigError("config", f"data.feature_cache: give one folder per root ({len(data.roots)} roots)")
    dirs = []
    for i, root in enumerate(data.roots):
        explicit = data.feature_cache[i] if data.feature_cache is not None else None
        job = prepare_feature_cache(root, audio_format=data.format, kind=kind, cache_dir=explicit,
                                    train_splits=data.train_splits)
        if distributed.is_main():
            job.run(workers=workers)
        distributed.barrier()
        dirs.append(Path(job.cache_dir))
    return dirs


def visual_cache_spec(params: dict[str, Any]):
    """The :class:`~av_seld.data.visual_cache.VisualCacheSpec` of an ``av_conformer``'s constructor arguments
    (:func:`~av_seld.training.recipe.model_params`): the one place the cache is tied to the model's encoder, so cached
    features are those the model's frozen encoder would compute."""
    from av_seld.data.visual_cache import VisualCacheSpec

    if not params.get("freeze_visual", True):
        raise ConfigError("config", "data.visual_features needs a frozen visual encoder (model.params.freeze_visual)")
    # VisualCacheSpec field <- av_conformer argument; arguments the recipe leaves out keep the shared defaults
    names = {"model": "visual_model", "weights": "visual_weights", "frame_size": "frame_size",
             "token_grid": "token_grid", "circular_padding": "circular_padding", "seed": "visual_seed"}
    fields = {field: tuple(params[arg]) if isinstance(params[arg], list) else params[arg]
              for field, arg in names.items() if arg in params}
    if params.get("visual_init"):
        # the pre-trained YOLO layers replace visual_weights in the model, so the cache must hold their features:
        # pretrain-visual exports them beside its checkpoint (visual_yolo.pt)
        exported = Path(params["visual_init"]).parent / "visual_yolo.pt"
        if not exported.is_file():
            raise ConfigError("config", f"model.params.visual_init with data.visual_features needs {exported} "
                                        "(written by av-seld pretrain-visual beside its checkpoints)")
        fields["weights"] = str(exported)
    return VisualCacheSpec(**fields)


def visual_caches(config: Config) -> list[Path]:
    """Per root, the cache of the AV model's frozen visual encoder features (computed now where missing)."""
    from av_seld.data.visual_cache import cache_dir, precompute_visual_features

    if config.model.name != "av_conformer":
        raise ConfigError("config", "data.visual_features needs an audio-visual model (model.name: av_conformer)")
    spec = visual_cache_spec(model_params(config, in_channels=0))  # the visual encoder's arguments, as the model
    dirs = []
    for root in config.data.roots:
        if distributed.is_main():
            for result in precompute_visual_features(root, spec):
                if result.status == "cached":
                    log.info("%s: visual features cached (%d frames)", result.clip.name, result.num_frames)
        distributed.barrier()
        dirs.append(cache_dir(spec, root))
    return dirs
