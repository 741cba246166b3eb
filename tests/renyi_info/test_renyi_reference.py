"""Agreement with the independent float64 NumPy/SciPy reference of ``tests/reference.py``."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

import reference as ref
import renyi_info as ri
from reference import ALPHAS, KERNEL_PARAMS, methods_for
from renyi_info import matrix

E = math.e
F64 = torch.float64
KERNELS = list(KERNEL_PARAMS)
# (n, d): rank-deficient linear/cosine Grams (n > d), full rank (n <= d), a single sample
SHAPES = [(6, 2), (5, 5), (4, 7), (9, 3), (1, 3)]


def _seed(*key: object) -> int:
    """A seed that is the same in every process (``hash`` of a str is salted per process)."""
    return zlib.crc32(repr(key).encode())


def _features(seed: int, n: int, d: int, batch: int = 3) -> np.ndarray:
    """A batch of feature matrices; entry 1 has a duplicated sample, entry 2 a zero sample (if n > 2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, n, d)) * rng.uniform(0.3, 2.0, size=(batch, n, 1))
    if n > 2:
        x[1, -1] = x[1, 0]
        x[2, 1] = 0.0
    return x


def _check(got: torch.Tensor, expected: list[float], tol: float = 1e-9) -> None:
    assert got.shape == (len(expected),)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), np.array(expected), rtol=0, atol=tol)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_entropy_matches_reference(alpha: float, kernel: str, shape: tuple[int, int]) -> None:
    params = KERNEL_PARAMS[kernel]
    x = _features(_seed(alpha, kernel, shape), *shape)
    expected = [ref.entropy(xb, alpha, kernel, **params) for xb in x]
    for method in methods_for(alpha):
        got = ri.entropy(torch.from_numpy(x), alpha=alpha, kernel=kernel, method=method, base=E, **params)
        _check(got, expected)
    # the default base is 2
    got = ri.entropy(torch.from_numpy(x), alpha=alpha, kernel=kernel, **params)
    _check(got, [e / math.log(2) for e in expected])


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_joint_entropy_and_information_match_reference(alpha: float, kernel: str) -> None:
    params = KERNEL_PARAMS[kernel]
    seed = _seed("joint", alpha, kernel)
    x = _features(seed, 7, 3)
    y = _features(seed + 1, 7, 2)
    z = _features(seed + 2, 7, 4)
    exp_joint = [ref.joint_entropy([xb, yb], alpha, kernel, **params) for xb, yb in zip(x, y)]
    exp_joint3 = [ref.joint_entropy([xb, yb, zb], alpha, kernel, **params) for xb, yb, zb in zip(x, y, z)]
    exp_mi = [ref.mutual_information(xb, yb, alpha, kernel, **params) for xb, yb in zip(x, y)]
    tx, ty, tz = (torch.from_numpy(a) for a in (x, y, z))
    for method in methods_for(alpha):
        kw = {"alpha": alpha, "kernel": kernel, "method": method, "base": E, **params}
        _check(ri.joint_entropy(tx, ty, **kw), exp_joint)
        _check(ri.joint_entropy(tx, ty, tz, **kw), exp_joint3)
        _check(ri.mutual_information(tx, ty, **kw), exp_mi)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_one_kernel_per_input_matches_reference(alpha: float) -> None:
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 5))
    kx = ref.kernel(x, "gaussian", sigma=0.8)
    ky = ref.kernel(y, "polynomial", degree=3, coef=0.5)
    got = ri.mutual_information(
        torch.from_numpy(x),
        torch.from_numpy(y),
        alpha=alpha,
        kernel=("gaussian", "polynomial"),
        sigma=(0.8, None),
        degree=(1, 3),
        coef=(0.0, 0.5),
        base=E,
    )
    assert float(got) == pytest.approx(ref.matrix_mutual_information(kx, ky, alpha), abs=1e-9)
    got = ri.joint_entropy(
        torch.from_numpy(x), torch.from_numpy(y), alpha=alpha, kernel=["linear", "cosine"], base=E
    )
    expected = ref.matrix_joint_entropy(ref.kernel(x, "linear"), ref.kernel(y, "cosine"), alpha=alpha)
    assert float(got) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("normalize", [True, False])
def test_gram_matches_reference(kernel: str, normalize: bool) -> None:
    params = KERNEL_PARAMS[kernel]
    x = _features(21, 6, 3)
    for xb in x:
        k = ref.kernel(xb, kernel, **params)
        if normalize:
            k = k / np.trace(k)
        got = ri.gram(torch.from_numpy(xb), kernel, normalize=normalize, **params)
        np.testing.assert_allclose(got.numpy(), k, rtol=1e-12, atol=1e-12)


def _psd_batch(seed: int, n: int, ranks: list[int]) -> np.ndarray:
    """PSD matrices C C^T of the given ranks (not kernel matrices, not unit diagonal)."""
    rng = np.random.default_rng(seed)
    mats = []
    for r in ranks:
        c = rng.normal(size=(n, r)) * rng.uniform(0.2, 3.0, size=(n, 1))
        mats.append(c @ c.T)
    return np.stack(mats)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_matrix_api_matches_reference(alpha: float) -> None:
    seed = _seed("matrix", alpha)
    a = _psd_batch(seed, 6, [1, 3, 6, 8])
    b = _psd_batch(seed + 1, 6, [2, 6, 4, 1])
    c = _psd_batch(seed + 2, 6, [6, 5, 6, 6])
    ta, tb, tc = (torch.from_numpy(m) for m in (a, b, c))
    for method in methods_for(alpha):
        kw = {"alpha": alpha, "method": method, "base": E}
        _check(matrix.entropy(ta, **kw), [ref.matrix_entropy(m, alpha) for m in a])
        _check(
            matrix.joint_entropy(ta, tb, **kw),
            [ref.matrix_joint_entropy(p, q, alpha=alpha) for p, q in zip(a, b)],
        )
        _check(
            matrix.joint_entropy(ta, tb, tc, **kw),
            [ref.matrix_joint_entropy(p, q, r, alpha=alpha) for p, q, r in zip(a, b, c)],
        )
        _check(
            matrix.mutual_information(ta, tb, **kw),
            [ref.matrix_mutual_information(p, q, alpha) for p, q in zip(a, b)],
        )
    # float32 input, float32 computation: close to the float64 reference
    got = matrix.entropy(ta.float(), alpha=alpha, base=E)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), [ref.matrix_entropy(m, alpha) for m in a], atol=2e-4)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_matrix_api_equals_feature_api(alpha: float, kernel: str) -> None:
    params = KERNEL_PARAMS[kernel]
    x = torch.from_numpy(_features(31, 5, 3))
    y = torch.from_numpy(_features(32, 5, 4))
    kx, ky = ri.gram(x, kernel, **params), ri.gram(y, kernel, normalize=False, **params)
    kw = {"alpha": alpha}
    torch.testing.assert_close(matrix.entropy(kx, **kw), ri.entropy(x, kernel=kernel, **params, **kw))
    torch.testing.assert_close(
        matrix.joint_entropy(kx, ky, **kw), ri.joint_entropy(x, y, kernel=kernel, **params, **kw)
    )
    torch.testing.assert_close(
        matrix.mutual_information(kx, ky, **kw), ri.mutual_information(x, y, kernel=kernel, **params, **kw)
    )
    torch.testing.assert_close(matrix.normalize(ky), ri.gram(y, kernel, **params))


def test_low_rank_values_are_exact_for_small_alpha() -> None:
    """alpha < 1 and alpha = 1 on a rank-2 matrix of size 12: the dropped round-off adds nothing."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, 2))
    lam = np.linalg.svd(x, compute_uv=False) ** 2
    p = lam / lam.sum()  # the two non-zero eigenvalues of x x^T / tr, computed without the n x n matrix
    for alpha in (0.1, 0.5, 0.9, 1.0):
        expected = ref.renyi_of_probabilities(p, alpha)
        got = ri.entropy(torch.from_numpy(x), alpha=alpha, kernel="linear", base=E)
        assert float(got) == pytest.approx(expected, abs=1e-12)
        got32 = ri.entropy(torch.from_numpy(x).float(), alpha=alpha, kernel="linear", base=E)
        assert float(got32) == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_round_off_negative_eigenvalues_are_clamped(alpha: float) -> None:
    """A PSD matrix whose computed spectrum has tiny negative eigenvalues (round-off) is still exact."""
    rng = np.random.default_rng(8)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    lam = np.array([0.6, 0.3, 0.1, -1e-17, -3e-18])
    a = q @ np.diag(lam) @ q.T
    a = 0.5 * (a + a.T)
    expected = ref.renyi_of_probabilities(np.array([0.6, 0.3, 0.1]), alpha)
    for method in methods_for(alpha):
        got = matrix.entropy(torch.from_numpy(a), alpha=alpha, method=method, base=E)
        assert float(got) == pytest.approx(expected, abs=1e-12), method
