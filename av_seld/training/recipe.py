"""From a training recipe (:class:`~av_seld.config.Config`) to the model's constructor arguments and the device:
the checks ``av-seld train`` makes before anything is computed or written."""

from __future__ import annotations

from typing import Any

from av_seld.config import Config, ConfigError
from av_seld.errors import InputError
from av_seld.io.labels import read_reference_csv



def model_params(config: Config, in_channels: int) -> dict[str, Any]:
    """Constructor keyword arguments of the configured model: the recipe's ``model.params`` plus the input channels
    of the feature kind (inside ``audio_kwargs`` for audio-visual models)."""
    params = dict(config.model.params)
    if config.model.name == "av_conformer":
        params["audio_kwargs"] = {"in_channels": in_channels, **dict(params.get("audio_kwargs") or {})}
        params["frame_size"] = tuple(params.get("frame_size", config.data.video_size))
        if params["frame_size"] != tuple(config.data.video_size):  # the frames read are the frames the model takes
            raise ConfigError("config", f"model.params.frame_size {list(params['frame_size'])} differs from "
                                        f"data.video_size {list(config.data.video_size)}: set one, or both alike")
    else:
        params.setdefault("in_channels", in_channels)
    return params


def check_model_config(config: Config) -> None:
    """:class:`ConfigError` naming the recipe and key for an unknown ``model.name`` or ``loss.name``, or a
    ``model.params`` key the model does not take (checked before anything is computed or written)."""
    from av_seld.losses import available_losses
    from av_seld.models import ModelArgumentError, check_model_arguments

    where = getattr(config, "source", "config")
    try:
        check_model_arguments(config.model.name, model_params(config, in_channels=0), name_key="model.name",
                              kwargs_key="model.params")
    except ModelArgumentError as err:
        raise ConfigError(where, str(err)) from None
    if config.loss.name not in available_losses():
        raise ConfigError(where, f"loss.name: unknown loss {config.loss.name!r} (available: "
                                 f"{', '.join(available_losses())})")


def predicts_distance(config: Config) -> bool:
    """Whether the configured model outputs distances (``model.params.distance``, every registered model's switch)."""
    return config.model.params.get("distance", False) is True


def check_distance_labels(clips) -> None:
    """:class:`InputError` naming the first reference CSV (of dataset clip entries) that has events but no distance
    column: a model with distance outputs learns from, and is validated on, references with distances."""
    for entry in clips:
        events = read_reference_csv(entry.clip.metadata)
        if len(events) and not events.has_distance:
            raise InputError(entry.clip.metadata, "has no distance column (frame, class, source, azimuth, elevation, "
                                                  "distance in cm), which model.params.distance: true needs")
