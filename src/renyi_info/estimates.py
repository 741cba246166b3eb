r"""Stochastic Lanczos estimates of entropies with their standard errors (the public estimate functions).

The algorithm, its maths and its options are in `renyi_info.algorithms.lanczos`; these functions
validate their inputs once (`renyi_info._inputs`) and report the value with its two error measures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._front_door import estimate_of_features, front_door
from .algorithms.lanczos import Estimate, LanczosOptions
from .types import BandwidthRule, KernelArg, KernelName, SigmaArg

__all__ = ["entropy_estimate", "joint_entropy_estimate", "mutual_information_estimate"]


@front_door("estimates")
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
    return estimate_of_features("entropy_estimate", locals())


@front_door("estimates")
def joint_entropy_estimate(
    *xs: torch.Tensor,
    alpha: float = 2.0,
    kernel: KernelArg = "cosine",
    base: float = 2.0,
    sigma: SigmaArg = None,
    degree: int | Sequence[int] = 1,
    coef: float | Sequence[float] = 0.0,
    compute_dtype: torch.dtype | None = None,
    lanczos: LanczosOptions | None = None,
) -> Estimate:
    r"""Stochastic Lanczos estimate of the joint entropy $S_\alpha(A_1,\dots,A_L)$ and its standard error.

    Args:
        *xs: one or more feature tensors ``(..., n, d_l)`` (same batch shape and ``n``).

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
    return estimate_of_features("joint_entropy_estimate", locals())


@front_door("estimates")
def mutual_information_estimate(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    alpha: float = 2.0,
    kernel: KernelArg = "cosine",
    base: float = 2.0,
    sigma: SigmaArg = None,
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
    return estimate_of_features("mutual_information_estimate", locals())
