"""Built-in procedural sound bank: seeded, file-free mono sources for the 13 STARSS23 sound classes.

``synthesize(class_index, duration_s, rng)`` draws one random instance of a class: every draw picks its own pitch,
tempo, timbre, envelope and number of sub-events from ``rng`` (and from nothing else), so a model trained on these
sounds sees a class, not a recording. Classes (index: name): 0 female speech, 1 male speech, 2 clapping,
3 telephone, 4 laughter, 5 domestic sounds, 6 footsteps, 7 door open/close, 8 music, 9 musical instrument,
10 water tap, 11 bell, 12 knock.

Every sound is finished the same way (``_finish``): a 20 Hz DC blocker, 5 ms raised-cosine fades at both ends (the
first and last samples are exactly 0), scaling to an RMS of −20 dBFS over its active part (``active_rms``; dBFS is
relative to an amplitude of 1.0), and clipping to [-1, 1].

The per-class synthesisers in ``SYNTHESIZERS`` take ``(num_samples, sample_rate, rng)`` and return an unscaled
float64 signal of ``num_samples`` samples; they are built from a few shared parts: envelopes, event timing
(``_trains``), wavetable oscillators, modal resonator banks (impacts, bells), formant filters (voices) and
Karplus-Strong strings.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
from scipy import linalg, signal

from av_seld.classes import NUM_CLASSES
from av_seld.timing import SAMPLE_RATE

TARGET_RMS_DBFS = -20.0
FADE_S = 0.005
# The active part of a sound: its 20 ms frames whose RMS is within 30 dB of its loudest frame.
ACTIVE_FRAME_S = 0.02
ACTIVE_RANGE_DB = 30.0

_DC_BLOCK_HZ = 20.0
_TABLE_SIZE = 4096
# Resonances and partials stay below this fraction of the sample rate (0.5 is Nyquist).
_MAX_FREQ_FRACTION = 0.45


# ------------------------------------------------------------------------------------------------ public interface


def synthesize(class_index: int, duration_s: float, rng: np.random.Generator,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One random draw of a class as float32 mono audio, shape ``(round(duration_s * sample_rate),)``.

    The sound fills the requested duration with the class's sub-events (syllables, claps, rings, steps ...); it has
    an RMS of ``TARGET_RMS_DBFS`` over its active part, 5 ms fades at both ends and lies in [-1, 1]. Pure: the
    samples depend only on the arguments and the state of ``rng``, which is the only randomness used.
    """
    index = operator.index(class_index)
    if index not in SYNTHESIZERS:
        raise ValueError(f"class_index must be in 0..{NUM_CLASSES - 1}, got {class_index}")
    if not np.isfinite(duration_s) or duration_s < 0:
        raise ValueError(f"duration_s must be finite and >= 0, got {duration_s}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    num_samples = int(round(duration_s * sample_rate))
    if num_samples == 0:
        return np.zeros(0, dtype=np.float32)
    raw = SYNTHESIZERS[index](num_samples, sample_rate, rng)
    return _finish(raw, sample_rate)


def active_rms(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """RMS (linear, full scale 1.0) of ``audio`` (num_samples,) over its 20 ms frames within 30 dB of the loudest.

    The last frame may be shorter. Returns 0.0 for empty or silent audio.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size == 0:
        return 0.0
    frame = max(1, int(round(ACTIVE_FRAME_S * sample_rate)))
    starts = np.arange(0, audio.size, frame)
    energy = np.add.reduceat(audio**2, starts)
    length = np.diff(np.append(starts, audio.size))
    mean_square = energy / length
    if mean_square.max() <= 0:
        return 0.0
    active = mean_square >= mean_square.max() * 10 ** (-ACTIVE_RANGE_DB / 10)
    return float(np.sqrt(energy[active].sum() / length[active].sum()))


def _finish(raw: np.ndarray, sample_rate: int) -> np.ndarray:
    """DC block, 5 ms fades, active RMS to the target, clip: (n,) float64 -> (n,) float32."""
    sos = signal.butter(2, _DC_BLOCK_HZ, btype="high", fs=sample_rate, output="sos")
    audio = signal.sosfilt(sos, raw)
    fade = min(int(round(FADE_S * sample_rate)), (audio.size + 1) // 2)  # a 1-sample sound fades to silence
    audio *= _envelope(audio.size, fade, fade)
    rms = active_rms(audio, sample_rate)
    if rms > 0:
        audio *= 10 ** (TARGET_RMS_DBFS / 20) / rms
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------------- shared parts


def _envelope(length: int, attack: int, release: int) -> np.ndarray:
    """Raised-cosine attack and release around a flat top of 1; (length,). ``attack``/``release`` in samples.

    The first sample of a non-empty attack and the last of a non-empty release are exactly 0.
    """
    length = max(int(length), 0)
    attack, release = max(int(attack), 0), max(int(release), 0)
    if attack + release > length:  # too short for both ramps: shrink them in proportion
        attack = length * attack // (attack + release)
        release = length - attack
    env = np.ones(length)
    if attack:
        env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    if release:
        env[length - release:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, release + 1) / release)
    return env


def _decay(length: int, sample_rate: int, decay_s: float, attack_s: float = 0.0) -> np.ndarray:
    """Exponential decay exp(-t / decay_s) after a linear attack of ``attack_s``; (length,)."""
    t = np.arange(int(length)) / sample_rate
    env = np.exp(-t / decay_s)
    if attack_s > 0:
        env *= np.minimum(t / attack_s, 1.0)
    return env


def _add(out: np.ndarray, start: int, event: np.ndarray) -> None:
    """Add ``event`` into ``out`` from sample ``start`` on, cutting whatever falls past the end."""
    start = int(start)
    if start >= out.size or event.size == 0:
        return
    stop = min(out.size, start + event.size)
    out[start:stop] += event[: stop - start]


def _smooth_random(rng: np.random.Generator, length: int, sample_rate: int, rate_hz: float) -> np.ndarray:
    """A slowly varying random curve, (length,): unit-normal values every 1/rate_hz s, linearly interpolated."""
    num_points = int(length / sample_rate * rate_hz) + 2
    points = rng.standard_normal(num_points)
    return np.interp(np.arange(length) * (rate_hz / sample_rate), np.arange(num_points), points)


def _first_onset(rng: np.random.Generator, duration_s: float, first_s: float = 0.03) -> float:
    """When (s) the first sub-event starts: within ``first_s``, and within the first half of a shorter sound."""
    return rng.uniform(0.0, min(first_s, 0.5 * duration_s))


def _trains(rng: np.random.Generator, duration_s: float, rate_hz: float, events_per_train: tuple[int, int],
            pause_s: tuple[float, float], jitter: float = 0.1, first_s: float = 0.03) -> list[np.ndarray]:
    """Onset times (s) of trains of events until ``duration_s``: one array per train.

    A train has ``events_per_train`` (inclusive range) events at ``rate_hz`` with ±``jitter`` relative timing
    jitter; trains are separated by a pause drawn from ``pause_s``. The first event starts within ``first_s``.
    """
    trains = []
    t = _first_onset(rng, duration_s, first_s)
    while t < duration_s:
        count = int(rng.integers(events_per_train[0], events_per_train[1] + 1))
        gaps = rng.uniform(1 - jitter, 1 + jitter, count - 1) / rate_hz
        onsets = t + np.concatenate([[0.0], np.cumsum(gaps)])
        onsets = onsets[onsets < duration_s]
        trains.append(onsets)
        t = onsets[-1] + 1 / rate_hz + rng.uniform(*pause_s)
    return trains


def _band_noise(rng: np.random.Generator, length: int, sample_rate: int, low_hz: float, high_hz: float,
                order: int = 2) -> np.ndarray:
    """White noise through a Butterworth band-pass [low_hz, high_hz] (high capped below Nyquist); (length,)."""
    high_hz = min(high_hz, _MAX_FREQ_FRACTION * sample_rate)
    low_hz = min(low_hz, 0.5 * high_hz)
    sos = signal.butter(order, [low_hz, high_hz], btype="band", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(int(length)))


def _oscillator(freq_hz, length: int, sample_rate: int, harmonic_amps, phase: float = 0.0) -> np.ndarray:
    """Periodic tone from harmonic amplitudes (1st, 2nd, ...) via a wavetable; (length,).

    ``freq_hz`` is a scalar or a (length,) curve in Hz; ``phase`` is the starting phase in cycles. Harmonics that
    would pass 0.45 × sample_rate at the highest frequency are dropped, so the tone is band-limited.
    """
    freq = np.broadcast_to(np.asarray(freq_hz, dtype=np.float64), (int(length),))
    if freq.size == 0:
        return np.zeros(0)
    num_harmonics = max(1, int(_MAX_FREQ_FRACTION * sample_rate / freq.max()))
    amps = np.asarray(harmonic_amps, dtype=np.float64)[:num_harmonics]
    grid = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = amps @ np.sin(2 * np.pi * np.arange(1, amps.size + 1)[:, None] * grid)
    cycles = phase + np.cumsum(freq) / sample_rate
    return table[(cycles * _TABLE_SIZE).astype(np.int64) % _TABLE_SIZE]


def _modal(excitation: np.ndarray, freqs_hz, decays_s, gains, sample_rate: int) -> np.ndarray:
    """A bank of parallel two-pole resonators (modes) driven by ``excitation`` (n,) -> (n,).

    Mode k answers a unit impulse with ``gains[k] · exp(-t / decays_s[k]) · sin(2π freqs_hz[k] t)`` (approximately).
    Modes at or above 0.45 × sample_rate are dropped.
    """
    out = np.zeros(excitation.size)
    for freq, decay, gain in zip(np.atleast_1d(freqs_hz), np.atleast_1d(decays_s), np.atleast_1d(gains)):
        if freq >= _MAX_FREQ_FRACTION * sample_rate:
            continue
        radius = np.exp(-1.0 / (decay * sample_rate))
        theta = 2 * np.pi * freq / sample_rate
        out += signal.lfilter([gain * np.sin(theta)], [1.0, -2 * radius * np.cos(theta), radius**2], excitation)
    return out


def _impulses(length: int, sample_rate: int, times_s, gains) -> np.ndarray:
    """Unit impulses scaled by ``gains`` at ``times_s`` (s); those past the end are dropped; (length,)."""
    out = np.zeros(int(length))
    index = np.round(np.asarray(times_s) * sample_rate).astype(np.int64)
    keep = index < out.size
    np.add.at(out, index[keep], np.broadcast_to(gains, index.shape)[keep])
    return out


def _soften(excitation: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """One-pole low-pass at ``cutoff_hz`` on an impact excitation: a softer mallet, knuckle or heel (fewer highs)."""
    pole = np.exp(-2 * np.pi * min(cutoff_hz, _MAX_FREQ_FRACTION * sample_rate) / sample_rate)
    return signal.lfilter([1 - pole], [1.0, -pole], excitation)


def _rms(x: np.ndarray) -> float:
    """RMS of ``x``, floored at 1e-12 so that dividing by it is always safe."""
    return max(float(np.sqrt(np.mean(x**2))) if x.size else 0.0, 1e-12)


def _peak(x: np.ndarray) -> float:
    """Largest magnitude of ``x``, floored at 1e-12 so that dividing by it is always safe."""
    return max(float(np.abs(x).max()) if x.size else 0.0, 1e-12)


def _loguniform(rng: np.random.Generator, low: float, high: float, size=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _midi_hz(note) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69) / 12)


# ---------------------------------------------------------------------------------------------------------- voices

# Formants F1..F5 (Hz) of seven vowels (a, e, i, o, u, æ, ə) of an adult male vocal tract (Peterson & Barney-like);
# shorter vocal tracts scale them all up.
_VOWEL_FORMANTS_HZ = np.array([
    [730, 1090, 2440, 3400, 4300],
    [530, 1840, 2480, 3500, 4400],
    [270, 2290, 3010, 3700, 4500],
    [570, 840, 2410, 3300, 4300],
    [300, 870, 2240, 3300, 4300],
    [660, 1720, 2410, 3400, 4400],
    [500, 1500, 2500, 3500, 4500],
], dtype=np.float64)
_FORMANT_BANDWIDTHS_HZ = np.array([80, 100, 140, 200, 250], dtype=np.float64)
_FORMANT_STEP_S = 0.02


def _glottal_source(f0_hz: np.ndarray, sample_rate: int, rng: np.random.Generator, jitter: float = 0.01,
                    shimmer: float = 0.08) -> np.ndarray:
    """Voiced excitation following the pitch curve ``f0_hz`` (n,): a pulse per period, unit RMS; (n,).

    Pulse times wander by ``jitter`` of a period and amplitudes by ``shimmer``; a double pole near 0 Hz and a
    differentiator give the glottal-flow-derivative tilt of about −6 dB/octave.
    """
    n = f0_hz.size
    cycles = np.cumsum(f0_hz) / sample_rate
    starts = np.flatnonzero(np.diff(np.floor(cycles))) + 1
    period = sample_rate / f0_hz[starts]
    starts = np.clip(np.round(starts + jitter * period * rng.standard_normal(starts.size)), 0, n - 1)
    pulses = np.zeros(n)
    np.add.at(pulses, starts.astype(np.int64), 1 + shimmer * rng.standard_normal(starts.size))
    pole = np.exp(-2 * np.pi * 100.0 / sample_rate)
    source = signal.lfilter([1.0, -1.0], [1.0, -2 * pole, pole**2], pulses)
    return source / _rms(source)


def _formant_filter(excitation: np.ndarray, starts, formants_hz: np.ndarray, bandwidths_hz: np.ndarray,
                    sample_rate: int) -> np.ndarray:
    """A cascade of two-pole formant resonators whose settings change over time; (n,) -> (n,).

    Segment s runs from sample ``starts[s]`` (``starts[0] == 0``, increasing) to the next start with formants
    ``formants_hz[s]`` and bandwidths ``bandwidths_hz[s]`` (Hz, shape (S, K)). Each resonator has unit gain at 0 Hz.
    The filter's past outputs carry across a change, so the output has no jump there.
    """
    freqs = np.minimum(formants_hz, _MAX_FREQ_FRACTION * sample_rate)
    radius = np.exp(-np.pi * np.asarray(bandwidths_hz) / sample_rate)
    # Denominators of all segments at once, (S, 2K + 1): the product of the K resonators' 1 - 2r cos θ z⁻¹ + r² z⁻².
    a = np.zeros((freqs.shape[0], 2 * freqs.shape[1] + 1))
    a[:, 0] = 1.0
    for k in range(freqs.shape[1]):
        c1, c2 = -2 * radius[:, k] * np.cos(2 * np.pi * freqs[:, k] / sample_rate), radius[:, k] ** 2
        a[:, 1:] += c1[:, None] * a[:, :-1] + c2[:, None] * np.pad(a[:, :-2], ((0, 0), (1, 0)))
    order = a.shape[1] - 1
    out = np.zeros(order + excitation.size)  # leading zeros: silence before the signal
    bounds = list(starts) + [excitation.size]
    for seg in range(len(starts)):
        start, stop = int(bounds[seg]), int(bounds[seg + 1])
        if stop <= start:
            continue
        # An all-pole filter's transposed-direct-form state after past outputs y[-1], y[-2], ... is
        # zi[k] = -sum_m a[k + 1 + m] y[-1 - m]: a Hankel matrix of the denominator times the past outputs.
        past = out[start:start + order][::-1]
        state = -linalg.hankel(a[seg, 1:]) @ past
        out[order + start:order + stop], _ = signal.lfilter([a[seg].sum()], a[seg], excitation[start:stop], zi=state)
    return out[order:]


def _speech(num_samples: int, sample_rate: int, rng: np.random.Generator, f0_range_hz: tuple[float, float],
            tract_scale_range: tuple[float, float]) -> np.ndarray:
    """Babble of one talker: voiced syllables at 3–6 Hz in phrases with pauses, vowels changing every 80–250 ms.

    The median pitch is drawn from ``f0_range_hz``; formants are scaled by a vocal-tract factor from
    ``tract_scale_range``. Phrases fall in pitch (declination), syllables carry random accents, and some syllables
    start with a fricative noise burst.
    """
    n, sr = num_samples, sample_rate
    duration = n / sr
    f0_median = rng.uniform(*f0_range_hz)
    tract = rng.uniform(*tract_scale_range)
    num_formants = int(rng.integers(3, 6))
    syllable_rate = rng.uniform(3.0, 6.0)
    breathiness = rng.uniform(0.03, 0.15)

    envelope = np.zeros(n)
    pitch_times, pitch_semitones, fricatives = [0.0], [0.0], []
    t = _first_onset(rng, n / sr)
    while t < duration:
        num_syllables = int(rng.integers(3, 11))
        declination = rng.uniform(2.0, 5.0)
        for k in range(num_syllables):
            interval = rng.uniform(0.7, 1.3) / syllable_rate
            length = int(interval * rng.uniform(0.55, 0.85) * sr)
            _add(envelope, t * sr, rng.uniform(0.4, 1.0) * _envelope(length, 0.3 * length, 0.4 * length))
            pitch_times.append(t + 0.5 * length / sr)
            pitch_semitones.append(declination * (0.5 - k / num_syllables) + rng.normal(0.0, 1.5))
            if rng.random() < 0.4:
                fricatives.append((t, rng.uniform(0.03, 0.1)))
            t += interval
            if t >= duration:
                break
        t += rng.uniform(0.15, 0.5)
    semitones = np.interp(np.arange(n) / sr, pitch_times, pitch_semitones)
    semitones += 0.7 * _smooth_random(rng, n, sr, 2.0) - np.median(pitch_semitones[1:])
    f0 = f0_median * 2 ** (semitones / 12)

    # Vowel targets held through the middle of each 80–250 ms segment and glided across its edges; the formant
    # filter is updated every 20 ms.
    edges = [0.0]
    while edges[-1] < duration:
        edges.append(edges[-1] + rng.uniform(0.08, 0.25))
    edges = np.array(edges)
    vowels = rng.integers(0, len(_VOWEL_FORMANTS_HZ), edges.size - 1)
    targets = _VOWEL_FORMANTS_HZ[vowels, :num_formants] * tract
    targets *= 1 + 0.05 * rng.standard_normal(targets.shape)
    lengths = np.diff(edges)
    hold_times = np.stack([edges[:-1] + 0.25 * lengths, edges[1:] - 0.25 * lengths], 1).ravel()
    steps = np.arange(0, n, int(_FORMANT_STEP_S * sr))
    formants = np.stack([np.interp(steps / sr, hold_times, np.repeat(targets[:, k], 2))
                         for k in range(num_formants)], 1)
    bandwidths = _FORMANT_BANDWIDTHS_HZ[:num_formants] * rng.uniform(0.8, 1.3, num_formants)

    source = _glottal_source(f0, sr, rng) + breathiness * rng.standard_normal(n)
    voice = _formant_filter(source, steps, formants, np.broadcast_to(bandwidths, formants.shape), sr) * envelope
    voice /= _rms(voice)

    for start_s, length_s in fricatives:
        length = int(length_s * sr)
        low = rng.choice([1500.0, 2500.0, 3500.0])
        burst = _band_noise(rng, length, sr, low, low * rng.uniform(1.6, 2.5))
        burst *= rng.uniform(0.1, 0.4) * _envelope(length, 0.4 * length, 0.4 * length)
        _add(voice, max(0.0, start_s - length_s + 0.02) * sr, burst)
    return voice


def _female_speech(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Speech with a median pitch of 170–260 Hz and a short vocal tract (formants ×1.10–1.25)."""
    return _speech(num_samples, sample_rate, rng, (170.0, 260.0), (1.10, 1.25))


def _male_speech(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Speech with a median pitch of 85–150 Hz and a long vocal tract (formants ×0.92–1.05)."""
    return _speech(num_samples, sample_rate, rng, (85.0, 150.0), (0.92, 1.05))


def _laughter(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Bouts of 3–10 breathy "ha"s at 4–6 Hz, pitch rising or falling through a bout, with inhalations between.

    Each "ha" is an aspirated onset ("h", 20–60 ms of noise) then a short voiced open vowel at 200–500 Hz.
    """
    n, sr = num_samples, sample_rate
    f0_base = rng.uniform(200.0, 500.0)
    tract = rng.uniform(0.95, 1.25)
    breathiness = rng.uniform(1.0, 3.0)
    voicing = np.zeros(n)
    breath = np.zeros(n)
    pitch_times, pitch_semitones, bout_starts, inhales = [0.0], [0.0], [], []
    bouts = _trains(rng, n / sr, rng.uniform(4.0, 6.0), (3, 10), (0.25, 0.9), jitter=0.08)
    for bout in bouts:
        bout_starts.append(int(bout[0] * sr))
        trend = rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 7.0)
        fade = rng.uniform(0.4, 1.0)
        gaps = np.append(np.diff(bout), 0.2)  # to the next "ha"; the last one gets 200 ms
        for j, onset in enumerate(bout):
            progress = j / max(bout.size - 1, 1)
            gain = 1 - (1 - fade) * progress
            aspiration = min(rng.uniform(0.02, 0.06), 0.3 * gaps[j])
            voiced = gaps[j] * rng.uniform(0.45, 0.65)  # the "h" and the vowel end before the next "ha"
            h_len, v_len = int(aspiration * sr), int(voiced * sr)
            _add(breath, onset * sr, gain * _envelope(h_len + v_len, 0.1 * h_len, 0.7 * (h_len + v_len)))
            _add(voicing, (onset + aspiration) * sr, gain * _envelope(v_len, 0.25 * v_len, 0.5 * v_len))
            pitch_times += [onset + aspiration, onset + aspiration + voiced]
            semitone = trend * (progress - 0.5)
            pitch_semitones += [semitone + 1.0, semitone - rng.uniform(1.0, 3.0)]
        if rng.random() < 0.5:
            inhales.append(bout[-1] + gaps[-1])
    semitones = np.interp(np.arange(n) / sr, pitch_times, pitch_semitones)
    f0 = f0_base * 2 ** (semitones / 12)

    vowels = rng.choice([0, 1, 5, 6, 3], len(bout_starts))
    bout_starts[0] = 0
    formants = _VOWEL_FORMANTS_HZ[vowels, :4] * tract * (1 + 0.05 * rng.standard_normal((len(vowels), 4)))
    bandwidths = _FORMANT_BANDWIDTHS_HZ[:4] * rng.uniform(1.0, 1.6, formants.shape)
    source = _glottal_source(f0, sr, rng, jitter=0.02) * voicing + breathiness * rng.standard_normal(n) * breath
    laugh = _formant_filter(source, bout_starts, formants, bandwidths, sr)
    laugh /= _rms(laugh)
    # Turbulence at the glottis also reaches the air unshaped by the vowel: the hiss of an "h".
    laugh += rng.uniform(0.05, 0.2) * breath * _band_noise(rng, n, sr, 500.0, rng.uniform(4000.0, 8000.0))
    for start_s in inhales:
        length = int(rng.uniform(0.2, 0.5) * sr)
        inhale = _band_noise(rng, length, sr, 800.0, 3500.0) * _envelope(length, 0.4 * length, 0.4 * length)
        _add(laugh, start_s * sr, rng.uniform(0.2, 0.5) * inhale)
    return laugh


# ------------------------------------------------------------------------------------------------- other classes


def _clapping(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One to three clappers, each with trains of 5–15 ms filtered noise bursts at 2–6 Hz.

    Per clapper: a hand-cavity resonance at 0.7–2.5 kHz, a spectral tilt (one-pole filter, −0.7..0.7) and a short
    room tail; every clap varies its resonance (±15 %), length and level.
    """
    n, sr = num_samples, sample_rate
    out = np.zeros(n)
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        rate = rng.uniform(2.0, 6.0)
        resonance_hz = rng.uniform(700.0, 2500.0)
        tilt = rng.uniform(-0.7, 0.7)
        tail_s = rng.uniform(0.01, 0.04)
        level = rng.uniform(0.5, 1.0)
        for train in _trains(rng, n / sr, rate, (4, 16), (0.3, 1.5), jitter=0.06):
            for onset in train:
                burst_s = rng.uniform(0.005, 0.015)
                length = int((burst_s + 5 * tail_s) * sr)
                envelope = _decay(length, sr, burst_s / 2, attack_s=0.0005) + 0.08 * _decay(length, sr, tail_s)
                noise = rng.standard_normal(length) * envelope
                freq = resonance_hz * rng.uniform(0.85, 1.15)
                clap = _modal(noise, [freq], [rng.uniform(0.5, 2.0) / freq], [1.0], sr) + 0.3 * noise
                clap = signal.lfilter([1.0], [1.0, -tilt], clap)
                gain = level * np.exp(0.25 * rng.standard_normal())
                _add(out, onset * sr, gain * clap / _peak(clap))
    return out


def _telephone(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A ringing phone: a double ring, a long single ring (two tones at 400–500 Hz, 20–25 Hz amplitude
    modulation, sine or square), or a digital ring tone (a repeated motif of 3–8 beeps at 0.6–2.5 kHz)."""
    n, sr = num_samples, sample_rate
    duration = n / sr
    style = rng.choice(["double", "single", "digital"])
    if style == "digital":
        out = np.zeros(n)
        tones = rng.uniform(600.0, 2500.0, int(rng.integers(2, 5)))
        motif = rng.choice(tones, int(rng.integers(3, 9)))
        note_s, gap_s = rng.uniform(0.04, 0.15), rng.uniform(0.0, 0.05)
        harmonics = [1.0] if rng.random() < 0.5 else [1.0, 0.0, 1 / 3, 0.0, 1 / 5]
        t = _first_onset(rng, n / sr)
        while t < duration:
            for _ in range(int(rng.integers(2, 6))):
                for freq in motif:
                    length = int(note_s * sr)
                    beep = _oscillator(freq, length, sr, harmonics) * _envelope(length, 0.003 * sr, 0.005 * sr)
                    _add(out, t * sr, beep)
                    t += note_s + gap_s
                t += rng.uniform(0.0, 0.2)
            t += rng.uniform(0.8, 2.0)
        return out

    base = rng.uniform(400.0, 480.0)
    harmonics = [1.0] if rng.random() < 0.5 else [1.0, 0.0, 1 / 3, 0.0, 1 / 5, 0.0, 1 / 7]
    tone = (_oscillator(base, n, sr, harmonics) +
            _oscillator(base + rng.uniform(20.0, 60.0), n, sr, harmonics, phase=rng.random()))
    depth = rng.uniform(0.5, 1.0)
    tone *= 1 - depth * (0.5 + 0.5 * np.cos(2 * np.pi * rng.uniform(20.0, 25.0) * np.arange(n) / sr))
    if style == "double":
        ring_s, gap_s, pause_s = rng.uniform(0.35, 0.45), rng.uniform(0.15, 0.25), rng.uniform(1.8, 2.2)
        rings = [(0.0, ring_s), (ring_s + gap_s, ring_s)]
        period_s = 2 * ring_s + gap_s + pause_s
    else:
        ring_s, pause_s = rng.uniform(1.0, 2.0), rng.uniform(2.0, 4.0)
        rings, period_s = [(0.0, ring_s)], ring_s + pause_s
    gate = np.zeros(n)
    ramp = 0.005 * sr
    t = _first_onset(rng, n / sr)
    while t < duration:
        for offset_s, length_s in rings:
            _add(gate, (t + offset_s) * sr, _envelope(length_s * sr, ramp, ramp))
        t += period_s
    return tone * gate


def _domestic(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One of: clatter (dishes, cutlery: 2–4 objects with 4–8 modes each, hit in bouncing clusters), appliance hum
    (mains/motor harmonics plus fan noise) or a vacuum cleaner (loud band noise, motor whine, back-and-forth swell)."""
    n, sr = num_samples, sample_rate
    kind = rng.choice(["clatter", "hum", "vacuum"])
    t = np.arange(n) / sr
    if kind == "clatter":
        # Clusters of bouncing hits (1–4 within 10–60 ms) on 2–4 objects of ceramic, metal or wood.
        clusters = [_first_onset(rng, n / sr)]
        rate = rng.uniform(2.0, 8.0)
        while clusters[-1] < n / sr:
            clusters.append(clusters[-1] + rng.exponential(1 / rate))
        times = np.concatenate([c + np.cumsum(rng.uniform(0.01, 0.06, int(rng.integers(1, 5)))) - 0.01
                                for c in clusters])
        gains = np.exp(0.5 * rng.standard_normal(times.size))
        num_objects = int(rng.integers(2, 5))
        owner = rng.integers(0, num_objects, times.size)
        out = np.zeros(n)
        for obj in range(num_objects):
            low, high, decay_range = [(1000.0, 7000.0, (0.01, 0.08)), (2000.0, 9000.0, (0.03, 0.2)),
                                      (300.0, 2500.0, (0.005, 0.03))][int(rng.integers(3))]
            hits = _soften(_impulses(n, sr, times[owner == obj], gains[owner == obj]), sr, rng.uniform(3000.0, 10000.0))
            num_modes = int(rng.integers(4, 9))
            out += _modal(hits, _loguniform(rng, low, high, num_modes), rng.uniform(*decay_range, num_modes),
                          rng.uniform(0.3, 1.0, num_modes), sr)
        contact = _modal(_impulses(n, sr, times, gains), [rng.uniform(3000.0, 6000.0)], [0.002], [1.0], sr)
        return out / _peak(out) + rng.uniform(0.2, 0.6) * contact / _peak(contact)
    if kind == "hum":
        fundamental = rng.choice([50.0, 60.0, 100.0, 120.0]) if rng.random() < 0.6 else rng.uniform(25.0, 200.0)
        harmonics = rng.uniform(0.1, 1.0, 20) * np.arange(1, 21) ** -rng.uniform(0.5, 1.5)
        hum = _oscillator(fundamental * (1 + 0.002 * _smooth_random(rng, n, sr, 0.5)), n, sr, harmonics)
        fan = _band_noise(rng, n, sr, rng.uniform(80.0, 300.0), rng.uniform(1000.0, 4000.0))
        fan *= 1 + rng.uniform(0.0, 0.5) * np.sin(2 * np.pi * rng.uniform(5.0, 40.0) * t)
        mix = rng.uniform(0.2, 3.0) * fan / _rms(fan) + hum / _rms(hum)
        return mix * (1 + 0.1 * _smooth_random(rng, n, sr, 0.5))
    noise = _band_noise(rng, n, sr, rng.uniform(100.0, 400.0), rng.uniform(1500.0, 4000.0))
    noise /= _rms(noise)
    hose_hz = rng.uniform(300.0, 2000.0)  # the air column of the hose colours the noise with a broad peak
    noise += rng.uniform(0.0, 1.0) * _modal(noise, [hose_hz], [2.0 / hose_hz], [1.0], sr)
    whine_hz = rng.uniform(300.0, 1500.0) * (1 + 0.01 * _smooth_random(rng, n, sr, 1.0))
    spin_up = 1 - np.exp(-t / rng.uniform(0.05, 0.6))
    whine = _oscillator(whine_hz * (0.5 + 0.5 * spin_up), n, sr, [1.0, 0.5, 0.25])
    swell = 1 + rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi))
    return (noise / _rms(noise) + rng.uniform(0.2, 0.6) * whine) * swell * spin_up


def _footsteps(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Walking at 1.5–2.5 steps/s: each step a low thump (damped 60–200 Hz modes) plus a heel click and sometimes
    a toe tap and a scuff; the surface (hard or soft) and a distance ramp are drawn per draw."""
    n, sr = num_samples, sample_rate
    duration = n / sr
    steps = np.concatenate(_trains(rng, duration, rng.uniform(1.5, 2.5), (6, 30), (0.5, 2.0), jitter=0.05))
    num = steps.size
    foot = np.where(np.arange(num) % 2 == 0, 1.0, rng.uniform(0.7, 1.0))
    gains = foot * np.exp(0.2 * rng.standard_normal(num))
    gains *= 10 ** (rng.uniform(-6.0, 6.0) * (steps / max(duration, 1e-9) - 0.5) / 20)  # approaching or leaving
    toe_delay = rng.uniform(0.03, 0.08)
    times = np.concatenate([steps, steps + toe_delay])
    hits = _impulses(n, sr, times, np.concatenate([gains, rng.uniform(0.2, 0.6) * gains]))
    thump_hz = rng.uniform(60.0, 200.0)
    thump = _modal(_soften(hits, sr, rng.uniform(300.0, 1500.0)), [thump_hz, thump_hz * rng.uniform(1.5, 2.8)],
                   rng.uniform(0.015, 0.05, 2), [1.0, rng.uniform(0.2, 0.6)], sr)
    thump /= _peak(thump)

    click_env = np.zeros(n)
    scuff_env = np.zeros(n)
    click_s = rng.uniform(0.003, 0.015)
    scuff_probability = rng.uniform(0.0, 0.6)
    for step, gain in zip(steps, gains):
        _add(click_env, step * sr, gain * _decay(5 * click_s * sr, sr, click_s, attack_s=0.0005))
        if rng.random() < scuff_probability:
            length = int(rng.uniform(0.05, 0.15) * sr)
            _add(scuff_env, (step + toe_delay) * sr, gain * _envelope(length, 0.3 * length, 0.6 * length))
    hardness = rng.uniform(0.1, 1.0)
    clicks = hardness * click_env * _band_noise(rng, n, sr, rng.uniform(800.0, 2000.0), rng.uniform(4000.0, 9000.0))
    scuffs = rng.uniform(0.1, 0.3) * scuff_env * _band_noise(rng, n, sr, 500.0, 4000.0)
    return thump + clicks + scuffs


def _door(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Door actions, repeated after pauses: a creak (a slowly gliding, irregular stick-slip pulse train through
    wooden resonances) and/or a thump (low damped impact), sometimes a latch click, in open or close order."""
    n, sr = num_samples, sample_rate
    out = np.zeros(n)
    body_hz = _loguniform(rng, 250.0, 2500.0, int(rng.integers(3, 6)))
    body_decays = rng.uniform(0.005, 0.02, body_hz.size)
    thump_hz = np.array([rng.uniform(60.0, 150.0), rng.uniform(150.0, 400.0)])

    def latch() -> np.ndarray:
        length = int(0.1 * sr)
        num_clicks = int(rng.integers(2, 4))
        clicks = _impulses(length, sr, np.cumsum(rng.uniform(0.0, 0.04, num_clicks)), rng.uniform(0.3, 1.0, num_clicks))
        return 0.5 * _modal(clicks, _loguniform(rng, 2000.0, 6000.0, 3), rng.uniform(0.002, 0.01, 3), [1.0] * 3, sr)

    def creak(length_s: float) -> np.ndarray:
        length = int(length_s * sr)
        rate = rng.uniform(20.0, 150.0) * 2 ** (rng.uniform(-1.0, 1.0) * np.linspace(0, 1, length)
                                                  + 0.3 * _smooth_random(rng, length, sr, 3.0))
        pulses = _glottal_source(rate, sr, rng, jitter=rng.uniform(0.1, 0.3), shimmer=0.4)
        sound = _modal(pulses, body_hz, body_decays, np.ones(body_hz.size), sr)
        swell = np.abs(1 + 0.5 * _smooth_random(rng, length, sr, 4.0))
        sound *= swell * _envelope(length, 0.2 * length, 0.3 * length)
        return sound / _peak(sound)

    def thump() -> np.ndarray:
        length = int(0.5 * sr)
        hits = _impulses(length, sr, [0.0, rng.uniform(0.03, 0.08)], [1.0, rng.uniform(0.0, 0.4)])
        sound = _modal(_soften(hits, sr, 800.0), thump_hz, [rng.uniform(0.04, 0.12), rng.uniform(0.02, 0.05)],
                       [1.0, 0.5], sr)
        sound += 0.1 * rng.standard_normal(length) * _decay(length, sr, 0.004)
        return sound / _peak(sound)

    t = _first_onset(rng, n / sr)
    while t < n / sr:
        has_creak = rng.random() < 0.7
        has_thump = rng.random() < 0.8 or not has_creak
        has_latch = rng.random() < 0.6
        opening = rng.random() < 0.5
        # Opening: latch, creak, a bump on the stop; closing: creak, the slam, then the latch catching.
        for event, present in [("latch", has_latch and opening), ("creak", has_creak), ("thump", has_thump),
                               ("latch", has_latch and not opening)]:
            if not present:
                continue
            if event == "creak":
                sound = rng.uniform(0.3, 0.8) * creak(rng.uniform(0.3, 1.5))
                advance_s = sound.size / sr
            else:
                sound = latch() if event == "latch" else thump()
                advance_s = 0.3 * sound.size / sr
            _add(out, t * sr, sound)
            t += advance_s + rng.uniform(0.0, 0.1)
        t += rng.uniform(0.5, 3.0)
    return out


_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
_PROGRESSIONS = [(0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 5, 1, 4), (0, 3, 0, 4), (1, 4, 0, 0)]


def _scale_note(root: int, scale: np.ndarray, degree) -> np.ndarray:
    """MIDI note of a scale degree (any integer; 7 is the octave)."""
    degree = np.asarray(degree)
    return root + 12 * (degree // 7) + scale[degree % 7]


def _timbre(rng: np.random.Generator, num_harmonics: int) -> np.ndarray:
    """Random harmonic amplitudes with a random roll-off (1/k^0.8 .. 1/k^2.2) and ragged levels."""
    k = np.arange(1, num_harmonics + 1)
    return k ** -rng.uniform(0.8, 2.2) * rng.uniform(0.4, 1.0, num_harmonics)


def _music(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A band at 70–150 BPM: a four-chord progression (pad, arpeggio or stabs, one random timbre) over a bass
    line, usually with a drum kit (kick, snare, hi-hat patterns with random velocities)."""
    n, sr = num_samples, sample_rate
    duration = n / sr
    beat_s = 60.0 / rng.uniform(70.0, 150.0)
    root = int(rng.integers(45, 58))
    scale = _MAJOR if rng.random() < 0.5 else _MINOR
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    beats_per_chord = int(rng.choice([2, 4, 4, 8]))
    style = rng.choice(["pad", "arpeggio", "stabs"])
    timbre = _timbre(rng, int(rng.integers(4, 12)))
    attack_s = rng.uniform(0.005, 0.08) if style != "pad" else rng.uniform(0.05, 0.3)
    decay_s = rng.uniform(0.3, 3.0)
    out = np.zeros(n)

    def note(midi: float, length_s: float, gain: float) -> np.ndarray:
        length = int(length_s * sr)
        envelope = _envelope(length, attack_s * sr, min(0.1, 0.3 * length_s) * sr) * _decay(length, sr, decay_s)
        return gain * envelope * _oscillator(_midi_hz(midi), length, sr, timbre, phase=rng.random())

    start_s = _first_onset(rng, duration)
    chord_s = beats_per_chord * beat_s
    for c, t in enumerate(np.arange(start_s, duration, chord_s)):
        degree = progression[c % len(progression)]
        chord = _scale_note(root + 12, scale, degree + np.array([0, 2, 4]))
        _add(out, t * sr, note(_scale_note(root - 12, scale, degree), chord_s, 0.8))
        if style == "pad":
            for midi in chord:
                _add(out, t * sr, note(midi, chord_s, 0.5))
        elif style == "arpeggio":
            pattern = np.concatenate([chord, chord[1:2] + 12, chord[::-1]])
            for k, step_t in enumerate(np.arange(t, t + chord_s - 1e-9, beat_s / 2)):
                _add(out, step_t * sr, note(pattern[k % pattern.size], beat_s / 2, 0.6))
        else:
            for step_t in np.arange(t, t + chord_s - 1e-9, beat_s):
                for midi in chord:
                    _add(out, step_t * sr, note(midi, 0.6 * beat_s, 0.5))
    out /= _rms(out)

    if rng.random() < 0.85:
        drums = np.zeros(n)
        length = int(0.4 * sr)
        tt = np.arange(length) / sr
        kick = np.sin(2 * np.pi * np.cumsum(45 + 100 * np.exp(-tt / 0.03)) / sr) * _decay(length, sr, 0.12, 0.002)
        snare = (_band_noise(rng, length, sr, 1000.0, 6000.0) * _decay(length, sr, rng.uniform(0.05, 0.12)) +
                 0.5 * np.sin(2 * np.pi * 190 * tt) * _decay(length, sr, 0.05))
        hat = _band_noise(rng, length, sr, 5000.0, 11000.0) * _decay(length, sr, rng.uniform(0.015, 0.05))
        kick_beats = [[0, 2], [0, 2.5], [0, 1.5, 2]][int(rng.integers(3))]
        hat_probability = rng.uniform(0.3, 1.0)
        for bar_t in np.arange(start_s, duration, 4 * beat_s):
            for b in kick_beats:
                _add(drums, (bar_t + b * beat_s) * sr, rng.uniform(0.8, 1.0) * kick / _peak(kick))
            for b in (1, 3):
                _add(drums, (bar_t + b * beat_s) * sr, rng.uniform(0.6, 0.9) * snare / _peak(snare))
            for b in np.arange(0, 4, 0.5):
                if rng.random() < hat_probability:
                    _add(drums, (bar_t + b * beat_s) * sr, rng.uniform(0.2, 0.5) * hat / _peak(hat))
        out += rng.uniform(1.0, 3.0) * drums
    return out


def _karplus_strong(freq_hz: float, length: int, sample_rate: int, rng: np.random.Generator, decay_s: float,
                    brightness: float) -> np.ndarray:
    """Plucked string (Karplus-Strong): a noise burst circulating in a delay line with an averaging loss; (length,).

    ``decay_s``: time for the loop to lose 60 dB at the fundamental; ``brightness`` in (0, 1]: the low-pass on the
    initial burst (1 = white). Computed a period at a time, since each period only needs the previous one.
    """
    delay = max(2, int(round(sample_rate / freq_hz - 0.5)))  # the averaging filter adds half a sample
    loss = 10 ** (-3 / (decay_s * freq_hz))
    burst = signal.lfilter([brightness], [1.0, brightness - 1.0], rng.uniform(-1.0, 1.0, delay))
    z = np.zeros(length + 1)  # z[0] is silence before the burst; z[i] is the output at sample i - 1
    z[1:delay + 1] = burst[:length]
    for start in range(delay + 1, length + 1, delay):
        stop = min(start + delay, length + 1)
        count = stop - start
        z[start:stop] = loss * 0.5 * (z[start - delay:start - delay + count] + z[start - delay - 1:stop - delay - 1])
    return z[1:]


def _musical_instrument(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A single melodic line (scale random walk, 60–160 BPM, rests) on one instrument per draw: plucked string
    (Karplus-Strong), bowed string (sawtooth-like with delayed vibrato), organ (drawbar harmonics), flute (near-sine
    with breath noise) or mallet (modes at 1, 3.9 and 9.5 × f0)."""
    n, sr = num_samples, sample_rate
    duration = n / sr
    instrument = rng.choice(["plucked", "bowed", "organ", "flute", "mallet"])
    low, high = {"plucked": (40, 76), "bowed": (48, 84), "organ": (45, 84), "flute": (60, 93),
                 "mallet": (55, 88)}[instrument]
    scale = [_MAJOR, _MINOR, np.array([0, 2, 4, 7, 9, 12, 14])][int(rng.integers(3))]
    root = int(rng.integers(low, high - 12))
    beat_s = 60.0 / rng.uniform(60.0, 160.0)
    bow_timbre = np.arange(1, 31) ** -rng.uniform(0.9, 1.3) * rng.uniform(0.5, 1.0, 30)
    organ_timbre = np.zeros(16)
    organ_timbre[[0, 1, 2, 3, 5, 7, 11, 15]] = rng.uniform(0.0, 1.0, 8) * np.array([1, 1, 1, .7, .6, .5, .4, .3])
    organ_timbre[0] = 1.0
    flute_timbre = [1.0, rng.uniform(0.1, 0.5), rng.uniform(0.05, 0.2), rng.uniform(0.0, 0.1)]
    mallet_decay = rng.uniform(0.3, 1.5)
    vibrato_hz, vibrato_st = rng.uniform(4.5, 6.5), rng.uniform(0.1, 0.5)
    out = np.zeros(n)
    degree = 0
    t = _first_onset(rng, n / sr)
    while t < duration:
        note_s = rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]) * beat_s
        if rng.random() < 0.1 and t > 0.1:
            t += note_s
            continue
        degree = int(np.clip(degree + rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]), -3, 10))
        freq = float(_midi_hz(min(_scale_note(root, scale, degree), high)))
        length = int(note_s * sr)
        tt = np.arange(length) / sr
        vibrato = 2 ** (vibrato_st / 12 * np.sin(2 * np.pi * vibrato_hz * tt) * np.clip(tt / 0.3 - 0.5, 0, 1))
        if instrument == "plucked":
            length = int((note_s + 0.3) * sr)
            tone = _karplus_strong(freq, length, sr, rng, rng.uniform(0.5, 3.0), rng.uniform(0.3, 1.0))
            tone *= _envelope(length, 0, 0.05 * sr)
        elif instrument == "bowed":
            tone = _oscillator(freq * vibrato, length, sr, bow_timbre) * _envelope(length, 0.1 * sr, 0.08 * sr)
        elif instrument == "organ":
            tone = _oscillator(freq, length, sr, organ_timbre) * _envelope(length, 0.01 * sr, 0.03 * sr)
        elif instrument == "flute":
            tone = _oscillator(freq * vibrato, length, sr, flute_timbre)
            tone += rng.uniform(0.05, 0.15) * _band_noise(rng, length, sr, 0.8 * freq, 4 * freq)
            tone *= _envelope(length, 0.06 * sr, 0.06 * sr)
        else:
            length = int((note_s + 0.5) * sr)
            tone = _modal(_impulses(length, sr, [0.0], [1.0]), freq * np.array([1.0, 3.93, 9.54]),
                          mallet_decay * np.array([1.0, 0.3, 0.1]), [1.0, 0.5, 0.25], sr)
            tone *= _envelope(length, 0, 0.05 * sr)
        _add(out, t * sr, rng.uniform(0.6, 1.0) * tone / _peak(tone))
        t += note_s
    return out


def _water_tap(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Running water: band-limited noise (0.5–1.5 kHz up to 4–10 kHz) with slow (0.3–1.5 Hz) and fast (15–50 Hz)
    random modulation, turned on over 0.05–0.5 s, plus splashing droplets (20–120/s short rising resonant chirps at
    0.6–4 kHz)."""
    n, sr = num_samples, sample_rate
    noise = _band_noise(rng, n, sr, rng.uniform(500.0, 1500.0), rng.uniform(4000.0, 10000.0))
    slow = 1 + rng.uniform(0.1, 0.4) * _smooth_random(rng, n, sr, rng.uniform(0.3, 1.5))
    fast = np.exp(rng.uniform(0.4, 0.9) * _smooth_random(rng, n, sr, rng.uniform(15.0, 50.0)))
    turn_on = np.minimum(np.arange(n) / (rng.uniform(0.05, 0.5) * sr), 1.0)
    stream = noise / _rms(noise) * np.clip(slow, 0.2, None) * fast * turn_on

    drops = np.zeros(n)
    num_drops = rng.poisson(rng.uniform(20.0, 120.0) * n / sr) + 1
    for onset, freq, decay, glide, gain in zip(rng.uniform(0.0, n / sr, num_drops),
                                               _loguniform(rng, 600.0, 4000.0, num_drops),
                                               rng.uniform(0.003, 0.015, num_drops),
                                               rng.uniform(0.1, 1.0, num_drops),
                                               np.exp(0.5 * rng.standard_normal(num_drops))):
        tt = np.arange(int(5 * decay * sr)) / sr
        chirp = np.sin(2 * np.pi * freq * (tt + 0.5 * glide * tt**2 / decay)) * np.exp(-tt / decay)
        _add(drops, onset * sr, gain * chirp)
    return stream + rng.uniform(1.0, 3.0) * drops


_BELL_RATIOS = np.array([0.5, 1.0, 1.19, 1.56, 2.0, 2.51, 2.66, 3.01])


def _bell(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Modal bell: inharmonic partials at 0.5, 1, 1.19, 1.56, 2, 2.51, 2.66, 3.01 × a 400–2500 Hz fundamental,
    each with its own exponential decay (higher partials die faster), struck 1–4 times; sometimes a "ding-dong"
    pair of bells a major third apart."""
    n, sr = num_samples, sample_rate
    num_strikes = int(rng.integers(1, 5))
    strikes = _first_onset(rng, n / sr) + np.concatenate([[0.0], np.cumsum(rng.uniform(0.25, 1.5, num_strikes - 1))])
    gains = rng.uniform(0.6, 1.0, num_strikes)
    fundamental = _loguniform(rng, 400.0, 2500.0)
    base_decay = rng.uniform(1.0, 4.0)  # of the hum partial (0.5 × f0), the longest
    steepness = rng.uniform(0.3, 0.8)
    hardness = rng.uniform(2000.0, 12000.0)
    ding_dong = rng.random() < 0.25
    out = np.zeros(n)
    for bell in range(2 if ding_dong else 1):
        ratios = _BELL_RATIOS * (1 + 0.01 * rng.standard_normal(_BELL_RATIOS.size))
        freqs = fundamental * 2 ** (-4 / 12 * bell) * ratios
        amps = rng.uniform(0.2, 1.0, ratios.size)
        which = np.arange(num_strikes) % 2 == bell if ding_dong else np.ones(num_strikes, bool)
        hits = _soften(_impulses(n, sr, strikes[which], gains[which]), sr, hardness)
        out += _modal(hits, freqs, base_decay * (ratios / 0.5) ** -steepness, amps, sr)
    return out


def _knock(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Knocking: groups of 2–5 knocks 0.1–0.3 s apart on one wooden door (3–5 damped modes at 200–1500 Hz plus
    a low panel mode), groups repeated after 0.6–2.5 s pauses; knuckle hardness and knock levels vary."""
    n, sr = num_samples, sample_rate
    times = np.concatenate(_trains(rng, n / sr, 1 / rng.uniform(0.1, 0.3), (2, 5), (0.6, 2.5), jitter=0.15))
    gains = np.exp(0.3 * rng.standard_normal(times.size))
    hits = _soften(_impulses(n, sr, times, gains), sr, rng.uniform(1000.0, 5000.0))
    num_modes = int(rng.integers(3, 6))
    freqs = np.append(_loguniform(rng, 200.0, 1500.0, num_modes), rng.uniform(80.0, 200.0))
    decays = np.append(rng.uniform(0.008, 0.04, num_modes), rng.uniform(0.02, 0.06))
    wood = _modal(hits, freqs, decays, rng.uniform(0.3, 1.0, num_modes + 1), sr)
    wood /= _peak(wood)
    click_env = np.zeros(n)
    for time, gain in zip(times, gains):
        _add(click_env, time * sr, gain * _decay(0.01 * sr, sr, 0.002))
    return wood + rng.uniform(0.0, 0.3) * click_env * _band_noise(rng, n, sr, 2000.0, 8000.0)


SYNTHESIZERS: dict[int, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    0: _female_speech,
    1: _male_speech,
    2: _clapping,
    3: _telephone,
    4: _laughter,
    5: _domestic,
    6: _footsteps,
    7: _door,
    8: _music,
    9: _musical_instrument,
    10: _water_tap,
    11: _bell,
    12: _knock,
}
"""Raw synthesiser of each class: ``(num_samples, sample_rate, rng) -> (num_samples,) float64``, unscaled;
``synthesize`` adds the fades and the level."""
