r"""Routes: how an entropy term of features is computed, and the cost model that picks one.

A *term* is the entropy of the Hadamard product of the Grams of a subset of the inputs (a bit mask):
``entropy`` has one term, ``joint_entropy`` one term over all inputs, ``mutual_information`` three
(``x``, ``y`` and their product). Every route computes the same number (up to round-off); they differ in
cost and memory:

| route | methods | work (n samples, dims $d_l$ of the term) | memory |
| --- | --- | --- | --- |
| ``gram`` | any | $n^2\sum d_l$ + the method on ``n x n`` | $O(n^2)$ |
| ``fused`` | ``frobenius`` | $n^2\sum d_l/2$, tiles streamed | $O(n\sum d_l+\text{tile}^2)$ |
| ``feature`` | ``frobenius``, dot products | $n d^2$ (one input), $n\,p_1p_2$ | $O(n\,p)$ |
| ``dual`` | ``eig``/``power``, dot products | $nD^2 + D^3$, $D=\prod d_l$ | $O(nD + D^2)$ |

Dot-product kernels are ``linear``, ``cosine`` (linear on L2-normalised rows) and ``polynomial`` of degree
1 with ``coef = 0``. With features $Z_l$ and $p_l = d_l(d_l+1)/2$:

* ``feature``, one input: $\lVert ZZ^\top\rVert_F^2 = \lVert Z^\top Z\rVert_F^2$. Several inputs:
  $(z\cdot z')^2 = \langle\varphi(z),\varphi(z')\rangle$ with
  $\varphi(z) = \operatorname{vech}(zz^\top)$ (off-diagonal entries times $\sqrt2$), so
  $\lVert K_1\circ K_2\rVert_F^2 = \lVert\Phi_1^\top\Phi_2\rVert_F^2$ (more inputs: row-wise
  Kronecker products of the $\varphi$, split into two balanced groups).
* ``dual``: $\circ_l Z_lZ_l^\top = \Psi\Psi^\top$ with $\Psi$ the row-wise Kronecker product of
  the $Z_l$; the non-zero eigenvalues of $\Psi\Psi^\top$ are those of $\Psi^\top\Psi$
  (``D x D``), and the traces of all powers agree. The eigenvalue floor
  ($\lambda\le n\,\epsilon\,\lambda_{\max}$) uses the original ``n``, as the ``gram`` route does.

`choose_route` estimates the time of each admissible route with the constants below (fitted by
hand to the crossovers that ``benchmarks/bench_routes.py`` measures on a 2-core x86 CPU; see "Routes and
cost model" in the docs) and picks the cheapest whose memory fits `GRAM_MEMORY_LIMIT`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, cast

import torch

from ..kernels import KernelSpec, check_trace, kernel_matrix
from .exact import gram_entropy, hadamard, in_range, unit_trace_entropy
from .fused import BLOCK_COLS, BLOCK_ROWS, diagonal_products, frobenius_sums

__all__ = [
    "ROUTES",
    "SIGNED_TERMS",
    "Route",
    "choose_route",
    "entropy_terms",
    "quantity_nats",
]

Route = Literal["gram", "fused", "feature", "dual"]
ROUTES: tuple[str, ...] = ("gram", "fused", "feature", "dual")

# ---- cost model constants (seconds), CPU, one thread, fitted to benchmarks/bench_routes.py ---------------
#: seconds per flop of a tile-sized matrix product (about 60 GFLOP/s).
SEC_PER_FLOP = 1.0 / 60e9
#: seconds per element of one elementwise pass over an ``n x n`` array larger than the caches (memory-bound,
#: includes first-touch page faults of freshly allocated buffers).
SEC_PER_BIG_ELEMENT = 8e-9
#: seconds per element of one elementwise pass over a tile or a cache-sized array.
SEC_PER_TILE_ELEMENT = 1.5e-9
#: arrays up to this many bytes count as cache-sized.
CACHE_BYTES = 512 * 1024
#: seconds of Python/dispatch overhead per tensor operation.
SEC_PER_OP = 6e-6
#: fixed overhead of the fused route (autograd Function, per-call set-up), seconds.
SEC_FUSED_FIXED = 3e-4
#: seconds per n^3 of ``torch.linalg.eigvalsh`` (float64).
SEC_PER_EIG_CUBE = 1.5e-9
#: the gram route is not chosen when its ``n x n`` buffers would exceed this many bytes.
GRAM_MEMORY_LIMIT = 2 * 1024**3
#: the feature and dual routes are not chosen when their buffers would exceed this many bytes.
FEATURE_MEMORY_LIMIT = 1024**3
#: on CUDA (Triton fused kernel) the fused route is preferred from this n on (a default, not fitted to GPU
#: timings).
CUDA_FUSED_MIN_N = 4096


def _members(mask: int, count: int) -> list[int]:
    return [i for i in range(count) if mask >> i & 1]


def _split(ps: Sequence[int]) -> tuple[list[int], list[int]]:
    """Split indices into two groups with balanced products of ``ps`` (largest first, greedy)."""
    a: list[int] = []
    b: list[int] = []
    pa = pb = 1
    for i in sorted(range(len(ps)), key=lambda i: -ps[i]):
        if pa <= pb:
            a.append(i)
            pa *= ps[i]
        else:
            b.append(i)
            pb *= ps[i]
    return a, b


def route_costs(
    method: str,
    n: int,
    dims: Sequence[int],
    specs: Sequence[KernelSpec],
    *,
    itemsize: int = 4,
    requires_grad: bool = False,
    device_type: str = "cpu",
    block_rows: int = BLOCK_ROWS,
    block_cols: int = BLOCK_COLS,
) -> dict[str, float]:
    """Estimated seconds of each admissible route for one entropy term (one batch entry).

    Args:
        method: resolved method (``"eig"``, ``"frobenius"``, ``"power"`` or another).
        n: number of samples.
        dims: feature dims ``d_l`` of the term's inputs.
        specs: their kernels.
        itemsize: bytes per element of the compute dtype.
        requires_grad: add the backward pass.
        device_type: ``"cpu"`` or ``"cuda"``.
        block_rows: tile rows of the fused route.
        block_cols: tile columns of the fused route.

    Returns:
        ``{route: seconds}``; a route that cannot run or whose memory would not fit is absent.

    Example:
        >>> from renyi_info.kernels import make_kernel
        >>> from renyi_info.algorithms.routes import route_costs
        >>> sorted(route_costs("eig", 4096, [64], [make_kernel("cosine")]))
        ['dual', 'gram']
    """
    count = len(dims)
    dot = all(s.is_dot_product for s in specs)
    grad = 3.0 if requires_grad else 1.0
    sum_d = sum(dims)
    costs: dict[str, float] = {}
    gram_bytes = n * n * itemsize * (count + 2) * (2 if requires_grad else 1)
    gram_mm = 2.0 * n * n * sum_d * SEC_PER_FLOP
    ew_gram = SEC_PER_BIG_ELEMENT if n * n * itemsize > CACHE_BYTES else SEC_PER_TILE_ELEMENT
    if method == "frobenius":
        if gram_bytes <= GRAM_MEMORY_LIMIT:
            costs["gram"] = grad * (gram_mm + ew_gram * n * n * (count + 2) + 10 * count * SEC_PER_OP)
        tiles = math.ceil(n / block_rows) * (1 + math.ceil(max(n - block_rows, 0) / block_cols))
        fused = (
            0.5 * gram_mm + SEC_PER_TILE_ELEMENT * n * n * (count + 2) / 2 + tiles * (count + 4) * SEC_PER_OP
        )
        costs["fused"] = fused * (4.0 if requires_grad else 1.0) + SEC_FUSED_FIXED
        if device_type == "cuda":
            costs["fused"] *= 0.1 if n >= CUDA_FUSED_MIN_N else 10.0
        if dot:
            if count == 1:
                flops, elems = 2.0 * n * dims[0] ** 2, n * dims[0]
                mem = (dims[0] ** 2 + n * dims[0]) * itemsize
            else:
                ps = [d * (d + 1) // 2 for d in dims]
                ga, gb = _split(ps)
                pa = math.prod(ps[i] for i in ga)
                pb = math.prod(ps[i] for i in gb)
                flops, elems = 2.0 * n * pa * pb, n * (pa + pb + sum(ps))
                mem = (pa * pb + n * (pa + pb + sum(ps))) * itemsize * (2 if requires_grad else 1)
            if mem <= FEATURE_MEMORY_LIMIT:
                costs["feature"] = grad * (
                    flops * SEC_PER_FLOP + SEC_PER_BIG_ELEMENT * elems + 20 * SEC_PER_OP
                )
        return costs
    cube = SEC_PER_EIG_CUBE if method == "eig" else 4.0 * SEC_PER_FLOP  # power: about two n^3 products
    if gram_bytes <= 4 * GRAM_MEMORY_LIMIT:
        costs["gram"] = grad * (gram_mm + cube * n**3 + SEC_PER_BIG_ELEMENT * n * n * (count + 2))
    if dot and method in ("eig", "power"):
        big_d = math.prod(dims)
        mem = (n * big_d + big_d * big_d) * itemsize * (2 if requires_grad else 1)
        if mem <= FEATURE_MEMORY_LIMIT:
            costs["dual"] = grad * (
                2.0 * n * big_d * big_d * SEC_PER_FLOP + cube * big_d**3 + SEC_PER_BIG_ELEMENT * n * big_d
            )
    if not costs:  # nothing fits: the gram route is the only one that computes every method
        costs["gram"] = math.inf
    return costs


def choose_route(
    method: str,
    n: int,
    dims: Sequence[int],
    specs: Sequence[KernelSpec],
    **kwargs: object,
) -> str:
    """The cheapest admissible route by `route_costs` (ties: the order of `ROUTES`).

    Args:
        method: resolved method.
        n: number of samples.
        dims: feature dims of the term's inputs.
        specs: their kernels.
        **kwargs: the keyword options of `route_costs`.

    Returns:
        ``"gram"``, ``"fused"``, ``"feature"`` or ``"dual"``.

    Example:
        >>> from renyi_info.kernels import make_kernel
        >>> from renyi_info.algorithms.routes import choose_route
        >>> choose_route("frobenius", 20000, [16], [make_kernel("gaussian", sigma=1.0)])
        'fused'
    """
    costs = route_costs(method, n, dims, specs, **kwargs)  # type: ignore[arg-type]
    return min(costs, key=lambda r: (costs[r], ROUTES.index(r)))


def check_route(route: object, method: str, specs: Sequence[KernelSpec]) -> None:
    """Reject a forced route that cannot compute ``method`` for these kernels."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES} or None; got {route!r}")
    if route == "fused" and method != "frobenius":
        raise ValueError(f"route='fused' computes alpha = 2 (method 'frobenius') only; got method {method!r}")
    if route == "feature" and method != "frobenius":
        raise ValueError(
            f"route='feature' computes alpha = 2 (method 'frobenius') only; got method {method!r}"
        )
    if route == "dual" and method not in ("eig", "power"):
        raise ValueError(f"route='dual' computes methods 'eig' and 'power'; got method {method!r}")
    if route in ("feature", "dual") and not all(s.is_dot_product for s in specs):
        raise ValueError(
            f"route={route!r} needs dot-product kernels (cosine, linear, polynomial of degree 1 with coef 0); "
            f"got {[s.name for s in specs]}"
        )


# ---- the routes ----------------------------------------------------------------------------------------------


def vech_features(z: torch.Tensor) -> torch.Tensor:
    r"""``(..., n, d(d+1)/2)``: $\varphi(z)$ with $\langle\varphi(z),\varphi(z')\rangle=(z\cdot z')^2$."""
    d = z.shape[-1]
    iu = torch.triu_indices(d, d, device=z.device)
    w = torch.full((iu.shape[1],), math.sqrt(2.0), dtype=z.dtype, device=z.device)
    w[iu[0] == iu[1]] = 1.0
    return z[..., iu[0]] * z[..., iu[1]] * w


def rowwise_kron(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row-wise Kronecker product of ``(..., n, d_l)`` tensors: ``(..., n, prod d_l)``."""
    out = mats[0]
    for m in mats[1:]:
        out = (out[..., :, None] * m[..., None, :]).reshape(*out.shape[:-1], out.shape[-1] * m.shape[-1])
    return out


def feature_frobenius(zs: Sequence[torch.Tensor]) -> torch.Tensor:
    r"""$\lVert\circ_l Z_lZ_l^\top\rVert_F^2$ from features alone (``zs``: dot-product features)."""
    if len(zs) == 1:
        z = zs[0]
        c = z.mT @ z
        return (c * c).sum((-2, -1))
    phis = [vech_features(z) for z in zs]
    ga, gb = _split([p.shape[-1] for p in phis])
    c = rowwise_kron([phis[i] for i in ga]).mT @ rowwise_kron([phis[i] for i in gb])
    return (c * c).sum((-2, -1))


def dual_entropy(
    c: torch.Tensor, alpha: float | tuple[float, ...], method: str, n: int, name: str
) -> torch.Tensor:
    """Entropy in nats of the ``n x n`` Gram whose dual (``D x D``, same non-zero spectrum) is ``c``."""
    trace = c.diagonal(dim1=-2, dim2=-1).sum(-1)
    check_trace(name, trace)
    return unit_trace_entropy(c / trace[..., None, None], alpha, method, n)


def entropy_terms(
    xs: Sequence[torch.Tensor],
    specs: Sequence[KernelSpec],
    alpha: float | tuple[float, ...],
    method: str,
    masks: Sequence[int],
    names: Sequence[str],
    *,
    route: str | Sequence[str | None] | None = None,
    backend: str = "auto",
    block_rows: int | None = None,
    block_cols: int | None = None,
) -> list[torch.Tensor]:
    """Entropies in nats of the Hadamard products of the Grams of the inputs in each mask.

    Args:
        xs: validated features ``(..., n, d_l)`` in the compute dtype.
        specs: one validated kernel per input.
        alpha: the order, or a tuple of orders with method ``"eig"`` (each result gains a trailing axis).
        method: the resolved method (``"eig"``, ``"frobenius"``, ``"power"``).
        masks: one bit mask per term (bit ``l`` = input ``l``).
        names: the name of each term in error messages.
        route: ``None`` (cost model), one route for every term, or one per term.
        backend: passed to `renyi_info.algorithms.fused.frobenius_sums`.
        block_rows: passed to `renyi_info.algorithms.fused.frobenius_sums`.
        block_cols: passed to `renyi_info.algorithms.fused.frobenius_sums`.

    Returns:
        One ``(...)`` tensor per term, in nats.

    Raises:
        ValueError: a forced route that cannot compute the method for these kernels, or a zero trace.

    Example:
        >>> import torch
        >>> from renyi_info.kernels import make_kernel
        >>> from renyi_info.algorithms.routes import entropy_terms
        >>> x = torch.eye(4, dtype=torch.float64)
        >>> (s,) = entropy_terms([x], [make_kernel("linear")], 2.0, "frobenius", [1], ["x"])
        >>> round(float(s), 6)  # log 4 nats
        1.386294
    """
    count = len(xs)
    n = xs[0].shape[-2]
    if isinstance(route, (list, tuple)):
        routes: list[str | None] = list(route)
    else:
        routes = [cast("str | None", route)] * len(masks)
    if len(routes) != len(masks):
        raise ValueError(f"route must be one route or one per term ({len(masks)}); got {route!r}")
    requires_grad = torch.is_grad_enabled() and any(x.requires_grad for x in xs)
    chosen: list[str] = []
    for mask, r in zip(masks, routes):
        members = _members(mask, count)
        term_specs = [specs[i] for i in members]
        if r is None:
            r = choose_route(
                method,
                n,
                [xs[i].shape[-1] for i in members],
                term_specs,
                itemsize=xs[0].element_size(),
                requires_grad=requires_grad,
                device_type=xs[0].device.type,
            )
        else:
            check_route(r, method, term_specs)
        chosen.append(r)

    results: dict[int, torch.Tensor] = {}
    fused = [t for t, r in enumerate(chosen) if r == "fused"]
    if fused:
        fmasks = [masks[t] for t in fused]
        used = sorted({i for m in fmasks for i in _members(m, count)})
        remap = {i: k for k, i in enumerate(used)}
        local = [sum(1 << remap[i] for i in _members(m, count)) for m in fmasks]
        sub_x, sub_s = [xs[i] for i in used], [specs[i] for i in used]
        frob = frobenius_sums(
            sub_x,
            sub_s,
            local,
            backend=backend,  # type: ignore[arg-type]
            block_rows=block_rows,
            block_cols=block_cols,
        )
        traces = diagonal_products(sub_x, sub_s, local)
        for k, t in enumerate(fused):
            check_trace(names[t], traces[..., k])
            results[t] = in_range(2.0 * torch.log(traces[..., k]) - torch.log(frob[..., k]), n)
    grams: dict[int, torch.Tensor] = {}
    feats: dict[int, torch.Tensor] = {}
    for t, (mask, r) in enumerate(zip(masks, chosen)):
        if r == "fused":
            continue
        members = _members(mask, count)
        if r == "gram":
            for i in members:
                if i not in grams:
                    grams[i] = kernel_matrix(xs[i], specs[i])
            results[t] = gram_entropy(hadamard([grams[i] for i in members]), alpha, method, names[t])
            continue
        for i in members:
            if i not in feats:
                feats[i] = specs[i].tile_features(xs[i])
        zs = [feats[i] for i in members]
        if r == "feature":
            trace = diagonal_products(
                [xs[i] for i in members], [specs[i] for i in members], [(1 << len(zs)) - 1]
            )
            check_trace(names[t], trace[..., 0])
            results[t] = in_range(2.0 * torch.log(trace[..., 0]) - torch.log(feature_frobenius(zs)), n)
        else:
            psi = rowwise_kron(zs)
            results[t] = dual_entropy(psi.mT @ psi, alpha, method, n, names[t])
    return [results[t] for t in range(len(masks))]


#: Every quantity of features that routes evaluate, as a signed sum of entropy terms: for ``count`` inputs,
#: the ``(mask, sign)`` of each term (bit ``l`` of a mask = input ``l``), in the order they are summed.
SIGNED_TERMS: dict[str, Callable[[int], list[tuple[int, int]]]] = {
    "joint_entropy": lambda count: [((1 << count) - 1, 1)],
    "mutual_information": lambda count: [(0b01, 1), (0b10, 1), (0b11, -1)],
    "conditional_entropy": lambda count: [(0b11, 1), (0b10, -1)],
    "conditional_mutual_information": lambda count: [(0b101, 1), (0b110, 1), (0b111, -1), (0b100, -1)],
    "total_correlation": lambda count: [(1 << i, 1) for i in range(count)] + [((1 << count) - 1, -1)],
}


def _term_name(mask: int, names: Sequence[str]) -> str:
    members = [names[i] for i in _members(mask, len(names))]
    if len(members) == 1:
        return members[0]
    return f"the Hadamard product of {', '.join(members[:-1])} and {members[-1]}"


def quantity_nats(
    quantity: str,
    xs: Sequence[torch.Tensor],
    specs: Sequence[KernelSpec],
    alpha: float | tuple[float, ...],
    method: str,
    names: Sequence[str] | None = None,
    **kwargs: object,
) -> torch.Tensor:
    """``quantity`` (a key of `SIGNED_TERMS`) of the features ``xs`` in nats: all its entropy terms in one call
    of `entropy_terms` (one fused pass at alpha = 2), then their signed sum.

    Args:
        quantity: ``"joint_entropy"`` (one input: its entropy), ``"mutual_information"``
            (``S(x) + S(y) - S(x, y)``), ``"conditional_entropy"`` (``S(x, y) - S(y)``),
            ``"conditional_mutual_information"`` (``S(x, z) + S(y, z) - S(x, y, z) - S(z)``) or
            ``"total_correlation"`` (``sum_l S(x_l) - S(x_1, ..., x_L)``).
        xs: validated features ``(..., n, d_l)`` in the compute dtype.
        specs: one validated kernel per input.
        alpha: the order, or a tuple of orders with method ``"eig"``.
        method: the resolved method.
        names: the inputs' names in error messages (default ``x``, ``y``, ``z`` or ``xs[l]``).
        **kwargs: ``route`` (one route for every term or one per term) and the other keyword options of
            `entropy_terms`.

    Example:
        >>> import torch
        >>> from renyi_info.kernels import make_kernel
        >>> from renyi_info.algorithms.routes import quantity_nats
        >>> x = torch.eye(4, dtype=torch.float64)
        >>> lin = make_kernel("linear")
        >>> round(float(quantity_nats("mutual_information", [x, x], [lin, lin], 2.0, "frobenius")), 6)
        1.386294
    """
    count = len(xs)
    if names is None:
        names = ["x", "y", "z"][:count] if count <= 3 else [f"xs[{i}]" for i in range(count)]
    terms = SIGNED_TERMS[quantity](count)
    values = entropy_terms(
        xs,
        specs,
        alpha,
        method,
        [mask for mask, _ in terms],
        [_term_name(mask, names) for mask, _ in terms],
        **kwargs,  # type: ignore[arg-type]
    )
    total = values[0]
    for value, (_, sign) in zip(values[1:], terms[1:]):
        total = total + value if sign > 0 else total - value
    return total
