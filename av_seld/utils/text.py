"""Counts in messages: ``count(1, "clip")`` is "1 clip", ``count(3, "clip")`` "3 clips"."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, the noun in the plural (``plural``, default ``noun + "s"``) unless the number is 1."""
    return f"{number} {noun if number == 1 else (plural or noun + 's')}"
