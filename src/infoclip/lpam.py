r"""LPAM: the Learnable Pixel-Text Alignment Module of InfoCLIP (Eq. 5).

Shared by the teacher (frozen CLIP) and the student (fine-tuned CLIP). The layout follows the
relation module of InfoSAM (same authors; the paper's "0.53M additional parameters" equals its size
at width 512: $2(512^2+512) + 2\cdot 2\cdot 512 = 527{,}360$).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_embed_dim, check_text_against_visual, text_embeddings, visual_tokens

__all__ = ["LPAM"]


class LPAM(nn.Module):
    r"""Learnable Pixel-Text Alignment Module: dense pixel-text alignment map $R$ (InfoCLIP Eq. 5).

    $$
    v = \mathrm{LN}_v(D_V),\quad t = \mathrm{LN}_t(D_L),\qquad
    R = \frac{(W_k v + b_k)(W_q t + b_q)^\top}{\sqrt d} + v\,t^\top
    $$

    One head, no softmax: a learned bilinear alignment (key = visual tokens, query = class
    embeddings) plus the plain dot product of the normalised features as a residual, so that at any
    initialisation $R$ already carries CLIP's own patch-text similarity. $W_q, W_k$ are
    ``Linear(dim, dim)`` with bias; 527,360 parameters at ``dim = 512``. LPAM is a training-time module
    (it shapes the InfoCLIP losses); it is not used at inference.

    Args:
        dim: the joint embedding width ``d`` of the CLIP model (512 for ViT-B/16, 768 for ViT-L/14).

    Shape:
        - visual: ``(B, HW, d)`` tokens or ``(B, d, H, W)`` maps (tokens in row-major ``H, W`` order).
        - text: ``(N_C, d)`` class embeddings shared by the whole batch, or ``(B, N_C, d)`` one set per
          sample.
        - output: ``(B, HW, N_C)``, in the dtype of the computation (float32 for float32 inputs).

    Raises:
        TypeError: non-tensor or non-floating inputs.
        ValueError: wrong ranks, an embedding dim other than ``dim``, per-sample text whose batch size
            differs from the visual batch.

    Example:
        >>> import torch
        >>> from infoclip import LPAM
        >>> lpam = LPAM(512)
        >>> sum(p.numel() for p in lpam.parameters())
        527360
        >>> lpam(torch.randn(2, 24 * 24, 512), torch.randn(171, 512)).shape
        torch.Size([2, 576, 171])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        dim = check_embed_dim(dim, "dim")
        self.dim = dim
        self.norm_visual = nn.LayerNorm(dim)
        self.norm_text = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)  # text (class embeddings)
        self.key = nn.Linear(dim, dim)  # visual tokens
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Alignment map of visual tokens against class embeddings (see the class docstring)."""
        v = visual_tokens("visual", visual)
        t = text_embeddings("text", text)
        if v.shape[-1] != self.dim:
            raise ValueError(
                f"visual has embedding dim {v.shape[-1]} (shape {tuple(visual.shape)}) but this LPAM was built "
                f"with dim={self.dim}"
            )
        check_text_against_visual("visual", v, "text", t)
        # one compute dtype: the parameters' (float16 inputs, or a float64 teacher with a float32 student,
        # would otherwise meet float32 weights in a matmul); autocast, when on, still lowers the products
        dtype = self.key.weight.dtype
        v = self.norm_visual(v.to(dtype))
        t = self.norm_text(t.to(dtype))
        k = self.key(v)
        q = self.query(t)
        # (B, HW, d) @ (d, N_C) or (B, d, N_C): shared text broadcasts over the batch.
        return (k @ q.mT) * self.scale + v @ t.mT

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
