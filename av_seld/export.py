"""``av-seld export``: a checkpoint as a smaller inference checkpoint, a TorchScript program or an ONNX model.

- ``inference``: the av-seld checkpoint without its optimizer and resume state (what ``av-seld infer``, the Python API
  and ``train.init_from`` read), about a third of the size.
- ``torchscript``: the network traced with ``torch.jit.trace`` for one window of ``chunk_s`` seconds, loadable with
  ``torch.jit.load`` and no av-seld code. Inputs: standardised features (B, C, 5 T, F) — the checkpoint's
  ``feature_mean``/``feature_std`` are stored beside the program in ``extra_files`` as JSON — and, for audio-visual
  models, the frozen visual encoder's pooled features (B, T, C_v, rows, cols) with a (B, T) bool mask, as
  ``precompute-visual`` caches them. Output: multi-ACCDOA (B, T, 3, 3, 13), or (B, T, 3, 4, 13) with distance.
- ``onnx``: the same network, inputs and output as an ONNX model (``torch.onnx.export``, the torch.export-based
  exporter, opset 20) that onnxruntime runs without torch. Batch and time are dynamic: features (B, C, 5·T, F) for
  any T, visual inputs (B, T, ...); for the GRU models (``resnet_gru``, ``seldnet``), whose time axis torch.export
  fixes, T is one window of ``chunk_s`` (``window_frames`` in the JSON; null when free). The same JSON as the TorchScript extra file is in the model's
  ``metadata_props`` under ``av_seld.json`` (onnxruntime: ``session.get_modelmeta().custom_metadata_map``).

The frozen YOLO trunk of an audio-visual model (frames -> pooled features) also exports to ONNX alone
(:func:`visual_trunk_onnx`); :class:`OnnxVisualTrunk` runs it with onnxruntime for ``av-seld infer
--visual-backend onnx``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from av_seld import timing
from av_seld.errors import InputError
from av_seld.training.checkpoint import build_model_from_checkpoint, load_checkpoint, slim_checkpoint
from av_seld.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

FORMATS = ("inference", "torchscript", "onnx")
ONNX_OPSET = 20
ONNX_METADATA_KEY = "av_seld.json"  # the TorchScript extra file's name, for the same JSON


class _CachedVisual(nn.Module):
    """An audio-visual model called positionally on cached visual features (what tracing needs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, visual_features: torch.Tensor, visual_mask: torch.Tensor) -> torch.Tensor:
        return self.model(features, visual_features=visual_features, visual_mask=visual_mask)


def example_inputs(model: nn.Module, payload: dict, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Random inputs of one window of the checkpoint's chunk length (see the module docstring for the layout)."""
    from av_seld import features as feats

    spec = feats.feature_spec(payload["features"])
    frames = int(round(payload["chunk_s"] * timing.LABEL_FRAMES_PER_SECOND))
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(batch, spec.num_channels, frames * timing.FEATURE_FRAMES_PER_LABEL_FRAME, spec.num_bins,
                           generator=generator)
    if not model.uses_video:
        return (features,)
    visual = model.visual
    pooled = torch.randn(batch, frames, visual.feature_dim, *visual.token_grid, generator=generator)
    return features, pooled, torch.ones(batch, frames, dtype=torch.bool)


def export_checkpoint(path: str | os.PathLike, out: str | os.PathLike, fmt: str = "inference") -> Path:
    """Write the export of the checkpoint at ``path`` to ``out`` (atomically); returns ``out``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    if fmt == "inference":
        slim_checkpoint(path, out)
        return out
    payload = load_checkpoint(path)
    model = build_model_from_checkpoint(payload)
    wrapped = _CachedVisual(model) if model.uses_video else model
    meta = _metadata(payload, model)
    if fmt == "onnx":
        _export_onnx(path, wrapped, example_inputs(model, payload, batch=2), meta, out)
        return out
    inputs = example_inputs(model, payload)
    with torch.no_grad(), warnings.catch_warnings():
        # the shape checks of forward become constants of the traced window, as intended; torch.jit is deprecated
        # in favour of torch.export, whose programs need torch to load as well
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        program = torch.jit.trace(wrapped, inputs, check_trace=False)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(program, str(tmp), _extra_files={"av_seld.json": json.dumps(meta)})
    return out


def _metadata(payload: dict, model: nn.Module) -> dict:
    """What a user of an exported network needs beside it: feature kind and statistics, thresholds, input names."""
    return {"model_name": payload["model_name"], "features": payload["features"], "format": payload["format"],
            "chunk_s": float(payload["chunk_s"]), "thresholds": [float(t) for t in payload["thresholds"]],
            "merge_deg": float(payload["merge_deg"]), "smooth_frames": int(payload.get("smooth_frames", 1)),
            "feature_mean": torch.as_tensor(payload["feature_mean"]).tolist(),
            "feature_std": torch.as_tensor(payload["feature_std"]).tolist(),
            "inputs": ["features", "visual_features", "visual_mask"] if model.uses_video else ["features"]}


def _import_onnx():
    """The ``onnx`` package, or ImportError saying what to install (the ``onnx`` extra of av-seld)."""
    try:
        import onnx
        import onnxscript  # noqa: F401 - what torch.onnx's exporter builds the graph with
    except ImportError as e:
        raise ImportError(f"ONNX export needs the onnx and onnxscript packages ({e}); install them with "
                          "pip install 'av-seld[onnx]'") from None
    return onnx


def onnx_model(module: nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str],
               output_name: str, dynamic_shapes: tuple[dict, ...]):
    """``module`` (eval mode) as an ``onnx.ModelProto``, exported with torch.export at ``inputs``; axes named in
    ``dynamic_shapes`` (as torch.onnx.export takes them, one dict per input) stay free."""
    _import_onnx()
    folding = logging.getLogger("onnxscript.optimizer._constant_folding")
    level = folding.level
    folding.setLevel(logging.ERROR)  # "skipping constant folding for Split": the graph is right, only less folded
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch's own deprecations (pytree LeafSpec) and notes on merged axis names, none about this model
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
            warnings.filterwarnings("ignore", message=".*_flat_weights.* were assigned during export")  # nn.GRU's
            program = torch.onnx.export(module.eval(), inputs, dynamo=True, opset_version=ONNX_OPSET,
                                        input_names=input_names, output_names=[output_name],
                                        dynamic_shapes=dynamic_shapes, verbose=False)
    finally:
        folding.setLevel(level)
    return program.model_proto


def _root_cause(error: BaseException) -> str:
    """The first line of the innermost cause of ``error`` (torch.export wraps its reasons in several layers)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _export_onnx(path: str | os.PathLike, wrapped: nn.Module, inputs: tuple[torch.Tensor, ...], meta: dict,
                 out: Path) -> None:
    """The network on features (and cached visual features) as ONNX with ``meta`` in its metadata_props; batch and
    time dynamic, or, for models whose time axis torch.export fixes (the GRUs of ``resnet_gru`` and ``seldnet``),
    batch only, time at one window of ``chunk_s`` (``meta["window_frames"]`` says which). InputError naming the
    checkpoint when torch cannot export the model at all."""
    onnx = _import_onnx()
    batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames")
    free_time = [{0: batch, 2: timing.FEATURE_FRAMES_PER_LABEL_FRAME * frames}, {0: batch, 1: frames},
                 {0: batch, 1: frames}][: len(inputs)]
    try:
        proto = onnx_model(wrapped, inputs, meta["inputs"], "multi_accdoa", tuple(free_time))
        meta = {**meta, "window_frames": None}
    except Exception as free_error:  # noqa: BLE001 - torch.export raises many kinds; retry with the time fixed
        window = inputs[0].shape[2] // timing.FEATURE_FRAMES_PER_LABEL_FRAME
        try:
            proto = onnx_model(wrapped, inputs, meta["inputs"], "multi_accdoa", tuple({0: batch} for _ in inputs))
        except Exception as e:  # noqa: BLE001 - the user needs the model and the cause
            raise InputError(path, f"{meta['model_name']} cannot be exported to ONNX by torch {torch.__version__}: "
                                   f"{_root_cause(e)}") from e
        logger.warning("%s: torch.export cannot keep the time axis of %s free (%s); the ONNX model takes windows "
                       "of %d label frames (chunk_s)", path, meta["model_name"], _root_cause(free_error), window)
        meta = {**meta, "window_frames": window}
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(meta)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))


class _Trunk(nn.Module):
    """A YOLO visual encoder's frozen part alone: frames (B, 3, H, W) -> pooled features (B, C, rows, cols)."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.visual.pool_chunk(frames)


def visual_trunk_onnx(visual: nn.Module) -> bytes:
    """The YOLO trunk of a visual encoder (:meth:`~av_seld.models.visual.YoloVisualEncoder.pool_chunk`) as a
    serialised ONNX model: ``frames`` (B, 3, H, W) uint8 at the encoder's frame size -> ``pooled_features``
    (B, C, rows, cols) float32, any B."""
    if not hasattr(visual, "pool_chunk"):
        raise ValueError(f"the ONNX visual trunk exports YOLO encoders, not {type(visual).__name__}")
    height, width = visual.frame_size
    frames = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    proto = onnx_model(_Trunk(visual), (frames,), ["frames"], "pooled_features",
                       ({0: torch.export.Dim("frames")},))
    return proto.SerializeToString()


class OnnxVisualTrunk:
    """A visual encoder's ``pooled_features`` run by onnxruntime on the CPU (``av-seld infer --visual-backend
    onnx``): frames (B, 3, H, W) uint8 -> (B, C, rows, cols) float32, the numbers of the PyTorch trunk to float
    rounding. Exported from ``visual`` once, in memory, when built; ``threads``: onnxruntime's intra-op threads
    (default torch's)."""

    def __init__(self, visual: nn.Module, threads: int | None = None):
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError(f"the onnx visual backend needs onnxruntime ({e}); install it with "
                              "pip install 'av-seld[onnx]'") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # idle workers sleep instead of spinning: CPU time goes to frames, not to waiting (machines are shared)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(visual_trunk_onnx(visual), options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dtype != torch.uint8 or frames.ndim != 4:
            raise ValueError(f"frames must be uint8 (B, 3, H, W), got {frames.dtype} {tuple(frames.shape)}")
        pooled = self.session.run(None, {"frames": np.ascontiguousarray(frames.cpu().numpy())})[0]
        return torch.from_numpy(pooled)
