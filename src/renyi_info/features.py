r"""Matrix-based Rényi quantities of sample features: the public functions that take features.

Each function takes features ``(..., n, d)`` (leading batch dims, ``n`` samples, ``d`` features; integer
labels for ``kernel="label"``), builds one kernel Gram matrix per input (`renyi_info.gram`; ``kernel``,
``sigma``, ``degree``, ``coef``: one value for all inputs or a sequence with one per input) and evaluates
the quantity on the trace-normalised Grams (InfoCLIP Eqs. 2-4, 7). Results are in bits by default. The same
quantities of Gram matrices you already have are in `renyi_info.matrix`.

$$
S_\alpha(A\mid B) = S_\alpha(A,B) - S_\alpha(B), \qquad
I_\alpha(A;B\mid C) = S_\alpha(A,C) + S_\alpha(B,C) - S_\alpha(A,B,C) - S_\alpha(C),
$$

$$
TC_\alpha(A_1,\dots,A_L) = \sum_{l=1}^L S_\alpha(A_l) - S_\alpha(A_1,\dots,A_L), \qquad
D_\alpha(A\,\|\,B) = \frac{1}{\alpha-1}\log\operatorname{tr}\big(A^\alpha B^{1-\alpha}\big)
$$

(joint entropies are entropies of normalised Hadamard products, InfoCLIP Eq. 3). See the
"Derived quantities" page of the docs for references and for which inequalities hold.

The conditional entropy, conditional mutual information and total correlation are signed sums of joint
entropies, so each term takes the route the cost model of `renyi_info.algorithms.routes` picks, as
`entropy` does. At alpha = 2 every term is $2\log T_S - \log F_S$ of a subset $S$ of the
inputs, and the terms on the fused route share **one** tile-streaming pass
(`renyi_info.algorithms.fused.frobenius_sums` with one bit mask per term): memory $O(n\sum_l d_l)$, no
``n x n`` matrix, gradients included. Other orders take the ``gram`` route (or ``dual`` for dot-product
kernels with ``n`` above the feature dimension). The divergence always builds both ``n x n`` Grams: its
Petz form needs $A^\alpha B^{1-\alpha}$ of two matrices that do not commute, which no Frobenius sum gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._front_door import front_door, of_features
from .algorithms.lanczos import LanczosOptions
from .types import BandwidthRule, KernelArg, KernelName, Method, SigmaArg

__all__ = [
    "conditional_entropy",
    "conditional_mutual_information",
    "divergence",
    "entropy",
    "joint_entropy",
    "mutual_information",
    "total_correlation",
]


@front_door("features")
def entropy(
    x: torch.Tensor,
    *,
    alpha: float | Sequence[float] | torch.Tensor = 2.0,
    kernel: KernelName = "cosine",
    base: float = 2.0,
    method: Method = "auto",
    sigma: float | BandwidthRule | None = None,
    degree: int = 1,
    coef: float = 0.0,
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi $\alpha$-entropy of the samples in ``x`` (InfoCLIP Eq. 2).

    $$
    S_\alpha(A) = \frac{1}{1-\alpha}\log_b \sum_{i=1}^n \lambda_i(A)^\alpha,
    \qquad A = \frac{K}{\operatorname{tr} K},\; K_{ij} = \kappa(x_i, x_j)
    $$

    with the limits $S_1 = -\sum_i\lambda_i\log_b\lambda_i$ (von Neumann) and
    $S_\infty = -\log_b\lambda_{\max}$. For alpha = 2 it equals
    $2\log_b\operatorname{tr}K - \log_b\lVert K\rVert_F^2$ (Eq. 9).

    Args:
        x: features ``(..., n, d)``.

    Returns:
        ``(...)``: one entropy per batch entry, in ``[0, log_b n]``: float32, or float64 for float64 inputs
        or ``compute_dtype=torch.float64``; ``(..., k)`` for a sequence of ``k`` orders.

    Raises:
        TypeError: non-tensor or non-floating ``x``; non-numeric ``alpha``/``base``.
        ValueError: wrong shape, n = 0, non-finite values, alpha <= 0, a method that cannot compute this
            alpha, unknown kernel or bad kernel parameters, a Gram of zero trace.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.eye(4)  # four orthogonal samples: A = I/4
        >>> renyi_info.entropy(x)
        tensor(2.)
        >>> renyi_info.entropy(x, alpha=[0.5, 1, 2])  # an alpha sweep from one spectrum
        tensor([2., 2., 2.])
    """
    return of_features("entropy", locals())


@front_door("features")
def joint_entropy(
    *xs: torch.Tensor,
    alpha: float | Sequence[float] | torch.Tensor = 2.0,
    kernel: KernelArg = "cosine",
    base: float = 2.0,
    method: Method = "auto",
    sigma: SigmaArg = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi joint entropy of several views of the same samples (InfoCLIP Eq. 3).

    $$
    S_\alpha(A_1,\dots,A_L) = S_\alpha\!\Big(\frac{A_1\circ\dots\circ A_L}{\operatorname{tr}(A_1\circ\dots\circ A_L)}\Big)
    $$

    Args:
        *xs: one or more feature tensors ``(..., n, d_l)``: same batch shape and ``n``, any ``d_l``.

    Returns:
        ``(...)``; ``(..., k)`` for a sequence of ``k`` orders.

    Example:
        >>> import torch, renyi_info
        >>> x, y = torch.eye(4), torch.ones(4, 1)  # y is constant: its Gram is all ones
        >>> renyi_info.joint_entropy(x, y)
        tensor(2.)
    """
    return of_features("joint_entropy", locals())


@front_door("features")
def mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float | Sequence[float] | torch.Tensor = 2.0,
    kernel: KernelArg = "cosine",
    base: float = 2.0,
    method: Method = "auto",
    sigma: SigmaArg = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi mutual information between two views of the same samples (InfoCLIP Eq. 4).

    $$
    I_\alpha(A;B) = S_\alpha(A) + S_\alpha(B) - S_\alpha(A, B)
    $$

    For alpha > 1 this can be negative (subadditivity fails for matrix Rényi entropies); the value is
    returned as computed, never clamped.

    Args:
        x: features ``(..., n, d_x)``.
        y: features ``(..., n, d_y)`` of the same samples (same batch shape and ``n``).

    Returns:
        ``(...)``; ``(..., k)`` for a sequence of ``k`` orders.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.eye(4)
        >>> renyi_info.mutual_information(x, torch.ones(4, 3))  # nothing shared with a constant
        tensor(0.)
    """
    return of_features("mutual_information", locals())


@front_door("features")
def conditional_entropy(
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
) -> torch.Tensor:
    r"""Matrix-based Rényi conditional entropy $S_\alpha(X\mid Y) = S_\alpha(X, Y) - S_\alpha(Y)$.

    $$
    S_\alpha(A\mid B) = S_\alpha\!\Big(\frac{A\circ B}{\operatorname{tr}(A\circ B)}\Big) - S_\alpha(B)
    $$

    For a label kernel $L\circ L = L$, so $S(Y\mid Y) = 0$; for other kernels
    $S(X\mid X) = S(A\circ A) - S(A)$ is in general not 0 (e.g. a Gaussian
    $K_\sigma\circ K_\sigma = K_{\sigma/\sqrt2}$). For unit-diagonal non-negative kernels
    (gaussian, label) it is $\ge 0$ because the joint entropy is at least each marginal.

    Args:
        x: ``(..., n, d_x)`` features (or labels, see ``kernel``).
        y: ``(..., n, d_y)``, same batch shape and ``n``.

    Returns:
        ``(...)``.

    Raises:
        TypeError: non-tensor or wrongly typed inputs (float labels for ``kernel="label"``).
        ValueError: shapes, non-finite values, alpha, method or kernel options (as `renyi_info.entropy`).

    Example:
        >>> import torch, renyi_info
        >>> y = torch.tensor([0, 0, 1, 1])
        >>> renyi_info.conditional_entropy(y, y, kernel="label")  # S(Y|Y) = 0
        tensor(0.)
    """
    return of_features("conditional_entropy", locals())


@front_door("features")
def conditional_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    *,
    alpha: float = 2.0,
    kernel: KernelArg = "cosine",
    base: float = 2.0,
    method: Method = "auto",
    sigma: SigmaArg = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi conditional mutual information $I_\alpha(X;Y\mid Z)$.

    $$
    I_\alpha(A;B\mid C) = S_\alpha(A,C) + S_\alpha(B,C) - S_\alpha(A,B,C) - S_\alpha(C)
    $$

    With a constant ``z`` (all-ones Gram, the Hadamard identity) it equals
    `renyi_info.mutual_information` of ``x`` and ``y``. Like the mutual information it can be
    negative for alpha > 1; it is never clamped.

    Args:
        x: ``(..., n, d_x)``.
        y: ``(..., n, d_y)``.
        z: ``(..., n, d_z)`` the conditioning variable; all three share the batch shape and ``n``.

    Returns:
        ``(...)``.

    Raises:
        TypeError: non-tensor or wrongly typed inputs.
        ValueError: shapes, non-finite values, alpha, method or kernel options.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.eye(4)
        >>> renyi_info.conditional_mutual_information(x, x, torch.ones(4, 1))  # = I(X;X) = S(X)
        tensor(2.)
    """
    return of_features("conditional_mutual_information", locals())


@front_door("features")
def total_correlation(
    *xs: torch.Tensor,
    alpha: float = 2.0,
    kernel: KernelArg = "cosine",
    base: float = 2.0,
    method: Method = "auto",
    sigma: SigmaArg = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi total correlation of several views of the same samples (Yu et al. 2019).

    $$
    TC_\alpha(A_1,\dots,A_L) = \sum_{l=1}^L S_\alpha(A_l) - S_\alpha\!\Big(\frac{A_1\circ\dots\circ A_L}
    {\operatorname{tr}(A_1\circ\dots\circ A_L)}\Big)
    $$

    Two inputs give the mutual information. Non-negativity is not guaranteed for alpha > 1 (it
    fails already for the mutual information); for alpha <= 1 no violation is known to us (see the
    docs), but it is not proven here either.

    Args:
        *xs: one or more ``(..., n, d_l)`` feature tensors with the same batch shape and ``n``.

    Returns:
        ``(...)``.

    Raises:
        TypeError: non-tensor or wrongly typed inputs.
        ValueError: no input, shapes, non-finite values, alpha, method or kernel options.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.eye(4)
        >>> renyi_info.total_correlation(x, x, x)  # 3 S(X) - S(X) for orthogonal samples
        tensor(4.)
    """
    return of_features("total_correlation", locals())


@front_door("features")
def divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float = 0.5,
    kernel: KernelArg = "cosine",
    base: float = 2.0,
    method: Method = "auto",
    sigma: SigmaArg = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Matrix-based (Petz) Rényi divergence between the Grams of two views of the same samples.

    $$
    D_\alpha(A\,\|\,B) = \frac{1}{\alpha-1}\log\operatorname{tr}\big(A^\alpha B^{1-\alpha}\big),
    \qquad D_1(A\,\|\,B) = \operatorname{tr}\big(A(\log A - \log B)\big)
    $$

    with $A$, $B$ the trace-normalised Grams of ``x`` and ``y``: the quantum (Petz)
    Rényi relative entropy of the two "density matrices". It is 0 for $A = B$, non-negative,
    and reduces to the classical Rényi divergence of the eigenvalues when $A$ and $B$
    commute. For alpha >= 1 it is ``+inf`` unless $\operatorname{supp}A\subseteq\operatorname{supp}B$
    (checked numerically: the mass of $A$ on the numerical null space of $B$ must be
    below $\sqrt{\epsilon}$); for alpha < 1 it is finite unless the supports are orthogonal.
    The default alpha is 1/2 (unlike the entropies): it is finite and well conditioned for every
    pair, whereas alpha > 1 weights the small eigenvalues of $B$ by
    $\lambda^{1-\alpha}$, which is ill conditioned for fast-decaying (e.g. Gaussian) spectra.

    Gradients are finite at repeated eigenvalues (a Daleckii–Krein backward, see the docs);
    ``method="power"`` (integer alpha >= 2) uses matrix powers and a Cholesky inverse of $B$
    instead, and needs $B$ positive definite. ``+inf`` entries get a zero gradient.

    Args:
        x: ``(..., n, d_x)`` features of the first view (Gram $A$).
        y: ``(..., n, d_y)`` features of the second view (Gram $B$), same batch shape and ``n``.

    Returns:
        ``(...)`` divergences in ``[0, inf]``.

    Raises:
        TypeError: non-tensor or wrongly typed inputs.
        ValueError: shapes, non-finite values, alpha = inf or <= 0, an unknown method, ``"power"`` with
            a non-integer alpha or a singular $B$, kernel options.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> d = renyi_info.divergence(x, x)  # D(A || A) = 0, up to round-off
        >>> bool(d.abs() < 1e-5)
        True
    """
    return of_features("divergence", locals())
