r"""Stochastic Lanczos quadrature (SLQ): matrix-free estimates of Rényi entropies at any order.

The exact routes need the spectrum of the ``n x n`` Gram matrix (``O(n^3)`` time, ``O(n^2)`` memory).
``method="lanczos"`` estimates the same quantities from matrix-vector products only (Gong, Dong, Yu
et al., arXiv:2112.13720; Dong et al., arXiv:2205.07426; Ubaru, Chen and Saad, SIMAX 2017).

**The estimated trace.** Every order is written through one trace, with $\operatorname{tr}A = 1$:

$$
g_\alpha(\lambda) = \frac{\lambda^\alpha - \lambda}{1-\alpha} \;\;(g_1(\lambda) = -\lambda\log\lambda),
\qquad T = \operatorname{tr} g_\alpha(A), \qquad
S_\alpha = \frac{\log\big(1 + (1-\alpha)\,T\big)}{1-\alpha} \;\;(S_1 = T).
$$

Since $\operatorname{tr}(A^\alpha) = 1 + (1-\alpha)T$ exactly, the estimation error of $T$
is not amplified by $1/|1-\alpha|$ near $\alpha = 1$ (estimating
$\operatorname{tr}A^\alpha$ itself would be), and $\alpha = 1$ is the same computation.

**The estimator** (for each Gram matrix, all columns batched through one mat-vec per step):

1. *Deflation* (Hutch++, Meyer et al. 2021): an orthonormal $Q$ (``n x deflate``) spanning
   $A\,\mathrm{orth}(A\Omega)$ for a random sign matrix $\Omega$ captures the dominant
   eigenvectors; $\operatorname{tr}(Q^\top g(A) Q)$ is computed by Lanczos quadrature from each
   column of $Q$ (near-eigenvectors: the quadrature converges in few steps).
2. *Hutchinson*: with Rademacher probes $z_i$ and $P = I - QQ^\top$,
   $x_i = (Pz_i)^\top g(A)(Pz_i)$ by Lanczos quadrature (``steps`` Lanczos steps, full
   re-orthogonalisation): $\mathbb E\,x_i = \operatorname{tr}(P g(A) P)$. Each quadratic form
   is the mean of the Gauss rule and the Gauss-Radau rule with a node fixed at 0 (Golub and Meurant):
   the two bracket the true value, because the derivatives of $g_\alpha$ of orders ``2m`` and
   ``2m + 1`` have opposite signs on $(0, \infty)$ once ``2m > alpha``; their half-difference is
   reported as the quadrature error bound.
3. *Control variate*: $y_i = (Pz_i)^\top A (Pz_i)$ is free (the first Lanczos coefficient) and
   has the exactly known mean $1 - \operatorname{tr}(Q^\top A Q)$; the estimate is
   $\operatorname{tr}(Q^\top g Q) + \bar x - \hat c\,(\bar y - \mathbb E y)$ with the
   least-squares slope $\hat c$ (used with 3 or more probes).

The standard error (`entropy_estimate`) is the spread of the regression residuals over the
probes mapped through $dS/dT = 1/\operatorname{tr}(A^\alpha)$; the quadrature error is reported
separately (`Estimate` ``.quadrature``: the bracket half-width, a conservative bound).
Estimates of $\operatorname{tr}A^\alpha$ are clipped to the range every unit-trace PSD matrix
satisfies, so entropies always lie in $[0, \log n]$.

$\alpha = \infty$ uses the largest Ritz value over all Lanczos runs (a lower bound of
$\lambda_{\max}$ that converges quickly, so the entropy is a slight over-estimate); it has no
standard error.

**Mat-vecs never materialise ``n x n``.** For one linear/cosine kernel $Kz = X(X^\top z)$
(``O(nd)``); for the Hadamard product of two, $(K_1\circ K_2)z =
\operatorname{rowdot}(X_1 (X_1^\top \operatorname{diag}(z) X_2), X_2)$ (``O(n d_1 d_2)``, used when
cheaper than tiles); otherwise (gaussian, polynomial, label, three or more inputs) row tiles of
$K$ are recomputed at each product (``O(n^2 \sum d_l)`` time, ``O(\text{tile}\cdot n)`` memory;
a Gaussian tile is one matrix product of augmented features giving the exponent, then ``exp``; only the
row blocks of the upper triangle are evaluated, each used for its rows and, transposed, its columns). The
matrix API (``renyi_info.matrix``) multiplies the given matrix.

**Speed defaults.** The recurrence stops before ``steps`` once the Gauss / Gauss-Radau bracket of every
estimated entropy is below ``tol`` times the entropy (`LanczosOptions`), and for finite alpha > 1 the
mat-vecs run in float32 while the recurrences, re-orthogonalisation and quadrature stay in the compute
dtype (the float32 rounding enters the reported quadrature bound).

**Gradients** (inputs that require grad). With $A = K/\operatorname{tr}K$,
$dS/dT = 1/\operatorname{tr}A^\alpha$ and
$\partial T/\partial K = (g'(A) - \operatorname{tr}(A\,g'(A))\,I)/\operatorname{tr}K$. The trace
$\operatorname{tr}(g'(A)\,dA)$ is estimated like the value, from the same sketch and probes, with the
vectors $g'(A)v \approx \lVert v\rVert V_m g'(T_m)e_1$ taken from the Krylov bases the value already built
(`gradient_weight`); the resulting weight $\tfrac12(LR^\top + RL^\top) + cI$ (rank ``2 (probes + deflate)``)
is pulled back to the features through the kernels tile by tile, as the fused backward pass does
(`renyi_info.algorithms.fused.lowrank_backward`): ``O(n^2 (d + probes + deflate))`` time, no ``n x n``
buffer. Because $\operatorname{tr}dA = 0$, $g'$ may be shifted by any constant; each probe is shifted by
the mean of $g'$ over the other probes' spectral measures (independent of it), which removes the large
multiple of $I$ that $g' \approx -\log\lambda$ has on the many small eigenvalues of smooth kernels.
The estimate is then unbiased for a fixed sketch and complete Krylov spaces, up to the chain rule through
the estimated trace, $S'(\hat T)\nabla\hat T$, whose bias is at most about
$|\alpha-1|\,\mathrm{sd}(\hat S)\,\mathrm{sd}(\nabla\hat S) + (\alpha-1)^2\mathrm{var}(\hat S)\,|\nabla S|$
(zero at $\alpha = 1$; a fraction $|\alpha-1|\,\mathrm{sd}(\hat S)$ of the gradient's own noise, where
$\mathrm{sd}(\hat S)$ is the value's standard error, `entropy_estimate`); with fewer steps
than the Krylov space needs, the Lanczos approximation of $g'(A)v$ adds a truncation bias (measured in
``benchmarks/bench_slq_grad.py``). ``stderr`` and ``quadrature`` are constants for autograd.

**Small eigenvalues.** $g_\alpha$ is smooth on $(0, 1]$ but for $\alpha < 1$ (and
$\alpha = 1$) it has an infinite slope at 0; a Gauss rule lumps the mass of the many tiny
eigenvalues of a smooth kernel onto its smallest Ritz value and over-estimates
$\operatorname{tr}g(A)$, the Gauss-Radau rule (node at 0) under-estimates it. Their mean cuts
this bias several-fold, but small $\alpha$ (e.g. 0.5) still needs more ``steps`` than
$\alpha \ge 1$ (see the guide's accuracy tables); $\alpha > 1$ converges fast. Ritz values
at round-off level (below $\sqrt n\,\epsilon\,\theta_{\max}$) count as zero eigenvalues, as the exact path's
eigenvalue floor does, so that the null space of a rank-deficient Gram adds no entropy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..kernels import SQRT_TINY, KernelSpec, abs_max, check_trace, normalize_rows, rule_bandwidth
from .exact import hadamard
from .fused import LowRankWeight, lowrank_backward, tile_features
from .tiles import tile_kernel

__all__ = [
    "Estimate",
    "LanczosOptions",
    "features_nats",
    "gram_entropy_lanczos",
    "matrices_nats",
]

#: Row tiles of a recomputed kernel hold at most this many entries per batch (4 MiB in float64: the
#: elementwise passes over a tile stay in cache; measured fastest on a 2-core x86 CPU).
_TILE_ENTRIES = 1 << 19
#: Subspace (power) iterations of the deflation sketch (>= 1).
_POWER_ITERATIONS = 1
#: A sketched direction is deflated only when its eigenvalue estimate exceeds this many times the mat-vecs'
#: round-off level ``sqrt(n) eps lambda_max``.
_DEFLATE_RESOLUTION = 1000.0


@dataclass(frozen=True)
class LanczosOptions:
    r"""Settings of the stochastic Lanczos quadrature estimator (``method="lanczos"``).

    Cost: ``steps + 1 + 1`` passes over the kernel (one mat-vec per pass with ``probes + deflate``
    columns, plus the sketch), i.e. ``O((steps + 2) n^2 (d + probes + deflate))`` for recomputed kernels.

    Args:
        probes: Rademacher probe vectors of the Hutchinson part (>= 1; >= 3 for a standard error and the
            control variate). The random error falls like ``1 / sqrt(probes)``.
        steps: the most Lanczos steps per probe = Gauss quadrature nodes (>= 1; capped at ``n``). Controls
            the quadrature (bias) error; 20-40 suffices for smooth spectra, ``alpha < 1`` needs more.
        tol: stop the Lanczos recurrence before ``steps`` once the quadrature bracket (the Gauss /
            Gauss-Radau half-width, mapped to the entropy) of every estimated entropy is at most
            ``tol`` times the entropy (checked every second step from step 4). ``0`` always runs ``steps``.
        matvec_dtype: precision of the kernel tiles and mat-vec products. ``None`` (automatic): float32
            for a value at finite alpha > 1 (whose estimates do not depend on the smallest eigenvalues) on
            features under cosine, gaussian or label kernels (bounded entries), the compute dtype otherwise
            (linear and polynomial kernels, Gram matrices, and inputs that require grad: float32 products
            cannot resolve the sketched directions the gradient's deflation needs); the Lanczos recurrences,
            re-orthogonalisation and quadrature always run in the compute dtype.
        deflate: dimension of the sketched dominant subspace handled separately (>= 0; capped at ``n``).
            Removes the variance the top eigenvalues cause (concentrated spectra: gaussian kernels with a
            large bandwidth, low-rank features). 0 disables it. ``None`` (automatic): 16 for a value,
            128 when the inputs require grad (the gradient's variance falls steeply with it: 3x lower
            relative error at n = 4096 for a few % more time, ``benchmarks/bench_slq_grad.py``).
        generator: the `torch.Generator` the probes and the sketch are drawn from (same seed,
            same result); ``None`` uses torch's global generator.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.

    Example:
        >>> import torch, renyi_info
        >>> opts = renyi_info.LanczosOptions(probes=16, steps=20, generator=torch.Generator().manual_seed(0))
        >>> x = torch.randn(300, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        >>> approx = renyi_info.entropy(x, alpha=1.5, kernel="gaussian", sigma=2.0, method="lanczos", lanczos=opts)
        >>> exact = renyi_info.entropy(x, alpha=1.5, kernel="gaussian", sigma=2.0)
        >>> bool(abs(approx - exact) < 0.02 * exact)
        True
    """

    probes: int = 16
    steps: int = 20
    deflate: int | None = None
    generator: torch.Generator | None = None
    tol: float = 5e-3
    matvec_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        for name, low in (("probes", 1), ("steps", 1), ("deflate", 0)):
            value = getattr(self, name)
            if name == "deflate" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                expected = f"an integer >= {low}" + (" or None (automatic)" if name == "deflate" else "")
                raise TypeError(f"LanczosOptions.{name} must be {expected}; got {value!r}")
            if value < low:
                raise ValueError(f"LanczosOptions.{name} must be >= {low}; got {value}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real):
            raise TypeError(f"LanczosOptions.tol must be a real number >= 0; got {self.tol!r}")
        if not 0.0 <= float(self.tol) < math.inf:
            raise ValueError(
                f"LanczosOptions.tol must be finite and >= 0 (0: always run `steps`); got {self.tol}"
            )
        if self.matvec_dtype not in (None, torch.float32, torch.float64):
            raise ValueError(
                f"LanczosOptions.matvec_dtype must be None (automatic), torch.float32 or torch.float64; "
                f"got {self.matvec_dtype!r}"
            )
        if self.generator is not None and not isinstance(self.generator, torch.Generator):
            raise TypeError(
                f"LanczosOptions.generator must be a torch.Generator or None; got {type(self.generator).__name__}"
            )


class Estimate(NamedTuple):
    """A stochastic estimate with its two error measures (same shape and unit), as a named tuple.

    Attributes:
        value: the estimate.
        stderr: its standard error over the random probes (statistical; about 95% of estimates fall
            within two of it when the quadrature error is small).
        quadrature: half-width of the Gauss / Gauss-Radau bracket of the Lanczos quadrature (a
            deterministic bound of the quadrature error, to first order; zero when the Krylov spaces are
            complete). Increase ``steps`` when it is comparable to ``stderr``.

    Example:
        >>> import torch, renyi_info
        >>> est = renyi_info.Estimate(torch.tensor(2.5), torch.tensor(0.01), torch.tensor(0.002))
        >>> value, stderr, quadrature = est
        >>> f"{float(value):.2f} +- {float(est.stderr):.2f} (quadrature <= {float(quadrature):.3f})"
        '2.50 +- 0.01 (quadrature <= 0.002)'
    """

    value: torch.Tensor
    stderr: torch.Tensor
    quadrature: torch.Tensor


# ----------------------------------------------------------------------------------------------------
# Gram operators: K @ Z without materialising K (features) or with the given matrix (matrix API)


class GramOperator:
    """Unnormalised symmetric PSD Gram ``K`` ``(B, n, n)`` as a mat-vec ``Z (B, n, c) -> K Z``."""

    n: int
    trace: torch.Tensor  # (B,)
    dtype: torch.dtype  # of the products

    def matmul(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class DenseOperator(GramOperator):
    """A materialised Gram ``k`` ``(B, n, n)``."""

    def __init__(self, k: torch.Tensor) -> None:
        self.k = k
        self.n = k.shape[-1]
        self.dtype = k.dtype
        self.trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)

    def matmul(self, z: torch.Tensor) -> torch.Tensor:
        return self.k @ z


@dataclass(eq=False)
class _Factor:
    spec: KernelSpec
    kind: str  # "dot", "poly", "gauss" or "label"
    x: torch.Tensor  # (B, n, d); rows already normalised for cosine; label codes (B, n, 1)
    left: torch.Tensor  # (B, n, p): a tile of the kernel (or of its exponent) is left[rows] @ right
    right: torch.Tensor  # (B, p, n)


class FeatureOperator(GramOperator):
    r"""Hadamard product of kernel Grams of features, $K = \circ_l K_l(X_l)$, never materialised.

    Args:
        xs: ``L >= 1`` feature tensors ``(B, n, d_l)`` (validated, in the compute dtype; label codes
            ``(B, n, 1)`` for ``kernel="label"``).
        specs: one `renyi_info.kernels.KernelSpec` per input.
        dtype: precision of the tiles and products (default: the features'). The features are normalised
            (cosine rows, the Gaussian's scale) in their own dtype first, then cast: features at 1e300 in
            float64 give the same float32 mat-vecs as features at 1.

    Raises:
        ValueError: operands that ``dtype`` cannot hold (linear or polynomial kernels of huge features
            with ``LanczosOptions(matvec_dtype=torch.float32)``).
    """

    def __init__(
        self, xs: Sequence[torch.Tensor], specs: Sequence[KernelSpec], dtype: torch.dtype | None = None
    ) -> None:
        self.factors: list[_Factor] = []
        diag = None
        for x, spec in zip(xs, specs):
            if spec.name == "cosine":
                x = normalize_rows(x)
            m = abs_max(x, (-2, -1))  # (B, 1, 1)
            if spec.name == "gaussian":  # the same kernel on x / m with sigma / m: no square over/underflows
                x = x / m
            sq = (x * x).sum(-1)
            left, right = x, x.mT
            if spec.is_dot_product:
                kind, d = "dot", sq
            elif spec.name == "polynomial":
                kind, d = "poly", (sq + spec.coef).pow(spec.degree)
            elif spec.name == "label":
                kind, d = "label", torch.ones_like(sq)
            else:
                kind, d = "gauss", torch.ones_like(sq)
                assert spec.sigma is not None
                if isinstance(spec.sigma, str):
                    sigma = rule_bandwidth(x, spec.sigma).to(x.dtype)[:, None, None]
                else:
                    sigma = spec.sigma / m
                # |x| <= 1 entrywise, so |s x_i . x_j| <= s d: capping s at max / (8 d) keeps the three terms
                # of the exponent finite (a larger s only makes exp(-s |xi - xj|^2) an exact 0)
                s = (0.5 / sigma**2).clamp_max(torch.finfo(dtype or x.dtype).max / (8.0 * x.shape[-1]))
                # exponent -|xi - xj|^2 / (2 sigma^2) = [2s xi, -s, -s|xi|^2] . [xj, |xj|^2, 1]: one product
                ones = torch.ones_like(sq)[..., None]
                left = torch.cat([2.0 * s * x, -s * ones, -s * sq[..., None]], dim=-1)
                right = torch.cat([x, sq[..., None], ones], dim=-1).mT
            low = dtype or x.dtype
            x, left, right = (t.to(low).contiguous() for t in (x, left, right))
            if not all(bool(t.isfinite().all()) for t in (left, right)):
                raise ValueError(
                    f"the {spec.name} kernel's operands overflow {low} (features too large for float32 "
                    "mat-vecs). Use LanczosOptions(matvec_dtype=None) (automatic) or torch.float64"
                )
            self.factors.append(_Factor(spec, kind, x, left, right))
            diag = d if diag is None else diag * d
        assert diag is not None
        self.n = xs[0].shape[-2]
        self.dtype = dtype or xs[0].dtype
        self.trace = diag.sum(-1)

    def matmul(self, z: torch.Tensor) -> torch.Tensor:
        fs = self.factors
        if all(f.kind == "dot" for f in fs):
            if len(fs) == 1:
                x = fs[0].x
                return x @ (x.mT @ z)
            if len(fs) == 2:
                d1, d2 = fs[0].x.shape[-1], fs[1].x.shape[-1]
                c = z.shape[-1]
                # flops: factored 4 n d1 d2 c against tiles 2 n^2 (d1 + d2 + c)
                if 2 * d1 * d2 * c <= self.n * (d1 + d2 + c):
                    return _hadamard_dot_matmul(fs[0].x, fs[1].x, z)
        return self._tiled_matmul(z)

    def _tile(self, f: _Factor, b: int, r0: int, r1: int, c0: int = 0) -> torch.Tensor:
        """Rows ``r0:r1``, columns ``c0:n`` of the kernel of factor ``f`` for batch entry ``b``."""
        if f.kind == "label":
            return (f.x[b, r0:r1] == f.right[b, :, c0:]).to(f.x.dtype)
        g = torch.mm(f.left[b, r0:r1], f.right[b, :, c0:])
        if f.kind == "dot":
            return g
        if f.kind == "poly":
            if f.spec.coef:
                g.add_(f.spec.coef)
            return g.pow_(f.spec.degree) if f.spec.degree > 1 else g
        # exact zero self-distance, as in kernels.squared_distances
        g.clamp_max_(0.0).diagonal(r0 - c0).zero_()
        # flush entries below sqrt(tiny) (as kernels.gaussian_kernel): subnormals slow every later product
        return g.masked_fill_(g < math.log(SQRT_TINY[g.dtype]), -math.inf).exp_()

    def _tiled_matmul(self, z: torch.Tensor) -> torch.Tensor:
        """``K z`` from the row blocks of the upper triangle of ``K`` (symmetric): block ``I`` computes
        ``K[I, I:]`` once and uses it for ``(K z)[I]`` and, transposed, for ``(K z)[I+1:]``: half the
        kernel evaluations of full rows, the same product flops."""
        batch, n = z.shape[0], self.n
        tile = max(1, _TILE_ENTRIES // n)
        out = torch.zeros_like(z)
        for b in range(batch):
            for r0 in range(0, n, tile):
                r1 = min(n, r0 + tile)
                k = self._tile(self.factors[0], b, r0, r1, r0)
                for f in self.factors[1:]:
                    k.mul_(self._tile(f, b, r0, r1, r0))
                out[b, r0:r1].addmm_(k, z[b, r0:])
                if r1 < n:
                    out[b, r1:].addmm_(k[:, r1 - r0 :].mT, z[b, r0:r1])
        return out


def _hadamard_dot_matmul(x1: torch.Tensor, x2: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    r"""$(X_1X_1^\top \circ X_2X_2^\top) z = \operatorname{rowdot}(X_1 (X_1^\top\operatorname{diag}(z)X_2), X_2)$.

    ``O(n d1 d2)`` per column; columns are processed in chunks bounding the temporaries.
    """
    batch, n, d1 = x1.shape
    d2 = x2.shape[-1]
    c = z.shape[-1]
    chunk = max(1, _TILE_ENTRIES // max(1, batch * n * max(d1, d2)))
    out = torch.empty_like(z)
    for c0 in range(0, c, chunk):
        c1 = min(c, c0 + chunk)
        cc = c1 - c0
        zx1 = z[..., c0:c1, None] * x1[..., None, :]  # (B, n, cc, d1)
        m = zx1.reshape(batch, n, cc * d1).mT @ x2  # (B, cc*d1, d2): rows (c, i)
        m = m.reshape(batch, cc, d1, d2).permute(0, 2, 1, 3).reshape(batch, d1, cc * d2)
        y = (x1 @ m).reshape(batch, n, cc, d2)  # (B, n, cc, d2)
        out[..., c0:c1] = (y * x2[..., None, :]).sum(-1)
    return out


# ----------------------------------------------------------------------------------------------------
# Lanczos quadrature


def g_alpha(lam: torch.Tensor, alpha: float, floor: torch.Tensor | float = 0.0) -> torch.Tensor:
    r"""$g_\alpha(\lambda) = (\lambda^\alpha - \lambda)/(1-\alpha)$, $g_1 = -\lambda\log\lambda$, $g(0)=0$.

    Computed as $\lambda\,\mathrm{expm1}((\alpha-1)\log\lambda)/(1-\alpha)$ (no cancellation near
    $\alpha = 1$); negative round-off values count as 0. For ``alpha < 1`` only, nodes at or below
    ``floor`` (the exact path's eigenvalue floor) get $g = 0$: their $\lambda^\alpha$, which
    alpha < 1 inflates, is replaced by $\lambda$ itself, a change of the round-off mass only. (Giving
    them $-\lambda/(1-\alpha)$ instead would put terms of size ``floor / (1 - alpha)`` into the
    trace estimate, whose rounding then broke the continuity at alpha = 1 in float32.) For alpha >= 1 a
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


class _Quadrature(NamedTuple):
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
    stop: Callable[[_Quadrature], bool] | None = None,
    eps: float | None = None,
    keep_basis: bool = False,
) -> _Quadrature:
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
) -> _Quadrature:
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
    return _Quadrature(theta, weights, alphas[..., 0] * norm**2, theta_r, weights_r, floor, u)


# ----------------------------------------------------------------------------------------------------
# the estimator


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
    stop: Callable[[_Quadrature, int], bool] | None = None,
    keep_basis: bool = False,
) -> tuple[_Quadrature, int]:
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


def parts_for_alpha(quad: _Quadrature, k: int, alpha: float, rule: str = "average") -> _Parts:
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
) -> tuple[_Parts, _Quadrature, int]:
    """Run the deflation sketch and the Lanczos quadratures for one Gram operator, stopping early once the
    quadrature bracket of the entropy is at most ``tol`` times the entropy (``tol = 0``: never). Returns
    the parts, the quadrature and the number of deflation columns."""
    n = op.n

    def converged(quad: _Quadrature, k: int) -> bool:
        if not math.isfinite(alpha) or 2 * quad.nodes.shape[-1] <= alpha:
            return False  # (the Gauss / Gauss-Radau pair brackets tr g(A) only once 2 m > alpha)
        parts = parts_for_alpha(quad, k, alpha)
        t = parts.deterministic + parts.x.mean(-1)
        s, deriv = _entropy_of_trace(t, alpha, n)
        return bool((parts.bracket * deriv <= tol * s.abs()).all())

    quad, k = sketch_and_quadrature(op, probes, omega, steps, converged if tol > 0 else None, keep_basis)
    return parts_for_alpha(quad, k, alpha), quad, k


class _TraceEstimate(NamedTuple):
    entropy: torch.Tensor  # (B,) nats
    residuals: torch.Tensor  # (B, N) per-probe residuals of the entropy (delta method)
    dof: int  # degrees of freedom left for the variance
    bracket: torch.Tensor  # (B,) quadrature bracket half-width mapped to the entropy (delta method)
    deriv: torch.Tensor  # (B,) dS/dT at the estimate


def entropy_from_parts(parts: _Parts, alpha: float, n: int, eps: float = 0.0) -> _TraceEstimate:
    """Combine the parts (control variate), map T to the entropy and its per-probe residuals; ``eps``: the
    relative precision of the mat-vecs, when coarser than that of the parts' dtype."""
    x, y = parts.x, parts.y
    count = x.shape[-1]
    if math.isinf(alpha):
        s = -torch.log(parts.ritz_max.clamp(min=1.0 / n, max=1.0))
        return _TraceEstimate(
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
    return _TraceEstimate(s, resid * deriv[:, None], dof, bracket, deriv)


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


#: The automatic ``LanczosOptions.deflate``: for a value, and when a gradient is needed.
DEFLATE_VALUE, DEFLATE_GRADIENT = 16, 128


def deflation(options: LanczosOptions, with_gradient: bool) -> int:
    """``options.deflate``, or the automatic choice (`DEFLATE_VALUE` / `DEFLATE_GRADIENT`)."""
    if options.deflate is not None:
        return options.deflate
    return DEFLATE_GRADIENT if with_gradient else DEFLATE_VALUE


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
) -> list[tuple[_TraceEstimate, GramWeight | None]]:
    """Entropy estimates (nats) of several Gram operators on the same ``(B, n)`` samples, same probes, each
    with its stochastic gradient weight (`gradient_weight`) when ``with_gradient``."""
    n = ops[0].n
    batch = like.shape[0]
    probes, omega = draws(n, batch, like, options, with_gradient)
    tol = float(options.tol)
    out: list[tuple[_TraceEstimate, GramWeight | None]] = []
    for op in ops:
        parts, quad, k = _trace_parts(op, alpha, probes, omega, options.steps, tol, with_gradient)
        est = entropy_from_parts(parts, alpha, n, torch.finfo(op.dtype).eps)
        weight = (
            gradient_weight(quad, k, alpha, est.deriv, op.trace.to(like.dtype)) if with_gradient else None
        )
        out.append((est, weight))
    return out


# ----------------------------------------------------------------------------------------------------
# the stochastic gradient


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
    quad: _Quadrature, k: int, alpha: float, deriv: torch.Tensor, trace: torch.Tensor
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


class _AttachGradient(torch.autograd.Function):
    """``value`` (computed without autograd) with the gradient ``backward(grad, inputs, needs)``."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, backward: Callable, *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.backward_fn = backward
        ctx.save_for_backward(*inputs)
        return value.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        grads = ctx.backward_fn(grad, ctx.saved_tensors, ctx.needs_input_grad[2:])
        return (None, None, *grads)


# ----------------------------------------------------------------------------------------------------
# estimates of validated inputs (the callers validate: renyi_info._inputs, renyi_info.gram_level)


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
        kernels = [tile_kernel(s) for s in specs]

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

        prepared = [
            tile_features(x.reshape(-1, *x.shape[-2:]), s).contiguous() for x, s in zip(feats, specs)
        ]
        value = _AttachGradient.apply(value, backward, *prepared)
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

        value = _AttachGradient.apply(value, backward, *[m.reshape(-1, *m.shape[-2:]) for m in mats])
    return Estimate(value.reshape(batch_shape), *(t.reshape(batch_shape) for t in est[1:]))


def matvec_dtype(
    options: LanczosOptions,
    alpha: float,
    compute: torch.dtype,
    specs: Sequence[KernelSpec] | None = None,
    with_gradient: bool = False,
) -> torch.dtype:
    """The dtype of the mat-vecs: ``options.matvec_dtype``, or automatically float32 for finite alpha > 1 and
    features under bounded kernels (cosine, gaussian, label: entries in [-1, 1], which float32 holds for any
    input scale). Never above the compute dtype. Otherwise the compute dtype: alpha = inf (its largest Ritz
    value stays a lower bound of the largest eigenvalue), linear and polynomial kernels (their entries can
    overflow float32), Gram matrices (the matrix API keeps the input's precision) and ``with_gradient``."""
    bounded = specs is not None and all(s.name in ("cosine", "gaussian", "label") for s in specs)
    if options.matvec_dtype is not None:
        chosen = options.matvec_dtype
    else:
        chosen = torch.float32 if 1.0 < alpha < math.inf and bounded and not with_gradient else compute
    return chosen if torch.finfo(chosen).eps >= torch.finfo(compute).eps else compute


def gram_entropy_lanczos(
    k: torch.Tensor, alpha: float, options: LanczosOptions | None = None
) -> torch.Tensor:
    """Entropy in nats of ``k / tr k`` (``(..., n, n)``) by SLQ (``method="lanczos"`` of `renyi_info.gram_level.gram_entropy`)."""
    return matrices_nats("entropy", [k], alpha, options or LanczosOptions()).value
