"""Errors raised for bad input. Each message names the file (and line) and what is wrong."""

from __future__ import annotations

import os


class InputError(ValueError):
    """A user-supplied file or value cannot be used as it is."""

    def __init__(self, path: str | os.PathLike | None, message: str, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.reason = message
        where = "" if self.path is None else self.path + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)


class LabelFormatError(InputError):
    """A reference or prediction CSV row is malformed."""


class AudioFormatError(InputError):
    """A wav file is unreadable or has the wrong channel count or sample rate."""


class VideoFormatError(InputError):
    """A video file is missing or unreadable."""


class CheckpointError(InputError):
    """A checkpoint file that is missing, unreadable, or lacks what av-seld needs."""


class UnwritableError(InputError):
    """A folder av-seld has to write in is read-only or not ours."""


class Interrupted(Exception):
    """A run stopped by SIGINT or SIGTERM after saving its state; the message says what was saved where."""

    exit_code = 130  # the shell's code for a run ended by Ctrl-C
