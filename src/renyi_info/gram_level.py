r"""Quantities of Gram matrices with an explicit method: the documented low-level layer.

These functions are what every public quantity ends in, and what libraries built on renyi_info (such as
`infoclip`) call when they build their own Grams and validate their own inputs. They **trust their
inputs**: symmetric PSD matrices ``(..., n, n)`` in the compute dtype (float32 or float64), a checked
``alpha`` and a *resolved* ``method`` (``"eig"``, ``"frobenius"``, ``"power"`` or ``"lanczos"``; use
`resolve_method` to turn a user's ``"auto"`` into one). Results
are in nats (convert with `to_base`). The only check they make is that
each Gram has a positive trace, which depends on the data. For validated inputs use
`renyi_info.matrix` (Grams) or `renyi_info.entropy` and
friends (features).

Each matrix is divided by its trace; joint quantities use Hadamard products (InfoCLIP Eqs. 2-4):

$$
S_\alpha(A) = \frac{1}{1-\alpha}\log\operatorname{tr}\Big(\frac{K}{\operatorname{tr}K}\Big)^{\alpha},
\qquad I_\alpha(A;B) = S_\alpha(A) + S_\alpha(B) - S_\alpha(A\circ B).
$$

Example:
    >>> import torch
    >>> from renyi_info import gram_level as gl
    >>> x = torch.eye(4)
    >>> k = gl.kernel_matrix(x, gl.make_kernel("cosine"))  # unnormalised Gram, no checks
    >>> method = gl.resolve_method("auto", 2.0)  # the cheapest exact method for alpha = 2
    >>> gl.to_base(gl.gram_entropy(k, 2.0, method), 2.0)  # log2(4) bits
    tensor(2.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._units import to_base
from ._validation import check_alpha, check_base, resolve_dtype, resolve_method
from .algorithms import exact
from .algorithms.exact import hadamard
from .algorithms.lanczos import gram_entropy_lanczos
from .algorithms.pairings import check_permutations
from .algorithms.petz import gram_divergence
from .algorithms.routes import entropy_terms
from .kernels import KernelSpec, kernel_matrix, make_kernel, normalize_rows

__all__ = [
    "KernelSpec",
    "check_alpha",
    "check_base",
    "check_permutations",
    "feature_entropies",
    "gram_conditional_entropy",
    "gram_conditional_mutual_information",
    "gram_divergence",
    "gram_entropy",
    "gram_mutual_information",
    "gram_total_correlation",
    "hadamard",
    "kernel_matrix",
    "make_kernel",
    "normalize_rows",
    "resolve_dtype",
    "resolve_method",
    "to_base",
]


def gram_entropy(
    k: torch.Tensor, alpha: float | tuple[float, ...], method: str, name: str = "the input"
) -> torch.Tensor:
    """Rényi alpha-entropy in nats of ``k / tr k`` for a symmetric PSD ``k`` ``(..., n, n)``.

    Args:
        k: ``(..., n, n)`` unnormalised (or normalised) Gram matrices, trusted.
        alpha: order, already checked (> 0, ``inf`` allowed), or a tuple of orders with ``"eig"`` (one
            spectrum for all of them).
        method: a resolved method: ``"eig"``, ``"frobenius"`` (alpha = 2), ``"power"`` (integer
            alpha >= 2) or ``"lanczos"`` (a stochastic estimate with default ``LanczosOptions()``; not
            differentiable, so ``k`` must not require grad).
        name: how error messages call ``k``.

    Returns:
        ``(...)`` entropies in nats; ``(..., len(alpha))`` for a tuple of orders.

    Raises:
        ValueError: a Gram of zero trace.

    Example:
        >>> import torch
        >>> from renyi_info.gram_level import gram_entropy
        >>> gram_entropy(torch.eye(4), 1.0, "eig")  # log 4 nats
        tensor(1.3863)
    """
    if method == "lanczos":
        assert not isinstance(alpha, tuple), "the Lanczos estimate takes one order"
        return gram_entropy_lanczos(k, alpha)
    return exact.gram_entropy(k, alpha, method, name)


def gram_mutual_information(
    ka: torch.Tensor,
    kb: torch.Tensor,
    alpha: float | tuple[float, ...],
    method: str,
    names: tuple[str, str] = ("a", "b"),
) -> torch.Tensor:
    """``S(A) + S(B) - S(A, B)`` in nats for PSD ``ka``, ``kb`` on the same samples (Eq. 4)."""
    s_a = gram_entropy(ka, alpha, method, names[0])
    s_b = gram_entropy(kb, alpha, method, names[1])
    s_ab = gram_entropy(ka * kb, alpha, method, f"the Hadamard product of {names[0]} and {names[1]}")
    return s_a + s_b - s_ab


def gram_conditional_entropy(
    ka: torch.Tensor, kb: torch.Tensor, alpha: float, method: str, names: tuple[str, str] = ("a", "b")
) -> torch.Tensor:
    """``S(A|B) = S(A, B) - S(B)`` in nats."""
    s_ab = gram_entropy(ka * kb, alpha, method, f"the Hadamard product of {names[0]} and {names[1]}")
    return s_ab - gram_entropy(kb, alpha, method, names[1])


def gram_conditional_mutual_information(
    ka: torch.Tensor,
    kb: torch.Tensor,
    kc: torch.Tensor,
    alpha: float,
    method: str,
    names: tuple[str, str, str] = ("a", "b", "c"),
) -> torch.Tensor:
    """``I(A;B|C) = S(A,C) + S(B,C) - S(A,B,C) - S(C)`` in nats."""
    na, nb, nc = names
    s_ac = gram_entropy(ka * kc, alpha, method, f"the Hadamard product of {na} and {nc}")
    s_bc = gram_entropy(kb * kc, alpha, method, f"the Hadamard product of {nb} and {nc}")
    s_abc = gram_entropy(ka * kb * kc, alpha, method, f"the Hadamard product of {na}, {nb} and {nc}")
    return s_ac + s_bc - s_abc - gram_entropy(kc, alpha, method, nc)


def gram_total_correlation(
    grams: Sequence[torch.Tensor], alpha: float, method: str, names: Sequence[str]
) -> torch.Tensor:
    """``TC = sum_l S(A_l) - S(A_1, ..., A_L)`` in nats (Yu et al. 2019)."""
    total = gram_entropy(grams[0], alpha, method, names[0])
    for k, name in zip(grams[1:], names[1:]):
        total = total + gram_entropy(k, alpha, method, name)
    return total - gram_entropy(hadamard(list(grams)), alpha, method, "the Hadamard product of the inputs")


def feature_entropies(
    xs: Sequence[torch.Tensor],
    specs: Sequence[KernelSpec],
    alpha: float,
    method: str,
    masks: Sequence[int],
    names: Sequence[str],
    *,
    route: str | None = None,
) -> list[torch.Tensor]:
    r"""Entropies in nats of the Hadamard products of the Grams of feature subsets, without building them
    when a cheaper route exists.

    Term $t$ is $S_\alpha\big(\circ_{l\in S_t}K_l / \operatorname{tr}\circ_{l\in S_t}K_l\big)$ for the subset
    $S_t$ given as a bit mask (bit ``l`` = input ``l``). Each term takes the route the cost model of
    `renyi_info.algorithms.routes` picks (or ``route`` for all); at alpha = 2 the terms on the fused route share
    one tile-streaming pass with $O(n\sum_l d_l)$ memory, forward and backward. Like the rest of this module
    it trusts its inputs (validate at your own door).

    Args:
        xs: features ``(..., n, d_l)``, same batch shape and ``n``, in the compute dtype.
        specs: one kernel per input (`make_kernel`).
        alpha: a checked order.
        method: a resolved exact method (``"eig"``, ``"frobenius"``, ``"power"``).
        masks: one non-empty subset per term, as a bit mask.
        names: the name of each term in error messages.
        route: ``None`` (cost model) or one of ``"gram"``, ``"fused"``, ``"feature"``, ``"dual"`` for every term.

    Returns:
        One ``(...)`` tensor of entropies in nats per term.

    Raises:
        ValueError: a route that cannot compute the method for these kernels; a term of zero trace.

    Example:
        >>> import torch
        >>> from renyi_info import gram_level as gl
        >>> x, y = torch.eye(4, dtype=torch.float64), torch.ones(4, 2, dtype=torch.float64)
        >>> cos = gl.make_kernel("cosine")
        >>> s_x, s_xy = gl.feature_entropies([x, y], [cos, cos], 2.0, "frobenius", [0b01, 0b11], ["x", "xy"])
        >>> float(s_x), float(s_xy)  # log 4 nats each: y's Gram is all ones, the Hadamard identity
        (1.3862943611198906, 1.3862943611198906)
    """
    return entropy_terms(xs, specs, alpha, method, masks, names, route=route)
