"""Gradients: float64 ``gradcheck`` for every route and kernel, repeated eigenvalues, rank deficiency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import renyi_info as ri
from reference import ALPHAS, KERNEL_PARAMS
from renyi_info import matrix

E = math.e
F64 = torch.float64
FINITE_ALPHAS = [a for a in ALPHAS if math.isfinite(a)]
# (alpha, method) pairs covering every route: the spectrum, Frobenius, integer powers, auto
ROUTES = [(a, "eig") for a in ALPHAS] + [(2.0, "frobenius"), (3.0, "power"), (4.0, "power"), (2.0, "auto")]
ROUTE_IDS = [f"alpha={a}-{m}" for a, m in ROUTES]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=_gen(seed), dtype=F64))
    return q


FUNCTIONS = {
    "entropy": lambda x, y, **kw: ri.entropy(x, **kw),
    "joint_entropy": lambda x, y, **kw: ri.joint_entropy(x, y, **kw),
    "mutual_information": lambda x, y, **kw: ri.mutual_information(x, y, **kw),
}


@pytest.mark.parametrize(("alpha", "method"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("kernel", list(KERNEL_PARAMS))
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_gradcheck_features(alpha: float, method: str, kernel: str, name: str) -> None:
    g = _gen(list(FUNCTIONS).index(name) * 10 + list(KERNEL_PARAMS).index(kernel))
    x = torch.randn(5, 3, generator=g, dtype=F64, requires_grad=True)
    y = torch.randn(5, 2, generator=g, dtype=F64, requires_grad=True)
    fn = FUNCTIONS[name]
    kw = {"alpha": alpha, "method": method, "kernel": kernel, **KERNEL_PARAMS[kernel]}
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, **kw), (x, y))


@pytest.mark.parametrize(("alpha", "method"), ROUTES, ids=ROUTE_IDS)
def test_gradcheck_batched_features(alpha: float, method: str) -> None:
    x = torch.randn(2, 2, 3, 2, generator=_gen(1), dtype=F64, requires_grad=True)
    y = torch.randn(2, 2, 3, 1, generator=_gen(2), dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: ri.mutual_information(a, b, alpha=alpha, method=method, kernel="gaussian", sigma=1.0),
        (x, y),
    )


@pytest.mark.parametrize(("alpha", "method"), ROUTES, ids=ROUTE_IDS)
def test_gradcheck_matrix_api(alpha: float, method: str) -> None:
    c = torch.randn(5, 6, generator=_gen(3), dtype=F64, requires_grad=True)
    d = torch.randn(5, 4, generator=_gen(4), dtype=F64, requires_grad=True)
    kw = {"alpha": alpha, "method": method}
    assert torch.autograd.gradcheck(lambda a: matrix.entropy(a @ a.mT, **kw), (c,))
    assert torch.autograd.gradcheck(lambda a, b: matrix.joint_entropy(a @ a.mT, b @ b.mT, **kw), (c, d))
    assert torch.autograd.gradcheck(lambda a, b: matrix.mutual_information(a @ a.mT, b @ b.mT, **kw), (c, d))
    assert torch.autograd.gradcheck(lambda a: ri.gram(a, "cosine"), (c,))


# --- repeated eigenvalues --------------------------------------------------------------------------------


def _analytic_gradient(lam: np.ndarray, q: np.ndarray, alpha: float, scale: float) -> np.ndarray:
    """d S_alpha(K / tr K) / dK (nats) at K = scale * Q diag(lam) Q^T, tr(diag lam) = 1.

    With A = K / tr K and G = dS/dA (alpha/(1-alpha) A^(alpha-1) / tr A^alpha, or -(log A + I) for
    alpha = 1), the chain rule through the trace gives dS/dK = (G - tr(G A) I) / tr K. Both are
    functions of A's spectrum built from the known Q, so repeated eigenvalues pose no problem.
    """
    a = q @ np.diag(lam) @ q.T
    if alpha == 1.0:
        g = -(q @ np.diag(np.log(lam)) @ q.T + np.eye(len(lam)))
    else:
        g = alpha / ((1 - alpha) * np.sum(lam**alpha)) * (q @ np.diag(lam ** (alpha - 1)) @ q.T)
    return (g - np.trace(g @ a) * np.eye(len(lam))) / scale


@pytest.mark.parametrize("alpha", FINITE_ALPHAS)
@pytest.mark.parametrize("lam", [[0.4, 0.2, 0.2, 0.2], [0.3, 0.3, 0.3, 0.1], [0.25] * 4], ids=str)
def test_gradient_at_repeated_eigenvalues_matches_the_closed_form(alpha: float, lam: list[float]) -> None:
    q = _orthogonal(4, 5)
    scale = 2.5
    k = (scale * q @ torch.diag(torch.tensor(lam, dtype=F64)) @ q.mT).detach()
    k = (0.5 * (k + k.mT)).requires_grad_(True)
    expected = _analytic_gradient(np.array(lam), q.numpy(), alpha, scale)
    methods = ["eig", "auto"] + (["frobenius"] if alpha == 2 else []) + (["power"] if alpha == 3 else [])
    for method in methods:
        (grad,) = torch.autograd.grad(matrix.entropy(k, alpha=alpha, method=method, base=E), k)
        np.testing.assert_allclose(grad.numpy(), expected, atol=1e-10, err_msg=method)


def test_alpha_two_gradient_closed_form() -> None:
    """S_2 = 2 log tr K - log ||K||_F^2, so dS_2/dK = 2 I / tr K - 2 K / ||K||_F^2 (any K)."""
    q = _orthogonal(5, 6)
    k = (q @ torch.diag(torch.tensor([3.0, 1.0, 1.0, 1.0, 0.0], dtype=F64)) @ q.mT).detach()
    k = (0.5 * (k + k.mT)).requires_grad_(True)
    expected = 2 * torch.eye(5, dtype=F64) / torch.trace(k) - 2 * k / (k * k).sum()
    for method in ("eig", "frobenius", "power"):
        (grad,) = torch.autograd.grad(matrix.entropy(k, alpha=2.0, method=method, base=E), k)
        torch.testing.assert_close(grad, expected.detach(), atol=1e-10, rtol=0)


@pytest.mark.parametrize(("alpha", "method"), [r for r in ROUTES if math.isfinite(r[0])])
@pytest.mark.parametrize("kernel", ["cosine", "linear"])
def test_gradcheck_at_identity_gram(alpha: float, method: str, kernel: str) -> None:
    """x = I gives A = I/n: every eigenvalue repeated; S is maximal there, so the gradient is 0."""
    x = torch.eye(4, dtype=F64, requires_grad=True)
    f = lambda a: ri.entropy(a, alpha=alpha, method=method, kernel=kernel)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    (grad,) = torch.autograd.grad(f(x), x)
    assert torch.allclose(grad, torch.zeros_like(grad), atol=1e-12)
    # a joint entropy at A = I/n too
    y = torch.eye(4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ri.joint_entropy(a, b, alpha=alpha, method=method), (x, y))


@pytest.mark.parametrize(("alpha", "method"), [r for r in ROUTES if math.isfinite(r[0])])
def test_gradcheck_features_with_repeated_eigenvalues(alpha: float, method: str) -> None:
    """Linear kernel on x = Q diag(3, 1, 1, 1) R: eigenvalues (9, 1, 1, 1)/12, the gradient is not 0."""
    q, r = _orthogonal(4, 7), _orthogonal(4, 8)
    x = (q @ torch.diag(torch.tensor([3.0, 1.0, 1.0, 1.0], dtype=F64)) @ r).requires_grad_(True)
    f = lambda a: ri.entropy(a, alpha=alpha, method=method, kernel="linear")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    (grad,) = torch.autograd.grad(f(x), x)
    assert float(grad.abs().max()) > 1e-3


@pytest.mark.parametrize("method", ["eig", "auto"])
def test_min_entropy_gradient_is_finite_at_a_repeated_maximum(method: str) -> None:
    """S_inf = -log lam_max is not differentiable when lam_max repeats; the gradient must stay finite."""
    for x in (torch.eye(4, dtype=F64), torch.eye(4, dtype=torch.float32)):
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(ri.entropy(x, alpha=math.inf, method=method), x)
        assert torch.isfinite(grad).all()


# --- alpha < 1 (and = 1) on rank-deficient inputs ------------------------------------------------------------


def _dual_entropy(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """S_alpha of the linear Gram x x^T from the (full-rank) d x d matrix x^T x: same non-zero spectrum."""
    c = x.mT @ x
    lam = torch.linalg.eigvalsh(c / torch.trace(c))
    if alpha == 1.0:
        return -(lam * torch.log(lam)).sum()
    return torch.log((lam**alpha).sum()) / (1 - alpha)


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.9, 1.0])
def test_rank_deficient_gradient_for_small_alpha(alpha: float) -> None:
    x = torch.randn(7, 2, generator=_gen(9), dtype=F64, requires_grad=True)  # rank 2 Gram of size 7
    f = lambda a: ri.entropy(a, alpha=alpha, kernel="linear", method="eig", base=E)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    (grad,) = torch.autograd.grad(f(x), x)
    (expected,) = torch.autograd.grad(_dual_entropy(x, alpha), x)
    torch.testing.assert_close(grad, expected, atol=1e-9, rtol=1e-7)
    assert float(f(x.detach())) == pytest.approx(float(_dual_entropy(x.detach(), alpha)), abs=1e-12)
    # cosine on 2-d features: rank 2 as well
    assert torch.autograd.gradcheck(lambda a: ri.entropy(a, alpha=alpha, method="eig"), (x,))
    # a joint entropy and an MI of rank-deficient inputs
    y = torch.randn(7, 1, generator=_gen(10), dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: ri.mutual_information(a, b, alpha=alpha, kernel="linear"), (x, y)
    )


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rank_deficient_matrix_gradient_is_finite(alpha: float, dtype: torch.dtype) -> None:
    g = _gen(11)
    for rank in (1, 2, 5):
        c = torch.randn(8, rank, generator=g, dtype=dtype)
        a = (c @ c.mT).requires_grad_(True)
        s = matrix.entropy(a, alpha=alpha)
        (grad,) = torch.autograd.grad(s, a)
        assert torch.isfinite(s)
        assert torch.isfinite(grad).all(), rank
        x = torch.randn(8, rank, generator=g, dtype=dtype, requires_grad=True)
        for kernel in ("linear", "cosine"):
            (grad,) = torch.autograd.grad(ri.entropy(x, alpha=alpha, kernel=kernel), x)
            assert torch.isfinite(grad).all(), (rank, kernel)


# --- zero rows under cosine -------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cosine_zero_row_gradient(alpha: float, dtype: torch.dtype) -> None:
    """A zero row carries no mass: its gradient is 0 and the others' is that of the remaining samples."""
    x = torch.randn(6, 3, generator=_gen(12), dtype=dtype)
    x[2] = 0.0
    keep = [0, 1, 3, 4, 5]
    x.requires_grad_(True)
    x_kept = x.detach()[keep].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ri.entropy(x, alpha=alpha, method="eig"), x)
    (grad_kept,) = torch.autograd.grad(ri.entropy(x_kept, alpha=alpha, method="eig"), x_kept)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[2], torch.zeros_like(grad[2]))
    tol = 1e-9 if dtype == F64 else 1e-4
    torch.testing.assert_close(grad[keep], grad_kept, atol=tol, rtol=tol)
    y = torch.randn(6, 2, generator=_gen(13), dtype=dtype, requires_grad=True)
    gx, gy = torch.autograd.grad(ri.mutual_information(x, y, alpha=alpha), (x, y))
    assert torch.isfinite(gx).all()
    assert torch.isfinite(gy).all()
    if dtype == F64 and math.isfinite(alpha):
        xd = x.detach().clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda a: ri.entropy(a, alpha=alpha, kernel="linear"), (xd,))
