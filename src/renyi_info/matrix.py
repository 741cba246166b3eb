r"""Matrix-based Rényi quantities of Gram matrices you already have.

Use these when you built the kernel matrices yourself; use `renyi_info.entropy` and friends
when you have features. Inputs are symmetric positive semi-definite matrices ``(..., n, n)``; each is
divided by its trace before use (a no-op for an already normalised ``A``), so the results are
invariant to rescaling.

$$
S_\alpha(A) = \frac{1}{1-\alpha}\log_b \sum_i \lambda_i(A)^\alpha, \qquad
S_\alpha(A_1,\dots,A_L) = S_\alpha\!\Big(\frac{A_1\circ\dots\circ A_L}{\operatorname{tr}(A_1\circ\dots\circ A_L)}\Big),
\qquad I_\alpha(A;B) = S_\alpha(A) + S_\alpha(B) - S_\alpha(A,B)
$$

"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._front_door import front_door, of_matrices, prepared
from ._units import to_base
from ._validation import check_matrix
from .algorithms.lanczos import LanczosOptions
from .algorithms.pairings import dime_nats
from .dependence import Permutations, check_dime_method, pairings
from .kernels import check_trace
from .types import Method

__all__ = [
    "conditional_entropy",
    "conditional_mutual_information",
    "dime",
    "divergence",
    "entropy",
    "joint_entropy",
    "mutual_information",
    "normalize",
    "total_correlation",
]


def normalize(k: torch.Tensor) -> torch.Tensor:
    r"""Trace-normalise a Gram matrix: $A = K / \operatorname{tr} K$ (InfoCLIP Eq. 7).

    Args:
        k: ``(..., n, n)`` symmetric PSD matrices with positive trace.

    Returns:
        ``(..., n, n)``, same dtype, each with unit trace.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> matrix.normalize(torch.eye(2) * 4)
        tensor([[0.5000, 0.0000],
                [0.0000, 0.5000]])
    """
    k = check_matrix("k", k)
    trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)
    check_trace("k", trace)
    return k / trace[..., None, None]


@front_door("matrices")
def entropy(
    a: torch.Tensor,
    *,
    alpha: float | Sequence[float] | torch.Tensor = 2.0,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi $\alpha$-entropy of a Gram matrix (InfoCLIP Eq. 2).

    $$
    S_\alpha(A) = \frac{1}{1-\alpha}\log_b \operatorname{tr}(A^\alpha), \quad
    S_1(A) = -\sum_i \lambda_i \log_b \lambda_i, \quad S_\infty(A) = -\log_b \lambda_{\max}
    $$

    Args:
        a: ``(..., n, n)`` symmetric PSD matrices (divided by their trace internally).

    Returns:
        ``(...)`` entropies, between 0 and $\log_b n$; ``(..., k)`` for a sequence of ``k`` orders.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> matrix.entropy(torch.eye(4) / 4, alpha=1.0)  # log2(4)
        tensor(2.)
    """
    return of_matrices("entropy", locals())


@front_door("matrices")
def joint_entropy(
    *mats: torch.Tensor,
    alpha: float | Sequence[float] | torch.Tensor = 2.0,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> torch.Tensor:
    r"""Matrix-based joint entropy of several Gram matrices on the same samples (InfoCLIP Eq. 3).

    $$
    S_\alpha(A_1,\dots,A_L) = S_\alpha\!\Big(\frac{A_1\circ\dots\circ A_L}{\operatorname{tr}(A_1\circ\dots\circ A_L)}\Big)
    $$

    Args:
        *mats: one or more ``(..., n, n)`` matrices with the same shape.

    Returns:
        ``(...)``; ``(..., k)`` for a sequence of ``k`` orders.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.joint_entropy(a, torch.ones(4, 4))  # the all-ones matrix is the Hadamard identity
        tensor(2.)
    """
    return of_matrices("joint_entropy", locals())


@front_door("matrices")
def mutual_information(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    alpha: float | Sequence[float] | torch.Tensor = 2.0,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi mutual information (InfoCLIP Eq. 4).

    $$
    I_\alpha(A;B) = S_\alpha(A) + S_\alpha(B) - S_\alpha(A, B)
    $$

    It can be negative for alpha > 1 (it is not a Shannon quantity); it is never clamped.

    Args:
        a: ``(..., n, n)`` Gram matrix.
        b: ``(..., n, n)`` Gram matrix of the same samples.

    Returns:
        ``(...)``; ``(..., k)`` for a sequence of ``k`` orders.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.mutual_information(a, a, alpha=1.0)  # I(A;A) = S(A) + S(A) - S(A∘A)
        tensor(2.)
    """
    return of_matrices("mutual_information", locals())


@front_door("matrices")
def conditional_entropy(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    alpha: float = 2.0,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi conditional entropy $S_\alpha(A\mid B) = S_\alpha(A,B) - S_\alpha(B)$.

    $$
    S_\alpha(A\mid B) = S_\alpha\!\Big(\frac{A\circ B}{\operatorname{tr}(A\circ B)}\Big) - S_\alpha(B)
    $$

    Args:
        a: ``(..., n, n)`` Gram matrix of the conditioned variable.
        b: ``(..., n, n)`` Gram matrix of the conditioning variable (same samples).

    Returns:
        ``(...)``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> lab = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # a label kernel
        >>> matrix.conditional_entropy(lab, lab)  # L o L = L, so S(L|L) = 0
        tensor(0.)
    """
    return of_matrices("conditional_entropy", locals())


@front_door("matrices")
def conditional_mutual_information(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    *,
    alpha: float = 2.0,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi conditional mutual information $I_\alpha(A;B\mid C)$.

    $$
    I_\alpha(A;B\mid C) = S_\alpha(A,C) + S_\alpha(B,C) - S_\alpha(A,B,C) - S_\alpha(C)
    $$

    Args:
        a: ``(..., n, n)`` Gram matrix of the first variable.
        b: ``(..., n, n)`` Gram matrix of the second variable.
        c: ``(..., n, n)`` Gram matrix of the conditioning variable (all on the same samples).

    Returns:
        ``(...)``; with an all-ones ``c`` it equals `mutual_information` of ``a`` and ``b``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.conditional_mutual_information(a, a, torch.ones(4, 4), alpha=1.0)  # = I(A;A)
        tensor(2.)
    """
    return of_matrices("conditional_mutual_information", locals())


@front_door("matrices")
def total_correlation(
    *mats: torch.Tensor,
    alpha: float = 2.0,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi total correlation (Yu et al. 2019, TPAMI).

    $$
    TC_\alpha(A_1,\dots,A_L) = \sum_{l=1}^L S_\alpha(A_l) - S_\alpha\!\Big(\frac{A_1\circ\dots\circ A_L}
    {\operatorname{tr}(A_1\circ\dots\circ A_L)}\Big)
    $$

    Args:
        *mats: one or more ``(..., n, n)`` Gram matrices of the same samples.

    Returns:
        ``(...)``; for two matrices it equals `mutual_information`.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.total_correlation(a, torch.ones(4, 4), alpha=1.0)  # a constant shares nothing
        tensor(0.)
    """
    return of_matrices("total_correlation", locals())


@front_door("matrices")
def divergence(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    alpha: float = 0.5,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Matrix-based (Petz) Rényi divergence of two Gram matrices on the same samples.

    $$
    D_\alpha(A\,\|\,B) = \frac{1}{\alpha-1}\log\operatorname{tr}\big(A^\alpha B^{1-\alpha}\big),
    \qquad D_1(A\,\|\,B) = \operatorname{tr}\big(A(\log A - \log B)\big)
    $$

    of the trace-normalised ``a`` and ``b``. ``+inf`` for alpha >= 1 unless
    $\operatorname{supp}A\subseteq\operatorname{supp}B$; default alpha = 1/2 (finite and well
    conditioned for every pair). See `renyi_info.divergence` for the numerics and gradients.

    Args:
        a: ``(..., n, n)`` symmetric PSD matrix $A$ (divided by its trace).
        b: ``(..., n, n)`` symmetric PSD matrix $B$ (divided by its trace).

    Returns:
        ``(...)`` divergences in ``[0, inf]``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> p, q = torch.diag(torch.tensor([0.5, 0.5])), torch.diag(torch.tensor([0.25, 0.75]))
        >>> matrix.divergence(p, q, alpha=2.0)  # commuting: log2(sum p^2 / q) = log2(4/3)
        tensor(0.4150)
    """
    return of_matrices("divergence", locals())


@front_door("matrices")
def dime(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    alpha: float = 2.0,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
    permutations: Permutations = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""DiME, the difference of matrix-based entropies of two Gram matrices (Skean et al. 2023).

    $$
    \mathrm{DiME}_\alpha(A;B) = \mathbb{E}_\pi\big[S_\alpha(A \circ P_\pi B P_\pi^\top)\big]
    - S_\alpha(A \circ B)
    $$

    with joint entropies of trace-normalised Hadamard products and $\pi$ uniform over the $n!$
    permutations; see `renyi_info.dime` for its properties.

    Args:
        a: ``(..., n, n)`` symmetric PSD Gram matrix.
        b: ``(..., n, n)`` Gram matrix of the same samples.
        permutations: ``None``/``"auto"`` (exact for n <= 7, else 128 sampled pairings), ``"exact"``
            (n <= 8) or an int ``k >= 1`` of sampled pairings; see `renyi_info.dime`.
        generator: ``torch.Generator`` of the sampled pairings (``None``: torch's global generator).

    Returns:
        ``(...)``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> lab = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # labels (0, 0, 1)
        >>> matrix.dime(lab, torch.eye(3))  # an identity Gram pairs the same way under every shuffle
        tensor(0.)
    """
    check_dime_method(method)
    p = prepared("dime", locals(), "matrices")
    ma, mb = p.tensors
    perms = pairings(permutations, generator, ma.shape[-1], ma.device)
    return to_base(dime_nats(ma, mb, p.order, p.method, perms, ("a", "b")), p.base)
