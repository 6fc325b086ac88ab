"""Typed run configuration: dataclasses, loaded from YAML with ``base:`` inheritance and ``key=value`` overrides.

YAML is only the file format. Every key must be a field of the dataclass it lands in, and every value must have the
field's type: an unknown key or a wrong type raises :class:`ConfigError` naming the file and the dotted key. A
recipe may start with ``base: other.yaml`` (a path relative to the recipe); the base is loaded first and the recipe's
keys are merged over it, mapping by mapping. Overrides from the command line (``optim.lr=3e-4``,
``data.roots=[a,b]``) are parsed as YAML values and applied last. The resolved configuration is saved with each run
(:func:`save_config`) and loads back to an equal object.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from av_seld.errors import InputError
from av_seld.geometry import DEFAULT_FRAME_SIZE
from av_seld.utils.atomic import write_text_atomic

BASE_KEY = "base"
_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(InputError):
    """A configuration file or override that does not fit the schema."""


# ----------------------------------------------------------------------------------------------------------- schema


@dataclass
class DataConfig:
    """Where the clips come from and how they are cut into training examples."""

    roots: list[str] = field(default_factory=list)  # STARSS23-format dataset roots, read together
    train_splits: list[str] = field(default_factory=lambda: ["dev-train"])
    val_splits: list[str] = field(default_factory=lambda: ["dev-val"])  # model selection and calibration
    test_splits: list[str] = field(default_factory=lambda: ["dev-test"])  # scored once, at the end
    format: Literal["foa", "mic"] = "foa"
    features: str = "foa_logmel_iv"
    # one folder per root written by `av-seld extract-features`; None uses (and fills) ROOT/features/KIND
    feature_cache: list[str] | None = None
    # training examples as raw audio chunks, turned into features in the training loop on the training device
    # (the GPU when training on CUDA); statistics still come from the cache, which validation and test also read
    online_features: bool = False
    chunk_s: float = 5.0  # length of a training example
    train_hop_s: float = 5.0  # hop between training chunks of a clip
    video: bool = False  # read 360° frames at label rate (audio-visual models, live visual encoder)
    # audio-visual models with a frozen visual encoder: read its features cached per clip by precompute-visual
    # (computed first where missing) instead of frames
    visual_features: bool = False
    video_size: list[int] = field(default_factory=lambda: list(DEFAULT_FRAME_SIZE))  # frame height, width in pixels
    acs: bool = False  # online 360° channel swapping of audio, video and targets
    video_dropout: float = 0.0  # training: probability that a sample's video is masked whole ("no video" token)
    freq_masks: int = 0  # SpecAugment: frequency masks per example
    time_masks: int = 0  # SpecAugment: time masks per example
    cutouts: int = 0  # SpecAugment: time-frequency rectangles masked per example
    batch_size: int = 32
    num_workers: int = 0


@dataclass
class ModelConfig:
    """A registered model and the keyword arguments of its constructor."""

    name: str = "resnet_conformer"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    name: str = "adpit"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DistillConfig:
    """Knowledge distillation from a frozen teacher checkpoint (off when ``teacher`` is None)."""

    teacher: str | None = None
    weight: float = 0.5  # weight of the teacher-output loss
    feature_weight: float = 0.0  # weight of the intermediate-feature loss


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up from ``warmup_start_lr`` to ``lr``, then cosine decay to ``lr * min_lr_ratio``."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    warmup_start_lr: float = 1e-8
    min_lr_ratio: float = 0.01
    grad_clip: float | None = 5.0  # max gradient norm; None disables clipping
    ema_decay: float | None = None  # exponential moving average of the weights; None disables it
    # learning-rate factor of the parameters train.init_from loads (the pre-trained ones); the rest train at lr.
    # Below 1 they move less from what pre-training learnt (discriminative fine-tuning)
    init_lr_scale: float = 1.0
    amp: bool = True  # mixed precision, on CUDA only


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when available
    epochs: int = 50
    max_steps: int | None = None  # stop early after this many optimizer steps
    val_every_epochs: int = 1
    log_every_steps: int = 20
    # also save last.pt every this many optimizer steps, not only per epoch (None: per epoch only), so a killed run
    # loses at most this many steps; 500 steps are a few minutes of work for the recipes on one GPU
    checkpoint_every_steps: int | None = 500
    out_dir: str = "runs"
    name: str | None = None  # run folder name; defaults to the recipe's file name
    # start from the weights of this av-seld checkpoint (fine-tuning; fresh optimizer and schedule): an audio-only
    # checkpoint initialises the audio branch of an audio-visual model
    init_from: str | None = None
    # standardise the features with init_from's statistics (the input the pre-trained weights learnt on) instead of
    # the training set's; a resumed run keeps the statistics it started with
    init_stats: bool = False


@dataclass
class EvalConfig:
    edition: Literal["2023", "2024"] = "2023"
    threshold: float = 0.5  # activity threshold on the ACCDOA vector norm, for every class until calibrated
    merge_deg: float = 15.0  # same-class tracks closer than this are merged
    calibrate: bool = True  # fit per-class thresholds on the validation split after training
    tta: bool = False  # predict each clip also rotated by ±90° and 180° in azimuth (kept in the checkpoint for infer)
    # label frames (100 ms) over which the output vectors are averaged before decoding (1: none; kept in the checkpoint
    # for infer, which applies it to calibration, test and infer alike)
    smooth_frames: int = 1


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class PretrainConfig:
    """Recipe of ``av-seld pretrain-visual`` (self-supervised visual pre-training; defaults in
    ``configs/pretrain_visual.yaml``). Saved as the run's ``config.yaml`` and in its checkpoints."""

    roots: list[str] = field(default_factory=list)  # dataset roots with audio and video; labels are never read
    splits: list[str] | None = None  # None = every split; a name also covers NAME-*
    val_splits: list[str] | None = None  # held-out clips for best.pt by the self-supervised loss
    audio_format: Literal["foa", "mic"] = "foa"
    model: str = "yolo11n"  # YOLO model (yolo11n, yolov8s, ...)
    weights: str | None = None  # local ultralytics .pt to start from (random weights otherwise)
    frame_size: list[int] = field(default_factory=lambda: [128, 256])  # height, width in pixels (multiples of 32)
    map_grid: list[int] = field(default_factory=lambda: [8, 16])  # rows, cols of the candidate map (22.5° cells)
    embed_dim: int = 64  # token width: the AV model's audio width, to initialise its token layers too
    freeze_backbone: bool = False  # train only the token layers and the head
    num_bins: int = 256  # time-frequency bins kept per 100 ms frame
    kappa_init: float = 20.0
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float | None = 5.0
    ema_decay: float | None = None
    seed: int = 0
    num_workers: int = 0
    log_every_steps: int = 10
    cache_dir: str | None = None  # decoded frames and audio directions (default DATASET_ROOT/selfsup_cache)
    device: str = "cpu"
    out_dir: str = "runs"
    name: str | None = None  # run folder name; defaults to the recipe's file name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def model_params(self) -> dict:
        return {"model": self.model, "weights": self.weights, "frame_size": list(self.frame_size),
                "map_grid": list(self.map_grid), "embed_dim": self.embed_dim,
                "freeze_backbone": self.freeze_backbone, "seed": self.seed, "kappa_init": self.kappa_init}


# Lower bounds of numeric keys, checked when a configuration is read: key -> (bound, whether the bound is allowed).
# A value outside them would run but do nothing useful (train.epochs: 0 trains no step and saves an untrained model).
BOUNDS: dict[str, tuple[float, bool]] = {
    "data.chunk_s": (0, False), "data.train_hop_s": (0, False), "data.batch_size": (1, True),
    "data.num_workers": (0, True), "data.freq_masks": (0, True), "data.time_masks": (0, True),
    "data.video_dropout": (0, True),
    "distill.weight": (0, True), "distill.feature_weight": (0, True),
    "optim.lr": (0, False), "optim.weight_decay": (0, True), "optim.warmup_steps": (0, True),
    "optim.warmup_start_lr": (0, True), "optim.min_lr_ratio": (0, True), "optim.grad_clip": (0, False),
    "optim.ema_decay": (0, True), "optim.init_lr_scale": (0, False),
    "train.epochs": (1, True), "train.max_steps": (1, True), "train.val_every_epochs": (1, True),
    "train.log_every_steps": (1, True), "train.checkpoint_every_steps": (1, True),
    "eval.threshold": (0, True), "eval.merge_deg": (0, True), "eval.smooth_frames": (1, True),
}


UPPER_BOUNDS: dict[str, float] = {"data.video_dropout": 1.0}  # probabilities


def _check_bound(key: str, value: Any, where: str | os.PathLike) -> None:
    if key not in BOUNDS or value is None:
        return
    bound, allowed = BOUNDS[key]
    if value < bound or (value == bound and not allowed):
        raise ConfigError(where, f"{key}: must be {'at least' if allowed else 'more than'} {bound}, got {value!r}")
    if key in UPPER_BOUNDS and value > UPPER_BOUNDS[key]:
        raise ConfigError(where, f"{key}: must be at most {UPPER_BOUNDS[key]}, got {value!r}")


# ------------------------------------------------------------------------------------------- dict <-> dataclass


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, where: str | os.PathLike) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in that type (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(where, f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, where, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, key, where)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(where, f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value not in args and isinstance(value, int) and str(value) in args:
            value = str(value)  # edition: 2024 means "2024"
        if value not in args:
            raise ConfigError(where, f"{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(where, f"{key}: expected a list, got {value!r}")
        return [_convert(v, args[0] if args else Any, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(where, f"{key}: expected a mapping, got {value!r}")
        return {str(k): _convert(v, args[1] if args else Any, f"{key}.{k}", where) for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(where, f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config field {key} has an unsupported annotation {tp!r}")


def _build(cls: type, data: dict, where: str | os.PathLike, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in hints]
    if unknown:
        raise ConfigError(where, f"unknown key '{prefix}{unknown[0]}' (known keys{' of ' + prefix[:-1] if prefix else ''}:"
                                 f" {', '.join(names)})")
    values = {k: _convert(v, hints[k], prefix + k, where) for k, v in data.items()}
    if cls in _SECTIONS:
        for k, v in values.items():
            _check_bound(prefix + k, v, where)
    return cls(**values)


_SECTIONS = (DataConfig, ModelConfig, LossConfig, DistillConfig, OptimConfig, TrainConfig, EvalConfig)


def config_from_dict(data: dict, where: str | os.PathLike = "<dict>", cls: type = Config) -> Any:
    """Build ``cls`` from a nested mapping; missing keys keep their defaults, unknown keys and wrong types raise."""
    if not isinstance(data, dict):
        raise ConfigError(where, f"expected a mapping at the top level, got {type(data).__name__}")
    return _build(cls, data, where)


def config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


# ------------------------------------------------------------------------------------------------- YAML recipes


def _merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "params":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_recipe(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict:
    """The recipe at ``path`` as a plain mapping, with its ``base:`` chain merged in (the recipe wins)."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(path, "base: chain loops back to this file")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(path, "config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(path, f"not valid YAML ({err})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping at the top level, got {type(data).__name__}")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(path, f"base: expected a file name, got {base!r}")
    return _merge(read_recipe(path.parent / base, _seen + (path.resolve(),)), data)


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to a copy of ``data``."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError("command line", f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError("command line", f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = (), cls: type = Config) -> Any:
    """Load a recipe (with its bases) and the command-line overrides into a checked ``cls`` (:class:`Config` for
    ``train``, :class:`PretrainConfig` for ``pretrain-visual``).

    The run name defaults to the recipe's file name.
    """
    data = read_recipe(path)
    try:
        config = config_from_dict(apply_overrides(data, overrides), f"{path} + overrides" if overrides else path, cls)
    except ConfigError:
        if overrides:
            config_from_dict(data, path, cls)  # blame the file when the file itself is wrong
        raise
    named = config.train if isinstance(config, Config) else config
    if named.name is None:
        named.name = Path(path).stem
    config.source = f"{path} + overrides" if overrides else str(path)  # for messages; not a field, never saved
    return config


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Write the resolved configuration as YAML (atomically); :func:`load_config` reads it back to an equal object."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


# ------------------------------------------------------------------------------------------------------- resuming

# What a resumed run may change: how long it trains, how often it logs, validates and saves, where it runs and how it
# is scored (train.init_from only starts a fresh run). Every other key shapes the model, its data or its
# optimisation, which the checkpoint was made with.
RESUME_SAFE_KEYS = ("train.epochs", "train.max_steps", "train.val_every_epochs", "train.log_every_steps",
                    "train.checkpoint_every_steps", "train.device", "train.out_dir", "train.name", "train.init_from",
                    "data.num_workers", "optim.amp", "eval")
_ABSENT = object()


def _flat(data: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):  # an empty mapping adds no key
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def check_resume(config: Config, saved_path: str | os.PathLike) -> list[str]:
    """Compare the configuration a run is resumed with to the run's saved ``config.yaml``.

    Returns the changed keys that are safe to resume with (:data:`RESUME_SAFE_KEYS`), as ``"key: old -> new"``; any
    other change raises :class:`ConfigError` naming both files and every differing key. Writes nothing.
    """
    saved = load_config(saved_path)
    before, after = _flat(config_to_dict(saved)), _flat(config_to_dict(config))
    changed = [k for k in sorted(before.keys() | after.keys()) if before.get(k, _ABSENT) != after.get(k, _ABSENT)]

    def show(value):
        return "unset" if value is _ABSENT else repr(value)

    unsafe = [k for k in changed if not any(k == s or k.startswith(s + ".") for s in RESUME_SAFE_KEYS)]
    if unsafe:
        diffs = "; ".join(f"{k}: {show(after.get(k, _ABSENT))} here, {show(before.get(k, _ABSENT))} in the run"
                          for k in unsafe)
        raise ConfigError(getattr(config, "source", "the given configuration"),
                          f"--resume: differs from the run's {saved_path} in {diffs}. These change the model, its "
                          f"data or its optimisation, so the run cannot continue with them: resume with the run's "
                          f"values, or start a new run (another train.name). Keys a resumed run may change: "
                          f"{', '.join(RESUME_SAFE_KEYS)}")
    return [f"{k}: {show(before.get(k, _ABSENT))} -> {show(after.get(k, _ABSENT))}" for k in changed]
