"""OVSS run configuration: every kind of key is checked (type, range, allowed values) before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

pytest.importorskip("open_clip")
pytest.importorskip("yaml")

from ovss.config import (
    DataConfig,
    DistillConfig,
    EvalConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    is_override,
    load_config,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ovss"
DEMO = EXAMPLES / "configs" / "demo.yaml"


def _err(*overrides: str) -> str:
    with pytest.raises(ValueError) as info:
        load_config(DEMO, list(overrides))
    return str(info.value)


def test_every_shipped_config_loads_and_round_trips():
    for path in sorted((EXAMPLES / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert isinstance(cfg, RunConfig), path
        assert RunConfig.from_dict(cfg.to_dict()) == cfg, path
    cfg = load_config(EXAMPLES / "configs" / "train_vitb_384.yaml", ["model.distill.name=none"])
    assert cfg.model.clip.model_name == "ViT-B-16-quickgelu" and cfg.model.distill.name == "none"
    assert cfg.train.max_iter == 80000 and cfg.train.grad_clip == 0.01
    assert RunConfig() == RunConfig.from_dict({})  # every key has a default


@pytest.mark.parametrize(
    ("override", "words"),
    [
        # integers: no truncation, no strings, ranges
        ("train.max_iter=0", ["train.max_iter=0", ">= 1"]),
        ("train.max_iter=-5", ["train.max_iter=-5", ">= 1"]),
        ("train.max_iter=1.5", ["train.max_iter=1.5", "an integer"]),
        ("train.max_iter=abc", ["train.max_iter='abc'", "an integer"]),
        ("train.batch_size=0", ["train.batch_size=0", ">= 1"]),
        ("train.seed=-1", ["train.seed=-1", ">= 0"]),
        ("train.checkpoint_period=-1", ["train.checkpoint_period=-1", ">= 0"]),
        ("train.log_period=0", ["train.log_period=0", ">= 1"]),
        ("data.num_workers=-2", ["data.num_workers=-2", ">= 0"]),
        ("data.crop_size=true", ["data.crop_size=True", "an integer"]),  # a bool is not an integer
        # numbers
        ("optim.base_lr=abc", ["optim.base_lr='abc'", "a number"]),
        ("optim.base_lr=0", ["optim.base_lr=0", "> 0"]),
        ("optim.weight_decay=-1e-4", ["optim.weight_decay", ">= 0"]),
        ("train.grad_clip=-0.5", ["train.grad_clip=-0.5", ">= 0"]),
        ("train.grad_clip=.nan", ["train.grad_clip=nan", "a number"]),
        ("data.single_category_max_area=1.5", ["data.single_category_max_area=1.5", "<= 1"]),
        # booleans
        ("data.flip=yes please", ["data.flip='yes please'", "true or false"]),
        ("train.progress=1", ["train.progress=1", "true or false"]),
        # allowed values
        ("train.amp=fp16", ["train.amp='fp16'", "'auto', 'bf16', 'off'"]),
        ("eval.mode=tiles", ["eval.mode='tiles'", "'sliding', 'whole'"]),
        ("model.clip.finetune=all", ["model.clip.finetune='all'", "'qv', 'none', 'full'"]),
        ("model.distill.name=infoclipp", ["model.distill.name='infoclipp'", "'maft'"]),
        ("model.loss.ignore_mode=drop", ["model.loss.ignore_mode='drop'", "'exclude'"]),
        ("train.device=gpu", ["train.device='gpu'", "'cuda:N'"]),
        ("data.train=coco", ["data.train='coco'", "coco_stuff_train"]),
        ("eval.datasets=[ade9000]", ["eval.datasets='ade9000'", "ade150"]),
        # optional values, lists, nested sections, distiller options
        ("eval.limit=0", ["eval.limit=0", ">= 1"]),
        ("eval.limit=many", ["eval.limit='many'", "an integer or null"]),
        ("data.class_subset=[0, 0]", ["data.class_subset", "distinct"]),
        ("data.class_subset=[0, 999]", ["data.class_subset", "999"]),
        ("model.decoder.decoder_dims=[32]", ["model.decoder.decoder_dims=[32]", "a list of 2"]),
        ("model.decoder.num_heads=0", ["model.decoder.num_heads=0", ">= 1"]),
        ("model.clip.guidance_layers=[0, -1]", ["model.clip.guidance_layers", ">= 0"]),
        ("data.synthetic={train: 0}", ["data.synthetic.train=0", ">= 1"]),
        ("model.distill.options={lambda_compress: -1}", ["model.distill.options", "lambda_compress"]),
        ("model.distill.options={typo: 1}", ["model.distill.options", "typo"]),
        ("eval.kernel=700", ["eval.kernel=700", "eval.out_res"]),
        # sections and unknown keys
        ("train=5", ["train=5", "a mapping"]),
        ("train.max_iters=3", ["unknown key", "max_iters", "max_iter"]),
        ("trian.max_iter=3", ["unknown key", "trian"]),
        ("output_dir=[a, b]", ["output_dir=['a', 'b']", "a string"]),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(override, words):
    msg = _err(override)
    for w in words:
        assert w in msg, (override, msg)


def test_values_are_converted_only_losslessly():
    cfg = load_config(
        DEMO, ["optim.base_lr=2e-4", "train.amp=true", "train.grad_clip=0", "data.min_size=null"]
    )
    # "2e-4" is a YAML string: a numeric string is a number
    assert cfg.optim.base_lr == 2e-4 and isinstance(cfg.optim.base_lr, float)
    assert cfg.train.amp == "bf16" and cfg.train.grad_clip == 0.0 and cfg.data.min_size is None
    assert load_config(DEMO, ["train.amp=false"]).train.amp == "off"
    assert load_config(DEMO, ["eval.datasets=[]"]).eval.datasets == ()
    assert isinstance(load_config(DEMO, ["optim.base_lr=1"]).optim.base_lr, float)


def test_sections_are_typed_dataclasses_with_defaults():
    cfg = load_config(DEMO)
    assert isinstance(cfg.train, TrainConfig) and isinstance(cfg.data, DataConfig)
    assert isinstance(cfg.eval, EvalConfig) and isinstance(cfg.optim, OptimConfig)
    assert cfg.data.synthetic is not None and cfg.data.synthetic.eval_datasets == ("coco_stuff_val",)
    assert cfg.data.class_subset == (0, 2, 15, 112, 145, 159)


def test_overrides_and_paths_are_told_apart():
    assert is_override("train.max_iter=5") and is_override("output_dir=/tmp/x=y")
    assert not is_override("/tmp/run/iter_0000100.pth") and not is_override("out/a=b.pth")
    with pytest.raises(ValueError, match=r"key\.sub=value"):
        apply_overrides({}, ["oops"])
    with pytest.raises(ValueError, match="not a section"):
        apply_overrides({"train": 5}, ["train.max_iter=3"])


def test_missing_config_file_is_named():
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_config("nope.yaml")


def test_distill_section_asks_the_distiller_registry():
    from infoclip import DISTILLERS, KLDistiller, register_distiller

    class WithMode(KLDistiller):
        name = "kl_with_mode_cfg_test"

        def __init__(self, embed_dim: int, *, mode: Literal["a", "b"] = "a", weight: float = 1.0) -> None:
            super().__init__(embed_dim, weight=weight)

    register_distiller(WithMode)
    try:
        # a registered distiller is a valid name, and its new option is checked from its signature
        cfg = load_config(
            DEMO, ["model.distill.name=kl_with_mode_cfg_test", "model.distill.options={mode: b}"]
        )
        assert cfg.model.distill.options == {"mode": "b"}
        msg = _err("model.distill.name=kl_with_mode_cfg_test", "model.distill.options={mode: c}")
        assert "model.distill.options" in msg and "mode must be one of 'a', 'b'" in msg
    finally:
        DISTILLERS.pop("kl_with_mode_cfg_test")
    assert "'kl_with_mode_cfg_test'" in _err("model.distill.name=kl_with_mode_cfg_test")
    # the default options are the paper's for InfoCLIP, the constructor's own for any other distiller
    assert DistillConfig.named("infoclip").options == DistillConfig().options
    assert DistillConfig.named("kl").options == {} and DistillConfig.named("none").enabled is False
    # "none" builds nothing, so options meant for another distiller are left alone
    assert load_config(DEMO, ["model.distill.name=none"]).model.distill.options["alpha"] == 2.0
