import logging

import numpy as np
import pytest
import soundfile as sf

from av_seld.errors import AudioFormatError
from av_seld.io import audio as audio_io
from av_seld.io.audio import read_wav, wav_info, write_wav

SR = 24_000


def _noise(num_channels=4, num_samples=2400, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (num_channels, num_samples)).astype(np.float32)


def test_round_trip_within_16_bit_quantisation(tmp_path):
    x = _noise()
    x[:, :2] = [[1.0, -1.0]] * 4  # full scale survives
    path = tmp_path / "fold3_room21_mix001.wav"
    write_wav(path, x)
    assert sf.info(str(path)).subtype == "PCM_16"
    assert wav_info(path) == (4, 24_000, 2400)
    y = read_wav(path)
    assert y.shape == (4, 2400) and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1.01 / 32768)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_reads_what_libsndfile_reads(tmp_path, subtype):
    # 16-bit files take a faster integer path; every subtype reads exactly as libsndfile's float conversion.
    x = _noise(num_samples=3001)
    x[0, :3] = [1.0, -1.0, 0.0]
    path = tmp_path / f"{subtype}.wav"
    sf.write(str(path), x.T, 24_000, subtype=subtype)
    want = sf.read(str(path), dtype="float32", always_2d=True)[0].T
    got = read_wav(path)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_clipping_is_logged_not_wrapped(tmp_path, caplog):
    x = np.array([[0.5, 1.5, -3.0, 0.0]] * 4)
    with caplog.at_level(logging.WARNING, logger="av_seld.io.audio"):
        write_wav(tmp_path / "a.wav", x)
    assert "clipping 8 of 16 samples" in caplog.text
    y = read_wav(tmp_path / "a.wav")
    np.testing.assert_allclose(y[0], [0.5, 1.0, -1.0, 0.0], atol=1.01 / 32768)


def test_checks_can_be_skipped(tmp_path):
    write_wav(tmp_path / "stereo.wav", _noise(2), sample_rate=48_000)
    assert read_wav(tmp_path / "stereo.wav", num_channels=None, sample_rate=None).shape == (2, 2400)


@pytest.mark.parametrize(
    "channels, rate, kwargs, message",
    [
        (2, 24_000, {}, "expected 4 channels, found 2"),
        (4, 48_000, {}, "expected 24000 Hz, found 48000 Hz"),
        (4, 24_000, {"num_channels": 1}, "expected 1 channels, found 4"),
    ],
)
def test_wrong_format_names_file_and_problem(tmp_path, channels, rate, kwargs, message):
    path = tmp_path / "odd_clip.wav"
    write_wav(path, _noise(channels), sample_rate=rate)
    with pytest.raises(AudioFormatError) as info:
        read_wav(path, **kwargs)
    assert "odd_clip.wav" in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("reader", [read_wav, wav_info])
def test_missing_and_garbage_files(tmp_path, reader):
    with pytest.raises(AudioFormatError, match=r"nothing\.wav: file not found"):
        reader(tmp_path / "nothing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF but not really a wave file" * 10)
    with pytest.raises(AudioFormatError, match=r"garbage\.wav: cannot be read as a wav file"):
        reader(garbage)
    flac = tmp_path / "compressed.flac"
    sf.write(str(flac), _noise().T, 24_000)
    with pytest.raises(AudioFormatError, match=r"compressed\.flac: not a wav file \(found FLAC\)"):
        reader(flac)


@pytest.mark.parametrize(
    "bad",
    [np.zeros(100), np.zeros((4, 0)), np.zeros((2400, 4)), np.zeros((4, 10), dtype=np.int16), np.full((4, 10), np.nan)],
    ids=["1d", "empty", "transposed", "int16", "nan"],
)
def test_bad_audio_raises_and_keeps_existing_file(tmp_path, bad):
    path = tmp_path / "keep.wav"
    write_wav(path, _noise())
    before = path.read_bytes()
    with pytest.raises(ValueError, match="keep.wav"):
        write_wav(path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.wav"
    write_wav(path, _noise())
    before = path.read_bytes()

    def half_write(file, data, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"RIFF half a header")
        raise OSError("disk full")

    monkeypatch.setattr(audio_io.sf, "write", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_wav(path, _noise(seed=1))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


def test_write_without_wav_suffix_is_still_wav(tmp_path):
    path = tmp_path / "no_suffix"
    write_wav(path, _noise())
    assert sf.info(str(path)).format == "WAV"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_suffix"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_samples_are_refused_naming_file_and_sample(tmp_path, bad):
    audio = np.zeros((SR, 4), np.float32)
    audio[1200, 2] = bad
    path = tmp_path / "float.wav"
    sf.write(path, audio, SR, subtype="FLOAT")
    with pytest.raises(AudioFormatError, match=r"float.wav: 1 NaN or infinite samples, the first at 0.050 s "
                                               r"\(sample 1200, channel 3\)"):
        read_wav(path)


def test_a_wav_without_samples_is_refused_naming_it(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 4), np.float32), SR, subtype="PCM_16")
    with pytest.raises(AudioFormatError, match=r"empty.wav: has no samples"):
        read_wav(path)


def test_bad_audio_in_a_dataset_is_one_error_line_naming_the_file(tmp_path, capsys):
    from av_seld.cli import main

    assert main(["synth-audio", str(tmp_path), "--num-clips", "1", "--duration", "1", "--split", "dev-train"]) == 0
    wav = tmp_path / "foa_dev" / "dev-train" / "fold1_room0_mix001.wav"
    audio = read_wav(wav)
    audio[1, 100] = np.nan
    sf.write(wav, audio.T, SR, subtype="FLOAT")
    capsys.readouterr()
    assert main(["extract-features", str(tmp_path), "--format", "foa"]) == 2
    err = capsys.readouterr().err
    assert f"error: {wav}: 1 NaN or infinite samples" in err and "Traceback" not in err
    sf.write(wav, np.zeros((0, 4), np.float32), SR, subtype="PCM_16")
    assert main(["extract-features", str(tmp_path), "--format", "foa"]) == 2
    assert f"error: {wav}: has no samples" in capsys.readouterr().err


def test_a_truncated_wav_is_read_with_a_warning_naming_both_lengths(tmp_path, caplog):
    path = tmp_path / "whole.wav"
    write_wav(path, _noise(num_samples=SR))
    assert audio_io.header_frames(path, 4, 2) == SR
    data = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 8 * 12000])  # the header, then 12 000 of the 24 000 samples
    with caplog.at_level(logging.WARNING):
        assert read_wav(cut).shape == (4, 12000)
        wav_info(cut)
    assert caplog.text.count("cut.wav: truncated: its header announces 24000 samples (1.00 s), the file holds 12000 "
                             "(0.50 s)") == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        read_wav(path)
    assert "truncated" not in caplog.text
