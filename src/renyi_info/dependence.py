r"""DiME, the difference of matrix-based entropies (Skean et al. 2023): dependence measured against
shuffled pairings.

$$
\mathrm{DiME}_\alpha(X;Y) = \mathbb{E}_\pi\big[S_\alpha(K_X \circ P_\pi K_Y P_\pi^\top)\big]
- S_\alpha(K_X \circ K_Y)
$$

where $S_\alpha(K) = S_\alpha(K/\operatorname{tr}K)$ is the entropy of the trace-normalised matrix,
$P_\pi$ the permutation matrix of $\pi$, and $\pi$ uniform over the $n!$ permutations of the samples. The
shuffled pairings break the link between $x_i$ and $y_i$ while keeping both marginal Grams, so their
expected joint entropy plays the part of $S(X) + S(Y)$ in $I = S(X) + S(Y) - S(X, Y)$. Unlike the matrix
mutual information, DiME is zero in expectation when $X$ and $Y$ are independent (the true pairing is then
distributed as a shuffled one), and it is exactly 0 whenever either Gram is the identity or all ones (every
pairing has the same joint Gram).

The feature-level function is `dime` (``renyi_info.dime``); the same quantity of Gram matrices you already
have is `renyi_info.matrix.dime`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from ._front_door import front_door, prepared
from ._units import to_base
from .algorithms.pairings import (
    DEFAULT_SAMPLES,
    ENUMERATE_MAX_N,
    EXACT_MAX_N,
    SAMPLED_MAX_ENTRIES,
    all_permutations,
    check_permutations,
    dime_nats,
    sample_permutations,
)
from .types import KernelArg, Method, SigmaArg

__all__ = ["Permutations", "dime", "pairings"]

#: The ``permutations`` argument of `dime`: ``None``/``"auto"``, ``"exact"`` or a number of sampled pairings.
Permutations = int | Literal["auto", "exact"] | None


def check_dime_method(method: object) -> None:
    """DiME has no stochastic Lanczos route: its terms are many joint entropies of small matrices."""
    if method == "lanczos":
        raise ValueError(
            "method='lanczos' is not available for DiME: it averages the joint entropies of many shuffled "
            "pairings, whose independent stochastic errors would add up. Use an exact method ('auto', 'eig', "
            "'frobenius' or 'power'); for large n, sample fewer pairings with permutations=<count>"
        )


def pairings(permutations: object, generator: object, n: int, device: torch.device) -> torch.Tensor:
    """Check ``permutations`` and ``generator`` and return the pairings to average over, ``(P, n)`` int64.

    ``None`` or ``"auto"``: all ``n!`` permutations when ``n <= 7``, else 128 drawn uniformly; ``"exact"``: all
    of them (``n <= 8``); an ``int`` ``k >= 1``: ``k`` drawn uniformly with replacement from ``generator``.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None; got "
            f"{type(generator).__name__}"
        )
    count = check_permutations(permutations)
    if count is None or count == "auto":
        if n <= EXACT_MAX_N:
            return all_permutations(n, device)
        return sample_permutations(n, DEFAULT_SAMPLES, generator, device)
    if count == "exact":
        if n > ENUMERATE_MAX_N:
            raise ValueError(
                f"permutations='exact' averages over all n! pairings, which is only offered up to n = "
                f"{ENUMERATE_MAX_N} ({math.factorial(ENUMERATE_MAX_N)} pairings); got n = {n} "
                f"({math.factorial(n):.3g} pairings). Pass permutations=<count> (e.g. {DEFAULT_SAMPLES}) "
                "to sample them, with a seeded generator for a reproducible value"
            )
        return all_permutations(n, device)
    count = int(count)
    if count * n > SAMPLED_MAX_ENTRIES:
        raise ValueError(
            f"permutations={count} sampled pairings of n = {n} samples would draw a table of {count * n:.3g} "
            f"entries and evaluate {count:.3g} joint entropies; at most {SAMPLED_MAX_ENTRIES // n} are offered "
            f"here. The sampled estimate's standard error falls like 1/sqrt(count): a few thousand pairings "
            f"(or the default, {DEFAULT_SAMPLES}) are usually enough"
        )
    return sample_permutations(n, count, generator, device)


@front_door("features")
def dime(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float = 2.0,
    kernel: KernelArg = "cosine",
    base: float = 2.0,
    method: Method = "auto",
    sigma: SigmaArg = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
    permutations: Permutations = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""DiME, the difference of matrix-based entropies between two views of the same samples.

    $$
    \mathrm{DiME}_\alpha(X;Y) = \mathbb{E}_\pi\big[S_\alpha(K_X \circ P_\pi K_Y P_\pi^\top)\big]
    - S_\alpha(K_X \circ K_Y),
    \qquad S_\alpha(K) = \frac{1}{1-\alpha}\log_b\operatorname{tr}\Big(\frac{K}{\operatorname{tr}K}\Big)^\alpha
    $$

    (Skean et al., "DiME: Maximizing Mutual Information by a Difference of Matrix-Based Entropies", 2023):
    the expected joint entropy (InfoCLIP Eq. 3) when the samples of ``y`` are paired with those of ``x`` by a
    uniformly random permutation $\pi$, minus the joint entropy of the true pairing. It is zero in
    expectation for independent views, exactly 0 when either Gram is the identity (orthogonal samples under
    the cosine kernel: every pairing gives the same joint Gram), and positive when the true pairing is more
    structured than a shuffled one. The expectation is exact (the mean over all $n!$ pairings) or an
    unbiased Monte Carlo mean over sampled pairings, see ``permutations``. It is negative when the true
    pairing is less structured than a typical shuffle, at any alpha (it is never clamped).

    Args:
        x: features ``(..., n, d_x)``.
        y: features ``(..., n, d_y)`` of the same samples (same batch shape and ``n``).
        permutations: ``None`` or ``"auto"`` (default): the exact mean over all $n!$ pairings when
            $n \le 7$, else the mean over 128 pairings drawn uniformly; ``"exact"``: all pairings
            ($n \le 8$); an int ``k >= 1``: ``k`` pairings drawn uniformly with replacement (an unbiased
            estimate whose standard error falls as $1/\sqrt{k}$). Every batch entry uses the same pairings.
        generator: the ``torch.Generator`` the sampled pairings are drawn from (same seed, same value);
            ``None``: torch's global generator. Unused when the mean is exact.

    Returns:
        ``(...)``: float32, or float64 for float64 inputs or ``compute_dtype=torch.float64``. Differentiable
        in ``x`` and ``y`` (the pairings are constants).

    Raises:
        TypeError: non-tensor inputs; ``permutations`` of the wrong type; ``generator`` not a
            ``torch.Generator``.
        ValueError: shapes, non-finite values, alpha, method or kernel options (as `renyi_info.entropy`);
            ``permutations`` < 1, or ``"exact"`` with n > 8; a joint Gram of zero trace.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])  # two clusters
        >>> renyi_info.dime(x, x, alpha=1.0)  # exact over the 4! pairings
        tensor(0.6272)
        >>> renyi_info.dime(x, torch.eye(4), alpha=1.0)  # orthogonal samples: every pairing alike
        tensor(0.)
    """
    check_dime_method(method)
    p = prepared("dime", locals(), "features")
    perms = pairings(permutations, generator, p.tensors[0].shape[-2], p.tensors[0].device)
    ka, kb = p.grams()
    return to_base(dime_nats(ka, kb, p.order, p.method, perms, ("x", "y")), p.base)
