r"""One fine-tuning run: the project's OVSS segmentor from the pretrained tiny CLIP, on seen classes only.

The segmentor is :class:`ovss.OVSSModel` (dense CLIP + CAT-Seg's aggregator + a distiller from
:mod:`infoclip`), its student CLIP and frozen teacher both initialised from the pretrained CLIP. The
loop is CAT-Seg's recipe scaled down: AdamW over :func:`ovss.build_optimizer`'s parameter groups
(decoder and LPAM at ``base_lr``, CLIP's Q/V weights at ``base_lr * clip_multiplier``, the paper's 100×
ratio, everything else of CLIP frozen), a cosine schedule, full-model gradient-norm clipping, random
crops and flips; the loss is the segmentor's own (BCE task loss + the distiller's terms).

Evaluation (:func:`evaluate`) offers the **whole vocabulary** on scenes that mix seen and unseen regions
and reads one confusion matrix over all classes (:func:`vocabulary_metrics`): unseen mIoU (mean IoU of
the unseen classes), seen mIoU, their harmonic mean, and the *seen-sibling confusion* (the share of
unseen-class pixels predicted as a seen class of the same colour: the miniature of the paper's Fig. 3).
The same is measured for the student *CLIP alone* (:class:`DenseZeroShot`: arg-max of the cosine between
dense features and class embeddings, no decoder), the pixel-text alignment distillation is meant to
preserve. A run's score is the mean of its last ``last_k`` evaluations.

The mechanism is logged too: every ``grad_every`` steps the gradient norm of each loss term on the
student CLIP's trainable weights and on the distiller's (LPAM's) parameters, and at every evaluation the
relative drift of CLIP's Q/V weights, $\lVert W - W_0\rVert_F / \lVert W_0\rVert_F$ over all of them.
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
from ovss.evaluation import eval_pooling, sliding_window_probabilities
from torch import nn

from infoclip import DistillationOutput, Distiller
from ovss import (
    AggregatorConfig,
    CLIPConfig,
    DistillConfig,
    ModelConfig,
    OptimConfig,
    OVSSModel,
    build_optimizer,
)

from .config import FROZEN_CLIP, VARIANTS, ProxyConfig, Variant, WorldConfig
from .pretrain import register_arch
from .world import load_split

__all__ = [
    "DenseZeroShot",
    "ShuffledTeacher",
    "build_segmentor",
    "derangement",
    "evaluate",
    "run_variant",
    "vocabulary_metrics",
]

#: The metrics of one evaluation (and of a run's score), in the order the outputs list them.
METRICS: tuple[str, ...] = ("seen", "unseen", "harmonic", "confusion", "clip_unseen", "clip_seen")


def variant_definition(variant: str) -> Variant:
    """The :class:`~.config.Variant` of a variant name (or ``"frozen_clip"``)."""
    if variant == "frozen_clip":
        return FROZEN_CLIP
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {['frozen_clip', *VARIANTS]}")
    return VARIANTS[variant]


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random permutation of ``range(n)`` with no fixed point (rejection sampling), ``n >= 2``."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items; got {n}")
    idx = torch.arange(n)
    while True:
        perm = torch.randperm(n, generator=generator)
        if not bool((perm == idx).any()):
            return perm


class ShuffledTeacher(Distiller):
    """A control: ``inner`` sees the teacher's features of the same batch in another order.

    Every call draws a new derangement of the batch (:func:`derangement`) and applies it to the teacher's
    visual features, per-sample text and teacher extras, so each student image is paired with the teacher's
    view of *another* image of its batch. The student side is untouched.
    """

    name = "shuffled_teacher"

    def __init__(self, inner: Distiller, seed: int) -> None:
        super().__init__(inner.embed_dim)
        self.inner = inner
        self.extra_inputs = inner.extra_inputs
        self.generator = torch.Generator().manual_seed(int(seed))

    def forward(
        self,
        teacher_visual: torch.Tensor,
        teacher_text: torch.Tensor,
        student_visual: torch.Tensor,
        student_text: torch.Tensor,
        **extras: Any,
    ) -> DistillationOutput:
        perm = derangement(teacher_visual.shape[0], self.generator).to(teacher_visual.device)
        if teacher_text.dim() == 3:
            teacher_text = teacher_text[perm]
        moved = {
            k: (v[perm] if k.startswith("teacher_") and torch.is_tensor(v) else v) for k, v in extras.items()
        }
        return self.inner(teacher_visual[perm], teacher_text, student_visual, student_text, **moved)


def build_segmentor(
    config: ProxyConfig, variant: str, clip_state: dict[str, torch.Tensor], cache_dir
) -> OVSSModel:
    """The segmentor of ``variant`` with student (and teacher) CLIP loaded from ``clip_state``."""
    arch, ft = config.arch, config.finetune
    definition = variant_definition(variant)
    distill, options, finetune = definition.distill, definition.options, definition.clip_finetune
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
    model = OVSSModel(model_config, clip=clip, tokenizer=open_clip.get_tokenizer(name))
    if definition.shuffle_teacher:
        if model.distiller is None:
            raise ValueError(f"variant {variant!r} shuffles the teacher but has no distiller")
        model.distiller = ShuffledTeacher(model.distiller, seed=config_seed(variant))
    return model


def config_seed(variant: str) -> int:
    """A fixed seed per variant name (the shuffled teacher's generator; runs reseed it per seed)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(variant))


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


def vocabulary_metrics(matrix: np.ndarray, world: WorldConfig) -> dict[str, float]:
    """Seen / unseen mIoU, harmonic mean and seen-sibling confusion (%) of a whole-vocabulary confusion matrix.

    Args:
        matrix: ``(V, V)`` pixel counts over the vocabulary (rows: ground truth, columns: prediction).
        world: names the seen and unseen classes and their colours.

    Returns:
        ``seen`` / ``unseen``: mean IoU over the seen / unseen classes present in the ground truth, IoU
        taken in the whole-vocabulary matrix (a pixel given to any other name counts against both);
        ``harmonic``: ``2 s u / (s + u)`` (0 when both are 0); ``confusion``: the share of unseen-class
        pixels predicted as a seen class of the same colour.
    """
    c = np.asarray(matrix, dtype=np.float64)
    vocab = world.vocabulary
    tp, gt, pred = np.diag(c), c.sum(1), c.sum(0)
    iou = np.divide(tp, gt + pred - tp, out=np.zeros_like(tp), where=(gt + pred - tp) > 0)

    def miou(names: tuple[str, ...]) -> float:
        ids = [vocab.index(n) for n in names if gt[vocab.index(n)] > 0]
        return float(np.mean(iou[ids]) * 100) if ids else float("nan")

    seen, unseen = miou(world.seen), miou(world.unseen)
    harmonic = 0.0 if seen + unseen == 0 else 2 * seen * unseen / (seen + unseen)
    sibling = 0.0
    for name in world.unseen:
        colour = name.split(" ")[0]
        siblings = [vocab.index(n) for n in world.seen if n.split(" ")[0] == colour]
        sibling += c[vocab.index(name), siblings].sum()
    unseen_pixels = sum(gt[vocab.index(n)] for n in world.unseen)
    confusion = float(sibling / unseen_pixels * 100) if unseen_pixels else float("nan")
    return {"seen": seen, "unseen": unseen, "harmonic": float(harmonic), "confusion": confusion}


def batch_probabilities(
    model: nn.Module, images: torch.Tensor, names: list[str], config: ProxyConfig, size: tuple[int, int]
) -> torch.Tensor:
    """Class probabilities ``(B, V, *size)`` of a batch of ``(B, 3, H, W)`` scenes (0-255).

    ``eval_mode="whole"``: one pass per scene (the model resizes it to CLIP's resolution), sigmoid, bilinear
    resize to ``size``; ``"sliding"``: :func:`ovss.evaluation.sliding_window_probabilities` per scene with
    ``kernel`` and ``out_res``.
    """
    ft = config.finetune

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        return model(x, names).logits

    if ft.eval_mode == "whole":
        probs = logits_fn(images.float()).float().sigmoid()
        return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
    if ft.eval_mode == "sliding":
        maps = [
            sliding_window_probabilities(logits_fn, img, kernel=ft.kernel, out_res=ft.out_res)
            for img in images
        ]
        return F.interpolate(torch.stack(maps), size=size, mode="bilinear", align_corners=False)
    raise ValueError(f"finetune.eval_mode must be 'whole' or 'sliding'; got {ft.eval_mode!r}")


@torch.no_grad()
def evaluate(
    model: OVSSModel, datasets: list[Any], config: ProxyConfig, *, clip_only: bool = False, batch: int = 16
) -> dict[str, float]:
    """:func:`vocabulary_metrics` of ``model`` (or of its CLIP alone) over every scene of ``datasets``.

    Every scene is offered the whole vocabulary; one confusion matrix is accumulated over all of them.
    With ``clip_only`` the keys are prefixed ``clip_`` (``clip_seen``, ``clip_unseen``, ...).
    """
    world = config.world
    names = list(world.vocabulary)
    v = len(names)
    net: nn.Module = DenseZeroShot(model) if clip_only else model
    was_training = model.training
    model.eval()
    matrix = np.zeros((v, v), dtype=np.int64)
    with eval_pooling(model, (1, 1)):
        for ds in datasets:
            for start in range(0, len(ds), batch):
                samples = [ds[i] for i in range(start, min(start + batch, len(ds)))]
                images = torch.stack([s["image"] for s in samples]).float()
                labels = torch.stack([s["label"] for s in samples]).long()
                probs = batch_probabilities(net, images, names, config, tuple(labels.shape[-2:]))
                pred = probs.argmax(1)
                keep = labels != 255
                matrix += np.bincount((labels[keep] * v + pred[keep]).numpy(), minlength=v * v).reshape(v, v)
    model.train(was_training)
    metrics = vocabulary_metrics(matrix, world)
    return {f"clip_{k}": x for k, x in metrics.items()} if clip_only else metrics


def _crop_flip(size: int):
    def transform(image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        h, w = label.shape
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        image, label = image[y : y + size, x : x + size], label[y : y + size, x : x + size]
        if rng.integers(2):
            image, label = image[:, ::-1], label[:, ::-1]
        return image, label

    return transform


def _norm(grads: list[torch.Tensor | None]) -> float:
    sq = [float(g.detach().pow(2).sum()) for g in grads if g is not None]
    return math.sqrt(sum(sq))


def term_gradient_norms(
    losses: dict[str, torch.Tensor], groups: dict[str, list[torch.Tensor]]
) -> dict[str, dict[str, float]]:
    """``{group: {term: ‖∂ term / ∂ params of group‖₂}}`` for every loss term that has a graph."""
    out: dict[str, dict[str, float]] = {g: {} for g in groups}
    for term, value in losses.items():
        if not (torch.is_tensor(value) and value.requires_grad):
            continue
        for group, params in groups.items():
            if not params:
                continue
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            out[group][term] = _norm(list(grads))
    return out


def relative_drift(params: list[torch.Tensor], start: list[torch.Tensor]) -> float:
    r"""$\lVert W - W_0\rVert_F / \lVert W_0\rVert_F$ over all of ``params`` together (0 with none)."""
    if not params:
        return 0.0
    num = sum(float((p.detach() - p0).pow(2).sum()) for p, p0 in zip(params, start))
    den = sum(float(p0.pow(2).sum()) for p0 in start)
    return math.sqrt(num / den)


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
        The score of each of :data:`METRICS` (mean of the last ``last_k`` evaluations), ``"curve"``
        (``[{"step", metrics..., "drift"}, ...]``, step 0 = before fine-tuning), ``"grad_norms"``
        (``[{"step", "clip": {term: norm}, "distiller": {term: norm}}, ...]``), ``"drift"`` (final relative
        Q/V drift), ``"losses"`` (mean of each logged term over the last 10% of steps) and ``"seconds"``.
    """
    ft, world = config.finetune, config.world
    if not ft.eval_steps or max(ft.eval_steps) != ft.steps or not 1 <= ft.last_k <= len(ft.eval_steps):
        raise ValueError(
            f"finetune.eval_steps {ft.eval_steps} must end at steps={ft.steps} and hold at least last_k="
            f"{ft.last_k} evaluations"
        )
    torch.manual_seed(seed * 1000 + 17)
    model = build_segmentor(config, variant, clip_state, cache_dir)
    if isinstance(model.distiller, ShuffledTeacher):
        model.distiller.generator.manual_seed(seed * 1000 + 29)
    opt = build_optimizer(
        model,
        OptimConfig(base_lr=ft.base_lr, clip_multiplier=ft.clip_multiplier, weight_decay=ft.weight_decay),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / ft.steps)))
    params = [p for g in opt.param_groups for p in g["params"]]
    clip_params = [p for p in model.clip.parameters() if p.requires_grad]
    clip_start = [p.detach().clone() for p in clip_params]
    lpam_params = [p for p in model.distiller.parameters() if p.requires_grad] if model.distiller else []
    train = load_split(world_root, "train", world, transform=_crop_flip(ft.crop))
    evals = [load_split(world_root, "val_unseen", world), load_split(world_root, "val_seen", world)]
    seen_names = list(world.seen)
    rng = np.random.default_rng([seed, 2])
    start_point = {"step": 0, **evaluate(model, evals, config, clip_only=True), "drift": 0.0}
    curve: list[dict[str, float]] = []
    grad_norms: list[dict[str, Any]] = []
    tail: dict[str, list[float]] = {}
    eval_steps = set(ft.eval_steps)
    start = time.perf_counter()
    model.train()
    for step in range(ft.steps):
        keys = [(int(i), int(rng.integers(2**31))) for i in rng.integers(0, len(train), size=ft.batch)]
        samples = [train[k] for k in keys]
        images = torch.stack([s["image"] for s in samples]).float()
        labels = torch.stack([s["label"] for s in samples])
        out = model(images, seen_names, labels)
        if not math.isfinite(out.loss.item()):
            raise FloatingPointError(f"{variant} seed {seed}: non-finite loss at step {step}: {out.losses}")
        if step % ft.grad_every == 0 or step + 1 == ft.steps:
            norms = term_gradient_norms(out.losses, {"clip": clip_params, "distiller": lpam_params})
            grad_norms.append({"step": step, **norms})
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, ft.grad_clip)
        opt.step()
        sched.step()
        if step >= ft.steps - max(ft.steps // 10, 1):
            for k, v in out.losses.items():
                tail.setdefault(k, []).append(float(v.detach()) if torch.is_tensor(v) else float(v))
        if step + 1 in eval_steps:
            point = {
                "step": step + 1,
                **evaluate(model, evals, config),
                **evaluate(model, evals, config, clip_only=True),
                "drift": relative_drift(clip_params, clip_start),
            }
            curve.append(point)
            model.train()
            log(
                f"    {variant} seed {seed} step {step + 1}/{ft.steps}: unseen {point['unseen']:.1f} seen "
                f"{point['seen']:.1f} confusion {point['confusion']:.1f} clip unseen {point['clip_unseen']:.1f} "
                f"drift {point['drift']:.4f}"
            )
    seconds = time.perf_counter() - start
    last = curve[-ft.last_k :]
    score = {m: float(np.mean([p[m] for p in last])) for m in METRICS}
    return {
        **score,
        "curve": curve,
        "clip_start": {k: start_point[k] for k in ("clip_seen", "clip_unseen", "clip_confusion")},
        "grad_norms": grad_norms,
        "drift": curve[-1]["drift"],
        "losses": {k: float(np.mean(v)) for k, v in tail.items()},
        "seconds": seconds,
    }
