r"""The task loss of CAT-Seg: per-class binary cross-entropy on one-hot targets."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["segmentation_bce_loss"]

IgnoreMode = Literal["zero", "exclude"]


def segmentation_bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = 255,
    ignore_mode: IgnoreMode = "zero",
) -> torch.Tensor:
    r"""Binary cross-entropy with logits of per-class logits against one-hot class targets.

    The logits are first resized bilinearly (``align_corners=False``) to the target size. With
    $y_{b,c,p} = [\mathrm{target}_{b,p} = c]$,

    $$
    L = \frac{1}{|\mathcal{P}|\,T}\sum_{p\in\mathcal{P}}\sum_{c=1}^{T}
        \mathrm{BCE}\big(\sigma(z_{b,c,p}),\, y_{b,c,p}\big)
    $$

    ``ignore_mode="zero"`` is CAT-Seg's choice: ignored pixels keep an all-zero target and stay in
    the mean ($\mathcal{P}$ = all pixels, pushing every class down there);
    ``ignore_mode="exclude"`` drops them ($\mathcal{P}$ = labelled pixels).

    Args:
        logits: ``(B, T, h, w)`` per-class logits.
        targets: ``(B, H, W)`` integer class ids in ``[0, T)`` or ``ignore_index``.
        ignore_index: the label of unlabelled pixels (255 in CAT-Seg's datasets).
        ignore_mode: ``"zero"`` (CAT-Seg) or ``"exclude"``.

    Returns:
        Scalar loss (float32).

    Raises:
        ValueError: bad shapes, a label outside ``[0, T)`` that is not ``ignore_index``, an unknown
            ``ignore_mode``, or ``"exclude"`` with no labelled pixel.
        TypeError: non-integer targets.

    Example:
        >>> z = torch.zeros(1, 3, 2, 2)
        >>> y = torch.tensor([[[0, 1], [2, 255]]])
        >>> round(float(segmentation_bce_loss(z, y)), 4)  # log 2
        0.6931
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must have shape (B, T, h, w); got {tuple(logits.shape)}")
    if targets.dim() != 3 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must have shape (B, H, W) with B = {logits.shape[0]}; got {tuple(targets.shape)}"
        )
    if targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"targets must hold integer class ids; got dtype {targets.dtype}")
    if ignore_mode not in ("zero", "exclude"):
        raise ValueError(f"ignore_mode must be 'zero' or 'exclude'; got {ignore_mode!r}")
    num_classes = logits.shape[1]
    targets = targets.long()
    valid = targets != ignore_index
    bad = valid & ((targets < 0) | (targets >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"targets hold labels outside [0, {num_classes}) that are not ignore_index={ignore_index}: "
            f"{sorted(set(targets[bad].unique().tolist()))[:10]}"
        )
    if logits.shape[-2:] != targets.shape[-2:]:
        logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
    logits = logits.float().permute(0, 2, 3, 1)  # (B, H, W, T)
    onehot = F.one_hot(targets.clamp(0, num_classes - 1), num_classes).to(logits.dtype)
    onehot = onehot * valid[..., None].to(logits.dtype)
    if ignore_mode == "zero":
        return F.binary_cross_entropy_with_logits(logits, onehot)
    if not bool(valid.any()):
        raise ValueError("ignore_mode='exclude' needs at least one labelled pixel; all targets are ignored")
    return F.binary_cross_entropy_with_logits(logits[valid], onehot[valid])
