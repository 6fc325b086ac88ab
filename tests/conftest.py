"""Shared pytest fixtures of av-seld's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def _shared_data_root() -> Path | None:
    """``../shared/data`` next to the checkout, else ``$AV_SELD_SHARED_DATA``; None when neither exists."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data"]
    if os.environ.get("AV_SELD_SHARED_DATA"):
        candidates.append(Path(os.environ["AV_SELD_SHARED_DATA"]))
    return next((path for path in candidates if path.is_dir()), None)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Root of the real data shared between projects (see its README.md); skips the test when it is absent."""
    root = _shared_data_root()
    if root is None:
        pytest.skip("shared data (../shared/data or $AV_SELD_SHARED_DATA) is not available")
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module of tiny tensors and models: several threads fight over the shared cores.
    Use as ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
