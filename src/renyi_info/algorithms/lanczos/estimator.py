r"""The estimator: deflation sketch, Hutchinson probes, control variate, the entropy of the estimated trace and its
errors; the entry points of validated features and matrices."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from ...kernels import KernelSpec, check_trace
from ..exact import hadamard
from ..fused import LowRankWeight, lowrank_backward
from .gradient import AttachGradient, GramWeight, gradient_weight
from .operators import DenseOperator, FeatureOperator, GramOperator
from .options import Estimate, LanczosOptions, deflation, matvec_dtype
from .quadrature import Quadrature, g_alpha, lanczos_quadrature

#: Subspace (power) iterations of the deflation sketch (>= 1).
_POWER_ITERATIONS = 1


#: A sketched direction is deflated only when its eigenvalue estimate exceeds this many times the mat-vecs'
#: round-off level ``sqrt(n) eps lambda_max``.
_DEFLATE_RESOLUTION = 1000.0


def _signs(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Rademacher (+-1) entries drawn from ``generator`` (on its device), in ``like``'s dtype and device."""
    device = generator.device if generator is not None else like.device
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return (bits * 2 - 1).to(dtype=like.dtype, device=like.device)


class _Parts(NamedTuple):
    deterministic: torch.Tensor  # (B,) tr(Q^T g(A) Q)
    x: torch.Tensor  # (B, N) (Pz)^T g(A) (Pz)
    y: torch.Tensor  # (B, N) (Pz)^T A (Pz)
    y_mean: torch.Tensor  # (B,) E y = 1 - tr(Q^T A Q)
    ritz_max: torch.Tensor  # (B,)
    bracket: torch.Tensor  # (B,) half-width of the Gauss / Gauss-Radau bracket of the trace estimate


def sketch_and_quadrature(
    op: GramOperator,
    probes: torch.Tensor,
    omega: torch.Tensor | None,
    steps: int,
    stop: Callable[[Quadrature, int], bool] | None = None,
    keep_basis: bool = False,
) -> tuple[Quadrature, int]:
    """Deflation sketch and the Lanczos quadratures of one Gram operator.

    The operator may compute in a lower precision than ``probes`` (float32 mat-vecs): its products are
    cast to ``probes``' dtype, in which the sketch, the recurrences and the quadrature run. ``stop(quad,
    k)`` may end the recurrence early (see `lanczos_quadrature`). Returns the quadrature of the columns
    ``[Q, P Z]`` and the number ``k`` of sketch columns ``Q``.
    """
    trace = op.trace.to(probes.dtype)
    check_trace("the input", trace)
    low = op.dtype

    def matvec(v: torch.Tensor) -> torch.Tensor:
        return op.matmul(v.to(low)).to(v.dtype) / trace[:, None, None]

    eps = torch.finfo(low).eps
    if omega is None:
        cond = None if stop is None else (lambda quad: stop(quad, 0))
        return lanczos_quadrature(matvec, probes, steps, cond, eps, keep_basis), 0
    q = torch.linalg.qr(matvec(omega)).Q
    for _ in range(_POWER_ITERATIONS):
        q, r = torch.linalg.qr(matvec(q))
    # |R_kk| ~ the k-th eigenvalue: directions below the mat-vecs' resolution (float32 mat-vecs at large n)
    # are noise, and deflating them would count their poorly resolved quadratic forms with weight 1; they stay
    # with the probes instead (any Q keeps Hutch++ unbiased)
    size = r.diagonal(dim1=-2, dim2=-1).abs()
    resolved = size > _DEFLATE_RESOLUTION * math.sqrt(op.n) * eps * size.amax(-1, keepdim=True)
    q = q * resolved[:, None, :]
    pz = probes - q @ (q.mT @ probes)
    k = q.shape[-1]
    cond = None if stop is None else (lambda quad: stop(quad, k))
    return lanczos_quadrature(matvec, torch.cat([q, pz], dim=-1), steps, cond, eps, keep_basis), k


def parts_for_alpha(quad: Quadrature, k: int, alpha: float, rule: str = "average") -> _Parts:
    """Split the quadratures into the deflated (deterministic) and the Hutchinson parts for one alpha.

    ``rule``: ``"average"`` (the mean of the Gauss and Gauss-Radau rules: they bracket
    $v^\top g(A) v$ when the derivatives of order ``2m`` and ``2m + 1`` of ``g`` have opposite
    signs on the spectrum, true for these ``g`` once ``2m > alpha``), ``"gauss"`` or ``"radau"``.
    """
    ritz = quad.nodes.masked_fill(quad.weights <= 0, -math.inf).amax((-2, -1))
    if not math.isfinite(alpha):
        zero = quad.first * 0.0
        return _Parts(
            zero[:, :k].sum(-1),
            zero[:, k:],
            quad.first[:, k:],
            1.0 - quad.first[:, :k].sum(-1),
            ritz,
            zero.sum(-1),
        )
    gauss = (quad.weights * g_alpha(quad.nodes, alpha, quad.floor)).sum(-1)  # (B, c)
    radau = (quad.radau_weights * g_alpha(quad.radau_nodes, alpha, quad.floor)).sum(-1)
    fx = {"average": 0.5 * (gauss + radau), "gauss": gauss, "radau": radau}[rule]
    half = 0.5 * (gauss - radau).abs()
    bracket = half[:, :k].sum(-1) + (half[:, k:].mean(-1) if half.shape[-1] > k else 0.0)
    y_mean = 1.0 - quad.first[:, :k].sum(-1)
    return _Parts(fx[:, :k].sum(-1), fx[:, k:], quad.first[:, k:], y_mean, ritz, bracket)


def _trace_parts(
    op: GramOperator,
    alpha: float,
    probes: torch.Tensor,
    omega: torch.Tensor | None,
    steps: int,
    tol: float = 0.0,
    keep_basis: bool = False,
) -> tuple[_Parts, Quadrature, int]:
    """Run the deflation sketch and the Lanczos quadratures for one Gram operator, stopping early once the
    quadrature bracket of the entropy is at most ``tol`` times the entropy (``tol = 0``: never). Returns
    the parts, the quadrature and the number of deflation columns."""
    n = op.n

    def converged(quad: Quadrature, k: int) -> bool:
        if not math.isfinite(alpha) or 2 * quad.nodes.shape[-1] <= alpha:
            return False  # (the Gauss / Gauss-Radau pair brackets tr g(A) only once 2 m > alpha)
        parts = parts_for_alpha(quad, k, alpha)
        t = parts.deterministic + parts.x.mean(-1)
        s, deriv = _entropy_of_trace(t, alpha, n)
        return bool((parts.bracket * deriv <= tol * s.abs()).all())

    quad, k = sketch_and_quadrature(op, probes, omega, steps, converged if tol > 0 else None, keep_basis)
    return parts_for_alpha(quad, k, alpha), quad, k


class TraceEstimate(NamedTuple):
    entropy: torch.Tensor  # (B,) nats
    residuals: torch.Tensor  # (B, N) per-probe residuals of the entropy (delta method)
    dof: int  # degrees of freedom left for the variance
    bracket: torch.Tensor  # (B,) quadrature bracket half-width mapped to the entropy (delta method)
    deriv: torch.Tensor  # (B,) dS/dT at the estimate


def entropy_from_parts(parts: _Parts, alpha: float, n: int, eps: float = 0.0) -> TraceEstimate:
    """Combine the parts (control variate), map T to the entropy and its per-probe residuals; ``eps``: the
    relative precision of the mat-vecs, when coarser than that of the parts' dtype."""
    x, y = parts.x, parts.y
    count = x.shape[-1]
    if math.isinf(alpha):
        s = -torch.log(parts.ritz_max.clamp(min=1.0 / n, max=1.0))
        return TraceEstimate(
            s, torch.zeros_like(x), max(count - 1, 0), torch.zeros_like(s), torch.ones_like(s)
        )
    xc = x - x.mean(-1, keepdim=True)
    yc = y - y.mean(-1, keepdim=True)
    if count >= 3:
        var_y = (yc * yc).sum(-1)
        slope = torch.where(var_y > 0, (xc * yc).sum(-1) / torch.where(var_y > 0, var_y, 1.0), 0.0)
        dof = count - 2
    else:
        slope = torch.zeros_like(parts.y_mean)
        dof = count - 1
    t = parts.deterministic + x.mean(-1) - slope * (y.mean(-1) - parts.y_mean)
    resid = xc - slope[:, None] * yc
    # rounding of T: its terms are O(|T| + 1) and a few hundred of them are summed, each from mat-vecs
    # of relative precision `eps` (float32 mat-vecs: float32's)
    rounding = 64.0 * max(torch.finfo(t.dtype).eps, eps) * (t.abs() + 1.0)
    s, deriv = _entropy_of_trace(t, alpha, n)
    if 1.0 < alpha:
        # For large alpha, tr A^alpha = 1 / deriv is a tiny difference of O(1) terms: refuse when the estimate
        # does not resolve it (its error bars could not cover the truth), rather than return a number.
        # (alpha < 1: tr A^alpha >= 1, the log is Lipschitz there and nothing cancels)
        trace_power = 1.0 / deriv
        spread = abs(1.0 - alpha) * (3.0 * stderr_from_residuals(resid, dof) + parts.bracket + rounding)
        unresolved = spread >= 0.5 * trace_power
        if bool(unresolved.any()):
            raise ValueError(
                f"method='lanczos' cannot resolve tr(A^alpha) at alpha = {alpha}: it estimates tr(A^alpha) = "
                f"1 + (1 - alpha) tr g(A), and here tr(A^alpha) = {float(trace_power[unresolved].amin()):.3g} is "
                f"below the estimate's own error ({float(spread[unresolved].amax()):.3g}). Use method='eig' "
                "(exact, log-domain, any alpha) or a smaller alpha"
            )
    bracket = (parts.bracket + rounding) * deriv
    return TraceEstimate(s, resid * deriv[:, None], dof, bracket, deriv)


def _entropy_of_trace(t: torch.Tensor, alpha: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The entropy of an estimated ``T = tr g_alpha(A)`` (clipped to its possible range) and ``dS/dT``."""
    log_n = math.log(n)
    if alpha == 1.0:
        return t.clamp(0.0, log_n), torch.ones_like(t)
    # tr A^alpha = 1 + (1 - alpha) T lies in [n^(1-alpha), 1] (alpha > 1) or [1, n^(1-alpha)] (alpha < 1)
    bound = math.expm1((1.0 - alpha) * log_n)
    lo, hi = (bound, 0.0) if alpha > 1 else (0.0, bound)
    u = ((1.0 - alpha) * t).clamp(lo, hi)
    return torch.log1p(u) / (1.0 - alpha), 1.0 / (1.0 + u)


def stderr_from_residuals(residuals: torch.Tensor, dof: int) -> torch.Tensor:
    count = residuals.shape[-1]
    return torch.sqrt((residuals * residuals).sum(-1) / (max(dof, 1) * count))


def draws(
    n: int, batch: int, like: torch.Tensor, options: LanczosOptions, with_gradient: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sketch matrix (drawn first) and probes, shared by every Gram of one call (common random numbers)."""
    k = min(deflation(options, with_gradient), n)
    omega = _signs((batch, n, k), options.generator, like) if k > 0 else None
    probes = _signs((batch, n, options.probes), options.generator, like)
    return probes, omega


def estimate_entropies(
    ops: Sequence[GramOperator],
    alpha: float,
    options: LanczosOptions,
    like: torch.Tensor,
    with_gradient: bool = False,
) -> list[tuple[TraceEstimate, GramWeight | None]]:
    """Entropy estimates (nats) of several Gram operators on the same ``(B, n)`` samples, same probes, each
    with its stochastic gradient weight (`gradient_weight`) when ``with_gradient``."""
    n = ops[0].n
    batch = like.shape[0]
    probes, omega = draws(n, batch, like, options, with_gradient)
    tol = float(options.tol)
    out: list[tuple[TraceEstimate, GramWeight | None]] = []
    for op in ops:
        parts, quad, k = _trace_parts(op, alpha, probes, omega, options.steps, tol, with_gradient)
        est = entropy_from_parts(parts, alpha, n, torch.finfo(op.dtype).eps)
        weight = (
            gradient_weight(quad, k, alpha, est.deriv, op.trace.to(like.dtype)) if with_gradient else None
        )
        out.append((est, weight))
    return out


class _Term(NamedTuple):
    """One entropy of a quantity: the inputs whose Hadamard-product Gram it is (bit ``l`` = input ``l``), and
    its sign in the sum."""

    mask: int
    sign: float


def _terms(kind: str, count: int) -> list[_Term]:
    """The entropies of ``kind``: ``S(all)``, or the MI ``S(x) + S(rest) - S(all)``."""
    every = (1 << count) - 1
    if kind == "entropy":
        return [_Term(every, 1.0)]
    return [_Term(1, 1.0), _Term(every & ~1, 1.0), _Term(every, -1.0)]


def _members(mask: int, items: Sequence) -> list:
    """The items whose bit is set in ``mask``."""
    return [item for i, item in enumerate(items) if mask >> i & 1]


def _estimate(
    terms: Sequence[_Term],
    ops: list[GramOperator],
    alpha: float,
    options: LanczosOptions,
    like: torch.Tensor,
    with_gradient: bool = False,
) -> tuple[Estimate, list[GramWeight]]:
    """Nats, flat batch ``(B,)``: the signed sum of the entropies of ``ops`` (one per term), and
    (``with_gradient``) each operator's gradient weight."""
    n = ops[0].n
    if math.isfinite(alpha) and options.steps < n and 2 * options.steps <= alpha:
        raise ValueError(
            f"method='lanczos' with LanczosOptions.steps = {options.steps} cannot bound its quadrature error at "
            f"alpha = {alpha}: the Gauss / Gauss-Radau pair brackets tr g(A) only when 2 * steps > alpha. Pass "
            f"LanczosOptions(steps={math.floor(alpha / 2) + 1}) or more, or use method='eig' (exact, any alpha)"
        )
    results = estimate_entropies(ops, alpha, options, like, with_gradient)
    value = torch.zeros_like(results[0][0].entropy)
    resid = torch.zeros_like(results[0][0].residuals)
    bracket = torch.zeros_like(value)
    for term, (r, _) in zip(terms, results):
        value = value + term.sign * r.entropy
        resid = resid + term.sign * r.residuals
        bracket = bracket + r.bracket
    weights = [w for _, w in results if w is not None]
    return Estimate(value, stderr_from_residuals(resid, results[0][0].dof), bracket), weights


def _needs_gradient(tensors: Sequence[torch.Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def features_nats(
    kind: str,
    feats: Sequence[torch.Tensor],
    specs: Sequence[KernelSpec],
    alpha: float,
    options: LanczosOptions,
) -> Estimate:
    """SLQ of validated features ``(..., n, d_l)`` (compute dtype): joint entropy of all (``kind="entropy"``)
    or the mutual information of ``feats[0]`` and ``feats[1]`` (``kind="mutual_information"``), in nats.

    Differentiable with respect to ``feats`` (the value; ``stderr`` and ``quadrature`` are constants): the
    stochastic gradient of `gradient_weight`, pulled back to the features through the kernels tile by
    tile (`renyi_info.algorithms.fused.lowrank_backward`), never forming an ``n x n`` matrix.
    """
    batch_shape = tuple(feats[0].shape[:-2])
    n = feats[0].shape[-2]
    like = feats[0].detach().reshape(-1, *feats[0].shape[-2:])
    with_gradient = _needs_gradient(feats)
    low = matvec_dtype(options, alpha, like.dtype, specs, with_gradient)
    flat = [x.detach().reshape(-1, *x.shape[-2:]) for x in feats]
    terms = _terms(kind, len(feats))
    ops: list[GramOperator] = [
        FeatureOperator(_members(t.mask, flat), _members(t.mask, specs), low) for t in terms
    ]
    est, weights = _estimate(terms, ops, alpha, options, like, with_gradient)
    value = est.value
    if with_gradient:
        kernels = [s.tile() for s in specs]

        def backward(grad: torch.Tensor, xs: Sequence[torch.Tensor], needs: Sequence[bool]) -> list:
            scaled = [
                LowRankWeight(
                    t.mask,
                    w.left * (t.sign * grad)[:, None, None],
                    w.right,
                    (w.diag * t.sign * grad)[:, None].expand(-1, n),
                )
                for t, w in zip(terms, weights)
            ]
            return lowrank_backward(xs, kernels, scaled, needs)

        prepared = [s.tile_features(x.reshape(-1, *x.shape[-2:])).contiguous() for x, s in zip(feats, specs)]
        value = AttachGradient.apply(value, backward, *prepared)
    return Estimate(value.reshape(batch_shape), *(t.reshape(batch_shape) for t in est[1:]))


def matrices_nats(kind: str, mats: Sequence[torch.Tensor], alpha: float, options: LanczosOptions) -> Estimate:
    """Same as `features_nats` for validated Gram matrices ``(..., n, n)`` in the compute dtype (differentiable
    with respect to ``mats``: the gradient is the dense form of `gradient_weight`)."""
    batch_shape = tuple(mats[0].shape[:-2])
    like = mats[0].detach().reshape(-1, *mats[0].shape[-2:])
    with_gradient = _needs_gradient(mats)
    low = matvec_dtype(options, alpha, like.dtype, None, with_gradient)
    flat = [m.detach().reshape(-1, *m.shape[-2:]).to(low) for m in mats]
    terms = _terms(kind, len(mats))
    ops: list[GramOperator] = [DenseOperator(hadamard(_members(t.mask, flat))) for t in terms]
    est, weights = _estimate(terms, ops, alpha, options, like, with_gradient)
    value = est.value
    if with_gradient:

        def backward(grad: torch.Tensor, ms: Sequence[torch.Tensor], needs: Sequence[bool]) -> list:
            grads: list[torch.Tensor | None] = [
                torch.zeros_like(m) if need else None for m, need in zip(ms, needs)
            ]
            for t, w in zip(terms, weights):
                dense = 0.5 * (w.left @ w.right.mT + w.right @ w.left.mT)
                dense = dense + torch.diag_embed(w.diag[:, None].expand(-1, dense.shape[-1]))
                dense = dense * (t.sign * grad)[:, None, None]
                for li, g in enumerate(grads):
                    if g is not None and t.mask >> li & 1:
                        others = [m for mi, m in enumerate(ms) if mi != li and t.mask >> mi & 1]
                        g.add_(hadamard([dense, *others]))
            return grads

        value = AttachGradient.apply(value, backward, *[m.reshape(-1, *m.shape[-2:]) for m in mats])
    return Estimate(value.reshape(batch_shape), *(t.reshape(batch_shape) for t in est[1:]))


def gram_entropy_lanczos(
    k: torch.Tensor, alpha: float, options: LanczosOptions | None = None
) -> torch.Tensor:
    """Entropy in nats of ``k / tr k`` (``(..., n, n)``) by SLQ (``method="lanczos"`` of `renyi_info.gram_level.gram_entropy`)."""
    return matrices_nats("entropy", [k], alpha, options or LanczosOptions()).value
