"""YOLO visual encoder over equirectangular frames: the only module of av-seld that imports ultralytics.

An ultralytics detection model (YOLOv8 / YOLO11, sizes n/s/m/l/x, built from the yaml files shipped inside the
installed package) serves as a feature extractor: its layers are run here, up to the neck, to get the P3, P4 and P5
feature maps (strides 8, 16, 32). Each map is average-pooled to a fixed token grid, normalised, projected to the
token width and summed over the three levels; each token then gets a spherical position encoding of its cell centre
(azimuth and elevation, continuous across the seam). Frames are RGB, (B, [T,] 3, H, W), float in [0, 1] or uint8,
with H and W multiples of 32 and W = 2H.

Offline by construction: ultralytics is imported lazily by :func:`import_ultralytics`, which first sets
``YOLO_OFFLINE=1`` (no network probe at import), ``YOLO_AUTOINSTALL=0`` (no run-time pip), ``YOLO_CONFIG_DIR`` inside
av-seld's cache folder (no settings file in ``~/.config``) and turns settings sync off; afterwards it restores torch's
thread count and ``OMP_NUM_THREADS`` (ultralytics sets ``OMP_NUM_THREADS=1`` at import). Models are built from the
packaged yaml (never a name that ultralytics might try to download), and weights load only from a local ``.pt`` file.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from av_seld.errors import InputError
from av_seld.geometry import DEFAULT_FRAME_SIZE, pixel_center_directions

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)  # P3, P4, P5
DEFAULT_TOKEN_GRID = (5, 10)  # (rows, columns) of visual tokens per frame: 36° × 36° cells
# Model family -> yaml inside ultralytics/cfg/models. Sizes come from the yaml's "scales".
_FAMILY_YAML = {"yolov8": "v8/yolov8.yaml", "yolo11": "11/yolo11.yaml"}
_MODEL_NAME = re.compile(r"(yolov8|yolo11)([nsmlx])")

_random_weights_logged = False


def default_cache_dir() -> Path:
    """av-seld's cache folder: ``$AV_SELD_CACHE_DIR``, else ``$XDG_CACHE_HOME/av_seld``, else ``~/.cache/av_seld``."""
    if os.environ.get("AV_SELD_CACHE_DIR"):
        return Path(os.environ["AV_SELD_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "av_seld"


@functools.lru_cache(maxsize=1)
def import_ultralytics():
    """Import ultralytics offline and return its ``ultralytics.nn.tasks`` module (the one place that imports it).

    Environment set before the import: ``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=0``, and unless already set,
    ``YOLO_CONFIG_DIR=<cache>/ultralytics`` and ``YOLO_VERBOSE=False``. torch's thread count and
    ``OMP_NUM_THREADS`` are restored afterwards.
    """
    if "ultralytics" in sys.modules:
        logger.debug("ultralytics was imported before av_seld.models.visual set its offline environment")
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    own_config_dir = "YOLO_CONFIG_DIR" not in os.environ
    if own_config_dir:
        os.environ["YOLO_CONFIG_DIR"] = str(default_cache_dir() / "ultralytics")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    num_threads = torch.get_num_threads()
    omp_threads = os.environ.get("OMP_NUM_THREADS")
    try:
        from ultralytics.nn import tasks
        from ultralytics.utils import SETTINGS
    finally:
        torch.set_num_threads(num_threads)
        if omp_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp_threads
    if own_config_dir and SETTINGS.get("sync", False):
        SETTINGS.update(sync=False)  # our own settings file: no analytics or crash reports, even if online
    return tasks


def parse_model_name(name: str) -> tuple[str, str]:
    """``(family, size)`` of a model name such as ``"yolo11n"`` or ``"yolov8s"``; ValueError for others."""
    match = _MODEL_NAME.fullmatch(name)
    if match is None:
        families = ", ".join(f"{family}{{n,s,m,l,x}}" for family in _FAMILY_YAML)
        raise ValueError(f"unknown YOLO model {name!r}; expected one of {families}")
    return match.group(1), match.group(2)


def check_frame_size(height: int, width: int) -> None:
    """ValueError unless ``height`` and ``width`` are positive multiples of 32 with ``width == 2 * height``."""
    if height <= 0 or width <= 0 or height % STRIDES[-1] or width % STRIDES[-1]:
        raise ValueError(f"frame size {height}x{width} (HxW): height and width must be positive multiples of 32")
    if width != 2 * height:
        raise ValueError(f"frame size {height}x{width} (HxW) is not equirectangular: width must be 2 x height")


def _model_cfg(model: str) -> dict:
    """The packaged yaml of ``model`` as a dict, with its size set (never a file name ultralytics might download)."""
    family, size = parse_model_name(model)
    import_ultralytics()
    import ultralytics
    from ultralytics.utils import YAML

    cfg = YAML.load(Path(ultralytics.__file__).parent / "cfg" / "models" / _FAMILY_YAML[family])
    cfg["scale"] = size
    cfg["yaml_file"] = f"{family}{size}.yaml"
    return cfg


def _he_init(module: nn.Module) -> None:
    # With PyTorch's default init the untrained P5 features shrink to ~1e-9 (zero in float16); with He-normal
    # weights they stay ~1e-2, so random-weight features still carry the image.
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")


def build_yolo_layers(model: str = "yolo11n", *, seed: int = 0) -> tuple[nn.Sequential, list[int]]:
    """``(layers, save)`` of an ultralytics model, as ``DetectionModel.model`` and ``.save``, with random He-normal
    convolution weights (deterministic for ``seed``; the same as :func:`build_detection_model`'s for that seed).

    Skips DetectionModel's stride probe (a 256×256 forward pass). Layer ``i`` is the checkpoint's ``model.{i}``.
    """
    tasks = import_ultralytics()
    from ultralytics.utils.torch_utils import initialize_weights

    cfg = _model_cfg(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers, save = tasks.parse_model(cfg, ch=3, verbose=False)
        initialize_weights(layers)  # ultralytics' BatchNorm eps and momentum, which pretrained weights expect
        _he_init(layers)
    return layers, list(save)


def build_detection_model(model: str = "yolo11n", *, seed: int = 0) -> nn.Module:
    """A full ultralytics ``DetectionModel`` (what a ``.pt`` checkpoint's ``"model"`` holds), random He-normal
    convolution weights deterministic for ``seed``: its ``.model`` layers equal :func:`build_yolo_layers`'s."""
    tasks = import_ultralytics()
    cfg = _model_cfg(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        detection_model = tasks.DetectionModel(cfg, ch=3, verbose=False)
        _he_init(detection_model)
    return detection_model


# what save_yolo_model writes: the model's name and its state dict, no pickled module
_WEIGHTS_FORMAT = "av-seld YOLO weights"


def save_yolo_model(model: nn.Module, model_name: str, path: str | os.PathLike) -> Path:
    """Write a ``DetectionModel``'s weights (float32) with its name, as a ``.pt`` that :func:`load_yolo_model` (so
    ``--weights`` and ``visual_weights``) reads without unpickling any code; atomically."""
    from av_seld.utils.atomic import atomic_path

    path = Path(path)
    state = {key: value.float() for key, value in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": _WEIGHTS_FORMAT, "model_name": model_name, "state_dict": state}, tmp)
    return path


def load_yolo_model(path: str | os.PathLike) -> nn.Module:
    """The model (float32, eval mode) in a local ``.pt`` file; InputError naming the file.

    A file of :func:`save_yolo_model` (what pretrain-visual exports) holds only tensors and is read with
    ``weights_only=True``. An ultralytics checkpoint holds whole pickled modules: it is unpickled
    (``weights_only=False``), which can run code. That is the one file av-seld unpickles, only from a path the user
    gives (``--weights``, ``visual_weights``), and the README tells users to name only files they trust. Nothing is
    ever downloaded: a missing file is an error.
    """
    import pickle

    from av_seld.utils.paths import shipped_path

    path = shipped_path(path)  # a recipe's assets/... weights, from any working folder
    if not path.is_file():
        raise InputError(path, "YOLO weights file not found (av-seld never downloads weights: give a local .pt file)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise InputError(path, f"cannot be read as a PyTorch checkpoint: {type(e).__name__}: {e}") from e
        checkpoint = None  # pickled modules: an ultralytics checkpoint
    except Exception as e:  # noqa: BLE001 - any reading failure means the same thing to the user
        raise InputError(path, f"cannot be read as a PyTorch checkpoint: {type(e).__name__}: {e}") from e
    if isinstance(checkpoint, dict) and checkpoint.get("format") == _WEIGHTS_FORMAT:
        model = build_detection_model(checkpoint["model_name"])
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as e:
            raise InputError(path, f"does not fit a {checkpoint['model_name']} model: {e}") from None
        return model.float().eval()
    if checkpoint is None:
        logger.info("%s: unpickling an ultralytics checkpoint (this can run code: use only files you trust)", path)
        import_ultralytics()  # the pickled modules are ultralytics classes
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing to the user
            raise InputError(path, f"cannot be read as a PyTorch checkpoint: {type(e).__name__}: {e}") from e
    model = None
    if isinstance(checkpoint, dict):
        model = checkpoint.get("ema") or checkpoint.get("model")
    elif isinstance(checkpoint, nn.Module):
        model = checkpoint
    if not isinstance(model, nn.Module):
        raise InputError(path, "not an ultralytics checkpoint: expected a dict with a model under 'model' or 'ema'")
    return model.float().eval()


def load_yolo_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict (float32) of the model in a local ultralytics ``.pt`` checkpoint (see :func:`load_yolo_model`)."""
    return load_yolo_model(path).state_dict()


class _HorizontalCircularPad:
    """Forward pre-hook: pad the input's width circularly by ``pad`` columns (the module keeps its height padding)."""

    def __init__(self, pad: int):
        self.pad = pad

    def __call__(self, module: nn.Module, args: tuple):
        return (F.pad(args[0], (self.pad, self.pad, 0, 0), mode="circular"), *args[1:])


def make_horizontally_circular(module: nn.Module) -> int:
    """Make every Conv2d / MaxPool2d / AvgPool2d in ``module`` pad the width circularly and the height as before.

    The panorama has no left or right edge: with this, rolling the input by a multiple of the total stride rolls the
    output. Weights and state-dict keys are unchanged. Returns how many layers were changed.
    """
    changed = 0
    for layer in module.modules():
        if not isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            continue
        padding = layer.padding
        if isinstance(padding, str):
            raise ValueError(f"{type(layer).__name__} with padding={padding!r} cannot be made circular")
        pad_h, pad_w = (padding, padding) if isinstance(padding, int) else padding
        if pad_w == 0:
            continue
        if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
            raise ValueError(f"Conv2d with padding_mode={layer.padding_mode!r} cannot be made circular")
        layer.padding = (pad_h, 0)
        layer.register_forward_pre_hook(_HorizontalCircularPad(pad_w))
        changed += 1
    return changed


def spherical_position_features(height: int, width: int, num_frequencies: int = 4) -> torch.Tensor:
    """Position features of each cell centre of an equirectangular ``height × width`` grid: (height·width, F) float32.

    F = 3 + 4·num_frequencies: the unit vector (x, y, z), then sin/cos(m·azimuth) and sin/cos(m·elevation) for
    m = 1..num_frequencies. Every feature is continuous across the seam (azimuth ±180°). Row-major cell order.
    """
    azimuth, elevation = pixel_center_directions(width, height)  # degrees, (height, width)
    az, el = np.deg2rad(azimuth).ravel(), np.deg2rad(elevation).ravel()
    parts = [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)]
    for m in range(1, num_frequencies + 1):
        parts += [np.sin(m * az), np.cos(m * az), np.sin(m * el), np.cos(m * el)]
    return torch.from_numpy(np.stack(parts, axis=-1).astype(np.float32))


class YoloVisualEncoder(nn.Module):
    """Visual tokens of equirectangular frames from a YOLO backbone + neck.

    ``forward(frames (B, T, 3, H, W)) -> (B, T, N, D)``, N = rows·cols of ``token_grid``, D = ``embed_dim``
    (a 4-D (B, 3, H, W) input gives (B, N, D)). The split for caching: :meth:`pooled_features` (the YOLO part,
    (B, C, rows, cols) with C = sum of the P3–P5 channels) then :meth:`tokens_from_features` (the trainable part).

    Args:
        model: ultralytics model name, ``"yolo11n"``, ``"yolov8s"``, ... (family yolov8 / yolo11, size n/s/m/l/x).
        weights: local ultralytics ``.pt`` checkpoint of that model; None = random weights (seeded by ``seed``).
        frame_size: (height, width) in pixels the encoder is meant for; multiples of 32, width = 2·height.
        token_grid: (rows, cols) each P3–P5 map is average-pooled to.
        embed_dim: token width D.
        freeze: keep the YOLO layers fixed (no gradients, BatchNorm in eval mode); the token projection still trains.
            Gradients still flow through them to frames that require grad.
        circular_padding: pad convolutions and pools circularly in the width (see :func:`make_horizontally_circular`).
        num_pos_frequencies: harmonics in the spherical position features.
        seed: seed of the random YOLO weights (same seed, same weights), so cached features match a live encoder.
        frame_chunk: frames per YOLO call inside :meth:`pooled_features` (bounds activation memory).
    """

    def __init__(
        self,
        *,
        model: str = "yolo11n",
        weights: str | os.PathLike | None = None,
        frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE,
        token_grid: tuple[int, int] = DEFAULT_TOKEN_GRID,
        embed_dim: int = 256,
        freeze: bool = True,
        circular_padding: bool = True,
        num_pos_frequencies: int = 4,
        seed: int = 0,
        frame_chunk: int = 16,
    ):
        super().__init__()
        check_frame_size(*frame_size)
        if len(token_grid) != 2 or min(token_grid) < 1:
            raise ValueError(f"token_grid must be (rows, cols) >= 1, got {token_grid}")
        self.model_name = model
        self.frame_size = tuple(int(s) for s in frame_size)
        self.token_grid = tuple(int(g) for g in token_grid)
        self.embed_dim = embed_dim
        self.freeze = freeze
        self.circular_padding = circular_padding
        self.frame_chunk = frame_chunk

        all_layers, save = build_yolo_layers(model, seed=seed)
        self.level_indices = tuple(int(i) for i in all_layers[-1].f)  # the detect head reads P3, P4, P5
        layers = list(all_layers)[: max(self.level_indices) + 1]  # backbone + neck; the head is not needed
        self.save = frozenset(int(i) for i in save) | set(self.level_indices)
        self.layers = nn.ModuleList(layers)  # layer i = the checkpoint's "model.{i}"
        if weights is not None:
            self._load_weights(weights)
        else:
            global _random_weights_logged
            if not _random_weights_logged:
                logger.warning("visual encoder %s starts from random weights (seed %d); pass a local .pt file as "
                               "weights for pretrained ones", model, seed)
                _random_weights_logged = True
        self.weights = None if weights is None else str(weights)
        if circular_padding:
            make_horizontally_circular(self.layers)
        if freeze:
            self.layers.requires_grad_(False)

        self.layers.eval()  # a probe in training mode would move the BatchNorm statistics
        with torch.no_grad():
            maps = self.feature_maps(torch.zeros(1, 3, 64, 128))
        if [tuple(m.shape[-2:]) for m in maps] != [(64 // s, 128 // s) for s in STRIDES]:
            raise ValueError(f"{model}: the detect head's inputs are not P3-P5 at strides {STRIDES}")
        self.channels = tuple(int(m.shape[1]) for m in maps)  # (C3, C4, C5)
        self.feature_dim = sum(self.channels)
        self.level_norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)
        self.level_projections = nn.ModuleList(nn.Linear(c, embed_dim) for c in self.channels)
        self.register_buffer("position_features",
                             spherical_position_features(*self.token_grid, num_pos_frequencies), persistent=False)
        self.position_projection = nn.Linear(self.position_features.shape[1], embed_dim)
        self.output_norm = nn.LayerNorm(embed_dim)
        self.train()  # training mode like any new module; frozen layers stay in eval mode

    @property
    def num_tokens(self) -> int:
        return self.token_grid[0] * self.token_grid[1]

    def token_directions(self) -> tuple[np.ndarray, np.ndarray]:
        """(azimuth_deg, elevation_deg) of each token's cell centre, each (N,) in token order."""
        azimuth, elevation = pixel_center_directions(self.token_grid[1], self.token_grid[0])
        return azimuth.ravel(), elevation.ravel()

    def _load_weights(self, path: str | os.PathLike) -> None:
        state = load_yolo_checkpoint(path)
        wanted = self.layers.state_dict()
        mapped = {}
        for key, value in state.items():
            parts = key.split(".")
            if len(parts) > 2 and parts[0] == "model" and parts[1].isdigit() and int(parts[1]) < len(self.layers):
                mapped[key[len("model."):]] = value  # "model.{i}.…" -> "{i}.…" of self.layers
        missing = [k for k in wanted if k not in mapped]
        mismatched = [k for k in wanted if k in mapped and mapped[k].shape != wanted[k].shape]
        if missing or mismatched:
            bad = (missing + mismatched)[:3]
            raise InputError(path, f"checkpoint does not match {self.model_name}: {len(missing)} missing and "
                                   f"{len(mismatched)} mis-shaped tensors, e.g. {', '.join(bad)}")
        self.layers.load_state_dict({k: mapped[k] for k in wanted})
        logger.info("visual encoder %s: loaded weights from %s", self.model_name, path)

    def train(self, mode: bool = True) -> "YoloVisualEncoder":
        super().train(mode)
        if self.freeze:
            self.layers.eval()  # frozen BatchNorm statistics too
        return self

    @staticmethod
    def _as_float(frames: torch.Tensor) -> torch.Tensor:
        return frames.float() / 255 if frames.dtype == torch.uint8 else frames

    def feature_maps(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """[P3 (B, C3, H/8, W/8), P4 (B, C4, H/16, W/16), P5 (B, C5, H/32, W/32)] of frames (B, 3, H, W)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (B, 3, H, W), got {tuple(frames.shape)}")
        check_frame_size(frames.shape[-2], frames.shape[-1])
        x = self._as_float(frames)
        outputs: list[torch.Tensor | None] = []
        # Frozen layers record no graph (their activations are not kept for a backward pass) unless the frames
        # themselves ask for gradients: input-gradient maps (av_seld.viz.maps) flow through the frozen weights,
        # which keep requires_grad False and so still get no gradient.
        with torch.set_grad_enabled(torch.is_grad_enabled() and (not self.freeze or x.requires_grad)):
            for layer in self.layers:
                if layer.f != -1:  # the layer reads earlier outputs, as in ultralytics' BaseModel._predict_once
                    f = layer.f
                    x = outputs[f] if isinstance(f, int) else [x if j == -1 else outputs[j] for j in f]
                x = layer(x)
                outputs.append(x if layer.i in self.save else None)
        return [outputs[i] for i in self.level_indices]

    def pooled_features(self, frames: torch.Tensor) -> torch.Tensor:
        """P3–P5 maps average-pooled to the token grid and concatenated: (B, 3, H, W) -> (B, C3+C4+C5, rows, cols).

        Frames go through YOLO ``frame_chunk`` at a time, so a long batch of frames never holds all full-resolution
        activations at once (when frozen; a fine-tuned encoder keeps them for the backward pass anyway).
        """
        if frames.shape[0] == 0:
            return torch.zeros(0, self.feature_dim, *self.token_grid, device=frames.device)
        return torch.cat([self.pool_chunk(chunk) for chunk in frames.split(self.frame_chunk)])

    def pool_chunk(self, frames: torch.Tensor) -> torch.Tensor:
        """:meth:`pooled_features` of frames (B, 3, H, W) in one YOLO call, however many (what the ONNX export of
        the frozen trunk, :func:`av_seld.export.visual_trunk_onnx`, runs)."""
        return torch.cat([F.adaptive_avg_pool2d(m, self.token_grid) for m in self.feature_maps(frames)], dim=1)

    def tokens_from_features(self, pooled: torch.Tensor) -> torch.Tensor:
        """Tokens of pooled features: (..., C, rows, cols) -> (..., N, D), N = rows·cols in row-major cell order."""
        if tuple(pooled.shape[-3:]) != (self.feature_dim, *self.token_grid):
            raise ValueError(f"pooled features must be (..., {self.feature_dim}, {self.token_grid[0]}, "
                             f"{self.token_grid[1]}), got {tuple(pooled.shape)}")
        cells = pooled.flatten(-2).transpose(-1, -2).float()  # (..., N, C)
        levels = cells.split(list(self.channels), dim=-1)
        tokens = sum(proj(norm(level)) for level, norm, proj in zip(levels, self.level_norms, self.level_projections))
        return self.output_norm(tokens + self.position_projection(self.position_features))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Tokens of frames: (B, T, 3, H, W) -> (B, T, N, D), or (B, 3, H, W) -> (B, N, D)."""
        if frames.ndim == 4:
            return self.tokens_from_features(self.pooled_features(frames))
        if frames.ndim != 5:
            raise ValueError(f"frames must be (B, T, 3, H, W) or (B, 3, H, W), got {tuple(frames.shape)}")
        batch, steps = frames.shape[:2]
        tokens = self.tokens_from_features(self.pooled_features(frames.flatten(0, 1)))
        return tokens.unflatten(0, (batch, steps))


def num_feature_cells(frame_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(rows, cols) of the P3, P4 and P5 maps of a (height, width) frame."""
    check_frame_size(*frame_size)
    return [(frame_size[0] // s, frame_size[1] // s) for s in STRIDES]


__all__ = [
    "DEFAULT_FRAME_SIZE", "DEFAULT_TOKEN_GRID", "STRIDES", "YoloVisualEncoder", "build_visual_encoder",
    "build_detection_model", "build_yolo_layers",
    "check_frame_size", "default_cache_dir", "import_ultralytics", "load_yolo_checkpoint", "load_yolo_model",
    "save_yolo_model",
    "make_horizontally_circular", "num_feature_cells", "parse_model_name", "spherical_position_features",
]


def build_visual_encoder(model: str = "yolo11n", *, weights: str | os.PathLike | None = None,
                         frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE,
                         token_grid: tuple[int, int] = DEFAULT_TOKEN_GRID, embed_dim: int = 256, freeze: bool = True,
                         circular_padding: bool = True, seed: int = 0) -> nn.Module:
    """A :class:`~av_seld.models.base.VisualEncoder` by name: a YOLO model (``yolo11n``, ``yolov8s``, ...) or
    ``debug``, the light stand-in of :mod:`av_seld.models.debug` (no ultralytics; for tests)."""
    from av_seld.models.debug import DEBUG_VISUAL_MODEL, DebugVisualEncoder

    if model == DEBUG_VISUAL_MODEL:
        if weights is not None:
            raise ValueError("the debug visual encoder takes no weights file")
        return DebugVisualEncoder(frame_size=frame_size, token_grid=token_grid, embed_dim=embed_dim, freeze=freeze,
                                  seed=seed)
    return YoloVisualEncoder(model=model, weights=weights, frame_size=frame_size, token_grid=token_grid,
                             embed_dim=embed_dim, freeze=freeze, circular_padding=circular_padding, seed=seed)


SELFSUP_MODEL_NAME = "selfsup_visual"  # model_name in av-seld pretrain-visual checkpoints


def load_encoder_init(encoder: YoloVisualEncoder, path: str | os.PathLike) -> dict[str, int]:
    """Initialise ``encoder`` from a checkpoint of ``av-seld pretrain-visual`` (``visual_init``): all YOLO layers (the
    model and its size must match), and the token layers too when their shapes match (same embed_dim); the position
    features are recomputed for the encoder's own token grid. Returns ``{"yolo": n, "token": m}`` tensors loaded;
    InputError naming the file. Reads the file as plain tensors (:mod:`av_seld.utils.payload`), so the model package
    needs neither the pre-training job nor the training package."""
    from av_seld.utils.payload import read_payload

    payload = read_payload(path)
    if not isinstance(payload, dict) or payload.get("model_name") != SELFSUP_MODEL_NAME:
        found = payload.get("model_name") if isinstance(payload, dict) else None
        raise InputError(path, f"not a self-supervised visual checkpoint (model_name {found!r}, expected "
                               f"{SELFSUP_MODEL_NAME!r}: made by av-seld pretrain-visual)")
    trained_model = payload["model_params"].get("model", "yolo11n")
    if trained_model != encoder.model_name:
        raise InputError(path, f"holds a {trained_model} encoder, but the visual encoder is {encoder.model_name}")
    prefix = "encoder."
    state = {k[len(prefix):]: v for k, v in payload["model_state"].items() if k.startswith(prefix)}
    own = encoder.state_dict()
    layers = {k: v for k, v in state.items() if k.startswith("layers.")}
    bad = [k for k in own if k.startswith("layers.") and (k not in layers or layers[k].shape != own[k].shape)]
    if bad:
        raise InputError(path, f"YOLO layers do not match the encoder ({len(bad)} tensors, e.g. {bad[0]})")
    token = {k: v for k, v in state.items() if not k.startswith("layers.") and k in own and v.shape == own[k].shape}
    token_keys = [k for k in own if not k.startswith("layers.")]
    if set(token) != set(token_keys):
        token = {}  # a partial token layer would be worse than a fresh one
        logger.info("%s: token layers differ in shape (embed_dim); only the YOLO layers are initialised", path)
    own.update(layers)
    own.update(token)
    encoder.load_state_dict(own)
    logger.info("visual encoder initialised from %s (%d YOLO tensors, %d token tensors)", path, len(layers), len(token))
    return {"yolo": len(layers), "token": len(token)}
