"""Issue 11, requirement 9: a hostile-user fuzz test over scales, dtypes, orders, kernels and methods.

Every call either returns a finite number equal to an independent float64 reference (``reference.py``
Grams of the unscaled data, spectra evaluated in the log domain) within a tolerance derived from the
conditioning of that spectrum, or raises a clear ``ValueError``/``TypeError`` of a known kind; never a
silently wrong number. The kernels' parameters are scaled with the data (bandwidth, polynomial
offset), so every case is scale-free and one reference serves all scales.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

import reference
import renyi_info as ri

pytestmark = pytest.mark.usefixtures("one_thread")

_ALPHAS = st.one_of(
    st.integers(2, 15).flatmap(lambda k: st.sampled_from([1.0 + 10.0**-k, 1.0 - 10.0**-k])),
    st.sampled_from([0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]),
    st.sampled_from([2.0, 2.0, 3.0, 7.0, 200.0, 1e6]),  # integer orders: power (and frobenius at 2)
    st.sampled_from([20.0, 50.0, 1e3, 1e6, math.inf]),
)
_KERNELS = st.sampled_from(["cosine", "linear", "polynomial", "polynomial-c", "gaussian", "gaussian-rule"])
_METHODS = st.sampled_from(["auto", "eig", "frobenius", "power", "lanczos"])

#: Refusals a caller can act on: a method that cannot compute this order, a stochastic estimate that
#: cannot resolve it, a kernel that leaves the dtype's range.
_KNOWN_REFUSALS = ("method=", "method='lanczos'", "overflows", "underflows")


def _log_renyi(p: np.ndarray, alpha: float) -> float:
    lp = np.log(p)
    if math.isinf(alpha):
        return -float(lp.max())
    if alpha == 1.0:
        return -float(np.sum(p * lp))
    if abs(alpha - 1.0) < 1e-3:  # the expm1 form: exact near 1 in float64
        return math.log1p(float(np.sum(p * np.expm1((alpha - 1.0) * lp)))) / (1.0 - alpha)
    top = float(lp.max())
    return (alpha * top + math.log(float(np.sum(np.exp(alpha * (lp - top)))))) / (1.0 - alpha)


def _sensitivity(p: np.ndarray, alpha: float, delta: float) -> float:
    """First-order bound of |S(p + e) - S(p)| for |e_i| <= delta (eigenvalues below delta count as delta)."""
    p = p[p > 0]
    q = np.maximum(p, delta)
    lq = np.log(q)
    if math.isinf(alpha):
        grad = np.array([1.0 / q.max()])
    elif abs(alpha - 1.0) < 1e-3:
        grad = np.abs(lq) + 1.0 + abs(alpha - 1.0) * lq**2
    else:
        log_norm = float(np.log(np.sum(np.exp(alpha * (np.log(p) - np.log(p).max()))))) + alpha * float(
            np.log(p).max()
        )
        grad = np.exp(math.log(alpha) + (alpha - 1.0) * lq - log_norm) / abs(1.0 - alpha)
    return float(np.sum(grad)) * delta


def _case(kernel: str, scale: float) -> tuple[str, dict]:
    if kernel == "polynomial":
        return "polynomial", {"degree": 2}
    if kernel == "polynomial-c":
        return "polynomial", {"degree": 3, "coef": scale * scale}
    if kernel == "gaussian":
        return "gaussian", {"sigma": 1.5 * scale}
    if kernel == "gaussian-rule":
        return "gaussian", {"sigma": "median"}
    return kernel, {}


def _reference_spectrum(k: np.ndarray) -> np.ndarray:
    """All ``n`` eigenvalues of ``k / tr k`` (float64, round-off negatives set to 0), summing to 1."""
    k = 0.5 * (k + k.T)
    lam = np.clip(scipy.linalg.eigvalsh(k / np.trace(k)), 0.0, None)
    return lam / lam.sum()


def _reference_probabilities(x: np.ndarray, kernel: str) -> np.ndarray:
    name, params = _case(kernel, 1.0)
    if params.get("sigma") == "median":
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))[np.triu_indices(len(x), 1)]
        params = {"sigma": float(np.sort(d)[(len(d) - 1) // 2])}  # the lower median, as bandwidth()
    return _reference_spectrum(reference.kernel(x, name, **params))


def _reference_and_tolerance(p: np.ndarray, alpha: float, delta: float) -> tuple[float, float]:
    """Entropy of the eigenvalues above ``delta`` and a tolerance covering a perturbation of every
    eigenvalue by ``delta``: those at or below it are indistinguishable from 0 at this precision."""
    big = p[p > delta]
    return _log_renyi(big / big.sum(), alpha), 4 * _sensitivity(p, alpha, delta) + 1e-12 * len(p)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(2, 9),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    double=st.booleans(),
    log_scale=st.floats(-1.0, 1.0),
    alpha=_ALPHAS,
    kernel=_KERNELS,
    method=_METHODS,
)
def test_entropy_is_right_or_refuses(
    n: int, d: int, seed: int, double: bool, log_scale: float, alpha: float, kernel: str, method: str
) -> None:
    dtype = torch.float64 if double else torch.float32
    # polynomial-c's offset coef = scale^2 must itself be a normal number of the dtype
    top = (300 if double else 30) // (2 if kernel == "polynomial-c" else 1)
    scale = 10.0 ** (log_scale * top)
    base = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = (base * scale).to(dtype)
    unscaled = (x.double() / scale).numpy()  # the data the call sees, rounded to its dtype
    name, params = _case(kernel, scale)
    opts = ri.LanczosOptions(generator=torch.Generator().manual_seed(0)) if method == "lanczos" else None
    try:
        got = ri.entropy(x, alpha=alpha, kernel=name, method=method, base=math.e, lanczos=opts, **params)
    except (ValueError, TypeError) as err:
        event(f"refused: {str(err)[:40]}")
        assert any(key in str(err) for key in _KNOWN_REFUSALS), str(err)
        assert method != "eig" or "flows" in str(err)  # the exact spectral route refuses nothing else
        return
    event(f"value: {method}")
    assert got.dtype == dtype and bool(torch.isfinite(got))
    p = _reference_probabilities(unscaled, kernel)
    # the Gram of data rounded to the dtype moves every eigenvalue by about n * eps * lambda_max
    want, tol = _reference_and_tolerance(p, alpha, 8 * n * d * torch.finfo(dtype).eps * float(p.max()))
    if method == "lanczos" and math.isfinite(alpha):  # a stochastic estimate: its own error bars count too
        opts = ri.LanczosOptions(generator=torch.Generator().manual_seed(0))
        est = ri.entropy_estimate(x, alpha=alpha, kernel=name, base=math.e, lanczos=opts, **params)
        assert float(est.value) == float(got)
        tol += 4 * float(est.stderr) + float(est.quadrature)
    assert 0.0 <= float(got) <= math.log(n) + 1e-12
    assert abs(float(got) - want) <= tol, (float(got), want, tol)


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(2, 8),
    seed=st.integers(0, 2**16),
    double=st.booleans(),
    log_scale=st.floats(-1.0, 1.0),
    alpha=_ALPHAS,
)
def test_divergence_and_mutual_information_are_right(
    n: int, seed: int, double: bool, log_scale: float, alpha: float
) -> None:
    dtype = torch.float64 if double else torch.float32
    scale = 10.0 ** (log_scale * (300 if double else 30))
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, 3, generator=g, dtype=torch.float64) * scale).to(dtype)
    y = (torch.randn(n, 2, generator=g, dtype=torch.float64) * scale).to(dtype)
    # D(A || A) = 0 at every order and dtype
    if math.isfinite(alpha):
        assert float(ri.divergence(x, x, alpha=alpha, kernel="gaussian", sigma=2.0 * scale)) == 0.0
    mi = ri.mutual_information(x, y, alpha=alpha, kernel="cosine", base=math.e)
    assert mi.dtype == dtype and bool(torch.isfinite(mi))
    kx = reference.kernel((x.double() / scale).numpy(), "cosine")
    ky = reference.kernel((y.double() / scale).numpy(), "cosine")
    parts = []
    for k in (kx, ky, kx * ky):
        p = _reference_spectrum(k)
        parts.append(_reference_and_tolerance(p, alpha, 8 * n * 3 * torch.finfo(dtype).eps * float(p.max())))
    want = parts[0][0] + parts[1][0] - parts[2][0]
    # MI is not clamped (negative for alpha > 1 is legitimate): only the three terms' tolerances add up
    assert abs(float(mi) - want) <= sum(t for _, t in parts), (float(mi), want)
