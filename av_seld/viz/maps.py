"""Localization maps over the sphere, on an equirectangular grid (W × H = 2H × H, pixel centres from
``geometry.pixel_center_directions``), and their drawing over a panorama frame.

Acoustic (from the audio of a time window):

- :func:`foa_srp_map`: steered-response power of a first-order beam ``a0·W + a1·(d · [X, Y, Z])`` steered to every
  direction d. For a plane wave from u (SN3D: W = s, [X, Y, Z] = s·u) the beam has the pattern ``a0 + a1 cos γ``,
  γ the angle between d and u, so the map peaks at u. The power is ``g(d)ᵀ C g(d)`` with C the 4 × 4 channel
  covariance of the window (computed in the frequency domain, optionally band-limited).
- :func:`mic_srp_phat_map`: SRP-PHAT of the tetrahedral array: Σ over the 6 capsule pairs and frequency bins of
  the PHAT-weighted cross-spectrum steered by the free-field delays of ``av_seld.arrays.mic_delays_s`` (capsules
  ``MIC_CAPSULES_DEG`` on radius ``MIC_RADIUS_M``, ``SPEED_OF_SOUND``). The free-field model is only approximate
  for the real rigid-sphere array above a few hundred Hz (see ``augment.spatial``).

Visual (from a differentiable model):

- :func:`gradient_saliency_map`: |∂ activity(class, t) / ∂ frame_t| summed over colour, Gaussian-smoothed with a
  horizontal wrap at the seam: where in the panorama the model's evidence for that class comes from.
- :func:`window_gradient_maps`: the same for an audio-visual model over a whole clip, in the windows of inference:
  per class c and label frame t, |∂ (activity of c summed over the window) / ∂ frame_t| (see there).
- :func:`guided_backprop`: a context in which the model's activation modules pass only positive gradients back
  (guided backpropagation), for sharper maps.

Per clip: :func:`acoustic_maps` computes one acoustic map per label frame. Scoring: :func:`peak_hits` says whether
a map's peak lies within a angle of any target direction, :func:`random_cell_hit_rate` what a uniformly random cell
of the same grid would score.

:func:`draw_map_overlay` blends any such map over an RGB panorama (``cv2.applyColorMap``) and rings its peak.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from av_seld.arrays import MIC_PAIRS, mic_delays_s
from av_seld.errors import InputError
from av_seld.geometry import angular_distance_deg, equirect_to_sph, pixel_center_directions, sph_to_cart
from av_seld.timing import FEATURE_FRAMES_PER_LABEL_FRAME, LABEL_HOP_S, SAMPLE_RATE

logger = logging.getLogger(__name__)

# First-order beam weights (a0 on W, a1 on the dipole d·[X, Y, Z]) for SN3D signals, on-axis gain 1.
_MAX_RE_A1 = 0.5773502691896258  # cos(137.9° / 2.407): the max-rE weight of order 1 in 3D
BEAM_PATTERNS: dict[str, tuple[float, float]] = {
    "hypercardioid": (0.25, 0.75),
    "cardioid": (0.5, 0.5),
    "max_re": (1 / (1 + _MAX_RE_A1), _MAX_RE_A1 / (1 + _MAX_RE_A1)),
}


def _window(audio: np.ndarray, sample_rate: int, start_s: float, duration_s: float | None) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 2 or audio.shape[0] != 4:
        raise ValueError(f"audio must be (4, samples), got shape {audio.shape}")
    start = int(round(start_s * sample_rate))
    stop = audio.shape[1] if duration_s is None else start + int(round(duration_s * sample_rate))
    if not 0 <= start < min(stop, audio.shape[1]):
        raise ValueError(f"window {start_s:g} s + {duration_s} s is outside the {audio.shape[1] / sample_rate:.3f} s "
                         "of audio")
    return audio[:, start:stop]


def _grid_xyz(width: int, height: int) -> np.ndarray:
    """(height, width, 3) unit vectors of the pixel centres of a width × height equirectangular grid."""
    azimuth, elevation = pixel_center_directions(width, height)
    return sph_to_cart(azimuth, elevation)


def foa_srp_map(foa: np.ndarray, *, sample_rate: int = SAMPLE_RATE, start_s: float = 0.0,
                duration_s: float | None = None, width: int = 180, height: int = 90, pattern: str = "hypercardioid",
                band_hz: tuple[float, float] | None = None) -> np.ndarray:
    """Beam power over the sphere from FOA audio (4, N) in ACN order W, Y, Z, X (SN3D): (height, width) float64.

    The window is ``[start_s, start_s + duration_s)`` (default: to the end). pattern: 'hypercardioid', 'cardioid'
    or 'max_re'. band_hz: (low, high) frequencies kept, default all.
    """
    if pattern not in BEAM_PATTERNS:
        raise ValueError(f"pattern must be one of {sorted(BEAM_PATTERNS)}, got {pattern!r}")
    x = _window(foa, sample_rate, start_s, duration_s)
    spectrum = np.fft.rfft(x, axis=1)  # (4, bins)
    if band_hz is not None:
        freqs = np.fft.rfftfreq(x.shape[1], 1 / sample_rate)
        spectrum = spectrum[:, (freqs >= band_hz[0]) & (freqs <= band_hz[1])]
    cov = np.real(spectrum @ spectrum.conj().T)  # (4, 4), W Y Z X
    a0, a1 = BEAM_PATTERNS[pattern]
    d = _grid_xyz(width, height)
    gains = np.concatenate([np.full(d.shape[:2] + (1,), a0), a1 * d[..., 1:2], a1 * d[..., 2:3], a1 * d[..., 0:1]],
                           axis=-1)  # (H, W, 4) in W Y Z X order
    return np.einsum("hwi,ij,hwj->hw", gains, cov, gains)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(C, N) -> (C, frames, n_fft // 2 + 1), Hann window of n_fft samples (the signal is zero-padded to one frame)."""
    if x.shape[1] < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - x.shape[1])))
    num_frames = (x.shape[1] - n_fft) // hop + 1
    index = np.arange(num_frames)[:, None] * hop + np.arange(n_fft)[None, :]
    return np.fft.rfft(x[:, index] * np.hanning(n_fft), axis=-1)


def mic_srp_phat_map(mic: np.ndarray, *, sample_rate: int = SAMPLE_RATE, start_s: float = 0.0,
                     duration_s: float | None = None, width: int = 180, height: int = 90, n_fft: int = 1024,
                     hop: int = 512, max_frequency_hz: float | None = None, lag_step: float = 0.02) -> np.ndarray:
    """SRP-PHAT over the sphere from tetrahedral MIC audio (4, N), capsules M1..M4: (height, width) float64.

    Per capsule pair (i, j) the PHAT cross-spectrum ``X_j X_i* / |X_j X_i*|`` is averaged over STFT frames, then
    steered with the delay difference ``τ_j(d) − τ_i(d)`` of every grid direction d and summed over pairs and bins
    up to ``max_frequency_hz`` (default 0.8 × Nyquist). Each pair's response is tabulated on a grid of lags
    ``lag_step`` samples apart and linearly interpolated. Higher is more likely; the values are not a power.
    """
    x = _window(mic, sample_rate, start_s, duration_s)
    spec = _stft(x, n_fft, hop)  # (4, frames, bins)
    if max_frequency_hz is None:
        max_frequency_hz = 0.8 * sample_rate / 2
    num_bins = min(spec.shape[-1], int(max_frequency_hz / sample_rate * n_fft) + 1)
    spec = spec[..., 1:num_bins]  # the DC bin carries no delay information
    omega = 2 * np.pi * np.arange(1, num_bins) / n_fft  # rad per sample
    cross = []
    for i, j in MIC_PAIRS:
        c = spec[j] * np.conj(spec[i])
        cross.append(np.mean(c / np.maximum(np.abs(c), 1e-12), axis=0))
    cross = np.stack(cross)  # (pairs, bins)
    azimuth, elevation = pixel_center_directions(width, height)
    delays = mic_delays_s(azimuth.reshape(-1), elevation.reshape(-1)) * sample_rate  # (D, 4) samples
    pair_i = np.array([i for i, _ in MIC_PAIRS])
    pair_j = np.array([j for _, j in MIC_PAIRS])
    tdoa = delays[:, pair_j] - delays[:, pair_i]  # (D, pairs): how much later j hears d than i
    # Each pair's steered response depends on d only through its lag: tabulate r(l) = Re Σ_k C_k e^{iω_k l} on a
    # fine lag grid over the possible lags and interpolate, instead of steering every direction at every bin.
    max_lag = float(np.abs(tdoa).max()) + 1.0
    lags = np.arange(-max_lag, max_lag + lag_step / 2, lag_step)
    response = np.real(cross @ np.exp(1j * omega[:, None] * lags[None, :]))  # (pairs, lags)
    power = np.zeros(len(tdoa))
    for p in range(len(MIC_PAIRS)):
        power += np.interp(tdoa[:, p], lags, response[p])
    return power.reshape(height, width)


def map_peak_direction(heat: np.ndarray) -> tuple[float, float]:
    """(azimuth_deg, elevation_deg) of the centre of the largest cell of an equirectangular map (H, W)."""
    height, width = heat.shape
    j, i = np.unravel_index(int(np.argmax(heat)), heat.shape)
    azimuth, elevation = equirect_to_sph(i + 0.5, j + 0.5, width, height)
    return float(azimuth), float(elevation)


def smooth_panorama_map(heat: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing of an equirectangular map (H, W) that wraps horizontally across the seam."""
    if sigma_px <= 0:
        return np.asarray(heat, dtype=np.float64)
    return gaussian_filter(np.asarray(heat, dtype=np.float64), sigma=sigma_px, mode=("nearest", "wrap"))


def activity_from_output(output):
    """(T, C) activity from a model output: (T, C) as it is, or multi-ACCDOA (T, 3, 3, C) (or (T, 3, 4, C) with
    distance) as the largest track vector length per class (torch tensors; differentiable)."""
    if output.ndim == 2:
        return output
    if output.ndim == 4 and output.shape[1] == 3 and output.shape[2] in (3, 4):
        return output[:, :, :3].norm(dim=2).amax(dim=1)  # (T, track, xyz, C) -> (T, track, C) -> (T, C)
    raise ValueError(f"model output must be (T, C) activity or (T, 3, 3, C) multi-ACCDOA, got {tuple(output.shape)}")


def gradient_saliency_map(model: Callable, frames, *, class_index: int, time_index: int,
                          frame_index: int | None = None, layout: str = "THWC",
                          sigma_px: float | None = None) -> np.ndarray:
    """Input-gradient heat map of one class's activity at one label frame, over the panorama: (H, W) float32 in [0, 1].

    model: differentiable callable ``model(frames) -> (T, C)`` activity or ``(T, 3, 3, C)`` multi-ACCDOA (wrap a
    batched model in a lambda that adds and removes the batch axis). frames: (T, H, W, 3) for layout 'THWC' or
    (T, 3, H, W) for 'TCHW', a NumPy array or torch tensor; uint8 frames are scaled to float32 in [0, 1], float
    frames are passed as they are. The map is |∂ activity[time_index, class_index] / ∂ frames[frame_index]| summed
    over colour (frame_index defaults to time_index), smoothed with a Gaussian of ``sigma_px`` (default W / 100)
    that wraps at the seam, and divided by its maximum (all zeros when the gradient is zero).
    """
    import torch

    if layout not in ("THWC", "TCHW"):
        raise ValueError(f"layout must be 'THWC' or 'TCHW', got {layout!r}")
    x = torch.as_tensor(frames)
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    x = x.detach().clone().requires_grad_(True)
    activity = activity_from_output(model(x))
    score = activity[time_index, class_index]
    (grad,) = torch.autograd.grad(score, x, allow_unused=True)
    frame_index = time_index if frame_index is None else frame_index
    if grad is None:
        logger.warning("the model output does not depend on the frames: the saliency map is zero")
        size = x.shape[1:3] if layout == "THWC" else x.shape[2:4]
        return np.zeros(tuple(size), dtype=np.float32)
    g = grad[frame_index].abs().sum(dim=-1 if layout == "THWC" else 0).detach().cpu().numpy()  # (H, W)
    heat = smooth_panorama_map(g, g.shape[1] / 100 if sigma_px is None else sigma_px)
    peak = heat.max()
    return (heat / peak if peak > 0 else heat).astype(np.float32)


# Pointwise activation modules that guided backpropagation clamps (YOLO's Conv blocks use SiLU).
GUIDED_ACTIVATIONS = ("ReLU", "ReLU6", "LeakyReLU", "SiLU", "GELU", "ELU", "Hardswish", "Mish")


@contextlib.contextmanager
def guided_backprop(module) -> Iterator[int]:
    """Guided backpropagation inside the block: every activation module of ``module`` (the types named in
    :data:`GUIDED_ACTIVATIONS`) passes only the positive part of its input gradient back, ``max(0, f'(x) · g)``.

    Yields how many activation modules were hooked (a module shared by several layers, as ultralytics' default SiLU
    is, counts once); the hooks are removed when the block ends, also on an error. Functional activations
    (``F.silu`` inside a forward) are not modules and are left as they are. The activations must not be in place.
    """
    def positive_only(_module, grad_input, _grad_output):
        return tuple(None if g is None else g.clamp(min=0) for g in grad_input)

    handles = []
    try:
        for layer in module.modules():
            if type(layer).__name__ in GUIDED_ACTIVATIONS and layer.__module__.startswith("torch.nn"):
                if getattr(layer, "inplace", False):
                    raise ValueError(f"{type(layer).__name__}(inplace=True) cannot take a guided backward hook")
                handles.append(layer.register_full_backward_hook(positive_only))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


MAP_METHODS = ("plain", "guided")


def window_gradient_maps(model, features, frames, *, classes: Sequence[int], window_frames: int, hop_frames: int,
                         video_valid=None, method: str = "plain", sigma_px: float | None = None) -> np.ndarray:
    """Input-gradient maps of an audio-visual model over a clip, window by window: (T, K, H, W) float32, K =
    ``len(classes)``, not normalised (0 where a frame has no video).

    model: a registered audio-visual model (``model(features (B, C, T_feat, F), frames=(B, T, 3, H, W),
    visual_mask=(B, T)) -> (B, T, 3, 3, 13)``), in eval mode. features: (C, T_feat, F) standardised features of the
    whole clip (T = ceil(T_feat / 5)); frames: (T, H, W, 3) uint8 at label rate; video_valid: (T,) bool (default all
    True). The clip is covered by the windows of inference (``window_frames`` label frames every ``hop_frames``,
    :func:`av_seld.training.inference.window_starts`; past the clip's end: zero features, no video).

    What a map means: in a window w, ``S_c = Σ_t activity_c(t)`` sums class c's activity (the longest track vector,
    :func:`activity_from_output`) over the window's frames inside the clip, and the map of label frame t is
    ``|∂ S_c / ∂ frame_t|`` summed over colour: how much each pixel of frame t moves the window's total evidence for
    c — including through the neighbouring frames that see frame t through the model's temporal layers, not only
    at time t (one backward pass per class and window instead of one per frame). Where windows overlap the maps of
    a frame are averaged. Each map is then smoothed with a Gaussian of ``sigma_px`` (default W / 100) that wraps at
    the seam. The gradients reach the frames through frozen encoder weights, which get none themselves.

    method: ``"plain"`` gradients, or ``"guided"``: :func:`guided_backprop` on the model's visual encoder (the
    activations between the frames and the visual tokens).
    """
    import torch

    from av_seld.training.inference import window_starts

    if method not in MAP_METHODS:
        raise ValueError(f"method must be one of {MAP_METHODS}, got {method!r}")
    if not getattr(model, "uses_video", False):
        raise ValueError(f"{type(model).__name__} does not use video: it has no gradient with respect to frames")
    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {tuple(frames.shape)}")
    num_frames, height, width = frames.shape[:3]
    valid = (torch.ones(num_frames, dtype=torch.bool) if video_valid is None
             else torch.as_tensor(video_valid, dtype=torch.bool))
    classes = [int(c) for c in classes]
    step = FEATURE_FRAMES_PER_LABEL_FRAME
    starts = window_starts(num_frames, window_frames, hop_frames)
    device = next(model.parameters()).device
    total = np.zeros((num_frames, len(classes), height, width), dtype=np.float64)
    count = np.zeros(num_frames, dtype=np.int64)
    guided = guided_backprop(getattr(model, "visual", model)) if method == "guided" else contextlib.nullcontext()
    with guided:
        for start in starts:
            inside = min(window_frames, num_frames - start)  # the window's frames that lie in the clip
            feats = features[:, start * step:(start + window_frames) * step]
            feats = torch.nn.functional.pad(feats, (0, 0, 0, window_frames * step - feats.shape[1]))
            x = torch.zeros((window_frames, height, width, 3), dtype=torch.float32)
            x[:inside] = frames[start:start + inside].float() / 255 if frames.dtype == torch.uint8 \
                else frames[start:start + inside].float()
            mask = torch.zeros(window_frames, dtype=torch.bool)
            mask[:inside] = valid[start:start + inside]
            x = x.to(device).requires_grad_(True)
            with torch.enable_grad():
                output = model(feats[None].to(device), frames=x.permute(0, 3, 1, 2)[None],
                               visual_mask=mask[None].to(device))[0]
                activity = activity_from_output(output)[:inside]  # (inside, 13)
                for k, c in enumerate(classes):
                    (grad,) = torch.autograd.grad(activity[:, c].sum(), x, retain_graph=k + 1 < len(classes),
                                                  allow_unused=True)
                    if grad is not None:
                        total[start:start + inside, k] += grad[:inside].abs().sum(dim=-1).cpu().numpy()
            count[start:start + inside] += 1
    sigma = width / 100 if sigma_px is None else sigma_px
    maps = total / np.maximum(count, 1)[:, None, None, None]
    for t in range(num_frames):
        for k in range(len(classes)):
            maps[t, k] = smooth_panorama_map(maps[t, k], sigma)
    return maps.astype(np.float32)


@dataclasses.dataclass
class ClipGradientMaps:
    """What :func:`clip_gradient_maps` returns for one clip.

    maps: (T, K, H, W) float32 from :func:`window_gradient_maps`, at the model's frame size; classes: the K class
    indices; activity: (T, 13) the predicted activity (longest track vector of the prediction path's output);
    active: (T, 13) bool, activity at or above the checkpoint's per-class thresholds; video_valid: (T,) bool.
    """

    maps: np.ndarray
    classes: list[int]
    activity: np.ndarray
    active: np.ndarray
    video_valid: np.ndarray


def clip_gradient_maps(model, audio, video, *, classes: Sequence[int] | None = None,
                       method: str = "plain") -> ClipGradientMaps:
    """Gradient maps of one clip through the prediction path of ``av-seld infer``.

    model: an audio-visual :class:`av_seld.training.predict.LoadedModel` (``load_for_inference``); audio: (4, N)
    float at 24 kHz in its format (torch or NumPy); video: the clip's 360° mp4. The prediction comes from
    :func:`av_seld.training.predict.predict_audio` (features, frames at label rate, 50 %-overlapping windows); the
    maps from :func:`window_gradient_maps` on the same features, frames and windows. classes: default the classes
    predicted active in at least one label frame, most active first.
    """
    import torch

    from av_seld.training.predict import HOP_FRACTION, predict_audio, read_clip_frames

    if not model.is_audio_visual:
        raise InputError(model.path, "an audio-only checkpoint has no gradient with respect to video frames")
    video = Path(video)
    if not video.is_file():
        raise InputError(video, "video not found")
    audio = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    output = predict_audio([model], audio, video=video)  # (T, 3, 3, 13)
    activity = np.linalg.norm(output, axis=2).max(axis=1)  # (T, 13)
    active = activity >= model.thresholds[None, :]
    if classes is None:
        seen = np.flatnonzero(active.any(axis=0))
        classes = [int(c) for c in seen[np.argsort(-activity[:, seen].sum(axis=0), kind="stable")]]
    frames, valid = read_clip_frames(video, output.shape[0], model.frame_size)
    device = next(model.model.parameters()).device
    features = model.extractor(audio.to(device)).cpu()
    hop = max(1, int(round(model.window_frames * HOP_FRACTION)))
    maps = window_gradient_maps(model.model, features, frames, classes=classes, window_frames=model.window_frames,
                                hop_frames=hop, video_valid=valid, method=method)
    return ClipGradientMaps(maps, list(classes), activity, active, valid.numpy())


def acoustic_maps(audio: np.ndarray, audio_format: str, *, num_frames: int | None = None, width: int = 180,
                  height: int = 90) -> np.ndarray:
    """One acoustic map per 100 ms label frame of a clip: (T, height, width) float64.

    audio: (4, N) at 24 kHz, FOA (ACN W, Y, Z, X) or MIC (M1..M4) as ``audio_format`` says; frame t's map is
    :func:`foa_srp_map` (hypercardioid) or :func:`mic_srp_phat_map` of samples ``[2400 t, 2400 (t + 1))``.
    num_frames: default every label frame the audio touches (a last partial frame included).
    """
    if audio_format not in ("foa", "mic"):
        raise ValueError(f"audio_format must be 'foa' or 'mic', got {audio_format!r}")
    srp = foa_srp_map if audio_format == "foa" else mic_srp_phat_map
    hop = int(round(LABEL_HOP_S * SAMPLE_RATE))
    num_frames = -(-audio.shape[1] // hop) if num_frames is None else num_frames
    out = np.zeros((num_frames, height, width))
    for t in range(min(num_frames, -(-audio.shape[1] // hop))):
        out[t] = srp(audio[:, t * hop:(t + 1) * hop], width=width, height=height)
    return out


def peak_hits(heat: np.ndarray, azimuth_deg, elevation_deg, max_deg: float = 20.0) -> bool:
    """Whether the peak of a map (H, W) (:func:`map_peak_direction`) lies within ``max_deg`` of any of the target
    directions (degrees, arrays of the same length; none: False)."""
    azimuth_deg, elevation_deg = np.atleast_1d(azimuth_deg), np.atleast_1d(elevation_deg)
    if azimuth_deg.size == 0:
        return False
    peak = map_peak_direction(heat)
    return bool(np.min(angular_distance_deg(*peak, azimuth_deg, elevation_deg)) <= max_deg)


def random_cell_hit_rate(height: int, width: int, azimuth_deg, elevation_deg, max_deg: float = 20.0) -> float:
    """The chance that a cell drawn uniformly from a height × width equirectangular grid lies within ``max_deg`` of
    any target direction: the fraction of cells that do. Cells crowd towards the poles, so this is not the solid-angle
    fraction (a cap of 20° is 3.0 % of the sphere, but near a pole it holds more than 3 % of the cells)."""
    azimuth_deg, elevation_deg = np.atleast_1d(azimuth_deg), np.atleast_1d(elevation_deg)
    if azimuth_deg.size == 0:
        return 0.0
    grid_az, grid_el = pixel_center_directions(width, height)
    distance = angular_distance_deg(grid_az[..., None], grid_el[..., None], azimuth_deg, elevation_deg)
    return float(np.mean(distance.min(axis=-1) <= max_deg))


def draw_map_overlay(frame_rgb: np.ndarray, heat: np.ndarray, *, alpha: float = 0.5,
                     colormap: int = cv2.COLORMAP_JET, mark_peak: bool = True) -> np.ndarray:
    """Blend a map (h, w) of any scale over an RGB panorama (H, W, 3) uint8: returns a new (H, W, 3) uint8 RGB frame.

    The map is min-max normalised, resized to the frame, coloured with ``colormap``, blended with weight ``alpha``,
    and its peak direction (:func:`map_peak_direction`) marked with a white ring.
    """
    from av_seld.viz.overlay import draw_marker

    height, width = frame_rgb.shape[:2]
    heat = np.asarray(heat, dtype=np.float64)
    low, high = float(heat.min()), float(heat.max())
    norm = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    norm = cv2.resize(norm.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.cvtColor(cv2.applyColorMap((norm * 255).astype(np.uint8), colormap), cv2.COLOR_BGR2RGB)
    out = cv2.addWeighted(np.ascontiguousarray(frame_rgb), 1 - alpha, coloured, alpha, 0)
    if mark_peak:
        azimuth, elevation = map_peak_direction(heat)
        draw_marker(out, azimuth, elevation, (255, 255, 255), filled=False)
    return out


def _caption(image: np.ndarray, text: str) -> None:
    """Write ``text`` in the top-left corner of an RGB image, in place (white with a dark outline)."""
    scale = max(0.35, image.shape[1] / 1280)
    origin = (4, int(14 * scale / 0.35 * 0.9) + 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def write_map_overlays(maps: np.ndarray, frames: np.ndarray, valid: np.ndarray, out_dir, *,
                       captions: Sequence[str] | None = None, video_path=None, alpha: float = 0.5) -> list[Path]:
    """Draw map t over frame t (:func:`draw_map_overlay`) for every label frame with video and write
    ``OUT_DIR/NNNN.png`` (NNNN = label frame); with ``video_path`` also an mp4 of every label frame at 10 fps
    (:class:`av_seld.io.video.VideoWriter`; frames without video are black), so video time is clip time. Files are
    written atomically. Returns the PNG paths.

    maps: (T, h, w) any scale; frames: (T, H, W, 3) uint8 RGB at label rate; valid: (T,) bool; captions: T texts.
    """
    from av_seld.io.video import VideoWriter
    from av_seld.timing import LABEL_FRAMES_PER_SECOND
    from av_seld.utils.atomic import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    written = []
    writer = (VideoWriter(video_path, LABEL_FRAMES_PER_SECOND, (width, height)) if video_path is not None
              else contextlib.nullcontext())
    with writer:
        for t in range(len(maps)):
            if valid[t]:
                image = draw_map_overlay(frames[t], maps[t], alpha=alpha)
            else:
                image = np.zeros_like(frames[t])
            if captions is not None:
                _caption(image, captions[t] if valid[t] else f"{captions[t]}  (no video)")
            if valid[t]:
                path = out_dir / f"{t:04d}.png"
                with atomic_path(path) as tmp:
                    if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                        raise OSError(f"{path}: OpenCV could not write the PNG")
                written.append(path)
            if video_path is not None:
                writer.write(image)
    return written
