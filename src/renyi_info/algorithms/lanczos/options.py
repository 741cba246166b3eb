r"""The estimator's settings (`LanczosOptions`), its result (`Estimate`) and the automatic choices made from them
(deflation size, mat-vec precision)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ...kernels import KernelSpec


@dataclass(frozen=True)
class LanczosOptions:
    r"""Settings of the stochastic Lanczos quadrature estimator (``method="lanczos"``).

    Cost: ``steps + 1 + 1`` passes over the kernel (one mat-vec per pass with ``probes + deflate``
    columns, plus the sketch), i.e. ``O((steps + 2) n^2 (d + probes + deflate))`` for recomputed kernels.

    Args:
        probes: Rademacher probe vectors of the Hutchinson part (>= 1; >= 3 for a standard error and the
            control variate). The random error falls like ``1 / sqrt(probes)``.
        steps: the most Lanczos steps per probe = Gauss quadrature nodes (>= 1; capped at ``n``). Controls
            the quadrature (bias) error; 20-40 suffices for smooth spectra, ``alpha < 1`` needs more.
        tol: stop the Lanczos recurrence before ``steps`` once the quadrature bracket (the Gauss /
            Gauss-Radau half-width, mapped to the entropy) of every estimated entropy is at most
            ``tol`` times the entropy (checked every second step from step 4). ``0`` always runs ``steps``.
        matvec_dtype: precision of the kernel tiles and mat-vec products. ``None`` (automatic): float32
            for a value at finite alpha > 1 (whose estimates do not depend on the smallest eigenvalues) on
            features under cosine, gaussian or label kernels (bounded entries), the compute dtype otherwise
            (linear and polynomial kernels, Gram matrices, and inputs that require grad: float32 products
            cannot resolve the sketched directions the gradient's deflation needs); the Lanczos recurrences,
            re-orthogonalisation and quadrature always run in the compute dtype.
        deflate: dimension of the sketched dominant subspace handled separately (>= 0; capped at ``n``).
            Removes the variance the top eigenvalues cause (concentrated spectra: gaussian kernels with a
            large bandwidth, low-rank features). 0 disables it. ``None`` (automatic): 16 for a value,
            128 when the inputs require grad (the gradient's variance falls steeply with it: 3x lower
            relative error at n = 4096 for a few % more time, ``benchmarks/bench_slq_grad.py``).
        generator: the `torch.Generator` the probes and the sketch are drawn from (same seed,
            same result); ``None`` uses torch's global generator.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.

    Example:
        >>> import torch, renyi_info
        >>> opts = renyi_info.LanczosOptions(probes=16, steps=20, generator=torch.Generator().manual_seed(0))
        >>> x = torch.randn(300, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        >>> approx = renyi_info.entropy(x, alpha=1.5, kernel="gaussian", sigma=2.0, method="lanczos", lanczos=opts)
        >>> exact = renyi_info.entropy(x, alpha=1.5, kernel="gaussian", sigma=2.0)
        >>> bool(abs(approx - exact) < 0.02 * exact)
        True
    """

    probes: int = 16
    steps: int = 20
    deflate: int | None = None
    generator: torch.Generator | None = None
    tol: float = 5e-3
    matvec_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        for name, low in (("probes", 1), ("steps", 1), ("deflate", 0)):
            value = getattr(self, name)
            if name == "deflate" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                expected = f"an integer >= {low}" + (" or None (automatic)" if name == "deflate" else "")
                raise TypeError(f"LanczosOptions.{name} must be {expected}; got {value!r}")
            if value < low:
                raise ValueError(f"LanczosOptions.{name} must be >= {low}; got {value}")
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real):
            raise TypeError(f"LanczosOptions.tol must be a real number >= 0; got {self.tol!r}")
        if not 0.0 <= float(self.tol) < math.inf:
            raise ValueError(
                f"LanczosOptions.tol must be finite and >= 0 (0: always run `steps`); got {self.tol}"
            )
        if self.matvec_dtype not in (None, torch.float32, torch.float64):
            raise ValueError(
                f"LanczosOptions.matvec_dtype must be None (automatic), torch.float32 or torch.float64; "
                f"got {self.matvec_dtype!r}"
            )
        if self.generator is not None and not isinstance(self.generator, torch.Generator):
            raise TypeError(
                f"LanczosOptions.generator must be a torch.Generator or None; got {type(self.generator).__name__}"
            )


def check_options(lanczos: object, method: str | None = None) -> LanczosOptions | None:
    """The ``lanczos`` argument of a public function, checked: a `LanczosOptions` or ``None``, and (given
    ``method``, the method the call runs) only with ``method="lanczos"``.

    Raises:
        TypeError: anything else than a `LanczosOptions` or ``None``.
        ValueError: options with another method.
    """
    if lanczos is not None and not isinstance(lanczos, LanczosOptions):
        raise TypeError(f"lanczos must be a renyi_info.LanczosOptions or None; got {type(lanczos).__name__}")
    if lanczos is not None and method is not None and method != "lanczos":
        raise ValueError(
            f"lanczos options are only used by method='lanczos'; the method here is {method!r}. Pass "
            "method='lanczos' or drop the lanczos argument"
        )
    return lanczos


class Estimate(NamedTuple):
    """A stochastic estimate with its two error measures (same shape and unit), as a named tuple.

    Attributes:
        value: the estimate.
        stderr: its standard error over the random probes (statistical; about 95% of estimates fall
            within two of it when the quadrature error is small).
        quadrature: half-width of the Gauss / Gauss-Radau bracket of the Lanczos quadrature (a
            deterministic bound of the quadrature error, to first order; zero when the Krylov spaces are
            complete). Increase ``steps`` when it is comparable to ``stderr``.

    Example:
        >>> import torch, renyi_info
        >>> est = renyi_info.Estimate(torch.tensor(2.5), torch.tensor(0.01), torch.tensor(0.002))
        >>> value, stderr, quadrature = est
        >>> f"{float(value):.2f} +- {float(est.stderr):.2f} (quadrature <= {float(quadrature):.3f})"
        '2.50 +- 0.01 (quadrature <= 0.002)'
    """

    value: torch.Tensor
    stderr: torch.Tensor
    quadrature: torch.Tensor


#: The automatic ``LanczosOptions.deflate``: for a value, and when a gradient is needed.
DEFLATE_VALUE, DEFLATE_GRADIENT = 16, 128


def deflation(options: LanczosOptions, with_gradient: bool) -> int:
    """``options.deflate``, or the automatic choice (`DEFLATE_VALUE` / `DEFLATE_GRADIENT`)."""
    if options.deflate is not None:
        return options.deflate
    return DEFLATE_GRADIENT if with_gradient else DEFLATE_VALUE


def matvec_dtype(
    options: LanczosOptions,
    alpha: float,
    compute: torch.dtype,
    specs: Sequence[KernelSpec] | None = None,
    with_gradient: bool = False,
) -> torch.dtype:
    """The dtype of the mat-vecs: ``options.matvec_dtype``, or automatically float32 for finite alpha > 1 and
    features under bounded kernels (`KernelSpec.bounded`: cosine, gaussian, label, entries in [-1, 1], which
    float32 holds for any input scale). Never above the compute dtype. Otherwise the compute dtype: alpha = inf (its largest Ritz
    value stays a lower bound of the largest eigenvalue), linear and polynomial kernels (their entries can
    overflow float32), Gram matrices (the matrix API keeps the input's precision) and ``with_gradient``."""
    bounded = specs is not None and all(s.bounded for s in specs)
    if options.matvec_dtype is not None:
        chosen = options.matvec_dtype
    else:
        chosen = torch.float32 if 1.0 < alpha < math.inf and bounded and not with_gradient else compute
    return chosen if torch.finfo(chosen).eps >= torch.finfo(compute).eps else compute
