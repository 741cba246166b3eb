r"""The matrix (Petz) Rényi divergence of two Gram matrices, in nats, on trusted inputs.

Used by `renyi_info.gram_level.gram_divergence` (and so by `renyi_info.divergence` and
`renyi_info.matrix.divergence`). The divergence is the Petz–Rényi relative entropy of two trace-normalised Grams,

$$
D_\alpha(A\,\|\,B) = \frac{1}{\alpha-1}\log\operatorname{tr}\big(A^\alpha B^{1-\alpha}\big),
\qquad D_1(A\,\|\,B) = \operatorname{tr}\big(A(\log A - \log B)\big),
$$

which needs the eigenvectors of both matrices. Differentiating ``torch.linalg.eigh`` gives
non-finite gradients wherever eigenvalues repeat (the eigenvector derivative has a
``1/(lambda_i - lambda_j)`` factor), although ``tr(f(A) g(B))`` is smooth there. `_PetzTrace`
therefore differentiates the trace functional itself with the Daleckii–Krein formula

$$
\frac{\partial}{\partial A}\operatorname{tr}\big(f(A)M\big) = U\big(F \circ (U^\top M U)\big)U^\top,
\qquad F_{ij} = \frac{f(a_i) - f(a_j)}{a_i - a_j}\;(F_{ii} = f'(a_i)),
$$

whose divided differences are finite at repeated eigenvalues; they are evaluated without
cancellation as ``x^(p-1) expm1(p t) / expm1(t)`` with ``t = log(y/x)``.
"""

from __future__ import annotations

import math

import torch

from ..kernels import check_trace


def _keep(lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues with round-off negatives clamped and the relative floor ``n eps lam_max`` set to 0."""
    lam = lam.clamp_min(0.0)
    floor = lam.shape[-1] * torch.finfo(lam.dtype).eps * lam[..., -1:]
    keep = lam > floor
    return torch.where(keep, lam, torch.zeros_like(lam)), keep


def _safe(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return torch.where(keep, x, torch.ones_like(x))


def _divided_power(x: torch.Tensor, keep: torch.Tensor, p: float, mixed: bool) -> torch.Tensor:
    """Divided differences ``(x_i^p - x_j^p) / (x_i - x_j)`` ``(..., n, n)`` of kept eigenvalues.

    Pairs of two dropped eigenvalues get 0 (the function restricted to the support); pairs of one kept
    ``x_k`` and one dropped get ``x_k^(p-1)`` (the exact divided difference with ``0^p = 0``) when
    ``mixed``, else 0 (for ``p < 0``, where ``0^p`` is outside the support).
    """
    xs = _safe(x, keep)
    xi, xj = xs.unsqueeze(-1), xs.unsqueeze(-2)
    hi, lo = torch.maximum(xi, xj), torch.minimum(xi, xj)
    t = torch.log(lo / hi)  # <= 0
    den = torch.expm1(t)
    ratio = torch.where(
        t == 0, torch.full_like(t, p), torch.expm1(p * t) / torch.where(t == 0, torch.ones_like(t), den)
    )
    both = keep.unsqueeze(-1) & keep.unsqueeze(-2)
    out = torch.where(both, hi.pow(p - 1.0) * ratio, torch.zeros_like(t))
    if mixed:
        one = keep.unsqueeze(-1) ^ keep.unsqueeze(-2)
        out = torch.where(one, torch.where(keep.unsqueeze(-1), xi, xj).pow(p - 1.0), out)
    return out


def _divided_log(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Divided differences of ``log`` over pairs of kept eigenvalues (0 elsewhere)."""
    xs = _safe(x, keep)
    xi, xj = xs.unsqueeze(-1), xs.unsqueeze(-2)
    hi, lo = torch.maximum(xi, xj), torch.minimum(xi, xj)
    t = torch.log(lo / hi)
    den = torch.where(t == 0, torch.ones_like(t), torch.expm1(t))
    val = torch.where(t == 0, 1.0 / hi, t / (hi * den))
    both = keep.unsqueeze(-1) & keep.unsqueeze(-2)
    return torch.where(both, val, torch.zeros_like(val))


def _sandwich(u: torch.Tensor, core: torch.Tensor) -> torch.Tensor:
    return u @ core @ u.mT


class _PetzTrace(torch.autograd.Function):
    """``D_alpha(A || B)`` in nats of unit-trace symmetric PSD ``a``, ``b`` with Daleckii–Krein gradients."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        lam_a, u = torch.linalg.eigh(a)
        lam_b, v = torch.linalg.eigh(b)
        lam_a, keep_a = _keep(lam_a)
        lam_b, keep_b = _keep(lam_b)
        w = u.mT @ v  # w[i, j] = u_i . v_j
        p = w * w
        # mass of A outside the support of B: sum over dropped j of v_j^T A v_j
        outside = (lam_a.unsqueeze(-1) * p * (~keep_b).unsqueeze(-2)).sum((-2, -1))
        tol = math.sqrt(torch.finfo(a.dtype).eps)
        if alpha == 1.0:
            la = torch.log(_safe(lam_a, keep_a)) * keep_a
            lb = torch.log(_safe(lam_b, keep_b)) * keep_b
            value = (lam_a * la).sum(-1) - torch.einsum("...i,...ij,...j->...", lam_a, p, lb)
            q = torch.ones_like(value)
        else:
            fa = torch.where(keep_a, _safe(lam_a, keep_a).pow(alpha), torch.zeros_like(lam_a))
            gb = torch.where(keep_b, _safe(lam_b, keep_b).pow(1.0 - alpha), torch.zeros_like(lam_b))
            q = torch.einsum("...i,...ij,...j->...", fa, p, gb)
            value = torch.log(q) / (alpha - 1.0)
        if alpha >= 1.0:
            value = torch.where(outside > tol, torch.full_like(value, math.inf), value)
        ctx.alpha = alpha
        ctx.save_for_backward(lam_a, keep_a, u, lam_b, keep_b, v, w, q, value)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        lam_a, keep_a, u, lam_b, keep_b, v, w, q, value = ctx.saved_tensors
        alpha = ctx.alpha
        if alpha == 1.0:
            la = torch.log(_safe(lam_a, keep_a)) * keep_a
            lb = torch.log(_safe(lam_b, keep_b)) * keep_b
            # d tr(A log A) = log A + P_A ; d(-tr(A log B))/dA = -log B ; d/dB = -V (F_log o V^T A V) V^T
            g_a = _sandwich(u, torch.diag_embed((la + 1.0) * keep_a)) - _sandwich(v, torch.diag_embed(lb))
            vav = w.mT @ torch.diag_embed(lam_a) @ w
            g_b = -_sandwich(v, _divided_log(lam_b, keep_b) * vav)
            scale = grad
        else:
            fa = torch.where(keep_a, _safe(lam_a, keep_a).pow(alpha), torch.zeros_like(lam_a))
            gb = torch.where(keep_b, _safe(lam_b, keep_b).pow(1.0 - alpha), torch.zeros_like(lam_b))
            ugu = w @ torch.diag_embed(gb) @ w.mT  # U^T g(B) U
            vfv = w.mT @ torch.diag_embed(fa) @ w  # V^T f(A) V
            g_a = _sandwich(u, _divided_power(lam_a, keep_a, alpha, mixed=True) * ugu)
            g_b = _sandwich(v, _divided_power(lam_b, keep_b, 1.0 - alpha, mixed=alpha < 1.0) * vfv)
            scale = grad / ((alpha - 1.0) * q)
        finite = torch.isfinite(value)
        scale = torch.where(finite, scale, torch.zeros_like(scale))[..., None, None]
        return scale * g_a, scale * g_b, None


def _normalised(k: torch.Tensor, name: str) -> torch.Tensor:
    trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)
    check_trace(name, trace)
    k = 0.5 * (k + k.mT)  # the value depends on the symmetric part only, so does the gradient
    return k / trace[..., None, None]


def gram_divergence(
    ka: torch.Tensor, kb: torch.Tensor, alpha: float, method: str, names: tuple[str, str] = ("a", "b")
) -> torch.Tensor:
    """``D_alpha(A || B)`` in nats of the trace-normalised PSD ``ka``, ``kb`` ``(..., n, n)``."""
    a = _normalised(ka, names[0])
    b = _normalised(kb, names[1])
    if method == "power":
        chol, info = torch.linalg.cholesky_ex(b)
        if bool((info != 0).any()):
            raise ValueError(
                f"method='power' needs {names[1]} to be positive definite (it inverts it); the Gram of "
                f"{names[1]} is singular in {int((info != 0).sum())} batch entr(y/ies). Use method='eig', "
                f"which works on the support of {names[1]}"
            )
        eye = torch.eye(b.shape[-1], dtype=b.dtype, device=b.device).expand_as(b)
        b_inv = torch.cholesky_solve(eye, chol)
        b_inv = 0.5 * (b_inv + b_inv.mT)
        k = int(alpha)
        q = (torch.linalg.matrix_power(a, k) * torch.linalg.matrix_power(b_inv, k - 1)).sum((-2, -1))
        return torch.log(q) / (alpha - 1.0)
    return _PetzTrace.apply(a, b, alpha)
