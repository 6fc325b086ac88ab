"""Model registry: swappable audio (and audio-visual) SELD models built by name.

    >>> from av_seld.models import build_model, available_models
    >>> model = build_model("resnet_conformer", in_channels=7)

A module registers its models with ``@register_model("name")`` on a class or factory function; the modules listed in
``_MODEL_MODULES`` are imported when this package is, so every model is available after ``import av_seld.models``.
"""

from __future__ import annotations

import importlib
from typing import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Decorator registering a model class or factory under ``name`` (a name may be registered once)."""

    def decorator(builder):
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as ``name`` with its keyword arguments (random weights)."""
    return model_builder(name)(**kwargs)


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The class or factory registered as ``name``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    return _REGISTRY[name]


def available_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


_MODEL_MODULES: tuple[str, ...] = (
    "av_seld.models.seldnet",
    "av_seld.models.resnet",
    "av_seld.models.fusion",
)

for _module in _MODEL_MODULES:
    importlib.import_module(_module)
