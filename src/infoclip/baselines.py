r"""Distillation baselines of InfoCLIP's Table 2, with InfoCLIP's calling convention.

Every distiller is called as ``distiller(teacher_visual, teacher_text, student_visual, student_text,
**extras)`` and returns a `infoclip.DistillationOutput`, so a trainer switches by name with
`infoclip.make_distiller` (`infoclip.registry`):

| name | what it computes (``total`` = ``weight`` x the loss; teacher tensors are detached) |
| --- | --- |
| ``"none"`` | nothing: ``total`` is a zero tensor (the CAT-Seg baseline, "w/o distillation") |
| ``"infoclip"`` | `infoclip.InfoCLIPLoss`: $\lambda_1 L_c + \lambda_2 L_d$ |
| ``"kl"`` | Hinton et al. (2015) on pixel-text logits: `kl_distillation_loss` |
| ``"maft"`` | MAFT (Jiao et al., NeurIPS 2023) self-distillation: `maft_distillation_loss` |
| ``"maftplus"`` | MAFT+ (Jiao et al., ECCV 2024) representation compensation: `representation_compensation_loss` |

The MAFT definitions were read from the authors' public code (``jiaosiyu1999/MAFT``: ``freeseg/MAFT.py``;
``jiaosiyu1999/MAFT-Plus``: ``maft/maft_plus.py``, ``maft/modeling/maft/representation_compensation.py``);
how this adaptation to a dense (CAT-Seg-style) segmentor departs from them is documented per function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ._checks import (
    Positive,
    Weight,
    check_all_finite,
    check_floating,
    check_positive,
    check_same_shape,
    check_text_against_visual,
    check_weight,
    text_embeddings,
    visual_tokens,
)
from .distiller import DistillationOutput, Distiller, DistillerInputs

__all__ = [
    "KLDistiller",
    "MAFTDistiller",
    "MAFTPlusDistiller",
    "NoDistiller",
    "kl_distillation_loss",
    "maft_distillation_loss",
    "pixel_text_logits",
    "representation_compensation_loss",
]

#: CLIP's logit scale (exp of its learned temperature, capped at 100; MAFT uses 100 too).
CLIP_LOGIT_SCALE = 100.0


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def pixel_text_logits(
    visual: torch.Tensor, text: torch.Tensor, *, logit_scale: float = CLIP_LOGIT_SCALE
) -> torch.Tensor:
    r"""CLIP pixel-text logits: scaled cosine similarity of every visual token with every class.

    $$
    z_{b,p,c} = s\,\frac{\langle v_{b,p}, t_c\rangle}{\lVert v_{b,p}\rVert\,\lVert t_c\rVert}
    $$

    Args:
        visual: ``(B, HW, d)`` or ``(B, d, H, W)``.
        text: ``(N_C, d)`` or ``(B, N_C, d)``.
        logit_scale: $s$ (CLIP: 100).

    Returns:
        ``(B, HW, N_C)``.

    Example:
        >>> import torch
        >>> from infoclip import pixel_text_logits
        >>> pixel_text_logits(torch.ones(1, 2, 3), torch.eye(3), logit_scale=1.0).round(decimals=4)
        tensor([[[0.5774, 0.5774, 0.5774],
                 [0.5774, 0.5774, 0.5774]]])
    """
    v = visual_tokens("visual", visual)
    t = text_embeddings("text", text)
    check_text_against_visual("visual", v, "text", t)
    logit_scale = check_positive("logit_scale", logit_scale)
    return logit_scale * (_normalize(v) @ _normalize(t).mT)


def kl_distillation_loss(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    r"""Hinton knowledge distillation over classes, averaged over pixels (and batch).

    $$
    L_{KL} = \frac{T^2}{P}\sum_{p=1}^{P}\sum_c \pi^T_{p,c}\,\big(\log\pi^T_{p,c} - \log\pi^S_{p,c}\big),
    \qquad \pi_{p} = \mathrm{softmax}(z_p / T)
    $$

    Plain maths: nothing is detached (`KLDistiller` detaches the teacher).

    Args:
        teacher_logits: ``(..., N_C)``: class dim last (``(B, HW, N_C)`` from `pixel_text_logits`).
        student_logits: same shape.
        temperature: $T > 0$; the $T^2$ factor keeps gradient magnitudes comparable across
            temperatures (Hinton et al. 2015).

    Returns:
        Scalar tensor, >= 0 (0 exactly when the two distributions agree at every pixel).

    Example:
        >>> import torch
        >>> from infoclip import kl_distillation_loss
        >>> z = torch.randn(2, 5, 3)
        >>> float(kl_distillation_loss(z, z))
        0.0
    """
    check_floating("teacher_logits", teacher_logits, "(..., N_C)")
    check_floating("student_logits", student_logits, "(..., N_C)")
    if teacher_logits.dim() < 1 or teacher_logits.shape[-1] < 1:
        raise ValueError(
            f"teacher_logits must have a class dim last; got shape {tuple(teacher_logits.shape)}"
        )
    check_same_shape(("teacher_logits", "student_logits"), teacher_logits, student_logits, "(..., N_C)")
    temperature = check_positive("temperature", temperature)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return temperature**2 * kl.mean()


def maft_distillation_loss(
    teacher_image_embedding: torch.Tensor,
    teacher_text: torch.Tensor,
    student_image_embedding: torch.Tensor,
    student_text: torch.Tensor,
    *,
    logit_scale: float = CLIP_LOGIT_SCALE,
) -> torch.Tensor:
    r"""MAFT-style self-distillation: keep the student's zero-shot class distribution of the whole image.

    $$
    \pi = \mathrm{softmax}_c\big(s\,\cos(g, t_c)\big),\qquad
    L = \frac{1}{B N_C}\sum_{b,c}\mathrm{SmoothL1}\big(\pi^S_{b,c} - \pi^T_{b,c}\big)
    $$

    with $g$ the global image embedding and SmoothL1 with $\beta = 1$ (PyTorch's
    ``smooth_l1_loss``, mean reduction), as ``freeseg/MAFT.py`` (``dis_loss``).

    Departures from MAFT: MAFT's student is its IP-CLIP encoder run without masks and both sides use the
    same frozen text classifier; here each side uses its own text embeddings (equal when the text encoder
    is frozen), there is no void class to drop, and `MAFTDistiller` falls back to the mean of the
    dense tokens when no global embedding is given.

    Args:
        teacher_image_embedding: ``(B, d)``.
        teacher_text: ``(N_C, d)`` or ``(B, N_C, d)``.
        student_image_embedding: ``(B, d)``.
        student_text: ``(N_C, d)`` or ``(B, N_C, d)``.
        logit_scale: $s$ (MAFT: 100).

    Returns:
        Scalar tensor.

    Example:
        >>> import torch
        >>> from infoclip import maft_distillation_loss
        >>> g, t = torch.randn(2, 8), torch.randn(4, 8)
        >>> float(maft_distillation_loss(g, t, g, t))
        0.0
    """
    logit_scale = check_positive("logit_scale", logit_scale)
    probs = []
    for side, g, t in (
        ("teacher", teacher_image_embedding, teacher_text),
        ("student", student_image_embedding, student_text),
    ):
        g = check_floating(f"{side}_image_embedding", g, "(B, d)")
        if g.dim() != 2:
            raise ValueError(f"{side}_image_embedding must have shape (B, d); got {tuple(g.shape)}")
        t = text_embeddings(f"{side}_text", t)
        check_text_against_visual(f"{side}_image_embedding", g[:, None], f"{side}_text", t)
        logits = logit_scale * (_normalize(g.float())[:, None] @ _normalize(t.float()).mT).squeeze(-2)
        probs.append(logits.softmax(-1))
    check_same_shape(
        ("teacher class probabilities", "student class probabilities"), probs[0], probs[1], "(B, N_C)"
    )
    return F.smooth_l1_loss(probs[1], probs[0], beta=1.0)


def _pyramid_descriptor(x: torch.Tensor, scales: Sequence[int]) -> torch.Tensor:
    """Pooled-output descriptor (B, C * 2 * sum(scales)): width and height pooling at each scale."""
    pieces = []
    for s in scales:
        pooled = F.adaptive_avg_pool2d(x, s)  # (B, C, s, s)
        pieces.append(pooled.sum(dim=2).flatten(1))  # pooled over height: (B, C*s)
        pieces.append(pooled.sum(dim=3).flatten(1))  # pooled over width
    return torch.cat(pieces, dim=1)


def representation_compensation_loss(
    teacher_features: torch.Tensor | Sequence[torch.Tensor],
    student_features: torch.Tensor | Sequence[torch.Tensor],
    *,
    scales: Sequence[int] = (1, 2, 4),
) -> torch.Tensor:
    r"""MAFT+-style representation compensation: multi-scale pooled feature distillation.

    For each level $l$ with maps $F^T_l, F^S_l$ ``(B, C, H, W)``:

    $$
    \phi(F) = \big[\,\textstyle\sum_h P_s(\mathrm{ReLU}\,F),\ \sum_w P_s(\mathrm{ReLU}\,F)\,\big]_{s\in
    \text{scales}},\qquad
    L = \frac{1}{L}\sum_l \mathrm{SmoothL1}\big(\phi(F^S_l), \phi(F^T_l)\big)
    $$

    where $P_s$ average-pools to an ``s x s`` grid (a spatial pyramid), and SmoothL1 uses
    $\beta = 1$ with mean reduction: ``Representation_Compensation`` of MAFT+
    (``difference_function="sl1"``, ``prepro="relu"``, ``spp_scales=[1, 2, 4]``).

    Departures: adaptive average pooling replaces MAFT+'s ``avg_pool2d(kernel = W // s)`` after resizing
    non-square maps to a square (identical for square maps whose side is divisible by every scale); MAFT+
    applies it to the dense CLIP features only, this function takes any list of levels.

    Args:
        teacher_features: one map ``(B, C, H, W)`` or a sequence of them (one per level).
        student_features: the same number of maps, each of the teacher's shape.
        scales: pyramid grid sizes, each an integer >= 1.

    Returns:
        Scalar tensor.

    Example:
        >>> import torch
        >>> from infoclip import representation_compensation_loss
        >>> f = torch.randn(2, 8, 6, 6)
        >>> float(representation_compensation_loss(f, f))
        0.0
    """
    t_list = [teacher_features] if isinstance(teacher_features, torch.Tensor) else list(teacher_features)
    s_list = [student_features] if isinstance(student_features, torch.Tensor) else list(student_features)
    if not t_list or len(t_list) != len(s_list):
        raise ValueError(
            "teacher_features and student_features must hold the same (non-zero) number of levels; got "
            f"{len(t_list)} and {len(s_list)}"
        )
    scales = list(scales)
    if not scales or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of integers >= 1; got {scales!r}")
    losses = []
    for i, (ft, fs) in enumerate(zip(t_list, s_list)):
        ft = check_floating(f"teacher_features[{i}]", ft, "(B, C, H, W)")
        fs = check_floating(f"student_features[{i}]", fs, "(B, C, H, W)")
        if ft.dim() != 4:
            raise ValueError(f"teacher_features[{i}] must have shape (B, C, H, W); got {tuple(ft.shape)}")
        check_same_shape((f"teacher_features[{i}]", f"student_features[{i}]"), ft, fs, "(B, C, H, W)")
        a = _pyramid_descriptor(ft.float().clamp_min(0.0), scales)
        b = _pyramid_descriptor(fs.float().clamp_min(0.0), scales)
        losses.append(F.smooth_l1_loss(b, a, beta=1.0))
    return torch.stack(losses).mean()


def _as_map(name: str, x: torch.Tensor, spatial_shape: tuple[int, int] | None) -> torch.Tensor:
    """A feature map (B, C, H, W) from a map or from tokens (B, HW, C) with known or square (H, W)."""
    x = check_floating(name, x, "(B, C, H, W) or (B, HW, C)")
    if x.dim() == 4:
        return x
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (B, C, H, W) or (B, HW, C); got {tuple(x.shape)}")
    tokens = x.shape[1]
    if spatial_shape is None:
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ValueError(
                f"{name} has {tokens} tokens, not a square grid: pass spatial_shape=(H, W) with H*W = {tokens}"
            )
        spatial_shape = (side, side)
    h, w = (int(s) for s in spatial_shape)
    if h * w != tokens:
        raise ValueError(f"spatial_shape={tuple(spatial_shape)} does not match {name}'s {tokens} tokens")
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


class NoDistiller(Distiller):
    """No distillation (``"none"``): ``total`` is a zero tensor; inputs are shape-checked only.

    Example:
        >>> import torch
        >>> from infoclip import make_distiller
        >>> out = make_distiller("none", 8)(torch.randn(2, 4, 8), torch.randn(3, 8), torch.randn(2, 4, 8), torch.randn(3, 8))
        >>> float(out.total)
        0.0
    """

    name = "none"

    def distill(self, inputs: DistillerInputs, **extras: Any) -> DistillationOutput:
        return DistillationOutput(total=inputs.student_visual.new_zeros((), dtype=torch.float32))


class KLDistiller(Distiller):
    r"""``"kl"``: ``weight`` x `kl_distillation_loss` of pixel-text logits.

    The logits are the segmentor's own when given (``teacher_logits``, ``student_logits`` ``(B, HW, N_C)``,
    class dim last), otherwise `pixel_text_logits` of each model's dense features and text
    (CLIP's similarity map, ``logit_scale`` x cosine). The teacher side is detached.

    Args:
        embed_dim: CLIP's embedding width.
        weight: loss weight (1).
        temperature: $T$ (1: plain KL; Hinton et al. use 2-20 on sharp logits).
        logit_scale: scale of the cosine similarities (CLIP: 100).
    """

    name = "kl"

    def __init__(
        self,
        embed_dim: int,
        *,
        weight: Weight = 1.0,
        temperature: Positive = 1.0,
        logit_scale: Positive = CLIP_LOGIT_SCALE,
    ) -> None:
        super().__init__(embed_dim)
        self.weight = check_weight("weight", weight)
        self.temperature = check_positive("temperature", temperature)
        self.logit_scale = check_positive("logit_scale", logit_scale)

    def distill(
        self,
        inputs: DistillerInputs,
        *,
        teacher_logits: torch.Tensor | None = None,
        student_logits: torch.Tensor | None = None,
        **extras: Any,
    ) -> DistillationOutput:
        tv, tt, sv, st = inputs[:4]
        z_t = (
            teacher_logits
            if teacher_logits is not None
            else pixel_text_logits(tv, tt, logit_scale=self.logit_scale)
        )
        z_s = (
            student_logits
            if student_logits is not None
            else pixel_text_logits(sv, st, logit_scale=self.logit_scale)
        )
        z_t = z_t.detach()
        check_all_finite([("teacher_logits", z_t), ("student_logits", z_s)])
        loss = kl_distillation_loss(z_t, z_s, temperature=self.temperature)
        weighted = self.weight * loss
        return DistillationOutput(
            total=weighted,
            distillation=loss,
            teacher_alignment=z_t,
            student_alignment=z_s,
            terms={"loss_kl": weighted},
        )


class MAFTDistiller(Distiller):
    r"""``"maft"``: ``weight`` x `maft_distillation_loss` (MAFT: weight 0.1, ``dis_weight``).

    Global image embeddings are ``teacher_image_embedding`` / ``student_image_embedding`` ``(B, d)`` when
    given (e.g. CLIP's pooled output), otherwise the mean of each model's dense tokens. The teacher side is
    detached.

    Args:
        embed_dim: CLIP's embedding width.
        weight: loss weight (0.1, MAFT's default).
        logit_scale: CLIP's logit scale (100).
    """

    name = "maft"
    extra_inputs = ("teacher_image_embedding", "student_image_embedding")

    def __init__(
        self, embed_dim: int, *, weight: Weight = 0.1, logit_scale: Positive = CLIP_LOGIT_SCALE
    ) -> None:
        super().__init__(embed_dim)
        self.weight = check_weight("weight", weight)
        self.logit_scale = check_positive("logit_scale", logit_scale)

    def distill(
        self,
        inputs: DistillerInputs,
        *,
        teacher_image_embedding: torch.Tensor | None = None,
        student_image_embedding: torch.Tensor | None = None,
        **extras: Any,
    ) -> DistillationOutput:
        tv, tt, sv, st = inputs[:4]
        g_t = teacher_image_embedding if teacher_image_embedding is not None else tv.mean(1)
        g_s = student_image_embedding if student_image_embedding is not None else sv.mean(1)
        g_t, tt = g_t.detach(), tt.detach()
        check_all_finite(
            [
                ("teacher image embedding", g_t),
                ("teacher_text", tt),
                ("student image embedding", g_s),
                ("student_text", st),
            ]
        )
        loss = maft_distillation_loss(g_t, tt, g_s, st, logit_scale=self.logit_scale)
        weighted = self.weight * loss
        return DistillationOutput(total=weighted, distillation=loss, terms={"loss_maft": weighted})


class MAFTPlusDistiller(Distiller):
    r"""``"maftplus"``: ``weight`` x `representation_compensation_loss` (MAFT+: weight 0.1).

    Levels: the dense visual features (as MAFT+ does with ``clip_vis_dense``; tokens ``(B, HW, d)`` are
    reshaped to ``(B, d, H, W)``, square unless ``spatial_shape=(H, W)`` is passed), followed by any
    ``teacher_features`` / ``student_features`` (e.g. CLIP's intermediate layers, the multi-level variant).
    The teacher side is detached.

    Args:
        embed_dim: CLIP's embedding width.
        weight: loss weight (0.1, MAFT+'s ``rc_weights``).
        scales: pyramid grid sizes ((1, 2, 4), MAFT+'s ``spp_scales``).
        include_dense: include the dense visual features as the first level.
    """

    name = "maftplus"

    def __init__(
        self,
        embed_dim: int,
        *,
        weight: Weight = 0.1,
        scales: Sequence[int] = (1, 2, 4),
        include_dense: bool = True,
    ) -> None:
        super().__init__(embed_dim)
        self.weight = check_weight("weight", weight)
        self.scales = tuple(scales)
        self.include_dense = bool(include_dense)

    def distill(
        self,
        inputs: DistillerInputs,
        *,
        teacher_features: Sequence[torch.Tensor] | None = None,
        student_features: Sequence[torch.Tensor] | None = None,
        spatial_shape: tuple[int, int] | None = None,
        **extras: Any,
    ) -> DistillationOutput:
        if (teacher_features is None) != (student_features is None):
            raise ValueError("pass both teacher_features and student_features, or neither")
        t_levels: list[torch.Tensor] = []
        s_levels: list[torch.Tensor] = []
        if self.include_dense:
            t_levels.append(
                _as_map("teacher_visual", inputs.teacher_visual, inputs.teacher_grid or spatial_shape)
            )
            s_levels.append(
                _as_map("student_visual", inputs.student_visual, inputs.student_grid or spatial_shape)
            )
        if teacher_features is not None and student_features is not None:
            t_extra = (
                [teacher_features] if isinstance(teacher_features, torch.Tensor) else list(teacher_features)
            )
            s_extra = (
                [student_features] if isinstance(student_features, torch.Tensor) else list(student_features)
            )
            t_levels += [_as_map(f"teacher_features[{i}]", f, None) for i, f in enumerate(t_extra)]
            s_levels += [_as_map(f"student_features[{i}]", f, None) for i, f in enumerate(s_extra)]
        if not t_levels:
            raise ValueError("include_dense=False needs teacher_features and student_features")
        t_levels = [f.detach() for f in t_levels]
        check_all_finite(
            [(f"teacher level {i}", f) for i, f in enumerate(t_levels)]
            + [(f"student level {i}", f) for i, f in enumerate(s_levels)]
        )
        loss = representation_compensation_loss(t_levels, s_levels, scales=self.scales)
        weighted = self.weight * loss
        return DistillationOutput(total=weighted, distillation=loss, terms={"loss_rc": weighted})
