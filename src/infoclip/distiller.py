"""The result type and the common interface of every distiller (InfoCLIP and the baselines)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from ._checks import (
    check_embed_dim,
    check_same_shape,
    check_text_against_visual,
    spatial_shape_of,
    text_embeddings,
    visual_tokens,
)

__all__ = ["EXTRA_INPUTS", "DistillationOutput", "Distiller", "DistillerInputs"]

#: Optional keyword inputs of `Distiller.forward` (each distiller uses some and ignores the rest).
EXTRA_INPUTS = (
    "teacher_features",
    "student_features",
    "teacher_logits",
    "student_logits",
    "teacher_image_embedding",
    "student_image_embedding",
    "spatial_shape",
)


@dataclass
class DistillationOutput:
    """What every distiller returns: the weighted total to add to the task loss, and its parts.

    Attributes:
        total: scalar tensor to add to the task loss (already weighted; a zero tensor for ``"none"``).
        compression: the unweighted compression loss $L_c$ (InfoCLIP only, else ``None``).
        distillation: the unweighted distillation loss ($L_d$ for InfoCLIP, the baseline's own
            loss otherwise; ``None`` for ``"none"``).
        teacher_alignment: the teacher's pixel-text alignment ``(B, HW, N_C)`` the loss used (LPAM's
            $R^T$ for InfoCLIP, the teacher's pixel-text logits for ``"kl"``), else ``None``.
        student_alignment: likewise for the student.
        terms: every logged scalar by name (weighted), for example ``{"loss_compress": ...}``.
    """

    total: torch.Tensor
    compression: torch.Tensor | None = None
    distillation: torch.Tensor | None = None
    teacher_alignment: torch.Tensor | None = None
    student_alignment: torch.Tensor | None = None
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class DistillerInputs(NamedTuple):
    """The four features of one call, as `Distiller.forward` validated them.

    Attributes:
        teacher_visual: the teacher's dense features as tokens ``(B, HW, d)``.
        teacher_text: its class embeddings ``(N_C, d)`` or ``(B, N_C, d)``.
        student_visual: the student's dense features as tokens ``(B, HW, d)``.
        student_text: its class embeddings, same number of classes.
        teacher_grid: ``(H, W)`` when ``teacher_visual`` was passed as a map ``(B, d, H, W)``, else ``None``.
        student_grid: likewise for ``student_visual``.
    """

    teacher_visual: torch.Tensor
    teacher_text: torch.Tensor
    student_visual: torch.Tensor
    student_text: torch.Tensor
    teacher_grid: tuple[int, int] | None = None
    student_grid: tuple[int, int] | None = None


class Distiller(nn.Module):
    """Base class: every distiller is called as ``distiller(teacher_visual, teacher_text, student_visual,
    student_text, **extras)`` and returns a `DistillationOutput`.

    `forward` is the one door of every distiller: it rejects unknown extras (`check_extras`), validates the
    four features and hands them, as `DistillerInputs`, to `distill`, which each subclass defines with the extras
    it reads as typed keyword arguments.

    Extras (keyword-only, all optional; a distiller ignores those it does not use, so a trainer can switch
    distillers by name without changing its call):

    - ``teacher_features``, ``student_features``: sequences of multi-level feature maps ``(B, C_l, H_l,
      W_l)`` or tokens ``(B, H_l W_l, C_l)`` (``"maftplus"``);
    - ``teacher_logits``, ``student_logits``: pixel-text logits ``(B, HW, N_C)`` (``"kl"``);
    - ``teacher_image_embedding``, ``student_image_embedding``: global image embeddings ``(B, d)``
      (``"maft"``);
    - ``spatial_shape``: ``(H, W)`` of token inputs when they are not square (``"maftplus"``).

    Args:
        embed_dim: the joint embedding width ``d`` of the CLIP model; inputs are checked against it.
    """

    name: str = "distiller"
    #: The optional extras (names from `EXTRA_INPUTS`) this distiller reads; a trainer computes
    #: and passes those it can (e.g. global image embeddings only when a distiller lists them).
    extra_inputs: tuple[str, ...] = ()

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = check_embed_dim(embed_dim)

    @staticmethod
    def check_extras(extras: dict[str, Any]) -> None:
        """Reject keyword inputs that no distiller knows (a typo would otherwise be ignored silently)."""
        unknown = sorted(set(extras) - set(EXTRA_INPUTS))
        if unknown:
            raise TypeError(f"unexpected keyword input(s) {unknown}; distillers accept {list(EXTRA_INPUTS)}")

    def forward(
        self,
        teacher_visual: torch.Tensor,
        teacher_text: torch.Tensor,
        student_visual: torch.Tensor,
        student_text: torch.Tensor,
        **extras: Any,
    ) -> DistillationOutput:
        """The distillation loss of one training step.

        Args:
            teacher_visual: the frozen CLIP's dense features ``(B, HW, d)`` or ``(B, d, H, W)``.
            teacher_text: its class embeddings ``(N_C, d)`` or ``(B, N_C, d)``.
            student_visual: the fine-tuned CLIP's dense features, same shape as ``teacher_visual``.
            student_text: its class embeddings, ``(N_C, d)`` or ``(B, N_C, d)``.
            **extras: the optional inputs of `EXTRA_INPUTS` (those this distiller does not read are
                ignored; unknown names raise ``TypeError``).

        Returns:
            The weighted ``total`` and its parts.
        """
        self.check_extras(extras)
        teacher_text = self.prepare_text("teacher_text", teacher_text)
        student_text = self.prepare_text("student_text", student_text)
        tv = visual_tokens("teacher_visual", teacher_visual)
        sv = visual_tokens("student_visual", student_visual)
        tt = text_embeddings("teacher_text", teacher_text)
        st = text_embeddings("student_text", student_text)
        if tv.shape[0] != sv.shape[0]:
            raise ValueError(
                f"teacher_visual and student_visual must have the same batch size: got {tv.shape[0]} (shape "
                f"{tuple(teacher_visual.shape)}) and {sv.shape[0]} (shape {tuple(student_visual.shape)})"
            )
        if tv.shape[-1] != sv.shape[-1]:
            raise ValueError(
                f"teacher_visual and student_visual must have the same embedding dim: got {tv.shape[-1]} and "
                f"{sv.shape[-1]} (shapes {tuple(teacher_visual.shape)} and {tuple(student_visual.shape)})"
            )
        check_same_shape(("teacher_visual", "student_visual"), tv, sv, "(B, HW, d)")
        if tv.shape[-1] != self.embed_dim:
            raise ValueError(
                f"teacher_visual and student_visual have embedding dim {tv.shape[-1]} but this "
                f"{type(self).__name__} was built with embed_dim={self.embed_dim}"
            )
        check_text_against_visual("teacher_visual", tv, "teacher_text", tt)
        check_text_against_visual("student_visual", sv, "student_text", st)
        if tt.shape[-2] != st.shape[-2]:
            raise ValueError(
                f"teacher_text and student_text must hold the same number of classes N_C: got {tt.shape[-2]} "
                f"(shape {tuple(tt.shape)}) and {st.shape[-2]} (shape {tuple(st.shape)})"
            )
        grids = spatial_shape_of(teacher_visual), spatial_shape_of(student_visual)
        return self.distill(DistillerInputs(tv, tt, sv, st, *grids), **extras)

    def distill(self, inputs: DistillerInputs, **extras: Any) -> DistillationOutput:
        """The loss of validated inputs; every subclass defines it (the extras it reads as keyword arguments)."""
        raise NotImplementedError(f"{type(self).__name__} must define distill(inputs, **extras)")

    def prepare_text(self, name: str, text: torch.Tensor) -> torch.Tensor:
        """A text input before it is checked as class embeddings (a subclass may reshape it; default: as is)."""
        return text

    def parameter_groups(self, lr: float | None = None, **options: Any) -> list[dict[str, Any]]:
        """Optimizer parameter groups of this distiller's trainable parameters (empty if it has none).

        InfoCLIP's LPAM is trained at the decoder's learning rate (2e-4 in the paper), not CLIP's
        (2e-6): pass it here.

        Args:
            lr: learning rate of the group (omitted: the optimizer's default).
            **options: other per-group options (``weight_decay``, ...).

        Returns:
            ``[{"params": [...], "name": ..., "lr": lr, **options}]`` or ``[]``.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return []
        group: dict[str, Any] = {"params": params, "name": f"infoclip.{self.name}", **options}
        if lr is not None:
            group["lr"] = lr
        return [group]
