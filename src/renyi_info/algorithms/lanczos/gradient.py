r"""The stochastic gradient of an estimate: $\partial S/\partial K$ as a low-rank-plus-identity weight, from the
Krylov bases the value already built, attached to the value as a first-order autograd function."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from .quadrature import Quadrature


def g_prime(lam: torch.Tensor, alpha: float, floor: torch.Tensor | float = 0.0) -> torch.Tensor:
    r"""$g_\alpha'(\lambda) = -\alpha\,\psi_\alpha(\lambda) - 1$ with
    $\psi_\alpha(\lambda) = \mathrm{expm1}((\alpha-1)\log\lambda)/(\alpha-1)$ ($\log\lambda$ at
    $\alpha = 1$): no cancellation near $\alpha = 1$. Nodes at or below ``floor`` (round-off level,
    `g_alpha`) get $0$ for $\alpha \le 1$ (where $g'$ is unbounded at 0; the exact path drops such
    eigenvalues too) and $g'(0) = 1/(\alpha-1)$ for $\alpha > 1$.
    """
    lam = lam.clamp_min(0.0)
    keep = lam > floor if alpha <= 1.0 else lam > 0
    log_lam = torch.log(torch.where(keep, lam, torch.ones_like(lam)))
    if alpha == 1.0:
        psi = log_lam
    else:
        psi = torch.expm1((alpha - 1.0) * log_lam) / (alpha - 1.0)
    value = -alpha * psi - 1.0
    at_zero = 0.0 if alpha <= 1.0 else 1.0 / (alpha - 1.0)
    return torch.where(keep, value, torch.full_like(value, at_zero))


class GramWeight(NamedTuple):
    r"""A stochastic estimate of $\partial S/\partial K$ for one Gram ``K`` ``(B, n, n)``, as the
    low-rank-plus-identity matrix $\tfrac12(LR^\top + RL^\top) + c\,I$ (never materialised)."""

    left: torch.Tensor  # (B, n, r)
    right: torch.Tensor  # (B, n, r)
    diag: torch.Tensor  # (B,)


def gradient_weight(
    quad: Quadrature, k: int, alpha: float, deriv: torch.Tensor, trace: torch.Tensor
) -> GramWeight:
    r"""The stochastic gradient of the entropy estimate with respect to the unnormalised Gram ``K``.

    With $A = K/\operatorname{tr}K$ and $T = \operatorname{tr}g_\alpha(A)$,
    $\partial T/\partial K = (g'(A) - \operatorname{tr}(A\,g'(A))\,I)/\operatorname{tr}K$, and
    $\operatorname{tr}(g'(A)\,E)$ is estimated like the value (Hutch++ with the same sketch ``Q`` and
    probes $p_i = Pz_i$): $\sum_k (g'(A)q_k)^\top E q_k + \frac1N\sum_i (g'(A)p_i)^\top E p_i$, unbiased
    for any fixed ``Q``. Each $g'(A)v$ is the Lanczos approximation $\lVert v\rVert V_m g'(T_m) e_1$
    from the Krylov basis the value already built (exact once the Krylov space is invariant). The chain
    to $S$ multiplies by ``deriv`` $= dS/dT$ at the estimate. $\alpha = \infty$: $S = -\log\theta_{\max}$,
    whose gradient is $-(yy^\top/\theta_{\max} - I)/\operatorname{tr}K$ for the Ritz vector ``y``.
    """
    assert quad.basis is not None
    basis, u, nodes, weights = quad.basis, quad.vectors, quad.nodes, quad.weights
    batch, c, m = basis.shape[:3]
    if math.isinf(alpha):
        flat = nodes.masked_fill(weights <= 0, -math.inf).reshape(batch, c * m)
        best = flat.argmax(-1)  # (B,)
        col, node = best // m, best % m
        rows = torch.arange(batch, device=nodes.device)
        theta = flat[rows, best]
        y = torch.einsum("bmn,bm->bn", basis[rows, col], u[rows, col, :, node])  # unit Ritz vector
        factor = 1.0 / trace
        return GramWeight((-(factor / theta)[:, None] * y)[..., None], y[..., None], factor)
    gp = g_prime(nodes, alpha, quad.floor)  # (B, c, m)
    norm_sq = weights.sum(-1)  # (B, c): |v|^2, as sum_j u_0j^2 = 1
    gp = gp - _shifts(gp, weights, norm_sq, k)[..., None]
    coef = torch.einsum("bcij,bcj->bci", u, gp * u[..., 0, :])  # (g'(T) - c) e_1 in the Krylov basis
    norm = norm_sq.sqrt()
    w = norm[..., None] * torch.einsum("bcin,bci->bcn", basis, coef)  # (g'(A) - c) v
    v = norm[..., None] * basis[:, :, 0]
    h = (weights * nodes.clamp_min(0.0) * gp).sum(-1)  # v^T A (g'(A) - c) v
    share = torch.full((c,), 1.0 / max(c - k, 1), dtype=w.dtype, device=w.device)
    share[:k] = 1.0
    factor = deriv / trace  # (B,)
    tr_ag = (h * share).sum(-1)
    left = (w * (share[:, None] * factor[:, None, None])).mT
    return GramWeight(left, v.mT, -factor * tr_ag)


def _shifts(gp: torch.Tensor, weights: torch.Tensor, norm_sq: torch.Tensor, k: int) -> torch.Tensor:
    r"""Per-column shifts ``c`` ``(B, columns)`` of $g'$ that cut the variance without bias.

    Since $\operatorname{tr}(dA) = 0$ for a unit-trace $A$, $\operatorname{tr}((g'(A) - cI)\,dA) =
    \operatorname{tr}(g'(A)\,dA)$ for any constant ``c``; but the Hutchinson variance grows with the
    part of $g'(A)$ that is a multiple of $I$ (large for $\alpha \le 1$, where $g'$ is about
    $-\log\lambda$ on the many small eigenvalues). Probe ``p``'s own quadrature gives the mean of $g'$
    over its spectral measure, $c_p$; probe ``p`` is shifted by the mean over the *other* probes (so that
    the shift is independent of it) and the deflated columns by the mean over all: the shifted terms then
    add up to ``c tr(dA) = 0`` exactly in expectation, and the estimate stays unbiased for a fixed ``Q``.
    """
    count = gp.shape[1] - k
    shifts = torch.zeros_like(norm_sq)
    if count < 2:
        return shifts
    own = (weights[:, k:] * gp[:, k:]).sum(-1) / norm_sq[:, k:].clamp_min(torch.finfo(gp.dtype).tiny)
    total = own.sum(-1, keepdim=True)
    shifts[:, k:] = (total - own) / (count - 1)
    shifts[:, :k] = total / count
    return shifts


#: The error of a gradient of the stochastic gradient (``create_graph=True``).
SECOND_ORDER_ERROR = (
    "method='lanczos' has a first-order stochastic gradient only: its gradient cannot be differentiated again "
    "(torch.autograd.grad(..., create_graph=True) or backward(create_graph=True), as gradient penalties, "
    "Hessian-vector products and meta-learning do). Use method='eig' for that quantity (exact at any alpha, "
    "differentiable twice), or compute the first-order gradient without create_graph"
)


class AttachGradient(torch.autograd.Function):
    """``value`` (computed without autograd) with the gradient ``backward(grad, inputs, needs)``.

    First order only: a backward pass asked to build a graph (``create_graph=True``, which runs it in grad
    mode) raises `SECOND_ORDER_ERROR` instead of returning a gradient that would silently not depend on the
    inputs.
    """

    @staticmethod
    def forward(ctx, value: torch.Tensor, backward: Callable, *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.backward_fn = backward
        ctx.save_for_backward(*inputs)
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        if torch.is_grad_enabled():
            raise RuntimeError(SECOND_ORDER_ERROR)
        grads = ctx.backward_fn(grad, ctx.saved_tensors, ctx.needs_input_grad[2:])
        return (None, None, *grads)
