"""Validation at the public door: every public function builds one prepared-inputs object, once.

`prepare_features` and
`prepare_matrices` check the tensors, the kernel options, ``alpha``,
``base``, the method and the Lanczos options, cast the tensors to the compute dtype and resolve the
user's ``method`` (``"auto"``...) to a concrete one. Everything below (`renyi_info.gram_level`,
`renyi_info.algorithms`) trusts the result and checks nothing again except data-dependent facts that only
appear during the computation (a Gram of zero trace).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ._validation import (
    check_alphas,
    check_base,
    check_features,
    check_matrix,
    check_same_samples,
    per_input,
    resolve_divergence_method,
    resolve_dtype,
    resolve_method,
)
from .algorithms.lanczos import LanczosOptions
from .algorithms.lanczos.options import check_options
from .kernels import KernelSpec, condition_features, kernel_matrix, make_kernel, takes_labels

#: What a public function computes, which decides the methods it accepts: ``"entropy"`` (entropy, joint
#: entropy, mutual information: every method), ``"derived"`` (conditional quantities, total correlation:
#: exact methods only), ``"divergence"`` (``auto``/``eig``/``power``) and ``"estimate"`` (the ``*_estimate``
#: functions: always Lanczos, finite alpha, ``probes >= 3``).
KINDS = ("entropy", "derived", "divergence", "estimate")


@dataclass(frozen=True)
class Prepared:
    """Checked inputs of one public call.

    Attributes:
        names: the argument name of each tensor, for error messages.
        tensors: features ``(..., n, d_l)`` (label codes ``(..., n, 1)``) or matrices ``(..., n, n)``,
            finite, on the same samples, in the compute dtype.
        specs: one kernel per feature tensor (empty for matrices).
        alpha: the order, > 0, or a tuple of orders (an alpha sweep: method ``"eig"``, one value per order
            on a trailing axis).
        base: the logarithm base of the result.
        method: the resolved method: ``"eig"``, ``"frobenius"``, ``"power"`` or ``"lanczos"``.
        lanczos: the estimator's options when ``method == "lanczos"``, else ``None``.
    """

    names: tuple[str, ...]
    tensors: tuple[torch.Tensor, ...]
    specs: tuple[KernelSpec, ...]
    alpha: float | tuple[float, ...]
    base: float
    method: str
    lanczos: LanczosOptions | None

    @property
    def order(self) -> float:
        """The single order of a call that takes one (an alpha sweep is refused at the door there)."""
        assert not isinstance(self.alpha, tuple), "an alpha sweep reached a single-order computation"
        return self.alpha

    def grams(self) -> list[torch.Tensor]:
        """The unnormalised Gram of each feature tensor."""
        return [kernel_matrix(x, spec) for x, spec in zip(self.tensors, self.specs)]


def _resolve_sweep(kind: str, method: object, alphas: tuple[float, ...]) -> str:
    """The method of an alpha sweep: one spectrum serves every order, so only ``"eig"`` (``"auto"``)."""
    if kind != "entropy":
        raise TypeError(
            "alpha must be a single order here; a sequence of orders (one spectrum for all of them) is accepted "
            "by entropy, joint_entropy and mutual_information (features or matrices). Call once per order"
        )
    if method in ("auto", "eig"):
        return "eig"
    if method == "lanczos":
        raise ValueError(
            f"method='lanczos' takes a single alpha; got the sequence {list(alphas)}. Use method='auto' or "
            "'eig' (one eigendecomposition serves every order), or call method='lanczos' once per order"
        )
    resolve_method(method, alphas[0])  # an unknown method gets its own error
    raise ValueError(
        f"method={method!r} computes one order at a time; a sequence of alpha ({list(alphas)}) needs the "
        "spectrum: use method='auto' or 'eig'"
    )


def _resolve(
    kind: str, method: object, alpha: object, lanczos: object
) -> tuple[float | tuple[float, ...], str, LanczosOptions | None]:
    assert kind in KINDS, kind
    orders = check_alphas(alpha)
    if isinstance(orders, tuple):
        resolved_sweep = _resolve_sweep(kind, method, orders)
        check_options(lanczos, resolved_sweep)
        return orders, resolved_sweep, None
    alpha = orders
    given = check_options(lanczos)
    if kind == "divergence":
        return alpha, resolve_divergence_method(method, alpha), None
    if kind == "estimate":
        options = given if given is not None else LanczosOptions()
        if math.isinf(alpha):
            raise ValueError(
                "alpha = inf has no standard error: its estimate is the largest Ritz value (a deterministic lower "
                "bound of lambda_max). Use renyi_info.entropy(..., alpha=float('inf'), method='lanczos') for the value"
            )
        if options.probes < 3:
            raise ValueError(
                "a standard error needs LanczosOptions.probes >= 3 (the control variate uses two degrees of "
                f"freedom); got probes = {options.probes}"
            )
        return alpha, "lanczos", options
    resolved = resolve_method(method, alpha, lanczos=kind == "entropy")
    check_options(given, resolved)
    if resolved == "lanczos":
        return alpha, resolved, given if given is not None else LanczosOptions()
    return alpha, resolved, None


def prepare_features(
    kind: str,
    names: Sequence[str],
    xs: Sequence[object],
    *,
    alpha: object,
    base: object,
    method: object = "auto",
    kernel: object = "cosine",
    sigma: object = None,
    degree: object = 1,
    coef: object = 0.0,
    compute_dtype: torch.dtype | None = None,
    lanczos: object = None,
) -> Prepared:
    """Check features and kernel options (one for all inputs or one per input), ``alpha``, ``base`` and
    the method; cast the features to the compute dtype."""
    alpha_, resolved, options = _resolve(kind, method, alpha, lanczos)
    base_ = check_base(base)
    count = len(xs)
    kernels = per_input("kernel", kernel, count)
    checked = [check_features(name, x, labels=takes_labels(k)) for name, x, k in zip(names, xs, kernels)]
    check_same_samples(names, [x[..., 0] for x in checked])
    specs = [
        make_kernel(k, sigma=s, degree=p, coef=c)
        for k, s, p, c in zip(
            kernels,
            per_input("sigma", sigma, count),
            per_input("degree", degree, count),
            per_input("coef", coef, count),
        )
    ]
    # float32 features are computed in float64 where the method needs it (`needs_float64`); one pass over
    # each input checks it is finite and rescales it where needed (`condition_features`)
    dtype = resolve_dtype([x.dtype for x in checked], compute_dtype, method=resolved, alpha=alpha_)
    tensors = tuple(condition_features(n, x, s, dtype) for n, x, s in zip(names, checked, specs))
    return Prepared(tuple(names), tensors, tuple(specs), alpha_, base_, resolved, options)


def prepare_matrices(
    kind: str,
    names: Sequence[str],
    mats: Sequence[object],
    *,
    alpha: object,
    base: object,
    method: object = "auto",
    compute_dtype: torch.dtype | None = None,
    lanczos: object = None,
) -> Prepared:
    """Check symmetric positive semi-definite matrices on the same samples, ``alpha``, ``base`` and the
    method; cast the matrices to the compute dtype.

    Unlike `prepare_features`, a float32 matrix is not promoted at alpha <= 1: its entries already carry
    float32 rounding (unstructured noise of about ``n eps lambda_max`` on the spectrum, which the
    eigenvalue floor of the float32 computation removes, and a float64 spectrum would count as signal).
    """
    alpha_, resolved, options = _resolve(kind, method, alpha, lanczos)
    base_ = check_base(base)
    checked = [check_matrix(name, m) for name, m in zip(names, mats)]
    check_same_samples(names, [m[..., 0] for m in checked])
    dtype = resolve_dtype([m.dtype for m in checked], compute_dtype)
    return Prepared(tuple(names), tuple(m.to(dtype) for m in checked), (), alpha_, base_, resolved, options)
