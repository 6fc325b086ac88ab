"""Write files so that a reader never sees half of one: write a temporary file beside it, then rename.

Every writer of a dataset, cache or run file goes through :func:`atomic_path`, so every temporary file has one name
pattern, ``.<target name>.<8 random characters>.tmp<target suffix>``: a dot-file, which dataset listings skip
(:func:`is_listed`), and which a rerun holding the output's lock removes when a killed run left it behind
(:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from av_seld.errors import UnwritableError

log = logging.getLogger(__name__)

# mkstemp creates files readable by their owner only; give finished files the usual umask-based mode instead.
_UMASK = os.umask(0)
os.umask(_UMASK)

# what the system says when a folder is read-only or not ours
UNWRITABLE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)

# tempfile.mkstemp's random part: 8 characters of [a-z0-9_]
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[^.]+)?")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path`` in one rename.

    If the body raises, the temporary file is removed and an existing ``path`` is left untouched. A folder that
    cannot be written raises :class:`~av_seld.errors.UnwritableError` naming it (not the temporary file).
    The temporary name keeps the target's suffix so that writers which infer the format from it work.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    except OSError as err:
        if err.errno not in UNWRITABLE_ERRNOS:
            raise
        raise UnwritableError(target.parent, f"cannot write in this folder ({err.strerror})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, newline characters written as given)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file name of :func:`atomic_path`."""
    match = _TEMP_NAME.fullmatch(name)
    return match is not None and (match["suffix"] or "") == Path(match["target"]).suffix


def is_listed(path: str | os.PathLike) -> bool:
    """Whether a listing of data files includes ``path``: not a dot-file (temporary files of :func:`atomic_path`
    are dot-files, as are editors' and file managers' own)."""
    return not Path(path).name.startswith(".")


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of :func:`atomic_path` in ``folder`` (a run killed mid-write leaves them); returns
    the removed paths. Call it only while no other process writes there (hold the output's lock)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if is_temp_name(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.warning("%s: removed %d temporary file%s left by an interrupted run", folder, len(removed),
                    "" if len(removed) == 1 else "s")
    return removed
