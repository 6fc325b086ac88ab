"""Anechoic spatial rendering of point sources to FOA and to the tetrahedral MIC array, static or moving.

Directions follow docs/conventions.md ("Directions"): azimuth φ ∈ [-180, 180) deg with 0 = front (+x) and +90 = left
(+y), elevation θ ∈ [-90, 90] deg with +90 = up. All direction math goes through ``av_seld.geometry``.

- FOA (ACN order W, Y, Z, X; SN3D): a plane wave s from (φ, θ) gives [W, Y, Z, X] = s · [1, y, z, x] of the
  source's unit vector. A moving source gets the gains of its direction at every sample.
- MIC (free field): capsule m at unit vector u_m on a radius r = 4.2 cm tetrahedron hears the plane wave at
  τ_m = −r (u_m · d) / c relative to the array centre (the capsule facing the source hears it first), with an
  optional cardioid-ish gain (1 − a) + a (1 + u_m · d) / 2, a = ``directivity`` (0 = omni, the default). Delays are
  fractional: a 32-tap Kaiser-windowed sinc (β = 8), tabulated at 1/4096-sample steps. At 24 kHz its delay error
  is below 0.001 sample and its gain error below 0.01 dB up to 10 kHz; nearer Nyquist it degrades (about 0.02
  sample and −1.2 dB at 11 kHz, 0.1 sample and −5 dB at 11.5 kHz). An integer delay passes the signal unchanged.
  A moving source gets a per-sample delay (y_m[n] = s(n − τ_m[n] fs)), evaluated in chunks.

How the free-field MIC model differs from the real array (docs/conventions.md: capsules on a *rigid sphere*)
------------------------------------------------------------------------------------------------------------
This renderer ignores the sphere. We checked what that leaves out with a one-off computation (not part of the
package): the textbook series of a plane wave scattered by a rigid sphere (radius 4.2 cm, c = 343 m/s; surface
pressure Σ_n (2n+1) (−i)^n i / ((ka)² h_n'(ka)) P_n(cos γ)) at these four capsules, for 8 source directions, with
pairwise delays taken from the frequency-unwrapped cross-spectrum phase:

- Delays. In the low-frequency limit every pairwise time difference on the sphere is 1.5× the free-field one
  (the classic 3a/c vs 2a/c of Kuhn's rigid-sphere model; computed: 1.50 at 100 Hz). The ratio rises to 1.35–1.7
  around 1 kHz, and above about 3 kHz it falls towards the free-field value (median ratio 1.16 at 3 kHz, 1.1 at
  8–10 kHz, but still 1.4–1.65 for some capsule pairs, where one capsule is in the shadow). Below a few hundred
  Hz the factor is the same for every pair (1.50–1.51 at 100–200 Hz), so there a free-field least-squares DOA
  (``mic_doa_from_tdoa``, which ignores a uniform scaling) still points the right way; above, the per-pair ratios
  differ and free-field TDOA-to-DOA maps are biased on real recordings. We did not measure that bias here.
- Levels. Free field gives all capsules the same level (omni). On the sphere the level spread between capsules was
  at most 0.06 dB at 200 Hz, 0.5 dB at 500 Hz, 2.8 dB at 1 kHz, 5.5 dB at 2 kHz, about 8 dB at 3–4 kHz and
  10–14 dB at 6–8 kHz (facing capsule boosted, shadowed one attenuated). ``directivity`` is a frequency-independent
  stand-in for this, not a model of it.
So rendered MIC audio is a faithful model of the geometry below a few hundred Hz and a simplification above;
models trained on it alone should not be expected to transfer unchanged to STARSS23's MIC recordings.
"""

from __future__ import annotations

import math

import numpy as np

from av_seld.arrays import (FOA_CHANNELS, MIC_CAPSULES_DEG, MIC_CAPSULES_XYZ, MIC_PAIRS, MIC_RADIUS_M,
                            SPEED_OF_SOUND, mic_delays_s)
from av_seld.geometry import cart_to_sph, sph_to_cart, wrap_azimuth
from av_seld.timing import SAMPLE_RATE, label_frame_sample_range, label_hop_samples

ELEVATION_LIMIT_DEG = 80.0  # smooth_trajectory keeps |elevation| within this

_CAPSULE_XYZ = MIC_CAPSULES_XYZ  # (4, 3)

# Fractional-delay kernel: taps at offsets j = -15..16 around floor(position); row q is for fraction q / 4096.
_HALF_TAPS = 16
_KAISER_BETA = 8.0
_PHASES = 4096
_TAP_OFFSETS = np.arange(-_HALF_TAPS + 1, _HALF_TAPS + 1)


def _delay_table() -> np.ndarray:
    x = np.arange(_PHASES)[:, None] / _PHASES - _TAP_OFFSETS[None, :]
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1 - (x / _HALF_TAPS) ** 2, 0, None))) / np.i0(_KAISER_BETA)
    return (np.sinc(x) * window).astype(np.float32)  # (phases, taps)


_DELAY_TABLE = _delay_table()
_CHUNK_SAMPLES = 32_768


# --------------------------------------------------------------------------------------------------- FOA


def foa_gains(azimuth_deg, elevation_deg) -> np.ndarray:
    """ACN/SN3D plane-wave gains [W, Y, Z, X] = [1, y, z, x]: shape (..., 4), float64; inputs in degrees broadcast."""
    xyz = sph_to_cart(np.asarray(azimuth_deg, dtype=np.float64), np.asarray(elevation_deg, dtype=np.float64))
    return np.concatenate([np.ones_like(xyz[..., :1]), xyz[..., 1:2], xyz[..., 2:3], xyz[..., 0:1]], axis=-1)


def _directions(signal, azimuth_deg, elevation_deg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signal (N,) float64, azimuth, elevation): directions as scalars (0-d) or (N,) arrays, checked."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"signal must be mono (N,), got shape {signal.shape}")
    az = np.asarray(azimuth_deg, dtype=np.float64)
    el = np.asarray(elevation_deg, dtype=np.float64)
    for name, value in (("azimuth_deg", az), ("elevation_deg", el)):
        if value.ndim not in (0, 1) or (value.ndim == 1 and value.shape[0] != signal.shape[0]):
            raise ValueError(f"{name} must be a scalar or shape ({signal.shape[0]},), got {value.shape}")
    return signal, az, el


def render_foa(signal, azimuth_deg, elevation_deg) -> np.ndarray:
    """FOA (W, Y, Z, X) of a mono plane-wave source: (4, N) float32.

    signal: (N,) mono. azimuth_deg / elevation_deg: scalars (static source) or (N,) arrays, the direction of each
    sample (moving source; the gains follow it sample by sample, so a smooth path renders without clicks).
    """
    signal, az, el = _directions(signal, azimuth_deg, elevation_deg)
    gains = foa_gains(az, el)  # (4,) or (N, 4)
    return (gains.T * signal if gains.ndim == 2 else gains[:, None] * signal[None, :]).astype(np.float32)


def foa_intensity_doa(foa, sample_rate: int = SAMPLE_RATE, n_fft: int = 1024, hop: int = 480) -> tuple[float, float]:
    """(azimuth_deg, elevation_deg) of the time-averaged active intensity vector of FOA audio.

    foa: (4, N) in ACN order W, Y, Z, X. The intensity is Re{W* · [X, Y, Z]} summed over all STFT bins and frames
    (Hann window of min(n_fft, 2·hop) samples). With no signal the result is (0, 0).
    """
    del sample_rate  # broadband: the estimate does not depend on it; kept for a uniform signature
    spec = _stft(np.asarray(foa, dtype=np.float64), n_fft, hop)  # (4, frames, bins)
    w, y, z, x = spec
    intensity = [np.sum(np.real(np.conj(w) * c)) for c in (x, y, z)]
    azimuth, elevation = cart_to_sph(np.array(intensity))
    return float(azimuth), float(elevation)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(C, N) → (C, frames, n_fft // 2 + 1) complex STFT, Hann window of min(n_fft, 2 hop), zero-padded ends."""
    win_len = min(n_fft, 2 * hop)
    window = np.hanning(win_len + 2)[1:-1]
    x = np.pad(x, ((0, 0), (win_len // 2, win_len)))
    num_frames = max(1, (x.shape[1] - win_len) // hop + 1)
    index = np.arange(num_frames)[:, None] * hop + np.arange(win_len)[None, :]
    return np.fft.rfft(x[:, index] * window, n=n_fft, axis=-1)


# --------------------------------------------------------------------------------------------------- MIC


def _capsule_gains(azimuth_deg, elevation_deg, directivity: float) -> np.ndarray:
    """(..., 4) gain of each capsule: (1 − a) + a (1 + u_m · d) / 2, a = directivity (0 = omni)."""
    d = sph_to_cart(np.asarray(azimuth_deg, dtype=np.float64), np.asarray(elevation_deg, dtype=np.float64))
    return (1 - directivity) + directivity * 0.5 * (1 + d @ _CAPSULE_XYZ.T)


def _fractional_delay(signal: np.ndarray, delay_samples: np.ndarray) -> np.ndarray:
    """y[n] = s(n − delay[n]) by windowed-sinc interpolation; s is zero outside [0, N). (N,) → (N,) float64.

    delay_samples: (N,), any real values (a negative delay reads ahead).
    """
    n = signal.shape[0]
    max_shift = int(math.ceil(np.max(np.abs(delay_samples)))) if n else 0
    pad = _HALF_TAPS + max_shift + 1
    padded = np.concatenate([np.zeros(pad, np.float32), signal.astype(np.float32), np.zeros(pad, np.float32)])
    if n and np.all(delay_samples == delay_samples[0]):
        # Static source: one kernel for every sample, i.e. a plain FIR filter (about 20x faster).
        position = -float(delay_samples[0])
        base = math.floor(position)
        phase = int(round((position - base) * _PHASES))
        base, phase = (base + 1, 0) if phase == _PHASES else (base, phase)
        kernel = _DELAY_TABLE[phase].astype(np.float64)
        first = base + pad + _TAP_OFFSETS[0]
        return np.correlate(padded[first:first + n + len(kernel) - 1].astype(np.float64), kernel, mode="valid")
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, _CHUNK_SAMPLES):
        stop = min(start + _CHUNK_SAMPLES, n)
        position = np.arange(start, stop) - delay_samples[start:stop]  # where in s each output sample reads
        base = np.floor(position)
        phase = np.rint((position - base) * _PHASES).astype(np.int64)
        # A fraction that rounds up to 1 is the next integer position with fraction 0.
        base = base.astype(np.int64) + (phase == _PHASES)
        phase[phase == _PHASES] = 0
        taps = padded[(base + pad)[:, None] + _TAP_OFFSETS[None, :]]  # (chunk, taps)
        out[start:stop] = np.einsum("ij,ij->i", taps, _DELAY_TABLE[phase], dtype=np.float64)
    return out


def render_mic(signal, azimuth_deg, elevation_deg, sample_rate: int = SAMPLE_RATE,
               directivity: float = 0.0) -> np.ndarray:
    """Free-field tetrahedral MIC (M1..M4) of a mono plane-wave source: (4, N) float32.

    signal: (N,) mono at ``sample_rate`` Hz. azimuth_deg / elevation_deg: scalars (static source) or (N,) arrays,
    the direction of each sample (moving source: per-sample delays and gains). directivity: 0 (omni) .. 1 (cardioid
    capsules facing outwards). See the module docstring for how this differs from the real rigid-sphere array.
    """
    if not 0.0 <= directivity <= 1.0:
        raise ValueError(f"directivity must be in [0, 1], got {directivity}")
    signal, az, el = _directions(signal, azimuth_deg, elevation_deg)
    n = signal.shape[0]
    delays = np.broadcast_to(mic_delays_s(az, el) * sample_rate, (n, 4)) if n else np.zeros((0, 4))
    gains = np.broadcast_to(_capsule_gains(az, el, directivity), (n, 4)) if n else np.zeros((0, 4))
    out = np.empty((4, n), dtype=np.float32)
    for m in range(4):
        out[m] = gains[:, m] * _fractional_delay(signal, np.ascontiguousarray(delays[:, m]))
    return out


def mic_tdoa(mic, sample_rate: int = SAMPLE_RATE, max_frequency_hz: float | None = None) -> np.ndarray:
    """Pairwise time differences of arrival by GCC-PHAT: (6,) seconds for pairs (1,2),(1,3),(1,4),(2,3),(2,4),(3,4).

    mic: (4, N). Entry for pair (i, j) is τ_j − τ_i (how much later capsule j hears the source than capsule i),
    comparable with differences of ``mic_delays_s``. Only bins up to ``max_frequency_hz`` (default 0.8 × Nyquist,
    9.6 kHz at 24 kHz) count: PHAT weighs every bin alike, and the last few kHz below Nyquist carry little reliable
    phase (no fractional delay is exact there, ``render_mic``'s included). The PHAT cross-correlation, a continuous
    function of the lag, is searched on a quarter-sample grid over the physically possible lags (±2r/c plus a
    margin), then its peak is refined by Newton steps on its analytic derivatives (sub-sample, no grid bias).
    """
    mic = np.asarray(mic, dtype=np.float64)
    n = mic.shape[1]
    spectra = np.fft.rfft(mic, n=2 * n, axis=1)  # zero-padded: linear, not circular, correlation
    if max_frequency_hz is None:
        max_frequency_hz = 0.8 * sample_rate / 2
    num_bins = min(spectra.shape[1], int(max_frequency_hz / sample_rate * 2 * n) + 1)
    spectra = spectra[:, :num_bins]
    omega = 2 * np.pi * np.arange(num_bins) / (2 * n)  # rad per sample
    grid_step = 0.25
    max_lag = math.ceil(2 * MIC_RADIUS_M / SPEED_OF_SOUND * sample_rate) + 1
    grid = np.arange(-max_lag, max_lag + grid_step / 2, grid_step)
    steering = np.exp(1j * omega[:, None] * grid[None, :])  # (bins, lags)
    tdoas = np.empty(len(MIC_PAIRS))
    for k, (i, j) in enumerate(MIC_PAIRS):
        cross = spectra[j] * np.conj(spectra[i])
        cross = cross / np.maximum(np.abs(cross), 1e-12)
        # r(l) = Re Σ_k C_k e^{iω_k l}: the one-sided inverse DFT at any real lag l (in samples).
        lag = float(grid[np.argmax(np.real(cross @ steering))])
        for _ in range(20):
            phasor = cross * np.exp(1j * omega * lag)
            slope = -np.sum(omega * np.imag(phasor))
            curvature = -np.sum(omega**2 * np.real(phasor))
            if curvature >= 0:
                break  # not at a maximum's hump: keep the grid estimate
            step = float(np.clip(-slope / curvature, -grid_step, grid_step))
            lag += step
            if abs(step) < 1e-7:
                break
        tdoas[k] = lag / sample_rate
    return tdoas


def mic_doa_from_tdoa(tdoas) -> tuple[float, float]:
    """(azimuth_deg, elevation_deg) that best explains (6,) pairwise TDOAs in seconds (``mic_tdoa`` order).

    Least squares on the free-field model τ_j − τ_i = −r (u_j − u_i) · v / c for a vector v, whose direction is the
    estimate (its length is free, so a uniform scaling of all TDOAs, as the rigid sphere gives at low frequencies,
    does not move the estimate).
    """
    tdoas = np.asarray(tdoas, dtype=np.float64)
    model = np.array([-(MIC_RADIUS_M / SPEED_OF_SOUND) * (_CAPSULE_XYZ[j] - _CAPSULE_XYZ[i]) for i, j in MIC_PAIRS])
    v, *_ = np.linalg.lstsq(model, tdoas, rcond=None)
    azimuth, elevation = cart_to_sph(v)
    return float(azimuth), float(elevation)


# --------------------------------------------------------------------------------------------- trajectories


def smooth_trajectory(start_azimuth_deg: float, start_elevation_deg: float, angular_speed_deg_s: float,
                      duration_s: float, rng: np.random.Generator,
                      sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """A moving source's path: (azimuth_deg (N,), elevation_deg (N,)) float64, N = round(duration_s · sample_rate).

    The source moves at exactly ``angular_speed_deg_s`` along great-circle arcs whose heading turns slowly and
    smoothly: a random geodesic curvature (knots every 0.5 s, raised-cosine interpolation) plus, within 30° of the
    ±80° elevation limit, a steering turn that reflects the heading back towards the equator, so |elevation| ≤ 80.
    The heading is updated every millisecond (a turn of well under 1° per update) and the path between updates is
    an exact great-circle arc, so the per-sample step is exactly speed / sample_rate. Azimuth wraps to [-180, 180);
    the unit vector is continuous. Only ``rng`` supplies randomness.
    """
    if abs(start_elevation_deg) > ELEVATION_LIMIT_DEG:
        raise ValueError(f"start elevation must be within ±{ELEVATION_LIMIT_DEG}°, got {start_elevation_deg}")
    if angular_speed_deg_s < 0:
        raise ValueError(f"angular_speed_deg_s must be >= 0, got {angular_speed_deg_s}")
    num_samples = int(round(duration_s * sample_rate))
    step_samples = max(1, int(round(sample_rate / 1000)))
    num_steps = -(-num_samples // step_samples)
    omega = math.radians(angular_speed_deg_s)  # rad/s
    step_angle = omega * step_samples / sample_rate  # arc travelled per heading update, rad
    step_s = step_samples / sample_rate

    # Random curvature (heading turn per radian travelled), smooth in time.
    knot_s = 0.5
    knots = rng.normal(0.0, 0.6, size=int(num_steps * step_s / knot_s) + 2)
    t = np.arange(num_steps) * step_s / knot_s
    k0 = np.floor(t).astype(np.int64)
    blend = 0.5 - 0.5 * np.cos(np.pi * (t - k0))
    curvature = knots[k0] * (1 - blend) + knots[k0 + 1] * blend
    heading_angle = rng.uniform(0.0, 2 * np.pi)  # from north towards increasing azimuth
    band_deg = 30.0  # steering starts this far inside the elevation limit

    # State: position p and heading h (unit tangent at p); b = p × h points to the left of the heading.
    p = sph_to_cart(float(start_azimuth_deg), float(start_elevation_deg)).astype(np.float64)
    up = np.array([0.0, 0.0, 1.0])
    north = up - p[2] * p
    north /= np.linalg.norm(north)
    east = np.cross(north, p)
    if abs(start_elevation_deg) > ELEVATION_LIMIT_DEG - band_deg and math.cos(heading_angle) * start_elevation_deg > 0:
        heading_angle = math.pi - heading_angle  # starting near a limit: head away from it, as steering would
    h = math.cos(heading_angle) * north + math.sin(heading_angle) * east
    positions = np.empty((num_steps, 3))
    headings = np.empty((num_steps, 3))
    steer_curvature = 12.0  # turning radius ~5° when heading straight at the pole, at full steering
    px, py, pz = p
    hx, hy, hz = h
    for k in range(num_steps):
        positions[k] = px, py, pz
        headings[k] = hx, hy, hz
        depth = (abs(math.degrees(math.asin(max(-1.0, min(1.0, pz))))) - (ELEVATION_LIMIT_DEG - band_deg)) / band_deg
        turn = curvature[k]
        if depth > 0:
            # Near a limit the random turning fades out, so that it cannot fight the steering.
            weight = depth * depth * (3 - 2 * depth) if depth < 1 else 1.0  # smoothstep
            turn = (1 - weight) * turn + steer_curvature * weight * _away_from_pole((px, py, pz), (hx, hy, hz))
        delta = turn * step_angle
        if delta:
            bx, by, bz = py * hz - pz * hy, pz * hx - px * hz, px * hy - py * hx
            c, s = math.cos(delta), math.sin(delta)
            hx, hy, hz = c * hx + s * bx, c * hy + s * by, c * hz + s * bz
        # Move along the great circle through p with heading h (parallel transport keeps h tangent).
        c, s = math.cos(step_angle), math.sin(step_angle)
        px, py, pz, hx, hy, hz = (c * px + s * hx, c * py + s * hy, c * pz + s * hz,
                                  c * hx - s * px, c * hy - s * py, c * hz - s * pz)
        norm = math.sqrt(px * px + py * py + pz * pz)
        px, py, pz = px / norm, py / norm, pz / norm
        dot = hx * px + hy * py + hz * pz  # keep h a unit tangent despite rounding
        hx, hy, hz = hx - dot * px, hy - dot * py, hz - dot * pz
        norm = math.sqrt(hx * hx + hy * hy + hz * hz)
        hx, hy, hz = hx / norm, hy / norm, hz / norm

    # Sample s of update k lies at arc (s / step_samples) · step_angle along that update's great circle.
    sample = np.arange(num_samples)
    k = sample // step_samples
    arc = (sample - k * step_samples) * (step_angle / step_samples)
    xyz = np.cos(arc)[:, None] * positions[k] + np.sin(arc)[:, None] * headings[k]
    azimuth, elevation = cart_to_sph(xyz)
    return wrap_azimuth(azimuth), elevation


def _away_from_pole(p: tuple[float, float, float], h: tuple[float, float, float]) -> float:
    """Signed turn (−1 .. 1, + = left) that swings heading h at point p away from the nearer pole.

    Strongest when h points straight at the pole, zero when it points straight away; the tiny bias picks a side
    when h points exactly at the pole. Plain floats: this runs once per millisecond of trajectory.
    """
    (px, py, pz), (hx, hy, hz) = p, h
    if pz * pz >= 1:
        return 0.0
    pole = 1.0 if pz > 0 else -1.0
    cos_el = math.sqrt(1 - pz * pz)
    tx, ty, tz = -pole * pz * px / cos_el, -pole * pz * py / cos_el, pole * cos_el  # unit tangent towards the pole
    bx, by, bz = py * hz - pz * hy, pz * hx - px * hz, px * hy - py * hx  # p × h: the heading's left
    towards = hx * tx + hy * ty + hz * tz  # cos of the angle between the heading and the pole direction
    side = bx * tx + by * ty + bz * tz  # > 0: a left turn would bring the heading closer to the pole
    return -0.5 * (1 + towards) * math.tanh((side + 1e-3) / 0.05)


def label_frame_samples(num_samples: int, onset_sample: int,
                        sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Label frames an event covers and the event sample each one reads: (frames (F,) int64, index (F,) int64).

    The event lasts ``num_samples`` samples from clip sample ``onset_sample``. Every label frame overlapping clip
    samples [onset, onset + N) is listed; it reads the event sample nearest to the frame's centre (start + hop / 2),
    clamped to the event's span. Labels of every kind (direction, distance) are sampled by this one rule.
    """
    if num_samples == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    hop = label_hop_samples(sample_rate)
    frames = np.arange(onset_sample // hop, (onset_sample + num_samples - 1) // hop + 1, dtype=np.int64)
    centres = np.array([label_frame_sample_range(f, sample_rate)[0] for f in frames]) + hop // 2
    return frames, np.clip(centres - onset_sample, 0, num_samples - 1).astype(np.int64)


def direction_at_label_frames(azimuth_deg, elevation_deg, onset_sample: int,
                              sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direction rendered at each 100 ms label frame an event covers: (frames (F,) int64, azimuth (F,), elevation (F,)).

    azimuth_deg / elevation_deg: (N,) per-sample direction of an event that starts at clip sample ``onset_sample``;
    each frame reads the sample :func:`label_frame_samples` picks.
    """
    az = np.asarray(azimuth_deg, dtype=np.float64)
    el = np.asarray(elevation_deg, dtype=np.float64)
    if az.ndim != 1 or az.shape != el.shape:
        raise ValueError(f"azimuth and elevation must be (N,) arrays of one shape, got {az.shape} and {el.shape}")
    frames, index = label_frame_samples(az.shape[0], onset_sample, sample_rate)
    if len(frames) == 0:
        return frames, np.zeros(0), np.zeros(0)
    return frames, az[index], el[index]


__all__ = [
    "FOA_CHANNELS", "MIC_CAPSULES_DEG", "MIC_RADIUS_M", "SPEED_OF_SOUND", "MIC_PAIRS", "ELEVATION_LIMIT_DEG",
    "foa_gains", "render_foa", "foa_intensity_doa", "mic_delays_s", "render_mic", "mic_tdoa", "mic_doa_from_tdoa",
    "smooth_trajectory", "label_frame_samples", "direction_at_label_frames",
]
