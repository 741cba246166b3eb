"""The entropy of one positive semi-definite Gram matrix by each exact method.

``"eig"`` (the spectrum), ``"frobenius"`` (alpha = 2) and ``"power"`` (integer alpha >= 2): one dispatch,
`unit_trace_entropy`, shared by the ``gram`` and ``dual`` routes (`renyi_info.algorithms.routes`)
and by `renyi_info.gram_level.gram_entropy`. Inputs are trusted (validated at the public door).
"""

from __future__ import annotations

import math

import torch

from ..kernels import check_trace


def trace_power(a: torch.Tensor, p: int) -> torch.Tensor:
    """``tr(A^p)`` of symmetric ``a`` for an integer ``p >= 2`` with about log2(p) matrix products.

    Uses ``tr(A^p) = sum(A^q * A^(p-q))`` (elementwise, valid for symmetric A) with ``q = p // 2``.
    """
    q = p // 2
    half = torch.linalg.matrix_power(a, q)
    other = half if p % 2 == 0 else half @ a
    return (half * other).sum((-2, -1))


def spectral_entropy(lam: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rényi entropy in nats of eigenvalues ``lam`` ``(..., n)`` (ascending, summing to one).

    Round-off negatives are clamped to zero. For alpha <= 1, eigenvalues at or below
    ``n * eps * lam_max`` are dropped, so that the value and its gradient stay finite (and exact) on
    rank-deficient matrices, where such eigenvalues are round-off. For alpha > 1 nothing positive is
    dropped: there round-off eigenvalues contribute ``O(eps^alpha)``, while dropping a real tail of small
    eigenvalues of mass ``m`` would shift the entropy by about ``m / (alpha - 1)`` (large for alpha near 1).
    ``alpha = 1`` is von Neumann's ``-sum lam log lam``; ``alpha = inf`` is ``-log lam_max``.
    """
    lam = lam.clamp_min(0.0)
    lam_max = lam[..., -1:]
    if math.isinf(alpha):
        return -torch.log(lam_max.squeeze(-1))
    if alpha > 1.0:
        keep = lam > 0
    else:
        floor = lam.shape[-1] * torch.finfo(lam.dtype).eps * lam_max
        keep = lam > floor
    log_lam = torch.log(torch.where(keep, lam, torch.ones_like(lam)))
    if alpha == 1.0:
        return -(torch.where(keep, lam, torch.zeros_like(lam)) * log_lam).sum(-1)
    masked = torch.where(keep, alpha * log_lam, torch.full_like(lam, -math.inf))
    return torch.logsumexp(masked, dim=-1) / (1.0 - alpha)


def gram_entropy(k: torch.Tensor, alpha: float, method: str, name: str = "the input") -> torch.Tensor:
    """Rényi alpha-entropy in nats of ``k / tr k`` for a symmetric PSD ``k`` ``(..., n, n)``.

    ``method`` must already be resolved to an exact method (``"eig"``, ``"frobenius"`` or ``"power"``).
    """
    trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)
    check_trace(name, trace)
    return unit_trace_entropy(k / trace[..., None, None], alpha, method)


def unit_trace_entropy(a: torch.Tensor, alpha: float, method: str, n: int | None = None) -> torch.Tensor:
    """Entropy in nats of a unit-trace symmetric PSD ``a`` ``(..., m, m)`` by an exact ``method``.

    ``n``: the size of the primal matrix when ``a`` is its ``m x m`` dual (same non-zero spectrum,
    ``m < n``): ``"eig"`` pads the ``n - m`` zero eigenvalues so that the eigenvalue floor is the primal's.
    """
    if method == "frobenius":
        return -torch.log((a * a).sum((-2, -1)))
    if method == "power":
        return torch.log(trace_power(a, int(alpha))) / (1.0 - alpha)
    lam = torch.linalg.eigvalsh(a)
    pad = 0 if n is None else n - lam.shape[-1]
    if pad > 0:  # the n - m zero eigenvalues of the primal Gram: same floor and length as the primal
        lam = torch.cat([lam.new_zeros(*lam.shape[:-1], pad), lam], -1)
    return spectral_entropy(lam, alpha)


def hadamard(mats: list[torch.Tensor]) -> torch.Tensor:
    """Elementwise product of a non-empty list of equally shaped matrices."""
    out = mats[0]
    for m in mats[1:]:
        out = out * m
    return out
