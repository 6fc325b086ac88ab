"""Score a folder of prediction CSVs against reference CSVs (what ``av-seld evaluate`` runs).

As in the official scorer, the clips scored are the prediction files; each needs a reference of the same file name.
References without a prediction are not scored and are listed in the result (and logged).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from av_seld.classes import CLASS_NAMES, NUM_CLASSES
from av_seld.errors import InputError
from av_seld.io.dataset import data_files
from av_seld.io.labels import Events, read_prediction_csv, read_reference_csv
from av_seld.metrics.seld import (
    JackknifeResult,
    SELDCounts,
    SELDScores,
    compute_scores,
    frame_counts_2024,
    jackknife,
    segment_counts_2023,
)
from av_seld.utils.atomic import is_listed, write_text_atomic
from av_seld.utils.text import count

log = logging.getLogger(__name__)


def collect_csvs(folder: str | os.PathLike, what: str) -> dict[str, Path]:
    """CSV files of ``folder``, flat or one level of split sub-folders, keyed by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, f"{what} folder not found")
    found: dict[str, Path] = {}
    subfolders = sorted(path for path in folder.iterdir() if path.is_dir() and is_listed(path))
    for path in data_files(folder, ".csv") + [p for sub in subfolders for p in data_files(sub, ".csv")]:
        if path.name in found:
            raise InputError(path, f"{what} file name also used by {found[path.name]}; clip names must be unique")
        found[path.name] = path
    return found


@dataclass
class Evaluation:
    """Result of scoring a folder: scores, the clips scored and optional jackknife intervals."""

    scores: SELDScores
    clips: list[str]
    eval_distance: bool
    intervals: JackknifeResult | None = None
    unscored_references: list[str] = field(default_factory=list)
    # the DCASE2024 scores with distance of the same predictions, when they were computed alongside (training and
    # `av-seld test` of a model with distance outputs, scored with the 2023 metrics)
    distance_2024: "Evaluation | None" = None

    def interval(self, key: str) -> tuple[float, float] | None:
        if self.intervals is None:
            return None
        index = list(self.scores.summary()).index(key)
        lo, hi = self.intervals.interval[index]
        return float(lo), float(hi)

    def to_dict(self) -> dict:
        """JSON-ready summary: F and LR as fractions, LE in degrees, DE in metres; NaN becomes null."""
        out: dict = {"edition": self.scores.edition, "average": self.scores.average, "num_clips": len(self.clips)}
        out.update(self.scores.summary())
        out["classwise"] = [{**row, "name": CLASS_NAMES[row["class"]] if row["class"] < NUM_CLASSES else ""}
                            for row in self.scores.classwise]
        if self.intervals is not None:
            out["confidence_intervals_95"] = {k: self.interval(k) for k in self.scores.summary()}
        out["unscored_references"] = self.unscored_references
        return _nan_to_none(out)

    def write_json(self, path: str | os.PathLike) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def format_table(self) -> str:
        s = self.scores
        if s.edition == "2023":
            title = "DCASE2023 segment-level SELD metrics (1 s blocks, 20° threshold)"
        else:
            title = "DCASE2024 frame-level SELD metrics (20° threshold" + (
                ", relative distance gate 1.0)" if self.eval_distance else ", distance not evaluated)")
        lines = [f"{title}, {s.average} average, {count(len(self.clips), 'clip')}"]
        ci = (lambda k, scale=1.0, fmt="{:.2f}": "" if self.interval(k) is None else
              "  [" + ", ".join(fmt.format(v * scale) for v in self.interval(k)) + "]")
        lines.append(f"  SELD score  {s.SELD:7.4f}{ci('SELD', 1, '{:.4f}')}")
        lines.append(f"  ER20°       {s.ER:7.4f}{ci('ER', 1, '{:.4f}')}")
        lines.append(f"  F20°        {100 * s.F:6.2f} %{ci('F', 100)}")
        lines.append(f"  {'LE_CD' if s.edition == '2023' else 'DOAE_CD'}{'':<{7 if s.edition == '2023' else 5}}"
                     f"{s.LE:6.2f}°{ci('LE')}")
        lines.append(f"  LR_CD       {100 * s.LR:6.2f} %{ci('LR', 100)}")
        if s.RDE is not None:
            lines.append(f"  DE_CD       {s.DE:6.3f} m{ci('DE', 1, '{:.3f}')}")
            lines.append(f"  RDE_CD      {s.RDE:6.3f}{ci('RDE', 1, '{:.3f}')}")
        if s.classwise:
            head = f"  {'class':<24}{'F20':>8}{'LE':>8}{'LR':>8}{'SELD':>8}" + (f"{'RDE':>8}" if s.RDE is not None else "")
            lines += ["", head]
            for row in s.classwise:
                name = CLASS_NAMES[row["class"]] if row["class"] < NUM_CLASSES else ""
                line = (f"  {row['class']:>2} {name:<21}{100 * row['F']:7.1f}%{row['LE']:7.1f}°{100 * row['LR']:7.1f}%"
                        f"{row['SELD']:8.3f}")
                if s.RDE is not None:
                    line += f"{row['RDE']:8.3f}"
                lines.append(line)
        if self.unscored_references:
            unscored = len(self.unscored_references)
            verb = "was" if unscored == 1 else "were"
            lines.append(f"\n  {count(unscored, 'reference file')} had no prediction and {verb} not scored")
        return "\n".join(lines)


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def clip_counts(reference: Events, prediction: Events, *, edition: str, eval_distance: bool,
                num_classes: int = NUM_CLASSES, doa_threshold_deg: float = 20.0,
                rel_distance_threshold: float = 1.0) -> SELDCounts:
    """Counts of one clip for ``edition`` ('2023' or '2024')."""
    if edition == "2023":
        return segment_counts_2023(reference, prediction, num_classes=num_classes,
                                   doa_threshold_deg=doa_threshold_deg)
    return frame_counts_2024(reference, prediction, num_classes=num_classes, doa_threshold_deg=doa_threshold_deg,
                             rel_distance_threshold=rel_distance_threshold, eval_distance=eval_distance)


def evaluate_folders(reference_dir: str | os.PathLike, prediction_dir: str | os.PathLike, *, edition: str = "2023",
                     average: str = "macro", use_jackknife: bool = False, eval_distance: bool | None = None,
                     doa_threshold_deg: float = 20.0, rel_distance_threshold: float = 1.0) -> Evaluation:
    """Score every prediction CSV of ``prediction_dir`` against the reference CSV of the same name.

    ``eval_distance`` (2024 only): None evaluates distance when every scored reference has a distance column (a
    file without rows has no columns and fits either way).
    """
    if edition not in ("2023", "2024"):
        raise ValueError(f"edition must be '2023' or '2024', got {edition!r}")
    references = collect_csvs(reference_dir, "reference")
    predictions = collect_csvs(prediction_dir, "prediction")
    if not predictions:
        raise InputError(prediction_dir, "no prediction CSV files found")
    for name, path in predictions.items():
        if name not in references:
            raise InputError(path, f"no reference file named {name} in {reference_dir}")
    names = sorted(predictions)
    if use_jackknife and len(names) < 2:
        raise InputError(prediction_dir, f"the jackknife leaves one clip out at a time, so it needs at least two "
                                         f"clips; found {len(names)}")
    refs = {n: read_reference_csv(references[n]) for n in names}
    preds = {n: read_prediction_csv(predictions[n]) for n in names}
    for n in names:
        if len(refs[n]) == 0:
            log.warning("%s: reference has no events; the clip adds nothing to the scores", references[n])

    if edition == "2023":
        eval_distance = False
    elif eval_distance is None:
        eval_distance = all(r.has_distance or not len(r) for r in refs.values()) and any(
            r.has_distance for r in refs.values())
    if eval_distance:
        for n in names:
            if len(refs[n]) and not refs[n].has_distance:
                raise InputError(references[n], "has no distance column, which the 2024 distance evaluation needs")
            if len(preds[n]) and not preds[n].has_distance:
                raise InputError(predictions[n], "has no distance column; the 2024 distance evaluation needs the "
                                 "7-column Cartesian form (frame, class, track, x, y, z, distance in metres)")
    per_clip = [clip_counts(refs[n], preds[n], edition=edition, eval_distance=eval_distance,
                            doa_threshold_deg=doa_threshold_deg, rel_distance_threshold=rel_distance_threshold)
                for n in names]
    total = per_clip[0]
    for c in per_clip[1:]:
        total = total + c

    def score(counts: SELDCounts) -> SELDScores:
        return compute_scores(counts, edition=edition, average=average, eval_distance=eval_distance)

    intervals = None
    if use_jackknife:
        intervals = jackknife(per_clip, lambda c: score(c).as_vector())
    unscored = sorted(set(references) - set(predictions))
    if unscored:
        log.warning("%d reference file(s) have no prediction and are not scored (as in the official scorer): %s",
                    len(unscored), ", ".join(unscored[:5]) + (" ..." if len(unscored) > 5 else ""))
    return Evaluation(score(total), names, bool(eval_distance), intervals, unscored)

