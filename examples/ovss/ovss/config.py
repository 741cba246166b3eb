"""Configuration of the OVSS model and its optimizer, with CAT-Seg's ViT-B/16-384 and ViT-L/14-336 presets.

A YAML file holds a ``model:`` section (``clip``, ``decoder``, ``distill``, ``loss``) and an
``optim:`` section; other top-level sections (data, schedule, ...) belong to the trainer and are
left alone. Unknown keys inside these sections raise an error (a typo would otherwise be ignored).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aggregator import AggregatorConfig
from .templates import get_templates

__all__ = [
    "CLIPConfig",
    "DistillConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "load_yaml",
    "preset",
]

DISTILL_NAMES = ("none", "infoclip", "kl", "maft", "maftplus")

#: CAT-Seg's CLIP pixel statistics (0-255 scale; ``MODEL.CLIP_PIXEL_MEAN`` / ``CLIP_PIXEL_STD``).
CLIP_PIXEL_MEAN = (122.7709383, 116.7460125, 104.09373615)
CLIP_PIXEL_STD = (68.5005327, 66.6321579, 70.3231630)


def _from_mapping(cls: type, data: Mapping[str, Any] | None, section: str) -> Any:
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in config section {section!r}; known: {sorted(names)}")
    return cls(**data)


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
    image_size: int = 384
    guidance_layers: tuple[int, ...] = (3, 7)
    templates: str | tuple[str, ...] = "single"
    finetune: str = "qv"

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
        name: ``"none"`` (plain CAT-Seg: no teacher is built), ``"infoclip"``, ``"kl"``, ``"maft"`` or
            ``"maftplus"`` (:func:`infoclip.make_distiller`).
        options: keyword options of that distiller (``lambda_compress``, ``lambda_distill``, ``alpha``,
            ``gram_over`` for InfoCLIP; ``weight``, ... for the baselines).
        teacher_dtype: ``"float32"`` or ``"bfloat16"`` (halves the teacher's memory on a GPU).
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
    teacher_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.name not in DISTILL_NAMES:
            raise ValueError(f"distill.name must be one of {DISTILL_NAMES}; got {self.name!r}")
        if self.teacher_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                f"distill.teacher_dtype must be float32, bfloat16 or float16; got {self.teacher_dtype!r}"
            )
        self.options = dict(self.options or {})


@dataclass
class LossConfig:
    """The task loss (:func:`ovss.losses.segmentation_bce_loss`)."""

    ignore_index: int = 255
    ignore_mode: str = "zero"


@dataclass
class OptimConfig:
    """AdamW parameter groups as CAT-Seg's ``build_optimizer`` (:func:`ovss.optim.param_groups`).

    Attributes:
        base_lr: decoder (and LPAM) learning rate.
        clip_multiplier: CLIP's learning rate is ``base_lr * clip_multiplier`` (2e-6).
        weight_decay: weight decay of every other parameter (1e-4).
        weight_decay_norm: of normalisation layers' parameters (detectron2's default 0).
        weight_decay_embed: of ``nn.Embedding`` weights (CAT-Seg: 0).
    """

    base_lr: float = 2e-4
    clip_multiplier: float = 0.01
    weight_decay: float = 1e-4
    weight_decay_norm: float = 0.0
    weight_decay_embed: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> OptimConfig:
        """Build from a mapping, rejecting unknown keys."""
        return _from_mapping(cls, data, "optim")


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
        data = dict(data or {})
        unknown = sorted(set(data) - {"clip", "decoder", "distill", "loss"})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in config section 'model'")
        return cls(
            clip=_from_mapping(CLIPConfig, data.get("clip"), "model.clip"),
            decoder=_from_mapping(AggregatorConfig, data.get("decoder"), "model.decoder"),
            distill=_from_mapping(DistillConfig, data.get("distill"), "model.distill"),
            loss=_from_mapping(LossConfig, data.get("loss"), "model.loss"),
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (tuples as lists), loadable by :meth:`from_dict`."""

        def plain(x: Any) -> Any:
            if isinstance(x, tuple | list):
                return [plain(v) for v in x]
            if isinstance(x, dict):
                return {k: plain(v) for k, v in x.items()}
            return x

        return plain(dataclasses.asdict(self))

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelConfig:
        """The ``model:`` section of a YAML file."""
        return cls.from_dict(load_yaml(path).get("model"))


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
    options = DistillConfig().options if distill == "infoclip" else {}
    dist = DistillConfig(name=distill, options=options)
    if name == "vitb_384":
        clip = CLIPConfig("ViT-B-16-quickgelu", pretrained, 384, (3, 7))
        decoder = AggregatorConfig(text_guidance_dim=512, appearance_guidance_dim=512)
    elif name == "vitl_336":
        clip = CLIPConfig("ViT-L-14-336-quickgelu", pretrained, 336, (7, 15))
        decoder = AggregatorConfig(text_guidance_dim=768, appearance_guidance_dim=768)
    else:
        raise ValueError(f"unknown preset {name!r}; choose 'vitb_384' or 'vitl_336'")
    return ModelConfig(clip=clip, decoder=decoder, distill=dist)
