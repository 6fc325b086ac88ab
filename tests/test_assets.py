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
