"""Convolution and crossfaded switching between responses: how a moving source is rendered with responses measured
or simulated at a grid of fixed positions. The signal is cut into Hann windows (50 % overlap, the windows sum to
one, so no clicks) and each window is convolved with the response of its own position; the parts are overlap-added.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import oaconvolve

def convolve(signal: np.ndarray, response: np.ndarray) -> np.ndarray:
    """(N,) ⊛ (C, L) → (C, N + L − 1) float32 (overlap-add FFT convolution)."""
    return oaconvolve(signal.astype(np.float32)[None, :], response.astype(np.float32), axes=1).astype(np.float32)


def add_at(out: np.ndarray, part: np.ndarray, start: int) -> None:
    """Add ``part`` (C, M) into ``out`` (C, N) from sample ``start`` on, in place; what falls past the end is dropped."""
    stop = min(out.shape[1], start + part.shape[1])
    if stop > start:
        out[:, start:stop] += part[:, : stop - start]


def crossfade_windows(num_samples: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Window centres k·hop (k = 0..K−1) and, per sample, the weight of the window before it: ((K,), (N,)).

    Sample n lies between centres k = n // hop and k + 1; their Hann weights are w and 1 − w (they sum to one).
    """
    centres = np.arange(num_samples // hop + 2) * hop
    frac = (np.arange(num_samples) % hop) / hop
    return centres, 0.5 * (1 + np.cos(np.pi * frac))


def render_switched(signal: np.ndarray, window_response: np.ndarray, responses, hop: int) -> np.ndarray:
    """Convolve windows of ``signal`` with per-window responses, overlap-added: (C, N + L − 1) float32.

    window_response: (K,) index into ``responses`` (a sequence of (C, L) arrays, or a callable index → array) for the
    Hann windows centred at k·hop (``crossfade_windows``). All windows convolved with one response are summed first,
    so there is one convolution per distinct response.
    """
    n = len(signal)
    get = responses if callable(responses) else responses.__getitem__
    _, weight = crossfade_windows(n, hop)
    k = np.arange(n) // hop
    before, after = window_response[k], window_response[k + 1]
    out = None
    for g in np.unique(window_response[: k[-1] + 2] if n else []):
        windows = np.flatnonzero(window_response == g)
        lo, hi = max(0, (windows[0] - 1) * hop), min(n, (windows[-1] + 1) * hop)  # where these windows reach
        part = signal[lo:hi] * (weight[lo:hi] * (before[lo:hi] == g) + (1 - weight[lo:hi]) * (after[lo:hi] == g))
        if not np.any(part):
            continue
        response = get(int(g))
        if out is None:
            out = np.zeros((response.shape[0], n + response.shape[1] - 1), dtype=np.float32)
        add_at(out, convolve(part, response), lo)
    if out is None:  # a silent signal
        response = get(int(window_response[0]))
        out = np.zeros((response.shape[0], n + response.shape[1] - 1), dtype=np.float32)
    return out
