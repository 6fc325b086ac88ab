"""Self-contained HTML reports of a run: what ``av-seld report RUN_DIR`` writes.

RUN_DIR layout read (the trainer writes it; everything but one ``scores.json`` or one log is optional)::

    RUN_DIR/
      train_log.csv                      optional  header step,epoch,loss,lr,grad_norm   (training.hooks.LogHook)
      val_log.csv                        optional  header step,epoch,ER,F,LE,LR,SELD,... (training.hooks.ValidationHook)
      eval/<name>/scores.json            REQUIRED per evaluation: Evaluation.write_json output
      eval/<name>/pred/*.csv             optional  prediction CSVs (flat or one level of split sub-folders)
      eval/<name>/ref/*.csv              optional  reference CSVs of the same file names, or instead:
      eval/<name>/reference.json         optional  {"reference_dir": "PATH"} (absolute, or relative to eval/<name>)
      eval/<name>/overlays/<clip>.mp4    optional  overlay videos (``av-seld visualize``), matched to clips by stem;
      eval/<name>/overlays/<clip>_frame*.png  optional  their snapshots (the first one is shown in the report)
      eval/comparison.json               optional  systems scored side by side (``av-seld demo``: trained, video
                                                   masked, untrained; see av_seld.demo.write_comparison)
      config.yaml                        optional  the resolved recipe (shown, with the model's size)
      best.pt, last.pt                   optional  checkpoints (step, best score, calibrated thresholds)

A folder under ``eval/`` without ``scores.json`` is skipped with a warning. A run needs at least one evaluation or
one of the two logs, else :class:`InputError`.

Written (default ``RUN_DIR/report/``)::

    index.html       the run (recipe, model size, checkpoints), a summary table of every evaluation, the systems
                     comparison and the training curves, linking to:
    eval_<name>.html per evaluation: metrics table, per-class counts and scores (classes absent from the reference
                     marked so), per-class bars, per-clip scores (when references are found), azimuth/elevation
                     plots of the first ``max_clips`` clips, and links to their overlay videos

Pages need no network: CSS is inline, plots are embedded as base64 PNG, and videos are linked by relative path
(``../eval/<name>/overlays/<clip>.mp4``; H.264 when the system ffmpeg wrote them, which browsers play; mp4v videos
open in a desktop player).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from av_seld.classes import CLASS_NAMES, NUM_CLASSES
from av_seld.errors import InputError
from av_seld.utils.atomic import write_text_atomic
from av_seld.utils.text import count

logger = logging.getLogger(__name__)

SUMMARY_KEYS = ("SELD", "ER", "F", "LE", "LR", "DE", "RDE")
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; background: #fafafa; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.92em; background: white; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #eef1f5; } td.name, th.name { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; background: white; }
.meta { color: #666; font-size: 0.9em; } .clip { margin-bottom: 28px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border: 1px solid #444; }
tr.absent td { color: #999; }
pre { background: white; border: 1px solid #ddd; padding: 8px; font-size: 0.85em; max-height: 420px; overflow: auto; }
"""
COUNT_KEYS = ("support", "TP", "FP", "FN", "class_ER")  # per-class counts of scores.json (older files lack them)


@dataclass
class EvalRun:
    """One evaluation of a run folder: ``eval/<name>``."""

    name: str
    folder: Path
    scores: dict
    predictions: dict[str, Path] = field(default_factory=dict)  # file name -> path
    references: dict[str, Path] = field(default_factory=dict)
    overlays: dict[str, Path] = field(default_factory=dict)  # clip stem -> mp4
    snapshots: dict[str, Path] = field(default_factory=dict)  # clip stem -> first snapshot png


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot be read: {e}") from None
    except json.JSONDecodeError as e:
        raise InputError(path, f"is not valid JSON: {e.msg}", line=e.lineno) from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    return data


def find_evaluations(run_dir: str | os.PathLike) -> list[EvalRun]:
    """The evaluations of ``run_dir/eval/*`` that have a ``scores.json``, by name."""
    from av_seld.metrics.evaluate import collect_csvs

    runs = []
    eval_root = Path(run_dir) / "eval"
    for folder in sorted(p for p in eval_root.glob("*") if p.is_dir()) if eval_root.is_dir() else []:
        scores_path = folder / "scores.json"
        if not scores_path.is_file():
            logger.warning("%s: no scores.json, skipped", folder)
            continue
        scores = _read_json(scores_path)
        if "SELD" not in scores:
            raise InputError(scores_path, "has no 'SELD' entry: expected the output of Evaluation.write_json")
        run = EvalRun(folder.name, folder, scores)
        if (folder / "pred").is_dir():
            run.predictions = collect_csvs(folder / "pred", "prediction")
        ref_dir = folder / "ref"
        if not ref_dir.is_dir() and (folder / "reference.json").is_file():
            info = _read_json(folder / "reference.json")
            if not isinstance(info.get("reference_dir"), str):
                raise InputError(folder / "reference.json", "expected {\"reference_dir\": \"PATH\"}")
            ref_dir = folder / info["reference_dir"]  # an absolute path replaces the folder
            if not ref_dir.is_dir():
                raise InputError(folder / "reference.json", f"reference_dir {ref_dir} is not a folder")
        if ref_dir.is_dir():
            run.references = collect_csvs(ref_dir, "reference")
        for video in sorted((folder / "overlays").glob("*.mp4")):
            run.overlays[video.stem] = video
        for snap in sorted((folder / "overlays").glob("*_frame*.png")):
            run.snapshots.setdefault(snap.stem.rsplit("_frame", 1)[0], snap)
        runs.append(run)
    return runs


# ----------------------------------------------------------------------------------------------------- HTML bits
def _clips(number) -> str:
    return count(number, "clip") if isinstance(number, int) else "? clips"


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key in ("F", "LR"):
        return f"{100 * value:.1f} %"
    if key == "LE":
        return f"{value:.1f}°"
    if key == "DE":
        return f"{value:.3f} m"
    return f"{value:.4f}" if key == "SELD" else f"{value:.3f}"


def _summary_table(rows: list[tuple[str, str, dict]]) -> str:
    """rows: (label html, link or '', scores dict)."""
    keys = [k for k in SUMMARY_KEYS if any(r[2].get(k) is not None for r in rows)]
    head = "".join(f"<th>{_esc(k)}</th>" for k in keys)
    body = []
    for label, link, scores in rows:
        name = f'<a href="{_esc(link)}">{label}</a>' if link else label
        ci = scores.get("confidence_intervals_95") or {}
        cells = []
        for k in keys:
            text = _fmt(k, scores.get(k))
            if ci.get(k):
                text += f'<br><span class="meta">[{_fmt(k, ci[k][0])}, {_fmt(k, ci[k][1])}]</span>'
            cells.append(f"<td>{text}</td>")
        body.append(f'<tr><td class="name">{name}</td>{"".join(cells)}</tr>')
    return f'<table><tr><th class="name">evaluation</th>{head}</tr>{"".join(body)}</table>'


_COUNT_HEADS = {"support": "support", "TP": "TP", "FP": "FP", "FN": "FN", "class_ER": "ER of the class"}


def _classwise_table(scores: dict) -> str:
    """Per class: its counts (support = reference events; TP, FP, FN at 20°; its own error rate) and scores. A class
    with no reference event is marked absent: its F, LE and LR are conventions of the official average (0, 180° in
    2023, 0), not measurements, and its FP column says whether it was falsely detected."""
    from av_seld.viz import class_colour_rgb

    rows = scores.get("classwise") or []
    if not rows:
        return '<p class="meta">No per-class rows (micro average).</p>'
    counts = [k for k in COUNT_KEYS if any(r.get(k) is not None for r in rows)]
    keys = [k for k in ("F", "LE", "LR", "SELD", "DE", "RDE") if any(r.get(k) is not None for r in rows)]
    out = ['<table><tr><th class="name">class</th>' + "".join(f"<th>{_COUNT_HEADS[k]}</th>" for k in counts)
           + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"]
    absent_count = 0
    for r in rows:
        c = int(r["class"])
        name = CLASS_NAMES[c] if c < NUM_CLASSES else str(c)
        colour = "#%02x%02x%02x" % class_colour_rgb(c)
        absent = r.get("support") == 0
        absent_count += absent
        cells = []
        for k in counts:
            value = r.get(k)
            text = "–" if value is None else (f"{value:.3f}" if k == "class_ER" else str(int(value)))
            cells.append(f"<td>{text}</td>")
        for k in keys:
            cells.append("<td>absent</td>" if absent and k in ("F", "LE", "LR") else f"<td>{_fmt(k, r.get(k))}</td>")
        row_class = ' class="absent"' if absent else ""
        out.append(f'<tr{row_class}><td class="name"><span class="swatch" style="background:{colour}"></span>{c} '
                   f'{_esc(name)}</td>{"".join(cells)}</tr>')
    out.append("</table>")
    if absent_count:
        out.append(f'<p class="meta">{absent_count} of {len(rows)} classes have no reference event in these clips '
                   "(absent). The official macro average still counts them, with F = 0 and LR = 0"
                   + (" and LE = 180°" if str(scores.get("edition", "2023")) == "2023" else "")
                   + ", so its SELD score is worse than that of the classes present alone; FP shows whether an "
                     "absent class was falsely detected.</p>")
    return "".join(out)


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _clip_scores(run: EvalRun, name: str, pred, ref) -> dict | None:
    from av_seld.metrics.evaluate import clip_counts
    from av_seld.metrics.seld import compute_scores

    edition = str(run.scores.get("edition", "2023"))
    average = str(run.scores.get("average", "macro"))
    eval_distance = edition == "2024" and run.scores.get("DE") is not None and pred.has_distance and ref.has_distance
    try:
        counts = clip_counts(ref, pred, edition=edition, eval_distance=eval_distance)
        return compute_scores(counts, edition=edition, average=average, eval_distance=eval_distance).summary()
    except ValueError as e:
        logger.warning("%s: cannot score clip %s: %s", run.folder, name, e)
        return None


def _run_section(run_dir: Path) -> str:
    """The recipe (``config.yaml``, folded), the model's size and the checkpoints of a run folder; '' without any."""
    parts = []
    checkpoints = [p for p in (run_dir / "best.pt", run_dir / "last.pt") if p.is_file()]
    config_path = run_dir / "config.yaml"
    if not checkpoints and not config_path.is_file():
        return ""
    rows = []
    model_line = ""
    for path in checkpoints:
        try:
            from av_seld.training.checkpoint import load_checkpoint

            payload = load_checkpoint(path)
        except InputError as err:
            logger.warning("%s", err)
            rows.append(f'<tr><td class="name">{_esc(path.name)}</td><td colspan="5">unreadable: {_esc(err.reason)}'
                        "</td></tr>")
            continue
        state = payload.get("train_state") or {}
        best = state.get("best_score")
        thresholds = payload.get("thresholds")
        if thresholds is not None:
            values = sorted({round(float(t), 3) for t in thresholds})
            thresholds = (f"{values[0]:g} for all classes" if len(values) == 1 else
                          ", ".join(f"{float(t):g}" for t in thresholds))
        best_text = "–" if best is None or not math.isfinite(best) else f"{best:.4f} at step {state.get('best_step')}"
        rows.append(f'<tr><td class="name">{_esc(path.name)}</td><td>{path.stat().st_size / 1e6:.1f} MB</td>'
                    f'<td>{_esc(state.get("step", "–"))}</td><td>{_esc(state.get("epoch", "–"))}</td>'
                    f'<td>{_esc(best_text)}</td><td class="name">{_esc(thresholds or "–")}</td></tr>')
        if not model_line:
            model_line = _model_line(payload)
    if model_line:
        parts.append(f"<p>{model_line}</p>")
    if rows:
        parts.append('<table><tr><th class="name">checkpoint</th><th>size</th><th>step</th><th>epoch</th>'
                     '<th>best validation SELD</th><th class="name">activity thresholds</th></tr>'
                     + "".join(rows) + "</table>")
    if config_path.is_file():
        try:
            text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(config_path, f"cannot be read: {err}") from None
        parts.append(f"<details><summary>recipe: {_esc(config_path.name)}</summary><pre>{_esc(text)}</pre></details>")
    return "<h2>Run</h2>" + "".join(parts)


def _model_line(payload: dict) -> str:
    """"av_conformer, 2,170,777 parameters (1,234 trained), foa_logmel_iv features of FOA audio"."""
    import torch

    try:
        from av_seld.training.checkpoint import build_model_from_checkpoint

        model = build_model_from_checkpoint(payload)
        total = sum(p.numel() for p in model.parameters())
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    except Exception as err:  # a checkpoint of another version: its tensors still tell the size
        logger.warning("cannot rebuild the model of the checkpoint (%s); counting its state tensors", err)
        state = payload.get("model_state") or {}
        total = sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
        trained = None
    size = f"{total:,} parameters" + (f" ({trained:,} trained)" if trained is not None and trained != total else "")
    what = f"{payload.get('features', '?')} features of {str(payload.get('format', '?')).upper()} audio"
    return f"<b>{_esc(payload.get('model_name', '?'))}</b>, {size}, {_esc(what)}"


def _comparison_section(run_dir: Path) -> str:
    """The systems table of ``eval/comparison.json`` (``av-seld demo``), linked to their evaluation pages."""
    path = run_dir / "eval" / "comparison.json"
    if not path.is_file():
        return ""
    data = _read_json(path)
    systems = data.get("systems")
    if not isinstance(systems, list) or not all(isinstance(s, dict) and "system" in s for s in systems):
        raise InputError(path, "expected {\"systems\": [{\"system\": NAME, \"eval\": FOLDER, \"SELD\": ...}]}")
    rows = [(_esc(s["system"]), f"eval_{s['eval']}.html" if (run_dir / "eval" / str(s.get("eval"))).is_dir() else "", s)
            for s in systems]
    clips = data.get("num_clips")
    where = f'{_esc(data.get("split", "?"))}, {_clips(clips)}'
    return (f"<h2>Systems compared</h2><p class=\"meta\">The same test clips ({where}) scored for each system.</p>"
            + _summary_table(rows).replace(">evaluation<", ">system<", 1))


def render_evaluation_page(run: EvalRun, out_dir: Path, *, max_clips: int = 20) -> str:
    """HTML of one evaluation's page (see the module docstring)."""
    from av_seld.io.labels import read_prediction_csv, read_reference_csv
    from av_seld.viz.plots import figure_png_bytes, plot_class_metrics, plot_tracks

    s = run.scores
    parts = [f"<h1>Evaluation: {_esc(run.name)}</h1>",
             f'<p class="meta">{_esc(run.folder)} · edition {_esc(s.get("edition", "?"))}, '
             f'{_esc(s.get("average", "?"))} average, {_esc(_clips(s.get("num_clips")))} · '
             '<a href="index.html">all evaluations</a></p>',
             "<h2>Scores</h2>", _summary_table([(_esc(run.name), "", s)]), "<h2>Per class</h2>", _classwise_table(s)]
    if s.get("classwise"):
        parts.append(_img(figure_png_bytes(plot_class_metrics(None, s, title=f"{run.name}: per-class metrics")),
                          "per-class metrics"))
    clips = sorted({Path(n).stem for n in run.predictions} | set(run.overlays))
    if clips:
        parts.append("<h2>Clips</h2>")
        clip_rows, clip_parts = [], []
        for k, clip in enumerate(clips):
            pred_path = run.predictions.get(clip + ".csv")
            ref_path = run.references.get(clip + ".csv")
            pred = read_prediction_csv(pred_path) if pred_path else None
            ref = read_reference_csv(ref_path) if ref_path else None
            video = run.overlays.get(clip)
            link = (f'<a href="{_esc(_relative(video, out_dir))}">overlay video</a>' if video
                    else '<span class="meta">no overlay video</span>')
            if pred is not None and ref is not None:
                scores = _clip_scores(run, clip, pred, ref)
                if scores is not None:
                    clip_rows.append((f"{_esc(clip)} · {link}", "", scores))
            if k >= max_clips:
                continue
            section = [f'<div class="clip"><h3>{_esc(clip)}</h3><p>{link}'
                       + ("" if ref is not None else ' · <span class="meta">no reference found</span>') + "</p>"]
            if run.snapshots.get(clip):
                section.append(_img(run.snapshots[clip].read_bytes(), f"{clip} overlay snapshot"))
            if pred is not None or ref is not None:
                fig = plot_tracks(None, pred, ref, title=f"{clip}: reference (thick) vs prediction (dots)")
                section.append(_img(figure_png_bytes(fig, dpi=80), f"{clip} azimuth and elevation"))
            clip_parts.append("".join(section) + "</div>")
        if clip_rows:
            parts.append(_summary_table(clip_rows).replace(">evaluation<", ">clip<", 1))
            if s.get("average") == "macro":
                parts.append('<p class="meta">Per-clip scores average over all 13 classes, as the official scorer '
                             "does: a class absent from a clip counts with F = 0 (and, in 2023, LE = 180°).</p>")
        if len(clips) > max_clips:
            parts.append(f'<p class="meta">Plots for the first {max_clips} of {len(clips)} clips.</p>')
        parts.extend(clip_parts)
    return _page(f"av-seld evaluation {run.name}", "\n".join(parts))


def write_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 max_clips: int = 20) -> list[Path]:
    """Write ``index.html`` and one page per evaluation of ``run_dir`` to ``out_dir`` (default RUN_DIR/report).

    Returns the pages written, index first. Raises :class:`InputError` when ``run_dir`` is missing or holds
    nothing to report.
    """
    from av_seld.viz.plots import figure_png_bytes, plot_training_curves

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run folder not found")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    evaluations = find_evaluations(run_dir)
    train_log, val_log = run_dir / "train_log.csv", run_dir / "val_log.csv"
    logs = {k: p for k, p in (("train_log", train_log), ("val_log", val_log)) if p.is_file()}
    if not evaluations and not logs:
        raise InputError(run_dir, "nothing to report: no eval/<name>/scores.json, train_log.csv or val_log.csv")

    written = []
    index = [f"<h1>Run report: {_esc(run_dir.resolve().name)}</h1>", f'<p class="meta">{_esc(run_dir.resolve())}</p>',
             _run_section(run_dir)]
    if evaluations:
        index.append("<h2>Evaluations</h2>")
        index.append(_summary_table([(_esc(r.name), f"eval_{r.name}.html", r.scores) for r in evaluations]))
    index.append(_comparison_section(run_dir))
    if logs:
        index.append("<h2>Training</h2>")
        fig = plot_training_curves(None, logs.get("train_log"), logs.get("val_log"))
        index.append(_img(figure_png_bytes(fig, dpi=80), "training curves"))
    for run in evaluations:
        page = out_dir / f"eval_{run.name}.html"
        write_text_atomic(page, render_evaluation_page(run, out_dir, max_clips=max_clips))
        written.append(page)
    index_path = out_dir / "index.html"
    write_text_atomic(index_path, _page(f"av-seld run {run_dir.resolve().name}", "\n".join(index)))
    logger.debug("wrote %s and %d evaluation page(s)", index_path, len(evaluations))
    return [index_path] + written
