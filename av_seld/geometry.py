"""Directions and equirectangular pixels of av-seld: the one home of these conversions (docs/conventions.md).

- Azimuth φ ∈ [-180, 180) deg, 0 = front (+x), +90 = left (+y); elevation θ ∈ [-90, 90] deg, +90 = up (+z).
- Unit vector: x = cos θ cos φ, y = cos θ sin φ, z = sin θ; angular distances are great-circle, in degrees.
- Equirect W × H: u = ((0.5 − φ/360)·W) mod W ∈ [0, W), v = (0.5 − θ/180)·H; pixel (i, j) has its centre at (i + ½, j + ½).
- φ = 0 is the centre column, φ = +90 the left quarter, φ = ±180 the left/right edge (the seam, which wraps).
- Frames models read are 320 × 640 (height × width) unless a recipe says otherwise: ``DEFAULT_FRAME_SIZE``.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_FRAME_SIZE = (320, 640)  # (height, width) in pixels of the equirectangular frames models read by default


def channels_first(frames):
    """Frames ``(..., H, W, 3)`` as ``(..., 3, H, W)`` (a view), NumPy or torch: the layout models read."""
    if type(frames).__module__.startswith("torch"):
        return frames.movedim(-1, -3)
    return np.moveaxis(frames, -1, -3)


def _backend(*values):
    """(array module, values as arrays of it): torch when any value is a tensor, else NumPy.

    Torch is never imported here; a tensor argument means the caller already has it loaded.
    Python numbers stay Python numbers with NumPy, so they do not upcast float32 arrays.
    """
    tensors = [v for v in values if type(v).__module__.startswith("torch")]
    if not tensors:
        converted = []
        for v in values:
            if isinstance(v, (int, np.integer)):
                v = float(v)
            elif isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.dtype.kind in "biu"):
                v = np.asarray(v, dtype=np.float64)
            converted.append(v)
        return np, converted
    import torch  # already in sys.modules: costs a dict lookup

    floating = [t.dtype for t in tensors if t.is_floating_point()]
    dtype = floating[0] if floating else torch.get_default_dtype()
    device = tensors[0].device
    return torch, [torch.as_tensor(v, dtype=dtype, device=device) for v in values]


def _stack_last(xp, parts):
    if xp is np:
        return np.stack(np.broadcast_arrays(*parts), axis=-1)
    return xp.stack(xp.broadcast_tensors(*parts), dim=-1)


def _wrap(xp, x, period):
    """x mod period in [0, period): remainder() can round up to exactly ``period`` for tiny negative x."""
    r = xp.remainder(x, period)
    r = xp.where(r >= period, r - period, r)
    return r[()] if xp is np else r  # [()] turns NumPy's 0-d result back into a scalar


def wrap_azimuth(azimuth_deg):
    """Azimuth in degrees wrapped to [-180, 180); same shape and kind as the input."""
    xp, (az,) = _backend(azimuth_deg)
    return _wrap(xp, az + 180, 360) - 180


def sph_to_cart(azimuth_deg, elevation_deg):
    """Unit vectors of directions in degrees: shape (..., 3) holding (x, y, z), inputs broadcast together."""
    xp, (az, el) = _backend(azimuth_deg, elevation_deg)
    az, el = az * math.pi / 180, el * math.pi / 180
    return _stack_last(xp, [xp.cos(el) * xp.cos(az), xp.cos(el) * xp.sin(az), xp.sin(el)])


def cart_to_sph(xyz):
    """(azimuth_deg, elevation_deg) of (..., 3) vectors of any non-negative length; the zero vector gives (0, 0)."""
    xp, (xyz,) = _backend(xyz)
    # + 0.0 turns -0.0 into +0.0, else atan2(0, -0.0) = 180° for the zero vector.
    x, y, z = xyz[..., 0] + 0.0, xyz[..., 1], xyz[..., 2]
    azimuth = wrap_azimuth(xp.arctan2(y, x) * 180 / math.pi)
    elevation = xp.arctan2(z, xp.hypot(x, y)) * 180 / math.pi
    return azimuth, elevation


def angular_distance_deg(az1, el1, az2, el2):
    """Great-circle distance in degrees between directions in degrees, exactly as the official DCASE scorer computes it."""
    xp, (a1, e1, a2, e2) = _backend(az1, el1, az2, el2)
    a1, e1, a2, e2 = (t * math.pi / 180 for t in (a1, e1, a2, e2))
    d = xp.sin(e1) * xp.sin(e2) + xp.cos(e1) * xp.cos(e2) * xp.cos(xp.abs(a1 - a2))
    return xp.arccos(xp.clip(d, -1, 1)) * 180 / math.pi


def angular_distance_xyz_deg(v1, v2):
    """Great-circle distance in degrees between (..., 3) vectors of any length, as the official DCASE scorer computes it."""
    xp, (v1, v2) = _backend(v1, v2)
    x1, y1, z1 = v1[..., 0], v1[..., 1], v1[..., 2]
    x2, y2, z2 = v2[..., 0], v2[..., 1], v2[..., 2]
    n1 = xp.sqrt(x1**2 + y1**2 + z1**2 + 1e-10)
    n2 = xp.sqrt(x2**2 + y2**2 + z2**2 + 1e-10)
    x1, y1, z1, x2, y2, z2 = x1 / n1, y1 / n1, z1 / n1, x2 / n2, y2 / n2, z2 / n2
    d = x1 * x2 + y1 * y2 + z1 * z2
    return xp.arccos(xp.clip(d, -1, 1)) * 180 / math.pi


def wrap_u(u, width):
    """Horizontal pixel coordinate wrapped to [0, width)."""
    xp, (u,) = _backend(u)
    return _wrap(xp, u, width)


def horizontal_pixel_offset(u_from, u_to, width):
    """Signed shortest horizontal step in pixels from ``u_from`` to ``u_to``, in (-width/2, width/2], across the seam."""
    xp, (u_from, u_to) = _backend(u_from, u_to)
    return width / 2 - _wrap(xp, width / 2 - (u_to - u_from), width)


def sph_to_equirect(azimuth_deg, elevation_deg, width, height):
    """Continuous pixel coordinates (u, v) of directions in degrees: u ∈ [0, width), v ∈ [0, height]."""
    xp, (az, el) = _backend(azimuth_deg, elevation_deg)
    u = _wrap(xp, (0.5 - az / 360) * width, width)
    v = (0.5 - el / 180) * height
    return u, v


def equirect_to_sph(u, v, width, height):
    """(azimuth_deg, elevation_deg) of continuous pixel coordinates (u, v); u wraps modulo ``width``."""
    xp, (u, v) = _backend(u, v)
    azimuth = wrap_azimuth((0.5 - u / width) * 360)
    elevation = (0.5 - v / height) * 180
    return azimuth, elevation


def equirect_pixel(azimuth_deg, elevation_deg, width, height):
    """Integer (column i, row j) of the pixel containing each direction: i ∈ [0, width), j ∈ [0, height)."""
    xp, (az, el) = _backend(azimuth_deg, elevation_deg)
    u, v = sph_to_equirect(az, el, width, height)
    i = xp.remainder(xp.floor(u), width)
    j = xp.clip(xp.floor(v), 0, height - 1)
    if xp is np:
        i, j = i.astype(np.int64), j.astype(np.int64)
        return (int(i), int(j)) if i.ndim == 0 and j.ndim == 0 else (i, j)
    return i.long(), j.long()


def pixel_center_directions(width: int, height: int):
    """(azimuth_deg, elevation_deg), each a float64 array of shape (height, width): the direction of each pixel centre."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return equirect_to_sph(u, v, width, height)
