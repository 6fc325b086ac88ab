"""Self-supervised visual pre-training (issue 10): audio spatial maps, the objective, the CLI run, --visual-init."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from augment.spatial import render_foa, render_mic
from av_seld.cli import main
from av_seld.errors import InputError
from av_seld.geometry import angular_distance_xyz_deg, sph_to_cart
from av_seld.selfsup import (SelfSupVisualModel, audio_direction_map, cell_directions, foa_spatial_bins,
                             load_selfsup_model, mic_spatial_bins, prepare_cache)
from av_seld.models.visual import load_encoder_init

REPO = Path(__file__).resolve().parents[1]
GRID = (8, 16)  # 22.5° cells: a cell centre is at most ~16° from any direction in its cell
FRAME = (64, 128)


@pytest.mark.parametrize("audio_format", ["foa", "mic"])
@pytest.mark.parametrize("azimuth, elevation", [(30, 10), (-170, -40), (100, 60), (179, 0), (-90, -5)])
def test_audio_map_of_a_single_source_peaks_at_its_direction(audio_format, azimuth, elevation):
    rng = np.random.default_rng(1)
    signal = rng.standard_normal(12000).astype(np.float32)
    render = render_foa if audio_format == "foa" else render_mic
    audio = render(signal, azimuth, elevation) + 0.01 * rng.standard_normal((4, 12000)).astype(np.float32)
    bins = (foa_spatial_bins if audio_format == "foa" else mic_spatial_bins)(audio)
    assert bins.directions.shape == (5, 256, 3) and bins.weights.shape == (5, 256) and bins.stats.shape == (5, 2)
    assert float(bins.stats[:, 1].min()) > 0.9  # a plane wave is fully directional
    cells = cell_directions(GRID)
    maps = audio_direction_map(bins.directions, bins.weights, cells)  # (T, N)
    assert torch.allclose(maps.sum(-1), torch.ones(5), atol=1e-5)
    source = sph_to_cart(np.array(azimuth, dtype=float), np.array(elevation, dtype=float))
    for frame_map in maps:
        peak = cells[frame_map.argmax()].double().numpy()
        assert angular_distance_xyz_deg(peak, source) < 22.5  # the source's own cell or the next one


def test_diffuse_noise_is_not_directional():
    noise = np.random.default_rng(2).standard_normal((4, 12000)).astype(np.float32)
    noise[1:] /= np.sqrt(3)  # SN3D diffuse field: each first-order channel carries a third of W's power
    assert float(foa_spatial_bins(noise).stats[:, 1].max()) < 0.3
    assert float(mic_spatial_bins(noise).stats[:, 1].max()) < 0.3  # incoherent capsules: no plane wave


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return SelfSupVisualModel(frame_size=FRAME, map_grid=GRID, embed_dim=16)


def test_objective_is_differentiable_and_reaches_the_visual_encoder(tiny_model):
    frames = torch.rand(2, 3, *FRAME)
    directions = torch.nn.functional.normalize(torch.randn(2, 32, 3), dim=-1)
    weights = torch.rand(2, 32)
    stats = torch.tensor([[0.0, 0.9], [0.5, 0.2]])
    tiny_model.zero_grad()
    loss = tiny_model.loss(tiny_model(frames), directions, weights, stats)
    loss.backward()
    assert torch.isfinite(loss)
    first_conv = next(p for n, p in tiny_model.encoder.layers.named_parameters() if n.endswith("conv.weight"))
    assert first_conv.grad is not None and float(first_conv.grad.abs().sum()) > 0  # the YOLO backbone learns
    assert tiny_model.audio.log_kappa.grad is not None and float(tiny_model.audio.log_kappa.grad.abs()) > 0
    assert any(float(p.grad.abs().sum()) > 0 for p in tiny_model.audio.gate.parameters())


def test_objective_rewards_a_visual_map_at_the_sound(tiny_model):
    cells = tiny_model.cells
    source = cells[37]
    directions = torch.nn.functional.normalize(source + 0.05 * torch.randn(64, 3), dim=-1)[None]
    weights, stats = torch.ones(1, 64), torch.tensor([[0.0, 1.0]])
    right, wrong, flat = torch.zeros(1, len(cells)), torch.zeros(1, len(cells)), torch.zeros(1, len(cells))
    right[0, 37] = wrong[0, 100] = 10.0
    loss = {name: float(tiny_model.loss(logits, directions, weights, stats).detach())
            for name, logits in [("right", right), ("wrong", wrong), ("flat", flat)]}
    assert loss["right"] < loss["flat"] < loss["wrong"]
    silent = tiny_model.loss(right, directions, torch.zeros(1, 64), stats)  # a frame without sound costs nothing
    assert float(silent.detach()) == 0.0


@pytest.fixture(scope="module")
def av_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("selfsup") / "data"
    assert main(["synth-audio", str(root), "--num-clips", "2", "--duration", "3", "--split", "dev-train-synth",
                 "--seed", "3", "--format", "foa"]) == 0
    assert main(["synth-video", str(root), "--split", "dev-train-synth", "--size", "128x64", "--fps", "10"]) == 0
    return root


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_cli_pretrains_without_csv_resumes_and_initialises_the_av_model(av_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(av_root, root)
    shutil.rmtree(root / "metadata_dev")  # labels are never needed
    run = tmp_path / "run"
    args = ["pretrain-visual", str(REPO / "configs" / "pretrain_visual.yaml"), f"roots=[{root}]",
            f"out_dir={tmp_path}", "name=run", "frame_size=[64,128]", "embed_dim=16", "batch_size=4",
            "log_every_steps=1", "warmup_steps=1", "epochs=1"]
    assert main(args + ["max_steps=2"]) == 0
    for name in ("config.yaml", "train_log.csv", "last.pt", "best.pt", "visual_yolo.pt", "tensorboard"):
        assert (run / name).exists(), name
    assert [int(r["step"]) for r in _rows(run / "train_log.csv")] == [1, 2]
    assert "--visual-init" in capsys.readouterr().out

    assert main(args + ["max_steps=2"]) == 2  # the run folder holds a run
    assert "--resume" in capsys.readouterr().err
    assert main(args[:-1] + ["epochs=2", "max_steps=4", "--resume"]) == 0
    assert main(args + ["max_step=4"]) == 2  # a key that does not exist
    assert "max_step" in capsys.readouterr().err
    assert [int(r["step"]) for r in _rows(run / "train_log.csv")] == [1, 2, 3, 4]

    model = load_selfsup_model(run / "best.pt")
    assert model.map_grid == GRID
    from av_seld.models import build_model

    common = dict(audio_model="resnet_conformer", frame_size=FRAME, token_grid=(2, 4),
                  audio_kwargs={"in_channels": 7, "widths": [4, 8], "blocks": [1, 1], "pools": [[5, 2], [1, 2]],
                                "dim": 16, "depth": 1, "heads": 2, "kernel_size": 3}, depth=1, heads=2, kernel_size=3)
    plain = build_model("av_conformer", **common)
    init = build_model("av_conformer", visual_init=str(run / "best.pt"), **common)
    pretrained = model.encoder.state_dict()
    for key, value in init.visual.state_dict().items():
        if key.startswith("layers.") or "projection" in key or "norm" in key:
            assert torch.equal(value, pretrained[key]), key  # every YOLO and token tensor comes from the checkpoint
    changed = [k for k, v in plain.visual.layers.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, init.visual.layers.state_dict()[k])]
    assert changed  # and differs from the random initialisation

    # the exported file holds only tensors (it loads without unpickling code) and loads as visual_weights: the same
    # YOLO layers
    from av_seld.models.visual import YoloVisualEncoder

    assert torch.load(run / "visual_yolo.pt", weights_only=True)["model_name"] == "yolo11n"

    exported = YoloVisualEncoder(weights=run / "visual_yolo.pt", frame_size=FRAME, token_grid=(2, 4), embed_dim=16)
    for key, value in exported.layers.state_dict().items():
        assert torch.equal(value, pretrained[f"layers.{key}"]), key


def test_train_command_passes_visual_init_as_a_model_param(monkeypatch):
    import av_seld.training.run as run_module

    seen = {}

    def fake_train(config, **kwargs):
        seen["params"] = dict(config.model.params)
        raise SystemExit(0)

    monkeypatch.setattr(run_module, "train", fake_train)
    with pytest.raises(SystemExit):
        main(["train", str(REPO / "configs" / "av_conformer.yaml"), "data.roots=[x]", "--visual-init", "runs/pre/best.pt"])
    assert seen["params"]["visual_init"] == "runs/pre/best.pt"


def test_bad_inputs_name_the_file(av_root, tmp_path, tiny_model):
    root = tmp_path / "novideo"
    shutil.copytree(av_root / "foa_dev", root / "foa_dev")
    with pytest.raises(InputError, match="fold.*mix001.wav.*no 360° video"):
        prepare_cache(root, frame_size=FRAME)

    bad = tmp_path / "twochannels"
    shutil.copytree(av_root, bad)
    wav = sorted((bad / "foa_dev" / "dev-train-synth").glob("*.wav"))[0]
    import soundfile as sf

    audio, rate = sf.read(wav)
    sf.write(wav, audio[:, :2], rate, subtype="PCM_16")
    with pytest.raises(InputError, match=f"{wav.name}.*expected 4 channels"):
        prepare_cache(bad, frame_size=FRAME, cache_dir=tmp_path / "cache")

    with pytest.raises(InputError, match="checkpoint not found"):
        load_encoder_init(tiny_model.encoder, tmp_path / "missing.pt")


def test_cached_visual_features_follow_visual_init(tmp_path, monkeypatch):
    """With data.visual_features, the cache holds the pre-trained YOLO's features (its exported visual_yolo.pt)."""
    from av_seld.config import Config, DataConfig, ModelConfig
    from av_seld.config import ConfigError
    from av_seld.training import caches as run_module

    pre = tmp_path / "pre"
    pre.mkdir()
    config = Config(data=DataConfig(roots=[str(tmp_path / "data")], visual_features=True),
                    model=ModelConfig(name="av_conformer", params={"visual_init": str(pre / "best.pt"),
                                                                   "visual_weights": "other.pt"}))
    with pytest.raises(ConfigError, match="visual_yolo.pt"):
        run_module.visual_caches(config)

    (pre / "visual_yolo.pt").write_bytes(b"")
    specs = []

    def fake_precompute(root, spec):
        specs.append(spec)
        return iter(())

    import av_seld.data.visual_cache as visual_cache

    monkeypatch.setattr(visual_cache, "precompute_visual_features", fake_precompute)
    run_module.visual_caches(config)
    assert specs and specs[0].weights == str(pre / "visual_yolo.pt")


def test_validation_split_picks_best_by_the_self_supervised_loss(av_root, tmp_path):
    from av_seld.config import PretrainConfig
    from av_seld.selfsup import pretrain_visual
    from av_seld.training.checkpoint import load_checkpoint

    root = tmp_path / "data"
    shutil.copytree(av_root, root)
    wav = sorted((root / "foa_dev" / "dev-train-synth").glob("*.wav"))[0]
    for folder, suffix in (("foa_dev", ".wav"), ("video_dev", ".mp4")):
        (root / folder / "dev-val-synth").mkdir()
        (root / folder / "dev-train-synth" / f"{wav.stem}{suffix}").rename(
            root / folder / "dev-val-synth" / f"{wav.stem}{suffix}")
    config = PretrainConfig(roots=[str(root)], splits=["dev-train-synth"], val_splits=["dev-val-synth"],
                            frame_size=FRAME, map_grid=GRID, embed_dim=16, batch_size=4, epochs=2, max_steps=3,
                            warmup_steps=1, log_every_steps=1)
    result = pretrain_visual(config, tmp_path / "run")
    rows = _rows(tmp_path / "run" / "val_log.csv")
    assert rows and all(set(r) >= {"step", "epoch", "loss"} for r in rows)
    losses = {int(r["step"]): float(r["loss"]) for r in rows}
    best_step = min(losses, key=losses.get)
    assert result.val_loss == pytest.approx(losses[best_step])
    assert load_checkpoint(result.best_checkpoint)["train_state"]["step"] == best_step


def test_a_run_started_with_visual_init_rebuilds_without_the_pretraining_file(av_root, tmp_path):
    """The pre-trained visual weights are read once, when training starts; the run's checkpoints hold them, so they
    rebuild after the pretrain-visual folder is gone."""
    from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint

    pre_args = ["pretrain-visual", str(REPO / "configs" / "pretrain_visual.yaml"), f"roots=[{av_root}]",
                f"out_dir={tmp_path}", "name=pre", "frame_size=[64,128]", "embed_dim=8", "batch_size=4",
                "warmup_steps=1", "epochs=1", "max_steps=1", f"cache_dir={tmp_path / 'selfsup_cache'}"]
    assert main(pre_args) == 0
    tiny = ("{widths: [4, 8], blocks: [1, 1], pools: [[5, 2], [1, 2]], dim: 8, depth: 1, heads: 2, kernel_size: 3, "
            "head: gated}")
    assert main(["train", str(REPO / "configs" / "demo.yaml"), f"data.roots=[{av_root}]", "data.visual_features=false",
                 "data.video=true", "data.train_splits=[dev-train-synth]", "data.val_splits=[]", "data.test_splits=[]",
                 "data.video_size=[64,128]", "data.batch_size=2", "data.chunk_s=1.0", "data.train_hop_s=1.0",
                 f"model.params.audio_kwargs={tiny}", "model.params.frame_size=[64,128]",
                 "model.params.token_grid=[2,4]", "model.params.heads=2", "model.params.kernel_size=3",
                 "train.max_steps=1", f"train.out_dir={tmp_path / 'runs'}", "train.name=av",
                 "--visual-init", str(tmp_path / "pre" / "best.pt")]) == 0
    payload = load_checkpoint(tmp_path / "runs" / "av" / "last.pt")
    assert "visual_init" not in payload["model_params"]
    shutil.rmtree(tmp_path / "pre")
    assert sum(p.numel() for p in build_model_from_checkpoint(payload).parameters()) > 0
