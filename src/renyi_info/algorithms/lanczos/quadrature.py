r"""Lanczos quadrature: the Gauss and Gauss-Radau rules of $v^\top g_\alpha(A) v$ from a Lanczos recurrence."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch


def g_alpha(lam: torch.Tensor, alpha: float, floor: torch.Tensor | float = 0.0) -> torch.Tensor:
    r"""$g_\alpha(\lambda) = (\lambda^\alpha - \lambda)/(1-\alpha)$, $g_1 = -\lambda\log\lambda$, $g(0)=0$.

    Computed as $\lambda\,\mathrm{expm1}((\alpha-1)\log\lambda)/(1-\alpha)$ (no cancellation near
    $\alpha = 1$); negative round-off values count as 0. For ``alpha < 1`` only, nodes at or below
    ``floor`` (the exact path's eigenvalue floor) get $g = 0$: their $\lambda^\alpha$, which
    alpha < 1 inflates, is replaced by $\lambda$ itself, a change of the round-off mass only. (Giving
    them $-\lambda/(1-\alpha)$ instead would put terms of size ``floor / (1 - alpha)`` into the
    trace estimate, whose rounding breaks the continuity at alpha = 1 in float32.) For alpha >= 1 a
    round-off node adds at most $\lambda\log(1/\lambda)$, nothing to remove.
    """
    lam = lam.clamp_min(0.0)
    pos = lam > 0
    log_lam = torch.log(torch.where(pos, lam, torch.ones_like(lam)))
    if alpha == 1.0:
        return torch.where(pos, -lam * log_lam, torch.zeros_like(lam))
    val = lam * torch.expm1((alpha - 1.0) * log_lam) / (1.0 - alpha)
    if alpha < 1.0:
        val = torch.where(lam > floor, val, torch.zeros_like(val))
    return torch.where(pos, val, torch.zeros_like(lam))


class Quadrature(NamedTuple):
    nodes: torch.Tensor  # (B, c, m) Ritz values (Gauss rule)
    weights: torch.Tensor  # (B, c, m) squared first components times |v0|^2
    first: torch.Tensor  # (B, c): v0^T A v0 (exact: first Lanczos coefficient times |v0|^2)
    radau_nodes: torch.Tensor  # (B, c, m + 1) Gauss-Radau rule with a node fixed at 0
    radau_weights: torch.Tensor  # (B, c, m + 1)
    floor: torch.Tensor  # (B, 1, 1): nodes at or below sqrt(n) eps (largest Ritz value) count as zeros
    vectors: torch.Tensor  # (B, c, m, m) eigenvectors of the tridiagonal T (columns)
    basis: torch.Tensor | None = None  # (B, c, m, n) orthonormal Lanczos vectors (if kept)


def lanczos_quadrature(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    v0: torch.Tensor,
    steps: int,
    stop: Callable[[Quadrature], bool] | None = None,
    eps: float | None = None,
    keep_basis: bool = False,
) -> Quadrature:
    r"""Gauss and Gauss-Radau rules of $v^\top f(A) v$ for every column ``v`` of ``v0`` ``(B, n, c)``.

    At most ``steps`` Lanczos steps with full re-orthogonalisation (classical Gram-Schmidt, twice) run on
    all columns at once (one batched ``matvec`` per step). With ``T = V^T A V`` tridiagonal ``(m x m)``
    and its eigenpairs $(\theta_k, u_k)$, $v^\top f(A) v \approx \lVert v\rVert^2
    \sum_k u_{1k}^2 f(\theta_k)$, exact for polynomials of degree $< 2m$ and for any ``f`` when
    the Krylov space becomes invariant (a breakdown, e.g. ``steps >= rank``: the recurrence then stops
    for that column, and zero columns contribute nothing). ``stop`` (optional) is asked with the rules
    of the first ``m`` steps at every even ``m >= 4`` and ends the recurrence when it returns True.
    ``eps``: the relative precision of ``matvec`` (default: that of ``v0``'s dtype), which sets the
    breakdown test and the round-off floor of the Ritz values. ``keep_basis``: return the (orthonormal)
    Lanczos vectors too, for $f(A)v$ (`gradient_weight`).
    """
    batch, n, c = v0.shape
    steps = min(steps, n)
    dtype = v0.dtype
    eps = max(torch.finfo(dtype).eps, eps or 0.0)
    norm = torch.linalg.vector_norm(v0, dim=-2)  # (B, c)
    tiny = torch.finfo(dtype).tiny
    q = torch.where(norm[:, None, :] > tiny, v0 / norm.clamp_min(tiny)[:, None, :], torch.zeros_like(v0))
    basis = v0.new_zeros(batch, c, steps, n)
    alphas = v0.new_zeros(batch, c, steps)
    betas = v0.new_zeros(batch, c, steps)
    q_prev = torch.zeros_like(q)
    beta_prev = v0.new_zeros(batch, c)
    scale = v0.new_zeros(batch, c)
    m = steps
    for j in range(steps):
        basis[:, :, j] = q.mT
        w = matvec(q)  # (B, n, c)
        a = (q * w).sum(-2)
        alphas[:, :, j] = a
        w = w - a[:, None, :] * q - beta_prev[:, None, :] * q_prev
        vs = basis[:, :, : j + 1]  # (B, c, j+1, n)
        wt = w.mT  # (B, c, n)
        for _ in range(2):
            wt = wt - torch.einsum("bcjn,bcj->bcn", vs, torch.einsum("bcjn,bcn->bcj", vs, wt))
        w = wt.mT
        b = torch.linalg.vector_norm(w, dim=-2)
        # one scale per batch entry (the norm of A), so that a column in the null space breaks down at once
        scale = torch.maximum(scale, (a.abs() + b).amax(-1, keepdim=True))
        ok = b > 10.0 * math.sqrt(n) * eps * scale
        b = torch.where(ok, b, torch.zeros_like(b))
        betas[:, :, j] = b
        if j == steps - 1:
            break
        if stop is not None and (j + 1) >= 4 and (j + 1) % 2 == 0:
            if stop(_rules(alphas, betas, norm, j + 1, n, eps, scale)):
                m = j + 1
                break
        q_prev = q
        q = torch.where(
            ok[:, None, :], w / torch.where(ok, b, torch.ones_like(b))[:, None, :], torch.zeros_like(w)
        )
        beta_prev = b
    quad = _rules(alphas, betas, norm, m, n, eps, scale)
    return quad._replace(basis=basis[:, :, :m]) if keep_basis else quad


def _rules(
    alphas: torch.Tensor,
    betas: torch.Tensor,
    norm: torch.Tensor,
    m: int,
    n: int,
    eps: float,
    scale: torch.Tensor,
) -> Quadrature:
    """The Gauss and Gauss-Radau rules of the first ``m`` Lanczos steps (coefficients ``(B, c, >= m)``)."""
    dtype = alphas.dtype
    alphas, betas = alphas[..., :m], betas[..., :m]
    t = (
        torch.diag_embed(alphas)
        + torch.diag_embed(betas[..., : m - 1], 1)
        + torch.diag_embed(betas[..., : m - 1], -1)
    )
    theta, u = torch.linalg.eigh(t)
    weights = u[..., 0, :] ** 2 * (norm**2)[..., None]
    # Gauss-Radau (Golub and Meurant): extend T with beta_m and the diagonal entry delta_m that makes 0 an
    # eigenvalue, delta = beta_m^2 e_m^T T^{-1} e_m. A column that broke down (beta_m = 0) is exact.
    beta_m = betas[..., m - 1]
    floor = (eps * scale).clamp_min(torch.finfo(dtype).tiny)[..., None]
    delta = beta_m**2 * (u[..., m - 1, :] ** 2 / theta.clamp_min(floor)).sum(-1)
    delta = torch.where(beta_m > 0, delta, torch.zeros_like(delta))
    tr = torch.nn.functional.pad(t, (0, 1, 0, 1))
    tr[..., m, m] = delta
    tr[..., m - 1, m] = beta_m
    tr[..., m, m - 1] = beta_m
    theta_r, u_r = torch.linalg.eigh(tr)
    weights_r = u_r[..., 0, :] ** 2 * (norm**2)[..., None]
    # Ritz values at the mat-vec round-off level (~ sqrt(n) eps |A|: a rank-deficient matrix's null space)
    # are zero eigenvalues, so that alpha <= 1 is not inflated by noise (the exact path's floor is the
    # coarser n eps lambda_max of eigvalsh)
    floor = math.sqrt(n) * eps * theta.amax((-2, -1), keepdim=True).clamp_min(0.0)
    return Quadrature(theta, weights, alphas[..., 0] * norm**2, theta_r, weights_r, floor, u)
