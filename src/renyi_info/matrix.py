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

import torch

from ._inputs import prepare_matrices
from ._units import to_base
from ._validation import check_matrix, public
from .algorithms.lanczos import LanczosOptions, matrices_nats
from .gram_level import (
    gram_conditional_entropy,
    gram_conditional_mutual_information,
    gram_divergence,
    gram_entropy,
    gram_mutual_information,
    gram_total_correlation,
    hadamard,
)
from .kernels import check_trace
from .types import Method

__all__ = [
    "conditional_entropy",
    "conditional_mutual_information",
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


@public
def entropy(
    a: torch.Tensor,
    *,
    alpha: float = 2.0,
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
        alpha: order, ``> 0``; ``1`` (von Neumann) and ``float("inf")`` are allowed with ``method="eig"``.
        base: logarithm base (2 = bits, the paper's choice; ``math.e`` = nats).
        method: ``"eig"`` (spectrum, any alpha), ``"frobenius"`` (alpha = 2:
            $-\log\lVert A\rVert_F^2$), ``"power"`` (integer alpha >= 2 via matrix products) or
            ``"auto"`` (the cheapest exact one), or ``"lanczos"`` (stochastic; see ``lanczos``).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.
        lanczos: `renyi_info.LanczosOptions` of ``method="lanczos"`` (a stochastic estimate from
            mat-vecs with the matrix: any alpha, stochastic gradient, never chosen by ``"auto"``); default
            ``LanczosOptions()``; rejected with the other methods.

    Returns:
        ``(...)`` entropies, between 0 and $\log_b n$.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> matrix.entropy(torch.eye(4) / 4, alpha=1.0)  # log2(4)
        tensor(2.)
    """
    p = prepare_matrices(
        "entropy",
        ["a"],
        (a,),
        alpha=alpha,
        base=base,
        method=method,
        compute_dtype=compute_dtype,
        lanczos=lanczos,
    )
    if p.lanczos is not None:
        return to_base(matrices_nats("entropy", p.tensors, p.order, p.lanczos).value, p.base)
    return to_base(gram_entropy(p.tensors[0], p.alpha, p.method, "a"), p.base)


@public
def joint_entropy(
    *mats: torch.Tensor,
    alpha: float = 2.0,
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
        alpha: order, > 0 (``1`` and ``float("inf")`` included); see `entropy`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) ``"power"`` (integer alpha >= 2) or ``"lanczos"``.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.
        lanczos: `renyi_info.LanczosOptions` of ``method="lanczos"`` (a stochastic estimate from
            mat-vecs with the matrix: any alpha, stochastic gradient, never chosen by ``"auto"``); default
            ``LanczosOptions()``; rejected with the other methods.

    Returns:
        ``(...)``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.joint_entropy(a, torch.ones(4, 4))  # the all-ones matrix is the Hadamard identity
        tensor(2.)
    """
    if not mats:
        raise ValueError("joint_entropy needs at least one matrix; got none")
    names = [f"mats[{i}]" for i in range(len(mats))]
    p = prepare_matrices(
        "entropy",
        names,
        mats,
        alpha=alpha,
        base=base,
        method=method,
        compute_dtype=compute_dtype,
        lanczos=lanczos,
    )
    if p.lanczos is not None:
        return to_base(matrices_nats("entropy", p.tensors, p.order, p.lanczos).value, p.base)
    return to_base(gram_entropy(hadamard(list(p.tensors)), p.alpha, p.method, "the Hadamard product"), p.base)


@public
def mutual_information(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    alpha: float = 2.0,
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
        alpha: order, > 0 (``1`` and ``float("inf")`` included); see `entropy`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) ``"power"`` (integer alpha >= 2) or ``"lanczos"``.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.
        lanczos: `renyi_info.LanczosOptions` of ``method="lanczos"`` (a stochastic estimate from
            mat-vecs with the matrix: any alpha, stochastic gradient, never chosen by ``"auto"``); default
            ``LanczosOptions()``; rejected with the other methods.

    Returns:
        ``(...)``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.mutual_information(a, a, alpha=1.0)  # I(A;A) = S(A) + S(A) - S(A∘A)
        tensor(2.)
    """
    p = prepare_matrices(
        "entropy",
        ["a", "b"],
        (a, b),
        alpha=alpha,
        base=base,
        method=method,
        compute_dtype=compute_dtype,
        lanczos=lanczos,
    )
    if p.lanczos is not None:
        return to_base(matrices_nats("mutual_information", p.tensors, p.order, p.lanczos).value, p.base)
    ma, mb = p.tensors
    return to_base(gram_mutual_information(ma, mb, p.alpha, p.method), p.base)


@public
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
        alpha: order, > 0 (``1`` and ``float("inf")`` included).
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) or ``"power"`` (integer alpha >= 2).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.

    Returns:
        ``(...)``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> lab = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # a label kernel
        >>> matrix.conditional_entropy(lab, lab)  # L o L = L, so S(L|L) = 0
        tensor(0.)
    """
    p = prepare_matrices(
        "derived", ["a", "b"], (a, b), alpha=alpha, base=base, method=method, compute_dtype=compute_dtype
    )
    ma, mb = p.tensors
    return to_base(gram_conditional_entropy(ma, mb, p.order, p.method), p.base)


@public
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
        alpha: order, > 0 (``1`` and ``float("inf")`` included).
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) or ``"power"`` (integer alpha >= 2).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.

    Returns:
        ``(...)``; with an all-ones ``c`` it equals `mutual_information` of ``a`` and ``b``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.conditional_mutual_information(a, a, torch.ones(4, 4), alpha=1.0)  # = I(A;A)
        tensor(2.)
    """
    p = prepare_matrices(
        "derived",
        ["a", "b", "c"],
        (a, b, c),
        alpha=alpha,
        base=base,
        method=method,
        compute_dtype=compute_dtype,
    )
    ma, mb, mc = p.tensors
    return to_base(gram_conditional_mutual_information(ma, mb, mc, p.order, p.method), p.base)


@public
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
        alpha: order, > 0 (``1`` and ``float("inf")`` included).
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) or ``"power"`` (integer alpha >= 2).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.

    Returns:
        ``(...)``; for two matrices it equals `mutual_information`.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.total_correlation(a, torch.ones(4, 4), alpha=1.0)  # a constant shares nothing
        tensor(0.)
    """
    if not mats:
        raise ValueError("total_correlation needs at least one matrix; got none")
    names = [f"mats[{i}]" for i in range(len(mats))]
    p = prepare_matrices(
        "derived", names, mats, alpha=alpha, base=base, method=method, compute_dtype=compute_dtype
    )
    return to_base(gram_total_correlation(p.tensors, p.order, p.method, names), p.base)


@public
def divergence(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    alpha: float = 0.5,
    base: float = 2.0,
    method: str = "auto",
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
        alpha: order, finite and > 0; default 0.5.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"`` (= ``"eig"``), ``"eig"`` or ``"power"`` (integer alpha >= 2, positive
            definite ``b``).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.

    Returns:
        ``(...)`` divergences in ``[0, inf]``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> p, q = torch.diag(torch.tensor([0.5, 0.5])), torch.diag(torch.tensor([0.25, 0.75]))
        >>> matrix.divergence(p, q, alpha=2.0)  # commuting: log2(sum p^2 / q) = log2(4/3)
        tensor(0.4150)
    """
    p = prepare_matrices(
        "divergence", ["a", "b"], (a, b), alpha=alpha, base=base, method=method, compute_dtype=compute_dtype
    )
    ma, mb = p.tensors
    return to_base(gram_divergence(ma, mb, p.order, p.method), p.base)
