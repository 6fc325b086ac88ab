"""Fused per-frame loops of the CPU feature path (numba, float32).

``av_seld.features`` computes the STFTs (and GCC-PHAT's inverse FFTs) with torch; everything between the spectra and
the output is done here, one loop per frame that reads each complex bin once: squared magnitudes, intensity vectors,
phase transforms and phase differences, the mel projections over each triangle's span only, and the logarithms.
As separate torch operations the same work takes several passes over memory and dense matrix products that are
97 % zeros. The loops are compiled by numba on first use (cached on disk) and vectorised by LLVM; ``log`` and
``atan2`` are written out below because a library call in a loop stops that. On CUDA, in float64, or with
``kernels="torch"``, ``av_seld.features`` uses torch operations instead; tests hold the two paths equal.

Every kernel takes the complex64 spectra ``(B, 4, t, K)`` of one block of frames and writes into the whole
C-contiguous output at frame offset ``start`` (a contiguous target is what lets its inner loops vectorise).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# fastmath: reassociation and approximate reciprocals (relative error ~1e-7, far inside the 1e-4 the features are
# held to); error_model="numpy": a division by zero gives inf instead of raising, which is what lets LLVM vectorise.
_OPTIONS = dict(fastmath=True, nogil=True, boundscheck=False, error_model="numpy", cache=True)
_EXACT = dict(_OPTIONS, fastmath=False)  # IEEE semantics (signed zeros); loops without reductions still vectorise


@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float32 as an int32 (an LLVM bitcast, so loops using it still vectorise)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def _bits_float(typingctx, x):
    """The float32 whose bits are this int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(inline="always", **_EXACT)
def log_float32(x):
    """Natural log of a positive, normal float32, to within 2e-6 absolute (9e-6 dB; torch's float32 log: 1e-6), in a
    form LLVM vectorises (a library ``log`` call does not): ``x = 2^e m`` with ``m`` in [sqrt(1/2), sqrt(2)), and
    ``ln m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)``, |s| < 0.172, by its series to ``s^9``."""
    bits = _float_bits(x)
    exponent = (bits >> 23) - 127
    mantissa = _bits_float((bits & 0x7FFFFF) | 0x3F800000)  # [1, 2)
    big = mantissa > np.float32(1.4142135)
    mantissa = np.float32(0.5) * mantissa if big else mantissa
    exponent = exponent + 1 if big else exponent
    s = (mantissa - np.float32(1.0)) / (mantissa + np.float32(1.0))
    s2 = s * s
    series = np.float32(2.0) + s2 * (np.float32(2.0 / 3.0) + s2 * (np.float32(2.0 / 5.0) + s2 * (
        np.float32(2.0 / 7.0) + s2 * np.float32(2.0 / 9.0))))
    result = np.float32(exponent) * np.float32(0.6931471805599453) + s * series
    return result if x < np.float32(np.inf) else x  # NaN and inf stay what they are


@njit(inline="always", **_EXACT)
def atan2_float32(y, x):
    """``atan2(y, x)`` of float32s to within 3e-7 rad, signed zeros as numpy and torch treat them (``atan2(+0, -0) =
    pi``, ``atan2(-0, -0) = -pi``), in a form LLVM vectorises: ``atan`` of ``min(|x|, |y|) / max(|x|, |y|)`` in
    [0, 1], folded to [-tan(pi/8), tan(pi/8)] around 1 and evaluated by the Cephes ``atanf`` polynomial, then
    moved to the octant of ``(x, y)``."""
    ax, ay = abs(x), abs(y)
    big, small = max(ax, ay), min(ax, ay)
    a = small / big if big > np.float32(0.0) else np.float32(0.0)
    folded = a > np.float32(0.41421356)  # tan(pi / 8)
    t = (a - np.float32(1.0)) / (a + np.float32(1.0)) if folded else a
    z = t * t
    r = (((np.float32(8.05374449538e-2) * z - np.float32(1.38776856032e-1)) * z + np.float32(1.99777106478e-1)) * z
         - np.float32(3.33329491539e-1)) * z * t + t
    r = r + np.float32(0.7853981633974483) if folded else r
    r = np.float32(1.5707963267948966) - r if ay > ax else r
    r = np.float32(3.141592653589793) - r if _float_bits(x) < 0 else r  # x < 0, or x = -0
    r = -r if _float_bits(y) < 0 else r
    return r if (x == x) & (y == y) else x + y  # NaN in, NaN out


def sparse_filters(filters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A banded filterbank (F, M) as ``(first, offsets, weights)``: filter ``m`` spans bins ``first[m] ..
    first[m] + offsets[m + 1] - offsets[m] - 1`` with weights ``weights[offsets[m]:offsets[m + 1]]`` (the 64 mel
    triangles over 513 bins have 994 non-zero weights of 32832)."""
    first, weights, offsets = [], [], [0]
    for column in np.asarray(filters, dtype=np.float32).T:
        nonzero = np.flatnonzero(column)
        lo, hi = (int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, 0)
        first.append(lo)
        weights.append(column[lo:hi])
        offsets.append(offsets[-1] + hi - lo)
    return np.array(first, np.int64), np.array(offsets, np.int64), np.concatenate(weights).astype(np.float32)


@njit(inline="always", **_OPTIONS)
def _project(row, out, first, offsets, weights):
    """``out[m] = sum_k filter_m[k] row[k]`` over the filter's span only."""
    for m in range(first.shape[0]):
        w = weights[offsets[m] : offsets[m + 1]]
        r = row[first[m] : first[m] + w.shape[0]]
        acc = np.float32(0.0)
        for j in range(w.shape[0]):
            acc += w[j] * r[j]
        out[m] = acc


@njit(inline="always", **_EXACT)
def _floor(x, amin):
    """``max(x, amin)``, but NaN stays NaN (so that bad audio shows in the output rather than as a floor)."""
    return amin if x < amin else x


@njit(inline="always", **_EXACT)
def _to_db(row, amin, db_per_neper):
    """``row = 10 log10(max(row, amin))`` in place."""
    for m in range(row.shape[0]):
        row[m] = db_per_neper * log_float32(_floor(row[m], amin))


@njit(**_OPTIONS)
def foa_block(spec, out, start, first, offsets, weights, eps, amin, db_per_neper):
    """FOA log-mel/IV features of one block into ``out`` (B, 7, T, M), frames ``start .. start + t - 1``: per frame,
    the powers of W, Y, Z, X and the active intensity ``Re(conj(W) [X, Y, Z])`` over the energy ``|W|^2 + (|X|^2 +
    |Y|^2 + |Z|^2) / 3 + eps`` (x, y, z order) on every bin, projected on the filters ``(first, offsets, weights)``
    of :func:`sparse_filters`, the mel powers in dB (``10 log10(max(P, amin))``; the caller applies ``top_db``).
    ``spec``: FOA spectra (B, 4, t, K) in W, Y, Z, X order."""
    batch, _, frames, bins = spec.shape
    third = np.float32(1.0 / 3.0)
    values = np.empty((7, bins), np.float32)
    pw_, py_, pz_, px_, ix_, iy_, iz_ = values[0], values[1], values[2], values[3], values[4], values[5], values[6]
    for b in range(batch):
        for f in range(frames):
            sw, sy, sz, sx = spec[b, 0, f], spec[b, 1, f], spec[b, 2, f], spec[b, 3, f]
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
            for c in range(7):
                _project(values[c], out[b, c, start + f], first, offsets, weights)
            for c in range(4):
                _to_db(out[b, c, start + f], amin, db_per_neper)


@njit(**_OPTIONS)
def mic_block(spec, out, start, cross, pair_m, pair_n, first, offsets, weights, tiny, amin, db_per_neper):
    """MIC log-mel/GCC-PHAT inputs of one block: the log-mel power in dB of M1..M4 into ``out[:, :4]`` (B, C, T, M)
    at frames ``start ..`` (the caller applies ``top_db``); ``cross`` (B, P, t, K) complex64: the phase transform ``exp(i angle(conj(X_m) X_n))`` of each pair
    ``(pair_m[p], pair_n[p])``, ``1 + 0i`` where either spectrum is exactly zero (``angle(0) = 0``)."""
    batch, channels, frames, bins = spec.shape
    pairs = pair_m.shape[0]
    power = np.empty((channels, bins), np.float32)
    scale = np.empty((channels, bins), np.float32)
    for b in range(batch):
        for f in range(frames):
            for c in range(channels):
                s, p_, g = spec[b, c, f], power[c], scale[c]
                for k in range(bins):
                    p = s[k].real * s[k].real + s[k].imag * s[k].imag
                    p_[k] = p
                    g[k] = np.float32(1.0) / np.sqrt(max(p, tiny))
                _project(p_, out[b, c, start + f], first, offsets, weights)
                _to_db(out[b, c, start + f], amin, db_per_neper)
            for q in range(pairs):
                m, n = pair_m[q], pair_n[q]
                sm, sn, gm, gn = spec[b, m, f], spec[b, n, f], scale[m], scale[n]
                pm, pn, z = power[m], power[n], cross[b, q, f]
                for k in range(bins):
                    mr, mi = sm[k].real * gm[k], sm[k].imag * gm[k]
                    nr, ni = sn[k].real * gn[k], sn[k].imag * gn[k]
                    silent = (pm[k] == 0) | (pn[k] == 0)
                    z[k] = complex(np.float32(1.0) if silent else mr * nr + mi * ni, mr * ni - mi * nr)


@njit(**_EXACT)
def salsalite_block(spec, out, start, lower, nipd_scale, amin, db_per_neper):
    """SALSA-lite of one block into ``out`` (B, 7, T, W), frames ``start .. start + t - 1``: ``10 log10(max(|X_m|^2,
    amin))`` of M1..M4 on bins ``lower:lower + W`` (channels 0-3), then for M2, M3, M4 the phase difference
    ``angle(X_m conj(X_1))`` divided by ``nipd_scale`` (U,) on bins ``lower:lower + U`` and zero above (4-6).
    Compiled without fast-math: the signs of zeros decide the angle of a silent bin (0 or pi), as in numpy."""
    batch, channels, frames, _ = spec.shape
    width, upper = out.shape[3], nipd_scale.shape[0]
    for b in range(batch):
        for f in range(frames):
            for c in range(channels):
                s, db = spec[b, c, f, lower : lower + width], out[b, c, start + f]
                for k in range(width):
                    db[k] = db_per_neper * log_float32(_floor(s[k].real * s[k].real + s[k].imag * s[k].imag, amin))
            ref = spec[b, 0, f, lower : lower + upper]
            for c in range(1, channels):
                s, nipd = spec[b, c, f, lower : lower + upper], out[b, 3 + c, start + f]
                for k in range(upper):
                    rr, ri = ref[k].real, ref[k].imag
                    orr, oi = s[k].real, s[k].imag
                    nipd[k] = atan2_float32(oi * rr - orr * ri, orr * rr + oi * ri) / nipd_scale[k]
                for k in range(upper, width):
                    nipd[k] = np.float32(0.0)
