"""Argument checks shared by every public function.

Every check raises a ``TypeError`` or ``ValueError`` whose message names the argument, what was
expected and what was received, so that a user can fix the call without reading the source.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

METHODS = ("auto", "eig", "frobenius", "power", "lanczos")

#: Methods accepted by the divergence ("frobenius" has no meaning for it).
DIVERGENCE_METHODS = ("auto", "eig", "power")


def check_tensor(name: str, x: object, *, min_rank: int, what: str) -> torch.Tensor:
    """Check that ``x`` is a real floating tensor of rank at least ``min_rank`` with no empty core dims."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {what}; got {type(x).__name__}")
    if not (x.is_floating_point()):
        raise TypeError(
            f"{name} must be a real floating-point tensor (float16/bfloat16/float32/float64); got dtype "
            f"{x.dtype}. Convert it with {name}.float()"
        )
    check_not_meta(name, x)
    if x.dim() < min_rank:
        raise ValueError(f"{name} must have shape {what} (rank >= {min_rank}); got shape {tuple(x.shape)}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name} has n = 0 samples (shape {tuple(x.shape)}); at least one sample is needed")
    return x


def check_not_meta(name: str, x: torch.Tensor) -> None:
    """Meta tensors have shapes but no values; every quantity here depends on the values."""
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is a meta tensor (shape {tuple(x.shape)}, no data): the entropies depend on the values of "
            f"the features, which a meta tensor does not have. Pass a tensor on a real device (e.g. "
            f"{name}.to_empty(device='cpu') after filling it, or the real input)"
        )


def check_labels(name: str, y: object) -> torch.Tensor:
    """Integer/bool class labels ``(..., n)`` or ``(..., n, 1)`` -> canonical codes ``(..., n, 1)`` (int64).

    The code of sample i is the index of the first sample with the same label, so codes are below n and
    survive a cast to any floating dtype exactly (raw int64 labels above 2**24 would not in float32).
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of integer class labels of shape (..., n) or (..., n, 1) for "
            f"kernel='label'; got {type(y).__name__}"
        )
    if y.is_floating_point() or y.is_complex():
        raise TypeError(
            f"kernel='label' needs integer (or bool) class labels; {name} has dtype {y.dtype}. Floating "
            f"values are not read as labels; if they are class ids, pass {name}.long()"
        )
    check_not_meta(name, y)
    if y.dim() >= 2 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.dim() < 1:
        raise ValueError(
            f"{name} must have shape (..., n) or (..., n, 1) for kernel='label'; got a 0-d tensor"
        )
    if y.shape[-1] == 0:
        raise ValueError(f"{name} has n = 0 samples (shape {tuple(y.shape)}); at least one sample is needed")
    same = y.unsqueeze(-1) == y.unsqueeze(-2)
    return same.to(torch.uint8).argmax(-1).unsqueeze(-1)


def check_features(name: str, x: object, *, labels: bool = False) -> torch.Tensor:
    """Features of shape ``(..., n, d)`` with n >= 1 and d >= 1 (class labels if ``labels``)."""
    if labels:
        return check_labels(name, x)
    x = check_tensor(name, x, min_rank=2, what="(..., n, d)")
    if x.shape[-1] == 0:
        raise ValueError(
            f"{name} has d = 0 features (shape {tuple(x.shape)}); at least one feature is needed"
        )
    return x


def check_square(name: str, a: object) -> torch.Tensor:
    """Matrices of shape ``(..., n, n)``."""
    a = check_tensor(name, a, min_rank=2, what="(..., n, n)")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name} must be square with shape (..., n, n); got shape {tuple(a.shape)}")
    return a


def check_finite(name: str, x: torch.Tensor) -> None:
    """Reject NaN and infinity (the quantities are undefined there and would propagate silently)."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); all entries must be finite"
        )


def largest_abs(x: torch.Tensor, dims: tuple[int, ...] = (-2, -1), keepdim: bool = False) -> torch.Tensor:
    """Largest ``|x|`` over ``dims``, detached; NaN propagates (an infinity is its own largest value).

    From the minimum and the maximum: no ``|x|`` copy, 3x faster on the CPU than ``x.abs().amax()``,
    ``torch.aminmax`` or an infinity norm (163 MB of float32: 18 ms against 50-65 ms).
    """
    x = x.detach()
    return torch.maximum(-x.amin(dims, keepdim=keepdim), x.amax(dims, keepdim=keepdim))


def finite_abs_max(name: str, x: torch.Tensor) -> torch.Tensor:
    """Largest ``|x|`` of each batch entry ``(...)`` of features ``(..., n, d)``, detached, from one scan
    (`largest_abs`), which is also the finiteness check: every entry of ``x`` is finite exactly when every
    largest ``|x|`` is. Raises the `check_finite` error (which counts the bad entries) otherwise.
    """
    m = largest_abs(x)
    if m.numel() and not bool(torch.isfinite(m).all()):
        check_finite(name, x)
    return m


def check_same_samples(names: Sequence[str], tensors: Sequence[torch.Tensor]) -> None:
    """All inputs must share the batch shape and the number of samples n.

    ``tensors`` holds one ``(..., n)`` tensor per input (callers pass ``x[..., 0]``), compared in full.
    """
    ref_name, ref = names[0], tensors[0]
    for name, t in zip(names[1:], tensors[1:]):
        if t.shape != ref.shape:
            raise ValueError(
                f"{name} and {ref_name} must have the same batch shape and number of samples n: "
                f"{ref_name} has (..., n) = {tuple(ref.shape)}, {name} has {tuple(t.shape)}. "
                "Expand or reshape them so that sample i of every input describes the same example"
            )


def check_flag(name: str, value: object) -> bool:
    """A yes/no argument: ``True`` or ``False`` (or 1/0), never a string or ``None`` taken by its truthiness."""
    if isinstance(value, str) or value not in (True, False):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_alpha(alpha: object) -> float:
    """alpha: a real number > 0 (``float('inf')`` allowed)."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number > 0 (or float('inf')); got {alpha!r}")
    alpha = float(alpha)
    if math.isnan(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be > 0 (or float('inf')); got {alpha}")
    return alpha


def check_alphas(alpha: object) -> float | tuple[float, ...]:
    """One order (`check_alpha`) or a non-empty sequence of orders: a list, tuple or 1-D tensor (an α sweep).

    A 0-d tensor is neither (as for `check_alpha`): pass ``float(t)`` or ``t.reshape(1)``.

    A sequence comes back as a tuple of floats, each checked like a single ``alpha``.
    """
    if isinstance(alpha, torch.Tensor):
        if alpha.dim() != 1 or alpha.is_complex() or alpha.dtype == torch.bool:
            raise TypeError(
                f"alpha must be a real number > 0 or a 1-D sequence of them; got a tensor of shape "
                f"{tuple(alpha.shape)} and dtype {alpha.dtype}"
            )
        alpha = alpha.tolist()
    if isinstance(alpha, (list, tuple)):
        if not alpha:
            raise ValueError("alpha is an empty sequence; pass one order or at least one in a sequence")
        return tuple(check_alpha(a) for a in alpha)
    return check_alpha(alpha)


def check_base(base: object) -> float:
    """base of the logarithm: a finite real > 0 and != 1."""
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(
            f"base must be a real number > 0 and != 1 (2.0 for bits, math.e for nats); got {base!r}"
        )
    base = float(base)
    if not math.isfinite(base) or base <= 0 or base == 1:
        raise ValueError(f"base must be finite, > 0 and != 1 (2.0 for bits, math.e for nats); got {base}")
    return base


def is_integer_alpha(alpha: float) -> bool:
    return math.isfinite(alpha) and alpha == int(alpha)


def resolve_method(method: object, alpha: float, *, lanczos: bool = True) -> str:
    """Validate ``method`` against ``alpha`` and resolve ``"auto"`` to the cheapest exact method.

    ``auto``: alpha = 2 uses the Frobenius identity, integer alpha in {3, 4} one or two matrix products
    (cheaper than an eigendecomposition), everything else the spectrum. ``"lanczos"`` (a stochastic
    estimate, any alpha) is only used when asked for, and refused where ``lanczos`` is false (the
    derived quantities, whose estimate would have no error control).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method == "lanczos" and not lanczos:
        raise ValueError(
            "method='lanczos' is not available here: the conditional entropy, conditional mutual information "
            "and total correlation are differences of several entropies, whose independent stochastic errors "
            "would not cancel. Use an exact method ('auto', 'eig', 'frobenius' or 'power'), or estimate the "
            "terms with renyi_info.joint_entropy_estimate"
        )
    if method == "auto":
        if alpha == 2.0:
            return "frobenius"
        if alpha in (3.0, 4.0):
            return "power"
        return "eig"
    if method == "frobenius" and alpha != 2.0:
        raise ValueError(
            f"method='frobenius' computes alpha = 2 only; got alpha = {alpha}. Use method='eig' (any alpha) "
            "or method='auto'"
        )
    if method == "power" and not (is_integer_alpha(alpha) and alpha >= 2):
        raise ValueError(
            f"method='power' needs an integer alpha >= 2; got alpha = {alpha}. Use method='eig' for other alpha"
        )
    return method


def resolve_divergence_method(method: object, alpha: float) -> str:
    """``auto`` -> ``eig``; ``power`` needs an integer alpha >= 2."""
    if method not in DIVERGENCE_METHODS:
        raise ValueError(f"method must be one of {DIVERGENCE_METHODS} for the divergence; got {method!r}")
    if math.isinf(alpha):
        raise ValueError(
            "the divergence is defined for a finite alpha > 0 (the Petz-Rényi divergence has no alpha = inf "
            "limit of its own); got alpha = inf"
        )
    if method == "power" and not (alpha == int(alpha) and alpha >= 2):
        raise ValueError(
            f"method='power' computes the divergence for an integer alpha >= 2 only; got alpha = {alpha}. "
            "Use method='eig' (any alpha > 0)"
        )
    return "eig" if method == "auto" else str(method)


def check_matrix(name: str, a: object) -> torch.Tensor:
    """A finite symmetric matrix ``(..., n, n)`` (a Gram matrix; asymmetry up to 1e-4 of its scale)."""
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
        check_psd(name, a.detach())
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


def check_psd(name: str, a: torch.Tensor) -> None:
    r"""Refuse a matrix with an eigenvalue below $-\mathrm{tol}\,\lambda_{\max}$ (`psd_tolerance`).

    Cheap where possible: a Cholesky factorisation of $A + \mathrm{tol}\,\max_i a_{ii}\,I$
    (about a quarter of the cost of the spectrum) proves the bound when it succeeds (since
    $\lambda_{\max}\ge\max_i a_{ii}$); only when it fails is the spectrum computed to decide.
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


def needs_float64(method: str | None, alpha: float | tuple[float, ...] | None) -> bool:
    r"""The automatic precision rule: the spectrum of a Gram at ``alpha <= 1`` is computed in float64.

    At ``alpha <= 1`` the small eigenvalues carry the entropy ($\lambda^\alpha$ inflates them),
    and in float32 they drown in the rounding of the Gram (about ``n eps lambda_max``; a Gaussian Gram
    with a large bandwidth loses ``1 - K_ij`` itself): float32 results were 2-100% off. Larger orders
    and the other methods are dominated by the large eigenvalues and stay in float32.
    """
    if isinstance(alpha, tuple):  # an alpha sweep shares one spectrum: the smallest order decides
        alpha = min(alpha)
    return method == "eig" and alpha is not None and alpha <= 1.0


def resolve_dtype(
    dtypes: Sequence[torch.dtype],
    requested: torch.dtype | None,
    *,
    method: str | None = None,
    alpha: float | tuple[float, ...] | None = None,
) -> torch.dtype:
    """The dtype a computation runs in: at least float32, float64 when any input or the caller asks for it.

    With ``requested=None`` (the default of every ``compute_dtype``) and a resolved ``method`` and
    ``alpha``, float64 is also chosen where `needs_float64` says float32 is not accurate; the public
    functions still return the dtype of their inputs (`public`). ``compute_dtype=torch.float32``
    opts out.
    """
    if requested is not None:
        if not isinstance(requested, torch.dtype) or requested not in (torch.float32, torch.float64):
            raise ValueError(f"compute_dtype must be torch.float32, torch.float64 or None; got {requested!r}")
        return requested
    if torch.float64 in dtypes or needs_float64(method, alpha):
        return torch.float64
    return torch.float32


@contextlib.contextmanager
def autocast_disabled() -> Iterator[None]:
    """Disable every enabled autocast (cpu, cuda, ...) inside: the computations here need >= float32."""
    with contextlib.ExitStack() as stack:
        for device in ("cpu", "cuda", "xpu", "mps"):
            try:
                enabled = torch.is_autocast_enabled(device)
            except (RuntimeError, TypeError, ValueError):  # a device type this build does not know
                continue
            if enabled:
                stack.enter_context(torch.autocast(device_type=device, enabled=False))
        yield


def _cast_floats(out: Any, dtype: torch.dtype) -> Any:
    if isinstance(out, torch.Tensor):
        return out.to(dtype) if out.is_floating_point() and out.dtype != dtype else out
    if isinstance(out, tuple) and hasattr(out, "_fields"):  # a NamedTuple (Estimate)
        return type(out)(*(_cast_floats(t, dtype) for t in out))
    return out


def public(fn: F) -> F:
    """Decorator of the public functions: autocast off inside, results in the caller's dtype.

    Under ``torch.autocast`` the matrix products would run in float16/bfloat16 (an fp16 linear Gram of
    ``randn(256, 32)`` gave ``-inf``); inside, autocast is disabled and every computation is at least
    float32. The result is cast to the dtype the inputs and ``compute_dtype`` give
    (`resolve_dtype` without the automatic precision rule): float32 for float16/bfloat16/float32
    inputs, float64 when any input is float64 or ``compute_dtype=torch.float64``.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with autocast_disabled():
            out = fn(*args, **kwargs)
        values = (*args, *(v for k, v in kwargs.items() if k != "alpha"))  # a tensor of orders is no input
        dtypes = [a.dtype for a in values if isinstance(a, torch.Tensor)]
        return _cast_floats(out, resolve_dtype(dtypes, kwargs.get("compute_dtype")))

    return wrapper  # type: ignore[return-value]


def per_input(name: str, value: object, count: int) -> list:
    """Broadcast a per-input option (one value for all inputs, or a list/tuple with one per input)."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(
                f"{name} must be a single value or a sequence of {count} (one per input); got {value!r}"
            )
        return list(value)
    return [value] * count
