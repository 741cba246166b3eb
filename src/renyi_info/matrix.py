r"""Matrix-based Rényi quantities of Gram matrices you already have.

Use these when you built the kernel matrices yourself; use :func:`renyi_info.entropy` and friends
when you have features. Inputs are symmetric positive semi-definite matrices ``(..., n, n)``; each is
divided by its trace before use (a no-op for an already normalised ``A``), so the results are
invariant to rescaling.

.. math::

    S_\alpha(A) = \frac{1}{1-\alpha}\log_b \sum_i \lambda_i(A)^\alpha, \qquad
    S_\alpha(A_1,\dots,A_L) = S_\alpha\!\Big(\frac{A_1\circ\dots\circ A_L}{\operatorname{tr}(A_1\circ\dots\circ A_L)}\Big),
    \qquad I_\alpha(A;B) = S_\alpha(A) + S_\alpha(B) - S_\alpha(A,B)
"""

from __future__ import annotations

import torch

from ._core import gram_entropy, gram_mutual_information, hadamard, to_base
from ._derived import (
    gram_conditional_entropy,
    gram_conditional_mutual_information,
    gram_divergence,
    gram_total_correlation,
    resolve_divergence_method,
)
from ._validation import (
    check_alpha,
    check_base,
    check_finite,
    check_same_samples,
    check_square,
    public,
    resolve_dtype,
    resolve_method,
)
from .kernels import check_trace
from .lanczos import LanczosOptions, matrices_route
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


def _check_matrix(name: str, a: object) -> torch.Tensor:
    a = check_square(name, a)
    check_finite(name, a)
    if a.numel():
        scale = a.detach().abs().amax()
        asym = (a.detach() - a.detach().mT).abs().amax()
        if bool(asym > 1e-4 * scale):
            raise ValueError(
                f"{name} must be symmetric (a Gram matrix); its largest |{name} - {name}^T| entry is "
                f"{float(asym):.3g} against a largest entry of {float(scale):.3g}. Pass (a + a.mT) / 2 if the "
                "asymmetry is round-off"
            )
        _check_psd(name, a.detach())
    return a


def psd_tolerance(n: int, dtype: torch.dtype) -> float:
    """Relative tolerance of the PSD check: ``min(0.1, max(1e-3, 10 n eps))``, ``eps`` of the dtype.

    A Gram computed in floating point is PSD only up to its rounding, which moves eigenvalues by about
    ``n eps lambda_max`` at worst (hence ``10 n eps``). The floor ``1e-3`` accepts matrices whose
    entries were rounded to float16/bfloat16 and then cast up (the library cannot see that history);
    clamping such negative eigenvalues to 0 changes the entropy by less than the rounding already did.
    Matrices with a real negative part (``[[1, 2], [2, 1]]``: -1 against 3, or -1e-2 of the largest)
    are refused; the cap 0.1 keeps the check meaningful for half-precision inputs.
    """
    return min(0.1, max(1e-3, 10.0 * n * torch.finfo(dtype).eps))


def _check_psd(name: str, a: torch.Tensor) -> None:
    r"""Refuse a matrix with an eigenvalue below :math:`-\mathrm{tol}\,\lambda_{\max}` (:func:`psd_tolerance`).

    Cheap where possible: a Cholesky factorisation of :math:`A + \mathrm{tol}\,\max_i a_{ii}\,I`
    (about a quarter of the cost of the spectrum) proves the bound when it succeeds (since
    :math:`\lambda_{\max}\ge\max_i a_{ii}`); only when it fails is the spectrum computed to decide.
    """
    if a.numel() == 0:
        return
    n = a.shape[-1]
    tol = psd_tolerance(n, a.dtype)
    work = a if a.dtype == torch.float64 else a.to(torch.float32)
    shift = tol * work.diagonal(dim1=-2, dim2=-1).amax(-1).clamp_min(0.0)
    eye = torch.eye(n, dtype=work.dtype, device=work.device)
    _, info = torch.linalg.cholesky_ex(work + shift[..., None, None] * eye)
    if not bool((info != 0).any()):
        return
    lam = torch.linalg.eigvalsh(work.to(torch.float64))
    lam_max = lam[..., -1].clamp_min(0.0)
    bad = lam[..., 0] < -tol * lam_max  # an all-zero matrix passes here (and fails the trace check)
    if bool(bad.any()):
        worst = int(torch.argmax((-lam[..., 0] / lam_max.clamp_min(1e-300)).reshape(-1)))
        lo, hi = float(lam[..., 0].reshape(-1)[worst]), float(lam[..., -1].reshape(-1)[worst])
        raise ValueError(
            f"{name} must be positive semi-definite (a Gram matrix); its smallest eigenvalue is {lo:.4g} against "
            f"a largest of {hi:.4g}, below -tol * lambda_max with tol = {tol:.3g} (round-off of a Gram computed "
            f"in {a.dtype}). Build it from a kernel (renyi_info.gram), or project it onto the PSD cone "
            "(clamp its eigenvalues at 0) if the negative part is noise"
        )


def _prepare(names: list[str], mats: tuple, compute_dtype: torch.dtype | None) -> list[torch.Tensor]:
    """Validate the matrices; cast them to the compute dtype (the inputs', at least float32).

    Unlike the feature functions, a float32 matrix is not promoted at alpha <= 1: its entries already
    carry float32 rounding (unstructured noise of about ``n eps lambda_max`` on the spectrum, which the
    eigenvalue floor of the float32 computation removes, and a float64 spectrum would count as signal).
    """
    checked = [_check_matrix(name, m) for name, m in zip(names, mats)]
    check_same_samples(names, [m[..., 0] for m in checked])
    dtype = resolve_dtype([m.dtype for m in checked], compute_dtype)
    return [m.to(dtype) for m in checked]


def normalize(k: torch.Tensor) -> torch.Tensor:
    r"""Trace-normalise a Gram matrix: :math:`A = K / \operatorname{tr} K` (InfoCLIP Eq. 7).

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
    k = _check_matrix("k", k)
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
    r"""Matrix-based Rényi :math:`\alpha`-entropy of a Gram matrix (InfoCLIP Eq. 2).

    .. math::

        S_\alpha(A) = \frac{1}{1-\alpha}\log_b \operatorname{tr}(A^\alpha), \quad
        S_1(A) = -\sum_i \lambda_i \log_b \lambda_i, \quad S_\infty(A) = -\log_b \lambda_{\max}

    Args:
        a: ``(..., n, n)`` symmetric PSD matrices (divided by their trace internally).
        alpha: order, ``> 0``; ``1`` (von Neumann) and ``float("inf")`` are allowed with ``method="eig"``.
        base: logarithm base (2 = bits, the paper's choice; ``math.e`` = nats).
        method: ``"eig"`` (spectrum, any alpha), ``"frobenius"`` (alpha = 2:
            :math:`-\log\lVert A\rVert_F^2`), ``"power"`` (integer alpha >= 2 via matrix products) or
            ``"auto"`` (the cheapest exact one), or ``"lanczos"`` (stochastic; see ``lanczos``).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.
        lanczos: :class:`~renyi_info.LanczosOptions` of ``method="lanczos"`` (a stochastic estimate from
            mat-vecs with the matrix: any alpha, not differentiable, never chosen by ``"auto"``); default
            ``LanczosOptions()``; rejected with the other methods.

    Returns:
        ``(...)`` entropies, between 0 and :math:`\log_b n`.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> matrix.entropy(torch.eye(4) / 4, alpha=1.0)  # log2(4)
        tensor(2.)
    """
    alpha = check_alpha(alpha)
    base = check_base(base)
    route = resolve_method(method, alpha)
    (m,) = _prepare(["a"], (a,), compute_dtype)
    if route == "lanczos" or lanczos is not None:
        return to_base(matrices_route(route, lanczos, "entropy", ["a"], [m], alpha), base)
    return to_base(gram_entropy(m, alpha, route, "a"), base)


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

    .. math::

        S_\alpha(A_1,\dots,A_L) = S_\alpha\!\Big(\frac{A_1\circ\dots\circ A_L}{\operatorname{tr}(A_1\circ\dots\circ A_L)}\Big)

    Args:
        *mats: one or more ``(..., n, n)`` matrices with the same shape.
        alpha: order, > 0 (``1`` and ``float("inf")`` included); see :func:`entropy`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) ``"power"`` (integer alpha >= 2) or ``"lanczos"``.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.
        lanczos: :class:`~renyi_info.LanczosOptions` of ``method="lanczos"`` (a stochastic estimate from
            mat-vecs with the matrix: any alpha, not differentiable, never chosen by ``"auto"``); default
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
    alpha = check_alpha(alpha)
    base = check_base(base)
    route = resolve_method(method, alpha)
    names = [f"mats[{i}]" for i in range(len(mats))]
    ms = _prepare(names, mats, compute_dtype)
    if route == "lanczos" or lanczos is not None:
        return to_base(matrices_route(route, lanczos, "entropy", names, ms, alpha), base)
    return to_base(gram_entropy(hadamard(ms), alpha, route, "the Hadamard product"), base)


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

    .. math::

        I_\alpha(A;B) = S_\alpha(A) + S_\alpha(B) - S_\alpha(A, B)

    It can be negative for alpha > 1 (it is not a Shannon quantity); it is never clamped.

    Args:
        a: ``(..., n, n)`` Gram matrix.
        b: ``(..., n, n)`` Gram matrix of the same samples.
        alpha: order, > 0 (``1`` and ``float("inf")`` included); see :func:`entropy`.
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) ``"power"`` (integer alpha >= 2) or ``"lanczos"``.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.
        lanczos: :class:`~renyi_info.LanczosOptions` of ``method="lanczos"`` (a stochastic estimate from
            mat-vecs with the matrix: any alpha, not differentiable, never chosen by ``"auto"``); default
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
    alpha = check_alpha(alpha)
    base = check_base(base)
    route = resolve_method(method, alpha)
    ma, mb = _prepare(["a", "b"], (a, b), compute_dtype)
    if route == "lanczos" or lanczos is not None:
        return to_base(
            matrices_route(route, lanczos, "mutual_information", ["a", "b"], [ma, mb], alpha), base
        )
    return to_base(gram_mutual_information(ma, mb, alpha, route), base)


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
    r"""Matrix-based Rényi conditional entropy :math:`S_\alpha(A\mid B) = S_\alpha(A,B) - S_\alpha(B)`.

    .. math::

        S_\alpha(A\mid B) = S_\alpha\!\Big(\frac{A\circ B}{\operatorname{tr}(A\circ B)}\Big) - S_\alpha(B)

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
    alpha = check_alpha(alpha)
    base = check_base(base)
    route = resolve_method(method, alpha)
    ma, mb = _prepare(["a", "b"], (a, b), compute_dtype)
    return to_base(gram_conditional_entropy(ma, mb, alpha, route), base)


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
    r"""Matrix-based Rényi conditional mutual information :math:`I_\alpha(A;B\mid C)`.

    .. math::

        I_\alpha(A;B\mid C) = S_\alpha(A,C) + S_\alpha(B,C) - S_\alpha(A,B,C) - S_\alpha(C)

    Args:
        a: ``(..., n, n)`` Gram matrix of the first variable.
        b: ``(..., n, n)`` Gram matrix of the second variable.
        c: ``(..., n, n)`` Gram matrix of the conditioning variable (all on the same samples).
        alpha: order, > 0 (``1`` and ``float("inf")`` included).
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) or ``"power"`` (integer alpha >= 2).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.

    Returns:
        ``(...)``; with an all-ones ``c`` it equals :func:`mutual_information` of ``a`` and ``b``.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.conditional_mutual_information(a, a, torch.ones(4, 4), alpha=1.0)  # = I(A;A)
        tensor(2.)
    """
    alpha = check_alpha(alpha)
    base = check_base(base)
    route = resolve_method(method, alpha)
    ma, mb, mc = _prepare(["a", "b", "c"], (a, b, c), compute_dtype)
    return to_base(gram_conditional_mutual_information(ma, mb, mc, alpha, route), base)


@public
def total_correlation(
    *mats: torch.Tensor,
    alpha: float = 2.0,
    base: float = 2.0,
    method: Method = "auto",
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Matrix-based Rényi total correlation (Yu et al. 2019, TPAMI).

    .. math::

        TC_\alpha(A_1,\dots,A_L) = \sum_{l=1}^L S_\alpha(A_l) - S_\alpha\!\Big(\frac{A_1\circ\dots\circ A_L}
        {\operatorname{tr}(A_1\circ\dots\circ A_L)}\Big)

    Args:
        *mats: one or more ``(..., n, n)`` Gram matrices of the same samples.
        alpha: order, > 0 (``1`` and ``float("inf")`` included).
        base: logarithm base (2 = bits, ``math.e`` = nats).
        method: ``"auto"``, ``"eig"``, ``"frobenius"`` (alpha = 2) or ``"power"`` (integer alpha >= 2).
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: input dtype, at least float32.

    Returns:
        ``(...)``; for two matrices it equals :func:`mutual_information`.

    Example:
        >>> import torch
        >>> from renyi_info import matrix
        >>> a = torch.eye(4) / 4
        >>> matrix.total_correlation(a, torch.ones(4, 4), alpha=1.0)  # a constant shares nothing
        tensor(0.)
    """
    if not mats:
        raise ValueError("total_correlation needs at least one matrix; got none")
    alpha = check_alpha(alpha)
    base = check_base(base)
    route = resolve_method(method, alpha)
    names = [f"mats[{i}]" for i in range(len(mats))]
    ms = _prepare(names, mats, compute_dtype)
    return to_base(gram_total_correlation(ms, alpha, route, names), base)


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

    .. math::

        D_\alpha(A\,\|\,B) = \frac{1}{\alpha-1}\log\operatorname{tr}\big(A^\alpha B^{1-\alpha}\big),
        \qquad D_1(A\,\|\,B) = \operatorname{tr}\big(A(\log A - \log B)\big)

    of the trace-normalised ``a`` and ``b``. ``+inf`` for alpha >= 1 unless
    :math:`\operatorname{supp}A\subseteq\operatorname{supp}B`; default alpha = 1/2 (finite and well
    conditioned for every pair). See :func:`renyi_info.divergence` for the numerics and gradients.

    Args:
        a: ``(..., n, n)`` symmetric PSD matrix :math:`A` (divided by its trace).
        b: ``(..., n, n)`` symmetric PSD matrix :math:`B` (divided by its trace).
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
    alpha = check_alpha(alpha)
    base = check_base(base)
    route = resolve_divergence_method(method, alpha)
    ma, mb = _prepare(["a", "b"], (a, b), compute_dtype)
    return to_base(gram_divergence(ma, mb, alpha, route), base)
