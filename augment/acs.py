"""360° audio channel swapping (ACS): one rotation/reflection of the sound field applied to audio, video and labels.

Every transform is a map of directions ``φ' = s·φ + 90°·q``, ``θ' = e·θ`` (s, e = ±1, q = quarter turns), i.e. the
signed-permutation matrix ``M = Rz(90°·q) · diag(1, s, e)`` acting on unit vectors: ``d' = M d``
(docs/conventions.md, "Channel swapping").

- FOA, 16 transforms: index ``i = a + 8·b`` with azimuth map ``a`` in the order of docs/conventions.md
  (φ, −φ, φ+90°, φ−90°, −φ+90°, −φ−90°, φ+180°, −φ+180°) and elevation map ``b`` (0: θ, 1: −θ).
  W is unchanged and (X, Y, Z) become ``M (X, Y, Z)``: a plane wave from d then reads as one from M d.
- MIC, 8 transforms: the maps that carry the capsule tetrahedron onto itself, in the order of docs/conventions.md's MIC
  table. New capsule m plays the old capsule k with ``M u_k = u_m`` (capsule k's view of d is capsule m's view of
  M d). The permutation is derived here from ``av_seld.arrays.MIC_CAPSULES_DEG``, not copied from a table.
- ``ChannelSwap.map_index`` numbers the geometric map in the FOA order (0..15) for both formats, so an FOA and a
  MIC copy with the same ``map_index`` share their labels and video.

Equirectangular frames move by exact pixel operations: −φ mirrors the columns (u → W − u), +90°·q rolls left by
q·W/4 columns, −θ flips the rows. Labels: azimuth wraps to [-180, 180).

Computed features (layouts of the feature module, channel axis −3):

- ``foa_logmel_iv`` (7 channels): log-mel of W, Y, Z, X permute with the audio (a sign flip leaves a power spectrum
  unchanged); intensity vector x, y, z (channels 4..6) becomes ``M (x, y, z)``. Exact whenever the features are a
  per-channel log power and an intensity vector normalised by a rotation-invariant energy (av_seld.features:
  bit-for-bit up to float rounding of that energy's sum).
- ``mic_logmel_gcc`` (10 channels): log-mel channels permute; GCC-PHAT pair (a, b) becomes old pair
  (p[a], p[b]); when that order is reversed the lag axis is reversed about the zero lag (GCC_ba(τ) = GCC_ab(−τ)).
  With an even number of lags centred as the DCASE baseline stores them (−L/2 .. L/2 − 1) the lag −L/2 has no
  stored counterpart +L/2: that one lag of a reversed pair is filled from lag +L/2 − 1 (not exact; it lies far
  outside the physical delays of a 4.2 cm array, about ±5 samples). Every other lag is exact.
- ``mic_salsalite`` (7 channels): the 4 spectrograms permute. The 3 normalised phase differences are relative to
  M1; when the transform keeps M1 in place (MIC transforms 0 and 5) they just permute (exact). Otherwise they are
  recomputed as ``ipd'_m = ipd_p[m] − ipd_p[1]`` and rewrapped into one period per frequency bin
  (``ipd_period``: c / f for the standard SALSA-lite normalisation, ``inf`` for bins the feature leaves at zero),
  which equals what the transformed audio gives up to float rounding and ties at exactly ±half a period. Without
  ``ipd_period`` such transforms are rejected with a ValueError (restrict the policy to indices (0, 5) instead).
- Standardised features ``(x − mean) / std`` with per-channel statistics are not equivariant (log-mel W and X
  differ in mean; a standardised intensity flips about its mean, not zero): swap the raw features, then standardise
  (``av_seld.data.pipeline`` orders its stages so).

Torch tensors on the CPU that NumPy can share go through NumPy (several times faster there); others (CUDA,
autograd) use torch ops. Frames are mirrored in place with OpenCV's ``flip``, by far the fastest column reversal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from av_seld.arrays import FEATURE_SPECS, FOA_AXIS_CHANNEL, FORMATS, MIC_CAPSULES_XYZ, MIC_PAIRS, SPEED_OF_SOUND
from av_seld.geometry import wrap_azimuth
from av_seld.timing import N_FFT, SAMPLE_RATE

# (azimuth sign s, quarter turns q): φ' = s φ + 90° q, in docs/conventions.md's FOA table order.
AZIMUTH_MAPS: tuple[tuple[int, int], ...] = ((1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1), (1, 2), (-1, 2))
ELEVATION_SIGNS = (1, -1)
# FOA transform i = a + 8 b: azimuth map a, elevation sign b.
FOA_MAPS: tuple[tuple[int, int, int], ...] = tuple((s, q, e) for e in ELEVATION_SIGNS for s, q in AZIMUTH_MAPS)
# The 8 maps that carry the MIC tetrahedron onto itself, in docs/conventions.md's MIC table order.
MIC_MAPS: tuple[tuple[int, int, int], ...] = (
    (1, 0, 1), (1, -1, -1), (-1, -1, 1), (-1, 0, -1), (1, 1, -1), (-1, 1, 1), (1, 2, 1), (-1, 2, -1),
)
NUM_TRANSFORMS = {"foa": len(FOA_MAPS), "mic": len(MIC_MAPS)}

# Feature kind -> (audio format, channels), from av_seld.arrays.FEATURE_SPECS.
FEATURE_LAYOUTS = {kind: (spec.audio_format, spec.num_channels) for kind, spec in FEATURE_SPECS.items()}


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


_CV2_DTYPES = {np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "int32", "float32", "float64")}
_NUMPY_TORCH_DTYPES = {f"torch.{t}" for t in ("bool", "uint8", "int8", "int16", "int32", "int64", "float16",
                                               "float32", "float64", "complex64", "complex128")}


def map_matrix(azimuth_sign: int, quarter_turns: int, elevation_sign: int) -> np.ndarray:
    """(3, 3) int matrix M with M · (x, y, z) = unit vector of (s φ + 90° q, e θ)."""
    c, s = ((1, 0), (0, 1), (-1, 0), (0, -1))[quarter_turns % 4]
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.int64)
    return rotation @ np.diag([1, azimuth_sign, elevation_sign]).astype(np.int64)


def _signed_permutation(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source index (3,), sign (3,)) with (M v)[i] = sign[i] · v[source[i]]."""
    source = np.abs(matrix).argmax(axis=1)
    return source, matrix[np.arange(3), source]


def _mic_permutation(matrix: np.ndarray) -> np.ndarray:
    """(4,) p: new capsule m plays old capsule p[m], where M u_p[m] = u_m; ValueError if M does not permute them."""
    capsules = MIC_CAPSULES_XYZ  # (4, 3)
    moved = capsules @ matrix.T  # row k: M u_k
    match = np.linalg.norm(moved[:, None, :] - capsules[None, :, :], axis=-1) < 1e-9  # [k, m]: M u_k = u_m
    if not (match.sum(axis=0) == 1).all():
        raise ValueError(f"map {matrix.tolist()} does not carry the MIC capsules onto each other")
    return match.argmax(axis=0)


def _map_name(azimuth_sign: int, quarter_turns: int, elevation_sign: int) -> str:
    az = ("φ" if azimuth_sign > 0 else "−φ") + {0: "", 1: "+90°", -1: "−90°", 2: "+180°"}[quarter_turns]
    return f"{az}, {'θ' if elevation_sign > 0 else '−θ'}"


def _numpy_backed(x) -> bool:
    """True for a CPU tensor that NumPy can share (no autograd, a NumPy dtype): NumPy's copies are faster there."""
    return x.device.type == "cpu" and not x.requires_grad and str(x.dtype) in _NUMPY_TORCH_DTYPES


def _mirror_columns_in_place(images: np.ndarray, col_axis: int) -> None:
    """Reverse the columns of C-contiguous ``images`` (..., H, W[, C]) in place (col_axis = axis of W)."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency; keep NumPy as the fallback
        cv2 = None
    plane_shape = images.shape[col_axis - 1:]  # (H, W, C) or (H, W)
    if cv2 is not None and images.dtype in _CV2_DTYPES and (len(plane_shape) == 2 or plane_shape[-1] <= 4):
        for plane in images.reshape((-1,) + plane_shape):
            cv2.flip(plane, 1, dst=plane)  # flipCode 1: around the vertical axis, in place
        return
    flipped = [slice(None)] * images.ndim
    flipped[col_axis] = slice(None, None, -1)
    images[...] = images[tuple(flipped)].copy()


def _take(x, index: np.ndarray, axis: int):
    """x's entries ``index`` along ``axis`` (a copy), NumPy or torch."""
    if _is_torch(x) and _numpy_backed(x):
        import torch

        return torch.from_numpy(np.take(x.numpy(), index, axis=axis))
    if _is_torch(x):
        import torch

        return x.index_select(axis, torch.as_tensor(index, dtype=torch.long, device=x.device))
    return np.take(x, index, axis=axis)


def _scale(x, signs: np.ndarray, axis: int):
    """Multiply the entries along ``axis`` by ``signs`` (±1), in place on a fresh copy; returns it."""
    negative = np.flatnonzero(signs < 0)
    if negative.size and _is_torch(x) and _numpy_backed(x):
        _scale(x.numpy(), signs, axis)  # shares x's memory
    elif negative.size:
        index = [slice(None)] * x.ndim
        for k in negative:
            index[axis] = int(k)
            x[tuple(index)] *= -1
    return x


def _mask(like, keep: np.ndarray, axis: int):
    """A 0/1 array of ``like``'s kind, shape (len(keep),) placed on ``axis`` of a broadcastable shape."""
    shape = [1] * like.ndim
    shape[axis] = len(keep)
    values = keep.astype(np.float64).reshape(shape)
    if _is_torch(like):
        import torch

        return torch.as_tensor(values, dtype=like.dtype, device=like.device)
    return values.astype(like.dtype)


def salsalite_ipd_period(lower_bin: int, num_phase_bins: int, num_bins: int, sample_rate: int = SAMPLE_RATE,
                         n_fft: int = N_FFT, speed_of_sound: float = SPEED_OF_SOUND) -> np.ndarray:
    """(num_bins,) wrap period in metres of SALSA-lite's normalised phase differences: c / f for the FFT bins
    ``lower_bin .. lower_bin + num_phase_bins − 1`` the phase channels hold, inf for the zeroed bins above.

    With av_seld.features: ``salsalite_ipd_period(lower, upper, cutoff - lower)`` where
    ``lower, upper, cutoff = salsalite_bins()``.
    """
    period = np.full(num_bins, np.inf)
    k = np.arange(lower_bin, lower_bin + num_phase_bins, dtype=np.float64)
    period[:num_phase_bins] = speed_of_sound * n_fft / (sample_rate * k)
    return period


def _axis(ndim: int, axis: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} out of range for an array of {ndim} dimensions")
    return axis % ndim


@dataclass(frozen=True)
class ChannelSwap:
    """One ACS transform: ``format`` ('foa' or 'mic') and ``index`` (0..15 for FOA, 0..7 for MIC).

    Every method returns a new array (NumPy in, NumPy out; torch in, torch out, on the same device).
    """

    format: str
    index: int

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"format must be 'foa' or 'mic', got {self.format!r}")
        if not 0 <= self.index < NUM_TRANSFORMS[self.format]:
            raise ValueError(f"{self.format} ACS index must be in 0..{NUM_TRANSFORMS[self.format] - 1}, "
                             f"got {self.index}")

    @classmethod
    def all(cls, format: str) -> list["ChannelSwap"]:
        """Every transform of a format, identity first."""
        return [cls(format, i) for i in range(NUM_TRANSFORMS[format])]

    # ---------------------------------------------------------------------------------------- the geometric map

    @property
    def geometric_map(self) -> tuple[int, int, int]:
        """(azimuth sign s, quarter turns q, elevation sign e): φ' = s φ + 90° q, θ' = e θ."""
        return (FOA_MAPS if self.format == "foa" else MIC_MAPS)[self.index]

    @property
    def map_index(self) -> int:
        """Index of the geometric map in the FOA numbering (0..15), the same for FOA and MIC."""
        return FOA_MAPS.index(self.geometric_map)

    @property
    def name(self) -> str:
        """The map as docs/conventions.md writes it, e.g. 'φ+90°, −θ'."""
        return _map_name(*self.geometric_map)

    @cached_property
    def matrix(self) -> np.ndarray:
        """(3, 3) int signed-permutation matrix M: a direction d becomes M d."""
        return map_matrix(*self.geometric_map)

    @property
    def is_identity(self) -> bool:
        return self.geometric_map == (1, 0, 1)

    def inverse(self) -> "ChannelSwap":
        """The transform that undoes this one (same format), e.g. to map test-time-augmented predictions back."""
        maps = FOA_MAPS if self.format == "foa" else MIC_MAPS
        inverse = self.matrix.T
        return ChannelSwap(self.format, next(i for i, m in enumerate(maps) if (map_matrix(*m) == inverse).all()))

    @cached_property
    def _xyz_map(self) -> tuple[np.ndarray, np.ndarray]:
        return _signed_permutation(self.matrix)

    @cached_property
    def audio_map(self) -> tuple[np.ndarray, np.ndarray]:
        """(source (4,), sign (4,)): new channel c = sign[c] · old channel source[c] (ACN W, Y, Z, X or M1..M4)."""
        if self.format == "mic":
            return _mic_permutation(self.matrix), np.ones(4, dtype=np.int64)
        source, sign = np.arange(4), np.ones(4, dtype=np.int64)
        axis_source, axis_sign = self._xyz_map
        for axis in range(3):
            source[FOA_AXIS_CHANNEL[axis]] = FOA_AXIS_CHANNEL[axis_source[axis]]
            sign[FOA_AXIS_CHANNEL[axis]] = axis_sign[axis]
        return source, sign

    # -------------------------------------------------------------------------------------------------- audio

    def audio(self, audio, channel_axis: int = -2):
        """Raw 4-channel audio (..., 4, N) (channels on ``channel_axis``), NumPy or torch: the transformed copy."""
        axis = _axis(audio.ndim, channel_axis)
        if audio.shape[axis] != 4:
            raise ValueError(f"audio must have 4 channels on axis {channel_axis}, got shape {tuple(audio.shape)}")
        source, sign = self.audio_map
        return _scale(_take(audio, source, axis), sign, axis)

    # ----------------------------------------------------------------------------------------------- features

    def features(self, features, layout: str, *, channel_axis: int = -3, gcc_zero_lag_index: int | None = None,
                 ipd_period=None):
        """Computed features (..., C, T, F) of ``layout`` (see the module docstring for what is exact).

        gcc_zero_lag_index: index of zero lag on the last axis of the GCC channels (default F // 2, the DCASE
        baseline's lags −F/2 .. F/2 − 1). ipd_period: (F,) per-bin wrap period of the SALSA-lite phase-difference
        channels (:func:`salsalite_ipd_period`), needed only for MIC transforms that move M1. The features must
        be raw, not standardised (see the module docstring): swap first, then standardise.
        """
        if layout not in FEATURE_LAYOUTS:
            raise ValueError(f"unknown feature layout {layout!r}; expected one of {sorted(FEATURE_LAYOUTS)}")
        fmt, channels = FEATURE_LAYOUTS[layout]
        if fmt != self.format:
            raise ValueError(f"feature layout {layout!r} is {fmt.upper()}, "
                             f"but this is a {self.format.upper()} transform")
        axis = _axis(features.ndim, channel_axis)
        if features.shape[axis] != channels:
            raise ValueError(f"{layout} features need {channels} channels on axis {channel_axis}, "
                             f"got shape {tuple(features.shape)}")
        source, sign = self.audio_map
        if layout == "foa_logmel_iv":
            axis_source, axis_sign = self._xyz_map
            index = np.concatenate([source, 4 + axis_source])
            return _scale(_take(features, index, axis), np.concatenate([np.ones(4, np.int64), axis_sign]), axis)
        if layout == "mic_logmel_gcc":
            return self._gcc_features(features, axis, source, gcc_zero_lag_index)
        return self._salsalite_features(features, axis, source, ipd_period)

    def _gcc_features(self, features, axis: int, source: np.ndarray, zero_lag: int | None):
        lag_axis = features.ndim - 1
        if axis == lag_axis:
            raise ValueError("the channel axis cannot be the lag axis (the last one)")
        num_lags = features.shape[lag_axis]
        zero_lag = num_lags // 2 if zero_lag is None else zero_lag
        pair_source, reversed_pairs = [], []
        for n, (a, b) in enumerate(MIC_PAIRS):
            pa, pb = int(source[a]), int(source[b])
            pair_source.append(4 + MIC_PAIRS.index((min(pa, pb), max(pa, pb))))
            if pa > pb:
                reversed_pairs.append(4 + n)
        out = _take(features, np.concatenate([source, pair_source]), axis)
        if reversed_pairs:
            # Lag l reads lag −l: index j reads 2 z − j, clipped where the stored window has no counterpart.
            lag_index = np.clip(2 * zero_lag - np.arange(num_lags), 0, num_lags - 1)
            channels = np.array(reversed_pairs)
            index = [slice(None)] * out.ndim
            index[axis] = channels.tolist()
            out[tuple(index)] = _take(_take(out, channels, axis), lag_index, lag_axis)
        return out

    def _salsalite_features(self, features, axis: int, source: np.ndarray, ipd_period):
        reference = int(source[0])
        if reference == 0:
            # M1 stays the reference: the phase differences of M2..M4 (channels 4..6) permute like the capsules.
            return _take(features, np.concatenate([source, 3 + source[1:]]), axis)
        if ipd_period is None:
            raise ValueError(f"MIC transform {self.index} ({self.name}) moves M1, the SALSA-lite phase reference; "
                             "recomputing the phase differences needs ipd_period (or use only transforms 0 and 5)")
        num_bins = features.shape[-1]
        period = np.asarray(ipd_period, dtype=np.float64)
        if period.shape != (num_bins,):
            raise ValueError(f"ipd_period must have shape ({num_bins},), got {period.shape}")
        # Phase difference of capsule k relative to old M1 (0 for M1 itself), via index 4 + k - 1; M1 reads a zero.
        out = _take(features, np.concatenate([source, [4, 5, 6]]), axis)
        index = [slice(None)] * out.ndim
        index[axis] = slice(4, 7)
        capsule = _take(features, np.maximum(source[1:] + 3, 4), axis) * _mask(features, source[1:] != 0, axis)
        ref = _take(features, np.array([reference + 3]), axis)
        new = capsule - ref
        step = np.where(np.isfinite(period), period, 0.0)  # inf: no wrapping (and no inf · 0 = nan)
        if _is_torch(new):
            import torch

            p, k = (torch.as_tensor(v, dtype=new.dtype, device=new.device) for v in (period, step))
            new = new - k * torch.round(new / p)
        else:
            new = (new - step * np.round(new / period)).astype(features.dtype, copy=False)
        out[tuple(index)] = new
        return out

    # ------------------------------------------------------------------------------------------------- frames

    def frames(self, frames, channels_first: bool = False):
        """Equirectangular frames (..., H, W, 3), or (..., 3, H, W) with ``channels_first``; NumPy or torch, any dtype.

        Exact pixel moves: mirror the columns for −φ, roll left by q·W/4 columns for +90°·q, flip the rows for −θ.
        """
        if frames.ndim < 3:
            raise ValueError(f"frames must be (..., H, W, 3) or (..., 3, H, W), got shape {tuple(frames.shape)}")
        last = frames.ndim - 1
        row_axis, col_axis = (last - 1, last) if channels_first else (last - 2, last - 1)
        width = frames.shape[col_axis]
        azimuth_sign, quarters, elevation_sign = self.geometric_map
        if quarters % 4 and width % 4:
            raise ValueError(f"a 90° roll needs a frame width divisible by 4, got {width}")
        shift = (quarters % 4) * width // 4  # new column i reads (mirrored) column (i + shift) mod W
        if _is_torch(frames) and not _numpy_backed(frames):
            import torch

            columns = (np.arange(width) + shift) % width
            if azimuth_sign < 0:
                columns = width - 1 - columns
            out = frames.index_select(col_axis, torch.as_tensor(columns, device=frames.device))
            return out.flip(row_axis) if elevation_sign < 0 else out
        if _is_torch(frames):
            import torch

            return torch.from_numpy(self.frames(frames.numpy(), channels_first))
        # Mirror ∘ roll by s = roll by −s ∘ mirror: roll (two block copies, rows flipped on the way), then mirror
        # each image in place with OpenCV, several times faster than a copy through a negative column stride.
        if azimuth_sign < 0:
            shift = (width - shift) % width
        source = frames[(slice(None),) * row_axis + (slice(None, None, -1),)] if elevation_sign < 0 else frames
        out = np.empty(frames.shape, dtype=frames.dtype)
        dst, src = [slice(None)] * frames.ndim, [slice(None)] * frames.ndim
        dst[col_axis], src[col_axis] = slice(0, width - shift), slice(shift, width)
        out[tuple(dst)] = source[tuple(src)]
        if shift:
            dst[col_axis], src[col_axis] = slice(width - shift, width), slice(0, shift)
            out[tuple(dst)] = source[tuple(src)]
        if azimuth_sign < 0:
            _mirror_columns_in_place(out, col_axis)
        return out

    # ------------------------------------------------------------------------------------------------- labels

    def directions(self, azimuth_deg, elevation_deg):
        """(azimuth_deg, elevation_deg) → transformed, azimuth wrapped to [-180, 180); NumPy, torch or scalars."""
        azimuth_sign, quarters, elevation_sign = self.geometric_map
        return wrap_azimuth(azimuth_sign * azimuth_deg + 90.0 * quarters), elevation_sign * elevation_deg

    def events(self, events):
        """An ``av_seld.io.labels.Events`` (or any dataclass with azimuth_deg / elevation_deg arrays) transformed."""
        azimuth, elevation = self.directions(np.asarray(events.azimuth_deg, dtype=np.float64),
                                             np.asarray(events.elevation_deg, dtype=np.float64))
        return dataclasses.replace(events, azimuth_deg=np.asarray(azimuth, dtype=np.float64).reshape(-1),
                                   elevation_deg=np.asarray(elevation, dtype=np.float64).reshape(-1))

    def xyz(self, xyz, axis: int = -1):
        """Cartesian vectors with (x, y, z) on ``axis`` (size 3), any length: M v."""
        axis = _axis(xyz.ndim, axis)
        if xyz.shape[axis] != 3:
            raise ValueError(f"xyz needs size 3 on axis {axis}, got shape {tuple(xyz.shape)}")
        source, sign = self._xyz_map
        return _scale(_take(xyz, source, axis), sign, axis)

    def _rows(self, target, first: int, size: int):
        """``target`` with rows ``first .. first + 2`` of axis −2 (of ``size`` rows) transformed as xyz, the others
        (activity, distance: a rotation keeps both) unchanged."""
        if target.ndim < 2 or target.shape[-2] != size:
            raise ValueError(f"expected {size} rows on axis -2, got shape {tuple(target.shape)}")
        source, sign = self._xyz_map
        index = np.concatenate([np.arange(first), first + source, np.arange(first + 3, size)])
        scale = np.concatenate([np.ones(first), sign, np.ones(size - first - 3)])
        return _scale(_take(target, index, target.ndim - 2), scale, target.ndim - 2)

    def accdoa(self, target):
        """Multi-ACCDOA (..., tracks, 3 or 4, classes), e.g. (B, T, 3, 3, 13): (x, y, z[, distance]) on axis −2,
        xyz transformed, distance unchanged."""
        if target.ndim < 2 or target.shape[-2] not in (3, 4):
            raise ValueError(f"multi-ACCDOA must be (..., tracks, 3 or 4, classes), got shape {tuple(target.shape)}")
        return self._rows(target, 0, target.shape[-2])

    def adpit(self, target):
        """ADPIT target (..., 6, 4 or 5, classes): (activity, x, y, z[, distance]) on axis −2; xyz transformed,
        activity and distance unchanged."""
        if target.ndim < 2 or target.shape[-2] not in (4, 5):
            raise ValueError(f"ADPIT target must be (..., 6, 4 or 5, classes), got shape {tuple(target.shape)}")
        return self._rows(target, 1, target.shape[-2])

    def target(self, target):
        """A training target by its shape: ADPIT (..., 6, 4 or 5, C) or multi-ACCDOA (..., 3, 3 or 4, C)."""
        if target.ndim >= 3 and target.shape[-3] == 6 and target.shape[-2] in (4, 5):
            return self.adpit(target)
        if target.ndim >= 3 and target.shape[-3] == 3 and target.shape[-2] in (3, 4):
            return self.accdoa(target)
        raise ValueError(f"target must be ADPIT (..., 6, 4 or 5, C) or multi-ACCDOA (..., 3, 3 or 4, C), "
                         f"got shape {tuple(target.shape)}")

    # ------------------------------------------------------------------------------------------------- sample

    def apply_to_sample(self, sample: dict[str, Any], feature_layout: str | None = None,
                        **feature_options) -> dict[str, Any]:
        """A Dataset sample dict with every known entry transformed together (other keys are kept as they are).

        Keys: "audio" (4, N) or "features" (C, T, F) of ``feature_layout``; "frames" (T, H, W, 3);
        "visual_features" (T, C, rows, cols), a visual encoder's grid, moved like channels-first frames (exact only
        for the rotations when the encoder is frozen); "target" (ADPIT or multi-ACCDOA); "events" (Events). Adds
        "acs_index" (this transform's index).
        """
        out = dict(sample)
        if "audio" in sample:
            out["audio"] = self.audio(sample["audio"])
        if "features" in sample:
            if feature_layout is None:
                raise ValueError("the sample has 'features': say their feature_layout")
            out["features"] = self.features(sample["features"], feature_layout, **feature_options)
        if "frames" in sample:
            out["frames"] = self.frames(sample["frames"])
        if "visual_features" in sample:  # a frozen encoder's grid: an equirectangular layout of cells
            out["visual_features"] = self.frames(sample["visual_features"], channels_first=True)
        if "target" in sample:
            out["target"] = self.target(sample["target"])
        if "events" in sample:
            out["events"] = self.events(sample["events"])
        out["acs_index"] = self.index
        return out


class ACSPolicy:
    """Chooses a transform: at random among ``indices`` (default all of the format), or always ``fixed_index``."""

    def __init__(self, format: str, indices: Sequence[int] | None = None, fixed_index: int | None = None):
        if format not in FORMATS:
            raise ValueError(f"format must be 'foa' or 'mic', got {format!r}")
        if fixed_index is not None:
            indices = (fixed_index,)
        self.format = format
        self.indices = tuple(range(NUM_TRANSFORMS[format])) if indices is None else tuple(int(i) for i in indices)
        if not self.indices:
            raise ValueError("ACSPolicy needs at least one transform index")
        self.transforms = [ChannelSwap(format, i) for i in self.indices]  # validates the indices

    def sample(self, rng: np.random.Generator) -> ChannelSwap:
        """One transform, uniformly among the policy's (no draw from ``rng`` for a single fixed index)."""
        if len(self.transforms) == 1:
            return self.transforms[0]
        return self.transforms[int(rng.integers(len(self.transforms)))]

    def __repr__(self) -> str:
        return f"ACSPolicy(format={self.format!r}, indices={self.indices})"


class RandomACS:
    """Online ACS for the Dataset hook: ``transform(sample, rng) -> sample`` with one transform per sample.

    The same drawn transform moves the sample's audio or features, frames and target together. feature_layout is
    needed when samples carry "features"; feature_options go to :meth:`ChannelSwap.features` (e.g. ipd_period).
    """

    def __init__(self, format: str, feature_layout: str | None = None, indices: Sequence[int] | None = None,
                 probability: float = 1.0, **feature_options):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        if feature_layout is not None and feature_layout not in FEATURE_LAYOUTS:
            raise ValueError(f"unknown feature layout {feature_layout!r}; expected one of {sorted(FEATURE_LAYOUTS)}")
        self.policy = ACSPolicy(format, indices)
        self.feature_layout = feature_layout
        self.probability = probability
        self.feature_options = feature_options
        if feature_layout == "mic_salsalite" and feature_options.get("ipd_period") is None:
            moving = [t.index for t in self.policy.transforms if t.audio_map[0][0] != 0]
            if moving:
                raise ValueError(f"MIC transforms {moving} move M1, the SALSA-lite reference: pass ipd_period "
                                 "or indices=(0, 5)")

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        skip = self.probability < 1.0 and rng.random() >= self.probability
        transform = ChannelSwap(self.policy.format, 0) if skip else self.policy.sample(rng)
        return transform.apply_to_sample(sample, self.feature_layout, **self.feature_options)

    def __repr__(self) -> str:
        return f"RandomACS({self.policy!r}, feature_layout={self.feature_layout!r}, probability={self.probability})"


__all__ = [
    "FORMATS", "AZIMUTH_MAPS", "FOA_MAPS", "MIC_MAPS", "NUM_TRANSFORMS", "FEATURE_LAYOUTS", "map_matrix",
    "salsalite_ipd_period",
    "ChannelSwap", "ACSPolicy", "RandomACS",
]
