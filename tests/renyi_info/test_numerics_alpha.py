"""Issue 11, requirements 1-2: every quantity is continuous through alpha = 1 and right for large alpha.

References are float64 NumPy spectra (``tests/reference.py``) evaluated in the log domain, or mpmath at
60 digits; tolerances are derived from |alpha - 1| (the first-order term of the expansion around the
von Neumann value) and from the rounding of the dtype, as stated at each assertion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference
import renyi_info as ri
from infoclip import compression_loss, distillation_loss
from renyi_info import matrix

pytestmark = pytest.mark.usefixtures("one_thread")

NEAR_ONE = [1.0 + s * 10.0**-k for k in range(2, 16) for s in (1.0, -1.0)]
DTYPES = (torch.float32, torch.float64)
LARGE = (50.0, 100.0, 200.0, 1e4, 1e6)


def _features(seed: int, n: int = 12, d: int = 5) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _probabilities(k: torch.Tensor) -> np.ndarray:
    p = reference.spectrum(k.numpy())
    return p[p > 0] / p[p > 0].sum()


def _log_domain_renyi(p: np.ndarray, alpha: float) -> float:
    """Classical Rényi entropy in nats, shifted by the largest probability (any alpha, no underflow)."""
    if math.isinf(alpha):
        return -math.log(p.max())
    lp = np.log(p)
    top = lp.max()
    return (alpha * top + math.log(float(np.sum(np.exp(alpha * (lp - top)))))) / (1.0 - alpha)


def _rounding(n: int, dtype: torch.dtype) -> float:
    """Rounding of an entropy from a spectrum computed in ``dtype``: eigenvalues move by about n eps
    each (normalised Gram), and -p log p moves by (1 + |log p|) per unit, |log p| <= |log(n eps)|."""
    eps = torch.finfo(dtype).eps
    return n * n * eps * (1.0 + abs(math.log(n * eps)))


def _slope(p: np.ndarray) -> float:
    """Bound of |dS_alpha / d alpha| near 1: the derivative is -Var_p(log p) / 2 <= sum p log^2 p / 2;
    twice that also covers the second-order term for |alpha - 1| <= 1e-2."""
    return float(np.sum(p * np.log(p) ** 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
def test_entropy_and_mi_are_continuous_through_alpha_one(dtype: torch.dtype, kernel: str) -> None:
    x, y = _features(0), _features(1)
    params = {"sigma": 2.0} if kernel == "gaussian" else {}
    kx, ky = ri.gram(x, kernel, **params), ri.gram(y, kernel, **params)
    px, py, pxy = _probabilities(kx), _probabilities(ky), _probabilities(kx * ky)
    s1 = reference.renyi_of_probabilities(px, 1.0)
    i1 = s1 + reference.renyi_of_probabilities(py, 1.0) - reference.renyi_of_probabilities(pxy, 1.0)
    n = x.shape[0]
    for alpha in NEAR_ONE:
        # compute_dtype=dtype: float32 is tested on its own rounding (the default would switch to float64)
        s = ri.entropy(x.to(dtype), alpha=alpha, kernel=kernel, base=math.e, compute_dtype=dtype, **params)
        mi = ri.mutual_information(
            x.to(dtype), y.to(dtype), alpha=alpha, kernel=kernel, base=math.e, compute_dtype=dtype, **params
        )
        lin = abs(alpha - 1.0)
        assert abs(float(s) - s1) <= lin * _slope(px) + _rounding(n, dtype), alpha
        mi_tol = lin * (_slope(px) + _slope(py) + _slope(pxy)) + 3 * _rounding(n, dtype)
        assert abs(float(mi) - i1) <= mi_tol, alpha


@pytest.mark.parametrize("dtype", DTYPES)
def test_matrix_derived_quantities_are_continuous_through_alpha_one(dtype: torch.dtype) -> None:
    kx, ky, kz = (ri.gram(_features(s), "gaussian", sigma=2.0).to(dtype) for s in (0, 1, 2))
    funcs = {
        "conditional_entropy": lambda a: matrix.conditional_entropy(
            kx, ky, alpha=a, base=math.e, compute_dtype=dtype
        ),
        "cmi": lambda a: matrix.conditional_mutual_information(
            kx, ky, kz, alpha=a, base=math.e, compute_dtype=dtype
        ),
        "tc": lambda a: matrix.total_correlation(kx, ky, kz, alpha=a, base=math.e, compute_dtype=dtype),
    }
    # each is a signed sum of at most four entropies of n = 12 Grams, each within the bound of the test
    # above; sum p log^2 p <= n max_p(p log^2 p) = 12 * 4 / e^2 bounds every slope
    slope = 4 * 12 * 4 / math.e**2
    for name, f in funcs.items():
        at_one = float(f(1.0))
        for alpha in NEAR_ONE:
            assert abs(float(f(alpha)) - at_one) <= abs(alpha - 1) * slope + 4 * _rounding(12, dtype), (
                name,
                alpha,
            )


def _petz_reference(ka: torch.Tensor, kb: torch.Tensor, alpha: float) -> tuple[float, float]:
    """D_alpha in nats (Nussbaum-Szkola form, log domain, float64) and its slope bound near 1."""
    a = ka.numpy() / np.trace(ka.numpy())
    b = kb.numpy() / np.trace(kb.numpy())
    la, u = np.linalg.eigh(a)
    lb, v = np.linalg.eigh(b)
    w2 = (u.T @ v) ** 2
    pmat = la[:, None] * w2
    delta = np.log(la)[:, None] - np.log(lb)[None, :]
    slope = float(np.sum(pmat * delta**2))  # Var_P(log P/Q) bounds 2 |dD/d alpha| at 1
    if alpha == 1.0:
        return float(np.sum(pmat * delta)), slope
    terms = np.log(pmat) + (alpha - 1) * delta
    top = terms.max()
    return (top + math.log(float(np.sum(np.exp(terms - top))))) / (alpha - 1), slope


@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_is_continuous_through_alpha_one(dtype: torch.dtype) -> None:
    ka, kb = ri.gram(_features(0), "gaussian", sigma=3.0), ri.gram(_features(1), "gaussian", sigma=3.0)
    d1, slope = _petz_reference(ka, kb, 1.0)
    # rounding: eigenvalues of B are relative-accurate to eps lambda_max / lambda_min, lambda_min ~ 1e-4 here
    cond = float(torch.linalg.eigvalsh(kb)[-1] / torch.linalg.eigvalsh(kb)[0])
    rounding = 12 * cond * torch.finfo(dtype).eps * 10
    for alpha in NEAR_ONE:
        got = float(
            matrix.divergence(ka.to(dtype), kb.to(dtype), alpha=alpha, base=math.e, compute_dtype=dtype)
        )
        assert abs(got - d1) <= abs(alpha - 1) * slope + rounding, alpha
        same = float(matrix.divergence(ka.to(dtype), ka.to(dtype), alpha=alpha, compute_dtype=dtype))
        assert same == 0.0 or abs(same) <= rounding, alpha


@pytest.mark.parametrize("dtype", DTYPES)
def test_infoclip_losses_are_continuous_through_alpha_one(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    v, t, r = (torch.randn(*s, generator=g, dtype=dtype) for s in ((4, 9, 8), (5, 8), (4, 9, 5)))
    r_s = torch.randn(4, 9, 5, generator=g, dtype=dtype)
    c1, d1 = float(compression_loss(v, t, r, alpha=1.0)), float(distillation_loss(r, r_s, alpha=1.0))
    # at most three entropies of n = 4 Grams (bits): slope <= 3 * 4 * (4 / e^2) / ln 2 per unit of alpha
    slope = 3 * 4 * (4 / math.e**2) / math.log(2)
    for alpha in NEAR_ONE:
        tol = abs(alpha - 1) * slope + 3 * _rounding(4, dtype) / math.log(2)
        assert abs(float(compression_loss(v, t, r, alpha=alpha)) - c1) <= tol, alpha
        assert abs(float(distillation_loss(r, r_s, alpha=alpha)) - d1) <= tol, alpha


@pytest.mark.parametrize("dtype", DTYPES)
def test_lanczos_is_continuous_through_alpha_one(dtype: torch.dtype) -> None:
    x = _features(4, n=10, d=4).to(dtype)
    p = _probabilities(ri.gram(x.double()))
    s1 = reference.renyi_of_probabilities(p, 1.0)
    for alpha in NEAR_ONE:
        opts = ri.LanczosOptions(probes=4, steps=12, generator=torch.Generator().manual_seed(0))
        est = ri.entropy_estimate(x, alpha=alpha, base=math.e, lanczos=opts)
        # steps >= n: the Krylov spaces are complete, so the quadrature is exact up to the reported bound
        tol = (
            abs(alpha - 1) * _slope(p) + 4 * float(est.stderr) + float(est.quadrature) + _rounding(10, dtype)
        )
        assert abs(float(est.value) - s1) <= tol, alpha


# ---- large alpha -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [*LARGE, math.inf])
def test_entropy_is_right_for_large_alpha(dtype: torch.dtype, alpha: float) -> None:
    x = _features(5)
    p = _probabilities(ri.gram(x, "gaussian", sigma=2.0))
    want = _log_domain_renyi(p, alpha)
    # S tends to -log p_max: the relative error of p_max (about n eps in the dtype) is the error in nats
    tol = 10 * 12 * torch.finfo(dtype).eps
    methods = ["eig", "power"] if math.isfinite(alpha) and alpha == int(alpha) else ["eig"]
    for method in methods:
        got = ri.entropy(x.to(dtype), alpha=alpha, kernel="gaussian", sigma=2.0, base=math.e, method=method)
        assert math.isfinite(float(got))
        assert abs(float(got) - want) <= tol, method


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0, *LARGE])
def test_divergence_of_a_matrix_with_itself_is_zero(alpha: float) -> None:
    for dtype in DTYPES:
        x = _features(6).to(dtype)
        assert float(ri.divergence(x, x, alpha=alpha)) == 0.0
        assert float(ri.divergence(x, x, alpha=alpha, kernel="gaussian", sigma=1.0)) == 0.0


@pytest.mark.parametrize("alpha", [3.0, 50.0, 1e4])
def test_divergence_power_route_is_right_or_refuses(alpha: float) -> None:
    ka, kb = ri.gram(_features(0), "gaussian", sigma=3.0), ri.gram(_features(1), "gaussian", sigma=3.0)
    want, _ = _petz_reference(ka, kb, alpha)
    try:
        got = float(matrix.divergence(ka, kb, alpha=alpha, method="power", base=math.e))
    except ValueError as err:
        assert "method='eig'" in str(err) and str(alpha) in str(err)
        return
    # the route refuses unless its own rounding bound is below 1e-6 nats
    assert abs(got - want) <= 1e-6 + 1e-9 * abs(want)


def test_divergence_of_a_full_rank_gaussian_pair_matches_mpmath_at_alpha_200() -> None:
    mpmath = pytest.importorskip("mpmath")
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(8, 4, generator=g, dtype=torch.float64) for _ in range(2))
    ka, kb = ri.gram(x, "gaussian", sigma=1.0), ri.gram(y, "gaussian", sigma=1.0)
    mpmath.mp.dps = 60
    ea, ua = mpmath.eigsy(mpmath.matrix(ka.tolist()))
    eb, ub = mpmath.eigsy(mpmath.matrix(kb.tolist()))
    alpha = 200
    pa = ua * mpmath.diag([e**alpha for e in ea]) * ua.T
    pb = ub * mpmath.diag([e ** (1 - alpha) for e in eb]) * ub.T
    want = float(mpmath.log(sum((pa * pb)[i, i] for i in range(8))) / (alpha - 1))
    got = float(ri.divergence(x, y, alpha=float(alpha), kernel="gaussian", sigma=1.0, base=math.e))
    # float64 eigenvalues of B are relative-accurate to eps / lambda_min(B) (~1e-12 here), which the
    # power 1 - alpha turns into (alpha - 1) times that in q, i.e. the same relative error in D
    assert abs(got - want) <= 1e-8 * abs(want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [10.0, 20.0, 50.0, 100.0, 1e6])
def test_lanczos_error_bars_cover_the_truth_or_the_call_refuses(dtype: torch.dtype, alpha: float) -> None:
    cases = [(_features(7, n=8, d=4), "cosine", {}), (_features(8, n=120, d=3), "gaussian", {"sigma": 1.5})]
    for x, kernel, params in cases:
        exact = float(ri.entropy(x, alpha=alpha, kernel=kernel, **params))
        opts = ri.LanczosOptions(steps=30, generator=torch.Generator().manual_seed(1))
        try:
            est = ri.entropy_estimate(x.to(dtype), alpha=alpha, kernel=kernel, lanczos=opts, **params)
        except ValueError as err:
            assert "alpha" in str(err) and "method='eig'" in str(err)
            continue
        assert math.isfinite(float(est.value))
        # 4 standard errors (probe noise) plus the quadrature bound, which includes the rounding of T
        assert abs(float(est.value) - exact) <= 4 * float(est.stderr) + float(est.quadrature), kernel


def test_lanczos_refuses_a_quadrature_it_cannot_bound() -> None:
    x = _features(9, n=200, d=3)
    with pytest.raises(ValueError, match=r"2 \* steps > alpha"):
        ri.entropy(
            x, alpha=50.0, kernel="gaussian", sigma=1.0, method="lanczos", lanczos=ri.LanczosOptions(steps=20)
        )


@pytest.mark.parametrize("alpha", [1 + 1e-9, 1 - 1e-9, 50.0])
def test_gradients_stay_exact_near_one_and_for_large_alpha(alpha: float) -> None:
    """Analytic gradients (float64) against finite differences, where cancellation or overflow hit."""
    g = torch.Generator().manual_seed(10)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: ri.entropy(t, alpha=alpha, kernel="gaussian", sigma=1.5), (x,))
    assert torch.autograd.gradcheck(
        lambda t: ri.divergence(t, y, alpha=alpha, kernel="gaussian", sigma=1.5), (x,), atol=1e-5
    )


@pytest.mark.parametrize("alpha", [10.0, 50.0, 1e3])
def test_divergence_gradient_is_exact_or_refuses_for_large_alpha(alpha: float) -> None:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64)
    # a pair whose overlaps keep the products in range: analytic = finite differences
    assert torch.autograd.gradcheck(
        lambda t: ri.divergence(t, y, alpha=alpha, kernel="gaussian", sigma=1.5), (x,), atol=1e-5
    )
    # D(A || A): the gradient would need lambda_min^(1 - alpha) ~ 1e(16 (alpha - 1)), beyond float64
    xx = torch.randn(8, 3, generator=g, dtype=torch.float64, requires_grad=True)
    value = ri.divergence(xx, xx.detach(), alpha=alpha, kernel="gaussian", sigma=1.5)
    try:
        value.backward()
    except ValueError as err:
        assert "out of" in str(err) and f"alpha = {alpha}" in str(err)
    else:
        assert float(xx.grad.abs().max()) <= 1e-10  # a minimum: zero gradient
