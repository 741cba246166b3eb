r"""One fine-tuning run: the project's OVSS segmentor from the pretrained tiny CLIP, on seen classes only.

The segmentor is :class:`ovss.OVSSModel` (dense CLIP + CAT-Seg's aggregator + a distiller from
:mod:`infoclip`), its student CLIP and frozen teacher both initialised from the pretrained CLIP. The
loop is CAT-Seg's recipe scaled down: AdamW over :func:`ovss.build_optimizer`'s parameter groups
(decoder and LPAM at ``base_lr``, CLIP's Q/V weights at ``base_lr * clip_multiplier``, everything
else of CLIP frozen), a cosine schedule, full-model gradient-norm clipping, random crops and flips;
the loss is the segmentor's own (BCE task loss + the distiller's terms). Evaluation is
:func:`ovss.evaluation.evaluate_dataset`'s sliding window (scaled to the tiny resolution) on the
unseen-class and the seen-class scenes, every ``eval_every`` steps (the forgetting curve) and at the end.

Besides the segmentor's mIoU, a run records the *CLIP's own* dense zero-shot mIoU after fine-tuning
(:class:`DenseZeroShot`: arg-max of the cosine between dense features and class embeddings, no
decoder): the pixel-text alignment that distillation is meant to preserve.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from ovss.evaluation import evaluate_dataset
from torch import nn

from ovss import (
    AggregatorConfig,
    CLIPConfig,
    DistillConfig,
    ModelConfig,
    OptimConfig,
    OVSSModel,
    build_optimizer,
)

from .config import FROZEN_CLIP, VARIANTS, ProxyConfig
from .pretrain import register_arch
from .world import load_split

__all__ = ["DenseZeroShot", "build_segmentor", "evaluate", "run_variant"]


def variant_definition(variant: str) -> tuple[str, dict[str, Any], str]:
    """``(distiller name, options, CLIP fine-tuning mode)`` of a variant name (or ``"frozen_clip"``)."""
    if variant == "frozen_clip":
        return FROZEN_CLIP
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {['frozen_clip', *VARIANTS]}")
    return VARIANTS[variant]


def build_segmentor(
    config: ProxyConfig, variant: str, clip_state: dict[str, torch.Tensor], cache_dir
) -> OVSSModel:
    """The segmentor of ``variant`` with student (and teacher) CLIP loaded from ``clip_state``."""
    arch, ft = config.arch, config.finetune
    distill, options, finetune = variant_definition(variant)
    name = register_arch(arch, cache_dir)
    clip = open_clip.create_model(name, pretrained=None)
    clip.load_state_dict(clip_state)
    grid = arch.image_size // arch.patch_size
    d, h = arch.embed_dim, ft.hidden_dim
    model_config = ModelConfig(
        clip=CLIPConfig(name, None, arch.image_size, (0, 1), "single", finetune),
        decoder=AggregatorConfig(
            text_guidance_dim=d,
            text_guidance_proj_dim=h // 2,
            appearance_guidance_dim=d,
            appearance_guidance_proj_dim=h // 2,
            decoder_dims=(16, 16),
            decoder_guidance_dims=(16, 8),
            decoder_guidance_proj_dims=(8, 4),
            num_layers=2,
            num_heads=2,
            hidden_dim=h,
            pooling_size=(2, 2),
            feature_resolution=(grid, grid),
            window_size=grid // 2,
            pad_len=0,
        ),
        distill=DistillConfig(name=distill, options=dict(options)),
    )
    return OVSSModel(model_config, clip=clip, tokenizer=open_clip.get_tokenizer(name))


class DenseZeroShot(nn.Module):
    """A segmentor's CLIP alone: logits ``s · cos(D_V, t_c)`` of dense features and class embeddings."""

    def __init__(self, model: OVSSModel, logit_scale: float = 50.0) -> None:
        super().__init__()
        self.model = model
        self.logit_scale = logit_scale

    def forward(self, images: torch.Tensor, class_names) -> SimpleNamespace:
        dense = self.model.clip.encode_image_dense(self.model.preprocess(images)).dense
        text = F.normalize(self.model.class_embeddings(class_names).mean(1), dim=-1)
        logits = self.logit_scale * torch.einsum("bdhw,td->bthw", F.normalize(dense, dim=1), text)
        return SimpleNamespace(logits=logits)


def evaluate(model: nn.Module, datasets: dict[str, Any], config: ProxyConfig) -> dict[str, float]:
    """Sliding-window mIoU (%) of ``model`` on each dataset by name."""
    ft = config.finetune
    return {
        name: float(evaluate_dataset(model, ds, mode="sliding", kernel=ft.kernel, out_res=ft.out_res)["mIoU"])
        for name, ds in datasets.items()
    }


def _crop_flip(size: int):
    def transform(image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        h, w = label.shape
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        image, label = image[y : y + size, x : x + size], label[y : y + size, x : x + size]
        if rng.integers(2):
            image, label = image[:, ::-1], label[:, ::-1]
        return image, label

    return transform


def run_variant(
    config: ProxyConfig,
    variant: str,
    seed: int,
    world_root,
    clip_state: dict[str, torch.Tensor],
    cache_dir,
    *,
    log=print,
) -> dict[str, Any]:
    """Fine-tune ``variant`` from ``seed`` and evaluate it.

    Returns:
        ``{"seen", "unseen"}`` final mIoU (%), ``"curve"`` (``[{"step", "seen", "unseen"}, ...]``),
        ``"clip_zero_shot"`` (the fine-tuned CLIP's dense zero-shot mIoU, seen / unseen),
        ``"losses"`` (mean of each logged term over the last 10% of steps) and ``"seconds"``.
    """
    ft, world = config.finetune, config.world
    torch.manual_seed(seed * 1000 + 17)
    model = build_segmentor(config, variant, clip_state, cache_dir)
    opt = build_optimizer(
        model,
        OptimConfig(base_lr=ft.base_lr, clip_multiplier=ft.clip_multiplier, weight_decay=ft.weight_decay),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / ft.steps)))
    params = [p for g in opt.param_groups for p in g["params"]]
    train = load_split(world_root, "train", world, transform=_crop_flip(ft.crop))
    evals = {
        "unseen": load_split(world_root, "val_unseen", world),
        "seen": load_split(world_root, "val_seen", world),
    }
    seen_names = list(world.seen)
    rng = np.random.default_rng([seed, 2])
    curve: list[dict[str, float]] = []
    tail: dict[str, list[float]] = {}
    start = time.perf_counter()
    model.train()
    for step in range(ft.steps):
        keys = [(int(i), int(rng.integers(2**31))) for i in rng.integers(0, len(train), size=ft.batch)]
        samples = [train[k] for k in keys]
        images = torch.stack([s["image"] for s in samples]).float()
        labels = torch.stack([s["label"] for s in samples])
        out = model(images, seen_names, labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, ft.grad_clip)
        opt.step()
        sched.step()
        if not math.isfinite(out.loss.item()):
            raise FloatingPointError(f"{variant} seed {seed}: non-finite loss at step {step}: {out.losses}")
        if step >= ft.steps - max(ft.steps // 10, 1):
            for k, v in out.losses.items():
                tail.setdefault(k, []).append(float(v.detach()) if torch.is_tensor(v) else float(v))
        if (step + 1) % ft.eval_every == 0 or step + 1 == ft.steps:
            point = {"step": step + 1, **evaluate(model, evals, config)}
            curve.append(point)
            model.train()
            log(
                f"    {variant} seed {seed} step {step + 1}/{ft.steps}: unseen {point['unseen']:.1f} seen {point['seen']:.1f}"
            )
    seconds = time.perf_counter() - start
    final = curve[-1]
    clip_zero_shot = evaluate(DenseZeroShot(model), evals, config)
    return {
        "seen": final["seen"],
        "unseen": final["unseen"],
        "curve": curve,
        "clip_zero_shot": clip_zero_shot,
        "losses": {k: float(np.mean(v)) for k, v in tail.items()},
        "seconds": seconds,
    }
