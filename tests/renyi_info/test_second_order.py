"""Gradients of gradients (``create_graph=True``): the first-order-only routes refuse them with an error that
names the route to use, and that route (``method="eig"``) is differentiable twice, checked by gradgradcheck."""

from __future__ import annotations

import pytest
import torch

import renyi_info
from renyi_info.algorithms import routes
from renyi_info.kernels import make_kernel

F64 = torch.float64


def _x(n: int = 40, d: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64).requires_grad_(True)


def _opts() -> renyi_info.LanczosOptions:
    return renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "quantity",
    [
        lambda x: renyi_info.entropy(
            x, alpha=1.5, kernel="gaussian", sigma=1.0, method="lanczos", lanczos=_opts()
        ),
        lambda x: renyi_info.mutual_information(x, x[:, :1], alpha=1.01, method="lanczos", lanczos=_opts()),
        lambda x: renyi_info.matrix.entropy(renyi_info.gram(x), alpha=0.7, method="lanczos", lanczos=_opts()),
    ],
    ids=["entropy", "mutual_information", "matrix.entropy"],
)
def test_lanczos_refuses_a_gradient_of_its_gradient(quantity) -> None:
    x = _x()
    with pytest.raises(
        RuntimeError, match=r"method='lanczos' has a first-order stochastic gradient only.*method='eig'"
    ):
        torch.autograd.grad(quantity(x), x, create_graph=True)
    # the first-order gradient is unchanged: finite, and the same number on a second call (same generator)
    (g1,) = torch.autograd.grad(quantity(x), x)
    (g2,) = torch.autograd.grad(quantity(x), x)
    assert bool(g1.isfinite().all()) and bool(g1.abs().sum() > 0)
    assert torch.equal(g1, g2)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")
def test_a_penalty_through_backward_create_graph_is_refused_too() -> None:
    x = _x()
    s = renyi_info.entropy(x, alpha=1.5, method="lanczos", lanczos=_opts())
    with pytest.raises(RuntimeError, match="method='eig'"):
        s.backward(create_graph=True)


def test_the_fused_route_refuses_a_gradient_of_its_gradient() -> None:
    x = _x()
    spec = make_kernel("gaussian", sigma=1.0)
    (term,) = routes.entropy_terms([x], [spec], 2.0, "frobenius", [1], ["x"], route="fused")
    with pytest.raises(
        RuntimeError, match=r"fused alpha = 2 route has a first-order gradient only.*method='eig'"
    ):
        torch.autograd.grad(term, x, create_graph=True)


@pytest.mark.parametrize(
    "quantity",
    [
        lambda x: renyi_info.entropy(x, alpha=1.5, kernel="gaussian", sigma=1.0, method="eig"),
        lambda x: renyi_info.entropy(x, alpha=1.0, kernel="cosine", method="eig"),
        lambda x: renyi_info.mutual_information(
            x, x[:, :1] ** 2, alpha=2.0, kernel="gaussian", sigma=1.0, method="eig"
        ),
        lambda x: renyi_info.matrix.entropy(
            renyi_info.gram(x, "gaussian", sigma=1.0), alpha=0.7, method="eig"
        ),
    ],
    ids=["entropy-gaussian", "entropy-cosine-alpha1", "mutual_information", "matrix.entropy"],
)
def test_the_named_route_is_differentiable_twice(quantity) -> None:
    """gradgradcheck compares the analytic second derivative with finite differences of the first, in float64
    at its default tolerances. Eight samples of random features: distinct eigenvalues, so the spectral
    derivatives are smooth at the point checked."""
    x = _x(n=8, d=2, seed=3)
    assert torch.autograd.gradgradcheck(quantity, (x,))
