"""SeldDataset: chunking and padding, targets against the CSV, cache vs on-the-fly features, video, cached visual
features, channel swapping, SpecAugment masks, determinism across epochs and DataLoader workers, several roots,
collate. The stage order itself is pinned in tests/test_pipeline.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from av_seld import timing
from av_seld.data.dataset import SeldDataset, collate_samples, load_cache_stats, num_chunks
from av_seld.data.pipeline import SpecAugment
from av_seld.data.feature_cache import prepare_feature_cache
from av_seld.errors import InputError
from av_seld.io.audio import write_wav
from av_seld.io.labels import Events, write_reference_csv
from av_seld.targets import events_to_adpit, events_to_multi_accdoa

SR = 24_000
VIDEO_FPS, VIDEO_FRAMES = 30.0, 90  # 3 s of video for a 4.35 s clip: label frames 30..43 have no frame


def _events_a() -> Events:
    rows = [(f, 0, 0, 90, 0) for f in range(44)]  # a talker to the left for the whole clip
    rows += [(12, 3, 1, -45, 30), (12, 3, 2, 45, 0)]  # two telephones at once: ADPIT group B
    rows += [(41, 5, 3, 180, -20)]  # in the last, padded chunk
    rows.sort()
    return Events.from_arrays(*zip(*rows))


def _write_video(path, num_frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (64, 32))
    assert writer.isOpened()
    for k in range(num_frames):
        writer.write(np.full((32, 64, 3), 2 * k, np.uint8))  # frame k is grey level 2k
    writer.release()


def _write_root(root, *, fold: int = 1, with_video: bool = True):
    rng = np.random.default_rng(fold)
    a, b = f"fold{fold}_room1_mix001", f"fold{fold}_room1_mix002"
    write_wav(root / "foa_dev" / "dev-train" / f"{a}.wav", 0.1 * rng.standard_normal((4, int(4.35 * SR))))
    write_wav(root / "foa_dev" / "dev-train" / f"{b}.wav", 0.1 * rng.standard_normal((4, 2 * SR)))
    write_reference_csv(root / "metadata_dev" / "dev-train" / f"{a}.csv", _events_a())
    write_reference_csv(root / "metadata_dev" / "dev-train" / f"{b}.csv", Events.from_arrays([5], [1], [0], [-90],
                                                                                            [10]))
    if with_video:
        (root / "video_dev" / "dev-train").mkdir(parents=True)
        _write_video(root / "video_dev" / "dev-train" / f"{a}.mp4", VIDEO_FRAMES)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return _write_root(tmp_path_factory.mktemp("root") / "data")


@pytest.fixture(scope="module")
def cache(root):
    job = prepare_feature_cache(root, audio_format="foa", cache_dir=root.parent / "cache")
    job.run()
    return job.cache_dir


def _standardised(features, stats):
    return (features - stats.mean[:, None, :]) / stats.std[:, None, :]


def test_chunk_count_and_shapes(root):
    assert num_chunks(44, 20, 20) == 3 and num_chunks(20, 20, 20) == 1 and num_chunks(44, 20, 10) == 4
    assert num_chunks(5, 20, 20) == 1
    ds = SeldDataset(root, chunk_s=2.0)
    assert len(ds) == 4  # clip A: 44 label frames -> 3 chunks (the last with 4 real frames); clip B: 1
    assert [start for _, start in ds.chunks] == [0, 20, 40, 0]
    sample = ds[2]
    assert sample["features"].shape == (7, 100, 64) and sample["features"].dtype == torch.float32
    assert sample["target"].shape == (20, 6, 4, 13)
    assert sample["label_mask"].tolist() == [True] * 4 + [False] * 16
    assert sample["clip"] == "0:dev-train/fold1_room1_mix001" and sample["start_frame"] == 40
    assert (sample["features"][:, 20:] == 0).all() and (sample["target"][4:] == 0).all()
    assert len(SeldDataset(root, chunk_s=2.0, hop_s=1.0)) == 4 + 1  # clip A: 1 + ceil(24 / 10) = 4
    with pytest.raises(ValueError, match="multiple of 0.1 s"):
        SeldDataset(root, chunk_s=1.25)


def test_targets_agree_with_the_csv(root):
    ds = SeldDataset(root, chunk_s=2.0)
    full = events_to_adpit(_events_a(), 60)
    for index, start in enumerate([0, 20, 40]):
        target = ds[index]["target"].numpy()
        real = min(20, 44 - start)
        np.testing.assert_array_equal(target[:real], full[start : start + real])
    telephone = ds[0]["target"][12, :, :, 3].numpy()  # frame 12, class 3: B0, B1 hold the two telephones
    assert telephone[:, 0].tolist() == [0, 1, 1, 0, 0, 0]
    np.testing.assert_allclose(telephone[1, 1:], [np.cos(np.radians(30)) * np.cos(np.radians(-45)),
                                                  np.cos(np.radians(30)) * np.sin(np.radians(-45)),
                                                  np.sin(np.radians(30))], atol=1e-6)
    np.testing.assert_allclose(ds[0]["target"][3, 0, :, 0].numpy(), [1, 0, 1, 0], atol=1e-6)  # A0: left
    assert ds[2]["target"][1, 0, 0, 5] == 1  # frame 41 = chunk frame 1
    accdoa = SeldDataset(root, chunk_s=2.0, target="multi_accdoa")[0]["target"].numpy()
    np.testing.assert_array_equal(accdoa, events_to_multi_accdoa(_events_a(), 20))


def test_cached_features_match_on_the_fly_and_standardise(root, cache):
    on_the_fly = SeldDataset(root, chunk_s=2.0)
    cached = SeldDataset(root, chunk_s=2.0, cache_dirs=[cache])
    a, b = on_the_fly[1]["features"].numpy(), cached[1]["features"].numpy()
    # Frames 2..98 of a chunk see only the chunk's samples; the outer ones see its neighbours in the cached clip.
    np.testing.assert_allclose(a[:, 2:99], b[:, 2:99], rtol=1e-4, atol=1e-4)
    stats = load_cache_stats([cache])
    normalised = SeldDataset(root, chunk_s=2.0, cache_dirs=[cache], stats=stats)
    np.testing.assert_allclose(normalised[1]["features"].numpy(), _standardised(b, stats), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="statistics are of"):
        SeldDataset(root, chunk_s=2.0, kind="foa_logmel_iv", stats=stats.__class__("mic_salsalite", stats.mean,
                                                                                    stats.std, stats.count))


def test_audio_output_is_the_chunk_with_silence_after_the_end(root):
    from av_seld.io.audio import read_wav

    ds = SeldDataset(root, chunk_s=2.0, output="audio")
    audio = ds[2]["audio"].numpy()
    clip = read_wav(root / "foa_dev" / "dev-train" / "fold1_room1_mix001.wav")
    assert audio.shape == (4, 48_000)
    np.testing.assert_array_equal(audio[:, : clip.shape[1] - 96_000], clip[:, 96_000:])
    assert (audio[:, clip.shape[1] - 96_000 :] == 0).all()
    assert "features" not in ds[0]


@pytest.mark.parametrize("size", [(16, 32), (8, 16)])  # a width of 16 takes the OpenCV path (decord's resize bug)
def test_video_frames_follow_the_timing_rule(root, size):
    ds = SeldDataset(root, chunk_s=2.0, video=True, video_size=size)
    for index, start in enumerate([0, 20, 40]):
        sample = ds[index]
        frames, valid = sample["frames"].numpy(), sample["video_valid"].numpy()
        assert frames.shape == (20, *size, 3) and frames.dtype == np.uint8
        label_frames = np.arange(start, start + 20)
        expected_valid = (label_frames < timing.label_frames_covered_by_video(VIDEO_FRAMES, VIDEO_FPS)) & (
            label_frames < 44)
        np.testing.assert_array_equal(valid, expected_valid)
        grey = 2 * timing.video_frame_for_label_frame(label_frames, VIDEO_FPS)
        if valid.any():
            assert np.abs(frames[valid].mean(axis=(1, 2, 3)) - grey[valid]).max() < 4
        assert (frames[~valid] == 0).all()
    no_video = ds[3]  # clip B has no video
    assert not no_video["video_valid"].any() and no_video["frames"].shape == (20, *size, 3)


def test_live_video_warns_about_missing_and_short_videos(root, caplog):
    import logging

    from av_seld.data import dataset as dataset_module

    dataset_module._WARNED_SHORT.clear()
    with caplog.at_level(logging.WARNING):
        ds = SeldDataset(root, chunk_s=2.0, video=True, video_size=(16, 32))
        for index in range(len(ds)):
            ds[index]
    assert "1 of 2 clips have no video and train with the \"no video\" token" in caplog.text
    covered = timing.label_frames_covered_by_video(VIDEO_FRAMES, VIDEO_FPS)
    assert caplog.text.count(f"video covers {covered} of the clip's 44 label frames") == 1


def test_channel_swap_acts_on_raw_features_with_the_sample_rng(root, cache):
    from augment.acs import ChannelSwap

    stats = load_cache_stats([cache])
    ds = SeldDataset(root, chunk_s=2.0, cache_dirs=[cache], stats=stats, acs=True, seed=7)
    plain = SeldDataset(root, chunk_s=2.0, cache_dirs=[cache], seed=7)
    sample = ds[1]
    swap = ChannelSwap("foa", sample["acs_index"])
    assert swap.index == int(np.random.default_rng([7, 0, 1]).integers(16))  # the sample's one generator
    raw = plain[1]["features"].numpy()
    np.testing.assert_allclose(sample["features"].numpy(), _standardised(swap.features(raw, "foa_logmel_iv"), stats),
                               rtol=1e-5, atol=1e-5)  # swapped before standardisation: exact
    np.testing.assert_allclose(sample["target"].numpy(), swap.adpit(plain[1]["target"].numpy()), atol=1e-6)
    assert ds[1]["acs_index"] == sample["acs_index"]  # same seed, epoch and index: same draw
    indices = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        indices.add(ds[1]["acs_index"])
    assert len(indices) > 1


def test_acs_on_the_fly_swaps_the_audio_before_its_features(root):
    from augment.acs import ChannelSwap

    plain = SeldDataset(root, chunk_s=2.0)[0]
    swapped = SeldDataset(root, chunk_s=2.0, acs=(2,))[0]
    swap = ChannelSwap("foa", 2)
    np.testing.assert_allclose(swapped["target"].numpy(), swap.adpit(plain["target"].numpy()), atol=1e-6)
    np.testing.assert_allclose(swapped["features"].numpy(),
                               swap.features(plain["features"].numpy(), "foa_logmel_iv"), atol=1e-4)
    assert swapped["acs_index"] == 2


def test_spec_augment_masks_are_deterministic_and_shared_by_channels(root):
    masks = SpecAugment(time_masks=2, time_mask_frames=10, freq_masks=2, freq_mask_bins=6, cutouts=1)
    ds = SeldDataset(root, chunk_s=2.0, spec_augment=masks, seed=3)
    plain = SeldDataset(root, chunk_s=2.0)[0]["features"].numpy()
    first = ds[0]["features"].numpy()
    np.testing.assert_array_equal(first, ds[0]["features"].numpy())
    masked = first != plain
    assert masked.any() and (first[masked] == 0).all()
    assert (masked == masked[0]).all()  # every channel masked alike
    zero_frames = (first == 0).all(axis=(0, 2)).sum()
    zero_bins = (first == 0).all(axis=(0, 1)).sum()
    assert 1 <= zero_frames <= 20 and 1 <= zero_bins <= 12
    ds.set_epoch(1)
    assert not np.array_equal(ds[0]["features"].numpy(), first)
    assert not SpecAugment().enabled


def test_dataloader_workers_give_the_same_batches(root):
    ds = SeldDataset(root, chunk_s=2.0, video=True, video_size=(16, 32), seed=1,
                     spec_augment=SpecAugment(time_masks=1, freq_masks=1))
    ds[0]  # opens a reader in this process: workers must not reuse it
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate_samples)
        batches.append(list(loader))
    for a, b in zip(*batches):
        for key in ("features", "target", "frames", "video_valid", "label_mask"):
            assert torch.equal(a[key], b[key]), key
        assert a["clip"] == b["clip"]
    first = batches[0][0]
    assert first["features"].shape == (2, 7, 100, 64) and first["frames"].shape == (2, 20, 16, 32, 3)
    assert first["start_frame"].tolist() == [0, 20] and first["index"].dtype == torch.int64


def test_several_roots_and_split_selection(root, tmp_path):
    synthetic = _write_root(tmp_path / "synth", fold=7, with_video=False)
    ds = SeldDataset([root, synthetic], splits=["dev-train"], chunk_s=2.0)
    assert len(ds) == 8
    assert ds[4]["clip"] == "1:dev-train/fold7_room1_mix001"
    with pytest.raises(InputError, match="no clips"):
        SeldDataset([root], splits=["dev-test"], chunk_s=2.0)
    with pytest.raises(ValueError, match="one cache folder"):
        SeldDataset([root, synthetic], cache_dirs=[None], chunk_s=2.0)


def test_cached_visual_features_join_the_chunks_and_turn_with_the_audio(root, cache, tmp_path):
    from augment.acs import ChannelSwap

    grid = np.random.default_rng(0).standard_normal((44, 3, 2, 8)).astype(np.float16)  # (T, C, rows, cols)
    grid[30:] = np.nan  # the video ends after 30 label frames
    folder = tmp_path / "visual"
    (folder / "dev-train").mkdir(parents=True)
    np.save(folder / "dev-train" / "fold1_room1_mix001.npy", grid)  # clip B has none: it trains audio-only
    stats = load_cache_stats([cache])
    common = dict(chunk_s=2.0, cache_dirs=[cache], stats=stats, visual_cache_dirs=[folder], seed=5)
    plain = SeldDataset(root, **common)
    assert plain.visual_grid_shape == (3, 2, 8)
    second = plain[1]  # label frames 20..39
    np.testing.assert_array_equal(second["visual_features"][:10].numpy(), grid[20:30].astype(np.float32))
    assert (second["visual_features"][10:] == 0).all()
    assert second["video_valid"].tolist() == [True] * 10 + [False] * 10
    assert not plain[3]["video_valid"].any() and plain[3]["visual_features"].shape == (20, 3, 2, 8)

    turned = SeldDataset(root, acs=True, **common)
    seen = set()
    for epoch in range(12):
        turned.set_epoch(epoch)
        sample = turned[1]
        swap = ChannelSwap("foa", sample["acs_index"])
        seen.add(swap.geometric_map)
        np.testing.assert_array_equal(sample["visual_features"].numpy(),
                                      swap.frames(second["visual_features"].numpy(), channels_first=True))
        raw = (second["features"].numpy() * stats.std[:, None, :] + stats.mean[:, None, :])
        np.testing.assert_allclose(sample["features"].numpy(), _standardised(swap.features(raw, "foa_logmel_iv"),
                                                                             stats), atol=1e-4)
    assert seen <= {(1, 0, 1), (1, 1, 1), (1, -1, 1), (1, 2, 1)} and len(seen) > 1  # rotations only
    with pytest.raises(ValueError, match="not both"):
        SeldDataset(root, chunk_s=2.0, video=True, visual_cache_dirs=[folder])
