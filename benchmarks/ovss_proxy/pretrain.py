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

With ``pretrain.dense_weight`` $\lambda > 0$ a region-level term is added: the image's dense features
$D_V$ on the segmentor's own dense path (:class:`ovss.clip.DenseCLIP`, CAT-Seg's value-path last block)
are classified patch by patch against the batch's captions,

$$
L_{\text{dense}} = -\frac{1}{|P|}\sum_{(b, p) \in P}\sum_j q_{bpj}\,
\log \operatorname{softmax}_j\big(s \cos(D_V[b, p], \hat T_j)\big),
$$

$q_{bpj}$ the share of caption $j$'s class (the main class or the minor rectangle's) in the *cell* of
``dense_cell`` × ``dense_cell`` patches around patch $p$ of image $b$ (one patch: the exact target; a larger
cell: a coarse, region-level target that says which classes are near, not where the boundary runs), $P$
the patches with a target; the loss is $L + \lambda L_{\text{dense}}$. The batch holds every pretraining
class once, so every minor class has its caption.

The weights are cached as ``clip-<hash>-s<seed>.pt``, the hash covering the world, the architecture
and the pretraining settings; the file is written to a temporary name and renamed into place, and
verified when read (a corrupt or truncated file, one missing a field or written under other settings
is refused with an error naming it).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from ovss.clip import DenseCLIP
from ovss.config import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD  # the segmentor's own pixel statistics

from .config import CLIPArch, ProxyConfig, config_hash
from .records import CacheError, verified, write_bytes_atomic
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
        write_bytes_atomic(path, json.dumps(arch.open_clip_config(), indent=1).encode())
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


def pretrain_sample(
    name: str, config: ProxyConfig, rng: np.random.Generator, others: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """One pretraining image of class ``name`` and where its minor region is (module docstring).

    Returns:
        ``(image (S, S, 3) uint8, minor (S, S) bool, minor class name or None)``.
    """
    world, s = config.world, config.arch.image_size
    scale = rng.uniform(*config.pretrain.scale)
    image = render_class(name, (s, s), world, rng, scale=scale)
    minor = np.zeros((s, s), dtype=bool)
    other = None
    if others and rng.uniform() < config.pretrain.minor_region:
        other = others[int(rng.integers(len(others)))]
        if other != name:
            h, w = (int(rng.integers(s // 4, s // 2 + 1)) for _ in range(2))
            y, x = int(rng.integers(0, s - h + 1)), int(rng.integers(0, s - w + 1))
            patch = render_class(other, (s, s), world, rng, scale=scale)
            image[y : y + h, x : x + w] = patch[y : y + h, x : x + w]
            minor[y : y + h, x : x + w] = True
        else:
            other = None
    image += rng.normal(0.0, world.noise, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), minor, other


def pretrain_image(
    name: str, config: ProxyConfig, rng: np.random.Generator, others: tuple[str, ...]
) -> np.ndarray:
    """One ``(S, S, 3)`` uint8 pretraining image of class ``name`` (module docstring)."""
    return pretrain_sample(name, config, rng, others)[0]


def patch_targets(
    main: list[int],
    minor: list[np.ndarray],
    minor_ids: list[int | None],
    classes: int,
    patch: int,
    cell: int = 1,
) -> torch.Tensor:
    """Soft per-patch class targets ``(B, classes, S/p, S/p)``: the share of each class in each patch's cell.

    ``main[b]`` / ``minor_ids[b]`` index the captions of the batch; a minor class that has no caption in
    the batch (``None``) leaves its pixels without a target (the patch's row is renormalised over the
    rest, or is all zero when nothing is left, which :func:`dense_alignment_loss` skips). ``cell > 1``
    gives every patch the shares of its ``cell × cell`` block of patches (a coarse target).

    Raises:
        ValueError: ``cell`` does not divide the patch grid.
    """
    b, (s, _) = len(main), minor[0].shape
    onehot = torch.zeros(b, classes, s, s)
    for i in range(b):
        m = torch.from_numpy(minor[i])
        onehot[i, main[i]] = (~m).float()
        if minor_ids[i] is not None:
            onehot[i, minor_ids[i]] += m.float()
    grid = s // patch
    if cell < 1 or grid % cell:
        raise ValueError(f"dense_cell must be a positive divisor of the {grid}x{grid} patch grid; got {cell}")
    coarse = F.avg_pool2d(onehot, patch * cell)
    return F.interpolate(coarse, scale_factor=cell, mode="nearest") if cell > 1 else coarse


def dense_alignment_loss(
    dense: torch.Tensor, text: torch.Tensor, targets: torch.Tensor, scale
) -> torch.Tensor:
    r"""Per-patch cross-entropy of $s\cos(D_V, \hat T)$ against soft class shares (patches with a target)."""
    logits = scale * torch.einsum("bdhw,td->bthw", F.normalize(dense, dim=1), text)
    mass = targets.sum(1)
    keep = mass > 0
    p = targets / mass.clamp_min(1e-12).unsqueeze(1)
    nll = -(p * F.log_softmax(logits, dim=1)).sum(1)
    return nll[keep].mean()


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
    dense_clip = DenseCLIP(model, tokenizer)  # the segmentor's dense path over the same weights
    for step in range(pcfg.steps):
        picked = [names[int(i)] for i in rng.permutation(len(names))[: pcfg.batch]]
        samples = [pretrain_sample(n, config, rng, names) for n in picked]
        images = normalize_images(_to_tensor([x[0] for x in samples]))
        captions = [CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))].format(n) for n in picked]
        if pcfg.dense_weight > 0:
            feats = dense_clip.encode_image_dense(images, return_global=True)
            img = F.normalize(feats.global_embedding, dim=-1)
        else:
            img = F.normalize(model.encode_image(images), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * img @ txt.T
        target = torch.arange(len(picked))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        if pcfg.dense_weight > 0:
            minor_ids = [picked.index(o) if o in picked else None for _, _, o in samples]
            targets = patch_targets(
                list(range(len(picked))),
                [x[1] for x in samples],
                minor_ids,
                len(picked),
                config.arch.patch_size,
                pcfg.dense_cell,
            )
            loss = loss + pcfg.dense_weight * dense_alignment_loss(feats.dense, txt, targets, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(pcfg.steps // 6, 1) == 0 or step + 1 == pcfg.steps:
            log(f"  pretrain seed {seed}: step {step + 1}/{pcfg.steps} loss {loss.item():.3f}")
    seconds = time.perf_counter() - start
    zero_shot = zero_shot_accuracy(model, tokenizer, config, seed)
    return {"state_dict": model.state_dict(), "zero_shot": zero_shot, "seconds": seconds}


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


#: Fields every cached CLIP file must hold.
CLIP_FIELDS: tuple[str, ...] = ("config_hash", "state_dict", "zero_shot", "seconds")


def read_clip_cache(path: Path, key: str) -> dict[str, Any]:
    """A cached CLIP file, verified: readable, every field of :data:`CLIP_FIELDS`, written under ``key``.

    Raises:
        CacheError: the file is corrupt or truncated, lacks a field, or was written under other settings
            (the message names the file and says to delete it).
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged archive
        raise CacheError(
            f"{path} is corrupt or truncated ({type(exc).__name__}: {exc}); delete it and rerun"
        ) from None
    return verified(
        path,
        data,
        key,
        CLIP_FIELDS,
        what="a CLIP record",
        redo="delete it and rerun",
        elsewhere="delete it or use another --cache-dir",
    )


def load_or_pretrain(config: ProxyConfig, seed: int, cache_dir: str | Path, *, log=print) -> dict[str, Any]:
    """The cached pretrained CLIP of ``config`` and ``seed``, pretraining (and caching) it if absent.

    Returns:
        ``{"state_dict", "zero_shot", "seconds", "config_hash", "cached"}``.
    """
    path = clip_cache_path(config, seed, cache_dir)
    key = pretraining_key(config)
    if path.is_file():
        data = read_clip_cache(path, key)
        data["cached"] = True
        return data
    log(f"pretraining the tiny CLIP for seed {seed} ({config.pretrain.steps} steps) -> {path}")
    data = pretrain_clip(config, seed, cache_dir, log=log)
    data["config_hash"] = key
    buf = io.BytesIO()
    torch.save(data, buf)
    write_bytes_atomic(path, buf.getvalue())
    data["cached"] = False
    return data
