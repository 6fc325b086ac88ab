import pytest

from av_seld.errors import InputError
from av_seld.io.dataset import Clip, index_dataset, parse_clip_name


def _touch(root, *relative):
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.fixture
def root(tmp_path):
    train, test = "dev-train-sony", "dev-test-tau"
    _touch(
        tmp_path,
        # complete clip
        f"foa_dev/{train}/fold3_room21_mix001.wav",
        f"mic_dev/{train}/fold3_room21_mix001.wav",
        f"metadata_dev/{train}/fold3_room21_mix001.csv",
        f"video_dev/{train}/fold3_room21_mix001.mp4",
        # no video
        f"foa_dev/{train}/fold3_room22_mix002.wav",
        f"metadata_dev/{train}/fold3_room22_mix002.csv",
        # the same name in another split, MIC only, no metadata
        f"mic_dev/{test}/fold3_room21_mix001.wav",
        f"video_dev/{test}/fold3_room21_mix001.mp4",
        # a name that does not parse, FOA + metadata
        f"foa_dev/{test}/my recording.wav",
        f"metadata_dev/{test}/my recording.csv",
        # video only: no audio, no metadata
        f"video_dev/{test}/fold4_room2_mix010.mp4",
        # ignored: wrong suffix for its folder
        f"foa_dev/{train}/README.txt",
        f"video_dev/{train}/fold3_room21_mix001.wav",
    )
    return tmp_path


def test_parse_clip_name():
    assert parse_clip_name("fold3_room21_mix001") == (3, 21, 1)
    assert parse_clip_name("fold10_room4_mix123_ov2") == (10, 4, 123)
    for name in ("my recording", "mix001", "fold3_room21", "xfold3_room21_mix001", "fold3_room21_mix001x"):
        assert parse_clip_name(name) == (None, None, None)


def test_index(root):
    index = index_dataset(root)
    assert index.root == root
    assert index.splits() == ["dev-test-tau", "dev-train-sony"]
    assert [(c.split, c.name) for c in index.clips] == [
        ("dev-test-tau", "fold3_room21_mix001"),
        ("dev-test-tau", "fold4_room2_mix010"),
        ("dev-test-tau", "my recording"),
        ("dev-train-sony", "fold3_room21_mix001"),
        ("dev-train-sony", "fold3_room22_mix002"),
    ]
    full = index.clips[3]
    assert full == Clip(
        name="fold3_room21_mix001", split="dev-train-sony", set="dev", fold=3, room=21, mix=1,
        foa=root / "foa_dev/dev-train-sony/fold3_room21_mix001.wav",
        mic=root / "mic_dev/dev-train-sony/fold3_room21_mix001.wav",
        metadata=root / "metadata_dev/dev-train-sony/fold3_room21_mix001.csv",
        video=root / "video_dev/dev-train-sony/fold3_room21_mix001.mp4",
    )
    unparsed = index.clips[2]
    assert (unparsed.fold, unparsed.room, unparsed.mix) == (None, None, None) and unparsed.foa is not None
    with pytest.raises(AttributeError):
        full.name = "other"  # frozen


def test_select(root):
    index = index_dataset(root)
    assert [c.name for c in index.select(split="dev-train-sony")] == ["fold3_room21_mix001", "fold3_room22_mix002"]
    assert [(c.split, c.name) for c in index.select(fold=4)] == [("dev-test-tau", "fold4_room2_mix010")]
    assert len(index.select(fold=3)) == 3
    assert index.select(split="dev-test-tau", fold=3)[0].mic is not None
    assert index.select(set="eval") == []


def test_missing_and_report(root):
    index = index_dataset(root)
    missing = {what: [(c.split, c.name) for c in clips] for what, clips in index.missing().items()}
    assert missing == {
        "audio": [("dev-test-tau", "fold4_room2_mix010")],
        "metadata": [("dev-test-tau", "fold3_room21_mix001"), ("dev-test-tau", "fold4_room2_mix010")],
        "video": [("dev-test-tau", "my recording"), ("dev-train-sony", "fold3_room22_mix002")],
    }
    report = index.report()
    assert "5 clips in 2 splits" in report
    assert "dev-test-tau (dev): 3 clips" in report and "dev-train-sony (dev): 2 clips" in report
    assert "missing audio: 1 (dev-test-tau/fold4_room2_mix010)" in report
    assert "missing video: 2 (dev-test-tau/my recording, dev-train-sony/fold3_room22_mix002)" in report
    assert "missing metadata: 2 (dev-test-tau/fold3_room21_mix001, dev-test-tau/fold4_room2_mix010)" in report
    assert "... (1 more)" in index.report(max_names=1)


def test_split_filter(root):
    index = index_dataset(root, splits=["dev-train-sony"])
    assert index.splits() == ["dev-train-sony"] and len(index.clips) == 2
    assert "missing metadata: 0" in index.report()
    with pytest.raises(InputError, match="dev-train-typo not found; found dev-test-tau, dev-train-sony"):
        index_dataset(root, splits=["dev-train-typo"])


def test_partial_layout_and_eval_set(tmp_path):
    _touch(tmp_path, "foa_eval/mix001.wav", "video_eval/mix001.mp4", "metadata_dev/synth/fold7_room1_mix002.csv")
    index = index_dataset(tmp_path)
    assert [(c.set, c.split, c.name, c.fold) for c in index.clips] == [
        ("dev", "synth", "fold7_room1_mix002", 7),
        ("eval", "eval", "mix001", None),
    ]
    eval_clip = index.select(set="eval")[0]
    assert eval_clip.foa.name == "mix001.wav" and eval_clip.video.name == "mix001.mp4" and eval_clip.mic is None


def test_errors(tmp_path):
    with pytest.raises(InputError, match="nowhere: dataset root not found"):
        index_dataset(tmp_path / "nowhere")
    (tmp_path / "audio").mkdir()
    with pytest.raises(InputError) as info:
        index_dataset(tmp_path)
    assert str(tmp_path) in str(info.value) and "foa_dev" in str(info.value) and "video_eval" in str(info.value)
