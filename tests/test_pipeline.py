"""The sample pipeline: its stage order and split point, the stages composed in that order, and the cached and online
routes giving the same standardised features (and the same draws) for the same audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment.acs import ChannelSwap
from av_seld.data.dataset import SeldDataset, collate_samples, load_cache_stats
from av_seld.data.feature_cache import FeatureStats, prepare_feature_cache
from av_seld.data.pipeline import (DEVICE_SPLIT, STAGES, FeatureFrontEnd, SamplePipeline, SpecAugment, Standardize,
                                   acs_policy, rotation_indices)
from av_seld.features import compute_features
from av_seld.io.audio import write_wav
from av_seld.io.labels import Events, write_reference_csv

SR = 24_000
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cached_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline") / "data"
    rng = np.random.default_rng(3)
    name = "fold1_room1_mix001"
    write_wav(root / "foa_dev" / "dev-train" / f"{name}.wav", 0.1 * rng.standard_normal((4, int(4.35 * SR))))
    write_reference_csv(root / "metadata_dev" / "dev-train" / f"{name}.csv",
                        Events.from_arrays([2, 3, 25, 41], [0, 0, 4, 7], [0, 0, 1, 2], [90, 80, -45, 170],
                                           [0, 10, 30, -20]))
    job = prepare_feature_cache(root, audio_format="foa", cache_dir=root.parent / "cache")
    job.run()
    return root, job.cache_dir


def _stats(kind: str = "foa_logmel_iv", seed: int = 0) -> FeatureStats:
    rng = np.random.default_rng(seed)
    return FeatureStats(kind, rng.normal(-20, 5, (7, 64)), rng.uniform(2, 6, (7, 64)), 100)


def test_stage_order_and_the_declared_split_point():
    assert STAGES == ("read", "channel_swap", "featurize", "standardize", "spec_augment")
    assert DEVICE_SPLIT == "featurize"
    in_loader = SamplePipeline("foa_logmel_iv")
    assert in_loader.loader_stages == STAGES and in_loader.device_stages == ()
    online = SamplePipeline("foa_logmel_iv", on_device=True)
    assert online.loader_stages == ("read", "channel_swap")
    assert online.device_stages == ("featurize", "standardize", "spec_augment")


def test_the_stages_compose_in_order_swap_standardize_then_mask():
    """A sample of raw features comes out as mask(standardize(swap(raw))) — not swap(standardize(raw)), which
    mixes channels of different statistics — with the swap and the masks drawn from the one generator."""
    rng = np.random.default_rng(1)
    raw = torch.from_numpy(rng.normal(-20, 5, (7, 50, 64)).astype(np.float32))
    label_mask = torch.tensor([True] * 8 + [False] * 2)
    target = torch.zeros((10, 6, 4, 13))
    stats = _stats()
    masks = SpecAugment(time_masks=1, freq_masks=1)
    pipeline = SamplePipeline("foa_logmel_iv", stats=stats, acs=acs_policy("foa", "foa_logmel_iv"),
                              spec_augment=masks)
    out = pipeline.loader({"features": raw, "target": target, "label_mask": label_mask},
                          np.random.default_rng([4, 0, 2]))

    draws = np.random.default_rng([4, 0, 2])
    swap = ChannelSwap("foa", int(draws.integers(16)))
    assert out["acs_index"] == swap.index
    standardised = (swap.features(raw.numpy(), "foa_logmel_iv") - stats.mean[:, None]) / stats.std[:, None]
    standardised[:, 40:] = 0  # the padding mask: feature frames of the two padded label frames
    mask = masks.mask(50, 64, draws).numpy()
    expected = np.where(mask[None], 0.0, standardised)
    np.testing.assert_allclose(out["features"].numpy(), expected, rtol=1e-5, atol=1e-5)
    wrong_order = swap.features((raw.numpy() - stats.mean[:, None]) / stats.std[:, None], "foa_logmel_iv")
    assert not np.allclose(np.where(mask[None], 0.0, wrong_order)[:, :40], expected[:, :40], atol=1e-2)


def test_standardize_and_the_front_end_of_inference():
    audio = np.random.default_rng(2).standard_normal((4, 3 * SR)).astype(np.float32)
    raw = compute_features(audio, "foa_logmel_iv")
    mean, std = raw.mean(axis=1), raw.std(axis=1)
    front_end = FeatureFrontEnd("foa_logmel_iv", mean=mean, std=std)
    standardised = front_end(torch.from_numpy(audio)).numpy()
    np.testing.assert_allclose(standardised.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(standardised.std(axis=1), 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="do not match statistics"):
        Standardize(mean[:4], std[:4])(torch.from_numpy(raw))
    with pytest.raises(ValueError, match="both mean and std"):
        Standardize(mean, None)


def test_rotations_only_for_a_frozen_visual_grid():
    assert rotation_indices("foa") == (0, 2, 3, 6)
    assert rotation_indices("foa", grid_width=10) == (0, 6)  # a quarter turn would split cells
    assert acs_policy("foa", "foa_logmel_iv", frozen_visual_grid_width=8).policy.indices == (0, 2, 3, 6)
    assert acs_policy("foa", "foa_logmel_iv").policy.indices == tuple(range(16))
    assert len(acs_policy("mic", "mic_salsalite").policy.indices) == 8  # the phase period makes every map exact
    with pytest.raises(ValueError, match="not rotations"):
        acs_policy("foa", "foa_logmel_iv", frozen_visual_grid_width=8, indices=(1,))


@pytest.mark.parametrize("acs", [False, True])
def test_cached_and_online_routes_give_the_same_standardised_features(cached_root, acs):
    """The same chunks through cached features (all stages in the loader) and through raw audio (featurize,
    standardize and masks on the 'device'): the same swap, the same masks, the same numbers (on the frames whose
    window lies inside the chunk and the clip)."""
    root, cache = cached_root
    stats = load_cache_stats([cache])
    common = dict(chunk_s=2.0, stats=stats, acs=acs, seed=11, spec_augment=SpecAugment(time_masks=1, freq_masks=1))
    cached = SeldDataset(root, cache_dirs=[cache], **common)
    online = SeldDataset(root, output="audio", **common)
    for epoch in (0, 1):
        cached.set_epoch(epoch)
        online.set_epoch(epoch)
        reference = collate_samples([cached[i] for i in range(len(cached))])
        batch = collate_samples([online[i] for i in range(len(online))])
        assert "audio" in batch and "spec_mask" in batch
        same = online.pipeline.device(batch)
        assert same is batch and "audio" not in batch and "spec_mask" not in batch
        if acs:
            assert torch.equal(batch["acs_index"], reference["acs_index"])
        torch.testing.assert_close(batch["target"], reference["target"])
        interior = _interior_frames(batch["start_frame"], num_samples=int(4.35 * SR))
        torch.testing.assert_close(batch["features"].movedim(2, 1)[interior],
                                   reference["features"].movedim(2, 1)[interior], atol=1e-3, rtol=1e-3)
        assert torch.equal(batch["features"] == 0, reference["features"] == 0)  # masks and padding alike


def _interior_frames(starts: torch.Tensor, num_samples: int, chunk_frames: int = 20) -> torch.Tensor:
    """(B, 5 T) bool: feature frames whose 1024-sample window lies inside both the chunk and the clip. The others
    see a neighbouring chunk (cached) or silence whose log-mel floor (80 dB below the maximum of what was computed
    in one go: the clip, or the chunk) differs between the routes."""
    j = torch.arange(5 * chunk_frames)
    centre = 480 * (5 * starts[:, None] + j)
    return (j >= 2) & (480 * j + 512 <= 2400 * chunk_frames) & (centre + 512 <= num_samples)


def test_video_dropout_masks_whole_samples_first_and_leaves_the_other_draws_alone_when_off():
    """video_dropout draws first from the sample's generator and masks the whole chunk's video; at 0 it draws nothing,
    so every other draw (the channel swap here) is what it was without it."""
    rng = np.random.default_rng(5)
    grid = torch.from_numpy(rng.normal(size=(10, 4, 2, 8)).astype(np.float32))

    def sample():
        return {"features": torch.from_numpy(rng.normal(-20, 5, (7, 50, 64)).astype(np.float32)),
                "target": torch.zeros((10, 6, 4, 13)), "label_mask": torch.ones(10, dtype=torch.bool),
                "visual_features": grid.clone(), "video_valid": torch.ones(10, dtype=torch.bool)}

    acs = acs_policy("foa", "foa_logmel_iv", frozen_visual_grid_width=8)
    off = SamplePipeline("foa_logmel_iv", stats=_stats(), acs=acs, video_dropout=0.0)
    half = SamplePipeline("foa_logmel_iv", stats=_stats(), acs=acs, video_dropout=0.5)
    always = SamplePipeline("foa_logmel_iv", stats=_stats(), acs=acs, video_dropout=1.0)
    dropped = []
    for index in range(40):
        one = sample()
        a = off.loader(dict(one), np.random.default_rng([0, 0, index]))
        assert bool(a["video_valid"].all())
        draws = np.random.default_rng([0, 0, index])
        assert a["acs_index"] == acs.policy.indices[int(draws.integers(4))]  # the swap drew first
        h = half.loader(dict(one), np.random.default_rng([0, 0, index]))
        draws = np.random.default_rng([0, 0, index])
        drop = draws.random() < 0.5
        assert bool((~h["video_valid"]).all()) == drop and bool(h["video_valid"].all()) == (not drop)
        assert h["acs_index"] == acs.policy.indices[int(draws.integers(4))]
        dropped.append(drop)
        assert not bool(always.loader(dict(one), np.random.default_rng([0, 0, index]))["video_valid"].any())
    assert 10 < sum(dropped) < 30
    with pytest.raises(ValueError, match="video_dropout"):
        SamplePipeline("foa_logmel_iv", video_dropout=1.5)


def test_video_dropout_is_a_checked_recipe_key():
    from pathlib import Path

    from av_seld.config import ConfigError, load_config

    recipe = Path(__file__).resolve().parents[1] / "configs" / "small_data.yaml"
    assert load_config(recipe).data.video_dropout == 0.0
    assert load_config(recipe, ["data.video_dropout=0.3"]).data.video_dropout == 0.3
    with pytest.raises(ConfigError, match="data.video_dropout: must be at most 1.0"):
        load_config(recipe, ["data.video_dropout=1.5"])
