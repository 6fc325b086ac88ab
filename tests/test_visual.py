"""YOLO visual encoder (av_seld.models.visual), its offline import, and the visual feature cache + CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from av_seld.cli import main
from av_seld.errors import InputError
from av_seld.geometry import pixel_center_directions
from av_seld.models.visual import (
    YoloVisualEncoder,
    build_detection_model,
    build_yolo_layers,
    spherical_position_features,
)

H, W = 64, 128  # tiny equirectangular frames: P3 8×16, P4 4×8, P5 2×4
GRID = (2, 4)


def _encoder(**kwargs) -> YoloVisualEncoder:
    options = dict(model="yolo11n", frame_size=(H, W), token_grid=GRID, embed_dim=32)
    return YoloVisualEncoder(**{**options, **kwargs}).eval()


@pytest.fixture(scope="module")
def encoder():
    return _encoder()


@pytest.fixture(scope="module")
def frames():
    return torch.rand(2, 3, 3, H, W, generator=torch.Generator().manual_seed(0))  # (B, T, 3, H, W)


@pytest.mark.parametrize("model, channels", [("yolo11n", (64, 128, 256)), ("yolov8n", (64, 128, 256))])
def test_feature_map_and_token_shapes(model, channels, frames, encoder):
    enc = encoder if model == "yolo11n" else _encoder(model=model)
    maps = enc.feature_maps(frames[:, 0])
    assert [tuple(m.shape) for m in maps] == [(2, c, H // s, W // s) for c, s in zip(channels, (8, 16, 32))]
    assert enc.channels == channels and enc.feature_dim == sum(channels)
    assert tuple(enc.pooled_features(frames[:, 0]).shape) == (2, sum(channels), *GRID)
    assert tuple(enc(frames).shape) == (2, 3, 8, 32)  # (B, T, N, D)
    assert tuple(enc(frames[:, 0]).shape) == (2, 8, 32)


def test_uint8_frames_are_scaled_to_unit_range(encoder):
    frames = torch.randint(0, 256, (2, 3, H, W), dtype=torch.uint8)
    expected = encoder.pooled_features(frames.float() / 255)
    torch.testing.assert_close(encoder.pooled_features(frames), expected)


@pytest.mark.parametrize("circular", [True, False])
def test_rolling_the_panorama_rolls_the_feature_maps_only_with_circular_padding(circular, frames, encoder):
    enc = encoder if circular else _encoder(circular_padding=False)
    x = frames[:, 0]
    shift = 32  # the total stride: one P5 column
    with torch.no_grad():
        maps, rolled = enc.feature_maps(x), enc.feature_maps(torch.roll(x, shift, dims=-1))
    for stride, m, r in zip((8, 16, 32), maps, rolled):
        error = (torch.roll(m, shift // stride, dims=-1) - r).abs().max() / m.abs().max()
        if circular:
            assert error < 1e-5, (stride, error)
        else:
            assert error > 1e-2, (stride, error)  # the seam columns see zeros, not the other edge


def test_circular_padding_keeps_weights_and_state_dict_keys(encoder):
    a, b = encoder, _encoder(circular_padding=False)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if k.startswith("layers."))


def test_position_features_are_continuous_across_the_seam():
    rows, cols = 10, 20
    pe = spherical_position_features(rows, cols).reshape(rows, cols, -1)
    seam = (pe[:, 0] - pe[:, -1]).norm(dim=-1)  # columns either side of azimuth ±180°
    centre = (pe[:, cols // 2 - 1] - pe[:, cols // 2]).norm(dim=-1)  # columns either side of azimuth 0
    neighbours = (pe[:, 1:] - pe[:, :-1]).norm(dim=-1)
    torch.testing.assert_close(seam, centre)
    assert seam.max() <= neighbours.max() + 1e-6
    # the first three features are the unit vector of the cell centre (av_seld.geometry's convention)
    az, el = np.deg2rad(pixel_center_directions(cols, rows))
    xyz = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    np.testing.assert_allclose(pe[..., :3].numpy(), xyz, atol=1e-6)


def test_token_directions_follow_the_equirectangular_convention(encoder):
    azimuth, elevation = encoder.token_directions()
    assert azimuth.shape == (encoder.num_tokens,)
    # grid 2×4: first token is the top-left cell (azimuth 135°, elevation 45°), row-major order
    np.testing.assert_allclose(azimuth[:4], [135, 45, -45, -135])
    np.testing.assert_allclose(elevation, [45] * 4 + [-45] * 4)


@pytest.mark.parametrize("size", [(100, 200), (64, 96), (48, 96)])
def test_frame_sizes_must_be_equirectangular_multiples_of_32(size):
    with pytest.raises(ValueError, match="multiples of 32|width must be 2"):
        _encoder(frame_size=size)


def test_forward_rejects_frames_of_a_bad_size(encoder):
    with pytest.raises(ValueError, match="multiples of 32"):
        encoder(torch.zeros(1, 3, 48, 96))


def test_unknown_model_name_is_rejected():
    with pytest.raises(ValueError, match="unknown YOLO model"):
        _encoder(model="yolov5n")


def test_frozen_encoder_trains_only_its_projection(encoder):
    encoder.train()
    try:
        assert not any(p.requires_grad for p in encoder.layers.parameters())
        assert all(p.requires_grad for n, p in encoder.named_parameters() if not n.startswith("layers."))
        assert not any(m.training for m in encoder.layers.modules())  # BatchNorm statistics stay fixed
    finally:
        encoder.eval()
    tuned = _encoder(freeze=False).train()
    assert all(p.requires_grad for p in tuned.parameters())
    assert all(m.training for m in tuned.layers.modules())


def test_random_weights_are_deterministic_for_a_seed(encoder):
    a, b, c = (build_yolo_layers("yolo11n", seed=s)[0].state_dict() for s in (0, 0, 1))
    key = "0.conv.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
    assert torch.equal(encoder.layers.state_dict()[key], a[key])


def test_loads_a_local_ultralytics_checkpoint(tmp_path, encoder):
    source = build_detection_model("yolo11n", seed=7)  # the full ultralytics model, as in a .pt file
    layers = build_yolo_layers("yolo11n", seed=7)[0].state_dict()
    detect = f"model.{len(source.model) - 1}."  # only the detect head differs (its bias init)
    assert all(torch.equal(v, layers[k[len("model."):]]) for k, v in source.state_dict().items()
               if not k.startswith(detect))
    path = tmp_path / "yolo11n-test.pt"
    torch.save({"model": source.half(), "epoch": -1}, path)  # as ultralytics saves: a whole model, half precision
    enc = _encoder(weights=path)
    expected = {k: v.float() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    for key, value in enc.layers.state_dict().items():
        torch.testing.assert_close(value, expected["model." + key])
    assert not torch.equal(enc.layers.state_dict()["0.conv.weight"], encoder.layers.state_dict()["0.conv.weight"])


def test_saved_yolo_weights_load_without_unpickling_code(tmp_path, encoder):
    from av_seld.models.visual import load_yolo_model, save_yolo_model

    source = build_detection_model("yolo11n", seed=7)
    path = save_yolo_model(source, "yolo11n", tmp_path / "weights.pt")
    assert torch.load(path, weights_only=True)["model_name"] == "yolo11n"  # tensors and names only
    loaded = load_yolo_model(path)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.float()), key
    enc = _encoder(weights=path)
    torch.testing.assert_close(enc.layers.state_dict()["0.conv.weight"], source.state_dict()["model.0.conv.weight"])


def test_missing_or_mismatched_weights_are_input_errors(tmp_path):
    missing = tmp_path / "nowhere" / "yolo11n.pt"
    with pytest.raises(InputError, match="not found") as err:
        _encoder(weights=missing)
    assert err.value.path == str(missing)
    other = tmp_path / "yolov8n.pt"
    holder = torch.nn.Module()
    holder.model = build_yolo_layers("yolov8n")[0]  # state-dict keys "model.{i}.…" as in a DetectionModel
    torch.save({"model": holder}, other)
    with pytest.raises(InputError, match="does not match yolo11n"):
        _encoder(weights=other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot be read"):
        _encoder(weights=garbage)


def test_only_the_visual_module_imports_ultralytics():
    import ast

    repo = Path(__file__).resolve().parents[1]
    importers = []
    for path in [*(repo / "av_seld").rglob("*.py"), *(repo / "augment").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "ultralytics" or n.startswith("ultralytics.") for n in names):
                importers.append(path.relative_to(repo).as_posix())
    assert set(importers) == {"av_seld/models/visual.py"}


# --- offline import and build, in a fresh interpreter ---------------------------------------------------------------

_OFFLINE_SCRIPT = textwrap.dedent("""
    import json, os, socket
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network blocked by test")
    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse
    import torch
    torch.set_num_threads(3)
    import sys
    import av_seld.models  # the registry, fusion included
    import av_seld.models.visual as visual
    lazy = "ultralytics" not in sys.modules
    after_import = torch.get_num_threads()
    encoder = visual.YoloVisualEncoder(model="yolo11n", frame_size=(64, 128), token_grid=(2, 4), embed_dim=16)
    tokens = encoder(torch.rand(1, 2, 3, 64, 128))
    print(json.dumps({"attempts": attempts, "threads_after_import": after_import,
                      "threads_after_build": torch.get_num_threads(), "tokens": list(tokens.shape),
                      "omp": os.environ.get("OMP_NUM_THREADS"), "lazy": lazy,
                      "ultralytics_imported": "ultralytics" in sys.modules}))
""")


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("YOLO_") and k not in ("OMP_NUM_THREADS", "XDG_CONFIG_HOME", "AV_SELD_CACHE_DIR")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
    run = subprocess.run([sys.executable, "-c", _OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1]), home


def test_offline_import_build_and_run_touch_no_network(offline_run):
    result, home = offline_run
    assert result["lazy"]  # importing the model registry does not import ultralytics; building an encoder does
    assert result["ultralytics_imported"]
    assert result["tokens"] == [1, 2, 8, 16]
    assert result["attempts"] == []


def test_ultralytics_import_keeps_torch_threads_and_omp_setting(offline_run):
    result, _ = offline_run
    assert result["threads_after_import"] == result["threads_after_build"] == 3
    assert result["omp"] is None  # ultralytics sets OMP_NUM_THREADS=1 at import; it is taken back


def test_ultralytics_settings_live_in_the_cache_folder(offline_run):
    _, home = offline_run
    assert (home / "cache" / "av_seld" / "ultralytics" / "Ultralytics" / "settings.json").is_file()
    assert not (home / ".config").exists()
    settings = json.loads((home / "cache" / "av_seld" / "ultralytics" / "Ultralytics" / "settings.json").read_text())
    assert settings["sync"] is False


# --- feature cache and `av-seld precompute-visual` -------------------------------------------------------------------

def _write_video(path: Path, num_frames: int, fps: float = 30.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(num_frames):
        writer.write(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    writer.release()


@pytest.fixture
def av_dataset(tmp_path):
    from av_seld.io.audio import write_wav

    root = tmp_path / "data"
    split = "dev-test-tiny"
    for name in ("fold1_room1_mix001", "fold1_room1_mix002"):
        write_wav(root / "foa_dev" / split / f"{name}.wav", np.zeros((4, 12_000), np.float32))  # 0.5 s: 5 frames
    _write_video(root / "video_dev" / split / "fold1_room1_mix001.mp4", num_frames=12)  # 0.4 s: covers 4 frames
    return root, split


def test_precompute_visual_caches_resumes_and_matches_the_encoder(av_dataset, capsys):
    from av_seld.data.visual_cache import VisualCacheSpec, cache_dir, load_visual_features
    from av_seld.io.video import read_video_at_label_rate

    root, split = av_dataset
    args = ["precompute-visual", str(root), "--size", f"{W}x{H}", "--grid", "4x2", "--split", split]
    assert main(args) == 0
    assert "1 clip cached, 0 already cached, 1 without video" in capsys.readouterr().out
    folder = cache_dir(VisualCacheSpec(frame_size=(H, W), token_grid=GRID), root)
    path = folder / split / "fold1_room1_mix001.npy"
    raw = np.load(path)
    assert raw.dtype == np.float16 and raw.shape == (5, 448, 2, 4)
    features, valid = load_visual_features(path)
    np.testing.assert_array_equal(valid, [True, True, True, True, False])  # label frame 4 is past the video's end
    assert not features[4].any() and np.isfinite(features).all()

    video = read_video_at_label_rate(root / "video_dev" / split / "fold1_room1_mix001.mp4", num_label_frames=4,
                                     width=W, height=H)
    with torch.no_grad():
        expected = _encoder().pooled_features(torch.from_numpy(video.frames).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(features[:4].astype(np.float32), expected, rtol=2e-3, atol=1e-4)
    info = json.loads((folder / "cache_info.json").read_text())
    assert info["channels"] == [64, 128, 256] and info["token_grid"] == [2, 4]

    mtime = path.stat().st_mtime_ns
    assert main(args) == 0
    assert "0 clips cached, 1 already cached" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == mtime
    assert not list(folder.rglob("*.tmp*"))


def test_precompute_visual_rejects_bad_sizes_and_missing_weights(av_dataset, capsys):
    root, _ = av_dataset
    with pytest.raises(SystemExit) as exit_info:
        main(["precompute-visual", str(root), "--size", "140x70"])
    assert exit_info.value.code == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["precompute-visual", str(root), "--weights", str(root / "missing.pt")]) == 2
    assert "missing.pt: YOLO weights file not found" in capsys.readouterr().err


def test_frame_chunks_do_not_change_the_features(encoder, frames):
    x = frames.flatten(0, 1)  # 6 frames
    with torch.no_grad():
        whole = encoder.pooled_features(x)
        encoder.frame_chunk = 4
        try:
            chunked = encoder.pooled_features(x)
        finally:
            encoder.frame_chunk = 16
    torch.testing.assert_close(chunked, whole)
