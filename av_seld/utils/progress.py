"""Progress of the library's long phases (predicting a split, calibrating thresholds), shown as bars only where a
command asks for them.

The library announces a phase with :func:`phase` and reports each step; outside :func:`progress_bars` that costs
nothing and prints nothing (library calls and tests stay quiet). Commands wrap their work in ``progress_bars()`` to see
a tqdm bar per phase, so a tool never sits silent for seconds between two log lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_SHOW_BARS: ContextVar[bool] = ContextVar("av_seld_progress_bars", default=False)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[None]:
    """Within this block, :func:`phase` shows tqdm bars (on stderr)."""
    token = _SHOW_BARS.set(enabled)
    try:
        yield
    finally:
        _SHOW_BARS.reset(token)


@contextmanager
def phase(desc: str, total: int, unit: str = "clip") -> Iterator[Callable[..., object]]:
    """A phase of ``total`` steps: yields ``update(*_)``, which advances a bar by one step inside
    :func:`progress_bars` and does nothing elsewhere; it ignores its arguments, so it serves as a per-item callback
    (``progress(clip)``). The bar disappears when the phase ends (the log line after it says what it gave)."""
    if not _SHOW_BARS.get():
        yield lambda *_: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, leave=False) as bar:
        yield lambda *_: bar.update(1)
