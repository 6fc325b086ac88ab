"""A killed or concurrent writer never poisons a dataset: temporary files are invisible to every listing and removed
by the next run, and a second writer of the same output is refused while the first runs (stale locks taken over)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from av_seld.cli import main
from av_seld.io.dataset import data_files, index_dataset
from av_seld.io.labels import read_reference_csv
from av_seld.metrics.evaluate import collect_csvs
from av_seld.utils.atomic import atomic_path, is_temp_name
from av_seld.utils.lock import LockedError, output_lock

REPO = Path(__file__).resolve().parents[1]
SPLIT = "s"
# what a SIGKILL during synth-audio / synth-video leaves: a wav header without samples, an empty mp4
LEFT_BEHIND = {"foa_dev": (".fold1_room0_mix001.wav.0o2lcp1x.tmp.wav", b"RIFF" + bytes(40)),
               "metadata_dev": (".fold1_room0_mix002.csv.k_3xz9qa.tmp.csv", b"0,1,"),
               "video_dev": (".fold1_room0_mix001.mp4.a1b2c3d4.tmp.mp4", b"")}


def synth_audio(root, *extra):
    return ["synth-audio", str(root), "--num-clips", "2", "--duration", "1", "--split", SPLIT, *extra]


def plant_left_behind(root):
    paths = []
    for folder, (name, data) in LEFT_BEHIND.items():
        path = root / folder / SPLIT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_atomic_temporary_names_are_recognised_and_never_listed(tmp_path):
    with atomic_path(tmp_path / "fold1_room0_mix001.wav") as tmp:
        assert is_temp_name(tmp.name) and tmp.suffix == ".wav"
        assert data_files(tmp_path, ".wav") == []
        tmp.write_bytes(b"x")
    assert [p.name for p in data_files(tmp_path, ".wav")] == ["fold1_room0_mix001.wav"]
    for name in (".notes.wav", "a.wav.tmp.wav", ".a.wav.abc.tmp.wav", ".a.wav.abcdefgh.tmp.mp4"):
        assert not is_temp_name(name), name


def test_files_left_by_a_killed_synthesis_are_ignored_then_removed(tmp_path, capsys):
    assert main(synth_audio(tmp_path)) == 0
    left = plant_left_behind(tmp_path)
    keep = tmp_path / "foa_dev" / SPLIT / ".notes.wav"  # a dot-file of someone else: never listed, never removed
    keep.write_bytes(b"")
    index = index_dataset(tmp_path)
    assert [c.name for c in index.clips] == ["fold1_room0_mix001", "fold1_room0_mix002"]
    assert all(c.foa.name == f"{c.name}.wav" and c.video is None for c in index.clips)
    assert sorted(collect_csvs(tmp_path / "metadata_dev", "reference")) == [
        "fold1_room0_mix001.csv", "fold1_room0_mix002.csv"]

    capsys.readouterr()
    assert main(synth_audio(tmp_path)) == 0
    assert "0 clips written, 2 already complete" in capsys.readouterr().out
    assert [p.exists() for p in left] == [False, False, True]  # synth-audio cleans only the folders it writes
    assert main(["synth-video", str(tmp_path), "--split", SPLIT, "--size", "64x32"]) == 0
    assert not left[2].exists() and keep.exists()
    assert [c.video.name for c in index_dataset(tmp_path).clips] == ["fold1_room0_mix001.mp4", "fold1_room0_mix002.mp4"]


def test_a_second_writer_of_the_same_output_is_refused(tmp_path, capsys):
    lock = tmp_path / f".synth-audio.{SPLIT}.lock"
    with output_lock(lock, "a test"):
        assert main(synth_audio(tmp_path)) == 2
        err = capsys.readouterr().err
        assert "error:" in err and str(lock) in err and f"pid {os.getpid()}" in err
        assert not (tmp_path / "foa_dev").exists()
        with pytest.raises(LockedError):
            with output_lock(lock, "a test"):
                pass
        # another split is another output
        assert main(synth_audio(tmp_path)[:-1] + ["other"]) == 0
    assert not lock.exists()


def test_synthesis_from_trajectories_is_the_same_one_writer(tmp_path, capsys):
    from av_seld.io.labels import Events, write_reference_csv

    write_reference_csv(tmp_path / "timelines" / "fold1_room0_mix001.csv",
                        Events.from_arrays([0, 1, 2], [1, 1, 1], [0, 0, 0], [10, 20, 30], [0, 0, 0]))
    args = ["synth-audio", str(tmp_path / "out"), "--split", SPLIT, "--trajectories", str(tmp_path / "timelines")]
    left = plant_left_behind(tmp_path / "out")
    with output_lock(tmp_path / "out" / f".synth-audio.{SPLIT}.lock", "a test"):
        assert main(args) == 2
        assert "another process" in capsys.readouterr().err
    assert main(args) == 0
    assert [p.exists() for p in left] == [False, False, True]
    assert [c.name for c in index_dataset(tmp_path / "out").clips] == ["fold1_room0_mix001"]


def test_a_stale_lock_is_taken_over(tmp_path, caplog):
    lock = tmp_path / f".synth-audio.{SPLIT}.lock"
    lock.write_text("pid 999999999 on elsewhere\n")  # its owner died without removing it; nobody holds the flock
    assert main(synth_audio(tmp_path)) == 0
    assert "stale lock" in caplog.text and not lock.exists()
    assert len(index_dataset(tmp_path).clips) == 2


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "av_seld", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_killed_synthesis_then_concurrent_and_rerun_leave_only_whole_matching_clips(tmp_path):
    """SIGKILL mid-run; meanwhile a second run with another seed is refused; the rerun completes every clip."""
    args = ["synth-audio", str(tmp_path), "--num-clips", "40", "--duration", "2", "--split", SPLIT,
            "--format", "both", "--seed", "1"]
    first = _run(*args)
    lock = tmp_path / f".synth-audio.{SPLIT}.lock"
    deadline = time.monotonic() + 60
    while not list((tmp_path / "metadata_dev" / SPLIT).glob("*.csv")) and time.monotonic() < deadline:
        time.sleep(0.05)
    # stopped, the first run still holds its lock, however fast this machine would have let it finish
    first.send_signal(signal.SIGSTOP)
    assert first.poll() is None and lock.exists(), \
        first.stderr.read() if first.poll() is not None else "no clip after 60 s"
    second = _run(*args[:-1], "2")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "another process" in err and f"pid {first.pid}" in err
    first.send_signal(signal.SIGKILL)
    first.wait()
    rerun = _run(*args)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    index = index_dataset(tmp_path)
    assert len(index.clips) == 40 and not index.missing()["audio"]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    # every clip is whole and from one run: the clips both runs wrote are byte for byte those of seed 1 (a clip
    # depends only on the seed and its number, so the first 8 of a fresh seed-1 dataset are the reference)
    reference = tmp_path / "reference"
    assert main(["synth-audio", str(reference), "--num-clips", "8", *args[4:-1], "1"]) == 0
    for clip in index.clips[:8]:
        for folder, path in (("foa_dev", clip.foa), ("mic_dev", clip.mic), ("metadata_dev", clip.metadata)):
            assert path.read_bytes() == (reference / folder / SPLIT / path.name).read_bytes(), path
    for clip in index.clips:
        audio, rate = sf.read(clip.foa)
        assert audio.shape == (2 * rate, 4) and np.isfinite(audio).all()
        read_reference_csv(clip.metadata)


def test_an_unwritable_dataset_root_is_one_error_naming_the_folder_and_the_way_around(tmp_path, capsys, monkeypatch):
    import errno

    from av_seld.utils import atomic

    assert main(synth_audio(tmp_path)) == 0
    real_mkstemp = atomic.tempfile.mkstemp

    def read_only_root(*args, dir, **kwargs):  # tests run as root, whom chmod does not stop
        if Path(dir).is_relative_to(tmp_path / "features"):
            raise PermissionError(errno.EROFS, "Read-only file system", str(Path(dir) / ".x.tmp"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only_root)
    capsys.readouterr()
    assert main(["extract-features", str(tmp_path), "--format", "foa", "--train-split", SPLIT]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'features' / 'foa_logmel_iv'}: cannot write in this folder (Read-only file system): " \
           "the feature cache can live elsewhere (train: data.feature_cache" in err
    assert ".tmp" not in err and "Traceback" not in err
    assert main(["extract-features", str(tmp_path), "--format", "foa", "--train-split", SPLIT,
                 "--out", str(tmp_path / "elsewhere")]) == 0


def test_synth_video_killed_mid_file_then_rerun_leaves_whole_videos(tmp_path):
    from av_seld.io.labels import Events, write_reference_csv
    from av_seld.io.video import video_info

    for k in range(1, 7):  # 30 s clips: a video takes long enough to be caught half-written
        write_reference_csv(tmp_path / "metadata_dev" / SPLIT / f"fold1_room0_mix00{k}.csv",
                            Events.from_arrays(list(range(0, 300, 10)), [k] * 30, [0] * 30, [20 * k] * 30, [0] * 30))
    args = ["synth-video", str(tmp_path), "--split", SPLIT, "--size", "128x64", "--fps", "10"]
    first = _run(*args)
    folder = tmp_path / "video_dev" / SPLIT
    deadline = time.monotonic() + 120
    while not [p for p in folder.glob(".*") if p.stat().st_size > 0] if folder.is_dir() else True:
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert [p for p in folder.iterdir() if p.name.startswith(".")]  # the killed run left its temporary file
    assert len(index_dataset(tmp_path).missing()["video"]) > 0
    rerun = _run(*args)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert sorted(p.name for p in folder.iterdir()) == [f"fold1_room0_mix00{k}.mp4" for k in range(1, 7)]
    assert {video_info(p)[0] for p in folder.iterdir()} == {291}  # label frames 0..290 at 10 fps
