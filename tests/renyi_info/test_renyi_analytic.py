"""Closed-form values of the matrix-based Rényi quantities (brief §2, "facts that hold")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import renyi_info as ri
from reference import ALPHAS, KERNEL_PARAMS, methods_for, renyi_of_probabilities
from renyi_info import matrix

E = math.e
F64 = torch.float64
GRID = [(a, m) for a in ALPHAS for m in methods_for(a)]
GRID_IDS = [f"alpha={a}-{m}" for a, m in GRID]


def _one_hot(labels: list[int]) -> torch.Tensor:
    y = torch.tensor(labels)
    return torch.nn.functional.one_hot(y, int(y.max()) + 1).to(F64)


def _block_ones(counts: list[int]) -> torch.Tensor:
    return torch.block_diag(*[torch.ones(c, c, dtype=F64) for c in counts])


# --- S(I/n) = log n ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alpha", "method"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("n", [1, 2, 5])
def test_identity_has_entropy_log_n(alpha: float, method: str, n: int) -> None:
    expected = math.log(n)
    for scale in (1.0 / n, 1.0, 7.5):  # I/n and any multiple of it
        a = torch.eye(n, dtype=F64) * scale
        assert float(matrix.entropy(a, alpha=alpha, method=method, base=E)) == pytest.approx(
            expected, abs=1e-12
        )
    # features whose Gram is a multiple of I: orthonormal rows (cosine, linear), far apart points (gaussian)
    feats = {
        "cosine": torch.eye(n, dtype=F64) * torch.arange(1, n + 1, dtype=F64)[:, None],
        "linear": torch.eye(n, dtype=F64) * 3.0,
        "gaussian": 100.0 * torch.arange(n, dtype=F64)[:, None],
    }
    for kernel, x in feats.items():
        params = {"sigma": 1.0} if kernel == "gaussian" else {}
        s = ri.entropy(x, alpha=alpha, kernel=kernel, method=method, base=E, **params)
        assert float(s) == pytest.approx(expected, abs=1e-12), kernel
    # in bits, as by default
    assert float(ri.entropy(torch.eye(n, dtype=F64), alpha=alpha, method=method)) == pytest.approx(
        math.log2(n), abs=1e-12
    )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_identity_float32(alpha: float) -> None:
    s = ri.entropy(torch.eye(6), alpha=alpha, base=E)
    assert s.dtype == torch.float32
    assert float(s) == pytest.approx(math.log(6), abs=1e-5)


# --- rank one: S = 0 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("alpha", "method"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rank_one_has_zero_entropy(alpha: float, method: str, dtype: torch.dtype) -> None:
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    g = torch.Generator().manual_seed(1)
    v = torch.randn(7, 1, generator=g, dtype=dtype)
    w = torch.randn(1, 4, generator=g, dtype=dtype)
    # matrix API: v v^T
    s = matrix.entropy(v @ v.mT, alpha=alpha, method=method, base=E)
    assert abs(float(s)) < tol
    # linear: rows are multiples of one vector (any sign); cosine: positive multiples
    assert abs(float(ri.entropy(v @ w, alpha=alpha, kernel="linear", method=method))) < tol
    assert abs(float(ri.entropy(v.abs() @ w, alpha=alpha, kernel="cosine", method=method))) < tol
    # gaussian: identical samples
    same = w.expand(7, 4)
    assert abs(float(ri.entropy(same, alpha=alpha, kernel="gaussian", sigma=0.3, method=method))) < tol


# --- block all-ones kernel: classical Rényi entropy of the block proportions --------------------------


COUNTS = [[3, 2, 1], [4, 4], [5, 1, 1, 1], [6]]


@pytest.mark.parametrize(("alpha", "method"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("counts", COUNTS, ids=str)
def test_block_kernel_gives_classical_renyi(alpha: float, method: str, counts: list[int]) -> None:
    n = sum(counts)
    expected = renyi_of_probabilities(np.array(counts) / n, alpha)
    # matrix API: block-diagonal all-ones, then the same samples shuffled
    k = _block_ones(counts)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    for kk in (k, k[perm][:, perm], 0.25 * k):
        assert float(matrix.entropy(kk, alpha=alpha, method=method, base=E)) == pytest.approx(
            expected, abs=1e-10
        )
    # feature API: one-hot labels with the linear or cosine kernel give K_ij = [y_i = y_j]
    labels = [c for c, size in enumerate(counts) for _ in range(size)]
    y = _one_hot(labels)[perm]
    for kernel in ("linear", "cosine"):
        s = ri.entropy(y, alpha=alpha, kernel=kernel, method=method, base=E)
        assert float(s) == pytest.approx(expected, abs=1e-10), kernel


# --- label kernel: L ∘ L = L, so S(Y, Y) = S(Y) and I(Y; Y) = S(Y) -------------------------------------


@pytest.mark.parametrize(("alpha", "method"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("kernel", ["linear", "cosine"])
def test_label_kernel_self_information(alpha: float, method: str, kernel: str) -> None:
    y = _one_hot([0, 2, 1, 0, 0, 2, 1, 3])
    s = ri.entropy(y, alpha=alpha, kernel=kernel, method=method)
    assert float(s) > 0.5
    assert float(ri.joint_entropy(y, y, alpha=alpha, kernel=kernel, method=method)) == pytest.approx(
        float(s), abs=1e-10
    )
    assert float(ri.joint_entropy(y, y, y, alpha=alpha, kernel=kernel, method=method)) == pytest.approx(
        float(s), abs=1e-10
    )
    mi = ri.mutual_information(y, y, alpha=alpha, kernel=kernel, method=method)
    assert float(mi) == pytest.approx(float(s), abs=1e-10)
    # the same through the matrix API
    lab = y @ y.mT
    assert float(matrix.mutual_information(lab, lab, alpha=alpha, method=method)) == pytest.approx(
        float(s), abs=1e-10
    )


# --- the all-ones matrix is the Hadamard identity: I(X; constant) = 0 ----------------------------------


@pytest.mark.parametrize(("alpha", "method"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("kernel", list(KERNEL_PARAMS))
def test_information_with_a_constant_is_zero(alpha: float, method: str, kernel: str) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, generator=g, dtype=F64)
    params = KERNEL_PARAMS[kernel]
    s_x = ri.entropy(x, alpha=alpha, kernel=kernel, method=method, **params)
    assert float(s_x) > 0.1
    # a constant y: all-ones Gram under cosine, constant c^2 under linear, ones under gaussian
    for y_kernel, y in (
        ("cosine", torch.full((6, 2), -1.5, dtype=F64)),
        ("linear", torch.full((6, 1), 2.0, dtype=F64)),
    ):
        mi = ri.mutual_information(
            x,
            y,
            alpha=alpha,
            kernel=(kernel, y_kernel),
            method=method,
            sigma=(params.get("sigma"), None),
            degree=(params.get("degree", 1), 1),
            coef=(params.get("coef", 0.0), 0.0),
        )
        assert abs(float(mi)) < 1e-10, y_kernel
    const = torch.zeros(6, 4, dtype=F64)
    mi = ri.mutual_information(
        x,
        const,
        alpha=alpha,
        kernel=(kernel, "gaussian"),
        sigma=(params.get("sigma"), 0.5),
        degree=(params.get("degree", 1), 1),
        coef=(params.get("coef", 0.0), 0.0),
        method=method,
    )
    assert abs(float(mi)) < 1e-10
    joint = ri.joint_entropy(
        x,
        torch.ones(6, 1, dtype=F64),
        alpha=alpha,
        kernel=(kernel, "cosine"),
        method=method,
        sigma=(params.get("sigma"), None),
        degree=(params.get("degree", 1), 1),
        coef=(params.get("coef", 0.0), 0.0),
    )
    assert float(joint) == pytest.approx(float(s_x), abs=1e-10)
    # matrix API
    kx = ri.gram(x, kernel, **params)
    ones = torch.ones(6, 6, dtype=F64)
    assert abs(float(matrix.mutual_information(kx, ones, alpha=alpha, method=method))) < 1e-10
    assert abs(float(matrix.mutual_information(ones * 3.0, kx, alpha=alpha, method=method))) < 1e-10


# --- logarithm base -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
def test_base_conversion(alpha: float) -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(2, 7, 3, generator=g, dtype=F64)
    nats = ri.entropy(x, alpha=alpha, base=E)
    bits = ri.entropy(x, alpha=alpha, base=2)
    assert float(bits) == pytest.approx(float(nats) / math.log(2), rel=1e-12)
    assert float(ri.entropy(x, alpha=alpha)) == float(bits)  # bits by default (the paper's log2)
    assert float(ri.entropy(x, alpha=alpha, base=10)) == pytest.approx(float(nats) / math.log(10), rel=1e-12)
    mi_nats = ri.mutual_information(x, y, alpha=alpha, base=E)
    mi_bits = ri.mutual_information(x, y, alpha=alpha)
    assert float(mi_bits) == pytest.approx(float(mi_nats) / math.log(2), rel=1e-10, abs=1e-14)
    a = ri.gram(x)
    assert float(matrix.entropy(a, alpha=alpha, base=2)) == pytest.approx(float(bits), rel=1e-12)


# --- Gaussian: K_s1 ∘ K_s2 = K_s with 1/s^2 = 1/s1^2 + 1/s2^2 ------------------------------------------


@pytest.mark.parametrize(("alpha", "method"), GRID, ids=GRID_IDS)
def test_gaussian_hadamard_square_halves_the_bandwidth(alpha: float, method: str) -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 2, generator=g, dtype=F64)
    sigma = 0.9
    joint = ri.joint_entropy(x, x, alpha=alpha, kernel="gaussian", sigma=sigma, method=method)
    single = ri.entropy(x, alpha=alpha, kernel="gaussian", sigma=sigma / math.sqrt(2), method=method)
    assert float(joint) == pytest.approx(float(single), abs=1e-10)
    s1, s2 = 0.7, 1.6
    joint = ri.joint_entropy(x, x, alpha=alpha, kernel="gaussian", sigma=(s1, s2), method=method)
    single = ri.entropy(
        x, alpha=alpha, kernel="gaussian", sigma=1.0 / math.sqrt(s1**-2 + s2**-2), method=method
    )
    assert float(joint) == pytest.approx(float(single), abs=1e-10)


# --- alpha = 2 for a non-unit-diagonal kernel (Eq. 9: 2 log tr K - log ||K||_F^2) ------------------------


def test_alpha_two_uses_the_trace_not_n() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(9, 4, generator=g, dtype=F64) * torch.linspace(0.1, 3.0, 9, dtype=F64)[:, None]
    k = x @ x.mT
    expected = 2 * torch.log(torch.trace(k)) - torch.log((k * k).sum())
    for method in ("auto", "eig", "frobenius", "power"):
        s = ri.entropy(x, alpha=2.0, kernel="linear", method=method, base=E)
        assert float(s) == pytest.approx(float(expected), abs=1e-12), method
    # the shortcut sum(K^2)/n^2 would be wrong here (tr K != n)
    wrong = -torch.log((k * k).sum() / 9**2)
    assert abs(float(expected - wrong)) > 0.1


# --- zero rows under cosine: the sample carries no mass ---------------------------------------------------


@pytest.mark.parametrize(("alpha", "method"), GRID, ids=GRID_IDS)
def test_cosine_zero_row_carries_no_mass(alpha: float, method: str) -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(6, 3, generator=g, dtype=F64)
    y = torch.randn(6, 2, generator=g, dtype=F64)
    keep = [0, 1, 3, 5]
    x[[2, 4]] = 0.0
    s = ri.entropy(x, alpha=alpha, method=method)
    assert torch.isfinite(s)
    assert float(s) == pytest.approx(float(ri.entropy(x[keep], alpha=alpha, method=method)), abs=1e-12)
    # in the joint entropy the zero rows of x zero the Hadamard product there too
    joint = ri.joint_entropy(x, y, alpha=alpha, method=method)
    assert float(joint) == pytest.approx(
        float(ri.joint_entropy(x[keep], y[keep], alpha=alpha, method=method)), abs=1e-12
    )
    assert torch.isfinite(ri.mutual_information(x, y, alpha=alpha, method=method))
    # float32 too
    s32 = ri.entropy(x.float(), alpha=alpha, method=method)
    assert float(s32) == pytest.approx(float(s), abs=1e-5)
