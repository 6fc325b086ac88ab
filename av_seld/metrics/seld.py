"""DCASE SELD metrics, giving the numbers the official DCASE scorers give.

Two editions (docs/conventions.md, "Metrics"):

``2023`` — segment level, the DCASE2023 Task 3 scorer (polar coordinates).
    Label frames are grouped in 1 s blocks; per block and class the track count is the most same-class DOAs in any
    frame. Where a class is in both reference and prediction, DOAs are matched frame by frame with the Hungarian
    algorithm on angular distance; a reference track (its position among the frame's same-class rows) is a true
    positive when its mean matched error over the block is <= 20 degrees. ER20 = (S + D + I) / N_ref,
    F20 = TP / (TP + FP_spatial + (FP + FN) / 2), LE_CD = mean matched error, LR_CD = matched / (matched + missed).
    SELD = mean(ER, 1 - F, LE / 180, 1 - LR).
``2024`` — frame level, the DCASE2024 Task 3 scorer (Cartesian coordinates, distance evaluated).
    Per frame and class, Hungarian matching; a matched pair is a true positive when its angular error is <= 20 degrees
    and its relative distance error |d - d_ref| / d_ref <= 1. DOAE_CD / RDE_CD are mean errors over matched pairs.
    SELD = mean(1 - F, DOAE / 180, RDE).

Quirks of the official scorers reproduced on purpose (tests pin each):
- macro averages run over all classes, so a class absent from the reference counts with F = 0 and, in 2023,
  LE = 180 and LR = 0; in 2024 DOAE / RDE of never-matched classes are NaN and left out of their averages;
- scoring stops at the last annotated reference frame ``m``: 2023 scores blocks ``0 .. ceil(m / 10) - 1``
  (so ``m`` itself is dropped when it is a multiple of 10), 2024 scores frames ``0 .. m - 1``;
- 2023: a class in both reference and prediction in a block but never in the same frame adds the *predicted* track
  count to FN;
- only files present in the prediction folder are scored (see ``av_seld.metrics.evaluate``).

Counts are additive over clips (:class:`SELDCounts`), which makes jackknife intervals cheap.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import t as student_t

from av_seld.classes import NUM_CLASSES
from av_seld.geometry import angular_distance_deg, angular_distance_xyz_deg, sph_to_cart
from av_seld.io.labels import Events

EPS = np.finfo(float).eps
EDITIONS = ("2023", "2024")
AVERAGES = ("macro", "micro")


@dataclass
class SELDCounts:
    """Additive statistics over one or more clips; arrays are per class, (C,)."""

    tp: np.ndarray
    fp: np.ndarray
    fp_spatial: np.ndarray
    fn: np.ndarray
    n_ref: np.ndarray
    de_tp: np.ndarray  # matched reference tracks (2023) or matched pairs (2024)
    de_fp: np.ndarray
    de_fn: np.ndarray
    total_doa_error: np.ndarray  # degrees, summed over matched tracks / pairs
    total_dist_error: np.ndarray  # metres (2024 only)
    total_rel_dist_error: np.ndarray  # (2024 only)
    class_errors: np.ndarray  # S + D + I counted within each class alone: sum over blocks of max(FP + spatial FP, FN)
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @classmethod
    def zeros(cls, num_classes: int = NUM_CLASSES) -> "SELDCounts":
        arrays = {f.name: np.zeros(num_classes) for f in fields(cls) if f.type == "np.ndarray"}
        return cls(**arrays)

    def __add__(self, other: "SELDCounts") -> "SELDCounts":
        return SELDCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def num_classes(self) -> int:
        return len(self.tp)


@dataclass
class SELDScores:
    """Scores of one evaluation. F and LR are fractions, LE in degrees, distance error in metres.

    ``classwise`` (macro average only) has one row per class with the same keys as the summary.
    """

    edition: str
    average: str
    ER: float
    F: float
    LE: float
    LR: float
    SELD: float
    DE: float | None = None  # 2024: mean absolute distance error, metres
    RDE: float | None = None  # 2024: mean relative distance error
    classwise: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        keys = ["ER", "F", "LE", "LR", "SELD"] + (["DE", "RDE"] if self.RDE is not None else [])
        return {k: getattr(self, k) for k in keys}

    def as_vector(self) -> np.ndarray:
        """Summary values followed by the classwise table (row-major), for jackknife resampling."""
        summary = self.summary()
        per_metric = [row[key] for key in summary for row in self.classwise]  # metric-major, like the official table
        return np.array(list(summary.values()) + per_metric, dtype=np.float64)


# --------------------------------------------------------------------------------------------------------------------
# Grouping and matching shared by both editions


@dataclass(frozen=True)
class _Groups:
    """Rows grouped by (frame, class); within a group rows keep file order."""

    key: np.ndarray  # (G,) frame * C + class, ascending
    start: np.ndarray  # (G,) offset of the group in ``order``
    count: np.ndarray  # (G,)
    order: np.ndarray  # (N,) row indices sorted by key, stable


def _group(events: Events, num_classes: int) -> _Groups:
    key = events.frame * num_classes + events.class_index
    order = np.argsort(key, kind="stable")
    uniq, start, count = np.unique(key[order], return_index=True, return_counts=True)
    return _Groups(uniq, start, count, order)


@dataclass(frozen=True)
class _Matches:
    """Hungarian matches of every (frame, class) present in both reference and prediction."""

    frame: np.ndarray  # (M,)
    class_index: np.ndarray  # (M,)
    ref_row: np.ndarray  # (M,) row index into the reference events
    ref_pos: np.ndarray  # (M,) position of that row among its frame's same-class reference rows
    pred_row: np.ndarray  # (M,)
    doa_error: np.ndarray  # (M,) degrees


def _match(ref: Events, pred: Events, ref_g: _Groups, pred_g: _Groups, num_classes: int, distance) -> _Matches:
    """Per (frame, class) in both, assign reference rows to prediction rows minimising total angular distance.

    ``distance(ref_rows, pred_rows)`` gives the pairwise distances of equal-length row index arrays.
    """
    common, ri, pi = np.intersect1d(ref_g.key, pred_g.key, assume_unique=True, return_indices=True)
    n_ref, n_pred = ref_g.count[ri], pred_g.count[pi]
    single = (n_ref == 1) & (n_pred == 1)
    # One reference and one prediction: the common case, done in bulk.
    s_ref = ref_g.order[ref_g.start[ri[single]]]
    s_pred = pred_g.order[pred_g.start[pi[single]]]
    parts = [(common[single], s_ref, np.zeros(len(s_ref), dtype=np.int64), s_pred, distance(s_ref, s_pred))]
    for g in np.flatnonzero(~single):
        rows_r = ref_g.order[ref_g.start[ri[g]]: ref_g.start[ri[g]] + n_ref[g]]
        rows_p = pred_g.order[pred_g.start[pi[g]]: pred_g.start[pi[g]] + n_pred[g]]
        rr, pp = np.repeat(rows_r, len(rows_p)), np.tile(rows_p, len(rows_r))
        cost = distance(rr, pp).reshape(len(rows_r), len(rows_p))
        row, col = linear_sum_assignment(cost)
        parts.append((np.full(len(row), common[g]), rows_r[row], row, rows_p[col], cost[row, col]))
    key, ref_row, ref_pos, pred_row, err = (np.concatenate(p) for p in zip(*parts))
    # Matches in frame order, as the official loops accumulate them.
    order = np.argsort(key, kind="stable")
    key = key[order]
    return _Matches(key // num_classes, key % num_classes, ref_row[order], ref_pos[order], pred_row[order],
                    err[order])


def _sdi(loc_fp: np.ndarray, loc_fn: np.ndarray) -> tuple[int, int, int]:
    """Substitutions, deletions and insertions from per-block (or per-frame) FP and FN totals."""
    return (int(np.minimum(loc_fp, loc_fn).sum()), int(np.maximum(0, loc_fn - loc_fp).sum()),
            int(np.maximum(0, loc_fp - loc_fn).sum()))


# --------------------------------------------------------------------------------------------------------------------
# 2023: segment level


def segment_counts_2023(reference: Events, prediction: Events, *, num_classes: int = NUM_CLASSES,
                        doa_threshold_deg: float = 20.0, frames_per_block: int = 10) -> SELDCounts:
    """Statistics of one clip for the DCASE2023 segment-level metrics (polar coordinates, degrees)."""
    counts = SELDCounts.zeros(num_classes)
    if len(reference) == 0:
        return counts
    last = int(reference.frame.max())
    n_blocks = math.ceil(last / frames_per_block)
    limit = n_blocks * frames_per_block
    ref = reference.select(reference.frame < limit)
    pred = prediction.select(prediction.frame < limit)
    ref_g, pred_g = _group(ref, num_classes), _group(pred, num_classes)

    # Track count per (block, class): the most same-class DOAs in any frame of the block.
    def tracks_per_block(g: _Groups) -> np.ndarray:
        out = np.zeros((n_blocks, num_classes), dtype=np.int64)
        np.maximum.at(out, ((g.key // num_classes) // frames_per_block, g.key % num_classes), g.count)
        return out

    nb_ref, nb_pred = tracks_per_block(ref_g), tracks_per_block(pred_g)

    def polar_distance(r, p):
        return angular_distance_deg(ref.azimuth_deg[r], ref.elevation_deg[r], pred.azimuth_deg[p],
                                    pred.elevation_deg[p])

    m = _match(ref, pred, ref_g, pred_g, num_classes, polar_distance)
    # Mean matched error per (block, class, reference track position).
    n_pos = int(ref_g.count.max()) if len(ref_g.count) else 1
    err_sum = np.zeros((n_blocks, num_classes, n_pos))
    err_cnt = np.zeros((n_blocks, num_classes, n_pos), dtype=np.int64)
    idx = (m.frame // frames_per_block, m.class_index, m.ref_pos)
    np.add.at(err_sum, idx, m.doa_error)
    np.add.at(err_cnt, idx, 1)
    matched = err_cnt > 0
    mean_err = np.divide(err_sum, err_cnt, out=np.zeros_like(err_sum), where=matched)
    n_matched = matched.sum(-1)
    n_close = (matched & (mean_err <= doa_threshold_deg)).sum(-1)
    n_far = n_matched - n_close

    both = (nb_ref > 0) & (nb_pred > 0)
    none_matched = both & (n_matched == 0)
    some_matched = both & (n_matched > 0)
    ref_only = (nb_ref > 0) & (nb_pred == 0)
    pred_only = (nb_ref == 0) & (nb_pred > 0)
    surplus = np.where(some_matched, np.maximum(0, nb_pred - nb_ref), 0)
    shortfall = np.where(some_matched, np.maximum(0, nb_ref - nb_pred), 0)

    fn = np.where(none_matched, nb_pred, 0) + shortfall + np.where(ref_only, nb_ref, 0)  # (B, C)
    fp = surplus + np.where(pred_only, nb_pred, 0)
    fp_spatial = np.where(some_matched, n_far, 0)
    counts.n_ref = nb_ref.sum(0).astype(float)
    counts.tp = np.where(some_matched, n_close, 0).sum(0).astype(float)
    counts.fp_spatial = fp_spatial.sum(0).astype(float)
    counts.fp = fp.sum(0).astype(float)
    counts.de_fp = counts.fp.copy()
    counts.fn = fn.sum(0).astype(float)
    counts.de_fn = counts.fn.copy()
    counts.de_tp = np.where(some_matched, n_matched, 0).sum(0).astype(float)
    counts.total_doa_error = np.where(some_matched[..., None], mean_err, 0).sum((0, 2))
    counts.substitutions, counts.deletions, counts.insertions = _sdi((fp + fp_spatial).sum(1), fn.sum(1))
    counts.class_errors = np.maximum(fp + fp_spatial, fn).sum(0).astype(float)
    return counts


# --------------------------------------------------------------------------------------------------------------------
# 2024: frame level, with distance


def frame_counts_2024(reference: Events, prediction: Events, *, num_classes: int = NUM_CLASSES,
                      doa_threshold_deg: float = 20.0, distance_threshold_m: float = math.inf,
                      rel_distance_threshold: float = 1.0, eval_distance: bool = True) -> SELDCounts:
    """Statistics of one clip for the DCASE2024 frame-level metrics (Cartesian DOAs, distances in metres)."""
    counts = SELDCounts.zeros(num_classes)
    if eval_distance and any(len(e) and not e.has_distance for e in (reference, prediction)):
        # an empty file has no columns to tell, so it fits either way
        raise ValueError("distance evaluation needs distances in both reference and prediction")
    if len(reference) == 0:
        return counts
    n_frames = int(reference.frame.max())
    ref = reference.select(reference.frame < n_frames)
    pred = prediction.select(prediction.frame < n_frames)
    ref_g, pred_g = _group(ref, num_classes), _group(pred, num_classes)
    ref_xyz, pred_xyz = sph_to_cart(ref.azimuth_deg, ref.elevation_deg), sph_to_cart(pred.azimuth_deg,
                                                                                      pred.elevation_deg)

    def cartesian_distance(r, p):
        return angular_distance_xyz_deg(ref_xyz[r], pred_xyz[p])

    m = _match(ref, pred, ref_g, pred_g, num_classes, cartesian_distance)
    fail = m.doa_error > doa_threshold_deg
    if eval_distance and len(m.ref_row):  # no pairs: nothing to read (an empty prediction may lack the column)
        dist_err = np.abs(ref.distance_m[m.ref_row] - pred.distance_m[m.pred_row])
        rel_err = dist_err / (ref.distance_m[m.ref_row] + EPS)
        fail |= (dist_err > distance_threshold_m) | (rel_err > rel_distance_threshold)
        np.add.at(counts.total_dist_error, m.class_index, dist_err)
        np.add.at(counts.total_rel_dist_error, m.class_index, rel_err)
    np.add.at(counts.total_doa_error, m.class_index, m.doa_error)

    nr = np.zeros((n_frames, num_classes), dtype=np.int64)
    npred = np.zeros((n_frames, num_classes), dtype=np.int64)
    nr[ref_g.key // num_classes, ref_g.key % num_classes] = ref_g.count
    npred[pred_g.key // num_classes, pred_g.key % num_classes] = pred_g.count
    n_fail = np.zeros((n_frames, num_classes), dtype=np.int64)
    np.add.at(n_fail, (m.frame, m.class_index), fail)

    both = (nr > 0) & (npred > 0)
    matched = np.where(both, np.minimum(nr, npred), 0)
    fn = np.where(both, np.maximum(0, nr - npred), nr)  # also every reference DOA of a frame without prediction
    fp = np.where(both, np.maximum(0, npred - nr), npred)
    counts.n_ref = nr.sum(0).astype(float)
    counts.tp = (matched - n_fail).sum(0).astype(float)
    counts.de_tp = matched.sum(0).astype(float)
    counts.fp = fp.sum(0).astype(float)
    counts.de_fp = counts.fp.copy()
    counts.fp_spatial = n_fail.sum(0).astype(float)
    counts.fn = fn.sum(0).astype(float)
    counts.de_fn = counts.fn.copy()
    counts.substitutions, counts.deletions, counts.insertions = _sdi((fp + n_fail).sum(1), fn.sum(1))
    counts.class_errors = np.maximum(fp + n_fail, fn).sum(0).astype(float)
    return counts


# --------------------------------------------------------------------------------------------------------------------
# Scores from counts


def _nanmean(values, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as in the official scorer
        return np.nanmean(values, axis=axis)


def compute_scores(counts: SELDCounts, *, edition: str = "2023", average: str = "macro",
                   eval_distance: bool = True) -> SELDScores:
    """Final scores from accumulated counts, averaged per class (``macro``) or over all events (``micro``)."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {EDITIONS}, got {edition!r}")
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    c = counts
    n_classes = c.num_classes
    er = (c.substitutions + c.deletions + c.insertions) / (c.n_ref.sum() + EPS)
    with_distance = edition == "2024" and eval_distance
    missing = 180.0 if edition == "2023" else np.nan

    if average == "micro":
        f = c.tp.sum() / (EPS + c.tp.sum() + c.fp_spatial.sum() + 0.5 * (c.fp.sum() + c.fn.sum()))
        matched = c.de_tp.sum()
        le = c.total_doa_error.sum() / float(matched + EPS) if matched else missing
        de = c.total_dist_error.sum() / float(matched + EPS) if matched else np.nan
        rde = c.total_rel_dist_error.sum() / float(matched + EPS) if matched else np.nan
        lr = matched / (EPS + matched + c.de_fn.sum())
        seld = _seld(edition, with_distance, er, f, le, lr, rde)
        return SELDScores(edition, average, float(er), float(f), float(le), float(lr), float(seld),
                          float(de) if with_distance else None, float(rde) if with_distance else None)

    f = c.tp / (EPS + c.tp + c.fp_spatial + 0.5 * (c.fp + c.fn))
    never = c.de_tp == 0
    le = np.where(never, missing, c.total_doa_error / (c.de_tp + EPS))
    de = np.where(never, np.nan, c.total_dist_error / (c.de_tp + EPS))
    rde = np.where(never, np.nan, c.total_rel_dist_error / (c.de_tp + EPS))
    lr = c.de_tp / (EPS + c.de_tp + c.de_fn)
    seld = _seld(edition, with_distance, np.repeat(er, n_classes), f, le, lr, rde)
    classwise = []
    # Per class, beside the scores: how many reference events it had (its support; 0: absent from the clips, its
    # LE is then the official 180° and F 0 by convention) and its own error rate, S + D + I counted within the class.
    class_er = np.divide(c.class_errors, c.n_ref, out=np.full(n_classes, np.nan), where=c.n_ref > 0)
    for k in range(n_classes):
        row = {"class": k, "ER": float(er), "F": float(f[k]), "LE": float(le[k]), "LR": float(lr[k]),
               "SELD": float(seld[k]), "support": int(c.n_ref[k]), "class_ER": float(class_er[k]),
               "TP": int(c.tp[k]), "FP": int(c.fp[k] + c.fp_spatial[k]), "FN": int(c.fn[k])}
        if with_distance:
            row.update(DE=float(de[k]), RDE=float(rde[k]))
        classwise.append(row)
    mean_le = float(le.mean()) if edition == "2023" else float(_nanmean(le))
    return SELDScores(edition, average, float(er), float(f.mean()), mean_le, float(lr.mean()), float(seld.mean()),
                      float(_nanmean(de)) if with_distance else None,
                      float(_nanmean(rde)) if with_distance else None, classwise)


def _seld(edition, with_distance, er, f, le, lr, rde):
    if edition == "2023":
        return np.mean([er, 1 - f, le / 180, 1 - lr], 0)
    if with_distance:
        return _nanmean(np.array([1 - f, le / 180, rde], dtype=np.float64), axis=0)
    return _nanmean(np.array([er, 1 - f, le / 180, 1 - lr], dtype=np.float64), axis=0)


# --------------------------------------------------------------------------------------------------------------------
# Jackknife confidence intervals


@dataclass(frozen=True)
class JackknifeResult:
    estimate: np.ndarray  # (V,) bias-corrected estimates, in the order of SELDScores.as_vector()
    bias: np.ndarray
    std_err: np.ndarray
    interval: np.ndarray  # (V, 2) lower and upper bounds


def jackknife(per_clip: list[SELDCounts], score, significance_level: float = 0.05) -> JackknifeResult:
    """Leave-one-clip-out jackknife of every score, as the official scorer computes it.

    ``score`` maps summed counts to a score vector (e.g. ``lambda c: compute_scores(c).as_vector()``).
    """
    if not 0 < significance_level < 1:
        raise ValueError("significance_level must be in (0, 1)")
    n = len(per_clip)
    if n < 2:
        raise ValueError("jackknife needs at least two clips")
    total = per_clip[0]
    for c in per_clip[1:]:
        total = total + c
    global_values = score(total)
    partial = []
    for leave in range(n):
        others = [c for i, c in enumerate(per_clip) if i != leave]
        acc = others[0]
        for c in others[1:]:
            acc = acc + c
        partial.append(score(acc))
    partial = np.array(partial)
    mean = partial.mean(0)
    bias = (n - 1) * (mean - global_values)
    std_err = np.sqrt((n - 1) * np.mean((partial - mean) ** 2, axis=0))
    estimate = global_values - bias
    t_value = student_t.ppf(1 - significance_level / 2, n - 1)
    interval = np.stack([estimate - t_value * std_err, estimate + t_value * std_err], axis=-1)
    return JackknifeResult(estimate, bias, std_err, interval)
