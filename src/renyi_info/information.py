r"""Matrix-based Rényi entropy, joint entropy and mutual information of sample features.

Each function takes features ``(..., n, d)`` (leading batch dims, ``n`` samples, ``d`` features),
builds the kernel Gram matrix of the samples (`renyi_info.gram`), and evaluates the
quantity on its trace-normalised form (InfoCLIP Eqs. 2-4, 7). Results are in bits by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._inputs import Prepared, prepare_features
from ._units import to_base
from ._validation import public
from .algorithms import lanczos as slq
from .algorithms import routes
from .algorithms.lanczos import LanczosOptions
from .types import BandwidthRule, KernelArg, KernelName, Method, SigmaArg

__all__ = ["entropy", "joint_entropy", "mutual_information"]


def _entropy_nats(p: Prepared, name: str) -> torch.Tensor:
    """Joint entropy in nats of all prepared inputs (one input: its entropy)."""
    if p.lanczos is not None:
        return slq.features_nats("entropy", p.tensors, p.specs, p.order, p.lanczos).value
    return routes.joint_entropy_nats(p.tensors, p.specs, p.alpha, p.method, name)


@public
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
        alpha: order, > 0 (``1`` and ``float("inf")`` included), or a sequence of orders (list, tuple or
            1-D tensor): one value per order on a trailing axis, all from one eigendecomposition
            (``method="auto"`` or ``"eig"``; the other methods compute one order per call).
        kernel: ``"cosine"`` (default), ``"linear"``, ``"polynomial"`` or ``"gaussian"``.
        base: logarithm base; 2 (bits) by default as in the paper, ``math.e`` for nats.
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2), ``"power"`` (integer alpha >= 2) or
            ``"lanczos"`` (stochastic matrix-free estimate for large n, any alpha, with a stochastic gradient;
            never chosen by ``"auto"``; see `renyi_info.algorithms.lanczos`).
        lanczos: `renyi_info.LanczosOptions` of ``method="lanczos"`` (probes, steps, deflation,
            generator); default ``LanczosOptions()``; rejected with the other methods.
        sigma: Gaussian bandwidth, or a rule: ``"silverman"`` or ``"median"`` (``kernel="gaussian"`` only).
        degree: polynomial degree (``kernel="polynomial"`` only).
        coef: polynomial offset ``c >= 0`` (``kernel="polynomial"`` only).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: the input's dtype, at least
            float32 (float16/bfloat16 inputs are computed in float32), and float64 for the spectrum at
            alpha <= 1 with ``method="eig"`` (float32 there is 2-100% off; see "Precision" in the method
            guide); ``torch.float32`` opts out.

    Returns:
        ``(...)``: one entropy per batch entry, in ``[0, log_b n]`` (``(..., k)`` for ``k`` orders): float32, or float64 for float64 inputs
        or ``compute_dtype=torch.float64``.

    Raises:
        TypeError: non-tensor or non-floating ``x``; non-numeric ``alpha``/``base``.
        ValueError: wrong shape, n = 0, non-finite values, alpha <= 0, a method that cannot compute this
            alpha, unknown kernel or bad kernel parameters, a Gram of zero trace.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.eye(4)  # four orthogonal samples: A = I/4
        >>> renyi_info.entropy(x)
        tensor(2.)
        >>> renyi_info.entropy(x, alpha=[0.5, 1, 2])  # an alpha sweep: one spectrum
        tensor([2., 2., 2.])
    """
    p = prepare_features(
        "entropy",
        ["x"],
        [x],
        alpha=alpha,
        base=base,
        method=method,
        kernel=kernel,
        sigma=sigma,
        degree=degree,
        coef=coef,
        compute_dtype=compute_dtype,
        lanczos=lanczos,
    )
    return to_base(_entropy_nats(p, "x"), p.base)


@public
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
        kernel: one kernel name for all inputs, or a sequence with one per input.
        sigma: Gaussian bandwidth or rule name: one for all inputs or a sequence with one per input.
        degree: polynomial degree: one value or one per input.
        coef: polynomial offset: one value or one per input.
        alpha: order, > 0 (``1`` and ``float("inf")`` included), or a sequence of orders (one value per
            order on a trailing axis, one eigendecomposition per term); see `entropy`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2), ``"power"`` (integer alpha >= 2) or
            ``"lanczos"`` (stochastic matrix-free estimate for large n, any alpha, with a stochastic gradient;
            never chosen by ``"auto"``; see `renyi_info.algorithms.lanczos`).
        lanczos: `renyi_info.LanczosOptions` of ``method="lanczos"`` (probes, steps, deflation,
            generator); default ``LanczosOptions()``; rejected with the other methods.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32, and
            float64 for the spectrum at alpha <= 1 (the result keeps the input's dtype; see "Precision").

    Returns:
        ``(...)``; ``(..., k)`` for ``k`` orders.

    Example:
        >>> import torch, renyi_info
        >>> x, y = torch.eye(4), torch.ones(4, 1)  # y is constant: its Gram is all ones
        >>> renyi_info.joint_entropy(x, y)
        tensor(2.)
    """
    if not xs:
        raise ValueError("joint_entropy needs at least one feature tensor; got none")
    p = prepare_features(
        "entropy",
        [f"xs[{i}]" for i in range(len(xs))],
        xs,
        alpha=alpha,
        base=base,
        method=method,
        kernel=kernel,
        sigma=sigma,
        degree=degree,
        coef=coef,
        compute_dtype=compute_dtype,
        lanczos=lanczos,
    )
    return to_base(_entropy_nats(p, "the Hadamard product of the inputs"), p.base)


@public
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
        kernel: one name for both or a pair ``(kernel_x, kernel_y)``.
        sigma: Gaussian bandwidth or rule name: one value or a pair.
        degree: polynomial degree: one value or a pair.
        coef: polynomial offset: one value or a pair.
        alpha: order, > 0 (``1`` and ``float("inf")`` included), or a sequence of orders (one value per
            order on a trailing axis, one eigendecomposition per term); see `entropy`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2), ``"power"`` (integer alpha >= 2) or
            ``"lanczos"`` (stochastic matrix-free estimate for large n, any alpha, with a stochastic gradient;
            never chosen by ``"auto"``; see `renyi_info.algorithms.lanczos`).
        lanczos: `renyi_info.LanczosOptions` of ``method="lanczos"`` (probes, steps, deflation,
            generator); default ``LanczosOptions()``; rejected with the other methods.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32, and
            float64 for the spectrum at alpha <= 1 (the result keeps the input's dtype; see "Precision").

    Returns:
        ``(...)``; ``(..., k)`` for ``k`` orders.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.eye(4)
        >>> renyi_info.mutual_information(x, torch.ones(4, 3))  # nothing shared with a constant
        tensor(0.)
    """
    p = prepare_features(
        "entropy",
        ["x", "y"],
        [x, y],
        alpha=alpha,
        base=base,
        method=method,
        kernel=kernel,
        sigma=sigma,
        degree=degree,
        coef=coef,
        compute_dtype=compute_dtype,
        lanczos=lanczos,
    )
    if p.lanczos is not None:
        nats = slq.features_nats("mutual_information", p.tensors, p.specs, p.order, p.lanczos).value
    else:
        nats = routes.mutual_information_nats(p.tensors, p.specs, p.alpha, p.method, ("x", "y"))
    return to_base(nats, p.base)
