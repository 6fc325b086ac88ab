"""``av-seld train``: one function maps a :class:`~av_seld.config.Config` to datasets, model, loss and trainer.

Run folder (``train.out_dir/train.name``)::

    config.yaml        the resolved configuration
    train_log.csv      step, epoch, loss, lr, grad_norm
    val_log.csv        step, epoch, ER, F, LE, LR, SELD on the validation split
    tensorboard/       the same curves for TensorBoard
    last.pt            weights + optimizer + counters, for --resume
    best.pt            the weights with the lowest validation SELD score, with calibrated thresholds
    eval/test/         pred/*.csv, scores.json, scores.txt on the test split (after training); with distance outputs
                       (model.params.distance) also scores_2024.json, scores_2024.txt
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from av_seld import features as feats
from av_seld import timing
from av_seld.classes import NUM_CLASSES
from av_seld.config import Config, ConfigError, check_resume, config_to_dict, save_config
from av_seld.errors import InputError
from av_seld.training import distributed
from av_seld.training.checkpoint import (build_model_from_checkpoint, initialise_weights, load_checkpoint,
                                         save_checkpoint)
from av_seld.io.labels import read_reference_csv
from av_seld.training.evaluation import calibrate_thresholds, collect_outputs, references, validation_scores
from av_seld.training.hooks import CheckpointHook, Hook, LogHook, ValidationHook
from av_seld.training.inference import model_forward, visual_inputs
from av_seld.training.schedule import learning_rate
from av_seld.training.trainer import Trainer, seed_everything

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    val_scores: dict[str, float]  # at the best checkpoint, calibrated thresholds
    test: Any | None  # av_seld.metrics.evaluate.Evaluation of the test split, when there is one
    steps: int
    test_set: Any | None = None  # the dataset the test split was scored on


def pick_device(name: str, key: str = "train.device", where: str | None = None) -> torch.device:
    """The device ``name`` ("auto": CUDA when available); InputError naming ``where`` (a file) and ``key`` for a
    name torch does not know or a CUDA device this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(where, f"{key}: unknown device {name!r} (expected auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            have = f"{count} GPU{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})" if count else "no GPU"
            raise InputError(where, f"{key}: {name} was asked for, but torch sees {have} here; use cpu or auto")
    return device


def feature_caches(config: Config, kind: str, workers: int = 1) -> list[Path]:
    """One feature cache per dataset root (filled now where clips are missing; resumable), statistics from the
    training splits."""
    from av_seld.data.feature_cache import prepare_feature_cache

    data = config.data
    if data.feature_cache is not None and len(data.feature_cache) != len(data.roots):
        raise ConfigError("config", f"data.feature_cache: give one folder per root ({len(data.roots)} roots)")
    dirs = []
    for i, root in enumerate(data.roots):
        explicit = data.feature_cache[i] if data.feature_cache is not None else None
        job = prepare_feature_cache(root, audio_format=data.format, kind=kind, cache_dir=explicit,
                                    train_splits=data.train_splits)
        if distributed.is_main():
            job.run(workers=workers)
        distributed.barrier()
        dirs.append(Path(job.cache_dir))
    return dirs


def visual_caches(config: Config) -> list[Path]:
    """Per root, the cache of the AV model's frozen visual encoder features (computed now where missing)."""
    from av_seld.data.visual_cache import VisualCacheSpec, cache_dir, precompute_visual_features

    if config.model.name != "av_conformer":
        raise ConfigError("config", "data.visual_features needs an audio-visual model (model.name: av_conformer)")
    params = model_params(config, in_channels=0)  # the visual encoder's arguments, as the model receives them
    if not params.get("freeze_visual", True):
        raise ConfigError("config", "data.visual_features needs a frozen visual encoder (model.params.freeze_visual)")
    # VisualCacheSpec field <- av_conformer argument; arguments the recipe leaves out keep the shared defaults
    names = {"model": "visual_model", "weights": "visual_weights", "frame_size": "frame_size",
             "token_grid": "token_grid", "circular_padding": "circular_padding", "seed": "visual_seed"}
    fields = {field: tuple(params[arg]) if isinstance(params[arg], list) else params[arg]
              for field, arg in names.items() if arg in params}
    if params.get("visual_init"):
        # the pre-trained YOLO layers replace visual_weights in the model, so the cache must hold their features:
        # pretrain-visual exports them beside its checkpoint (visual_yolo.pt)
        exported = Path(params["visual_init"]).parent / "visual_yolo.pt"
        if not exported.is_file():
            raise ConfigError("config", f"model.params.visual_init with data.visual_features needs {exported} "
                                        "(written by av-seld pretrain-visual beside its checkpoints)")
        fields["weights"] = str(exported)
    spec = VisualCacheSpec(**fields)
    dirs = []
    for root in config.data.roots:
        if distributed.is_main():
            for result in precompute_visual_features(root, spec):
                if result.status == "cached":
                    log.info("%s: visual features cached (%d frames)", result.clip.name, result.num_frames)
        distributed.barrier()
        dirs.append(cache_dir(spec, root))
    return dirs


def build_datasets(config: Config, caches: list[Path], kind: str):
    """Training (chunks with hop, augmentation) and validation/test datasets (non-overlapping chunks)."""
    from av_seld.data.dataset import SeldDataset, load_cache_stats

    data = config.data
    stats = load_cache_stats(caches)
    visual = visual_caches(config) if data.visual_features else None
    transform = None
    if data.acs and visual is None:
        from augment.acs import RandomACS, salsalite_ipd_period

        options = {}
        if kind == "mic_salsalite":  # phase differences re-referenced to the new M1 need the wrap period per bin
            options["ipd_period"] = salsalite_ipd_period(*_salsalite_ipd_args())
        transform = RandomACS(data.format, feature_layout=kind, **options)
    common = dict(audio_format=data.format, kind=kind, chunk_s=data.chunk_s, cache_dirs=caches, stats=stats,
                  video=data.video, video_size=tuple(data.video_size), seed=config.train.seed,
                  target="adpit_distance" if predicts_distance(config) else "adpit")
    if data.online_features:
        if visual is not None:
            raise ConfigError("config", "data.online_features cannot be combined with data.visual_features yet")
        if data.acs:
            from augment.acs import RandomACS

            transform = RandomACS(data.format)  # swaps the raw audio channels
        train = SeldDataset(data.roots, splits=data.train_splits, hop_s=data.train_hop_s, transform=transform,
                            output="audio", **{**common, "stats": None, "cache_dirs": None})
    else:
        train = SeldDataset(data.roots, splits=data.train_splits, hop_s=data.train_hop_s, transform=transform,
                            spec_augment=_spec_augment(data), **common)
    if visual is not None:
        from av_seld.data.visual_dataset import VisualFeatureDataset

        train = VisualFeatureDataset(train, visual, acs=data.acs, seed=config.train.seed)

    def evaluation_set(splits):
        if not splits:
            return None
        dataset = SeldDataset(data.roots, splits=splits, hop_s=data.chunk_s, **common)
        return dataset if visual is None else VisualFeatureDataset(dataset, visual)

    return train, evaluation_set(data.val_splits), evaluation_set(data.test_splits), stats


def _spec_augment(data):
    """The training masks of a :class:`DataConfig`: on cached features in the dataset, or on the device with
    ``data.online_features``."""
    from av_seld.data.dataset import SpecAugment

    return SpecAugment(freq_masks=data.freq_masks, time_masks=data.time_masks, cutouts=data.cutouts)


class OnlineFeatures:
    """Features of raw-audio training batches, computed on the batch's device (``data.online_features``).

    ``__call__(batch)`` replaces ``batch["audio"]`` (B, 4, N) by standardised ``batch["features"]`` (B, C, T_feat, F),
    zeroed past each chunk's real end like the cached path, with the SpecAugment masks drawn per example from
    ``(seed, epoch, index)`` (set the epoch with :meth:`set_epoch`), so a resumed run masks the same way.
    """

    def __init__(self, kind: str, stats, spec_augment, seed: int):
        self.extractor = feats.FeatureExtractor(kind, mean=stats.mean, std=stats.std)
        self.spec_augment = spec_augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @torch.no_grad()
    def __call__(self, batch: dict) -> dict:
        audio = batch.pop("audio")
        extractor = self.extractor.to(audio.device)
        features = extractor(audio)  # (B, C, T_feat, F)
        real = batch["label_mask"].repeat_interleave(timing.FEATURE_FRAMES_PER_LABEL_FRAME, dim=1)
        features = features * real[:, None, : features.shape[2], None].to(features.dtype)
        if self.spec_augment is not None and self.spec_augment.enabled:
            for i, index in enumerate(batch["index"].tolist()):
                rng = np.random.default_rng([self.seed, self.epoch, int(index), 1])
                features[i] = self.spec_augment(features[i], rng)
        batch["features"] = features
        return batch


def _salsalite_ipd_args() -> tuple[int, int, int]:
    lower, upper, cutoff = feats.salsalite_bins()
    return lower, upper, cutoff - lower


def model_params(config: Config, in_channels: int) -> dict[str, Any]:
    """Constructor keyword arguments of the configured model: the recipe's ``model.params`` plus the input channels
    of the feature kind (inside ``audio_kwargs`` for audio-visual models)."""
    params = dict(config.model.params)
    if config.model.name == "av_conformer":
        params["audio_kwargs"] = {"in_channels": in_channels, **dict(params.get("audio_kwargs") or {})}
        params["frame_size"] = tuple(params.get("frame_size", config.data.video_size))
        if params["frame_size"] != tuple(config.data.video_size):  # the frames read are the frames the model takes
            raise ConfigError("config", f"model.params.frame_size {list(params['frame_size'])} differs from "
                                        f"data.video_size {list(config.data.video_size)}: set one, or both alike")
    else:
        params.setdefault("in_channels", in_channels)
    return params


def predicts_distance(config: Config) -> bool:
    """Whether the configured model outputs distances (``model.params.distance``, every registered model's switch)."""
    return config.model.params.get("distance", False) is True


def check_distance_labels(clips) -> None:
    """:class:`InputError` naming the first reference CSV (of dataset clip entries) that has events but no distance
    column: a model with distance outputs learns from, and is validated on, references with distances."""
    for entry in clips:
        events = read_reference_csv(entry.clip.metadata)
        if len(events) and not events.has_distance:
            raise InputError(entry.clip.metadata, "has no distance column (frame, class, source, azimuth, elevation, "
                                                  "distance in cm), which model.params.distance: true needs")


def shipped_path(path: str) -> Path:
    """``path`` as given when it exists; a relative path that does not, but names a file of this repository (the
    shipped ``assets/`` weights a recipe starts from), resolves there, so recipes work from any working folder."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    repository = Path(__file__).resolve().parents[2] / given
    if repository.exists():
        log.info("%s: not in the working folder, using the repository's %s", path, repository)
        return repository
    return given


def auto_class_weights(clips) -> list[float]:
    """``loss.params.class_weights: auto``: class-balanced weights from the active label frames of each class in the
    training clips (:func:`av_seld.losses.class_balanced_weights`)."""
    from av_seld.losses import class_balanced_weights

    counts = np.zeros(NUM_CLASSES)
    for entry in clips:
        events = read_reference_csv(entry.clip.metadata)
        pairs = np.unique(np.stack([events.frame, events.class_index]), axis=1) if len(events) else np.zeros((2, 0))
        counts += np.bincount(pairs[1].astype(int), minlength=NUM_CLASSES)[:NUM_CLASSES]
    return class_balanced_weights(counts)


def check_model_config(config: Config) -> None:
    """:class:`ConfigError` naming the recipe and key for an unknown ``model.name`` or ``loss.name``, or a
    ``model.params`` key the model does not take (checked before anything is computed or written)."""
    from av_seld.losses import available_losses
    from av_seld.models import ModelArgumentError, check_model_arguments

    where = getattr(config, "source", "config")
    try:
        check_model_arguments(config.model.name, model_params(config, in_channels=0), name_key="model.name",
                              kwargs_key="model.params")
    except ModelArgumentError as err:
        raise ConfigError(where, str(err)) from None
    if config.loss.name not in available_losses():
        raise ConfigError(where, f"loss.name: unknown loss {config.loss.name!r} (available: "
                                 f"{', '.join(available_losses())})")


def build_loss_fn(config: Config, device: torch.device, model: torch.nn.Module, train_clips=()):
    """``(loss_fn(output, batch), extra trainable parameters, forward(model, batch))`` for the configured
    multi-ACCDOA loss, plus distillation from a frozen teacher when ``distill.teacher`` is set. ``train_clips``:
    the training set's clip entries (for ``loss.params.class_weights: auto``)."""
    from av_seld.losses import DistillationLoss, build_loss

    params = dict(config.loss.params)
    if params.get("class_weights") == "auto":
        params["class_weights"] = auto_class_weights(train_clips)
        log.info("class weights from the training split's label frames: %s",
                 ", ".join(f"{w:.2f}" for w in params["class_weights"]))
    base = build_loss(config.loss.name, **params)
    if config.distill.teacher is None:
        return (lambda output, batch: base(output, batch["target"])), [], model_forward
    teacher = build_model_from_checkpoint(load_checkpoint(config.distill.teacher), device=device)
    with_features = config.distill.feature_weight > 0
    loss = DistillationLoss(base, teacher, weight_teacher=config.distill.weight,
                            weight_feature=config.distill.feature_weight,
                            student_dim=model.embed_dim if with_features else None).to(device)
    if not with_features:
        return (lambda output, batch: loss(output, batch["target"], batch["features"])), \
            loss.trainable_parameters(), model_forward
    if distributed.launched_by_torchrun():
        raise ConfigError("config", "distill.feature_weight > 0 is not supported under torchrun yet")

    def forward_with_tokens(m, batch):  # the student's tokens feed the intermediate-feature loss
        tokens = m.tokens(batch["features"], **visual_inputs(batch))
        return m.head(tokens), tokens

    return (lambda out, batch: loss(out[0], batch["target"], batch["features"], student_tokens=out[1])), \
        loss.trainable_parameters(), forward_with_tokens


def _checkpoint_payload(config: Config, params: dict, model: torch.nn.Module, kind: str, stats) -> dict[str, Any]:
    return {"model_name": config.model.name, "model_params": params, "model_state": model.state_dict(),
            "features": kind, "format": config.data.format, "chunk_s": config.data.chunk_s,
            "feature_mean": stats.mean, "feature_std": stats.std,
            "thresholds": np.full(NUM_CLASSES, config.eval.threshold),
            "merge_deg": config.eval.merge_deg, "config": config_to_dict(config)}


def train(config: Config, *, resume: bool = False, extra_hooks: list[Hook] | None = None,
          workers: int = 1) -> TrainResult:
    """Train the configured model, keep the best checkpoint by validation SELD score, calibrate its per-class
    thresholds, and score it on the test split. ``workers``: processes for filling feature caches."""
    if not config.data.roots:
        raise ConfigError("config", "data.roots is empty: give at least one dataset root")
    check_model_config(config)
    device = distributed.setup(pick_device(config.train.device, where=getattr(config, "source", None)))
    seed_everything(config.train.seed + distributed.rank())
    run_dir = Path(config.train.out_dir) / (config.train.name or "run")
    if distributed.is_main():
        if run_dir.exists() and any(run_dir.iterdir()) and not resume:
            if (run_dir / "last.pt").exists():
                raise InputError(run_dir, "run folder already holds a run: pass --resume to continue it, or choose "
                                          "another train.name")
        if resume and (run_dir / "last.pt").exists() and (run_dir / "config.yaml").exists():
            for change in check_resume(config, run_dir / "config.yaml"):  # before anything is written
                log.info("resuming %s with %s", run_dir, change)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")

    kind = config.data.features
    spec = feats.feature_spec(kind)
    caches = feature_caches(config, kind, workers)
    train_set, val_set, test_set, stats = build_datasets(config, caches, kind)
    if predicts_distance(config):
        check_distance_labels(list(train_set.clips) + (list(val_set.clips) if val_set is not None else []))
    params = model_params(config, spec.num_channels)

    from av_seld.models import build_model

    # a path to an audio-only checkpoint starts the audio branch; the rebuilt model (checkpoint) does not need it
    # Files that start the weights (an audio checkpoint, a pretrain-visual checkpoint) are read once, here: the
    # checkpoint's model_params leave them out, as its weights already hold them, so it rebuilds without them.
    audio_init = params.pop("audio_state", None) if config.model.name == "av_conformer" else None
    visual_init = params.pop("visual_init", None) if config.model.name == "av_conformer" else None
    if audio_init is not None and not isinstance(audio_init, str):
        raise ConfigError("config", "model.params.audio_state: give the path of an av-seld audio checkpoint")
    try:
        model = build_model(config.model.name, **params)
    except InputError:  # a file the model reads (e.g. visual weights): the error names it
        raise
    except (ValueError, TypeError) as err:  # an argument value the model refuses
        raise ConfigError(getattr(config, "source", "config"), f"model.params of {config.model.name}: {err}") from None
    fresh = not (resume and (run_dir / "last.pt").exists())
    if fresh and visual_init is not None:
        from av_seld.models.visual import load_encoder_init

        load_encoder_init(model.visual, visual_init)
    if fresh and audio_init is not None:
        initialise_weights(model.audio, audio_init, what="model.params.audio_state")
    if fresh and config.train.init_from is not None:
        initialise_weights(model, shipped_path(config.train.init_from))
    loss_fn, extra_params, forward = build_loss_fn(config, device, model, train_set.clips)
    online = None
    if config.data.online_features:
        online = OnlineFeatures(kind, stats, _spec_augment(config.data), config.train.seed)
        model_forward_of_features = forward

        def forward(m, batch):  # the batch dict is shared with loss_fn, which then sees the features too
            return model_forward_of_features(m, online(batch))
    sampler = None
    if distributed.is_distributed():
        sampler = torch.utils.data.distributed.DistributedSampler(train_set, seed=config.train.seed, drop_last=True)
    from av_seld.data.dataset import collate_samples

    generator = torch.Generator().manual_seed(config.train.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=config.data.batch_size, shuffle=sampler is None,
                                         sampler=sampler, drop_last=len(train_set) >= config.data.batch_size,
                                         num_workers=config.data.num_workers, collate_fn=collate_samples,
                                         generator=generator, persistent_workers=False)
    steps_per_epoch = len(loader)
    total_steps = config.train.epochs * steps_per_epoch
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)
    opt = config.optim
    trainable = [p for p in model.parameters() if p.requires_grad] + list(extra_params)
    optimizer = torch.optim.AdamW(trainable, lr=opt.lr, weight_decay=opt.weight_decay)

    def lr_at(step: int) -> float:
        return learning_rate(step, total_steps=total_steps, peak_lr=opt.lr, warmup_steps=opt.warmup_steps,
                             warmup_start_lr=opt.warmup_start_lr, min_lr_ratio=opt.min_lr_ratio)

    def set_epoch(epoch: int) -> None:
        train_set.set_epoch(epoch)
        if online is not None:
            online.set_epoch(epoch)
        generator.manual_seed(config.train.seed * 1000 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)

    def save(trainer: Trainer, path: Path) -> None:
        payload = _checkpoint_payload(config, params, trainer.eval_model, kind, stats)
        payload.update(trainer.state_dict(), trained_state=trainer.module.state_dict())
        save_checkpoint(path, payload)

    refs_val = references(val_set) if val_set is not None else {}

    def validate(eval_model) -> dict[str, float]:
        outputs = collect_outputs(eval_model, val_set, batch_size=config.data.batch_size, device=device)
        return validation_scores(outputs, refs_val, thresholds=config.eval.threshold,
                                 merge_deg=config.eval.merge_deg, edition=config.eval.edition)

    log_hook = LogHook(run_dir, every=config.train.log_every_steps)
    hooks: list[Hook] = [log_hook] if distributed.is_main() else []
    if val_set is not None:
        hooks.append(ValidationHook(validate, save, run_dir, config.train.val_every_epochs, log_hook))
    hooks.append(CheckpointHook(save, run_dir, every_steps=config.train.checkpoint_every_steps))
    hooks += extra_hooks or []
    trainer = Trainer(model=model, loss_fn=loss_fn, forward=forward, train_loader=loader, optimizer=optimizer,
                      lr_at=lr_at, total_steps=total_steps, device=device, amp=opt.amp, grad_clip=opt.grad_clip,
                      ema_decay=opt.ema_decay, hooks=hooks, set_epoch=set_epoch)
    if resume and (run_dir / "last.pt").exists():
        payload = load_checkpoint(run_dir / "last.pt")
        trainer.module.load_state_dict(payload["trained_state"])
        trainer.load_state_dict(payload)
        log.info("resumed %s at step %d (epoch %d)", run_dir, trainer.state.step, trainer.state.epoch)
    log.info("training %s (%d parameters) for %d steps (%d per epoch) on %s", config.model.name,
             sum(p.numel() for p in model.parameters()), total_steps, steps_per_epoch, device)
    state = trainer.train()
    distributed.barrier()
    if not distributed.is_main():
        distributed.cleanup()
        return TrainResult(run_dir, run_dir / "best.pt", {}, None, state.step)

    best_path = run_dir / ("best.pt" if (run_dir / "best.pt").exists() else "last.pt")
    payload = load_checkpoint(best_path)
    val_scores, test_eval = score_best_checkpoint(config, payload, best_path, val_set, test_set, run_dir, device)
    distributed.cleanup()
    return TrainResult(run_dir, run_dir / "best.pt", val_scores, test_eval, state.step, test_set)


def score_best_checkpoint(config: Config, payload: dict, path: Path, val_set, test_set, run_dir: Path, device):
    """Calibrate the best checkpoint's per-class thresholds on the validation split, save them into ``best.pt``, and
    score the test split into ``RUN/eval/test``, all through the path of ``av-seld infer`` (so ``av-seld infer`` +
    ``av-seld evaluate`` on ``best.pt`` give the test scores printed here)."""
    from av_seld.training.evaluation import evaluate_split, split_clips, split_outputs
    from av_seld.training.predict import loaded_from_payload, with_thresholds

    with_video = config.model.name == "av_conformer"
    loaded = loaded_from_payload(path, payload, device)
    thresholds = np.full(NUM_CLASSES, config.eval.threshold)
    val_scores: dict[str, float] = {}
    if val_set is not None:
        clips, metadata = split_clips(val_set, with_video=with_video)
        log.info("validation: predicting %d clips for threshold calibration", len(clips))
        outputs = split_outputs([loaded], clips)
        refs = {name: read_reference_csv(path) for name, path in metadata.items()}
        if config.eval.calibrate:
            thresholds = calibrate_thresholds(outputs, refs, merge_deg=config.eval.merge_deg,
                                              edition=config.eval.edition)
        val_scores = validation_scores(outputs, refs, thresholds=thresholds, merge_deg=config.eval.merge_deg,
                                       edition=config.eval.edition)
    payload["thresholds"] = thresholds
    save_checkpoint(run_dir / "best.pt", payload)

    test_eval = None
    if test_set is not None:
        clips, metadata = split_clips(test_set, with_video=with_video)
        log.info("test: predicting and scoring %d clips", len(clips))
        test_eval = evaluate_split([with_thresholds(loaded, thresholds)], clips, metadata, run_dir / "eval" / "test",
                                   edition=config.eval.edition)
    return val_scores, test_eval
