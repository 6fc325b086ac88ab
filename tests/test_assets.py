"""The weights shipped in assets/: every file listed in assets/SHA256SUMS is there, matches its checksum, and loads
as an av-seld checkpoint that builds its model (no training, no download)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def _listed() -> list[tuple[str, str]]:
    sums = ASSETS / "SHA256SUMS"
    if not sums.is_file():
        return []
    return [tuple(line.split()[::-1]) for line in sums.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name, digest", _listed() or [pytest.param("", "", marks=pytest.mark.skip("no assets"))])
def test_shipped_weights_match_their_checksums_and_load(name, digest):
    from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint

    path = ASSETS / name.lstrip("*")
    assert path.is_file(), f"{path} is listed in SHA256SUMS but missing"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path}: checksum differs from SHA256SUMS"
    assert (ASSETS / "README.md").read_text().count(path.name) >= 1, f"{path.name} is not described in assets/README.md"
    if path.name.startswith("visual_"):  # YOLO weights (visual_weights): they load into the visual encoder
        from av_seld.models.visual import YoloVisualEncoder

        encoder = YoloVisualEncoder(model=path.stem.split("_")[1], weights=path, frame_size=(64, 128))
        assert sum(p.numel() for p in encoder.parameters()) > 0
    elif path.suffix == ".pt":
        model = build_model_from_checkpoint(load_checkpoint(path))
        assert sum(p.numel() for p in model.parameters()) > 0


def test_recipes_find_the_shipped_weights_from_any_working_folder(tmp_path, monkeypatch):
    from av_seld.training.run import shipped_path

    monkeypatch.chdir(tmp_path)
    assert shipped_path("assets/README.md") == ASSETS / "README.md"
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "README.md").write_text("mine")
    assert shipped_path("assets/README.md") == Path("assets/README.md")  # the working folder's file wins
    assert shipped_path("assets/missing.pt") == Path("assets/missing.pt")  # left for the loader to name


@pytest.mark.parametrize("recipe, missing_prefix", [("small_data.yaml", None), ("pretrain_av.yaml", "visual.")])
def test_recipes_init_from_files_fit_their_models(recipe, missing_prefix):
    """small_data starts its whole audio-visual model from assets/av_pretrain_synth.pt; pretrain_av starts the audio
    branch from the audio pre-training (the fusion blocks and the no-video token start new)."""
    from av_seld import features as feats
    from av_seld.config import load_config
    from av_seld.models import build_model
    from av_seld.training.checkpoint import initialise_weights
    from av_seld.training.run import model_params, shipped_path

    config = load_config(ASSETS.parent / "configs" / recipe)
    path = shipped_path(config.train.init_from)
    if not path.is_file():
        pytest.skip(f"{path} is not shipped in this checkout")
    params = model_params(config, feats.feature_spec(config.data.features).num_channels)
    params.pop("audio_state", None)
    params["visual_weights"] = None  # the encoder's own file is checked above; here only the names and shapes
    model = build_model(config.model.name, **params)
    missing, unexpected = initialise_weights(model, path)
    assert unexpected == []
    if missing_prefix is None:
        assert missing == []
    else:
        assert missing and not any(k.startswith("audio.") for k in missing)  # the whole audio branch loads
        assert any(k.startswith(missing_prefix) for k in missing) and "no_video" in missing
