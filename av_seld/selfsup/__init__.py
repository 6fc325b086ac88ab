"""Self-supervised audio-visual pre-training of the visual encoder: 4-channel audio + 360° video, no labels.

The microphones already say where sound comes from; the visual encoder learns, from the frame alone, where the
sounding objects are.

**Audio side (the spatial model).** Every 100 ms label frame gets a set of time–frequency bins, each with a direction
of arrival ``d`` (unit vector) and a weight ``w``:

- FOA: the active intensity vector ``Re(W* · [X, Y, Z])`` of each STFT bin (20 ms hop, 5 STFT frames per label
  frame, 100 Hz–8 kHz); direction = the vector normalised, weight = its length times the directness of its
  neighbourhood (|mean intensity| / mean energy over the label frame's 5 STFT frames and 3 adjacent bins: 1 for a
  plane wave, near 0 for diffuse sound, as DirAC's 1 − diffuseness).
- MIC: per bin, the least-squares plane-wave direction of the three phase differences to M1 on the free-field
  tetrahedron (200 Hz–2 kHz, below spatial aliasing); weight = energy × how close the solution is to a unit
  vector (a plane wave gives exactly one) × the directness of its neighbourhood (as for FOA).

Only the ``num_bins`` heaviest bins of each frame are kept. Nothing here has parameters, and all of it is torch.

**Visual side.** :class:`~av_seld.models.visual.YoloVisualEncoder` (fine-tuned, not frozen: the point is to change
the YOLO features themselves, so that they also help when cached and frozen in the audio-visual model) gives one token
per cell of a ``map_grid`` (default 8 × 16, 22.5° cells); a small MLP turns each token into a logit. The softmax over
cells, ``V``, is the frame's map of sounding-object candidates.

**Objective: the likelihood of the audio directions under a mixture whose components are the visual candidates.**
Each bin's direction is drawn from

    p(d) = π₀ · 1/(4π) + (1 − π₀) · Σ_k V_k · vMF(d; c_k, κ)

(``c_k`` the cell centres, vMF the von Mises–Fisher density with concentration κ, a uniform component for diffuse
sound, reverberation and sources outside the frame's candidates). The loss is minus the weighted mean over bins of
``log p(d) − log(1/(4π))``: the information, in nats per bin, that the visual map adds about where sound arrives from
over a uniform guess (0 = uninformative). Its gradient pushes ``V`` towards the posterior responsibilities
``V_k vMF(d; c_k) / Σ_j V_j vMF(d; c_j)``: the audio checks which of the proposed candidates actually sound (an
EM-like step), rather than copying a noisy audio map. With several sources at once, each bin belongs to one of them
(W-disjoint orthogonality), so the mixture explains multiple sources naturally. The audio side learns κ (how sharp the
directions are in this data: reverberation widens them) and a gate ``π₀ = σ(MLP(relative log energy, directness))``
that says whether the frame has an active, localisable source at all. The gate cannot switch the task off: a uniform
explanation scores 0, so any frame with real directional energy rewards a visual map that explains it.

Why this and not a plain KL between an audio map and ``V``: the mixture is a proper likelihood of the microphone
signals' directions, is sharp where the audio is sharp (no blur from a fixed map kernel), and lets silent frames,
diffuse noise and visible-but-silent objects cost nothing instead of teaching the visual map noise.

Shapes: frames (B, 3, H, W) uint8 or float; directions (B, K, 3); weights (B, K); stats (B, 2); logits (B, N) with
N = rows·cols in row-major cell order (cell centres from :func:`av_seld.geometry.pixel_center_directions`).

The parts: :mod:`~av_seld.selfsup.spatial` (audio side), :mod:`~av_seld.selfsup.model` (visual side, checkpoints,
export), :mod:`~av_seld.selfsup.data` (cache and dataset), :mod:`~av_seld.selfsup.train` (the training run).
"""

from av_seld.selfsup.data import CACHE_DIRNAME, SelfSupDataset, prepare_cache
from av_seld.selfsup.model import (DEFAULT_FRAME_SIZE, DEFAULT_MAP_GRID, MODEL_NAME, SelfSupVisualModel,
                                   export_yolo_weights, load_selfsup_model)
from av_seld.selfsup.spatial import (LOG_UNIFORM, AudioSide, SpatialBins, audio_direction_map, cell_directions,
                                     foa_spatial_bins, log_vmf, mic_spatial_bins, spatial_bins)
from av_seld.selfsup.train import EXPORT_NAME, PretrainResult, evaluate_loss, pretrain_visual

__all__ = ["CACHE_DIRNAME", "DEFAULT_FRAME_SIZE", "DEFAULT_MAP_GRID", "EXPORT_NAME", "LOG_UNIFORM", "MODEL_NAME",
           "AudioSide", "PretrainResult", "SelfSupDataset", "SelfSupVisualModel", "SpatialBins",
           "audio_direction_map", "cell_directions", "evaluate_loss", "export_yolo_weights", "foa_spatial_bins",
           "load_selfsup_model", "log_vmf", "mic_spatial_bins", "pretrain_visual", "prepare_cache", "spatial_bins"]
