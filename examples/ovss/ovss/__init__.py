"""ovss: the reference open-vocabulary semantic segmentor of the InfoCLIP paper.

Dense CLIP (open_clip, Q/V fine-tuning) + CAT-Seg's cost-aggregation decoder + InfoCLIP distillation
from a frozen copy of the pretrained CLIP. Install with ``pip install -e ".[ovss]" -e examples/ovss``
(from the repository root); the scripts next to this package also run uninstalled.
"""

from __future__ import annotations

from .aggregator import Aggregator, AggregatorConfig
from .clip import DenseCLIP, DenseImageFeatures, create_clip, merge_qkv_state_dict, set_trainable_, split_qkv_
from .config import CLIPConfig, DistillConfig, LossConfig, ModelConfig, OptimConfig, load_yaml, preset
from .losses import segmentation_bce_loss
from .model import OVSSModel, OVSSOutput
from .optim import build_optimizer, param_groups
from .templates import IMAGENET_TEMPLATES, SINGLE_TEMPLATES, first_synonym, format_prompts, get_templates

__all__ = [
    "IMAGENET_TEMPLATES",
    "SINGLE_TEMPLATES",
    "Aggregator",
    "AggregatorConfig",
    "CLIPConfig",
    "DenseCLIP",
    "DenseImageFeatures",
    "DistillConfig",
    "LossConfig",
    "ModelConfig",
    "OVSSModel",
    "OVSSOutput",
    "OptimConfig",
    "build_optimizer",
    "create_clip",
    "first_synonym",
    "format_prompts",
    "get_templates",
    "load_yaml",
    "merge_qkv_state_dict",
    "param_groups",
    "preset",
    "segmentation_bce_loss",
    "set_trainable_",
    "split_qkv_",
]
