"""Model registry: swappable audio (and audio-visual) SELD models built by name.

    >>> from av_seld.models import build_model, available_models
    >>> model = build_model("resnet_conformer", in_channels=7)

A module registers its models with ``@register_model("name")`` on a class or factory function; the modules listed in
``_MODEL_MODULES`` are imported when this package is, so every model is available after ``import av_seld.models``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
# per model: {argument holding another model's keyword arguments: argument holding that model's name}
_NESTED: dict[str, dict[str, str]] = {}


class ModelArgumentError(ValueError):
    """An unknown model name, or a keyword argument that the model's constructor does not take."""


def register_model(name: str, *, nested: Mapping[str, str] | None = None) -> Callable:
    """Decorator registering a model class or factory under ``name`` (a name may be registered once).

    ``nested``: arguments that hold the keyword arguments of a registered sub-model, mapped to the argument naming
    that sub-model (e.g. ``{"audio_kwargs": "audio_model"}``), so :func:`check_model_arguments` checks them too.
    """

    def decorator(builder):
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = builder
        _NESTED[name] = dict(nested or {})
        return builder

    return decorator


def model_arguments(name: str) -> list[str] | None:
    """Keyword arguments the model ``name`` takes, in order; None when it takes any (``**kwargs``)."""
    parameters = inspect.signature(model_builder(name)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_model_arguments(name: str, kwargs: Mapping, *, name_key: str = "name",
                          kwargs_key: str = "params") -> None:
    """:class:`ModelArgumentError` when ``name`` is not registered or ``kwargs`` holds an argument its constructor
    (or a nested sub-model's) does not take; messages use ``name_key`` and ``kwargs_key`` (e.g. the config keys
    ``model.name`` and ``model.params``) and list the valid choices."""
    if name not in _REGISTRY:
        raise ModelArgumentError(f"{name_key}: unknown model {name!r} (available: {', '.join(available_models())})")
    known = model_arguments(name)
    if known is not None:
        for key in kwargs:
            if key not in known:
                raise ModelArgumentError(f"{kwargs_key}.{key}: not an argument of {name} (its arguments: "
                                         f"{', '.join(known)})")
    signature = inspect.signature(model_builder(name)).parameters
    for kwargs_arg, name_arg in _NESTED[name].items():
        sub_name = kwargs.get(name_arg, signature[name_arg].default)
        check_model_arguments(sub_name, dict(kwargs.get(kwargs_arg) or {}), name_key=f"{kwargs_key}.{name_arg}",
                              kwargs_key=f"{kwargs_key}.{kwargs_arg}")


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
