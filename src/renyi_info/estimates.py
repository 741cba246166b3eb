r"""Stochastic Lanczos estimates of entropies with their standard errors (the public estimate functions).

The algorithm, its maths and its options are in `renyi_info.algorithms.lanczos`; these functions
validate their inputs once (`renyi_info._inputs`) and report the value with its two error measures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._inputs import prepare_features
from ._units import to_base
from ._validation import public
from .algorithms.lanczos import Estimate, LanczosOptions, features_nats
from .types import BandwidthRule, KernelName

__all__ = ["entropy_estimate", "joint_entropy_estimate", "mutual_information_estimate"]


def _public_estimate(
    kind: str,
    names: list[str],
    xs: Sequence[torch.Tensor],
    alpha: object,
    kernel: object,
    base: object,
    sigma: object,
    degree: object,
    coef: object,
    compute_dtype: torch.dtype | None,
    lanczos: object,
) -> Estimate:
    p = prepare_features(
        "estimate",
        names,
        xs,
        alpha=alpha,
        base=base,
        kernel=kernel,
        sigma=sigma,
        degree=degree,
        coef=coef,
        compute_dtype=compute_dtype,
        lanczos=lanczos,
    )
    assert p.lanczos is not None
    est = features_nats(kind, p.tensors, p.specs, p.order, p.lanczos)
    return Estimate(*(to_base(t, p.base) for t in est))


@public
def entropy_estimate(
    x: torch.Tensor,
    *,
    alpha: float = 2.0,
    kernel: KernelName = "cosine",
    base: float = 2.0,
    sigma: float | BandwidthRule | None = None,
    degree: int = 1,
    coef: float = 0.0,
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> Estimate:
    r"""Stochastic Lanczos estimate of $S_\alpha(A)$ with its standard error.

    The value equals ``renyi_info.entropy(x, ..., method="lanczos", lanczos=lanczos)`` (same generator
    state, same number). The standard error is the probe-to-probe (Hutchinson) spread of the estimate
    (control-variate residuals, delta method to the entropy); the Lanczos quadrature error is bounded
    separately by ``quadrature`` (module docs).

    Args:
        x: features ``(..., n, d)``.
        alpha: order, > 0 and finite (``alpha = inf`` has no standard error; use `renyi_info.entropy`).
        kernel: one kernel name, as in `renyi_info.entropy`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        sigma: Gaussian bandwidth (a number, ``"silverman"`` or ``"median"``).
        degree: polynomial degree.
        coef: polynomial offset.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: the input's dtype, at least float32.
        lanczos: `LanczosOptions` (default ``LanczosOptions()``), with ``probes >= 3``.

    Returns:
        ``Estimate(value, stderr, quadrature)``, each ``(...)``, in units of ``base``.

    Raises:
        TypeError, ValueError: as `renyi_info.entropy`; ``alpha = inf``; ``probes < 3``; ``x``
            requires grad while grad mode is on.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.randn(400, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> opts = renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(0))
        >>> est = renyi_info.entropy_estimate(x, alpha=1.0, kernel="gaussian", sigma=3.0, lanczos=opts)
        >>> exact = renyi_info.entropy(x, alpha=1.0, kernel="gaussian", sigma=3.0)
        >>> bool(abs(est.value - exact) < 4 * est.stderr + 1e-3)
        True
    """
    return _public_estimate(
        "entropy", ["x"], [x], alpha, kernel, base, sigma, degree, coef, compute_dtype, lanczos
    )


@public
def joint_entropy_estimate(
    *xs: torch.Tensor,
    alpha: float = 2.0,
    kernel: KernelName | Sequence[KernelName] = "cosine",
    base: float = 2.0,
    sigma: float | BandwidthRule | Sequence[float | BandwidthRule | None] | None = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> Estimate:
    r"""Stochastic Lanczos estimate of the joint entropy $S_\alpha(A_1,\dots,A_L)$ and its standard error.

    Args:
        *xs: one or more feature tensors ``(..., n, d_l)`` (same batch shape and ``n``).
        alpha: order, > 0 and finite.
        kernel: one kernel name or one per input, as in `renyi_info.joint_entropy`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        sigma: Gaussian bandwidth (a number, ``"silverman"`` or ``"median"``): one value or one per input.
        degree: polynomial degree: one value or one per input.
        coef: polynomial offset: one value or one per input.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: the input's dtype, at least float32.
        lanczos: `LanczosOptions` (default ``LanczosOptions()``), with ``probes >= 3``.

    Returns:
        ``Estimate(value, stderr, quadrature)``, each ``(...)``.

    Example:
        >>> import torch, renyi_info
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(300, 4, generator=g), torch.randn(300, 3, generator=g)
        >>> est = renyi_info.joint_entropy_estimate(x, y, alpha=2.0, kernel="linear")
        >>> bool(0 <= est.value <= torch.log2(torch.tensor(300.0)) and est.stderr >= 0)
        True
    """
    if not xs:
        raise ValueError("joint_entropy_estimate needs at least one feature tensor; got none")
    names = [f"xs[{i}]" for i in range(len(xs))]
    return _public_estimate(
        "entropy", names, xs, alpha, kernel, base, sigma, degree, coef, compute_dtype, lanczos
    )


@public
def mutual_information_estimate(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float = 2.0,
    kernel: KernelName | Sequence[KernelName] = "cosine",
    base: float = 2.0,
    sigma: float | BandwidthRule | Sequence[float | BandwidthRule | None] | None = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> Estimate:
    r"""Stochastic Lanczos estimate of $I_\alpha(A;B) = S(A) + S(B) - S(A,B)$ and its standard error.

    The three entropies use the same probes (common random numbers), so their errors partly cancel;
    the standard error combines the per-probe residuals of the three terms.

    Args:
        x: features ``(..., n, d_x)``.
        y: features ``(..., n, d_y)`` of the same samples.
        alpha: order, > 0 and finite.
        kernel: one kernel name or a pair, as in `renyi_info.mutual_information`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        sigma: Gaussian bandwidth (a number, ``"silverman"`` or ``"median"``): one value or a pair.
        degree: polynomial degree: one value or a pair.
        coef: polynomial offset: one value or a pair.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: the input's dtype, at least float32.
        lanczos: `LanczosOptions` (default ``LanczosOptions()``), with ``probes >= 3``.

    Returns:
        ``Estimate(value, stderr, quadrature)``, each ``(...)``.

    Example:
        >>> import torch, renyi_info
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(300, 4, generator=g, dtype=torch.float64)
        >>> y = x[:, :2] + 0.1 * torch.randn(300, 2, generator=g, dtype=torch.float64)
        >>> opts = renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(0))
        >>> est = renyi_info.mutual_information_estimate(x, y, alpha=1.01, kernel="gaussian", sigma=2.0, lanczos=opts)
        >>> exact = renyi_info.mutual_information(x, y, alpha=1.01, kernel="gaussian", sigma=2.0)
        >>> bool(abs(est.value - exact) < 4 * est.stderr + 1e-2)
        True
    """
    return _public_estimate(
        "mutual_information",
        ["x", "y"],
        [x, y],
        alpha,
        kernel,
        base,
        sigma,
        degree,
        coef,
        compute_dtype,
        lanczos,
    )
