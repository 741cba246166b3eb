"""Conditional entropy, conditional MI, total correlation and the matrix Rényi divergence (issue #7).

An independent float64 NumPy/SciPy reference is written here from the definitions: Grams entry by
entry, spectra from ``scipy.linalg.eigvalsh``, and the divergence from ``scipy.linalg``'s
``fractional_matrix_power`` / ``logm`` (Schur–Padé algorithms, not eigenvectors).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given
from hypothesis import strategies as st

import renyi_info
from renyi_info import matrix

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- reference (NumPy)


def ref_gram(x: np.ndarray, kernel: str, sigma: float | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    k = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if kernel == "gaussian":
                k[i, j] = math.exp(-float(((x[i] - x[j]) ** 2).sum()) / (2 * sigma * sigma))
            elif kernel == "cosine":
                k[i, j] = float(x[i] @ x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
            elif kernel == "linear":
                k[i, j] = float(x[i] @ x[j])
            elif kernel == "label":
                k[i, j] = float(x[i] == x[j])
    return k


def ref_entropy(k: np.ndarray, alpha: float) -> float:
    """Rényi entropy (nats) of k / tr k."""
    lam = scipy.linalg.eigvalsh(k / np.trace(k))
    lam = lam[lam > 1e-12 * lam.max()]
    if alpha == 1.0:
        return float(-(lam * np.log(lam)).sum())
    if math.isinf(alpha):
        return float(-math.log(lam.max()))
    return float(math.log((lam**alpha).sum()) / (1 - alpha))


def ref_ce(ka, kb, alpha):
    return ref_entropy(ka * kb, alpha) - ref_entropy(kb, alpha)


def ref_cmi(ka, kb, kc, alpha):
    return (
        ref_entropy(ka * kc, alpha)
        + ref_entropy(kb * kc, alpha)
        - ref_entropy(ka * kb * kc, alpha)
        - ref_entropy(kc, alpha)
    )


def ref_tc(ks, alpha):
    joint = np.ones_like(ks[0])
    for k in ks:
        joint = joint * k
    return sum(ref_entropy(k, alpha) for k in ks) - ref_entropy(joint, alpha)


def ref_divergence(ka: np.ndarray, kb: np.ndarray, alpha: float) -> float:
    """Petz-Rényi divergence (nats) of full-rank ka / tr, kb / tr via Schur-Padé matrix functions."""
    a = ka / np.trace(ka)
    b = kb / np.trace(kb)
    if alpha == 1.0:
        return float(np.trace(a @ (scipy.linalg.logm(a) - scipy.linalg.logm(b))).real)
    q = np.trace(
        scipy.linalg.fractional_matrix_power(a, alpha) @ scipy.linalg.fractional_matrix_power(b, 1 - alpha)
    ).real
    return float(math.log(q) / (alpha - 1))


def classical_renyi_divergence(p: np.ndarray, q: np.ndarray, alpha: float) -> float:
    if alpha == 1.0:
        return float((p * np.log(p / q)).sum())
    return float(math.log((p**alpha * q ** (1 - alpha)).sum()) / (alpha - 1))


def features(seed: int, n: int, d: int, batch: tuple[int, ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, n, d, generator=g, dtype=torch.float64)


def labels(seed: int, n: int, k: int, batch: tuple[int, ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, (*batch, n), generator=g)


# ----------------------------------------------------------------------------- reference agreement

ALPHA_METHODS = [(0.5, "eig"), (1.0, "eig"), (2.0, "frobenius"), (2.0, "eig"), (3.0, "power"), (3.0, "auto")]


@pytest.mark.parametrize(("alpha", "method"), ALPHA_METHODS)
def test_conditional_entropy_matches_reference_batched(alpha, method):
    x = features(0, 7, 3, (2,))
    y = labels(1, 7, 3, (2,))
    got = renyi_info.conditional_entropy(
        x, y, alpha=alpha, method=method, kernel=("gaussian", "label"), sigma=(1.3, None), base=math.e
    )
    assert got.shape == (2,)
    for i in range(2):
        ref = ref_ce(ref_gram(x[i].numpy(), "gaussian", 1.3), ref_gram(y[i].numpy(), "label"), alpha)
        assert float(got[i]) == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize(("alpha", "method"), ALPHA_METHODS)
def test_conditional_mutual_information_matches_reference(alpha, method):
    x, y, z = features(2, 6, 2), features(3, 6, 4), features(4, 6, 1)
    got = renyi_info.conditional_mutual_information(
        x, y, z, alpha=alpha, method=method, kernel="gaussian", sigma=(1.0, 2.0, 0.7), base=math.e
    )
    ka, kb, kc = (ref_gram(t.numpy(), "gaussian", s) for t, s in ((x, 1.0), (y, 2.0), (z, 0.7)))
    assert float(got) == pytest.approx(ref_cmi(ka, kb, kc, alpha), abs=1e-9)


@pytest.mark.parametrize(("alpha", "method"), ALPHA_METHODS)
def test_total_correlation_matches_reference(alpha, method):
    xs = [features(5 + i, 8, 2 + i) for i in range(3)]
    got = renyi_info.total_correlation(*xs, alpha=alpha, method=method, kernel="cosine", base=2.0)
    ref = ref_tc([ref_gram(t.numpy(), "cosine") for t in xs], alpha) / LN2
    assert float(got) == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0, 1.5, 2.0, 3.0])
def test_divergence_matches_scipy_reference(alpha):
    x, y = features(6, 6, 3, (2,)), features(7, 6, 2, (2,))
    got = renyi_info.divergence(x, y, alpha=alpha, kernel="gaussian", sigma=(1.5, 1.0), base=math.e)
    assert got.shape == (2,)
    for i in range(2):
        ka, kb = ref_gram(x[i].numpy(), "gaussian", 1.5), ref_gram(y[i].numpy(), "gaussian", 1.0)
        assert float(got[i]) == pytest.approx(ref_divergence(ka, kb, alpha), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("alpha", [2.0, 3.0])
def test_divergence_power_route_equals_eig(alpha):
    a, b = features(8, 5, 5), features(9, 5, 5)
    ka, kb = a @ a.mT + 0.1 * torch.eye(5, dtype=a.dtype), b @ b.mT + 0.1 * torch.eye(5, dtype=a.dtype)
    eig = matrix.divergence(ka, kb, alpha=alpha, method="eig")
    power = matrix.divergence(ka, kb, alpha=alpha, method="power")
    assert float(power) == pytest.approx(float(eig), rel=1e-9)


def test_matrix_api_equals_feature_api():
    x, y, z = features(10, 6, 3), features(11, 6, 2), labels(12, 6, 2)
    gx, gy = renyi_info.gram(x, "gaussian", sigma=0.9), renyi_info.gram(y, "cosine")
    gz = renyi_info.gram(z, "label", compute_dtype=torch.float64)
    kw = {"kernel": ("gaussian", "cosine", "label"), "sigma": (0.9, None, None)}
    cmi = renyi_info.conditional_mutual_information(x, y, z, alpha=1.5, **kw)
    assert torch.allclose(cmi, matrix.conditional_mutual_information(gx, gy, gz, alpha=1.5))
    ce = renyi_info.conditional_entropy(x, y, kernel=("gaussian", "cosine"), sigma=(0.9, None))
    assert torch.allclose(ce, matrix.conditional_entropy(gx, gy))
    tc = renyi_info.total_correlation(x, y, z, alpha=0.5, **kw)
    assert torch.allclose(tc, matrix.total_correlation(gx, gy, gz, alpha=0.5))
    dv = renyi_info.divergence(x, y, kernel=("gaussian", "cosine"), sigma=(0.9, None), alpha=0.7)
    assert torch.allclose(dv, matrix.divergence(gx, gy, alpha=0.7))


# ----------------------------------------------------------------------------- analytic identities


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0, math.inf])
def test_label_conditional_entropy_of_itself_is_zero(alpha):
    y = labels(13, 9, 3, (3,))
    got = renyi_info.conditional_entropy(y, y, kernel="label", alpha=alpha, compute_dtype=torch.float64)
    assert torch.allclose(got, torch.zeros(3, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_gaussian_conditional_entropy_of_itself_is_not_zero(alpha):
    # K_s o K_s = K_{s / sqrt 2}: S(X|X) = S(K_{s/sqrt2}) - S(K_s) > 0, not 0 as for labels
    x, s = features(14, 7, 2), 0.8
    got = float(renyi_info.conditional_entropy(x, x, kernel="gaussian", sigma=s, alpha=alpha, base=math.e))
    expected = renyi_info.entropy(x, kernel="gaussian", sigma=s / math.sqrt(2), alpha=alpha, base=math.e)
    expected = expected - renyi_info.entropy(x, kernel="gaussian", sigma=s, alpha=alpha, base=math.e)
    assert got == pytest.approx(float(expected), abs=1e-10)
    assert got > 1e-3


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_cmi_with_constant_condition_is_mi(alpha):
    x, y = features(15, 8, 3), features(16, 8, 2)
    const = torch.ones(8, 1, dtype=torch.float64)
    cmi = renyi_info.conditional_mutual_information(x, y, const, alpha=alpha, kernel="gaussian", sigma=1.1)
    mi = renyi_info.mutual_information(x, y, alpha=alpha, kernel="gaussian", sigma=1.1)
    assert float(cmi) == pytest.approx(float(mi), abs=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_chain_rule_of_mutual_information(alpha):
    # I(A; B o C) = I(A; C) + I(A; B | C): an exact identity of the entropy combinations
    a, b, c = (renyi_info.gram(features(17 + i, 7, 2), "gaussian", sigma=1.0) for i in range(3))
    lhs = matrix.mutual_information(a, b * c, alpha=alpha)
    rhs = matrix.mutual_information(a, c, alpha=alpha) + matrix.conditional_mutual_information(
        a, b, c, alpha=alpha
    )
    assert float(lhs) == pytest.approx(float(rhs), abs=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_total_correlation_of_two_is_mutual_information(alpha):
    x, y = features(20, 8, 3), labels(21, 8, 3)
    kw = {"kernel": ("cosine", "label"), "alpha": alpha}
    assert float(renyi_info.total_correlation(x, y, **kw)) == pytest.approx(
        float(renyi_info.mutual_information(x, y, **kw)), abs=1e-10
    )
    assert float(renyi_info.total_correlation(x, alpha=alpha)) == pytest.approx(0.0, abs=1e-12)


def test_conditional_entropy_is_joint_minus_marginal():
    x, y = features(22, 6, 3), features(23, 6, 3)
    ce = renyi_info.conditional_entropy(x, y, alpha=1.0)
    expected = renyi_info.joint_entropy(x, y, alpha=1.0) - renyi_info.entropy(y, alpha=1.0)
    assert float(ce) == pytest.approx(float(expected), abs=1e-12)


def test_total_correlation_can_be_negative_for_alpha_2():
    # the documented subadditivity counterexample (DESIGN.md): n = 4 scalar samples, gaussian sigma = 0.7
    x = torch.tensor([[0.22], [0.32], [2.10], [0.14]], dtype=torch.float64)
    y = torch.tensor([[2.27], [1.07], [1.12], [1.02]], dtype=torch.float64)
    kw = {"kernel": "gaussian", "sigma": 0.7, "base": math.e}
    assert float(renyi_info.total_correlation(x, y, alpha=2.0, **kw)) == pytest.approx(-0.0391, abs=5e-4)
    assert float(renyi_info.total_correlation(x, y, alpha=0.5, **kw)) > 0


def _unit_diag_grams(draw, n: int, count: int, signed: bool) -> list[torch.Tensor]:
    grams = []
    for _ in range(count):
        kind = draw(st.sampled_from(["gaussian", "label", "cosine"] if signed else ["gaussian", "label"]))
        seed = draw(st.integers(0, 10_000))
        if kind == "label":
            grams.append(renyi_info.gram(labels(seed, n, draw(st.integers(1, 4))), "label", normalize=False))
        elif kind == "gaussian":
            x = features(seed, n, draw(st.integers(1, 3)))
            grams.append(renyi_info.gram(x, "gaussian", sigma=draw(st.floats(0.1, 4.0)), normalize=False))
        else:
            grams.append(
                renyi_info.gram(features(seed, n, draw(st.integers(1, 3))), "cosine", normalize=False)
            )
    return [g.to(torch.float64) for g in grams]


@given(st.data(), st.integers(2, 9), st.integers(2, 3), st.sampled_from([0.5, 1.0]))
def test_total_correlation_nonnegative_for_alpha_at_most_one(data, n, count, alpha):
    # observed, not proven: no violation for PSD unit-diagonal kernels at alpha in {0.5, 1}
    grams = _unit_diag_grams(data.draw, n, count, signed=True)
    assert float(matrix.total_correlation(*grams, alpha=alpha, base=math.e)) >= -1e-9


@given(st.data(), st.integers(2, 9), st.sampled_from([0.5, 1.0, 2.0, 3.0, math.inf]))
def test_conditional_entropy_nonnegative_for_nonnegative_unit_diagonal(data, n, alpha):
    # S(A o B) >= max(S(A), S(B)) for unit-diagonal entrywise non-negative kernels
    a, b = _unit_diag_grams(data.draw, n, 2, signed=False)
    assert float(matrix.conditional_entropy(a, b, alpha=alpha, base=math.e)) >= -1e-9


# ----------------------------------------------------------------------------- divergence properties


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("kernel", ["cosine", "gaussian", "label"])
def test_divergence_of_a_gram_from_itself_is_zero(alpha, kernel):
    x = labels(24, 8, 3) if kernel == "label" else features(24, 8, 3)
    sigma = 1.0 if kernel == "gaussian" else None
    got = renyi_info.divergence(x, x, alpha=alpha, kernel=kernel, sigma=sigma, compute_dtype=torch.float64)
    assert abs(float(got)) < 1e-9


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 4.0])
def test_divergence_of_commuting_matrices_is_classical(alpha):
    p = np.array([0.1, 0.2, 0.3, 0.4])
    q = np.array([0.25, 0.25, 0.4, 0.1])
    got = matrix.divergence(
        torch.diag(torch.tensor(p)), torch.diag(torch.tensor(q)), alpha=alpha, base=math.e
    )
    assert float(got) == pytest.approx(classical_renyi_divergence(p, q, alpha), rel=1e-10)


@given(st.integers(0, 10_000), st.integers(2, 7), st.sampled_from([0.3, 0.5, 0.9, 1.0, 1.5, 2.0, 3.0]))
def test_divergence_nonnegative_and_scale_invariant(seed, n, alpha):
    x, y = features(seed, n, n), features(seed + 1, n, n)
    ka, kb = x @ x.mT, y @ y.mT
    d = matrix.divergence(ka, kb, alpha=alpha, base=math.e)
    assert float(d) >= -1e-9
    assert float(matrix.divergence(3.0 * ka, 0.5 * kb, alpha=alpha, base=math.e)) == pytest.approx(
        float(d), rel=1e-6, abs=1e-9
    )


def test_divergence_nondecreasing_in_alpha_and_continuous_at_one():
    x, y = features(25, 6, 6), features(26, 6, 6)
    ka, kb = x @ x.mT, y @ y.mT
    alphas = [0.2, 0.5, 0.9, 0.9999, 1.0, 1.0001, 1.5, 2.0, 3.0]
    values = [float(matrix.divergence(ka, kb, alpha=a)) for a in alphas]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(values))
    assert values[3] == pytest.approx(values[4], rel=1e-3)
    assert values[5] == pytest.approx(values[4], rel=1e-3)


def test_divergence_support_condition():
    full = features(27, 5, 5)
    ka = full @ full.mT  # rank 5
    low = features(28, 5, 2)
    kb = low @ low.mT  # rank 2: supp A is not inside supp B
    for alpha in (1.0, 2.0, 3.0):
        assert math.isinf(float(matrix.divergence(ka, kb, alpha=alpha)))
    assert math.isfinite(float(matrix.divergence(ka, kb, alpha=0.5)))
    # the other way round supp B in supp A is fine: finite for every alpha
    for alpha in (0.5, 1.0, 2.0):
        assert math.isfinite(float(matrix.divergence(kb, ka, alpha=alpha)))
    # an infinite divergence gets a zero (not NaN) gradient
    ka = ka.clone().requires_grad_()
    matrix.divergence(ka, kb, alpha=2.0).backward()
    assert torch.equal(ka.grad, torch.zeros_like(ka))


def test_divergence_gradient_finite_at_repeated_eigenvalues():
    a = torch.eye(4, dtype=torch.float64).requires_grad_()  # all eigenvalues equal
    b = torch.diag(torch.tensor([1.0, 1.0, 2.0, 2.0], dtype=torch.float64)).requires_grad_()
    for alpha in (0.5, 1.0, 2.0):
        a.grad = b.grad = None
        matrix.divergence(a, b, alpha=alpha).backward()
        assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
        assert b.grad.abs().sum() > 0


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_divergence_gradcheck(alpha):
    x, y = features(29, 4, 4), features(30, 4, 4)
    ka = (x @ x.mT + 0.2 * torch.eye(4, dtype=x.dtype)).requires_grad_()
    kb = (y @ y.mT + 0.2 * torch.eye(4, dtype=x.dtype)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: matrix.divergence(a, b, alpha=alpha), (ka, kb))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_divergence_gradcheck_at_repeated_eigenvalues(alpha):
    ka = torch.diag(torch.tensor([1.0, 1.0, 1.0, 3.0], dtype=torch.float64)).requires_grad_()
    kb = torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0], dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: matrix.divergence(a, b, alpha=alpha), (ka, kb))


def test_divergence_power_gradcheck():
    x, y = features(31, 4, 4), features(32, 4, 4)
    ka = (x @ x.mT + 0.3 * torch.eye(4, dtype=x.dtype)).requires_grad_()
    kb = (y @ y.mT + 0.3 * torch.eye(4, dtype=x.dtype)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: matrix.divergence(a, b, alpha=2.0, method="power"), (ka, kb))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, y, z: renyi_info.conditional_entropy(x, y, alpha=1.5, kernel="gaussian", sigma=1.0),
        lambda x, y, z: renyi_info.conditional_mutual_information(
            x, y, z, alpha=2.0, kernel="gaussian", sigma=1.0
        ),
        lambda x, y, z: renyi_info.total_correlation(x, y, z, alpha=0.7, kernel="gaussian", sigma=1.0),
        lambda x, y, z: renyi_info.divergence(x, y, alpha=0.5, kernel="gaussian", sigma=1.0),
    ],
    ids=["conditional_entropy", "cmi", "total_correlation", "divergence"],
)
def test_feature_functions_gradcheck(fn):
    x, y, z = (features(33 + i, 5, 2).requires_grad_() for i in range(3))
    assert torch.autograd.gradcheck(fn, (x, y, z))


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    x, y = features(40, 5, 2), features(41, 6, 2)
    with pytest.raises(ValueError, match="same batch shape and number of samples"):
        renyi_info.conditional_entropy(x, y)
    with pytest.raises(ValueError, match="frobenius"):
        renyi_info.conditional_mutual_information(x, x, x, alpha=3.0, method="frobenius")
    with pytest.raises(ValueError, match="at least one"):
        renyi_info.total_correlation()
    with pytest.raises(ValueError, match="at least one"):
        matrix.total_correlation()
    with pytest.raises(ValueError, match="finite alpha"):
        renyi_info.divergence(x, x, alpha=math.inf)
    with pytest.raises(ValueError, match="method must be one of"):
        renyi_info.divergence(x, x, alpha=2.0, method="frobenius")
    with pytest.raises(ValueError, match="integer alpha"):
        matrix.divergence(torch.eye(3), torch.eye(3), alpha=1.5, method="power")
    low = features(42, 5, 2)
    with pytest.raises(ValueError, match="positive definite"):
        matrix.divergence(torch.eye(5, dtype=torch.float64), low @ low.mT, alpha=2.0, method="power")
    with pytest.raises(ValueError, match="alpha must be > 0"):
        matrix.conditional_entropy(torch.eye(3), torch.eye(3), alpha=0.0)
    with pytest.raises(ValueError, match="symmetric"):
        matrix.divergence(torch.eye(3), torch.triu(torch.ones(3, 3)))
    with pytest.raises(TypeError, match="integer"):
        renyi_info.conditional_entropy(x, x, kernel=("cosine", "label"))
