"""`av-seld report`: self-contained offline HTML pages from the RUN_DIR layout of av_seld.viz.report."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from av_seld.classes import CLASS_NAMES
from av_seld.cli import main
from av_seld.errors import InputError
from av_seld.io.labels import Events, write_prediction_csv, write_reference_csv
from av_seld.metrics import evaluate_folders
from av_seld.metrics.simulate import simulate_prediction, simulate_reference
from av_seld.viz.report import find_evaluations, write_report


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as the trainer writes it: logs, one evaluation with pred/ref CSVs, one overlay + snapshot."""
    run = tmp_path / "run"
    ev = run / "eval" / "val"
    rng = np.random.default_rng(5)
    for k in range(3):
        ref = simulate_reference(rng, 200)
        write_reference_csv(ev / "ref" / f"clip{k}.csv", ref)
        write_prediction_csv(ev / "pred" / f"clip{k}.csv", simulate_prediction(ref, rng), form="cartesian")
    evaluate_folders(ev / "ref", ev / "pred", use_jackknife=True).write_json(ev / "scores.json")
    (ev / "overlays").mkdir()
    (ev / "overlays" / "clip0.mp4").write_bytes(b"not decoded by the report")
    snapshot = np.zeros((40, 80, 3), np.uint8)
    snapshot[:, :40] = (0, 0, 255)
    cv2.imwrite(str(ev / "overlays" / "clip0_frame000010.png"), snapshot)
    (run / "train_log.csv").write_text("step,epoch,loss,lr,grad_norm\n10,0,1.0,0.001,3.0\n20,1,0.5,0.001,2.0\n")
    (run / "val_log.csv").write_text("step,epoch,ER,F,LE,LR,SELD\n20,1,0.8,0.3,40.0,0.5,0.55\n")
    return run


def embedded_pngs(page: str) -> list[np.ndarray]:
    images = []
    for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        images.append(image)
    return images


def test_report_pages_are_self_contained(run_dir):
    pages = write_report(run_dir)
    assert [p.name for p in pages] == ["index.html", "eval_val.html"]
    index, page = (p.read_text(encoding="utf-8") for p in pages)
    scores = json.loads((run_dir / "eval" / "val" / "scores.json").read_text())
    for html in (index, page):
        assert "http://" not in html and "https://" not in html and "<script" not in html.lower()
        assert "<style>" in html and "stylesheet" not in html
        assert f"{scores['SELD']:.4f}" in html
    assert 'href="eval_val.html"' in index and len(embedded_pngs(index)) == 1  # training curves
    # Evaluation page: per-class table, bars, a clip table, per-clip plots, the snapshot and the video link.
    assert all(name in page for name in ("female speech", "door open/close", "knock"))
    assert 'href="../eval/val/overlays/clip0.mp4"' in page
    assert page.count("no overlay video") >= 2  # clip1 and clip2 have none
    images = embedded_pngs(page)
    assert len(images) == 1 + 1 + 3  # class bars, the snapshot, 3 track plots
    assert any(img.shape[:2] == (40, 80) for img in images)
    assert page.count('<td class="name">clip') == 3  # per-clip scores
    assert set(CLASS_NAMES) <= set(re.findall(r"\d+ ([a-z /]+)</td>", page))


def test_report_reads_references_from_reference_json_and_limits_clips(run_dir, tmp_path):
    ev = run_dir / "eval" / "val"
    shutil.move(ev / "ref", tmp_path / "elsewhere")
    (ev / "reference.json").write_text(json.dumps({"reference_dir": "../../../elsewhere"}))
    [run] = find_evaluations(run_dir)
    assert sorted(run.references) == ["clip0.csv", "clip1.csv", "clip2.csv"]
    out = tmp_path / "pages"
    assert main(["report", str(run_dir), "--out", str(out), "--max-clips", "1"]) == 0
    page = (out / "eval_val.html").read_text()
    assert "Plots for the first 1 of 3 clips" in page and page.count('<td class="name">clip') == 3
    assert f'href="{"../run/eval/val/overlays/clip0.mp4"}"' in page


def test_report_with_logs_only_and_skipped_folders(tmp_path, caplog):
    run = tmp_path / "run"
    (run / "eval" / "unfinished").mkdir(parents=True)
    (run / "val_log.csv").write_text("step,epoch,ER,F,LE,LR,SELD\n20,1,0.8,0.3,40.0,0.5,0.55\n")
    pages = write_report(run)
    assert [p.name for p in pages] == ["index.html"]
    assert "unfinished" in caplog.text and "no scores.json" in caplog.text


def test_report_errors_name_the_file(tmp_path, capsys):
    with pytest.raises(InputError, match="run folder not found"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "nothing to report" in capsys.readouterr().err
    bad = tmp_path / "bad" / "eval" / "x"
    bad.mkdir(parents=True)
    (bad / "scores.json").write_text('{"SELD": 0.5,\n "F": }')
    with pytest.raises(InputError, match=r"scores.json:2: is not valid JSON"):
        write_report(tmp_path / "bad")
    (bad / "scores.json").write_text('{"F": 0.5}')
    with pytest.raises(InputError, match="scores.json: has no 'SELD'"):
        write_report(tmp_path / "bad")


def _two_class_evaluation(folder):
    """Two clips whose references hold only classes 0 and 3; the prediction also has false alarms of class 5."""
    for k in range(2):
        ref = Events.from_arrays(np.r_[np.arange(20), np.arange(5, 15)], np.r_[np.zeros(20), np.full(10, 3)],
                                 np.zeros(30), np.r_[np.full(20, 30.0), np.full(10, -90.0)], np.zeros(30))
        pred = Events.from_arrays(np.r_[ref.frame, np.arange(4)], np.r_[ref.class_index, np.full(4, 5)],
                                  np.zeros(34), np.r_[ref.azimuth_deg, np.zeros(4)], np.zeros(34))
        write_reference_csv(folder / "ref" / f"clip{k}.csv", ref)
        write_prediction_csv(folder / "pred" / f"clip{k}.csv", pred)
    evaluate_folders(folder / "ref", folder / "pred").write_json(folder / "scores.json")


def test_classes_absent_from_the_reference_are_marked_absent_not_scored_as_180_degrees(tmp_path):
    run = tmp_path / "run"
    _two_class_evaluation(run / "eval" / "test")
    page = write_report(run)[1].read_text()
    rows = {}
    for absent, c, cells in re.findall(r'<tr( class="absent")?><td class="name"><span class="swatch"[^>]*></span>(\d+) '
                                       r'[^<]*</td>(.*?)</tr>', page):
        rows[int(c)] = (bool(absent), re.findall(r"<td>(.*?)</td>", cells))
    assert len(rows) == 13
    head = re.search(r'<th class="name">class</th>(.*?)</tr>', page).group(1)
    assert re.findall(r"<th>(.*?)</th>", head)[:6] == ["support", "TP", "FP", "FN", "ER of the class", "F"]
    absent, cells = rows[0]
    assert not absent and cells[:5] == ["4", "4", "0", "0", "0.000"] and cells[6] == "0.0°"  # 2 clips × 2 blocks
    absent, cells = rows[5]
    assert absent and cells[0] == "0" and cells[2] == "2" and cells[5:8] == ["absent"] * 3  # F, LE, LR
    assert all(rows[c][0] for c in range(13) if c not in (0, 3)) and "180.0°" not in page.split("Per class")[1].split(
        "</table>")[0]
    assert "11 of 13 classes have no reference event in these clips" in page


def test_plotted_class_bars_leave_absent_classes_blank(tmp_path):
    from av_seld.viz.plots import plot_class_metrics

    _two_class_evaluation(tmp_path)
    fig = plot_class_metrics(None, json.loads((tmp_path / "scores.json").read_text()))
    f_axis, le_axis = fig.axes[0], fig.axes[1]
    heights = [patch.get_height() for patch in le_axis.patches]
    assert heights[0] == pytest.approx(0.0) and heights[3] == pytest.approx(0.0) and heights[5] == 0.0
    assert sum(text.get_text() == "absent" for text in le_axis.texts) == 11
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()][:2] == ["female speech (4)", "male speech (0)"]
    assert f_axis.patches[0].get_height() == pytest.approx(100.0)


def test_index_shows_the_run_the_model_size_and_the_systems_compared(run_dir):
    from av_seld.models import build_model
    from av_seld.training.checkpoint import save_checkpoint

    params = {"in_channels": 7, "widths": [4, 8], "blocks": [1, 1], "pools": [[5, 2], [1, 2]], "dim": 8, "depth": 1,
              "heads": 2, "kernel_size": 3}
    model = build_model("resnet_conformer", **params)
    size = sum(p.numel() for p in model.parameters())
    save_checkpoint(run_dir / "best.pt", {"model_name": "resnet_conformer", "model_params": params,
                                          "model_state": model.state_dict(), "features": "foa_logmel_iv",
                                          "format": "foa", "thresholds": np.full(13, 0.4),
                                          "train_state": {"step": 20, "epoch": 1, "best_score": 0.55, "best_step": 20}})
    (run_dir / "config.yaml").write_text("model:\n  name: resnet_conformer\ntrain:\n  max_steps: 20\n")
    systems = [{"system": "trained", "eval": "val", "SELD": 0.5, "ER": 0.6, "F": 0.3, "LE": 20.0, "LR": 0.6},
               {"system": "untrained", "eval": "missing", "SELD": 0.9, "ER": 1.0, "F": 0.0, "LE": 90.0, "LR": 0.1}]
    (run_dir / "eval" / "comparison.json").write_text(json.dumps({"split": "dev-test", "num_clips": 3,
                                                                  "systems": systems}))
    index = write_report(run_dir)[0].read_text()
    assert f"<b>resnet_conformer</b>, {size:,} parameters, foa_logmel_iv features of FOA audio" in index
    assert "<td>20</td><td>1</td><td>0.5500 at step 20</td>" in index and "0.4 for all classes" in index
    assert "max_steps: 20" in index  # the recipe
    comparison = index.split("Systems compared")[1]
    assert '<a href="eval_val.html">trained</a>' in comparison and "untrained" in comparison
    assert "0.5000" in comparison and "0.9000" in comparison
    (run_dir / "eval" / "comparison.json").write_text('{"systems": 3}')
    with pytest.raises(InputError, match="comparison.json: expected"):
        write_report(run_dir)


def _chromium():
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if shutil.which(n)), None)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium/Chrome on this machine")
def test_report_screenshot_with_headless_chromium(run_dir):
    page = write_report(run_dir)[1]
    shot = run_dir / "report" / "screenshot.png"
    subprocess.run([_chromium(), "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}",
                    "--window-size=1280,2400", page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[1] == 1280
    # The page is not blank: plots and tables put plenty of non-background pixels on it.
    assert (image.std(axis=-1) > 20).mean() > 0.01
