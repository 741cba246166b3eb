r"""Gaussian kernel bandwidths by a rule of thumb: the public `bandwidth` and the rules' evaluation.

``silverman`` is Silverman's normal-reference rule on the root mean marginal standard deviation, ``median``
the median heuristic, selected exactly over tiles of the sample-pair grid in $O(n)$ memory
(`median_pair_sq_distance`). `abs_max` is the per-entry scale both rules and the kernels divide by so that
nothing over- or underflows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ._validation import check_features, check_finite, largest_abs, public, resolve_dtype
from .types import BandwidthRule

#: Bandwidth rules accepted as ``sigma`` by the Gaussian kernel (see `bandwidth`).
BANDWIDTH_RULES: tuple[str, ...] = ("silverman", "median")


def abs_max(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Largest ``|x|`` over ``dims`` (kept), detached, with 1 where it is 0 (so dividing by it is safe)."""
    m = largest_abs(x, dims, keepdim=True)
    return torch.where(m > 0, m, torch.ones_like(m))


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
