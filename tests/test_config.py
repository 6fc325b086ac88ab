"""Typed configs: YAML with base inheritance, overrides, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from av_seld.config import Config, ConfigError, apply_overrides, config_from_dict, load_config, save_config


def write(path, text):
    path.write_text(text)
    return path


def test_defaults_and_nested_values(tmp_path):
    cfg = load_config(write(tmp_path / "r.yaml", "optim:\n  lr: 3.0e-4\nmodel:\n  name: seldnet\n  params: {width: 8}\n"))
    assert cfg.optim.lr == 3e-4 and cfg.optim.weight_decay == Config().optim.weight_decay
    assert cfg.model.name == "seldnet" and cfg.model.params == {"width": 8}
    assert cfg.train.name == "r"


def test_base_inheritance_merges_sections_and_replaces_params(tmp_path):
    write(tmp_path / "base.yaml", "optim: {lr: 0.1, warmup_steps: 7}\nmodel: {name: a, params: {x: 1, y: 2}}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    cfg = load_config(write(sub / "child.yaml", "base: ../base.yaml\noptim: {lr: 0.2}\nmodel: {params: {y: 3}}\n"))
    assert cfg.optim.lr == 0.2 and cfg.optim.warmup_steps == 7
    assert cfg.model.name == "a" and cfg.model.params == {"y": 3}  # a model's params are replaced, not merged


def test_overrides_parse_yaml_values(tmp_path):
    cfg = load_config(write(tmp_path / "r.yaml", ""), ["optim.lr=1e-3", "data.roots=[a, b]", "optim.grad_clip=null",
                                                      "train.max_steps=5", "eval.edition=2024"])
    assert cfg.optim.lr == 1e-3 and cfg.data.roots == ["a", "b"] and cfg.optim.grad_clip is None
    assert cfg.train.max_steps == 5 and cfg.eval.edition == "2024"


@pytest.mark.parametrize("text, key", [
    ("optim:\n  lrr: 0.1\n", "optim.lrr"),
    ("bogus: 1\n", "bogus"),
    ("train:\n  epochs: many\n", "train.epochs"),
    ("train:\n  epochs: 2.5\n", "train.epochs"),
    ("data:\n  roots: here\n", "data.roots"),
    ("data:\n  format: wav\n", "data.format"),
    ("data:\n  acs: 1\n", "data.acs"),
])
def test_unknown_keys_and_wrong_types_name_file_and_key(tmp_path, text, key):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and key in str(info.value)


@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "train.epochs: must be at least 1, got 0"),
    ("train.max_steps=-5", "train.max_steps: must be at least 1, got -5"),
    ("optim.lr=0", "optim.lr: must be more than 0, got 0.0"),
    ("data.batch_size=0", "data.batch_size: must be at least 1, got 0"),
    ("train.checkpoint_every_steps=0", "train.checkpoint_every_steps: must be at least 1, got 0"),
    ("eval.smooth_frames=0", "eval.smooth_frames: must be at least 1, got 0"),
])
def test_values_that_would_train_nothing_are_config_errors(tmp_path, override, message):
    path = write(tmp_path / "r.yaml", "train: {max_steps: null}\n")
    with pytest.raises(ConfigError, match=f"r.yaml \\+ overrides: {message}"):
        load_config(path, [override])
    load_config(path, ["train.max_steps=null", "optim.grad_clip=null"])  # None switches these off


def test_bad_override_and_missing_file(tmp_path):
    path = write(tmp_path / "r.yaml", "")
    with pytest.raises(ConfigError, match="optim.nope"):
        load_config(path, ["optim.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["optim.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="loops"):
        load_config(write(tmp_path / "loop.yaml", "base: loop.yaml\n"))


def test_saved_config_loads_back_equal(tmp_path):
    cfg = load_config(write(tmp_path / "r.yaml", "model: {params: {dims: [8, 16]}}\noptim: {ema_decay: 0.999}\n"),
                      ["data.roots=[x]"])
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


def test_apply_overrides_does_not_modify_input():
    data = {"optim": {"lr": 1}}
    apply_overrides(data, ["optim.lr=2"])
    assert data == {"optim": {"lr": 1}}
    assert config_from_dict(apply_overrides(data, ["optim.lr=2"])).optim.lr == 2.0


@pytest.mark.parametrize("recipe", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")))
def test_every_shipped_recipe_loads_and_builds_its_model(recipe):
    from av_seld import features as feats
    from av_seld.models import build_model
    from av_seld.training.run import model_params

    path = Path(__file__).resolve().parents[1] / "configs" / recipe
    if recipe == "pretrain_visual.yaml":  # the recipe of av-seld pretrain-visual, not of train
        from av_seld.config import PretrainConfig

        assert load_config(path, cls=PretrainConfig).name == "pretrain_visual"
        return
    config = load_config(path)
    params = model_params(config, feats.feature_spec(config.data.features).num_channels)
    params.pop("audio_state", None)
    model = build_model(config.model.name, **params)
    assert sum(p.numel() for p in model.parameters()) > 0
    if config.model.name == "av_conformer":
        assert tuple(model.visual.frame_size) == tuple(config.data.video_size)


def test_spec_augment_keys_reach_the_masks():
    from av_seld.training.data import spec_augment_of

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "debug_tiny.yaml",
                         ["data.cutouts=2", "data.time_masks=3", "data.freq_masks=1"])
    masks = spec_augment_of(config.data)
    assert (masks.cutouts, masks.time_masks, masks.freq_masks) == (2, 3, 1) and masks.enabled


def test_av_frame_size_and_video_size_cannot_disagree():
    from av_seld.training.run import model_params

    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    same = load_config(demo, ["data.video_size=[64,128]", "model.params.frame_size=[64,128]"])
    assert model_params(same, 7)["frame_size"] == (64, 128)
    unset = load_config(demo, ["data.video_size=[64,128]"])
    unset.model.params.pop("frame_size")
    assert model_params(unset, 7)["frame_size"] == (64, 128)  # the model takes the frames the dataset reads
    differ = load_config(demo, ["data.video_size=[64,128]"])  # demo.yaml's model.params.frame_size is [128, 256]
    with pytest.raises(ConfigError, match=r"model\.params\.frame_size \[128, 256\].*data\.video_size \[64, 128\]"):
        model_params(differ, 7)
