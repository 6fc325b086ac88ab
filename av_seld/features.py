"""Audio input features of the DCASE2023/2024 task 3 baseline, in batched torch (CPU or CUDA).

Every kind maps 4-channel, 24 kHz audio ``(B, 4, N)`` to ``(B, C, T, F)`` float32 with ``T =
timing.num_feature_frames(N)``: the audio is zero-padded to a whole number of 100 ms label frames, then framed
with a 20 ms hop and centred 40 ms Hann windows in a 1024-point FFT (frame ``j`` is centred on sample ``480 j``), so
feature frame ``j`` belongs to label frame ``j // 5`` for any clip length.

Kinds (channel layouts are the shared contract of the dataset, the models and channel swapping;
``av_seld.arrays.FEATURE_SPECS`` holds them):

- ``foa_logmel_iv`` (FOA, C=7, F=64): log-mel power in dB of W, Y, Z, X (channels 0-3, the wav's ACN order), then the
  active intensity vector ``Re(W* [X, Y, Z])`` divided by the energy ``|W|^2 + (|X|^2 + |Y|^2 + |Z|^2) / 3``
  and projected on the mel filters, in x, y, z order (channels 4-6).
- ``mic_logmel_gcc`` (MIC, C=10, F=64): log-mel of M1..M4 (0-3), then GCC-PHAT of the pairs (M1,M2), (M1,M3),
  (M1,M4), (M2,M3), (M2,M4), (M3,M4) (4-9, ``av_seld.arrays.MIC_PAIRS``): the inverse FFT of the phase of
  ``conj(X_m) X_n``, 64 lags from -32 to +31 samples (lag 0 at index 32).
- ``mic_salsalite`` (MIC, C=7, F=382): SALSA-lite. Log power in dB of M1..M4 on the linear FFT bins 2..383
  (47 Hz to 9 kHz) (0-3), then the normalised inter-channel phase differences ``angle(X_m conj(X_1)) / (2 pi f / c)``
  of M2, M3, M4 against M1 (4-6), in metres of path difference at 343 m/s, kept on bins 2..86 (up to 2 kHz: the
  baseline zeroes from index 85 of the cropped axis) and zero above.

Log powers follow ``librosa.power_to_db``: ``10 log10(max(P, 1e-10))``; the log-mel channels are also floored at
80 dB below their maximum over the whole input (per example and channel, ``top_db``; ``None`` turns that off), as
the baseline does once per file. ``tests/feature_reference.py`` holds the NumPy/librosa definitions these equal.

On the CPU (float32) the work after the FFTs runs in the numba loops of :mod:`av_seld.feature_kernels`; the torch
functions below are the CUDA path and the reference the loops are tested against.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor, nn

from av_seld import timing
from av_seld.arrays import (  # noqa: F401  (the layouts stay importable from here)
    DEFAULT_KIND,
    FEATURE_SPECS,
    MIC_PAIRS,
    NUM_MEL_BINS,
    SPEED_OF_SOUND,
    FeatureSpec,
    feature_spec,
    salsalite_bins,
)

AMIN = 1e-10
TOP_DB = 80.0
IV_EPS = 1e-8  # keeps the intensity normalisation finite in digital silence (baseline value)
_PAIR_M = np.array([m for m, _ in MIC_PAIRS], dtype=np.int64)
_PAIR_N = np.array([n for _, n in MIC_PAIRS], dtype=np.int64)
_LOWER, _UPPER, _CUTOFF = salsalite_bins()


def mel_filterbank(num_mel_bins: int = NUM_MEL_BINS, sample_rate: int = timing.SAMPLE_RATE,
                   n_fft: int = timing.N_FFT, dtype: torch.dtype = torch.float32) -> Tensor:
    """(n_fft // 2 + 1, num_mel_bins): Slaney-scale, Slaney-normalised triangles from 0 Hz to Nyquist, the filters of
    ``librosa.filters.mel(sr, n_fft, n_mels)`` transposed, from ``torchaudio.functional.melscale_fbanks``. torchaudio
    computes them in float32: within 5e-8 of librosa's float64 filters (whose largest weight is 0.019), with the
    same zero entries, so the same spans for the CPU kernels."""
    import torchaudio.functional

    filters = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, num_mel_bins, sample_rate,
                                                    norm="slaney", mel_scale="slaney")
    return filters.to(dtype)


def _framing_window(dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """(n_fft,) periodic Hann window of 960 samples centred in 1024 zeros, as librosa and torch.stft pad it."""
    window = torch.hann_window(timing.FEATURE_WIN_SAMPLES, periodic=True, dtype=dtype, device=device)
    side = (timing.N_FFT - timing.FEATURE_WIN_SAMPLES) // 2
    return torch.nn.functional.pad(window, (side, timing.N_FFT - timing.FEATURE_WIN_SAMPLES - side))


def frame_audio(audio: Tensor) -> Tensor:
    """Frames ``(..., T, n_fft)`` of ``(..., N)`` audio (a strided view of a zero-padded copy), ``T =
    num_feature_frames(N)``: the audio is zero-padded to a whole number of label frames, and frame ``j`` holds samples
    ``480 j - 512 .. 480 j + 511`` (zeros outside the clip), as ``librosa.stft(center=True, pad_mode="constant")``."""
    num_samples = audio.shape[-1]
    half = timing.N_FFT // 2
    padded = torch.nn.functional.pad(audio.reshape(-1, num_samples),
                                     (half, timing.padded_num_samples(num_samples) - num_samples + half))
    frames = padded.unfold(-1, timing.N_FFT, timing.FEATURE_HOP_SAMPLES)[:, : timing.num_feature_frames(num_samples)]
    return frames.reshape(*audio.shape[:-1], *frames.shape[-2:])


def stft(audio: Tensor, window: Tensor | None = None) -> Tensor:
    """Complex STFT ``(..., T, 513)`` of ``(..., N)`` audio, ``T = num_feature_frames(N)``: the frames of
    :func:`frame_audio` times a periodic Hann window of 960 samples centred in the 1024-point FFT (``window``: that
    (1024,) window, :func:`_framing_window`)."""
    frames = frame_audio(audio)
    if window is None:
        window = _framing_window(frames.dtype, frames.device)
    return torch.fft.rfft(frames * window)


_DB_PER_NEPER = 10.0 / math.log(10.0)  # 10 log10(x) = log(x) * 10 / ln 10: one log and one multiply


def power_to_db(power: Tensor, top_db: float | None = TOP_DB) -> Tensor:
    """``10 log10(max(power, 1e-10))``, floored at ``top_db`` below the maximum over the last two dims (T, F)."""
    db = torch.log(torch.clamp(power, min=AMIN)).mul_(_DB_PER_NEPER)
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db)
    return db


def split_planes(spec: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of a complex tensor as two contiguous real tensors: the element-wise work below runs
    on these (vectorised, one pass each) rather than on interleaved complex values."""
    planes = torch.view_as_real(spec).movedim(-1, 0).contiguous()
    return planes[0], planes[1]


def log_mel(power: Tensor, mel: Tensor, top_db: float | None = TOP_DB) -> Tensor:
    """(B, C, T, M) log-mel in dB of a power spectrogram (B, C, T, F) and a filterbank (F, M)."""
    return power_to_db(power @ mel, top_db)


def normalized_intensity(re: Tensor, im: Tensor, power: Tensor) -> Tensor:
    """(B, 3, T, F) active intensity ``Re(conj(W) [Y, Z, X])`` divided by the energy ``|W|^2 + (|X|^2 + |Y|^2 +
    |Z|^2) / 3``, on the FFT bins and **in ACN order y, z, x**, from the real and imaginary parts (B, 4, T, F) of the
    FOA STFT (channels W, Y, Z, X) and its power ``re^2 + im^2``."""
    intensity = torch.addcmul(re[:, 1:] * re[:, :1], im[:, 1:], im[:, :1])  # Wr Xr + Wi Xi
    energy = power[:, 1:].sum(dim=1, keepdim=True).div_(3.0).add_(power[:, :1]).add_(IV_EPS)
    return intensity.div_(energy)


def _mel_blocks(mel: Tensor, num_groups: int) -> list[tuple[int, int, int, int]]:
    """Split the banded filterbank (F, M) into ``num_groups`` groups of filters with the FFT-bin span each group
    covers: ``(bin_lo, bin_hi, mel_lo, mel_hi)``. Projecting group by group skips most of the zeros."""
    nonzero = (mel != 0).cpu().numpy()
    size = -(-mel.shape[1] // num_groups)
    blocks = []
    for mel_lo in range(0, mel.shape[1], size):
        mel_hi = min(mel_lo + size, mel.shape[1])
        rows = np.flatnonzero(nonzero[:, mel_lo:mel_hi].any(axis=1))
        blocks.append((int(rows[0]), int(rows[-1]) + 1, mel_lo, mel_hi))
    return blocks


def _gcc_bases(num_lags: int, n_fft: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Matrices ``(F, num_lags/2 + 1)`` and ``(F, num_lags/2 + 1)`` that give the inverse real FFT of a one-sided
    spectrum P at lags ``0 .. num_lags/2``: ``irfft(P)[l] = (Re P @ even)[l] + (Im P @ odd)[l]`` and
    ``irfft(P)[-l] = (Re P @ even)[l] - (Im P @ odd)[l]`` (the cosine part is even in the lag, the sine part odd).
    Only 64 of the 1024 lags are kept, so this costs less than the full ``irfft``."""
    bins = n_fft // 2 + 1
    k = np.arange(bins, dtype=np.float64)[:, None]
    lags = np.arange(num_lags // 2 + 1, dtype=np.float64)[None, :]
    weight = np.full((bins, 1), 2.0 / n_fft)
    weight[0] = weight[-1] = 1.0 / n_fft  # DC and Nyquist appear once; irfft ignores their imaginary parts
    angle = 2 * np.pi * k * lags / n_fft
    even = weight * np.cos(angle)
    odd = -weight * np.sin(angle)
    odd[0] = odd[-1] = 0.0
    return torch.from_numpy(even).to(dtype), torch.from_numpy(odd).to(dtype)


def gcc_phat(re: Tensor, im: Tensor, power: Tensor, even: Tensor, odd: Tensor) -> Tensor:
    """(B, 6, T, L) GCC-PHAT of the MIC_PAIRS, lags ``-L/2 .. L/2 - 1``: the inverse FFT of ``exp(i angle(conj(X_m)
    X_n))``, from the real and imaginary parts (B, 4, T, F) of the MIC STFT, its power, and :func:`_gcc_bases`."""
    # angle(conj(X_m) X_n) = angle(X_n) - angle(X_m): normalise the 4 spectra once instead of the 6 products.
    # A bin of exactly zero power gets a finite 1/|X| (times its zero parts: 0); it is fixed up below.
    inverse = torch.rsqrt(torch.clamp(power, min=torch.finfo(power.dtype).tiny))
    u_re, u_im = re * inverse, im * inverse
    shape = (re.shape[0], len(MIC_PAIRS)) + tuple(re.shape[2:])
    real, imag = re.new_empty(shape), re.new_empty(shape)
    any_silent = bool(power.min() == 0)
    silent = power == 0 if any_silent else None
    for k, (m, n) in enumerate(MIC_PAIRS):
        torch.mul(u_re[:, m], u_re[:, n], out=real[:, k]).addcmul_(u_im[:, m], u_im[:, n])
        torch.mul(u_re[:, m], u_im[:, n], out=imag[:, k]).addcmul_(u_im[:, m], u_re[:, n], value=-1.0)
        if silent is not None:
            # angle(0) = 0: where either spectrum is exactly zero the normalised cross spectrum is 1 + 0i (the
            # products above are 0 there).
            real[:, k].add_((silent[:, m] | silent[:, n]).to(real.dtype))
    cos_part, sin_part = real @ even, imag @ odd  # (B, 6, T, L/2 + 1)
    negative = (cos_part - sin_part)[..., 1:].flip(-1)  # lags -L/2 .. -1
    positive = (cos_part + sin_part)[..., :-1]  # lags 0 .. L/2 - 1
    return torch.cat([negative, positive], dim=-1)


def salsalite(re: Tensor, im: Tensor, power: Tensor, sample_rate: int = timing.SAMPLE_RATE) -> Tensor:
    """(B, 7, T, cutoff - lower) SALSA-lite from the real and imaginary parts (B, 4, T, F) of the MIC STFT and its
    power."""
    lower, upper, cutoff = salsalite_bins(sample_rate, timing.N_FFT)
    log_power = power_to_db(power[..., lower:cutoff], top_db=None)
    band = slice(lower, lower + upper)
    r_re, r_im = re[:, :1, :, band], im[:, :1, :, band]
    o_re, o_im = re[:, 1:, :, band], im[:, 1:, :, band]
    # angle(X_m conj(X_1)) / (delta k), delta = 2 pi fs / (n_fft c): phase difference as a path difference in metres.
    phase = torch.atan2(o_im * r_re - o_re * r_im, o_re * r_re + o_im * r_im)
    delta = 2 * math.pi * sample_rate / (timing.N_FFT * SPEED_OF_SOUND)
    k = torch.arange(lower, lower + upper, device=re.device, dtype=phase.dtype)
    nipd = torch.nn.functional.pad(phase / (delta * k), (0, cutoff - lower - upper))
    return torch.cat([log_power, nipd], dim=1)


class FeatureExtractor(nn.Module):
    """Audio ``(B, 4, N)`` (or ``(4, N)``) -> features ``(B, C, T, F)`` (or ``(C, T, F)``) of one kind.

    A module so that training can run it on the GPU next to the model: its constant tensors are buffers and move
    with ``.to(device)``; it computes in their dtype (``dtype``, float32 by default; float64 for reference checks).
    The output is not standardised: that is the next stage of :mod:`av_seld.data.pipeline`. ``block_rows``: on the CPU, frames are processed ``block_rows / (4 B)`` at a time so that
    the intermediate spectra stay in cache (on CUDA, all at once). ``kernels``: ``"auto"`` runs float32 CPU input
    through the fused loops of :mod:`av_seld.feature_kernels` (everything after the FFTs), anything else through
    torch operations; ``"torch"`` always uses torch operations (the CUDA path); ``"numba"`` insists on the fused
    loops. No gradients flow through it.
    """

    def __init__(self, kind: str, *, top_db: float | None = TOP_DB, dtype: torch.dtype = torch.float32,
                 block_rows: int = 256, kernels: str = "auto"):
        super().__init__()
        if kernels not in ("auto", "numba", "torch"):
            raise ValueError(f"kernels must be 'auto', 'numba' or 'torch', got {kernels!r}")
        self.kernels = kernels
        self.block_rows = block_rows
        self.spec = feature_spec(kind)
        self.kind = kind
        self.top_db = top_db
        self.register_buffer("window", _framing_window(dtype), persistent=False)
        mel = mel_filterbank(dtype=dtype)
        self.register_buffer("mel", mel, persistent=False)
        self._mel_blocks = _mel_blocks(mel, 4)
        self._sparse_mel: tuple[np.ndarray, ...] | None = None  # (first, offsets, weights): the CPU kernels' filters
        for k, (bin_lo, bin_hi, mel_lo, mel_hi) in enumerate(self._mel_blocks):
            self.register_buffer(f"mel_block{k}", mel[bin_lo:bin_hi, mel_lo:mel_hi].contiguous(), persistent=False)
        delta = 2 * math.pi * timing.SAMPLE_RATE / (timing.N_FFT * SPEED_OF_SOUND)  # SALSA-lite: phase -> metres
        self.register_buffer("nipd_scale", delta * torch.arange(_LOWER, _LOWER + _UPPER, dtype=dtype),
                             persistent=False)
        even, odd = _gcc_bases(NUM_MEL_BINS, timing.N_FFT, dtype)
        self.register_buffer("gcc_even", even, persistent=False)
        self.register_buffer("gcc_odd", odd, persistent=False)

    @property
    def num_channels(self) -> int:
        return self.spec.num_channels

    @property
    def num_bins(self) -> int:
        return self.spec.num_bins

    def num_frames(self, num_samples: int) -> int:
        """Feature frames for ``num_samples`` of audio (5 per 100 ms label frame of the zero-padded clip)."""
        return timing.num_feature_frames(num_samples)

    def _to_mel(self, x: Tensor) -> Tensor:
        """(..., F) -> (..., M) through the mel filters: one matmul on the GPU, band by band on the CPU."""
        if x.is_cuda:
            return x @ self.mel
        return torch.cat([x[..., bin_lo:bin_hi] @ getattr(self, f"mel_block{k}")
                          for k, (bin_lo, bin_hi, _, _) in enumerate(self._mel_blocks)], dim=-1)

    def _fused(self, audio: Tensor) -> bool:
        """Whether this input runs through the numba kernels of :mod:`av_seld.feature_kernels`."""
        if self.kernels == "torch":
            return False
        usable = audio.device.type == "cpu" and audio.dtype == torch.float32
        if self.kernels == "numba" and not usable:
            raise ValueError(f"kernels='numba' needs float32 audio on the CPU, got {audio.dtype} on {audio.device}")
        return usable

    def _block(self, frames: Tensor, out: Tensor) -> None:
        """Fill ``out`` (B, C, t, F) with the features of frames (B, 4, t, n_fft) (before windowing), the log-mel
        channels still as mel power: torch element-wise operations."""
        re, im = split_planes(torch.fft.rfft(frames * self.window))  # (B, 4, t, 513) each
        power = torch.addcmul(re * re, im, im)
        if self.kind == "mic_salsalite":
            out[:] = salsalite(re, im, power)
            return
        if self.kind == "foa_logmel_iv":
            spatial = self._to_mel(normalized_intensity(re, im, power))[:, [2, 0, 1]]  # y, z, x -> x, y, z
        else:
            spatial = gcc_phat(re, im, power, self.gcc_even, self.gcc_odd)
        out[:, :4] = self._to_mel(power)
        out[:, 4:] = spatial

    def _block_fused(self, frames: Tensor, whole: Tensor, first: int, scratch: dict[str, Tensor]) -> None:
        """:meth:`_block` for frames ``first ..`` of the output ``whole`` (B, C, T, F) (CPU, float32): torch's FFTs,
        and one numba loop per frame for everything between them and the output, the mel projections included
        (:mod:`av_seld.feature_kernels`), which write into ``whole`` directly. The windowed frames and GCC-PHAT's
        cross spectra live in ``scratch``, reused from block to block (fresh buffers of this size are mapped and
        unmapped by the allocator each time, and on a small virtual machine those page faults cost as much as the
        FFTs)."""
        from av_seld import feature_kernels

        if self._sparse_mel is None:
            self._sparse_mel = feature_kernels.sparse_filters(self.mel.cpu().numpy())
        batch, channels, num_frames, n_fft = frames.shape
        out = whole[:, :, first : first + num_frames]

        def buffer(name: str, *size: int, dtype: torch.dtype = torch.float32) -> Tensor:
            if name not in scratch or tuple(scratch[name].shape) != size:
                scratch[name] = torch.empty(size, dtype=dtype)
            return scratch[name]

        bins = n_fft // 2 + 1
        windowed = torch.mul(frames, self.window, out=buffer("windowed", batch, channels, num_frames, n_fft))
        spec = torch.fft.rfft(windowed)  # (its out= variant is slower: it transforms into a temporary and copies)
        spec_np, whole_np = spec.numpy(), whole.numpy()
        if self.kind == "foa_logmel_iv":
            feature_kernels.foa_block(spec_np, whole_np, first, *self._sparse_mel, np.float32(IV_EPS),
                                      np.float32(AMIN), np.float32(_DB_PER_NEPER))
        elif self.kind == "mic_logmel_gcc":
            cross = buffer("cross", batch, len(MIC_PAIRS), num_frames, bins, dtype=torch.complex64)
            feature_kernels.mic_block(spec_np, whole_np, first, cross.numpy(), _PAIR_M, _PAIR_N, *self._sparse_mel,
                                      np.float32(torch.finfo(torch.float32).tiny), np.float32(AMIN),
                                      np.float32(_DB_PER_NEPER))
            # GCC-PHAT as the baseline computes it: the whole inverse FFT, then the 64 lags around zero (on the CPU
            # this is cheaper than the 64-lag products of the torch path, whose 33-column matrices vectorise badly).
            lags = torch.fft.irfft(cross, n=n_fft)
            half = NUM_MEL_BINS // 2
            out[:, 4:, :, :half] = lags[..., -half:]
            out[:, 4:, :, half:] = lags[..., :half]
        else:
            feature_kernels.salsalite_block(spec_np, whole_np, first, _LOWER, self.nipd_scale.numpy(),
                                            np.float32(AMIN), np.float32(_DB_PER_NEPER))

    @torch.no_grad()
    def forward(self, audio: Tensor) -> Tensor:
        single = audio.dim() == 2
        if single:
            audio = audio.unsqueeze(0)
        if audio.dim() != 3 or audio.shape[1] != 4:
            raise ValueError(f"audio must be (B, 4, N) or (4, N), got shape {tuple(audio.shape)}")
        audio = audio.to(device=self.window.device, dtype=self.window.dtype)  # compute in the buffers' dtype
        batch, _, num_samples = audio.shape
        num_frames = timing.num_feature_frames(num_samples)
        out = audio.new_empty((batch, self.num_channels, num_frames, self.num_bins))
        # On the CPU, a few hundred frames at a time keep the intermediate spectra in cache: the element-wise
        # work is bound by memory traffic, and whole-clip spectra (50 MB per minute of audio) are not.
        step = num_frames if audio.is_cuda else max(1, self.block_rows // (batch * 4))
        hop, half = timing.FEATURE_HOP_SAMPLES, timing.N_FFT // 2
        fused = self._fused(audio)
        scratch: dict[str, Tensor] = {}  # the fused path's buffers, reused from block to block
        for first in range(0, num_frames, step):
            last = min(first + step, num_frames)
            # Samples of frames first .. last - 1, zero-padded where they run past either end of the clip.
            lo, hi = first * hop - half, (last - 1) * hop + half
            segment = audio[..., min(max(lo, 0), num_samples) : min(hi, num_samples)]
            if segment.shape[-1] < hi - lo:  # a block can start past the end, in the padding to a label frame
                left = max(0, -lo)
                segment = torch.nn.functional.pad(segment, (left, hi - lo - left - segment.shape[-1]))
            if fused:
                self._block_fused(segment.unfold(-1, timing.N_FFT, hop), out, first, scratch)
            else:
                self._block(segment.unfold(-1, timing.N_FFT, hop), out[:, :, first:last])
        if self.kind != "mic_salsalite":  # mel power -> dB in place (the fused loops wrote dB already)
            logmel = out[:, :4]
            if not fused:
                logmel.clamp_(min=AMIN).log_().mul_(_DB_PER_NEPER)
            if self.top_db is not None:
                floor = logmel.amax(dim=(-2, -1), keepdim=True).sub_(self.top_db)
                torch.maximum(logmel, floor, out=logmel)
        # NaN or inf samples make NaN features (both paths propagate them); refuse the input, naming the sample.
        # One sum over the smaller of the two tells (the 64-bin outputs are a quarter of the audio's size).
        if not torch.isfinite((out if out.numel() < audio.numel() else audio).sum()):
            bad = (~torch.isfinite(audio)).nonzero()
            if len(bad):  # otherwise absurdly loud audio overflowed float32: its inf features are what it is
                b, c, n = bad[0].tolist()
                raise ValueError(f"audio has {len(bad)} NaN or infinite samples, the first at example {b}, "
                                 f"channel {c}, sample {n}")
        return out[0] if single else out


@functools.lru_cache(maxsize=16)
def _shared_extractor(kind: str, top_db: float | None, device: str) -> FeatureExtractor:
    return FeatureExtractor(kind, top_db=top_db).to(device)


def compute_features(audio: np.ndarray | Tensor, kind: str, *, top_db: float | None = TOP_DB,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """Features of ``kind`` for audio ``(4, N)`` or ``(B, 4, N)`` as a float32 NumPy array ``(C, T, F)`` / ``(B, ...)``
    (un-normalised). A convenience around :class:`FeatureExtractor` for NumPy callers; the extractor is built once per
    (kind, top_db, device) and reused (building one takes about 1 ms, against 15 ms for a minute of FOA features)."""
    extractor = _shared_extractor(kind, top_db, str(torch.device(device)))
    audio = audio if isinstance(audio, Tensor) else torch.from_numpy(np.asarray(audio, dtype=np.float32))
    return extractor(audio).cpu().numpy()
