"""Localization maps: acoustic maps peak at a rendered source's direction; gradient maps peak where a hand-made
model looks; overlays mark the peak."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment.spatial import render_foa, render_mic
from av_seld.geometry import angular_distance_deg, equirect_pixel, pixel_center_directions
from av_seld.timing import SAMPLE_RATE
from av_seld.viz.maps import (
    acoustic_maps,
    draw_map_overlay,
    foa_srp_map,
    gradient_saliency_map,
    map_peak_direction,
    mic_srp_phat_map,
    peak_hits,
    random_cell_hit_rate,
    smooth_panorama_map,
)

DIRECTIONS = [(60.0, 20.0), (-179.0, -30.0), (120.0, 70.0), (-45.0, -5.0), (170.0, 0.0), (0.0, -60.0)]


def noise(seconds=0.5, seed=0):
    return np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))


@pytest.mark.parametrize("pattern", ["hypercardioid", "cardioid", "max_re"])
@pytest.mark.parametrize("azimuth, elevation", DIRECTIONS)
def test_foa_map_peaks_at_the_source(azimuth, elevation, pattern):
    heat = foa_srp_map(render_foa(noise(), azimuth, elevation), pattern=pattern)
    assert heat.shape == (90, 180)
    assert angular_distance_deg(azimuth, elevation, *map_peak_direction(heat)) < 3.0  # 2° grid


@pytest.mark.parametrize("azimuth, elevation", DIRECTIONS)
def test_mic_srp_phat_map_peaks_at_the_source(azimuth, elevation):
    heat = mic_srp_phat_map(render_mic(noise(), azimuth, elevation))
    assert angular_distance_deg(azimuth, elevation, *map_peak_direction(heat)) < 3.0


@pytest.mark.parametrize("fmt", ["foa", "mic"])
def test_maps_follow_the_time_window(fmt):
    render, srp = (render_foa, foa_srp_map) if fmt == "foa" else (render_mic, mic_srp_phat_map)
    first, second = (-100.0, 10.0), (30.0, -40.0)
    audio = np.concatenate([render(noise(0.5, 1), *first), render(noise(0.5, 2), *second)], axis=1)
    early = map_peak_direction(srp(audio, start_s=0.0, duration_s=0.5, width=120, height=60))
    late = map_peak_direction(srp(audio, start_s=0.5, duration_s=0.5, width=120, height=60))
    assert angular_distance_deg(*first, *early) < 4.5 and angular_distance_deg(*second, *late) < 4.5
    with pytest.raises(ValueError, match="outside"):
        srp(audio, start_s=2.0, duration_s=0.5)


def blob_model(centres, height, width, sigma_px=3.0, layout="THWC", accdoa=False):
    """activity[t, c] = sigmoid(Σ frames[t] · mask_c): the gradient wrt frame t is σ' · mask_c, which peaks at
    class c's blob centre (row, column); masks wrap around the seam like the sphere."""
    rows, cols = np.mgrid[0:height, 0:width]
    masks = []
    for row, col in centres:
        dc = (cols - col + width / 2) % width - width / 2
        masks.append(np.exp(-((rows - row) ** 2 + dc**2) / (2 * sigma_px**2)))
    masks = torch.tensor(np.stack(masks), dtype=torch.float32)  # (C, H, W)

    def model(frames):
        grey = frames.mean(dim=-1) if layout == "THWC" else frames.mean(dim=1)  # (T, H, W)
        activity = torch.sigmoid(torch.einsum("thw,chw->tc", grey, masks) / masks.sum(dim=(1, 2)) - 0.5)
        if not accdoa:
            return activity
        direction = torch.tensor([0.6, 0.0, 0.8])  # unit vector: track 0's length is the activity
        track0 = activity[:, None, None, :] * direction[None, None, :, None]  # (T, 1, 3, C)
        silent = torch.zeros(activity.shape[0], 2, 3, activity.shape[1])  # tracks 1 and 2
        return torch.cat([track0, silent], dim=1)  # (T, 3, 3, C)

    return model


@pytest.mark.parametrize("layout", ["THWC", "TCHW"])
@pytest.mark.parametrize("accdoa", [False, True])
def test_gradient_map_peaks_where_the_model_looks(layout, accdoa):
    height, width = 32, 64
    centres = [(10, 20), (24, 50), (16, 0)]  # class 2 straddles the seam
    model = blob_model(centres, height, width, layout=layout, accdoa=accdoa)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, height, width, 3), dtype=np.uint8)
    if layout == "TCHW":
        frames = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    for c, (row, col) in enumerate(centres):
        heat = gradient_saliency_map(model, frames, class_index=c, time_index=2, layout=layout, sigma_px=1.0)
        assert heat.shape == (height, width) and heat.max() == pytest.approx(1.0)
        j, i = np.unravel_index(np.argmax(heat), heat.shape)
        assert abs(j - row) <= 1 and min(abs(i - col), width - abs(i - col)) <= 1
    if accdoa:  # the gradient of another time step's activity does not reach frame 2
        heat = gradient_saliency_map(model, frames, class_index=0, time_index=1, frame_index=2, layout=layout)
        assert not heat.any()


def test_gradient_map_rejects_unknown_outputs():
    with pytest.raises(ValueError, match="multi-ACCDOA"):
        gradient_saliency_map(lambda x: x.sum() * torch.ones(2, 3, 4), np.zeros((2, 8, 16, 3), np.float32),
                              class_index=0, time_index=0)


def test_smoothing_wraps_across_the_seam():
    heat = np.zeros((20, 40))
    heat[10, 0] = 1.0
    smooth = smooth_panorama_map(heat, 2.0)
    assert smooth[10, 39] == pytest.approx(smooth[10, 1]) and smooth[10, 39] > 0.1 * smooth[10, 0]


def test_overlay_marks_the_peak():
    height, width = 64, 128
    azimuth, elevation = pixel_center_directions(180, 90)
    heat = -angular_distance_deg(azimuth, elevation, -150.0, 30.0)  # peaks at (-150, 30)
    frame = np.full((height, width, 3), 40, np.uint8)
    out = draw_map_overlay(frame, heat, alpha=0.6)
    assert out.shape == frame.shape and out.dtype == np.uint8
    i, j = equirect_pixel(*map_peak_direction(heat), width, height)
    window = out[j - 8:j + 9, i - 8:i + 9]
    assert np.any(np.all(window >= 220, axis=-1))  # the (antialiased) white ring
    # Hot (red in JET) near the peak, cold (blue) opposite it.
    assert out[j, i, 0] > out[j, i, 2]
    far_i, far_j = equirect_pixel(30.0, -30.0, width, height)
    assert out[far_j, far_i, 2] > out[far_j, far_i, 0]


@pytest.mark.parametrize("fmt", ["foa", "mic"])
def test_acoustic_maps_peak_at_a_plane_wave_every_label_frame(fmt):
    azimuth, elevation = -120.0, 25.0
    render = render_foa if fmt == "foa" else render_mic
    audio = render(noise(0.45, 3), azimuth, elevation)  # 4 whole label frames and a partial fifth
    maps = acoustic_maps(audio, fmt, width=120, height=60)
    assert maps.shape == (5, 60, 120)
    for heat in maps:
        assert angular_distance_deg(azimuth, elevation, *map_peak_direction(heat)) < 4.5  # 3° grid
        assert peak_hits(heat, [40.0, azimuth], [0.0, elevation], max_deg=20.0)
        assert not peak_hits(heat, [40.0], [0.0], max_deg=20.0)


def test_random_cell_hit_rate_counts_grid_cells():
    # 2° grid: the cells within 20° of the north pole are the 10 rows whose centres lie at 71°..89°: 1/9 of them.
    assert random_cell_hit_rate(90, 180, 0.0, 90.0) == pytest.approx(1 / 9)
    # On the equator a 20° cap spans about π·20² square degrees of the 360 × 180 grid.
    assert random_cell_hit_rate(90, 180, 30.0, 0.0) == pytest.approx(np.pi * 400 / 64800, rel=0.05)
    # Two far-apart targets add up; no target never hits.
    both = random_cell_hit_rate(90, 180, [30.0, -150.0], [0.0, 0.0])
    assert both == pytest.approx(2 * random_cell_hit_rate(90, 180, 30.0, 0.0))
    assert random_cell_hit_rate(90, 180, [], []) == 0.0 and not peak_hits(np.ones((4, 8)), [], [])
