"""Devices: one rule for every command and function that runs a model (``--device``, ``train.device``, the API).

A device is ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. Asking for a GPU this
machine lacks is an :class:`~av_seld.errors.InputError` naming the option, the device asked for and the GPUs torch
sees, instead of a CUDA traceback at the first ``.to(device)``.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from av_seld.errors import InputError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def pick_device(name: str | torch.device, key: str = "--device", where: str | os.PathLike | None = None) -> torch.device:
    """The torch device ``name`` stands for ("auto": CUDA when available). InputError naming ``where`` (a file, or
    None) and ``key`` (the option or recipe key) for a name torch does not know or a GPU this machine lacks."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(where, f"{key}: unknown device {name!r} (expected {DEVICE_CHOICES})") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(where, f"{key}: unsupported device {name!r} (expected {DEVICE_CHOICES})")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            have = f"{count} GPU{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})" if count else "no GPU"
            raise InputError(where, f"{key}: {name} was asked for, but torch sees {have} here; use cpu or auto")
    return device


def add_device_argument(parser: argparse.ArgumentParser, default: str | None = "auto", what: str = "") -> None:
    """The ``--device`` option of a command that runs a model, the same everywhere. ``default`` None: the recipe's
    device (``what`` names the recipe key) unless the option is given."""
    if default is None:
        text = f"{DEVICE_CHOICES}; auto picks CUDA when torch sees a GPU (default: the recipe's {what})"
    else:
        text = f"{DEVICE_CHOICES}; auto picks CUDA when torch sees a GPU (default {default})"
    parser.add_argument("--device", default=default, metavar="DEVICE", help=text)
