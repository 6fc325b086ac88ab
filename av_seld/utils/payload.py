"""Files of tensors and plain values that load without running code (checkpoints, exported encoder weights).

:func:`write_payload` stores a dict with numpy arrays turned into tensors (anything else that is not plain data is
refused at save time) and :func:`read_payload` reads it back with ``torch.load(weights_only=True)``, which refuses any
other pickled object; errors name the file. :mod:`av_seld.training.checkpoint` builds av-seld's checkpoints on it,
and the model package reads pre-trained encoder weights with it without importing the training package.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from av_seld.errors import CheckpointError
from av_seld.utils.atomic import atomic_path


def write_payload(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Save ``payload`` atomically as tensors and plain values (see :func:`plain`)."""
    payload = plain(payload, "checkpoint")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def plain(value: Any, key: str) -> Any:
    """``value`` with numpy arrays and scalars turned into tensors and Python numbers, and paths into strings;
    ValueError naming the key for anything ``torch.load(weights_only=True)`` would refuse to read back."""
    if isinstance(value, dict):
        out = type(value)((k, plain(v, f"{key}.{k}")) for k, v in value.items())  # OrderedDict state dicts stay
        if hasattr(value, "_metadata"):  # a module state dict's versions, read by load_state_dict
            out._metadata = value._metadata
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor, torch.Size, torch.dtype,
                                           torch.device)):
        return value
    raise ValueError(f"{key}: a {type(value).__name__} cannot be stored in a checkpoint that loads without running "
                     "code; store tensors and plain values")


# Checkpoints written before av-seld stored numpy arrays as tensors hold numpy arrays and scalars: rebuilding them runs
# no code (plain data of a numeric dtype), so the safe loader accepts them.
_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # numpy 2 / numpy 1
_NUMPY_ARRAYS = [np.dtype, np.ndarray, _multiarray._reconstruct, _multiarray.scalar,
                 *(type(np.dtype(t)) for t in (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64,
                                               np.float16, np.float32, np.float64))]


def read_payload(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Read a file written by :func:`write_payload` (or ``torch.save`` of plain data); CheckpointError naming the
    file when it is missing, damaged, or holds pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint not found")
    try:
        with torch.serialization.safe_globals(_NUMPY_ARRAYS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise CheckpointError(path, f"not a readable checkpoint (UnpicklingError: {err})") from None
        found = re.search(r"(?:Unsupported global: |unsupported )GLOBAL (\S+)", str(err))
        what = f"a pickled {found[1]}" if found else "pickled Python objects"
        raise CheckpointError(path, f"refused to load: it holds {what}, and unpickling that could run arbitrary code "
                                    "(av-seld checkpoints hold only tensors and plain values)") from None
    except Exception as err:  # torch raises many kinds for a damaged file
        raise CheckpointError(path, f"not a readable checkpoint ({type(err).__name__}: {err})") from None
