"""One writer per output: a lock file holding its owner's pid, locked with ``flock`` while the owner runs.

The kernel drops a ``flock`` when its process dies, however it dies, so a lock file left behind by a killed run is
stale by construction: the next run takes it over (and says so) instead of waiting for someone to delete it. The pid
in the file is only for the message a refused second writer prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Iterator

from av_seld.errors import InputError

log = logging.getLogger(__name__)


class LockedError(InputError):
    """Another process is writing the same output."""


def _owner(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 200).decode("utf-8", "replace").strip()


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold the lock file ``path`` for the body; :class:`LockedError` naming ``what`` (e.g. "synth-audio into
    data/synth, split dev-train") and the owner's pid when another process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise LockedError(path, f"another process ({owner or 'pid unknown'}) is running {what}; wait for it to "
                                    "finish (two writers of the same clips would mix their files)") from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the previous owner removed the file between our open and flock: lock the new one
    try:
        previous = _owner(fd)
        if previous:
            log.warning("%s: stale lock of a run that did not finish (%s); taking it over", path, previous)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still locked, so no one else holds a lock on the unlinked file
        os.close(fd)
