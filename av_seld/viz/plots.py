"""Plots of SELD outputs, rendered headless (matplotlib's Agg canvas, no pyplot, no display) and saved atomically.

- :func:`plot_tracks`: azimuth and elevation against time per class, reference (thick, light) vs prediction (thin,
  with dots), any number of tracks; a line breaks where a track pauses and where azimuth wraps across ±180°.
- :func:`plot_class_metrics`: per-class F, LE, LR and SELD bars from a ``SELDScores`` or the dict of
  ``Evaluation.to_dict()`` / the JSON of ``Evaluation.write_json``.
- :func:`plot_training_curves`: ``train_log.csv`` (loss, lr) and ``val_log.csv`` (metrics) of a run.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from av_seld import timing
from av_seld.classes import CLASS_NAMES, NUM_CLASSES
from av_seld.errors import InputError
from av_seld.io.labels import Events
from av_seld.utils.atomic import atomic_path
from av_seld.viz import class_colour_rgb

logger = logging.getLogger(__name__)


def _colour(class_index: int) -> tuple[float, float, float]:
    return tuple(c / 255 for c in class_colour_rgb(class_index))


def new_figure(width_in: float, height_in: float) -> Figure:
    """A matplotlib Figure on the Agg canvas (no pyplot state, works without a display)."""
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save ``fig`` as PNG to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


def figure_png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for embedding in HTML)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def track_polylines(events: Events, class_index: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per track (``source`` id) of one class: (time_s, azimuth_deg, elevation_deg) with NaN line breaks.

    A break goes between consecutive points that are not in consecutive label frames, and between points whose
    azimuths differ by more than 180° (the track crossed the seam: a line there would sweep across the whole plot).
    """
    out = []
    mask = events.class_index == class_index
    for source in np.unique(events.source[mask]):
        sel = mask & (events.source == source)
        order = np.argsort(events.frame[sel], kind="stable")
        frame = events.frame[sel][order]
        az, el = events.azimuth_deg[sel][order], events.elevation_deg[sel][order]
        t = timing.label_frame_start_s(frame)
        breaks = np.flatnonzero((np.diff(frame) > 1) | (np.abs(np.diff(az)) > 180)) + 1
        t, az, el = (np.insert(x.astype(np.float64), breaks, np.nan) for x in (t, az, el))
        out.append((t, az, el))
    return out


def plot_tracks(path: str | os.PathLike | None, prediction: Events | None = None, reference: Events | None = None,
                *, title: str = "", duration_s: float | None = None) -> Figure:
    """Azimuth (top) and elevation (bottom) against time for every class present, reference vs prediction.

    Saves a PNG to ``path`` when given; returns the figure. ``duration_s``: x-axis length (default: last event).
    """
    fig = new_figure(12, 6)
    ax_az, ax_el = fig.subplots(2, 1, sharex=True)
    classes = set()
    for events, style in ((reference, "ref"), (prediction, "pred")):
        if events is None:
            continue
        for c in sorted(set(events.class_index.tolist())):
            classes.add(c)
            for t, az, el in track_polylines(events, c):
                if style == "ref":
                    kw = dict(color=_colour(c), linewidth=5, alpha=0.35, solid_capstyle="butt")
                else:
                    kw = dict(color=_colour(c), linewidth=1.2, marker=".", markersize=3)
                ax_az.plot(t, az, **kw)
                ax_el.plot(t, el, **kw)
    ax_az.set_ylim(-180, 180)
    ax_az.set_yticks([-180, -90, 0, 90, 180])
    ax_el.set_ylim(-90, 90)
    ax_el.set_yticks([-90, -45, 0, 45, 90])
    ax_az.set_ylabel("azimuth (°)")
    ax_el.set_ylabel("elevation (°)")
    ax_el.set_xlabel("time (s)")
    ends = [e.num_frames * timing.LABEL_HOP_S for e in (prediction, reference) if e is not None]
    right = duration_s if duration_s is not None else max(ends + [timing.LABEL_HOP_S])
    ax_el.set_xlim(0, right)
    for ax in (ax_az, ax_el):
        ax.grid(True, alpha=0.3)
    handles = [ax_az.plot([], [], color=_colour(c), linewidth=3, label=CLASS_NAMES[c] if c < NUM_CLASSES else str(c))[0]
               for c in sorted(classes)]
    if reference is not None:
        handles.append(ax_az.plot([], [], color="grey", linewidth=5, alpha=0.35, label="reference")[0])
    if prediction is not None:
        handles.append(ax_az.plot([], [], color="grey", linewidth=1.2, marker=".", label="prediction")[0])
    if handles:
        ax_az.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if title:
        ax_az.set_title(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def classwise_rows(scores) -> list[dict]:
    """The per-class rows of a ``SELDScores`` or of an ``Evaluation.to_dict()`` dict (may be empty: micro average)."""
    rows = scores.get("classwise") if isinstance(scores, dict) else getattr(scores, "classwise", None)
    if rows is None:
        raise ValueError("scores have no 'classwise' entry: pass a SELDScores or Evaluation.to_dict() output")
    return list(rows)


def _value(row: dict, key: str) -> float:
    v = row.get(key)
    return math.nan if v is None else float(v)


def plot_class_metrics(path: str | os.PathLike | None, scores, *, title: str = "") -> Figure:
    """Per-class bars of F (%), LE (°), LR (%) and SELD score; NaN / null values are left blank.

    scores: a ``SELDScores`` or the dict of ``Evaluation.to_dict()`` (read back from ``Evaluation.write_json``).
    Where the rows give each class's ``support`` (reference events), the class names say it, and a class without
    any is marked "absent" in the F, LE and LR panels instead of a bar: its 0 % and 180° are conventions of the
    official average, not errors the model made.
    """
    rows = classwise_rows(scores)
    if not rows:
        raise ValueError("no per-class rows to plot (micro-averaged scores have none)")
    classes = [int(r["class"]) for r in rows]
    names = [CLASS_NAMES[c] if c < NUM_CLASSES else str(c) for c in classes]
    support = [r.get("support") for r in rows]
    absent = np.array([s == 0 for s in support])
    if all(s is not None for s in support):
        names = [f"{name} ({int(s)})" for name, s in zip(names, support)]
    colours = [_colour(c) for c in classes]
    # Upper limits leave room for the value labels above full bars.
    panels = (("F", "F20° (%)", 100.0, (0, 115)), ("LE", "LE (°)", 1.0, (0, 200)), ("LR", "LR (%)", 100.0, (0, 115)),
              ("SELD", "SELD score", 1.0, None))
    fig = new_figure(12, 8)
    axes = fig.subplots(len(panels), 1, sharex=True)
    x = np.arange(len(rows))
    for ax, (key, label, scale, ylim) in zip(axes, panels):
        values = np.array([_value(r, key) for r in rows]) * scale
        blank = absent if key in ("F", "LE", "LR") else np.zeros(len(rows), dtype=bool)
        ax.bar(x, np.where(blank, 0.0, np.nan_to_num(values)), color=colours, edgecolor="black", linewidth=0.5)
        for xi, v, skip in zip(x, values, blank):
            text = "absent" if skip else "n/a" if np.isnan(v) else f"{v:.2f}" if key == "SELD" else f"{v:.0f}"
            ax.annotate(text, (xi, 0 if skip or np.isnan(v) else v), ha="center", va="bottom", fontsize=7,
                        color="grey" if skip else "black")
        ax.set_ylabel(label)
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(True, axis="y", alpha=0.3)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(names, rotation=30, ha="right")
    if all(s is not None for s in support):
        axes[-1].set_xlabel("class (reference events)")
    if title:
        axes[0].set_title(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def read_log_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a training/validation log CSV with a header row, as float arrays (blank or text -> NaN)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot be read: {e}") from None
    if not rows or not rows[0]:
        raise InputError(path, "is empty: expected a header row such as step,epoch,loss")
    header = [h.strip() for h in rows[0]]
    if "step" not in header:
        raise InputError(path, f"has no 'step' column (header: {','.join(header)})", line=1)
    columns: dict[str, list[float]] = {h: [] for h in header}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(path, f"expected {len(header)} columns like the header, found {len(row)}", line=line)
        for h, text in zip(header, row):
            try:
                columns[h].append(float(text))
            except ValueError:
                columns[h].append(math.nan)
    return {h: np.array(v, dtype=np.float64) for h, v in columns.items()}


def plot_training_curves(path: str | os.PathLike | None, train_log: str | os.PathLike | None = None,
                         val_log: str | os.PathLike | None = None) -> Figure:
    """Training loss and learning rate (``train_log.csv``: step, loss, lr, ...) and every numeric validation column
    of ``val_log.csv`` (step, epoch, ER, F, LE, LR, SELD, ...) against the optimizer step."""
    if train_log is None and val_log is None:
        raise ValueError("give at least one of train_log and val_log")
    train = read_log_csv(train_log) if train_log is not None else None
    val = read_log_csv(val_log) if val_log is not None else None
    val_keys = [k for k in (val or {}) if k not in ("step", "epoch") and np.isfinite(val[k]).any()]
    panels = (["loss", "lr"] if train is not None else []) + val_keys
    fig = new_figure(10, 2.2 * max(1, len(panels)))
    axes = np.atleast_1d(fig.subplots(max(1, len(panels)), 1, sharex=True))
    # A short run logs a few points: mark each, or a single one would draw nothing.
    train_marker = dict(marker="o", markersize=3) if train is not None and len(train["step"]) <= 50 else {}
    for ax, key in zip(axes, panels):
        if key in ("loss", "lr") and train is not None:
            if key in train:
                ax.plot(train["step"], train[key], color="tab:blue", linewidth=1, **train_marker)
            lr = train.get("lr", np.zeros(0))
            if key == "lr" and lr.size and np.all(lr[np.isfinite(lr)] > 0):
                ax.set_yscale("log")
            ax.set_ylabel(f"train {key}")
        else:
            ax.plot(val["step"], val[key], color="tab:red", marker="o", markersize=3, linewidth=1)
            ax.set_ylabel(f"val {key}")
        ax.grid(True, alpha=0.3)
    steps = np.concatenate([log["step"] for log in (train, val) if log is not None])
    steps = steps[np.isfinite(steps)]
    if steps.size and steps.min() == steps.max():  # one step: a window around it, not matplotlib's ±0.05
        axes[-1].set_xlim(steps.min() - 1, steps.max() + 1)
    axes[-1].set_xlabel("step")
    if path is not None:
        save_figure(fig, path)
    return fig
