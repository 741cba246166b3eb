"""The typed, validated configuration of the OVSS example: model, optimizer, data, training, evaluation.

A run is one `RunConfig` with five sections, each a dataclass:

- ``model`` (`ModelConfig`: ``clip``, ``decoder``, ``distill``, ``loss``) and ``optim``
  (`OptimConfig`): the segmentor and CAT-Seg's AdamW groups, with the ViT-B/16-384 and
  ViT-L/14-336 presets (`preset`);
- ``data`` (`DataConfig`), ``train`` (`TrainConfig`), ``eval`` (`EvalConfig`);
- ``output_dir``.

It is read from one YAML file (optionally ``base:`` other files whose keys it overrides) plus
``key.sub=value`` overrides (`load_config`). Every key is checked before any work starts: its
type (from the dataclass annotation), its range and its allowed values; an unknown key or a bad
value raises a ``ValueError`` that names the key, the value and what is allowed. Integers must be
integers (``1.5`` is refused, not truncated); numbers also accept numeric strings (``2e-4`` on a
command line is a YAML string).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infoclip import DistillerSpec, distiller_names, distiller_spec

from .aggregator import AggregatorConfig
from .data import FOLDER_PREFIX
from .templates import get_templates

__all__ = [
    "CLIPConfig",
    "DataConfig",
    "DistillConfig",
    "EvalConfig",
    "FolderDatasetConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SyntheticConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
    "load_yaml",
    "preset",
]

#: CAT-Seg's CLIP pixel statistics (0-255 scale; ``MODEL.CLIP_PIXEL_MEAN`` / ``CLIP_PIXEL_STD``).
CLIP_PIXEL_MEAN = (122.7709383, 116.7460125, 104.09373615)
CLIP_PIXEL_STD = (68.5005327, 66.6321579, 70.3231630)

_SEED_MAX = 2**63 - 1


# --------------------------------------------------------------------------- checking one value
def _rule(*, lo: float | None = None, hi: float | None = None, gt: float | None = None) -> dict[str, Any]:
    """Field metadata: inclusive bounds ``lo``/``hi`` and an exclusive lower bound ``gt`` (numbers, or
    every number of a tuple)."""
    return {"rule": {"lo": lo, "hi": hi, "gt": gt}}


class _Mismatch(Exception):
    pass


def _require(ok: bool) -> None:
    if not ok:
        raise _Mismatch


def _is_list_of(args: tuple) -> bool:
    """``tuple[X, ...]``: a list of any length."""
    return len(args) == 2 and args[1] is Ellipsis


def _check_literal(key: str, value: Any, args: tuple) -> Any:
    _require(any(value == a and type(value) is type(a) for a in args))
    return value


def _check_union(key: str, value: Any, args: tuple) -> Any:
    for arm in args:
        try:
            return _check_type(key, value, arm)
        except _Mismatch:
            continue
    raise _Mismatch


def _check_float(key: str, value: Any, args: tuple) -> float:
    if isinstance(value, str):  # a number on the command line is a YAML string
        try:
            value = float(value)
        except ValueError:
            raise _Mismatch from None
    _require(isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value))
    return float(value)


def _check_tuple(key: str, value: Any, args: tuple) -> tuple:
    _require(isinstance(value, list | tuple))
    if _is_list_of(args):
        return tuple(_check_type(key, v, args[0]) for v in value)
    _require(len(value) == len(args))
    return tuple(_check_type(key, v, a) for v, a in zip(value, args))


def _check_dict(key: str, value: Any, args: tuple) -> dict:
    _require(isinstance(value, Mapping) and all(isinstance(k, str) for k in value))
    return dict(value)


def _accept(predicate: Callable[[Any], bool]) -> Callable[[str, Any, tuple], Any]:
    def check(key: str, value: Any, args: tuple) -> Any:
        _require(predicate(value))
        return value

    return check


def _describe_tuple(args: tuple) -> str:
    if _is_list_of(args):
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s"
    return f"a list of {len(args)} " + ", ".join(_describe(a) for a in args)


#: Per annotation (or its origin: ``Literal``, ``Union``, ``tuple``...): how a value is checked and
#: converted (only losslessly; `_Mismatch` otherwise), and how the expected value is said.
_TYPES: dict[Any, tuple[Callable[[str, Any, tuple], Any], Callable[[tuple], str]]] = {
    Literal: (_check_literal, lambda args: "one of " + ", ".join(repr(a) for a in args)),
    typing.Union: (_check_union, lambda args: " or ".join(_describe(a) for a in args)),
    types.UnionType: (_check_union, lambda args: " or ".join(_describe(a) for a in args)),
    type(None): (_accept(lambda v: v is None), lambda args: "null"),
    bool: (_accept(lambda v: isinstance(v, bool)), lambda args: "true or false"),
    int: (_accept(lambda v: isinstance(v, int) and not isinstance(v, bool)), lambda args: "an integer"),
    float: (_check_float, lambda args: "a number"),
    str: (_accept(lambda v: isinstance(v, str)), lambda args: "a string"),
    tuple: (_check_tuple, _describe_tuple),
    dict: (_check_dict, lambda args: "a mapping"),
}


def _describe(tp: Any) -> str:
    """What a value of annotation ``tp`` must be, in words."""
    if tp is Any:
        return "any value"
    if dataclasses.is_dataclass(tp):
        return f"a mapping (a config section of {tp.__name__} keys)"
    entry = _TYPES.get(typing.get_origin(tp) or tp)
    return entry[1](typing.get_args(tp)) if entry else str(tp)


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """``value`` converted to ``tp`` (only lossless conversions), else `_Mismatch`."""
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        _require(isinstance(value, Mapping))
        return from_mapping(tp, value, key)
    entry = _TYPES.get(typing.get_origin(tp) or tp)
    if entry is None:
        raise TypeError(f"no checker for the annotation {tp!r} of {key}")  # a programming error
    return entry[0](key, value, typing.get_args(tp))


#: Range rules (`_rule`): the key, the test a number must pass, and how the bound is said.
_BOUNDS = (
    ("gt", lambda x, b: x > b, "> {}"),
    ("lo", lambda x, b: x >= b, ">= {}"),
    ("hi", lambda x, b: x <= b, "<= {}"),
)


def _check_range(key: str, value: Any, out: Any, rule: Mapping[str, Any]) -> None:
    """Every number of ``out`` (a number or a tuple of them) within the rule's bounds."""
    bounds = [(test, bound, text) for name, test, text in _BOUNDS if (bound := rule[name]) is not None]
    for x in out if isinstance(out, tuple) else (out,):
        numeric = isinstance(x, int | float) and not isinstance(x, bool)
        if numeric and not all(test(x, bound) for test, bound, _ in bounds):
            said = " and ".join(text.format(bound) for _, bound, text in bounds)
            raise ValueError(f"{key}={value!r} is out of range: must be {said}")


def _check_value(key: str, value: Any, tp: Any, rule: Mapping[str, Any] | None) -> Any:
    try:
        out = _check_type(key, value, tp)
    except _Mismatch:
        raise ValueError(f"{key}={value!r} is not allowed: expected {_describe(tp)}") from None
    if rule:
        _check_range(key, value, out, rule)
    return out


def from_mapping(cls: type, data: Mapping[str, Any] | None, section: str) -> Any:
    """Build the dataclass ``cls`` from a mapping, checking every key (type, range) against ``cls``.

    Args:
        cls: a config dataclass (its annotations and ``_rule`` metadata are the schema).
        data: the section's keys (``None``: all defaults).
        section: the section's dotted name, used in error messages (``"train"``, ``"model.clip"``;
            ``""`` for the top level).

    Raises:
        ValueError: ``data`` is not a mapping, holds an unknown key, or a value of the wrong type or
            out of range; the message names ``section.key``, the value and what is allowed.
    """
    where = f"config section {section!r}" if section else "the config's top level"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping of keys; got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls, include_extras=False)
    rules = _EXTRA_RULES.get(cls, {})
    kwargs = {}
    for name, value in data.items():
        rule = fields[name].metadata.get("rule") or rules.get(name)
        kwargs[name] = _check_value(f"{section}.{name}" if section else name, value, hints[name], rule)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        raise ValueError(msg if not section or section in msg else f"{where}: {msg}") from None


def to_plain(x: Any) -> Any:
    """A config (dataclasses, tuples) as plain YAML/JSON types (dicts, lists, scalars)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, tuple | list):
        return [to_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: to_plain(v) for k, v in x.items()}
    return x


# --------------------------------------------------------------------------- model and optimizer
@dataclass
class CLIPConfig:
    """The CLIP backbone.

    Attributes:
        model_name: open_clip architecture (OpenAI weights use QuickGELU: ``"ViT-B-16-quickgelu"``,
            ``"ViT-L-14-336-quickgelu"``).
        pretrained: open_clip tag (``"openai"``, needs a network once), a local checkpoint path, or
            ``None`` for random initialisation.
        image_size: the resolution CLIP sees (384 for ViT-B/16, 336 for ViT-L/14: a 24×24 grid).
        guidance_layers: 0-indexed blocks feeding the upsampling decoder ((3, 7) for B, (7, 15) for L).
        templates: ``"single"`` (CAT-Seg's released configs), ``"imagenet"`` (80 templates) or a list.
        finetune: ``"qv"`` (CAT-Seg: query and value weights of both encoders), ``"none"`` or ``"full"``.
    """

    model_name: str = "ViT-B-16-quickgelu"
    pretrained: str | None = "openai"
    image_size: int = field(default=384, metadata=_rule(lo=1))
    guidance_layers: tuple[int, ...] = field(default=(3, 7), metadata=_rule(lo=0))
    templates: str | tuple[str, ...] = "single"
    finetune: Literal["qv", "none", "full"] = "qv"

    def __post_init__(self) -> None:
        self.guidance_layers = tuple(int(i) for i in self.guidance_layers)
        if not isinstance(self.templates, str):
            self.templates = tuple(self.templates)
        get_templates(self.templates)
        if self.finetune not in ("qv", "none", "full"):
            raise ValueError(f"clip.finetune must be 'qv', 'none' or 'full'; got {self.finetune!r}")
        if int(self.image_size) <= 0:
            raise ValueError(f"clip.image_size must be positive; got {self.image_size}")


@dataclass
class DistillConfig:
    """Distillation from a frozen copy of the pretrained CLIP.

    Attributes:
        name: a distiller of `infoclip.registry` (``"none"``, ``"infoclip"``, ``"kl"``, ``"maft"``,
            ``"maftplus"``, or one you registered); ``"none"`` is plain CAT-Seg: no teacher is built.
        options: keyword options of that distiller (``lambda_compress``, ``lambda_distill``, ``alpha``,
            ``gram_over`` for InfoCLIP; ``weight``, ... for the baselines); checked against the
            distiller's constructor signature (`infoclip.DistillerSpec.check_options`).
        teacher_dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (halves the teacher's memory on a
            GPU).
    """

    name: str = "infoclip"
    options: dict[str, Any] = field(
        default_factory=lambda: {
            "lambda_compress": 1.0,
            "lambda_distill": 1.0,
            "alpha": 2.0,
            "gram_over": "batch",
        }
    )
    teacher_dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @classmethod
    def named(cls, name: str) -> DistillConfig:
        """The section for distiller ``name`` with default options: the paper's for the default
        distiller, the distiller's own constructor defaults (no options) for any other."""
        default = cls()
        return cls(name=name, options=default.options if name == default.name else {})

    @property
    def enabled(self) -> bool:
        """Whether a teacher and a distiller are built (every name but ``"none"``)."""
        return self.name != "none"

    def spec(self) -> DistillerSpec:
        """The registry's description of this distiller (its options, extra inputs, alignment map)."""
        return distiller_spec(self.name)

    def __post_init__(self) -> None:
        if self.name not in distiller_names():
            raise ValueError(
                f"model.distill.name={self.name!r} is not allowed: expected one of "
                + ", ".join(repr(n) for n in distiller_names())
            )
        if self.teacher_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                f"distill.teacher_dtype must be float32, bfloat16 or float16; got {self.teacher_dtype!r}"
            )
        self.options = dict(self.options or {})
        if self.enabled:
            try:
                self.spec().check_options(self.options)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"model.distill.options={self.options!r} are not valid for distiller {self.name!r}: {exc}"
                ) from None


@dataclass
class LossConfig:
    """The task loss (`ovss.losses.segmentation_bce_loss`)."""

    ignore_index: int = field(default=255, metadata=_rule(lo=0, hi=65535))
    ignore_mode: Literal["zero", "exclude"] = "zero"


@dataclass
class OptimConfig:
    """AdamW parameter groups as CAT-Seg's ``build_optimizer`` (`ovss.optim.param_groups`).

    Attributes:
        base_lr: decoder (and LPAM) learning rate.
        clip_multiplier: CLIP's learning rate is ``base_lr * clip_multiplier`` (2e-6).
        weight_decay: weight decay of every other parameter (1e-4).
        weight_decay_norm: of normalisation layers' parameters (detectron2's default 0).
        weight_decay_embed: of ``nn.Embedding`` weights (CAT-Seg: 0).
        decay_without_grad: a trainable parameter that got no gradient in a step (the dense last
            block's query weight, which CAT-Seg's dense path still multiplies into an unused output)
            gets a zero gradient, so AdamW decays it as in CAT-Seg; ``false``: AdamW skips it.
    """

    base_lr: float = field(default=2e-4, metadata=_rule(gt=0.0))
    clip_multiplier: float = field(default=0.01, metadata=_rule(lo=0.0))
    weight_decay: float = field(default=1e-4, metadata=_rule(lo=0.0))
    weight_decay_norm: float = field(default=0.0, metadata=_rule(lo=0.0))
    weight_decay_embed: float = field(default=0.0, metadata=_rule(lo=0.0))
    decay_without_grad: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> OptimConfig:
        """Build from a mapping, checking every key (`from_mapping`)."""
        return from_mapping(cls, data, "optim")


@dataclass
class ModelConfig:
    """Everything that defines the segmentor.

    ``decoder.prompt_channel`` is derived from the number of templates.
    """

    clip: CLIPConfig = field(default_factory=CLIPConfig)
    decoder: AggregatorConfig = field(default_factory=AggregatorConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        prompts = len(get_templates(self.clip.templates))
        if self.decoder.prompt_channel not in (1, prompts):
            raise ValueError(
                f"decoder.prompt_channel={self.decoder.prompt_channel} disagrees with the {prompts} templates; "
                "leave it out (it is derived from clip.templates)"
            )
        self.decoder = dataclasses.replace(self.decoder, prompt_channel=prompts)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ModelConfig:
        """Build from a mapping with optional ``clip``, ``decoder``, ``distill`` and ``loss`` sections."""
        return from_mapping(cls, data, "model")

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (tuples as lists), loadable by `from_dict`."""
        return to_plain(self)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelConfig:
        """The ``model:`` section of a YAML file."""
        return cls.from_dict(load_yaml(path).get("model"))


# The decoder's dataclass lives with the decoder; its ranges are stated here, with the other rules.
_EXTRA_RULES: dict[type, dict[str, dict[str, Any]]] = {
    AggregatorConfig: {
        **{
            k: _rule(lo=0)["rule"]
            for k in (
                "text_guidance_dim",
                "appearance_guidance_dim",
                "decoder_guidance_dims",
                "decoder_guidance_proj_dims",
                "pad_len",
            )
        },
        **{
            k: _rule(lo=1)["rule"]
            for k in (
                "text_guidance_proj_dim",
                "appearance_guidance_proj_dim",
                "decoder_dims",
                "num_layers",
                "num_heads",
                "hidden_dim",
                "pooling_size",
                "feature_resolution",
                "window_size",
                "prompt_channel",
            )
        },
    }
}


# --------------------------------------------------------------------------- data, training, evaluation
def _dataset_names() -> dict[str, Any]:
    from .data import DATASETS

    return DATASETS


def _check_dataset(key: str, name: str) -> None:
    known = _dataset_names()
    if name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX):
        return  # a user folder dataset: RunConfig checks that data.folders defines it
    if name not in known:
        raise ValueError(
            f"{key}={name!r} is not a dataset: expected one of {sorted(known)} or 'folder:<name>' "
            "(your own data, defined under data.folders)"
        )


@dataclass
class FolderDatasetConfig:
    """Your own data: a folder of images, a folder of label maps and the class names.

    Used as the dataset ``folder:<name>`` when defined as ``data.folders.<name>`` (training:
    ``data.train``, evaluation: ``eval.datasets``). Paths are relative to ``data.root`` unless absolute.
    Samples are enumerated from ``label_dir`` (sorted) and paired with the image of the same stem.

    Attributes:
        image_dir: the images (RGB; any size).
        label_dir: single-channel label maps of class ids (8-bit or 16-bit PNG, or TIFF), same size
            as their image.
        classes: a file (one class name per line, in label id order, or a JSON list) or the list of
            names itself; label ``i`` is class ``i``.
        ignore_index: label value of unlabelled pixels.
        image_ext: image suffix.
        label_ext: label suffix.
    """

    image_dir: str
    label_dir: str
    classes: str | tuple[str, ...]
    ignore_index: int = field(default=255, metadata=_rule(lo=0, hi=65535))
    image_ext: str = ".jpg"
    label_ext: str = ".png"


@dataclass
class SyntheticConfig:
    """A synthetic dataset generated into ``data.root`` before training (`ovss.synthetic`).

    Attributes:
        train: images of the training split.
        val: images of each evaluation split.
        seed: generator seed (the data are a pure function of it).
        eval_datasets: registry names of the evaluation splits written.
    """

    train: int = field(default=48, metadata=_rule(lo=1))
    val: int = field(default=12, metadata=_rule(lo=1))
    seed: int = field(default=0, metadata=_rule(lo=0, hi=_SEED_MAX))
    eval_datasets: tuple[str, ...] = ("coco_stuff_val",)

    def __post_init__(self) -> None:
        for name in self.eval_datasets:
            _check_dataset("data.synthetic.eval_datasets", name)


@dataclass
class DataConfig:
    """The training data (CAT-Seg's dataset mapper).

    Attributes:
        root: the datasets root (``$DETECTRON2_DATASETS``).
        train: registry name of the training split (`ovss.data.DATASETS`).
        crop_size: shortest-edge resize and random square crop (384).
        min_size: shortest edge before cropping (``None``: ``crop_size``).
        color_aug: SSD colour jitter.
        flip: random horizontal flip.
        single_category_max_area: CAT-Seg's category-area crop rule (1.0: off).
        num_workers: data-loader processes.
        limit: use only the first ``limit`` training images.
        synthetic: generate a synthetic dataset into ``root`` first (demos, tests).
        class_subset: train ids kept as the vocabulary, train and eval (demos only).
        label_resize: ``"floor"`` (CAT-Seg: floor-index nearest, ``F.interpolate(mode="nearest")``)
            or ``"center"`` (PIL's nearest) for the training labels' resize.
        folders: your own datasets by name (`FolderDatasetConfig`), used as ``folder:<name>``.
    """

    root: str = "datasets"
    train: str = "coco_stuff_train"
    crop_size: int = field(default=384, metadata=_rule(lo=1))
    min_size: int | None = field(default=None, metadata=_rule(lo=1))
    color_aug: bool = True
    flip: bool = True
    single_category_max_area: float = field(default=1.0, metadata=_rule(gt=0.0, hi=1.0))
    num_workers: int = field(default=4, metadata=_rule(lo=0))
    limit: int | None = field(default=None, metadata=_rule(lo=1))
    synthetic: SyntheticConfig | None = None
    class_subset: tuple[int, ...] | None = field(default=None, metadata=_rule(lo=0))
    label_resize: Literal["floor", "center"] = "floor"
    folders: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folders = {
            str(k): v
            if isinstance(v, FolderDatasetConfig)
            else from_mapping(FolderDatasetConfig, v, f"data.folders.{k}")
            for k, v in self.folders.items()
        }
        _check_dataset("data.train", self.train)
        self.check_folder("data.train", self.train)
        if self.class_subset is not None and not self.train.startswith(FOLDER_PREFIX):
            if not self.class_subset or len(set(self.class_subset)) != len(self.class_subset):
                raise ValueError(
                    f"data.class_subset={list(self.class_subset)} must be a non-empty list of distinct train ids"
                )
            n = _dataset_names()[self.train].num_eval_classes
            bad = [c for c in self.class_subset if c >= n]
            if bad:
                raise ValueError(
                    f"data.class_subset holds {bad}, not train ids of {self.train!r} (0..{n - 1})"
                )

    def check_folder(self, key: str, name: str) -> None:
        """A ``folder:<name>`` dataset must be defined under ``folders``."""
        if name.startswith(FOLDER_PREFIX) and name[len(FOLDER_PREFIX) :] not in self.folders:
            raise ValueError(
                f"{key}={name!r}: no data.folders.{name[len(FOLDER_PREFIX) :]} defines it "
                f"(defined: {sorted(self.folders)})"
            )


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


@dataclass
class TrainConfig:
    """The schedule and the run's mechanics.

    Attributes:
        max_iter: iterations (80000).
        batch_size: global batch (split over ``torchrun`` processes).
        seed: seed of the initialisation, the data order and every augmentation.
        grad_clip: full-model gradient-norm clip (CAT-Seg: 0.01); 0 turns it off.
        amp: ``"off"`` (or ``false``; CAT-Seg: fp32), ``"bf16"`` (or ``true``: bf16 autocast on CUDA,
            training and evaluation) or ``"auto"`` (bf16 on CUDA).
        checkpoint_period: save every this many iterations (0: only the final checkpoint).
        keep_checkpoints: periodic checkpoints kept (0: all).
        log_period: log the losses every this many iterations.
        eval_period: evaluate every this many iterations (0: at the end only).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        find_unused_parameters: DDP's flag (the dense last block never uses its query weights).
        progress: report progress (a bar on a terminal, a plain line every 30 s otherwise).
        plots: draw the run's figures at the end (`ovss.plots.make_run_plots`).
    """

    max_iter: int = field(default=80000, metadata=_rule(lo=1))
    batch_size: int = field(default=4, metadata=_rule(lo=1))
    seed: int = field(default=0, metadata=_rule(lo=0, hi=_SEED_MAX))
    grad_clip: float = field(default=0.01, metadata=_rule(lo=0.0))
    amp: bool | Literal["auto", "bf16", "off"] = "off"
    checkpoint_period: int = field(default=5000, metadata=_rule(lo=0))
    keep_checkpoints: int = field(default=2, metadata=_rule(lo=0))
    log_period: int = field(default=20, metadata=_rule(lo=1))
    eval_period: int = field(default=0, metadata=_rule(lo=0))
    device: str = "auto"
    find_unused_parameters: bool = True
    progress: bool = True
    plots: bool = False

    def bf16(self, device_type: str) -> bool:
        """Whether ``amp`` turns bf16 autocast on for a device of this type (``"cuda"``, ``"cpu"``...):
        ``"bf16"`` everywhere, ``"auto"`` on CUDA only, ``"off"`` never."""
        return self.amp == "bf16" or (self.amp == "auto" and device_type == "cuda")

    def __post_init__(self) -> None:
        if isinstance(self.amp, bool):
            self.amp = "bf16" if self.amp else "off"
        if not _DEVICE.match(self.device):
            raise ValueError(
                f"train.device={self.device!r} is not allowed: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
            )


@dataclass
class EvalConfig:
    """Evaluation after (and optionally during) training (`ovss.evaluation`).

    Attributes:
        datasets: registry names evaluated (the six benchmarks).
        mode: ``"sliding"`` (CAT-Seg's protocol) or ``"whole"``.
        limit: evaluate only the first ``limit`` images of each dataset.
        kernel: sliding-window side (384).
        out_res: sliding canvas side (640); at least ``kernel``.
        test_min_size: the test pre-resize's shorter side (CAT-Seg: 640; ``null``: no pre-resize).
        test_max_size: its cap of the longer side (CAT-Seg: 2560).
        size_divisibility: whole-image mode pads to a multiple of this (CAT-Seg: 32).
        pooling_size: class-aggregation pooling at evaluation (CAT-Seg: ``[1, 1]``; ``null``: the
            training pooling ``model.decoder.pooling_size``).
    """

    datasets: tuple[str, ...] = ("ade847", "pc459", "ade150", "pc59", "voc20", "voc20b")
    mode: Literal["sliding", "whole"] = "sliding"
    limit: int | None = field(default=None, metadata=_rule(lo=1))
    kernel: int = field(default=384, metadata=_rule(lo=1))
    out_res: int = field(default=640, metadata=_rule(lo=1))
    test_min_size: int | None = field(default=640, metadata=_rule(lo=1))
    test_max_size: int = field(default=2560, metadata=_rule(lo=1))
    size_divisibility: int = field(default=32, metadata=_rule(lo=1))
    pooling_size: tuple[int, int] | None = field(default=(1, 1), metadata=_rule(lo=1))

    def protocol(self) -> dict[str, Any]:
        """The keyword arguments of `ovss.evaluation.evaluate_dataset` /
        `ovss.evaluation.predict_probabilities` that this section sets (the pooling excepted)."""
        return {
            "mode": self.mode,
            "kernel": self.kernel,
            "out_res": self.out_res,
            "min_size": self.test_min_size,
            "max_size": self.test_max_size,
            "size_divisibility": self.size_divisibility,
        }

    def __post_init__(self) -> None:
        if self.pooling_size is not None:
            self.pooling_size = (int(self.pooling_size[0]), int(self.pooling_size[1]))
        for name in self.datasets:
            _check_dataset("eval.datasets", name)
        if self.kernel > self.out_res:
            raise ValueError(f"eval.kernel={self.kernel} must not exceed eval.out_res={self.out_res}")


@dataclass
class RunConfig:
    """One training run: the five sections and the output folder.

    Example:
        >>> cfg = load_config("examples/ovss/configs/demo.yaml", ["train.max_iter=10"])  # doctest: +SKIP
        >>> cfg.train.max_iter, cfg.model.distill.name  # doctest: +SKIP
        (10, 'infoclip')
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "output/ovss"

    def __post_init__(self) -> None:
        for name in self.eval.datasets:
            self.data.check_folder("eval.datasets", name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunConfig:
        """Build from a nested mapping, checking every key of every section."""
        return from_mapping(cls, data, "")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (what ``config.yaml`` and the checkpoints hold)."""
        return to_plain(self)


# --------------------------------------------------------------------------- files and overrides
def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML configuration file into a dict (an empty file gives ``{}``)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: the top level of a config file must be a mapping; got {type(data).__name__}"
        )
    return data


def _merge(base: dict, over: dict) -> dict:
    """Deep merge; an ``options`` mapping (a distiller's keyword options) replaces the base's whole."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "options":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"config files include each other in a cycle: {[str(p) for p in (*seen, path)]}")
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    bases = [base] if isinstance(base, str) else list(base)
    merged: dict = {}
    for b in bases:
        merged = _merge(merged, _read_with_bases((path.parent / b), (*seen, path)))
    return _merge(merged, data)


_OVERRIDE_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_override(arg: str) -> bool:
    """Whether a command-line argument is a ``key.sub=value`` override (not, say, a file path)."""
    key, eq, _ = arg.partition("=")
    return bool(eq) and bool(_OVERRIDE_KEY.match(key.strip()))


def apply_overrides(config: dict, overrides: Sequence[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested config dict.

    Example:
        >>> apply_overrides({"train": {"max_iter": 10}}, ["train.max_iter=5", "model.distill.name=none"])
        {'train': {'max_iter': 5}, 'model': {'distill': {'name': 'none'}}}
    """
    import yaml

    out = copy.deepcopy(config)
    for item in overrides:
        if not is_override(item):
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return out


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """The run configuration: defaults ← the file (and its ``base:`` files) ← overrides, all checked.

    Raises:
        ValueError: an unknown key, a value of the wrong type, out of range or not allowed, or a
            ``model`` section whose keys do not fit each other or the CLIP architecture
            (`ovss.model_check.check_model_section`); the message names the key, the value and what is
            allowed.
        FileNotFoundError: ``path`` does not exist.
    """
    data = _read_with_bases(Path(path)) if path is not None else {}
    cfg = RunConfig.from_dict(apply_overrides(data, overrides))
    from .model_check import check_model_section

    check_model_section(cfg.model)  # the keys together and against the CLIP architecture
    return cfg


def preset(name: str, *, distill: str = "infoclip", pretrained: str | None = "openai") -> ModelConfig:
    """CAT-Seg's released architectures with InfoCLIP (or another distiller).

    Args:
        name: ``"vitb_384"`` (CLIP ViT-B/16 at 384 px) or ``"vitl_336"`` (CLIP ViT-L/14 at 336 px).
        distill: the distiller (``"none"`` for plain CAT-Seg).
        pretrained: CLIP weights (tag, file, or ``None`` for random init).

    Raises:
        ValueError: unknown preset name.

    Example:
        >>> preset("vitl_336").clip.guidance_layers
        (7, 15)
    """
    dist = DistillConfig.named(distill)
    if name == "vitb_384":
        clip = CLIPConfig("ViT-B-16-quickgelu", pretrained, 384, (3, 7))
        decoder = AggregatorConfig(text_guidance_dim=512, appearance_guidance_dim=512)
    elif name == "vitl_336":
        clip = CLIPConfig("ViT-L-14-336-quickgelu", pretrained, 336, (7, 15))
        decoder = AggregatorConfig(text_guidance_dim=768, appearance_guidance_dim=768)
    else:
        raise ValueError(f"unknown preset {name!r}; choose 'vitb_384' or 'vitl_336'")
    return ModelConfig(clip=clip, decoder=decoder, distill=dist)
