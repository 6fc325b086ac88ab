"""Sizes on the command line: one convention for every command, ``WxH``, width first, as ffmpeg's ``-s`` and
OpenCV's writers take it.

A frame size is ``WIDTHxHEIGHT`` in pixels (``640x320``); a grid of cells over a frame is ``COLSxROWS`` (``10x5``),
in the same order. Inside the library sizes keep their own documented order: ``(width, height)`` for writers, and
``(height, width)`` / ``(rows, cols)`` (array shape order) for ``data.video_size``, ``frame_size`` and
``token_grid`` / ``map_grid`` in recipes (see docs/conventions.md); :class:`Size` gives both (``size.hw``).

Older command lines still work, with a ``FutureWarning``: ``precompute-visual --size HxW --grid ROWSxCOLS`` (told apart
by their shape: an equirectangular frame is twice as wide as high, and a grid over one has no more rows than columns)
and the benches' ``--frame-size H W`` (two numbers).
"""

from __future__ import annotations

import argparse
import warnings
from typing import NamedTuple, Sequence


class Size(NamedTuple):
    """A size in ``WxH`` order: (width, height) in pixels, or (cols, rows) of a grid."""

    width: int
    height: int

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width): array shape order, as recipes and the visual encoder take sizes."""
        return self.height, self.width

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def _deprecated(option: str, old: str, new: Size, form: str) -> None:
    warnings.warn(f"{option} {old} is the old {form} form; sizes are WxH now (width first, like ffmpeg): "
                  f"write {option} {new}", FutureWarning, stacklevel=3)


def parse_size(text: str, *, option: str = "size", multiple: int = 1, equirectangular: bool = False,
               even: bool = False, legacy_hxw: bool = False) -> Size:
    """``"640x320"`` -> ``Size(640, 320)``; raises ``ValueError`` with a message naming ``option``.

    multiple: both numbers must be multiples of it. equirectangular: the width must be twice the height. even: both
    even (video codecs). legacy_hxw: also take the old ``HxW`` form of an equirectangular frame (height first: the
    first number half the second), with a FutureWarning.
    """
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{option} must be WxH in pixels, width first, such as 640x320; got {text!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"{option} must be positive, got {text!r}")
    size = Size(width, height)
    if legacy_hxw and equirectangular and height == 2 * width:
        size = Size(height, width)
        _deprecated(option, text, size, "HxW")
    if equirectangular and size.width != 2 * size.height:
        raise ValueError(f"{option} {text}: an equirectangular frame is twice as wide as it is high (WxH such as "
                         "640x320)")
    if multiple > 1 and (size.width % multiple or size.height % multiple):
        raise ValueError(f"{option} {text}: both sizes must be positive multiples of {multiple}")
    if even and (size.width % 2 or size.height % 2):
        raise ValueError(f"{option} {text}: both sizes must be even")
    return size


def parse_grid(text: str, *, option: str = "grid", legacy_rows_first: bool = False) -> Size:
    """``"10x5"`` -> ``Size(10, 5)``: 10 columns, 5 rows. legacy_rows_first: a grid with more rows than columns is
    read as the old ``ROWSxCOLS`` form, with a FutureWarning."""
    try:
        cols, rows = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{option} must be COLSxROWS, columns first, such as 10x5; got {text!r}") from None
    if cols <= 0 or rows <= 0:
        raise ValueError(f"{option} must be positive, got {text!r}")
    grid = Size(cols, rows)
    if legacy_rows_first and rows > cols:
        grid = Size(rows, cols)
        _deprecated(option, text, grid, "ROWSxCOLS")
    return grid


class SizeAction(argparse.Action):
    """An argparse option taking one ``WxH`` (or ``COLSxROWS`` with ``grid=True``) and storing a :class:`Size`.

    ``legacy_pair=True`` also takes the old two-number form, height (rows) first (``--frame-size 128 256``), with a
    FutureWarning. Other keywords go to :func:`parse_size` / :func:`parse_grid`.
    """

    def __init__(self, option_strings, dest, *, grid: bool = False, legacy_pair: bool = False, checks=None,
                 nargs=None, **kwargs):
        self.grid, self.legacy_pair, self.checks = grid, legacy_pair, dict(checks or {})
        super().__init__(option_strings, dest, nargs="+" if legacy_pair else None, **kwargs)

    def parse(self, values: str | Sequence[str], option: str) -> Size:
        tokens = [values] if isinstance(values, str) else list(values)
        if len(tokens) == 2 and self.legacy_pair:
            text = "x".join(tokens[::-1])  # H W -> WxH
            size = self.parse([text], option)
            _deprecated(option, " ".join(tokens), size, "ROWS COLS" if self.grid else "H W")
            return size
        if len(tokens) != 1:
            raise ValueError(f"{option} takes one {'COLSxROWS' if self.grid else 'WxH'} value, got "
                             f"{' '.join(tokens)!r}")
        if self.grid:
            return parse_grid(tokens[0], option=option, **self.checks)
        return parse_size(tokens[0], option=option, **self.checks)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        try:
            setattr(namespace, self.dest, self.parse(values, option_string or self.dest))
        except ValueError as e:
            raise argparse.ArgumentError(self, str(e)) from None


class SizeHelpFormatter(argparse.HelpFormatter):
    """Shows a ``legacy_pair`` :class:`SizeAction` as its one ``WxH`` value, not as ``WxH [WxH ...]``: the old pair
    still parses but is not advertised."""

    def _format_args(self, action, default_metavar):  # argparse's hook for an option's value in usage and help
        if isinstance(action, SizeAction):
            return self._metavar_formatter(action, default_metavar)(1)[0]
        return super()._format_args(action, default_metavar)


__all__ = ["Size", "SizeAction", "SizeHelpFormatter", "parse_grid", "parse_size"]
