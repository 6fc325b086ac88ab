"""Feature cache: per-clip files, streaming statistics equal to NumPy's, resuming, workers, and the CLI."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

from av_seld.cli import main
from av_seld.data.feature_cache import (META_FILE, STATS_FILE, FeatureStats, RunningStats, clip_cache_path,
                                        is_train_split, prepare_feature_cache)
from av_seld.errors import InputError
from av_seld.features import compute_features
from av_seld.io.audio import read_wav, write_wav

SR = 24_000
# (split, name, seconds): three training clips of lengths that are not whole label frames, one test clip.
CLIPS = [("dev-train-a", "fold1_room1_mix001", 1.23), ("dev-train-b", "fold1_room1_mix002", 0.77),
         ("dev-train-a", "fold1_room1_mix003", 2.0), ("dev-test", "fold2_room1_mix001", 1.0)]


def _write_root(root, fmt="foa", clips=CLIPS):
    for i, (split, name, seconds) in enumerate(clips):
        rng = np.random.default_rng(i)
        gain = rng.uniform(0.03, 0.2, (4, 1)).astype(np.float32)  # channels differ, so the statistics do too
        write_wav(root / f"{fmt}_dev" / split / f"{name}.wav",
                  gain * rng.standard_normal((4, int(seconds * SR))).astype(np.float32))
    return root


@pytest.fixture()
def root(tmp_path):
    return _write_root(tmp_path / "data")


def test_running_stats_merge_equals_numpy():
    rng = np.random.default_rng(0)
    parts = [rng.normal(rng.uniform(-50, 50), rng.uniform(0.1, 10), (3, n, 5)) for n in (1, 7, 130, 2, 55)]
    total = RunningStats(0, np.zeros((3, 5)), np.zeros((3, 5)))
    for part in parts:
        total = total.merge(RunningStats.of(part))
    everything = np.concatenate(parts, axis=1)
    assert total.count == everything.shape[1]
    np.testing.assert_allclose(total.mean, everything.mean(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(total.std, everything.std(axis=1), rtol=1e-10)
    # Merging saved statistics (mean, std, count) gives the same as merging the frames.
    halves = [FeatureStats("k", RunningStats.of(p).mean, RunningStats.of(p).std, p.shape[1]) for p in parts]
    merged = FeatureStats.merge(halves)
    np.testing.assert_allclose(merged.mean, everything.mean(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.std, everything.std(axis=1), rtol=1e-10)


def test_train_split_matching():
    assert is_train_split("dev-train-sony", ["dev-train"]) and is_train_split("dev-train", ["dev-train"])
    assert not is_train_split("dev-training", ["dev-train"]) and not is_train_split("dev-test-sony", ["dev-train"])


def test_statistics_file_is_left_alone_when_current_and_the_splits_used_are_logged(root, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="av_seld")
    cache = tmp_path / "cache"
    job = prepare_feature_cache(root, audio_format="foa", cache_dir=cache, train_splits=["dev-train"])
    job.run()
    stats_path = cache / STATS_FILE
    first = stats_path.stat()
    # dev-train covers dev-train-a and dev-train-b: the log names the splits actually used and the rule
    assert "statistics of 3 training clips (" in caplog.text
    assert "from splits dev-train-a, dev-train-b (dev-train covers dev-train-*) written to" in caplog.text
    caplog.clear()
    os.utime(stats_path, ns=(first.st_atime_ns, first.st_mtime_ns - 10**9))  # a rewrite would move it forward
    before = stats_path.stat()
    prepare_feature_cache(root, audio_format="foa", cache_dir=cache, train_splits=["dev-train"]).run()
    after = stats_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "unchanged in" in caplog.text
    # other training splits give other statistics: the file is rewritten
    prepare_feature_cache(root, audio_format="foa", cache_dir=cache, train_splits=["dev-train-a"]).run()
    assert stats_path.stat().st_mtime_ns != before.st_mtime_ns
    assert "from split dev-train-a written to" in caplog.text


def test_cache_files_and_statistics(root, tmp_path):
    job = prepare_feature_cache(root, audio_format="foa", cache_dir=tmp_path / "cache")
    assert job.kind == "foa_logmel_iv" and len(job.clips) == 4 and len(job.train_clips) == 3
    seen = []
    stats = job.run(progress=seen.append)
    assert [r.clip.name for r in seen] == [c.name for c in job.clips] and not any(r.skipped for r in seen)
    train_features = []
    for clip in job.clips:
        cached = np.load(clip_cache_path(tmp_path / "cache", clip))
        expected = compute_features(read_wav(clip.foa), "foa_logmel_iv")
        assert cached.dtype == np.float32
        np.testing.assert_array_equal(cached, expected)
        if clip.split.startswith("dev-train"):
            train_features.append(cached)
    everything = np.concatenate(train_features, axis=1).astype(np.float64)
    np.testing.assert_allclose(stats.mean, everything.mean(axis=1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stats.std, everything.std(axis=1), rtol=1e-8)
    assert stats.count == everything.shape[1]
    loaded = FeatureStats.load(tmp_path / "cache" / STATS_FILE)
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    assert loaded.kind == "foa_logmel_iv" and loaded.count == stats.count
    meta = json.loads((tmp_path / "cache" / META_FILE).read_text())
    assert meta["kind"] == "foa_logmel_iv" and meta["train_splits"] == ["dev-train"] and meta["hop_samples"] == 480


def test_resume_skips_finished_clips_and_redoes_broken_ones(root, tmp_path):
    cache = tmp_path / "cache"
    first = prepare_feature_cache(root, audio_format="foa", cache_dir=cache).run()
    paths = {c.name: clip_cache_path(cache, c) for c in prepare_feature_cache(root, audio_format="foa",
                                                                              cache_dir=cache).clips}
    os.utime(paths["fold1_room1_mix001"], (1, 1))
    paths["fold1_room1_mix002"].unlink()
    paths["fold1_room1_mix003"].write_bytes(b"not an npy file")
    results = []
    second = prepare_feature_cache(root, audio_format="foa", cache_dir=cache).run(progress=results.append)
    skipped = {r.clip.name: r.skipped for r in results}
    assert skipped == {"fold1_room1_mix001": True, "fold1_room1_mix002": False, "fold1_room1_mix003": False,
                       "fold2_room1_mix001": True}
    assert os.stat(paths["fold1_room1_mix001"]).st_mtime == 1  # untouched
    np.testing.assert_allclose(second.mean, first.mean, rtol=1e-12)
    np.testing.assert_allclose(second.std, first.std, rtol=1e-12)
    assert not list(cache.rglob("*.tmp.npy"))


def test_workers_give_the_same_cache(root, tmp_path):
    one = prepare_feature_cache(root, audio_format="foa", cache_dir=tmp_path / "one").run(workers=1)
    two = prepare_feature_cache(root, audio_format="foa", cache_dir=tmp_path / "two").run(workers=2)
    np.testing.assert_array_equal(one.mean, two.mean)
    np.testing.assert_array_equal(one.std, two.std)
    for path in (tmp_path / "one").rglob("*.npy"):
        np.testing.assert_array_equal(np.load(path), np.load(tmp_path / "two" / path.relative_to(tmp_path / "one")))


def test_bad_requests_raise_input_errors(root, tmp_path):
    with pytest.raises(InputError, match="computed from MIC audio"):
        prepare_feature_cache(root, audio_format="foa", kind="mic_salsalite")
    with pytest.raises(InputError, match="no MIC audio"):
        prepare_feature_cache(root, audio_format="mic")
    with pytest.raises(InputError, match="no clip in the training split"):
        prepare_feature_cache(root, audio_format="foa", train_splits=["train"])
    cache = tmp_path / "cache"
    prepare_feature_cache(root, audio_format="foa", cache_dir=cache).run()
    mic_root = _write_root(tmp_path / "mic", "mic", CLIPS[:1])
    with pytest.raises(InputError, match="holds foa_logmel_iv features"):
        prepare_feature_cache(mic_root, audio_format="mic", cache_dir=cache)


def test_cli_extract_features(root, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="av_seld")
    out = tmp_path / "salsa"
    mic_root = _write_root(tmp_path / "mic", "mic", CLIPS[:2])
    assert main(["extract-features", str(mic_root), "--format", "mic", "--kind", "mic_salsalite", "--out", str(out),
                 "--train-split", "dev-train-a"]) == 0
    printed = capsys.readouterr().out
    assert "2 clips computed, 0 already cached" in printed and "statistics" not in printed
    # the statistics are reported once, by the library's log line, with the split they came from
    [line] = [r.getMessage() for r in caplog.records if "statistics of" in r.getMessage()]
    assert "statistics of 1 training clip (" in line and "from split dev-train-a written to" in line
    assert np.load(out / "dev" / "dev-train-b" / "fold1_room1_mix002.npy").shape == (7, 40, 382)  # 0.77 s: 8 label frames
    assert FeatureStats.load(out / STATS_FILE).mean.shape == (7, 382)
    assert main(["extract-features", str(mic_root), "--format", "mic", "--kind", "mic_salsalite", "--out", str(out),
                 "--train-split", "dev-train-a"]) == 0
    assert "0 clips computed, 2 already cached" in capsys.readouterr().out
    # Default folder and kind.
    assert main(["extract-features", str(root), "--format", "foa"]) == 0
    assert (root / "features" / "foa_logmel_iv" / "dev" / "dev-test" / "fold2_room1_mix001.npy").is_file()
    assert main(["extract-features", str(root), "--format", "foa", "--kind", "mic_logmel_gcc"]) == 2
    assert "extract-features: error: feature kind mic_logmel_gcc is computed from MIC audio" in capsys.readouterr().err
