"""Properties of the matrix-based Rényi quantities (brief §2), checked with hypothesis.

The facts that hold are asserted on generated inputs; the one that does not (non-negativity of the
mutual information for alpha > 1) is checked on the brief's counterexample, which must come back
negative, not clamped.
"""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import renyi_info as ri
from reference import ALPHAS
from renyi_info import matrix

E = math.e
F64 = torch.float64

# Entries in [-3, 3] with everything below 1e-3 in magnitude set to exactly 0 (zero rows and
# duplicates occur, denormal-scale values that only probe round-off do not).
ENTRY = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False).map(lambda v: 0.0 if abs(v) < 1e-3 else v)
ALPHA = st.sampled_from(ALPHAS)


def _tol(alpha: float) -> float:
    # For alpha < 1 an eigenvalue at the round-off floor (~1e-15) still contributes ~lam^alpha.
    return 1e-6 if alpha < 1 else 1e-9


@st.composite
def kernels(draw: st.DrawFn, *, unit_diagonal: bool = False) -> dict:
    """Keyword arguments selecting a kernel and its parameters."""
    names = ["cosine", "gaussian"] if unit_diagonal else ["cosine", "linear", "polynomial", "gaussian"]
    name = draw(st.sampled_from(names))
    if name == "gaussian":
        return {"kernel": name, "sigma": draw(st.floats(0.3, 3.0))}
    if name == "polynomial":
        return {"kernel": name, "degree": draw(st.integers(1, 3)), "coef": draw(st.floats(0.0, 2.0))}
    return {"kernel": name}


@st.composite
def features(
    draw: st.DrawFn,
    n: int | None = None,
    *,
    max_n: int = 7,
    max_d: int = 4,
    batch: tuple[int, ...] = (),
    nonzero_rows: bool = False,
) -> torch.Tensor:
    """Features ``(*batch, n, d)`` in float64 with at least one non-zero sample per batch entry.

    ``nonzero_rows``: every sample non-zero (a second input then cannot zero the Hadamard product's trace
    under the cosine or linear kernel, which is a ``ValueError`` by design).
    """
    if n is None:
        n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    x = draw(hnp.arrays(np.float64, (*batch, n, d), elements=ENTRY))
    row_mass = np.abs(x).sum(axis=-1)
    assume(bool((row_mass > 0).all()) if nonzero_rows else bool((row_mass.sum(-1) > 0).all()))
    return torch.from_numpy(x)


@st.composite
def psd(draw: st.DrawFn, n: int | None = None, *, max_n: int = 6) -> torch.Tensor:
    """A PSD matrix ``C C^T`` of any rank with positive trace."""
    if n is None:
        n = draw(st.integers(1, max_n))
    r = draw(st.integers(1, n + 1))
    c = draw(hnp.arrays(np.float64, (n, r), elements=ENTRY))
    assume(bool(np.abs(c).sum() > 0))
    c_t = torch.from_numpy(c)
    return c_t @ c_t.mT


# --- 0 <= S <= log n ----------------------------------------------------------------------------------


@given(x=features(), y_seed=st.integers(0, 2**16), kw=kernels(), alpha=ALPHA)
def test_entropy_is_between_zero_and_log_n(x: torch.Tensor, y_seed: int, kw: dict, alpha: float) -> None:
    n = x.shape[-2]
    tol = _tol(alpha)
    s = ri.entropy(x, alpha=alpha, base=E, **kw)
    assert -tol <= float(s) <= math.log(n) + tol
    y = torch.randn(n, 2, generator=torch.Generator().manual_seed(y_seed), dtype=F64)
    joint = ri.joint_entropy(x, y, alpha=alpha, base=E, **kw)
    assert -tol <= float(joint) <= math.log(n) + tol


@given(a=psd(), alpha=ALPHA)
def test_matrix_entropy_is_between_zero_and_log_n(a: torch.Tensor, alpha: float) -> None:
    s = matrix.entropy(a, alpha=alpha, base=E)
    tol = _tol(alpha)
    assert -tol <= float(s) <= math.log(a.shape[-1]) + tol


# --- invariances ----------------------------------------------------------------------------------------


@given(data=st.data(), kw=kernels(), alpha=ALPHA)
def test_invariant_under_permutation_of_samples(data: st.DataObject, kw: dict, alpha: float) -> None:
    x = data.draw(features(max_n=6))
    n = x.shape[-2]
    y = data.draw(features(n, nonzero_rows=True))
    perm = torch.tensor(data.draw(st.permutations(range(n))))
    tol = _tol(alpha)
    for fn, args in (
        (ri.entropy, (x,)),
        (ri.joint_entropy, (x, y)),
        (ri.mutual_information, (x, y)),
    ):
        before = fn(*args, alpha=alpha, **kw)
        after = fn(*(a[perm] for a in args), alpha=alpha, **kw)
        assert float(after) == pytest.approx(float(before), abs=tol), fn.__name__
    a = ri.gram(x, **kw)
    assert float(matrix.entropy(a[perm][:, perm], alpha=alpha)) == pytest.approx(
        float(matrix.entropy(a, alpha=alpha)), abs=tol
    )


@given(a=psd(), scale=st.floats(1e-3, 1e3), alpha=ALPHA)
def test_invariant_under_scaling_of_the_gram(a: torch.Tensor, scale: float, alpha: float) -> None:
    tol = _tol(alpha)
    assert float(matrix.entropy(a * scale, alpha=alpha)) == pytest.approx(
        float(matrix.entropy(a, alpha=alpha)), abs=tol
    )


@given(x=features(), scale=st.floats(0.01, 100.0), alpha=ALPHA, data=st.data())
def test_feature_scalings_that_scale_the_gram(
    x: torch.Tensor, scale: float, alpha: float, data: st.DataObject
) -> None:
    tol = _tol(alpha)
    # linear: K(cx) = c^2 K(x)
    s = ri.entropy(x, alpha=alpha, kernel="linear")
    assert float(ri.entropy(x * scale, alpha=alpha, kernel="linear")) == pytest.approx(float(s), abs=tol)
    # cosine: each row may be scaled by its own positive factor
    row_scales = torch.tensor(
        data.draw(st.lists(st.floats(0.01, 100.0), min_size=x.shape[0], max_size=x.shape[0])), dtype=F64
    )
    s = ri.entropy(x, alpha=alpha, kernel="cosine")
    assert float(ri.entropy(x * row_scales[:, None], alpha=alpha, kernel="cosine")) == pytest.approx(
        float(s), abs=tol
    )
    # gaussian: scaling the features and the bandwidth together leaves K unchanged
    s = ri.entropy(x, alpha=alpha, kernel="gaussian", sigma=0.8)
    assert float(ri.entropy(x * scale, alpha=alpha, kernel="gaussian", sigma=0.8 * scale)) == pytest.approx(
        float(s), abs=tol
    )


# --- order: non-increasing in alpha, continuous at alpha = 1 ---------------------------------------------


@given(x=features(), kw=kernels())
def test_entropy_is_non_increasing_in_alpha(x: torch.Tensor, kw: dict) -> None:
    orders = [0.1, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0, 4.0, 7.5, math.inf]
    values = [float(ri.entropy(x, alpha=a, base=E, method="eig", **kw)) for a in orders]
    for lo, hi, s_lo, s_hi in zip(orders, orders[1:], values, values[1:]):
        assert s_hi <= s_lo + 1e-9, (lo, hi, s_lo, s_hi)


@given(a=psd())
def test_alpha_one_is_the_limit_of_renyi(a: torch.Tensor) -> None:
    s1 = float(matrix.entropy(a, alpha=1.0, base=E))
    # |dS/dalpha| <= sum_i lam_i log^2 lam_i / 2 <= n, so a step of 1e-6 moves S by at most ~1e-5
    for delta in (1e-6, -1e-6):
        s = float(matrix.entropy(a, alpha=1.0 + delta, base=E))
        assert s == pytest.approx(s1, abs=1e-5)
    far = abs(float(matrix.entropy(a, alpha=1.01, base=E)) - s1)
    near = abs(float(matrix.entropy(a, alpha=1.0001, base=E)) - s1)
    assert near <= far + 1e-9


# --- additivity on Kronecker products --------------------------------------------------------------------


@given(a=psd(max_n=4), b=psd(max_n=4), alpha=ALPHA)
def test_kronecker_product_adds_entropies(a: torch.Tensor, b: torch.Tensor, alpha: float) -> None:
    kron = torch.kron(a, b)
    expected = float(matrix.entropy(a, alpha=alpha)) + float(matrix.entropy(b, alpha=alpha))
    assert float(matrix.entropy(kron, alpha=alpha)) == pytest.approx(expected, abs=10 * _tol(alpha))


# --- unit-diagonal non-negative kernels: joint >= max of marginals, I <= min ----------------------------


@given(data=st.data(), alpha=ALPHA)
def test_joint_dominates_marginals_for_unit_diagonal_nonnegative_kernels(
    data: st.DataObject, alpha: float
) -> None:
    kx = data.draw(kernels(unit_diagonal=True))
    ky = data.draw(kernels(unit_diagonal=True))
    x = data.draw(features(max_n=6))
    n = x.shape[-2]
    y = data.draw(features(n))
    # cosine is non-negative on non-negative features; keep every row non-zero (unit diagonal)
    if kx["kernel"] == "cosine":
        x = x.abs() + 0.05
    if ky["kernel"] == "cosine":
        y = y.abs() + 0.05
    kw = {
        "kernel": (kx["kernel"], ky["kernel"]),
        "sigma": (kx.get("sigma"), ky.get("sigma")),
        "alpha": alpha,
        "base": E,
    }
    s_x = float(ri.entropy(x, alpha=alpha, base=E, **kx))
    s_y = float(ri.entropy(y, alpha=alpha, base=E, **ky))
    joint = float(ri.joint_entropy(x, y, **kw))
    mi = float(ri.mutual_information(x, y, **kw))
    tol = _tol(alpha)
    assert joint >= max(s_x, s_y) - tol
    assert mi <= min(s_x, s_y) + tol
    assert mi == pytest.approx(s_x + s_y - joint, abs=1e-9)


# --- what does NOT hold: I_alpha >= 0 for alpha > 1 ---------------------------------------------------


COUNTEREXAMPLE_X = [0.22, 0.32, 2.10, 0.14]
COUNTEREXAMPLE_Y = [2.27, 1.07, 1.12, 1.02]


@pytest.mark.parametrize(
    ("alpha", "nats"),
    [(2.0, -0.0391), (3.0, -0.0939), (0.5, 0.269)],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mutual_information_can_be_negative(alpha: float, nats: float, dtype: torch.dtype) -> None:
    x = torch.tensor(COUNTEREXAMPLE_X, dtype=dtype)[:, None]
    y = torch.tensor(COUNTEREXAMPLE_Y, dtype=dtype)[:, None]
    for method in ("auto", "eig"):
        got = ri.mutual_information(x, y, alpha=alpha, kernel="gaussian", sigma=0.7, base=E, method=method)
        assert float(got) == pytest.approx(nats, abs=5e-4), method
    if alpha == 2.0:
        bits = ri.mutual_information(x, y, alpha=alpha, kernel="gaussian", sigma=0.7)
        assert float(bits) == pytest.approx(-0.0564, abs=5e-4)
        ka, kb = ri.gram(x, "gaussian", sigma=0.7), ri.gram(y, "gaussian", sigma=0.7)
        assert float(matrix.mutual_information(ka, kb, alpha=alpha, base=E)) == pytest.approx(nats, abs=5e-4)


# --- batched equals looped ------------------------------------------------------------------------------


@given(
    data=st.data(),
    batch=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
    kw=kernels(),
    alpha=ALPHA,
)
def test_batched_equals_looped(data: st.DataObject, batch: tuple[int, ...], kw: dict, alpha: float) -> None:
    n = data.draw(st.integers(1, 5))
    x = data.draw(features(n, batch=batch))
    y = data.draw(features(n, batch=batch, nonzero_rows=True))
    method = data.draw(st.sampled_from(["auto", "eig"]))
    opts = {"alpha": alpha, "method": method, **kw}
    got = {
        "entropy": ri.entropy(x, **opts),
        "joint": ri.joint_entropy(x, y, **opts),
        "mi": ri.mutual_information(x, y, **opts),
        "matrix": matrix.entropy(ri.gram(x, **kw), alpha=alpha, method=method),
    }
    for value in got.values():
        assert value.shape == batch
    for idx in np.ndindex(*batch):
        xi, yi = x[idx], y[idx]
        expected = {
            "entropy": ri.entropy(xi, **opts),
            "joint": ri.joint_entropy(xi, yi, **opts),
            "mi": ri.mutual_information(xi, yi, **opts),
            "matrix": matrix.entropy(ri.gram(xi, **kw), alpha=alpha, method=method),
        }
        for key, value in expected.items():
            assert float(got[key][idx]) == pytest.approx(float(value), abs=_tol(alpha)), key


# --- every method computes the same value where it applies ------------------------------------------------


@given(x=features(), y_seed=st.integers(0, 2**16), kw=kernels())
def test_methods_agree(x: torch.Tensor, y_seed: int, kw: dict) -> None:
    y = torch.randn(x.shape[-2], 3, generator=torch.Generator().manual_seed(y_seed), dtype=F64)
    for fn, args in ((ri.entropy, (x,)), (ri.joint_entropy, (x, y)), (ri.mutual_information, (x, y))):
        eig = float(fn(*args, alpha=2.0, method="eig", **kw))
        assert float(fn(*args, alpha=2.0, method="frobenius", **kw)) == pytest.approx(eig, abs=1e-9)
        for alpha in (2.0, 3.0, 4.0, 5.0):
            eig = float(fn(*args, alpha=alpha, method="eig", **kw))
            assert float(fn(*args, alpha=alpha, method="power", **kw)) == pytest.approx(eig, abs=1e-9), alpha
            assert float(fn(*args, alpha=alpha, method="auto", **kw)) == pytest.approx(eig, abs=1e-9), alpha


@given(data=st.data())
def test_matrix_methods_agree(data: st.DataObject) -> None:
    a = data.draw(psd())
    b = data.draw(psd(a.shape[-1]))
    assume(float((a * b).diagonal().sum()) > 0)  # disjoint supports: a zero-trace product, a ValueError
    for alpha in (2.0, 3.0, 4.0, 5.0):
        for fn, args in ((matrix.entropy, (a,)), (matrix.mutual_information, (a, b))):
            eig = float(fn(*args, alpha=alpha, method="eig"))
            assert float(fn(*args, alpha=alpha, method="power")) == pytest.approx(eig, abs=1e-9)
            if alpha == 2.0:
                assert float(fn(*args, alpha=alpha, method="frobenius")) == pytest.approx(eig, abs=1e-9)
