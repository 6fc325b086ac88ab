"""bench/realistic.py on tiny generated timelines: the split by file, the two video variants over shared audio and
labels, determinism, the skip without real data, and the results table."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_realistic", REPO / "bench" / "realistic.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _shared(root: Path, num_files: int = 7) -> Path:
    """``root/starss22_labels/<room>/*.csv`` (4-8 s timelines, a moving source each) and one panorama."""
    rng = np.random.default_rng(0)
    for k in range(num_files):
        length = 40 + 10 * (k % 5)
        rows = [(f, k % 13, 0, -90 + 3 * f, 10) for f in range(2, length - 5)]
        rows += [(f, 7, 1, 120, -5) for f in range(10, 18)]
        rows.sort(key=lambda r: (r[0], r[2]))
        path = root / "starss22_labels" / f"dev-train-{'ab'[k % 2]}" / f"fold3_room{k}_mix00{k}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    (root / "panoramas").mkdir()
    cv2.imwrite(str(root / "panoramas" / "room.jpg"), rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
    return root


TINY = ["--train-clips", "3", "--train-s", "2", "--val-clips", "1", "--val-s", "2", "--test-clips", "2",
        "--test-s", "4", "--video-size", "64x32", "--silent-per-minute", "30", "--invisible", "0.5"]


def test_builds_a_benchmark_split_by_file(tmp_path):
    bench = _bench()
    shared = _shared(tmp_path / "shared")
    out = tmp_path / "bench"
    assert bench.main(["--out", str(out), "--shared-data", str(shared), *TINY]) == 0
    manifest = json.loads((out / "benchmark.json").read_text())
    by_split = manifest["clips_by_split"]
    assert [len(by_split[s]) for s in ("dev-train", "dev-val", "dev-test")] == [3, 1, 2]
    files = {s: {c["timeline"] for c in by_split[s]} for s in by_split}
    assert not files["dev-test"] & (files["dev-train"] | files["dev-val"]) and not files["dev-val"] & files["dev-train"]
    assert len(files["dev-train"]) == 3  # one window per file before any file gives a second
    for split in ("dev-train", "dev-val", "dev-test"):
        for clip in by_split[split]:
            name = clip["clip"]
            for variant in ("clean", "realistic"):
                root = out / variant
                assert (root / "foa_dev" / split / f"{name}.wav").is_file()
                assert (root / "video_dev" / split / f"{name}.mp4").is_file()
            # the variants share the audio and the labels (hard links), not the video
            assert ((out / "clean" / "metadata_dev" / split / f"{name}.csv").read_bytes()
                    == (out / "realistic" / "metadata_dev" / split / f"{name}.csv").read_bytes())
            # the labels are the timeline's window
            source = shared / "starss22_labels" / clip["timeline"]
            rows = [line.split(",") for line in source.read_text().splitlines()]
            start, stop = clip["start_frame"], clip["start_frame"] + clip["num_frames"]
            expected = "".join(f"{int(r[0]) - start}," + ",".join(r[1:]) + "\n" for r in rows
                               if start <= int(r[0]) < stop)
            written = [line.split(",") for line in (out / "clean" / "metadata_dev" / split / f"{name}.csv")
                       .read_text().splitlines()]
            assert "".join(",".join(r[:5]) + "\n" for r in written) == expected
            assert all(len(r) == 6 for r in written)  # and the distance rendered in the benchmark's rooms
    # resumable and deterministic: a second build elsewhere gives the same audio bytes
    again = tmp_path / "again"
    assert bench.main(["--out", str(again), "--shared-data", str(shared), *TINY]) == 0
    for wav in (out / "clean" / "foa_dev").rglob("*.wav"):
        assert wav.read_bytes() == (again / wav.relative_to(out)).read_bytes()
    with pytest.raises(SystemExit, match="built with other spec"):
        bench.main(["--out", str(out), "--shared-data", str(shared), *TINY, "--seed", "5"])
    # a folder rendered by other synthesis code (here: one validation wav altered) is refused, not silently reused
    val = out / "clean" / "foa_dev" / "dev-val" / f"{by_split['dev-val'][0]['clip']}.wav"
    audio, rate = sf.read(val)
    sf.write(val, 0.5 * audio, rate, subtype="FLOAT")
    with pytest.raises(SystemExit, match="renders it differently"):
        bench.main(["--out", str(out), "--shared-data", str(shared), *TINY])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_skips_without_the_real_data(tmp_path, capsys):
    assert _bench().main(["--out", str(tmp_path / "b"), "--shared-data", str(tmp_path / "missing")]) == 0
    assert "skipped" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_results_table_shows_intervals():
    row = {"recipe": "seldnet_foa", "variant": "either (same audio)", "video": "not read",
           "scores": {"SELD": 0.5123, "F": 0.3, "LE": 25.0, "LR": 0.6,
                      "confidence_intervals_95": {"SELD": [0.45, 0.57], "F": [0.2, 0.4], "LE": [20.0, 30.0],
                                                  "LR": [0.5, 0.7]}}}
    table = _bench().format_table([row])
    assert "| seldnet_foa | either (same audio) | not read | n/a | 0.512 [0.450, 0.570] | 30.0 [20.0, 40.0] |" in table
    assert table.splitlines()[2].endswith("| n/a |")  # no per-class support in these scores


def test_results_table_scores_the_classes_present_apart():
    classwise = [{"class": 0, "SELD": 0.3, "support": 12}, {"class": 1, "SELD": 0.5, "support": 3},
                 {"class": 2, "SELD": 0.9, "support": 0}]
    scores = {"SELD": 0.567, "F": 0.3, "LE": 25.0, "LR": 0.6, "classwise": classwise}
    bench = _bench()
    assert bench.present_class_seld(scores) == (0.4, 2)
    assert bench.present_class_seld({"classwise": [{"class": 0, "SELD": 0.9, "support": 0}]}) is None
    row = {"recipe": "small_data", "variant": "realistic", "video": "video", "scores": scores}
    assert bench.format_table([row]).splitlines()[2].endswith("| 0.400 (2 classes) |")


def _timelines(root: Path, num_files: int = 9) -> Path:
    """Timelines of speech (class 1) throughout; class 12 sounds for 1 s in three files only, class 9 in one."""
    for k in range(num_files):
        rows = [(f, 1, 0, 30, 0) for f in range(200)]
        if k in (2, 5, 7):
            rows += [(f, 12, 1, -60, 10) for f in range(150 - 10 * k, 160 - 10 * k)]
        if k == 4:
            rows += [(f, 9, 2, 90, 0) for f in range(20, 40)]
        rows.sort(key=lambda r: (r[0], r[2]))
        path = root / f"fold3_room1_mix{k:03d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    return root


def _classes(windows) -> set[int]:
    held = set()
    for w in windows:
        rows = [line.split(",") for line in Path(w.path).read_text().splitlines()]
        held |= {int(r[1]) for r in rows if w.start_frame <= int(r[0]) < w.start_frame + w.num_frames}
    return held


def test_every_split_holds_the_rare_classes_and_training_keeps_a_file_of_each(tmp_path):
    bench = _bench()
    timelines = _timelines(tmp_path / "labels")
    spec = bench.BenchmarkSpec(train_clips=6, train_s=5.0, val_clips=1, val_s=5.0, test_clips=2, test_s=5.0)
    windows = bench.split_windows(timelines, spec)
    assert _classes(windows["dev-test"]) == _classes(windows["dev-val"]) == {1, 12}
    assert _classes(windows["dev-train"]) == {1, 9, 12}  # the one file with class 9 is left to training
    files = {s: {w.path for w in windows[s]} for s in windows}
    assert not files["dev-test"] & (files["dev-train"] | files["dev-val"]) and not files["dev-val"] & files["dev-train"]
    assert bench.split_windows(timelines, spec) == windows  # deterministic
    # without the option the windows fall where the seed puts them: here the tests hold no class 12
    chance = bench.split_windows(timelines, dataclasses.replace(spec, cover_classes=False))
    assert 12 not in _classes(chance["dev-test"])
    assert [len(chance[s]) for s in ("dev-train", "dev-val", "dev-test")] == [6, 1, 2]
