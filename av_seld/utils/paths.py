"""Paths a recipe names that may be the repository's own files (the shipped ``assets/`` weights)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]


def shipped_path(path: str | os.PathLike) -> Path:
    """``path`` as given when it exists; a relative path that does not, but names a file of this repository (the
    shipped ``assets/`` weights a recipe starts from), resolves there, so recipes work from any working folder."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    repository = REPOSITORY / given
    if repository.exists():
        log.info("%s: not in the working folder, using the repository's %s", path, repository)
        return repository
    return given
