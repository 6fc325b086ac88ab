"""av-seld export: the inference checkpoint and the TorchScript program give the PyTorch model's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from av_seld.cli import main
from av_seld.export import example_inputs
from av_seld.models import build_model
from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint, save_checkpoint

AUDIO = {"in_channels": 7, "widths": [4, 8], "blocks": [1, 1], "pools": [[5, 2], [1, 2]], "dim": 16, "depth": 1,
         "heads": 2, "kernel_size": 3}
AV = {"audio_model": "resnet_conformer", "audio_kwargs": AUDIO, "frame_size": [64, 128], "token_grid": [2, 4],
      "depth": 1, "heads": 2, "kernel_size": 3}


def _checkpoint(path, name, params):
    torch.manual_seed(0)
    model = build_model(name, **params)
    save_checkpoint(path, {"model_name": name, "model_params": params, "model_state": model.state_dict(),
                           "features": "foa_logmel_iv", "format": "foa", "chunk_s": 2.0,
                           "feature_mean": np.zeros((7, 64), np.float32), "feature_std": np.ones((7, 64), np.float32),
                           "thresholds": np.full(13, 0.4), "merge_deg": 15.0, "config": {},
                           "optimizer": {"state": {}, "param_groups": []}, "train_state": {"step": 7}})
    return path


@pytest.mark.parametrize("name, params", [("resnet_conformer", AUDIO), ("av_conformer", AV)])
def test_exports_give_the_models_outputs(tmp_path, name, params):
    src = _checkpoint(tmp_path / "best.pt", name, params)
    payload = load_checkpoint(src)
    model = build_model_from_checkpoint(payload)
    inputs = example_inputs(model, payload, batch=2)
    with torch.no_grad():
        reference = (model(inputs[0]) if len(inputs) == 1 else
                     model(inputs[0], visual_features=inputs[1], visual_mask=inputs[2]))

    assert main(["export", str(src), "--out", str(tmp_path / "slim.pt")]) == 0
    slim = load_checkpoint(tmp_path / "slim.pt")
    assert "optimizer" not in slim and slim["slimmed_from"]["step"] == 7
    with torch.no_grad():
        again = build_model_from_checkpoint(slim)
        out = again(inputs[0]) if len(inputs) == 1 else again(inputs[0], visual_features=inputs[1],
                                                              visual_mask=inputs[2])
    torch.testing.assert_close(out, reference, rtol=0, atol=0)

    assert main(["export", str(src), "--out", str(tmp_path / "model.ts"), "--format", "torchscript"]) == 0
    extra = {"av_seld.json": ""}
    program = torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    meta = json.loads(extra["av_seld.json"])
    assert meta["features"] == "foa_logmel_iv" and len(meta["thresholds"]) == 13 and meta["smooth_frames"] == 1
    with torch.no_grad():
        torch.testing.assert_close(program(*inputs), reference, atol=1e-5, rtol=1e-5)


def test_a_checkpoint_rebuilds_without_the_visual_weights_file_it_started_from(tmp_path, caplog):
    """The recipe's visual_weights (e.g. assets/...) started training; the checkpoint holds every weight, so the
    rebuild neither reads that file (it may be absent on another machine) nor warns about random weights."""
    params = {"frame_size": [64, 128], "token_grid": [2, 4], "depth": 1, "heads": 2, "kernel_size": 3,
              "audio_kwargs": {"widths": [4, 8], "blocks": [1, 1], "pools": [[5, 2], [1, 2]], "dim": 16, "depth": 1,
                               "heads": 2, "kernel_size": 3}}
    model = build_model("av_conformer", **params).eval()
    payload = {"model_name": "av_conformer", "model_state": model.state_dict(),
               "model_params": {**params, "visual_weights": str(tmp_path / "gone" / "visual_yolo.pt")}}
    import av_seld.models.visual as visual

    visual._random_weights_logged = False  # the warning is once per process: make sure this rebuild could give it
    caplog.clear()
    with caplog.at_level("WARNING"):
        rebuilt = build_model_from_checkpoint(payload)
    assert "random weights" not in caplog.text
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


# onnxruntime against PyTorch on the same inputs: float32 sums in another order, nothing more (seen: <= 1e-6)
ONNX_RTOL, ONNX_ATOL = 1e-4, 1e-5


GRU = {"in_channels": 7, "widths": [4, 8], "blocks": [1, 1], "pools": [[5, 2], [1, 2]], "rnn_size": 8, "rnn_layers": 1}


@pytest.mark.parametrize("name, params", [("resnet_conformer", AUDIO), ("av_conformer", AV), ("resnet_gru", GRU)])
def test_onnx_export_gives_the_models_outputs_for_any_batch_and_length(tmp_path, name, params):
    """Batch and time are free, except for the GRU models, whose time torch.export fixes at one window (chunk_s)."""
    import onnxruntime

    src = _checkpoint(tmp_path / "best.pt", name, params)
    assert main(["export", str(src), "--out", str(tmp_path / "model.onnx"), "--format", "onnx"]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["av_seld.json"])
    assert meta["model_name"] == name and meta["features"] == "foa_logmel_iv" and len(meta["thresholds"]) == 13
    assert meta["inputs"] == [i.name for i in session.get_inputs()]
    assert meta["window_frames"] == (20 if name == "resnet_gru" else None)
    model = build_model_from_checkpoint(load_checkpoint(src))
    generator = torch.Generator().manual_seed(1)
    for batch, frames in [(1, 20), (3, meta["window_frames"] or 33)]:  # the export traced (2, 20)
        inputs = {"features": torch.randn(batch, 7, 5 * frames, 64, generator=generator)}
        if model.uses_video:
            visual = model.visual
            inputs["visual_features"] = torch.randn(batch, frames, visual.feature_dim, *visual.token_grid,
                                                    generator=generator)
            mask = torch.rand(batch, frames, generator=generator) > 0.3
            mask[0] = False  # a clip without video: every frame takes the "no video" token
            inputs["visual_mask"] = mask
        with torch.no_grad():
            reference = model(inputs["features"], visual_features=inputs.get("visual_features"),
                              visual_mask=inputs.get("visual_mask")).numpy()
        got = session.run(None, {key: value.numpy() for key, value in inputs.items()})[0]
        np.testing.assert_allclose(got, reference, rtol=ONNX_RTOL, atol=ONNX_ATOL)


def test_onnx_export_refuses_what_it_cannot_write(tmp_path):
    from av_seld.export import export_checkpoint, visual_trunk_onnx
    from av_seld.models.debug import DebugVisualEncoder

    src = _checkpoint(tmp_path / "best.pt", "resnet_conformer", AUDIO)
    with pytest.raises(ValueError, match="format must be one of"):
        export_checkpoint(src, tmp_path / "model.tflite", "tflite")
    with pytest.raises(SystemExit):  # argparse: invalid choice
        main(["export", str(src), "--out", str(tmp_path / "model.tflite"), "--format", "tflite"])
    with pytest.raises(ValueError, match="exports YOLO encoders, not DebugVisualEncoder"):
        visual_trunk_onnx(DebugVisualEncoder(frame_size=(64, 128), token_grid=(2, 4), embed_dim=16))
    assert not list(tmp_path.glob("*.tflite"))
