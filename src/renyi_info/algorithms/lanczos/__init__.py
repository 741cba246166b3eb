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

The parts: `options` (`LanczosOptions`, `Estimate`), `operators` (the mat-vecs), `quadrature` (the Gauss and
Gauss-Radau rules), `estimator` (sketch, probes, control variate, errors; the entry points) and `gradient`
(the stochastic gradient).
"""

from __future__ import annotations

from .estimator import features_nats, gram_entropy_lanczos, matrices_nats
from .options import Estimate, LanczosOptions

__all__ = [
    "Estimate",
    "LanczosOptions",
    "features_nats",
    "gram_entropy_lanczos",
    "matrices_nats",
]
