"""The entropy of one positive semi-definite Gram matrix by each exact method.

``"eig"`` (the spectrum), ``"frobenius"`` (alpha = 2) and ``"power"`` (integer alpha >= 2): one dispatch,
`unit_trace_entropy`, shared by the ``gram`` and ``dual`` routes (`renyi_info.algorithms.routes`)
and by `renyi_info.gram_level.gram_entropy`. Inputs are trusted (validated at the public door).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy
import torch

from ..kernels import SQRT_TINY, check_trace


def _scaled(m: torch.Tensor, log_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``m exp(log_c)`` as ``m' exp(log_c')`` with ``m'`` divided by its largest entry, tiny entries flushed."""
    s = m.detach().abs().amax((-2, -1), keepdim=True).clamp_min(torch.finfo(m.dtype).tiny)
    m = m / s
    m = torch.where(m.detach().abs() < SQRT_TINY[m.dtype], torch.zeros_like(m), m)
    return m, log_c + torch.log(s[..., 0, 0])


def scaled_matrix_power(a: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``A^q`` (``q >= 1``) of square ``a`` ``(..., n, n)`` as ``(M, c)`` with ``A^q = M exp(c)``, ``max|M| = 1``.

    Binary powering (about ``2 log2(q)`` products) in a scaled form: every intermediate power is divided
    by its largest entry, so nothing overflows or underflows however large ``q`` is (the scales are
    constants for autograd, which is exact: ``(A/s)^q s^q = A^q``). Entries below ``sqrt(tiny)`` of the
    largest are flushed to zero: products of two of them would be subnormal (a 10-100x slow path of CPU
    matrix products), and they are 1e-19 (float32) or 1e-154 (float64) of the largest entry, far below
    its rounding.
    """
    base, base_c = _scaled(a, torch.zeros(a.shape[:-2], dtype=a.dtype, device=a.device))
    out: tuple[torch.Tensor, torch.Tensor] | None = None
    while True:
        if q & 1:
            out = (base, base_c) if out is None else _scaled(out[0] @ base, out[1] + base_c)
        q >>= 1
        if not q:
            assert out is not None
            return out
        base, base_c = _scaled(base @ base, 2.0 * base_c)


def log_trace_power(a: torch.Tensor, p: int) -> torch.Tensor:
    """``log tr(A^p)`` of symmetric PSD ``a`` for an integer ``p >= 2`` (`scaled_matrix_power`).

    Uses ``tr(A^p) = sum(A^q * A^(p-q))`` (elementwise, valid for symmetric A) with ``q = p // 2``.
    """
    half, half_c = scaled_matrix_power(a, p // 2)
    if p % 2 == 0:
        other, other_c = half, half_c
    else:
        a_s, a_c = _scaled(a, torch.zeros_like(half_c))
        other, other_c = half @ a_s, half_c + a_c
    return torch.log((half * other).sum((-2, -1))) + half_c + other_c


def in_range(s: torch.Tensor, n: int) -> torch.Tensor:
    """Clamp an entropy of a trace-normalised PSD ``n x n`` matrix to ``[0, log n]``.

    Every method computes a value that lies in this range up to rounding (the spectral form below is
    exactly non-negative); this removes only the last-bit overshoot, never a real value: inputs that
    are not PSD are refused at the door (features give PSD Grams by construction, the matrix API checks).
    """
    return s.clamp(0.0, math.log(n)) if n > 1 else s.clamp(0.0, 0.0)


def log_power_sum(p: torch.Tensor, log_p: torch.Tensor, keep: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""$\log\sum_i p_i^\alpha$ of a distribution ``p`` ``(..., n)`` (kept entries, ``log_p`` their logs).

    Two exact forms, each used where it is accurate:

    * near $\alpha = 1$: $\sum_i p_i^\alpha = 1 + u$ with
      $u = \sum_i p_i\,\mathrm{expm1}((\alpha-1)\log p_i)$, whose terms all have the sign of $1-\alpha$,
      so ``u`` is accurate to a few ulps *relative to itself* and $\mathrm{log1p}(u)/(1-\alpha)$ has no
      cancellation however close $\alpha$ is to 1 (the naive $\log\sum p^\alpha$ loses everything below
      $|\alpha-1| \approx \epsilon$);
    * far from 1 ($1 + u \le 1/2$): $\log\sum_i e^{\alpha\log p_i}$ by ``logsumexp``, shifted by the
      largest term, so that any $\alpha$ (``1e6``...) neither underflows nor overflows.
    """
    t = (alpha - 1.0) * log_p
    u = torch.where(keep, p * torch.expm1(t), torch.zeros_like(p)).sum(-1)
    near = u > -0.5
    lse = torch.logsumexp(torch.where(keep, alpha * log_p, torch.full_like(p, -math.inf)), dim=-1)
    return torch.where(near, torch.log1p(torch.where(near, u, torch.zeros_like(u))), lse)


def spectral_entropy(lam: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rényi entropy in nats of eigenvalues ``lam`` ``(..., n)`` (ascending) of a PSD matrix.

    Round-off negatives are clamped to zero. For alpha <= 1, eigenvalues at or below
    ``n * eps * lam_max`` are dropped, so that the value and its gradient stay finite (and exact) on
    rank-deficient matrices, where such eigenvalues are round-off. For alpha > 1 nothing positive is
    dropped: there round-off eigenvalues contribute ``O(eps^alpha)``. The kept eigenvalues are divided by
    their sum (``p``, exactly a distribution: the round-off between the trace and the sum of the computed
    eigenvalues would otherwise be divided by ``1 - alpha``). ``alpha = 1`` is von Neumann's
    ``-sum p log p``; ``alpha = inf`` is ``-log p_max``; other orders use `log_power_sum` (continuous
    through alpha = 1, exact for large alpha). The result lies in ``[0, log n]``. Its gradient treats the
    normaliser as the trace (the sum of all eigenvalues), so that growing a zero eigenvalue of a
    rank-deficient matrix has its true effect (the other eigenvalues' share shrinks).
    """
    raw = lam
    lam = lam.clamp_min(0.0)
    n = lam.shape[-1]
    if alpha > 1.0:
        keep = lam > 0
    else:
        keep = lam > n * torch.finfo(lam.dtype).eps * lam[..., -1:]
    lam = torch.where(keep, lam, torch.zeros_like(lam))
    # the value of the kept sum, the gradient of the trace (the sum of *all* eigenvalues): the normaliser is
    # tr(a), whose derivative is the identity, also along the null space that the kept sum does not see
    every = raw.sum(-1, keepdim=True)
    total = lam.sum(-1, keepdim=True).detach() + (every - every.detach())
    p = lam / torch.where(total > 0, total, torch.ones_like(total))
    if math.isinf(alpha):
        return in_range(-torch.log(p[..., -1]), n)
    log_p = torch.log(torch.where(keep, p, torch.ones_like(p)))
    if alpha == 1.0:
        return in_range(-(torch.where(keep, p, torch.zeros_like(p)) * log_p).sum(-1), n)
    return in_range(log_power_sum(p, log_p, keep, alpha) / (1.0 - alpha), n)


def spectral_entropies(lam: torch.Tensor, alpha: float | tuple[float, ...]) -> torch.Tensor:
    """`spectral_entropy` of one order ``(...)``, or of each order of a tuple ``(..., len(alpha))``."""
    if isinstance(alpha, tuple):
        return torch.stack([spectral_entropy(lam, a) for a in alpha], -1)
    return spectral_entropy(lam, alpha)


def gram_entropy(
    k: torch.Tensor, alpha: float | tuple[float, ...], method: str, name: str = "the input"
) -> torch.Tensor:
    """Rényi alpha-entropy in nats of ``k / tr k`` for a symmetric PSD ``k`` ``(..., n, n)``.

    ``method`` must already be resolved to an exact method (``"eig"``, ``"frobenius"`` or ``"power"``);
    a tuple of orders (``"eig"`` only) gives ``(..., len(alpha))`` from one spectrum.
    """
    trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)
    check_trace(name, trace)
    return unit_trace_entropy(k / trace[..., None, None], alpha, method)


def unit_trace_entropy(
    a: torch.Tensor, alpha: float | tuple[float, ...], method: str, n: int | None = None
) -> torch.Tensor:
    """Entropy in nats of a unit-trace symmetric PSD ``a`` ``(..., m, m)`` by an exact ``method``.

    A tuple of orders (method ``"eig"``): ``(..., len(alpha))``, every order from the same eigenvalues.

    ``n``: the size of the primal matrix when ``a`` is its ``m x m`` dual (same non-zero spectrum,
    ``m < n``): ``"eig"`` pads the ``n - m`` zero eigenvalues so that the eigenvalue floor is the primal's.
    """
    size = a.shape[-1] if n is None else n
    assert method == "eig" or not isinstance(alpha, tuple), "an alpha sweep needs the spectrum"
    if method == "frobenius":
        return in_range(-torch.log((a * a).sum((-2, -1))), size)
    if method == "power":
        order = float(alpha)  # type: ignore[arg-type]
        return in_range(log_trace_power(a, int(order)) / (1.0 - order), size)
    lam = eigvalsh(a)
    pad = 0 if n is None else n - lam.shape[-1]
    if pad > 0:  # the n - m zero eigenvalues of the primal Gram: same floor and length as the primal
        lam = torch.cat([lam.new_zeros(*lam.shape[:-1], pad), lam], -1)
    return spectral_entropies(lam, alpha)


#: Batches of matrices up to this size are spread over threads on the CPU, one matrix per thread at a time
#: (`eigvalsh`); larger ones gain from LAPACK's own threads.
SPREAD_MAX_SIZE = 1024
#: ... when the batch's work ``count * n^3`` is at least this: below it, handing the batch to the threads
#: (about 0.1 ms) costs more than it saves (measured on 2 cores: 4 matrices 64 x 64, 0.4 ms by one call).
SPREAD_MIN_WORK = 1 << 22

_SPREAD_LOCK = threading.Lock()
#: (workers, pool, NumPy's BLAS controller) of the spread route, made on first use
_SPREAD: tuple[int, ThreadPoolExecutor, Any] | None = None


def _forget_spread_in_child() -> None:
    """A forked child (a DataLoader worker...) inherits the pool without its threads, and perhaps the lock
    held: both are made anew there."""
    global _SPREAD, _SPREAD_LOCK
    _SPREAD, _SPREAD_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_spread_in_child)


def _spreader(workers: int) -> tuple[int, ThreadPoolExecutor, Any] | None:
    """The thread pool and the BLAS controller of `eigvalsh`'s spread route, or ``None`` if it is unavailable.

    The workers run NumPy's ``eigvalsh`` (LAPACK ``syevd`` with the GIL released), never PyTorch: a PyTorch
    call on a new thread starts an OpenMP team of its own, whose spinning workers then slow the caller's
    later small calls (measured: 9x on 2 cores). NumPy's BLAS must be held to one thread per worker while
    they run, which threadpoolctl does for every BLAS NumPy may be built with (without the limit, 2 workers
    on 2 cores that each started 2 BLAS threads were 20x slower than one batched call): where it cannot
    see NumPy's BLAS, the route is not taken.
    """
    global _SPREAD
    if _SPREAD is not None and _SPREAD[0] == workers:
        return _SPREAD
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    if not blas.lib_controllers:  # pragma: no cover - a NumPy whose BLAS cannot be limited
        return None
    if _SPREAD is not None:
        _SPREAD[1].shutdown(wait=True)
    _SPREAD = (workers, ThreadPoolExecutor(workers, thread_name_prefix="renyi_info-eigvalsh"), blas)
    return _SPREAD


def eigvalsh(a: torch.Tensor) -> torch.Tensor:
    r"""Eigenvalues (ascending) of a batch of symmetric matrices ``(..., n, n)``, as `torch.linalg.eigvalsh`.

    The one place every exact spectrum is taken. LAPACK's reduction of a small matrix to tridiagonal form
    gains nothing from a second thread (a batch of 256 x 256 matrices: the same time with 1 and 2 threads),
    and PyTorch decomposes a batch one matrix after the other. On the CPU, a batch of at least two matrices
    of size ``n <= SPREAD_MAX_SIZE`` (and ``SPREAD_MIN_WORK``) that needs no gradient is therefore spread over
    ``torch.get_num_threads()`` threads, each decomposing whole matrices with one BLAS thread (`_spreader`):
    about 2x faster on 2 cores for ``n <= 512``, 1.3x at ``n = 1024``. The values are LAPACK's ``syevd``
    either way (equal to rounding: both are backward stable). Everything else (a gradient, one matrix, a
    GPU, one thread) is one `torch.linalg.eigvalsh` call.
    """
    n = a.shape[-1]
    count = math.prod(a.shape[:-2])
    workers = min(torch.get_num_threads(), count)
    if (
        a.device.type != "cpu"
        or workers < 2
        or n > SPREAD_MAX_SIZE
        or count * n**3 < SPREAD_MIN_WORK
        or (a.requires_grad and torch.is_grad_enabled())
        or a.dtype not in (torch.float32, torch.float64)
    ):
        return torch.linalg.eigvalsh(a)
    with _SPREAD_LOCK:  # one spread at a time: the BLAS limit is process-wide
        spread = _spreader(torch.get_num_threads())  # one pool per thread count, whatever the batch
        if spread is None:  # pragma: no cover
            return torch.linalg.eigvalsh(a)
        _, pool, blas = spread
        flat = a.detach().reshape(count, n, n).numpy()
        with blas.limit(limits=1):
            parts = list(pool.map(numpy.linalg.eigvalsh, numpy.array_split(flat, workers)))
    return torch.from_numpy(numpy.concatenate(parts)).reshape(a.shape[:-1])


def hadamard(mats: list[torch.Tensor]) -> torch.Tensor:
    """Elementwise product of a non-empty list of equally shaped matrices."""
    out = mats[0]
    for m in mats[1:]:
        out = out * m
    return out
