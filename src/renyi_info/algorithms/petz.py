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
from .exact import scaled_matrix_power


def _keep(lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues with round-off negatives clamped and the relative floor ``n eps lam_max`` set to 0."""
    lam = lam.clamp_min(0.0)
    floor = lam.shape[-1] * torch.finfo(lam.dtype).eps * lam[..., -1:]
    keep = lam > floor
    return torch.where(keep, lam, torch.zeros_like(lam)), keep


def _safe(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return torch.where(keep, x, torch.ones_like(x))


def _divided_power(
    x: torch.Tensor, keep: torch.Tensor, p: float, mixed: bool, log_shift: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Divided differences ``(x_i^p - x_j^p) / (x_i - x_j)`` ``(..., n, n)`` of kept eigenvalues, times
    ``exp(-log_shift)`` (``log_shift`` ``(..., 1, 1)``: keeps large orders from over- or underflowing).

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
    out = torch.where(both, torch.exp((p - 1.0) * torch.log(hi) - log_shift) * ratio, torch.zeros_like(t))
    if mixed:
        one = keep.unsqueeze(-1) ^ keep.unsqueeze(-2)
        kept = torch.where(keep.unsqueeze(-1), xi, xj)
        out = torch.where(one, torch.exp((p - 1.0) * torch.log(kept) - log_shift), out)
    return out


def _divided_h(x: torch.Tensor, keep: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""Divided differences of $h(x) = x^\alpha - x$ without cancellation near $\alpha = 1$.

    With $\varphi(x) = x^{\alpha-1} - 1 = \mathrm{expm1}((\alpha-1)\log x)$, $h = x\varphi$
    and $h[x, y] = \varphi(y) + x\,\varphi[x, y]$, where $\varphi[x,y]$ is the divided
    difference of $x^{\alpha-1}$ (`_divided_power`, itself in expm1 form). A kept ``x`` with a
    dropped (zero) partner gets $h(x)/x = \varphi(x)$; two dropped get $h'(0) = -1$.
    """
    xs = _safe(x, keep)
    phi = torch.expm1((alpha - 1.0) * torch.log(xs))
    xi = xs.unsqueeze(-1)
    both = keep.unsqueeze(-1) & keep.unsqueeze(-2)
    out = phi.unsqueeze(-2) + xi * _divided_power(x, keep, alpha - 1.0, mixed=False)
    one = keep.unsqueeze(-1) ^ keep.unsqueeze(-2)
    kept_phi = torch.where(keep.unsqueeze(-1), phi.unsqueeze(-1), phi.unsqueeze(-2))
    return torch.where(both, out, torch.where(one, kept_phi, -torch.ones_like(out)))


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
    r"""``D_alpha(A || B)`` in nats of unit-trace symmetric PSD ``a``, ``b`` with Daleckii–Krein gradients.

    The value is the classical Rényi divergence of the Nussbaum–Szkoła pair
    $P_{ij} = a_i |u_i^\top v_j|^2$, $Q_{ij} = b_j |u_i^\top v_j|^2$ (Petz's trace equals
    $\sum P^\alpha Q^{1-\alpha}$), evaluated with $\mu = P/\sum P$ and
    $\Delta_{ij} = \log a_i - \log b_j$ as $\log\sum\mu e^{(\alpha-1)\Delta}/(\alpha-1)$: by
    ``log1p`` of $\sum\mu\,\mathrm{expm1}((\alpha-1)\Delta)$ near $\alpha = 1$ (continuous
    through 1) and by ``logsumexp`` elsewhere (any alpha, no overflow of $b^{1-\alpha}$). Overlaps
    $|u_i^\top v_j| \le n\epsilon$ are the rounding of the eigenvectors and count as 0, so that
    $D_\alpha(A\|A) = 0$ at every alpha (a round-off overlap times $(a_i/a_j)^{\alpha-1}$
    would otherwise dominate for large alpha). Non-negative (a classical divergence): only the rounding
    below 0 is clamped.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        lam_a, u = torch.linalg.eigh(a)
        lam_b, v = torch.linalg.eigh(b)
        lam_a, keep_a = _keep(lam_a)
        lam_b, keep_b = _keep(lam_b)
        n = a.shape[-1]
        eps = torch.finfo(a.dtype).eps
        w = u.mT @ v  # w[i, j] = u_i . v_j
        w = torch.where(w.abs() > n * eps, w, torch.zeros_like(w))  # round-off overlaps (also for backward)
        p = w * w
        pa = lam_a / lam_a.sum(-1, keepdim=True)
        pb = lam_b / lam_b.sum(-1, keepdim=True)
        # mass of A outside the support of B: sum over dropped j of v_j^T A v_j
        outside = (pa.unsqueeze(-1) * p * (~keep_b).unsqueeze(-2)).sum((-2, -1))
        tol = math.sqrt(eps)
        pair = keep_a.unsqueeze(-1) & keep_b.unsqueeze(-2) & (p > 0)
        mass = torch.where(pair, pa.unsqueeze(-1) * p, torch.zeros_like(p))
        m = mass.sum((-2, -1))
        mu = mass / m[..., None, None]
        la, lb = torch.log(_safe(pa, keep_a)), torch.log(_safe(pb, keep_b))
        delta = torch.where(pair, la.unsqueeze(-1) - lb.unsqueeze(-2), torch.zeros_like(p))
        if alpha == 1.0:
            value = (mu * delta).sum((-2, -1))
            log_q = torch.zeros_like(value)
        else:
            t = (alpha - 1.0) * delta
            near_sum = torch.where(pair, mu * torch.expm1(t), torch.zeros_like(t)).sum((-2, -1))
            near = near_sum.abs() < 0.5
            lse = torch.logsumexp(
                torch.where(pair, torch.log(_safe(mu, pair)) + t, torch.full_like(t, -math.inf)), (-2, -1)
            )
            log_rel = torch.where(
                near, torch.log1p(torch.where(near, near_sum, torch.zeros_like(near_sum))), lse
            )
            value = log_rel / (alpha - 1.0)
            real_outside = outside > tol
            if alpha < 1.0:  # a real mass outside supp B lowers tr(A^a B^(1-a)) by the factor m
                value = value + torch.where(real_outside, torch.log(m) / (alpha - 1.0), torch.zeros_like(m))
            log_q = log_rel + torch.log(m)
        value = value.clamp_min(0.0)
        if alpha >= 1.0:
            value = torch.where(outside > tol, torch.full_like(value, math.inf), value)
        ctx.alpha = alpha
        ctx.save_for_backward(lam_a, keep_a, u, lam_b, keep_b, v, w, log_q, value)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        lam_a, keep_a, u, lam_b, keep_b, v, w, log_q, value = ctx.saved_tensors
        alpha = ctx.alpha
        # Every gradient in A (and B) below omits the multiple of the identity that the derivative of
        # tr(A) contributes: the trace normalisation a = k / tr k upstream annihilates it exactly, and near
        # alpha = 1 it is the 1/(alpha - 1)-sized term whose cancellation would cost every digit.
        la = torch.log(_safe(lam_a, keep_a))
        lb = torch.log(_safe(lam_b, keep_b))
        if alpha == 1.0:
            la, lb = la * keep_a, lb * keep_b
            # d tr(A log A) = log A + P_A ; d(-tr(A log B))/dA = -log B ; d/dB = -V (F_log o V^T A V) V^T
            g_a = _sandwich(u, torch.diag_embed((la + 1.0) * keep_a)) - _sandwich(v, torch.diag_embed(lb))
            vav = w.mT @ torch.diag_embed(lam_a) @ w
            g_b = -_sandwich(v, _divided_log(lam_b, keep_b) * vav)
            scale = grad
        elif abs(alpha - 1.0) <= 0.5:
            # q = tr(A^a G), G = B^(1-a) = I + Gt: dq/dA = I + Gt + U (h[.,.] o U^T G U) U^T, h = x^a - x
            gb = torch.where(keep_b, torch.exp((1.0 - alpha) * lb), torch.zeros_like(lam_b))
            gt = torch.where(keep_b, torch.expm1((1.0 - alpha) * lb), -torch.ones_like(lam_b))
            fa = torch.where(keep_a, torch.exp(alpha * la), torch.zeros_like(lam_a))
            ugu = w @ torch.diag_embed(gb) @ w.mT  # U^T G U
            vfv = w.mT @ torch.diag_embed(fa) @ w  # V^T f(A) V
            g_a = _sandwich(v, torch.diag_embed(gt)) + _sandwich(u, _divided_h(lam_a, keep_a, alpha) * ugu)
            g_b = _sandwich(v, _divided_power(lam_b, keep_b, 1.0 - alpha, mixed=alpha < 1.0) * vfv)
            scale = grad / ((alpha - 1.0) * torch.exp(log_q))
        else:
            # far from 1, in scaled form: f(A) / e^{s_a} and G / e^{s_b} with s_a + s_b = log q
            s_a = torch.where(keep_a, alpha * la, torch.full_like(la, -math.inf)).amax(-1)
            s_b = log_q - s_a
            big = 0.25 * math.log(torch.finfo(lam_a.dtype).max)
            exp_a = torch.where(keep_a, alpha * la - s_a[..., None], torch.zeros_like(la))
            exp_b = torch.where(keep_b, (1.0 - alpha) * lb - s_b[..., None], torch.zeros_like(lb))
            # f(A) / e^{s_a} <= 1 (its underflow only drops negligible products), but B^(1-alpha) / e^{s_b}
            # and its divided differences (up to e^{exp_b - log b}) must not overflow: when they would,
            # the products the gradient needs span more than the dtype's range
            if bool(torch.where(keep_b, exp_b - lb > big, torch.zeros_like(keep_b)).any()):
                raise ValueError(
                    f"the gradient of the divergence at alpha = {alpha} is out of {lam_a.dtype}'s range for these "
                    f"matrices: their eigenvalue ratios raised to alpha - 1 = {alpha - 1.0:g} exceed it (the value "
                    "itself is exact). Use a smaller alpha for training, or compute_dtype=torch.float64"
                )
            ea = torch.where(keep_a, torch.exp(exp_a), torch.zeros_like(la))
            eb = torch.where(keep_b, torch.exp(exp_b), torch.zeros_like(lb))
            ugu = w @ torch.diag_embed(eb) @ w.mT
            vfv = w.mT @ torch.diag_embed(ea) @ w
            da = _divided_power(lam_a, keep_a, alpha, mixed=True, log_shift=s_a[..., None, None])
            db = _divided_power(lam_b, keep_b, 1.0 - alpha, mixed=alpha < 1.0, log_shift=s_b[..., None, None])
            g_a = _sandwich(u, da * ugu)
            g_b = _sandwich(v, db * vfv)
            scale = grad / (alpha - 1.0)
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
        # tr(A^k B^-(k-1)) = sum(A^k * B^-(k-1)) (both symmetric), each power in scaled form
        pa, ca = scaled_matrix_power(a, k)
        pb, cb = scaled_matrix_power(b_inv, k - 1)
        log_q = torch.log((pa * pb).sum((-2, -1))) + ca + cb
        # The sum has terms up to |A^k|_F |B^-(k-1)|_F and a result q >= 1 (D >= 0): rounding moves D by up
        # to log1p(n eps |A^k|_F |B^-(k-1)|_F) / (k - 1); refuse when that is not small.
        n = a.shape[-1]
        log_terms = torch.log(torch.linalg.matrix_norm(pa) * torch.linalg.matrix_norm(pb)) + ca + cb
        err = torch.log1p(n * torch.finfo(a.dtype).eps * torch.exp(log_terms.clamp_max(700.0))) / (k - 1)
        if bool((err > 1e-6).any()):
            raise ValueError(
                f"method='power' cannot compute the divergence at alpha = {alpha} for this {names[1]}: it inverts "
                f"{names[1]} and raises the inverse to the power {k - 1}, so rounding could move the result by up "
                f"to {float(err.max()):.3g} nats. Use method='eig' (log-domain, accurate at every alpha)"
            )
        return (log_q / (alpha - 1.0)).clamp_min(0.0)
    return _PetzTrace.apply(a, b, alpha)
