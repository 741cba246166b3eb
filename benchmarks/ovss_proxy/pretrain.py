r"""The tiny CLIP: an open_clip custom architecture pretrained contrastively on the world, cached on disk.

Every step pictures ``batch`` *distinct* classes of the pretraining vocabulary (seen + unseen; the
held-out classes are never pictured), one image and one caption each, and minimises CLIP's symmetric
InfoNCE

$$
L = \tfrac12\big(\mathrm{CE}(s\,\hat I \hat T^\top, \mathrm{id}) + \mathrm{CE}(s\,\hat T \hat I^\top, \mathrm{id})\big)
$$

($\hat I, \hat T$ the L2-normalised image and caption embeddings, $s$ CLIP's learned logit scale,
capped at 100). An image is one class's texture filling the frame at a random scale, half of the time
with a minor rectangle of another class (the caption names the main class), plus noise; a caption is
one of a few templates around the class name (including the segmentor's own prompt).

The weights are cached as ``clip-<hash>-s<seed>.pt``, the hash covering the world, the architecture
and the pretraining settings; the file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from ovss.config import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD  # the segmentor's own pixel statistics

from .config import CLIPArch, ProxyConfig, config_hash
from .world import render_class

__all__ = [
    "CAPTION_TEMPLATES",
    "SEGMENTOR_TEMPLATE",
    "build_clip",
    "load_or_pretrain",
    "pretrain_image",
    "zero_shot_accuracy",
]

#: The prompt of the segmentor's ``"single"`` templates (CAT-Seg's released configs).
SEGMENTOR_TEMPLATE = "A photo of a {} in the scene."
CAPTION_TEMPLATES = (SEGMENTOR_TEMPLATE, "a photo of a {}.", "a {} texture.", "a {} pattern.", "{}.")


def register_arch(arch: CLIPArch, cache_dir: str | Path) -> str:
    """Register ``arch`` as an open_clip model config (idempotent) and return its model name."""
    name = f"ovss-proxy-{config_hash(arch)}"
    if name not in open_clip.list_models():
        path = Path(cache_dir) / "model_configs" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(path, json.dumps(arch.open_clip_config(), indent=1).encode())
        open_clip.add_model_config(path)
    return name


def build_clip(arch: CLIPArch, cache_dir: str | Path) -> tuple[torch.nn.Module, Any, str]:
    """A randomly initialised open_clip model of ``arch``, its tokenizer and its model name."""
    name = register_arch(arch, cache_dir)
    model = open_clip.create_model(name, pretrained=None)
    return model, open_clip.get_tokenizer(name), name


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` 0-255 RGB → CLIP-normalised (the segmentor's ``preprocess`` statistics)."""
    mean = torch.tensor(CLIP_PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_PIXEL_STD).view(1, 3, 1, 1)
    return (images.float() - mean) / std


def pretrain_image(
    name: str, config: ProxyConfig, rng: np.random.Generator, others: tuple[str, ...]
) -> np.ndarray:
    """One ``(S, S, 3)`` uint8 pretraining image of class ``name`` (module docstring)."""
    world, s = config.world, config.arch.image_size
    scale = rng.uniform(*config.pretrain.scale)
    image = render_class(name, (s, s), world, rng, scale=scale)
    if others and rng.uniform() < config.pretrain.minor_region:
        other = others[int(rng.integers(len(others)))]
        if other != name:
            h, w = (int(rng.integers(s // 4, s // 2 + 1)) for _ in range(2))
            y, x = int(rng.integers(0, s - h + 1)), int(rng.integers(0, s - w + 1))
            patch = render_class(other, (s, s), world, rng, scale=scale)
            image[y : y + h, x : x + w] = patch[y : y + h, x : x + w]
    image += rng.normal(0.0, world.noise, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def _cosine_lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


@torch.no_grad()
def zero_shot_accuracy(
    model: torch.nn.Module, tokenizer: Any, config: ProxyConfig, seed: int
) -> dict[str, Any]:
    """Zero-shot classification accuracy (%) of fresh images of every class, by class group.

    Each image is classified among *all* vocabulary names with the segmentor's prompt
    (``"all"``), and among the names of its own group only (``"within_group"``); groups: ``seen``,
    ``unseen`` (pictured in pretraining, never in fine-tuning), ``held_out`` (never pictured).
    """
    world = config.world
    vocab = world.vocabulary
    model.eval()
    text = F.normalize(model.encode_text(tokenizer([SEGMENTOR_TEMPLATE.format(n) for n in vocab])), dim=-1)
    rng = np.random.default_rng([seed, 99])
    out: dict[str, Any] = {"chance_all": 100.0 / len(vocab)}
    for group, names in (("seen", world.seen), ("unseen", world.unseen), ("held_out", world.held_out)):
        images = [
            pretrain_image(n, config, rng, ()) for n in names for _ in range(config.pretrain.eval_images)
        ]
        labels = torch.tensor([vocab.index(n) for n in names for _ in range(config.pretrain.eval_images)])
        img = F.normalize(model.encode_image(normalize_images(_to_tensor(images))), dim=-1)
        sim = img @ text.T
        ids = torch.tensor([vocab.index(n) for n in names])
        within = ids[sim[:, ids].argmax(1)]
        out[group] = {
            "all": float((sim.argmax(1) == labels).float().mean() * 100),
            "within_group": float((within == labels).float().mean() * 100),
            "chance_within_group": 100.0 / len(names),
        }
    return out


def pretrain_clip(config: ProxyConfig, seed: int, cache_dir: str | Path, *, log=print) -> dict[str, Any]:
    """Pretrain the tiny CLIP of ``config`` from ``seed``; returns ``{"state_dict", "zero_shot", ...}``."""
    pcfg = config.pretrain
    torch.manual_seed(seed)
    model, tokenizer, _ = build_clip(config.arch, cache_dir)
    names = pretraining_classes(config)
    if pcfg.batch > len(names):
        raise ValueError(f"pretrain.batch={pcfg.batch} exceeds the {len(names)} pretraining classes")
    opt = torch.optim.AdamW(model.parameters(), lr=pcfg.lr, weight_decay=pcfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine_lr(s, pcfg.steps, pcfg.warmup))
    rng = np.random.default_rng([seed, 1])
    start = time.perf_counter()
    model.train()
    for step in range(pcfg.steps):
        picked = [names[int(i)] for i in rng.permutation(len(names))[: pcfg.batch]]
        images = _to_tensor([pretrain_image(n, config, rng, names) for n in picked])
        captions = [CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))].format(n) for n in picked]
        img = F.normalize(model.encode_image(normalize_images(images)), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        target = torch.arange(len(picked))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(pcfg.steps // 6, 1) == 0 or step + 1 == pcfg.steps:
            log(f"  pretrain seed {seed}: step {step + 1}/{pcfg.steps} loss {loss.item():.3f}")
    seconds = time.perf_counter() - start
    zero_shot = zero_shot_accuracy(model, tokenizer, config, seed)
    return {"state_dict": model.state_dict(), "zero_shot": zero_shot, "seconds": seconds}


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pretraining_classes(config: ProxyConfig) -> tuple[str, ...]:
    """The classes pictured in pretraining: the vocabulary minus the held-out classes, in vocabulary order."""
    return tuple(n for n in config.world.vocabulary if n not in config.world.held_out)


def pretraining_key(config: ProxyConfig) -> str:
    """Hash of what pretraining depends on: the world's classes and rendering, the architecture, the schedule.

    The seen / unseen split and the scene settings (image size, counts, regions) only shape the
    segmentation data and are left out: pretraining pictures every class but the held-out ones.
    """
    world = dataclasses.replace(
        config.world, seen=(), unseen=(), image_size=0, num_train=0, num_val=0, regions=(0, 0)
    )
    return config_hash(world, config.arch, config.pretrain)


def clip_cache_path(config: ProxyConfig, seed: int, cache_dir: str | Path) -> Path:
    """``<cache_dir>/clip-<pretraining_key>-s<seed>.pt``."""
    return Path(cache_dir) / f"clip-{pretraining_key(config)}-s{seed}.pt"


def load_or_pretrain(config: ProxyConfig, seed: int, cache_dir: str | Path, *, log=print) -> dict[str, Any]:
    """The cached pretrained CLIP of ``config`` and ``seed``, pretraining (and caching) it if absent.

    Returns:
        ``{"state_dict", "zero_shot", "seconds", "config_hash", "cached"}``.
    """
    path = clip_cache_path(config, seed, cache_dir)
    key = pretraining_key(config)
    if path.is_file():
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("config_hash") != key:
            raise RuntimeError(
                f"{path} was written for another config ({data.get('config_hash')} != {key}); delete it"
            )
        data["cached"] = True
        return data
    log(f"pretraining the tiny CLIP for seed {seed} ({config.pretrain.steps} steps) -> {path}")
    data = pretrain_clip(config, seed, cache_dir, log=log)
    data["config_hash"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(data, buf)
    _atomic_write_bytes(path, buf.getvalue())
    data["cached"] = False
    return data
