"""The entropy of one positive semi-definite Gram matrix by each exact route.

Everything public ends here: feature functions build Grams (and their Hadamard products), matrix
functions validate the matrices, and both call :func:`gram_entropy`.
"""

from __future__ import annotations

import math

import torch

from .kernels import check_trace


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

    ``method`` must already be resolved (``"eig"``, ``"frobenius"``, ``"power"`` or ``"lanczos"``: a
    stochastic estimate with default :class:`~renyi_info.lanczos.LanczosOptions`).
    """
    trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)
    check_trace(name, trace)
    if method == "lanczos":
        from .lanczos import gram_entropy_lanczos  # lazy: lanczos imports this module

        return gram_entropy_lanczos(k, alpha)
    a = k / trace[..., None, None]
    if method == "frobenius":
        return -torch.log((a * a).sum((-2, -1)))
    if method == "power":
        return torch.log(trace_power(a, int(alpha))) / (1.0 - alpha)
    return spectral_entropy(torch.linalg.eigvalsh(a), alpha)


def gram_mutual_information(
    ka: torch.Tensor, kb: torch.Tensor, alpha: float, method: str, names: tuple[str, str] = ("a", "b")
) -> torch.Tensor:
    """``S(A) + S(B) - S(A, B)`` in nats for PSD ``ka``, ``kb`` on the same samples (Eq. 4)."""
    s_a = gram_entropy(ka, alpha, method, names[0])
    s_b = gram_entropy(kb, alpha, method, names[1])
    s_ab = gram_entropy(ka * kb, alpha, method, f"the Hadamard product of {names[0]} and {names[1]}")
    return s_a + s_b - s_ab


def hadamard(mats: list[torch.Tensor]) -> torch.Tensor:
    """Elementwise product of a non-empty list of equally shaped matrices."""
    out = mats[0]
    for m in mats[1:]:
        out = out * m
    return out


def to_base(nats: torch.Tensor, base: float) -> torch.Tensor:
    return nats if base == math.e else nats / math.log(base)
