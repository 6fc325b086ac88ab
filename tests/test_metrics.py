"""SELD metrics: hand-computed fixtures, and agreement with a literal restatement of the official scorers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import t as student_t

from av_seld.errors import InputError
from av_seld.io.labels import Events, read_reference_csv, write_prediction_csv, write_reference_csv
from av_seld.metrics import compute_scores, evaluate_folders, frame_counts_2024, segment_counts_2023
from av_seld.metrics.simulate import simulate_prediction, simulate_reference

import official_reference as official

C = 13


def approx(value):
    # arccos near 1 (identical directions) leaves ~1e-6 degrees, in the official scorer too.
    return pytest.approx(value, abs=1e-5)


def rows_to_events(rows, with_distance=False):
    """Events from rows (frame, class, source, azimuth, elevation[, distance_m])."""
    if not rows:
        return Events.empty(with_distance)
    cols = list(zip(*rows))
    return Events.from_arrays(*cols[:5], cols[5] if with_distance else None)


def base_reference(distance_m=None):
    """Class 0 at (30, 0) in frames 0..19, class 3 at (-90, 0) in frames 5..14."""
    rows = [(f, 0, 0, 30, 0) for f in range(20)] + [(f, 3, 1, -90, 0) for f in range(5, 15)]
    rows.sort(key=lambda r: r[0])
    if distance_m is not None:
        rows = [r + (distance_m,) for r in rows]
    return rows


def score(ref_rows, pred_rows, edition="2023", average="macro", with_distance=False):
    ref = rows_to_events(ref_rows, with_distance)
    pred = rows_to_events(pred_rows, with_distance)
    if edition == "2023":
        counts = segment_counts_2023(ref, pred)
    else:
        counts = frame_counts_2024(ref, pred, eval_distance=with_distance)
    return compute_scores(counts, edition=edition, average=average, eval_distance=with_distance)


# ----------------------------------------------------------------------------------------------------------------
# 2023 segment level, hand-computed


def test_perfect_prediction_counts_absent_classes_in_macro_average():
    ref = base_reference()
    macro = score(ref, ref)
    assert macro.ER == 0
    # Only classes 0 and 3 occur: the 11 absent classes count with F = 0, LE = 180, LR = 0.
    assert macro.F == approx(2 / 13)
    assert macro.LE == approx(11 * 180 / 13)
    assert macro.LR == approx(2 / 13)
    assert macro.SELD == approx((0 + 11 / 13 + 11 / 13 + 11 / 13) / 4)
    micro = score(ref, ref, average="micro")
    assert (micro.ER, micro.F, micro.LE, micro.LR, micro.SELD) == approx((0, 1, 0, 1, 0))
    assert [row["F"] for row in macro.classwise if row["F"] > 0] == approx([1, 1])


def test_25_degree_bias_is_a_spatial_false_positive():
    ref = base_reference()
    pred = [(f, c, s, az + 25, el) for f, c, s, az, el in ref]
    micro = score(ref, pred, average="micro")
    # 4 (block, class) tracks, each matched with a 25° mean error: no TP, 4 insertions.
    assert micro.ER == approx(1.0)
    assert micro.F == 0
    assert micro.LE == approx(25.0)
    assert micro.LR == approx(1.0)
    assert micro.SELD == approx((1 + 1 + 25 / 180 + 0) / 4)
    macro = score(ref, pred)
    assert macro.LE == approx((2 * 25 + 11 * 180) / 13)


def test_19_degree_bias_is_still_a_true_positive():
    ref = base_reference()
    pred = [(f, c, s, az + 19, el) for f, c, s, az, el in ref]
    micro = score(ref, pred, average="micro")
    assert (micro.ER, micro.F, micro.LE, micro.LR) == approx((0, 1, 19, 1))


def test_missed_class_is_deletions():
    ref = base_reference()
    pred = [r for r in ref if r[1] != 3]
    micro = score(ref, pred, average="micro")
    assert micro.ER == approx(2 / 4)  # class 3 missed in both blocks
    assert micro.F == approx(2 / (2 + 0.5 * 2))
    assert micro.LR == approx(2 / 4)
    assert micro.LE == approx(0)


def test_false_alarm_is_an_insertion():
    ref = base_reference()
    pred = ref + [(f, 5, 0, 0, 0) for f in range(5)]
    micro = score(ref, pred, average="micro")
    assert micro.ER == approx(1 / 4)
    assert micro.F == approx(4 / (4 + 0.5))
    assert micro.LR == approx(1.0)


def test_classwise_rows_count_support_and_errors_per_class():
    ref = base_reference()  # classes 0 and 3, two blocks each
    pred = [r for r in ref if r[1] != 3] + [(f, 5, 0, 0, 0) for f in range(5)]  # class 3 missed, class 5 a false alarm
    # 2023 counts (1 s block, track) pairs, 2024 (frame, event) pairs up to the last reference frame: class 0 has
    # 2 blocks / 19 frames, class 3 2 blocks / 10 frames, and class 5's false alarm lies in 1 block / 5 frames.
    for edition, (support_0, support_3, false_5) in (("2023", (2, 2, 1)), ("2024", (19, 10, 5))):
        rows = {row["class"]: row for row in score(ref, pred, edition=edition).classwise}
        assert (rows[0]["support"], rows[0]["TP"], rows[0]["FP"], rows[0]["FN"], rows[0]["class_ER"]) == \
            (support_0, support_0, 0, 0, 0.0)
        assert (rows[3]["support"], rows[3]["TP"], rows[3]["FN"], rows[3]["class_ER"]) == (support_3, 0, support_3, 1.0)
        # class 5 has no reference: absent (support 0, no error rate of its own), and its false alarms are counted
        assert rows[5]["support"] == 0 and math.isnan(rows[5]["class_ER"]) and rows[5]["FP"] == false_5
        assert all(rows[c]["support"] == 0 and rows[c]["FP"] == 0 for c in (1, 2, 4, 6, 7, 8, 9, 10, 11, 12))


def test_class_error_rate_is_the_error_rate_when_one_class_is_present():
    ref = [(f, 3, 0, 30, 0) for f in range(30)]
    pred = [(f, 3, 0, 30 + (25 if f < 10 else 0), 0) for f in range(5, 30)] + [(f, 3, 1, -90, 0) for f in range(20, 30)]
    for edition in ("2023", "2024"):
        scores = score(ref, pred, edition=edition)
        assert scores.classwise[3]["class_ER"] == approx(scores.ER)
        assert scores.classwise[3]["support"] == (3 if edition == "2023" else 29)


def test_same_class_overlap_hungarian_matching():
    ref = [(f, 0, 0, 30, 0) for f in range(10)] + [(f, 0, 1, -60, 0) for f in range(10)]
    ref.sort(key=lambda r: r[0])
    one_track = [(f, 0, 0, 28, 0) for f in range(10)]
    micro = score(ref, one_track, average="micro")
    # Block 0, class 0: 2 reference tracks, 1 predicted; the prediction matches the 30° source (2° error).
    assert micro.ER == approx(1 / 2)
    assert micro.F == approx(1 / (1 + 0.5 * 1))
    assert micro.LE == approx(2.0)
    assert micro.LR == approx(1 / 2)
    # Both tracks predicted, listed in the other order: Hungarian matching pairs them correctly.
    both = [(f, 0, 0, -61, 0) for f in range(10)] + [(f, 0, 1, 31, 0) for f in range(10)]
    micro = score(ref, both, average="micro")
    assert (micro.ER, micro.F, micro.LE, micro.LR) == approx((0, 1, 1, 1))


def test_class_in_block_but_never_in_the_same_frame_counts_predicted_tracks_as_missed():
    # Official quirk: reference in frames 0-4, prediction in frames 5-9 of the same block -> FN += predicted count, no FP.
    ref = [(f, 0, 0, 30, 0) for f in range(5)] + [(12, 1, 0, 0, 0)]
    pred = [(f, 0, 0, 30, 0) for f in range(5, 10)] + [(f, 0, 1, 90, 0) for f in range(5, 10)] + [(12, 1, 0, 0, 0)]
    pred.sort(key=lambda r: r[0])
    micro = score(ref, pred, average="micro")
    counts = segment_counts_2023(rows_to_events(ref), rows_to_events(pred))
    assert counts.fn[0] == 2 and counts.fp[0] == 0  # two predicted tracks counted as missed
    assert counts.deletions == 2 and counts.insertions == 0
    assert micro.ER == approx(2 / 2)


def test_empty_prediction():
    ref = base_reference()
    macro = score(ref, [])
    assert (macro.ER, macro.F, macro.LE, macro.LR, macro.SELD) == approx((1, 0, 180, 0, 1))


def test_scoring_stops_at_last_reference_frame():
    ref = [(f, 0, 0, 30, 0) for f in range(21)]  # last annotated frame 20: blocks 0 and 1 only (frame 20 dropped)
    extra = [(f, 5, 0, 0, 0) for f in range(20, 40)]  # only after frame 19: not scored
    micro = score(ref, ref[:20] + extra, average="micro")
    assert (micro.ER, micro.F, micro.LE, micro.LR) == approx((0, 1, 0, 1))
    counts = segment_counts_2023(rows_to_events(ref), rows_to_events(ref))
    assert counts.n_ref[0] == 2


# ----------------------------------------------------------------------------------------------------------------
# 2024 frame level, hand-computed


def test_2024_perfect_prediction():
    ref = base_reference(distance_m=1.5)
    s = score(ref, ref, edition="2024", with_distance=True)
    # Frames 0..18 are scored (the last annotated frame, 19, is not).
    assert s.ER == 0 and s.RDE == 0 and s.DE == 0
    # The 2024 scorer normalises with sqrt(|v|^2 + 1e-10): identical unit vectors are 0.00081° apart.
    assert s.LE == pytest.approx(math.degrees(math.acos(1 / (1 + 1e-10))), rel=1e-3)
    assert s.F == approx(2 / 13)
    assert s.LR == approx(2 / 13)
    assert s.SELD == approx(11 / 13)  # absent classes: SELD = nanmean(1 - 0, NaN, NaN) = 1
    counts = frame_counts_2024(rows_to_events(ref, True), rows_to_events(ref, True))
    assert counts.n_ref[0] == 19 and counts.n_ref[3] == 10


def test_2024_bias_and_distance_gate():
    ref = base_reference(distance_m=2.0)
    biased = [(f, c, s, az + 25, el, d) for f, c, s, az, el, d in ref]
    s = score(ref, biased, edition="2024", with_distance=True)
    assert s.ER == approx(1.0)  # 29 insertions over 29 reference DOAs
    assert s.F == 0
    assert s.LE == pytest.approx(25.0, abs=1e-3)
    assert s.RDE == 0
    assert s.SELD == pytest.approx((2 * (1 + 25 / 180 + 0) / 3 + 11) / 13, abs=1e-5)
    far = [(f, c, s, az, el, d * 3.5) for f, c, s, az, el, d in ref]  # relative distance error 2.5 > 1
    s = score(ref, far, edition="2024", with_distance=True, average="micro")
    assert s.F == 0 and s.LE == pytest.approx(0, abs=1e-3) and s.RDE == approx(2.5) and s.DE == approx(5.0)
    near = [(f, c, s, az, el, d * 1.5) for f, c, s, az, el, d in ref]  # relative error 0.5: passes the gate
    s = score(ref, near, edition="2024", with_distance=True, average="micro")
    assert s.F == approx(1.0) and s.RDE == approx(0.5)


# ----------------------------------------------------------------------------------------------------------------
# Against the literal restatement of the official scorers, on random clips


def random_clip(rng, n_frames, with_distance):
    """A reference with same-class overlap and moving sources, and a prediction with every kind of error."""
    ref = simulate_reference(rng, n_frames, num_sources=int(rng.integers(2, 7)), num_classes=5,
                             max_event_frames=60, with_distance=with_distance)
    pred = simulate_prediction(ref, rng, miss_rate=0.15, noise_deg=10.0, false_alarms=int(rng.integers(0, 40)),
                               num_classes=6)
    return ref, pred


def write_pair(tmp_path: Path, name: str, ref: Events, pred: Events, form: str):
    (tmp_path / "ref" / "split").mkdir(parents=True, exist_ok=True)
    (tmp_path / "pred").mkdir(exist_ok=True)
    write_reference_csv(tmp_path / "ref" / "split" / name, ref)
    write_prediction_csv(tmp_path / "pred" / name, pred, form=form)
    return tmp_path / "ref" / "split" / name, tmp_path / "pred" / name


def assert_same(ours, theirs, keys):
    for key in keys:
        a, b = getattr(ours, key), theirs[key]
        if isinstance(b, float) and math.isnan(b):
            assert math.isnan(a), key
        else:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), key


@pytest.mark.parametrize("seed", range(4))
def test_matches_official_scorers_on_random_clips(tmp_path, seed):
    rng = np.random.default_rng(seed)
    ref_paths, pred_paths = [], []
    for k in range(4):
        ref, pred = random_clip(rng, int(rng.integers(40, 160)), with_distance=True)
        form = "cartesian" if k % 2 else "polar"
        if form == "polar":
            pred = Events(pred.frame, pred.class_index, pred.source, pred.azimuth_deg, pred.elevation_deg, None)
        r, p = write_pair(tmp_path, f"fold4_room1_mix{k:03d}.csv", ref, pred, form)
        ref_paths.append(r)
        pred_paths.append(p)
    for average in ("macro", "micro"):
        ours = evaluate_folders(tmp_path / "ref", tmp_path / "pred", average=average).scores
        assert_same(ours, official.score_2023(ref_paths, pred_paths, average), ["ER", "F", "LE", "LR", "SELD"])
    # 2024 needs distances in every prediction: score the Cartesian ones.
    cart = [i for i in range(4) if i % 2]
    sub = tmp_path / "pred2024"
    sub.mkdir()
    for i in cart:
        (sub / pred_paths[i].name).write_text(pred_paths[i].read_text())
    ours = evaluate_folders(tmp_path / "ref", sub, edition="2024").scores
    theirs = official.score_2024([ref_paths[i] for i in cart], [pred_paths[i] for i in cart])
    assert_same(ours, theirs, ["ER", "F", "LE", "LR", "SELD", "DE", "RDE"])


def test_polar_and_cartesian_predictions_score_the_same(tmp_path):
    rng = np.random.default_rng(7)
    ref, pred = random_clip(rng, 120, with_distance=False)
    pred = Events(pred.frame, pred.class_index, pred.source, pred.azimuth_deg, pred.elevation_deg, None)
    write_pair(tmp_path / "a", "clip.csv", ref, pred, "polar")
    write_pair(tmp_path / "b", "clip.csv", ref, pred, "cartesian")
    for edition in ("2023", "2024"):
        a = evaluate_folders(tmp_path / "a" / "ref", tmp_path / "a" / "pred", edition=edition, eval_distance=False)
        b = evaluate_folders(tmp_path / "b" / "ref", tmp_path / "b" / "pred", edition=edition, eval_distance=False)
        for key in ("ER", "F", "LE", "LR", "SELD"):
            assert getattr(a.scores, key) == pytest.approx(getattr(b.scores, key), rel=1e-6, abs=1e-6), key


def test_jackknife_matches_leave_one_out_by_hand(tmp_path):
    rng = np.random.default_rng(3)
    ref_paths, pred_paths = [], []
    for k in range(4):
        ref, pred = random_clip(rng, 100, with_distance=False)
        r, p = write_pair(tmp_path, f"clip{k}.csv", ref, pred, "polar")
        ref_paths.append(r)
        pred_paths.append(p)
    result = evaluate_folders(tmp_path / "ref", tmp_path / "pred", use_jackknife=True)
    keys = ["ER", "F", "LE", "LR", "SELD"]
    full = official.score_2023(ref_paths, pred_paths)
    partial = np.array([[official.score_2023([r for j, r in enumerate(ref_paths) if j != i],
                                             [p for j, p in enumerate(pred_paths) if j != i])[k] for k in keys]
                        for i in range(4)])
    n = 4
    mean = partial.mean(0)
    estimate = np.array([full[k] for k in keys]) - (n - 1) * (mean - np.array([full[k] for k in keys]))
    std_err = np.sqrt((n - 1) * np.mean((partial - mean) ** 2, axis=0))
    t = student_t.ppf(0.975, n - 1)
    for i, key in enumerate(keys):
        lo, hi = result.interval(key)
        assert lo == pytest.approx(estimate[i] - t * std_err[i], rel=1e-9, abs=1e-9)
        assert hi == pytest.approx(estimate[i] + t * std_err[i], rel=1e-9, abs=1e-9)


def test_jackknife_of_one_clip_is_one_error_line(tmp_path, capsys):
    from av_seld.cli import main

    ref, pred = random_clip(np.random.default_rng(0), 20, with_distance=False)
    write_pair(tmp_path, "only.csv", ref, pred, "polar")
    assert main(["evaluate", str(tmp_path / "ref"), str(tmp_path / "pred"), "--jackknife"]) == 2
    err = capsys.readouterr().err
    assert f"av-seld evaluate: error: {tmp_path / 'pred'}: the jackknife leaves one clip out at a time, so it needs " \
           "at least two clips; found 1" in err


# ----------------------------------------------------------------------------------------------------------------
# Folder scoring, JSON and errors


def test_evaluate_folders_json_and_unscored_references(tmp_path):
    ref = rows_to_events(base_reference())
    write_pair(tmp_path, "a.csv", ref, ref, "polar")
    write_reference_csv(tmp_path / "ref" / "split" / "b.csv", ref)  # no prediction: not scored, listed
    result = evaluate_folders(tmp_path / "ref", tmp_path / "pred")
    assert result.clips == ["a.csv"] and result.unscored_references == ["b.csv"]
    result.write_json(tmp_path / "out.json")
    data = json.loads((tmp_path / "out.json").read_text())
    assert set(data) >= {"ER", "F", "LE", "LR", "SELD", "classwise"}
    assert data["F"] == pytest.approx(2 / 13) and len(data["classwise"]) == 13
    assert data["classwise"][3]["name"] == "telephone" and data["classwise"][3]["F"] == pytest.approx(1.0)
    assert "SELD score" in result.format_table()


def test_prediction_without_reference_is_an_error(tmp_path):
    ref = rows_to_events(base_reference())
    write_pair(tmp_path, "a.csv", ref, ref, "polar")
    write_prediction_csv(tmp_path / "pred" / "zzz.csv", ref)
    with pytest.raises(InputError, match="zzz.csv.*no reference file"):
        evaluate_folders(tmp_path / "ref", tmp_path / "pred")


def test_2024_distance_needs_distances_in_predictions(tmp_path):
    ref = rows_to_events(base_reference(distance_m=1.0), with_distance=True)
    write_pair(tmp_path, "a.csv", ref, Events(ref.frame, ref.class_index, ref.source, ref.azimuth_deg,
                                               ref.elevation_deg, None), "polar")
    with pytest.raises(InputError, match="a.csv: has no distance column"):
        evaluate_folders(tmp_path / "ref", tmp_path / "pred", edition="2024")
    directions_only = evaluate_folders(tmp_path / "ref", tmp_path / "pred", edition="2024", eval_distance=False)
    assert directions_only.scores.RDE is None and directions_only.scores.ER == 0


# ----------------------------------------------------------------------------------------------------------------
# Real STARSS22 reference files (../shared/data), perturbed into predictions


@pytest.mark.shared_data
def test_matches_official_scorer_on_real_starss_labels(shared_data_dir, tmp_path):
    refs = sorted((shared_data_dir / "starss22_labels").glob("*/*.csv"))[::8]  # 9 of the 67 real files
    assert refs, "no STARSS22 label files found"
    rng = np.random.default_rng(0)
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for path in refs:
        write_prediction_csv(pred_dir / path.name, simulate_prediction(read_reference_csv(path), rng, noise_deg=15.0, false_alarms=50), "cartesian")
    result = evaluate_folders(shared_data_dir / "starss22_labels", pred_dir)
    assert len(result.clips) == len(refs) and len(result.unscored_references) == 67 - len(refs)
    theirs = official.score_2023(refs, [pred_dir / p.name for p in refs])
    assert_same(result.scores, theirs, ["ER", "F", "LE", "LR", "SELD"])
    np.testing.assert_allclose([row["F"] for row in result.scores.classwise], theirs["classwise_F"], rtol=1e-9)
    np.testing.assert_allclose([row["LE"] for row in result.scores.classwise], theirs["classwise_LE"], rtol=1e-9)
