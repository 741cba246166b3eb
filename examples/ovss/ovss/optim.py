r"""AdamW parameter groups as CAT-Seg's ``Trainer.build_optimizer`` (``train_net.py``) sets them.

Every trainable parameter gets the base learning rate (2e-4) and weight decay (1e-4), except:

- parameters of the CLIP model: learning rate × ``clip_multiplier`` (0.01, so 2e-6);
- parameters of normalisation layers (LayerNorm, GroupNorm, BatchNorm, ...): ``weight_decay_norm``
  (detectron2's default 0);
- ``nn.Embedding`` weights: ``weight_decay_embed`` (0; CLIP's token embedding, frozen anyway).

A trainable parameter that gets no gradient in a step (the dense last block's query weight: the dense
path uses only the value projection) is given a zero gradient before the step when
``decay_without_grad`` is on (`fill_missing_grads_`): CAT-Seg's dense path multiplies it into an
output it then drops, so it gets a zero gradient there, and AdamW decays it by $(1 - \eta\lambda)$ per
step (its Adam update is $0/(0+\epsilon) = 0$); without a gradient AdamW would skip it.

The decoder (CAT-Seg's aggregator and guidance upsampling) and InfoCLIP's LPAM train at the base rate
(the paper trains its "distillation module" at the decoder's 2e-4). Frozen parameters (CLIP's keys,
biases and everything but the Q/V weights; the whole teacher) are left out, so no optimizer state or
weight decay ever touches them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import OptimConfig

__all__ = ["NORM_TYPES", "build_optimizer", "fill_missing_grads_", "param_groups"]

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def _component(module_name: str) -> str:
    head = module_name.split(".", 1)[0]
    if head == "clip":
        return "clip"
    if head == "distiller":
        return "distiller"
    return "decoder"


def param_groups(model: nn.Module, config: OptimConfig | None = None) -> list[dict[str, Any]]:
    """Optimizer parameter groups of an `ovss.model.OVSSModel` (CAT-Seg's rules, see module doc).

    Args:
        model: the segmentor (its submodules ``clip``, ``teacher``, ``distiller``, the rest = decoder).
        config: learning rates and weight decays (defaults: CAT-Seg's).

    Returns:
        A list of ``{"params", "lr", "weight_decay", "name"}`` dicts, one per (component, decay) pair
        that has parameters; names such as ``"clip"``, ``"decoder"``, ``"decoder.no_decay"``,
        ``"distiller"``.
    """
    cfg = config or OptimConfig()
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        if module_name.split(".", 1)[0] == "teacher":
            continue
        for _, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            component = _component(module_name)
            lr = cfg.base_lr * (cfg.clip_multiplier if component == "clip" else 1.0)
            decay = cfg.weight_decay
            if isinstance(module, NORM_TYPES):
                decay = cfg.weight_decay_norm
            if isinstance(module, nn.Embedding):
                decay = cfg.weight_decay_embed
            key = (component, decay)
            if key not in groups:
                name = component if decay == cfg.weight_decay else f"{component}.no_decay"
                groups[key] = {"params": [], "lr": lr, "weight_decay": decay, "name": name}
            groups[key]["params"].append(param)
    return list(groups.values())


def build_optimizer(model: nn.Module, config: OptimConfig | None = None) -> torch.optim.AdamW:
    """AdamW over `param_groups` (CAT-Seg's solver: ``ADAMW``)."""
    cfg = config or OptimConfig()
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.base_lr, weight_decay=cfg.weight_decay)


def fill_missing_grads_(optimizer: torch.optim.Optimizer) -> int:
    """Give every parameter of ``optimizer`` whose ``grad`` is ``None`` a zero gradient (in place).

    Call it between ``backward()`` and ``step()``: AdamW then applies its weight decay to those
    parameters too, as CAT-Seg's (see the module docstring). Returns how many gradients were filled.
    """
    filled = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
                filled += 1
    return filled
