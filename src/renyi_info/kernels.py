r"""Kernel Gram matrices of sample features.

All kernels map features ``x`` of shape ``(..., n, d)`` to a symmetric positive semi-definite Gram
matrix ``K`` of shape ``(..., n, n)``:

$$
\text{cosine:}\; K_{ij} = \frac{x_i^\top x_j}{\lVert x_i\rVert\,\lVert x_j\rVert} \qquad
\text{linear:}\; K_{ij} = x_i^\top x_j \qquad
\text{polynomial:}\; K_{ij} = (x_i^\top x_j + c)^{p} \qquad
\text{gaussian:}\; K_{ij} = \exp\!\Big(-\frac{\lVert x_i - x_j\rVert^2}{2\sigma^2}\Big)
$$

``cosine`` is the paper's degree-1 polynomial kernel on L2-normalised rows (InfoCLIP Eq. 7) and the
default everywhere. A row of zero norm under ``cosine`` is a zero vector after normalisation (the
``torch.nn.functional.normalize`` convention): its row and column of ``K`` are zero, so the sample
carries no mass and the entropy is that of the remaining samples. If every row is zero the Gram has
zero trace and the functions raise a ``ValueError``.

``label`` is the kernel of a discrete variable: $K_{ij} = 1$ if $y_i = y_j$, else 0 (the
Gram of one-hot codes). It takes integer or bool class labels of shape ``(..., n)`` or ``(..., n, 1)``
(a trailing dimension of size 1 is dropped, so write a batch of ``B`` single-label sets as
``(B, 1, 1)``); floating-point input is rejected with a ``TypeError`` rather than guessed to be
integral, so that features are never silently read as class ids. Since $L \circ L = L$,
$S(Y, Y) = S(Y)$ and $S(Y \mid Y) = 0$.

The Gaussian bandwidth can be a number or a rule evaluated on each batch entry (see
`bandwidth`): ``sigma="silverman"`` or ``sigma="median"``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ._validation import check_features, check_finite, finite_abs_max, public, resolve_dtype
from .types import BandwidthRule, KernelName

KERNELS: tuple[str, ...] = ("cosine", "linear", "polynomial", "gaussian", "label")

#: Bandwidth rules accepted as ``sigma`` by the Gaussian kernel (see `bandwidth`).
BANDWIDTH_RULES: tuple[str, ...] = ("silverman", "median")

#: ``sqrt(tiny)`` of each floating dtype. Kernel entries below it (relative to the unit diagonal) are
#: flushed to zero: products of two of them would be subnormal (a 10-100x slow path of CPU matrix
#: products), and they are 1e-19 (float32) or 1e-154 (float64) of the diagonal, far below its rounding.
SQRT_TINY = {
    dt: math.sqrt(torch.finfo(dt).tiny)
    for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


@dataclass(frozen=True)
class KernelSpec:
    """A validated kernel choice: its name and parameters."""

    name: str
    sigma: float | str | None = None  # a number or a rule in BANDWIDTH_RULES (gaussian only)
    degree: int = 1
    coef: float = 0.0

    @property
    def is_dot_product(self) -> bool:
        """True for kernels that are a dot product of (possibly normalised) features: cosine and linear."""
        return self.name in ("cosine", "linear") or (
            self.name == "polynomial" and self.degree == 1 and self.coef == 0
        )


def make_kernel(
    kernel: object, *, sigma: object = None, degree: object = 1, coef: object = 0.0
) -> KernelSpec:
    """Validate a kernel name and its parameters and return a `KernelSpec`."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    if kernel == "gaussian":
        if sigma is None:
            raise ValueError(
                "kernel='gaussian' needs a bandwidth: pass sigma=<float > 0>, sigma='silverman' or "
                "sigma='median' (the kernel is exp(-|x-y|^2 / (2 sigma^2)))"
            )
        if isinstance(sigma, str):
            if sigma not in BANDWIDTH_RULES:
                raise ValueError(
                    f"sigma must be a number > 0 or one of the bandwidth rules {BANDWIDTH_RULES}; got {sigma!r}"
                )
            return KernelSpec("gaussian", sigma)
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
            raise TypeError(f"sigma must be a real number > 0, 'silverman' or 'median'; got {sigma!r}")
        if not (float(sigma) > 0 and float(sigma) < float("inf")):
            raise ValueError(f"sigma must be finite and > 0; got {sigma}")
        sigma = float(sigma)
    elif sigma is not None:
        raise ValueError(
            f"sigma is only used by kernel='gaussian'; got sigma={sigma!r} with kernel={kernel!r}"
        )
    if kernel == "polynomial":
        if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or int(degree) < 1:
            raise ValueError(f"degree must be an integer >= 1; got {degree!r}")
        if (
            isinstance(coef, bool)
            or not isinstance(coef, numbers.Real)
            or not (0 <= float(coef) < float("inf"))
        ):
            raise ValueError(
                f"coef must be a finite real >= 0 (a negative offset can make the kernel indefinite); got {coef!r}"
            )
        return KernelSpec("polynomial", None, int(degree), float(coef))
    return KernelSpec(str(kernel), sigma)


def abs_max(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Largest ``|x|`` over ``dims`` (kept), detached, with 1 where it is 0 (so dividing by it is safe)."""
    m = x.detach().abs().amax(dims, keepdim=True)
    return torch.where(m > 0, m, torch.ones_like(m))


def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the rows (last dim) of ``x``; zero rows stay zero.

    Each row is first divided by its largest ``|entry|`` (exactly scale-free: its squared norm can then
    neither overflow nor underflow, whatever the row's scale, from subnormal to ``finfo.max``). A row is
    zero only when all its entries are 0: the cosine kernel is invariant to each row's scale, so a
    small row is a direction like any other.
    """
    m = abs_max(x, (-1,))
    y = x / m
    norm = torch.linalg.vector_norm(y, dim=-1, keepdim=True)  # in [1, sqrt(d)] for non-zero rows
    nonzero = norm > 0
    # A zero row is scaled by 0 (not divided by its zero norm): the same value, and a zero gradient, so a
    # massless sample does not perturb training.
    return torch.where(nonzero, y / torch.where(nonzero, norm, torch.ones_like(norm)), torch.zeros_like(y))


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances ``(..., n, n)`` with an exact zero diagonal."""
    sq = (x * x).sum(-1)
    d2 = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * (x @ x.mT)
    n = x.shape[-2]
    off_diag = 1.0 - torch.eye(n, dtype=x.dtype, device=x.device)
    return d2.clamp_min(0.0) * off_diag


def gaussian_kernel(x: torch.Tensor, sigma: float | str) -> torch.Tensor:
    r"""Gaussian Gram $\exp(-\lVert x_i-x_j\rVert^2/(2\sigma^2))$ ``(..., n, n)``, scale-proof.

    The features are divided by their largest ``|entry|`` ``m`` (per batch entry) and the bandwidth by
    the same ``m``: the same kernel, but no square over- or underflows (features at 1e-30 in float32 and
    bandwidth rules give the kernel of the unscaled data; a tiny ``sigma`` gives the identity). Entries
    below `SQRT_TINY` are flushed to zero (subnormal values would slow every later product).
    """
    m = abs_max(x, (-2, -1))
    y = x / m
    if isinstance(sigma, str):
        c = rule_bandwidth(y, sigma).to(y.dtype)[..., None, None] ** -2.0
    else:
        c = (m / sigma) ** 2  # 1 / sigma_y^2
    c = c.clamp_max(torch.finfo(x.dtype).max)
    d2 = squared_distances(y)
    expo = torch.where(d2 > 0, d2 * (-0.5 * c), torch.zeros_like(d2))
    cut = math.log(SQRT_TINY[x.dtype])
    return torch.exp(torch.where(expo < cut, torch.full_like(expo, -math.inf), expo))


def kernel_matrix(x: torch.Tensor, spec: KernelSpec) -> torch.Tensor:
    """Unnormalised Gram of already validated features (computed in ``x``'s dtype)."""
    if spec.name == "cosine":
        z = normalize_rows(x)
        return z @ z.mT
    if spec.name == "linear":
        return x @ x.mT
    if spec.name == "polynomial":
        k = x @ x.mT
        if spec.coef:
            k = k + spec.coef
        return k if spec.degree == 1 else k.pow(spec.degree)
    if spec.name == "label":
        # x holds canonical label codes (..., n, 1) (see _validation.check_labels): exact in any float dtype
        return (x == x.mT).to(x.dtype)
    assert spec.sigma is not None
    return gaussian_kernel(x, spec.sigma)


def check_kernel_range(name: str, x: torch.Tensor, spec: KernelSpec) -> None:
    r"""Refuse a linear/polynomial Gram whose entries or their squares would leave ``x``'s dtype's range.

    The largest entry of such a Gram is on the diagonal, $(\lVert x_i\rVert^2 + c)^p$; its square
    (Frobenius sums) and ``n`` of them (the trace) must stay finite and its value above ``tiny / eps``.
    """
    if spec.name not in ("linear", "polynomial") or x.numel() == 0:
        return
    info = torch.finfo(x.dtype)
    m = abs_max(x, (-2, -1))
    r2 = (torch.linalg.vector_norm(x / m, dim=-1) ** 2).amax(-1)
    log_r2 = torch.log(r2) + 2.0 * torch.log(m.reshape(r2.shape))
    log_coef = math.log(spec.coef) if spec.coef > 0 else -math.inf
    log_top = spec.degree * torch.logaddexp(log_r2, torch.full_like(log_r2, log_coef))
    n = x.shape[-2]
    high = 0.5 * (math.log(info.max) - 2.0 * math.log(n))
    low = math.log(info.tiny) - math.log(info.eps)
    top = float(log_top.detach().amax()) if bool((log_r2 > -math.inf).any()) else -math.inf
    bottom = float(log_top.detach().amin())
    if top > high or (bottom < low and bottom > -math.inf):
        what = "overflows" if top > high else "underflows"
        value = top if top > high else bottom
        raise ValueError(
            f"kernel={spec.name!r} {what} {x.dtype} on {name}: the largest Gram entry (|x_i|^2 + coef)^degree of "
            f"a batch entry is about 1e{value / math.log(10):.0f}, outside the range where its square and sums "
            f"are finite in {x.dtype}. Rescale {name} (e.g. {name} / {name}.abs().amax()), lower the degree or "
            "coef, pass compute_dtype=torch.float64, or use kernel='cosine' (invariant to the scale of each row)"
        )


def scale_features(name: str, x: torch.Tensor, spec: KernelSpec) -> torch.Tensor:
    """Features rescaled so that the *trace-normalised* Gram is unchanged and nothing over/underflows.

    Linear and polynomial kernels with ``coef = 0`` are homogeneous: ``x`` is divided by its largest row
    norm (per batch entry), so every Gram entry is at most 1. A Gaussian kernel with a bandwidth rule is
    scale-free: ``x`` is divided by its largest ``|entry|``. Polynomial kernels with ``coef > 0`` are
    not scale-free: they are checked (`check_kernel_range`). The scales are constants for autograd
    (exact: the normalised Gram does not depend on them).
    """
    if spec.name == "gaussian" and isinstance(spec.sigma, str):
        return x / abs_max(x, (-2, -1))
    if spec.name == "linear" or (spec.name == "polynomial" and spec.coef == 0):
        y = x / abs_max(x, (-2, -1))
        r = torch.linalg.vector_norm(y, dim=-1, keepdim=True).amax(-2, keepdim=True).detach()
        return y / torch.where(r > 0, r, torch.ones_like(r))
    if spec.name == "polynomial":
        check_kernel_range(name, x, spec)
    return x


def safe_exponent(dtype: torch.dtype, n: int, d: int) -> int:
    r"""The largest ``W`` such that features with $\max|x| \in [2^{-W}, 2^{W}]$ need no rescaling.

    For a dot-product Gram the largest quantities formed are the Frobenius sums $\le n^2 d^2 \max|x|^4$
    (and their round-off): they stay below ``2^-8`` of the dtype's largest value when
    $4W + 2\log_2(nd) + 8 \le \log_2(\text{max})$. The same window keeps $\max|x|^2$ far above the
    smallest normal number.
    """
    top = math.log2(torch.finfo(dtype).max)
    return max(0, int((top - 2.0 * math.log2(max(n * d, 1)) - 8.0) // 4))


def condition_features(name: str, x: torch.Tensor, spec: KernelSpec, dtype: torch.dtype) -> torch.Tensor:
    """Checked features ``x`` made ready for ``spec`` in ``dtype``: one pass over a large input.

    Every kernel: the finiteness check is the pass that finds the largest ``|x|`` (`finite_abs_max`).
    Linear kernels (and polynomial of degree 1 with ``coef = 0``): the trace-normalised Gram does not
    depend on the scale of ``x``, so ``x`` is multiplied by a power of two ``2^-e`` (exact in binary
    floating point: the Gram is the unscaled one times ``4^-e``, bit for bit) and only when its largest
    entry lies outside the window where nothing can overflow or underflow (`safe_exponent`): usually the
    features go to the Gram untouched, or cast to ``dtype`` in the same pass as the scaling. Other kernels:
    the cast, then `scale_features`.
    """
    if spec.name == "label":
        return x.to(dtype)
    m = finite_abs_max(name, x)
    if not (spec.is_dot_product and spec.name != "cosine"):
        return scale_features(name, x.to(dtype), spec)
    mantissa, exponent = torch.frexp(m.to(torch.float64))  # m = mantissa * 2^exponent, mantissa in [1/2, 1)
    window = safe_exponent(dtype, x.shape[-2], x.shape[-1])
    if m.numel() == 0 or bool(((m == 0) | (exponent.abs() <= window)).all()):
        return x.to(dtype)
    scale = torch.where(m > 0, torch.ldexp(torch.ones_like(mantissa), -exponent), torch.ones_like(mantissa))
    return x * scale.to(dtype)[..., None, None]  # the cast and the scaling in one pass


@public
def bandwidth(x: torch.Tensor, rule: BandwidthRule = "silverman") -> torch.Tensor:
    r"""Gaussian kernel bandwidth of each batch entry of ``x`` by a rule of thumb (no gradient).

    $$
    \text{silverman:}\quad \sigma = \Big(\frac{4}{d+2}\Big)^{\frac{1}{d+4}}\,\hat s\; n^{-\frac{1}{d+4}},
    \qquad \hat s = \sqrt{\tfrac{1}{d}\textstyle\sum_{k=1}^d \widehat{\operatorname{Var}}(x_{\cdot k})}
    $$

    $$
    \text{median:}\quad \sigma = \operatorname{median}_{i<j}\,\lVert x_i - x_j\rVert
    $$

    ``silverman`` is the rule $\sigma = \gamma\,n^{-1/(4+d)}$ of Yu et al. (information planes
    of autoencoders and CNNs; multivariate matrix-based entropy, TPAMI 2019), who choose $\gamma$
    by hand for data they pre-scale. Here $\gamma$ is Silverman's normal-reference constant
    $(4/(d+2))^{1/(d+4)}$ (1.06 for d = 1; Yu et al.'s released MATLAB code,
    ``kernel_width_estimation.m`` in SJYuCNEL/Matrix-based-Dependence, uses this one-dimensional
    constant, divided by $\sqrt 2$) times the root mean marginal standard deviation $\hat s$
    (population variance), which makes the Gram invariant to rescaling ``x``. ``median`` is the
    median heuristic (the lower median of the $n(n-1)/2$ distances), selected exactly over tiles of the
    sample-pair grid without holding all of them (memory $O(nd)$ plus at most $\max(8n, 2^{22})$ values;
    `median_pair_sq_distance`). For another
    $\gamma$, scale the returned value and pass it as a number.

    The bandwidth is computed from ``x.detach()``: it is a data-dependent constant, not a function
    that gradients flow through. Degenerate inputs: if every sample of an entry is identical the
    Gram is all ones for any bandwidth and ``1.0`` is returned; if more than half of the distances are
    zero (``median``), the median of the non-zero ones is used.

    Args:
        x: features ``(..., n, d)`` with ``n >= 2``.
        rule: ``"silverman"`` or ``"median"``.

    Returns:
        ``(...)`` bandwidths ``> 0`` in ``x``'s dtype (at least float32).

    Raises:
        ValueError: an unknown rule, ``n < 2`` (one sample has no spread), bad shape or non-finite values.
        TypeError: ``x`` is not a floating tensor.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.tensor([[0.0], [1.0], [3.0]])
        >>> renyi_info.bandwidth(x, "median")  # distances 1, 2, 3
        tensor(2.)
    """
    if rule not in BANDWIDTH_RULES:
        raise ValueError(f"rule must be one of {BANDWIDTH_RULES}; got {rule!r}")
    x = check_features("x", x)
    check_finite("x", x)
    return rule_bandwidth(x, rule)


def rule_bandwidth(x: torch.Tensor, rule: str) -> torch.Tensor:
    """`bandwidth` of already validated features (a rule in `BANDWIDTH_RULES`): no checks.

    Evaluated on ``x`` divided by its largest ``|entry|`` and scaled back (both rules are scale-free), so
    that features at 1e-30 in float32 or 1e300 in float64 neither underflow nor overflow.
    """
    n, d = x.shape[-2], x.shape[-1]
    if n < 2:
        raise ValueError(
            f"the bandwidth rule {rule!r} needs at least n = 2 samples to measure their spread; got n = {n} "
            f"(shape {tuple(x.shape)}). Pass a numeric sigma instead"
        )
    with torch.no_grad():
        x = x.detach().to(resolve_dtype((x.dtype,), None))
        m = abs_max(x, (-2, -1))  # the rules are scale-free: evaluate them on x / m (no over/underflow)
        x = x / m
        if rule == "silverman":
            spread = x.var(dim=-2, unbiased=False).mean(-1).sqrt()
            sigma = (4.0 / (d + 2)) ** (1.0 / (d + 4)) * spread * n ** (-1.0 / (d + 4))
        else:
            flat = x.reshape(-1, n, d)
            sigma = torch.stack([median_pair_sq_distance(e) for e in flat]).sqrt().reshape(x.shape[:-2])
        sigma = torch.where(torch.isfinite(sigma) & (sigma > 0), sigma, torch.ones_like(sigma))
        return sigma * m.reshape(m.shape[:-2])


# ---- the median rule by exact selection over tiles, O(n) memory ------------------------------------------

#: Tile of the sample-pair grid the median rule streams: ``MEDIAN_TILE`` rows against ``4 * MEDIAN_TILE``
#: columns (1 MiB of float32).
MEDIAN_TILE = 256
#: Histogram bins per narrowing pass of the median rule.
MEDIAN_BINS = 4096
#: The median rule holds at most ``max(8 n, MEDIAN_MIN_CAP)`` distances at once (16 MiB of float32): up to
#: n = 2896 samples one pass collects them all, above it two or three passes select exactly.
MEDIAN_MIN_CAP = 1 << 22


def _pair_sq_distances(x: torch.Tensor) -> Iterator[torch.Tensor]:
    r"""The squared distances of the pairs ``i < j`` of ``x`` ``(n, d)``, one flat tensor per tile.

    Computed on centred features as $\lVert x_i\rVert^2 + \lVert x_j\rVert^2 - 2x_i\cdot x_j$ (one matrix product
    per tile), whose round-off is at most about $2(d+2)\,\epsilon\max_i\lVert x_i-\bar x\rVert^2$: values up
    to that level are indistinguishable from 0 and are set to exactly 0 (so that duplicate samples give
    zero distances, as the rule's fallback for coinciding samples needs). Row block ``I`` gives its upper
    triangle (a square tile) and then rectangular tiles right of it.
    """
    n, d = x.shape
    x = x - x.mean(0)
    sq = (x * x).sum(-1)
    floor = float(2 * (d + 2) * torch.finfo(x.dtype).eps * sq.max())
    tile = MEDIAN_TILE
    triu = torch.ones(tile, tile, dtype=torch.bool, device=x.device).triu_(1)
    for i0 in range(0, n - 1, tile):
        i1 = min(n, i0 + tile)
        for j0, j1 in [(i0, i1), *((j, min(n, j + 4 * tile)) for j in range(i1, n, 4 * tile))]:
            d2 = torch.addmm(sq[i0:i1, None] + sq[None, j0:j1], x[i0:i1], x[j0:j1].mT, alpha=-2.0)
            torch.threshold_(d2, floor, 0.0)  # round-off level (and negatives) -> exactly 0
            yield d2[triu[: i1 - i0, : i1 - i0]] if j0 == i0 else d2.reshape(-1)


def _select_pair_sq_distance(x: torch.Tensor, k: int, cap: int) -> torch.Tensor:
    r"""The ``k``-th smallest (0-based) squared distance of the pairs ``i < j`` of ``x`` ``(n, d)``, exactly.

    Exact selection in a few streaming passes that never hold more than ``cap`` values (or the
    `MEDIAN_BINS` counters). Each pass recomputes the distances tile by tile. While more than ``cap`` values
    lie in the bracket $[lo, hi]$ known to hold rank ``k``, a pass builds a histogram of the bracket
    (`MEDIAN_BINS` equal bins, with the smallest and largest value of each) and the bracket becomes the
    observed range of the bin holding rank ``k``: bins are monotone in the value, so exactly that bin's
    values lie in its range, and the bracket's smallest and largest values fall in different bins, so every
    pass strictly shrinks the candidates. A last pass collects the bracket and picks with ``kthvalue``.
    The first bracket is $[0, h]$ with $h$ above every computed distance
    ($\lVert x_i-x_j\rVert \le 2\max_i\lVert x_i-\bar x\rVert$, plus a margin for the round-off of the
    tile formula), so it needs no pass of its own.
    """
    pairs = x.shape[0] * (x.shape[0] - 1) // 2
    if pairs <= cap:
        return torch.cat(list(_pair_sq_distances(x))).kthvalue(k + 1).values
    radius = (x - x.mean(0)).square().sum(-1).max()  # the tiles use centred features
    lo = torch.zeros((), dtype=x.dtype, device=x.device)
    hi = 4.0 * radius * (1.0 + 1e-3 + 4 * (x.shape[1] + 2) * torch.finfo(x.dtype).eps)
    rank, count, first = k, pairs, True  # rank of the target among the `count` values in [lo, hi]
    while (first or count > cap) and bool(lo < hi):
        width = (hi - lo) / MEDIAN_BINS
        counts = torch.zeros(MEDIAN_BINS + 1, dtype=torch.long, device=x.device)
        bmin = torch.full((MEDIAN_BINS + 1,), math.inf, dtype=x.dtype, device=x.device)
        bmax = torch.full((MEDIAN_BINS + 1,), -math.inf, dtype=x.dtype, device=x.device)
        for v in _pair_sq_distances(x):
            if bool(width > 0):
                idx = (v - lo).div_(width).clamp_(0, MEDIAN_BINS - 1).long()
            else:  # a bracket a few ulps wide: split off its smallest value
                idx = (v > lo).long()
            if not first:  # values outside the bracket go to the spare bin MEDIAN_BINS
                idx.masked_fill_((v < lo) | (v > hi), MEDIAN_BINS)
            counts += torch.bincount(idx, minlength=MEDIAN_BINS + 1)
            bmin.scatter_reduce_(0, idx, v, "amin")
            bmax.scatter_reduce_(0, idx, v, "amax")
        cum = counts[:MEDIAN_BINS].cumsum(0)
        b = int(torch.searchsorted(cum, torch.tensor(rank, device=x.device), right=True))
        rank -= int(cum[b - 1]) if b else 0
        count = int(counts[b])
        lo, hi, first = bmin[b], bmax[b], False
    if not bool(lo < hi):
        return lo
    kept = torch.cat([v[(v >= lo) & (v <= hi)] for v in _pair_sq_distances(x)])
    if kept.numel() != count:
        raise RuntimeError(  # only if the tile products were not reproducible from one pass to the next
            "renyi_info: the median bandwidth selection found a different number of distances in its bracket "
            "in two passes over the same data (non-deterministic matrix products?); pass a numeric sigma instead"
        )
    return kept.kthvalue(rank + 1).values


def median_pair_sq_distance(x: torch.Tensor) -> torch.Tensor:
    r"""Squared median-rule bandwidth of ``x`` ``(n, d)``: the lower median of $\lVert x_i-x_j\rVert^2$, $i<j$.

    If that is 0 (more than half of the pairs coincide), the lower median of the non-zero ones; 0 if all
    samples coincide. Exact (`_select_pair_sq_distance`), holding at most ``max(8 n, MEDIAN_MIN_CAP)``
    distances instead of all $n(n-1)/2$: $O(n d + n)$ memory for large ``n``.
    """
    n = x.shape[0]
    pairs = n * (n - 1) // 2
    cap = max(8 * n, MEDIAN_MIN_CAP)
    value = _select_pair_sq_distance(x, (pairs - 1) // 2, cap)
    if bool(value > 0):
        return value
    zeros = sum(int((v <= 0).sum()) for v in _pair_sq_distances(x))
    if zeros == pairs:
        return value
    return _select_pair_sq_distance(x, zeros + (pairs - zeros - 1) // 2, cap)


def check_trace(name: str, trace: torch.Tensor) -> None:
    """A Gram with zero trace has no normalisation (every row zero under cosine, all-zero features...)."""
    if trace.numel() and not bool((trace > 0).all()):
        raise ValueError(
            f"the Gram matrix of {name} has zero trace (for example every row of {name} is zero), so it cannot "
            "be trace-normalised; give each batch entry at least one non-zero sample"
        )


@public
def gram(
    x: torch.Tensor,
    kernel: KernelName = "cosine",
    *,
    sigma: float | BandwidthRule | None = None,
    degree: int = 1,
    coef: float = 0.0,
    normalize: bool = True,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Gram matrix of the samples in ``x``, trace-normalised by default (InfoCLIP Eq. 7).

    $$
    A = \frac{K}{\operatorname{tr} K}, \qquad K_{ij} = \kappa(x_i, x_j)
    $$

    Args:
        x: features ``(..., n, d)``: leading batch dims, ``n`` samples, ``d`` features; for
            ``kernel="label"`` integer class labels ``(..., n)`` or ``(..., n, 1)``.
        kernel: ``"cosine"`` (default), ``"linear"``, ``"polynomial"``, ``"gaussian"`` or ``"label"``
            (module docs).
        sigma: Gaussian bandwidth (required for ``"gaussian"``, rejected otherwise): a number, or
            ``"silverman"`` / ``"median"`` for a rule evaluated per batch entry (`bandwidth`).
        degree: polynomial degree (``"polynomial"`` only).
        coef: polynomial offset ``c >= 0`` (``"polynomial"`` only).
        normalize: divide by the trace so that ``tr A = 1``.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: the input's dtype, at least float32.

    Returns:
        ``(..., n, n)`` in the compute dtype.

    Raises:
        TypeError: ``x`` is not a floating tensor.
        ValueError: bad shape, non-finite values, unknown kernel or parameters, or zero trace.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
        >>> renyi_info.gram(x)
        tensor([[0.3333, 0.0000, 0.3333],
                [0.0000, 0.3333, 0.0000],
                [0.3333, 0.0000, 0.3333]])
    """
    x = check_features("x", x, labels=kernel == "label")
    check_finite("x", x)
    spec = make_kernel(kernel, sigma=sigma, degree=degree, coef=coef)
    x = x.to(resolve_dtype((x.dtype,), compute_dtype))
    if not normalize:
        check_kernel_range("x", x, spec)
        return kernel_matrix(x, spec)
    k = kernel_matrix(scale_features("x", x, spec), spec)
    trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)
    check_trace("x", trace)
    return k / trace[..., None, None]
