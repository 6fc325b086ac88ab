"""The datasets of a training run: the training chunks (with augmentation) and the validation and test chunks, all
assembled by :mod:`av_seld.data.pipeline`."""

from __future__ import annotations

from pathlib import Path

from av_seld.config import Config, ConfigError
from av_seld.training.caches import visual_caches
from av_seld.training.evaluation import split_clips
from av_seld.training.recipe import predicts_distance


def build_datasets(config: Config, caches: list[Path], kind: str, stats=None):
    """Training (chunks with hop, augmentation) and validation/test datasets (non-overlapping chunks), all through
    the stages of :mod:`av_seld.data.pipeline`; with ``data.online_features`` the training set stops before
    ``featurize`` and ``train_set.pipeline.device`` finishes its batches on the training device. The features are
    standardised with ``stats`` (:class:`~av_seld.data.feature_cache.FeatureStats`), by default the caches' own."""
    from av_seld.data.dataset import SeldDataset, load_cache_stats

    data = config.data
    stats = stats if stats is not None else load_cache_stats(caches)
    visual = visual_caches(config) if data.visual_features else None
    if data.online_features and visual is not None:
        raise ConfigError("config", "data.online_features cannot be combined with data.visual_features yet")
    common = dict(audio_format=data.format, kind=kind, chunk_s=data.chunk_s, cache_dirs=caches, stats=stats,
                  video=data.video, video_size=tuple(data.video_size), visual_cache_dirs=visual,
                  seed=config.train.seed, target="adpit_distance" if predicts_distance(config) else "adpit")
    train = SeldDataset(data.roots, splits=data.train_splits, hop_s=data.train_hop_s, acs=data.acs,
                        video_dropout=data.video_dropout,
                        spec_augment=spec_augment_of(data), output="audio" if data.online_features else "features",
                        **{**common, "cache_dirs": None if data.online_features else caches})

    def evaluation_set(splits):
        if not splits:
            return None
        dataset = SeldDataset(data.roots, splits=splits, hop_s=data.chunk_s, **common)
        # Calibration and test scoring after training go through the infer path, which names predictions by clip:
        # two roots with a clip of the same name would stop the run there, after the training. Say so now.
        split_clips(dataset, with_video=False)
        return dataset

    return train, evaluation_set(data.val_splits), evaluation_set(data.test_splits), stats


def spec_augment_of(data):
    """The training masks of a :class:`DataConfig` (drawn in the loader; applied there, or on the device with
    ``data.online_features``)."""
    from av_seld.data.pipeline import SpecAugment

    return SpecAugment(freq_masks=data.freq_masks, time_masks=data.time_masks, cutouts=data.cutouts)
