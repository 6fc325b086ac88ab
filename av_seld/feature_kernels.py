"""Fused per-bin kernels of the CPU feature path (numba, float32).

``av_seld.features`` computes the STFT with torch and the mel and lag projections with matrix products; everything
in between is element-wise work over the 513 FFT bins of each frame and channel. As separate torch operations that
work costs several passes over memory (split the complex spectra into real and imaginary planes, squared magnitudes,
products, sums, a division); here it is one loop per frame that reads each complex bin once and writes what the
projections need. The loops are compiled by numba on first use (cached on disk) and vectorised by LLVM over the
bins. On CUDA, in float64, or with ``kernels="torch"``, the torch operations in ``av_seld.features`` are used
instead; tests hold the two paths equal.

Every kernel takes the complex64 spectra ``(B, 4, t, K)`` of one block of frames and fills preallocated float32
outputs; none allocates per call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# fastmath: reassociation and approximate reciprocals (relative error ~1e-7, far inside the 1e-4 the features are
# held to); error_model="numpy": a division by zero gives inf instead of raising, which is what lets LLVM vectorise.
_OPTIONS = dict(fastmath=True, nogil=True, boundscheck=False, error_model="numpy", cache=True)


@njit(**_OPTIONS)
def foa_power_intensity(spec, out, eps):
    """``out`` (B, 7, t, K): powers of W, Y, Z, X (0-3), then the active intensity ``Re(conj(W) [X, Y, Z])`` over the
    energy ``|W|^2 + (|X|^2 + |Y|^2 + |Z|^2) / 3 + eps`` in x, y, z order (4-6), from FOA spectra (W, Y, Z, X)."""
    batch, _, frames, bins = spec.shape
    third = np.float32(1.0 / 3.0)
    for b in range(batch):
        for f in range(frames):
            sw, sy, sz, sx = spec[b, 0, f], spec[b, 1, f], spec[b, 2, f], spec[b, 3, f]
            pw_, py_, pz_, px_ = out[b, 0, f], out[b, 1, f], out[b, 2, f], out[b, 3, f]
            ix_, iy_, iz_ = out[b, 4, f], out[b, 5, f], out[b, 6, f]
            for k in range(bins):
                wr, wi = sw[k].real, sw[k].imag
                yr, yi = sy[k].real, sy[k].imag
                zr, zi = sz[k].real, sz[k].imag
                xr, xi = sx[k].real, sx[k].imag
                pw = wr * wr + wi * wi
                py = yr * yr + yi * yi
                pz = zr * zr + zi * zi
                px = xr * xr + xi * xi
                pw_[k], py_[k], pz_[k], px_[k] = pw, py, pz, px
                inverse = np.float32(1.0) / (pw + (px + py + pz) * third + eps)
                ix_[k] = (wr * xr + wi * xi) * inverse
                iy_[k] = (wr * yr + wi * yi) * inverse
                iz_[k] = (wr * zr + wi * zi) * inverse


@njit(**_OPTIONS)
def mic_power_phat(spec, power, cross, pair_m, pair_n, tiny):
    """``power`` (B, 4, t, K): ``|X_m|^2``; ``cross`` (B, P, t, K) complex64: the phase transform ``exp(i
    angle(conj(X_m) X_n))`` of each pair ``(pair_m[p], pair_n[p])``, ``1 + 0i`` where either spectrum is exactly
    zero (``angle(0) = 0``)."""
    batch, channels, frames, bins = spec.shape
    pairs = pair_m.shape[0]
    scale = np.empty((channels, bins), np.float32)
    for b in range(batch):
        for f in range(frames):
            for c in range(channels):
                s, p_, g = spec[b, c, f], power[b, c, f], scale[c]
                for k in range(bins):
                    p = s[k].real * s[k].real + s[k].imag * s[k].imag
                    p_[k] = p
                    g[k] = np.float32(1.0) / np.sqrt(max(p, tiny))
            for q in range(pairs):
                m, n = pair_m[q], pair_n[q]
                sm, sn, gm, gn = spec[b, m, f], spec[b, n, f], scale[m], scale[n]
                pm, pn, out = power[b, m, f], power[b, n, f], cross[b, q, f]
                for k in range(bins):
                    mr, mi = sm[k].real * gm[k], sm[k].imag * gm[k]
                    nr, ni = sn[k].real * gn[k], sn[k].imag * gn[k]
                    silent = (pm[k] == 0) | (pn[k] == 0)
                    out[k] = complex(np.float32(1.0) if silent else mr * nr + mi * ni, mr * ni - mi * nr)


@njit(**_OPTIONS)
def mic_power_phase(spec, out, phase_y, phase_x, lower, cutoff, upper):
    """SALSA-lite's inputs: ``out`` (B, 7, t, cutoff - lower): ``|X_m|^2`` of M1..M4 on bins ``lower:cutoff`` in
    channels 0-3 and zeros in channels 4-6 from index ``upper`` on; ``phase_y``/``phase_x`` (B, 3, t, upper):
    ``Im``/``Re`` of ``X_m conj(X_1)`` for M2, M3, M4 on bins ``lower:lower + upper`` (their ``atan2`` is the phase
    difference)."""
    batch, channels, frames, _ = spec.shape
    width = cutoff - lower
    for b in range(batch):
        for f in range(frames):
            for c in range(channels):
                s, p_ = spec[b, c, f], out[b, c, f]
                for k in range(lower, cutoff):
                    p_[k - lower] = s[k].real * s[k].real + s[k].imag * s[k].imag
            ref = spec[b, 0, f]
            for c in range(1, channels):
                s, y_, x_, zero_ = spec[b, c, f], phase_y[b, c - 1, f], phase_x[b, c - 1, f], out[b, 3 + c, f]
                for k in range(lower, lower + upper):
                    rr, ri = ref[k].real, ref[k].imag
                    orr, oi = s[k].real, s[k].imag
                    y_[k - lower] = oi * rr - orr * ri
                    x_[k - lower] = orr * rr + oi * ri
                for k in range(upper, width):
                    zero_[k] = np.float32(0.0)
