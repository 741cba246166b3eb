"""A sequence of orders: one value per order from one eigendecomposition, equal to one call per order."""

from __future__ import annotations

import math

import pytest
import torch

import renyi_info as ri
from renyi_info import matrix
from renyi_info.algorithms import exact

ALPHAS = [0.3, 0.5, 1.0 - 1e-9, 1.0, 1.5, 2.0, 3.0, 10.0, math.inf]


def _x(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("kernel", ["linear", "cosine", "gaussian"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_entropy_sweep_equals_one_call_per_order(kernel: str, dtype: torch.dtype) -> None:
    x = _x(3, 20, 5, dtype=dtype)
    kw = {"sigma": 2.0} if kernel == "gaussian" else {}
    got = ri.entropy(x, alpha=ALPHAS, kernel=kernel, **kw)
    assert got.shape == (3, len(ALPHAS)) and got.dtype == dtype
    for i, a in enumerate(ALPHAS):
        want = ri.entropy(x, alpha=a, kernel=kernel, method="eig", compute_dtype=torch.float64, **kw)
        # the sweep runs in float64 (its smallest order is <= 1), like the float64 call: the same spectrum, and
        # the result rounded once to the input's dtype (one float32 ulp, 6e-8 relative)
        tol = 1.2e-7 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(got[..., i], want.to(dtype), rtol=tol, atol=tol)


@pytest.mark.parametrize("alpha", [[2.0, 3.0], (0.5,), torch.tensor([0.5, 2.0], dtype=torch.float64)])
def test_sequence_kinds(alpha: object) -> None:
    x = _x(10, 4, dtype=torch.float32)
    got = ri.entropy(x, alpha=alpha, kernel="linear")
    orders = [float(a) for a in alpha]  # type: ignore[union-attr]
    assert got.shape == (len(orders),) and got.dtype == torch.float32  # a tensor of orders is not an input
    want = torch.stack([ri.entropy(x, alpha=a, kernel="linear", method="eig") for a in orders])
    # alpha > 1 only (first case): float32 spectrum like the single calls; else float64
    torch.testing.assert_close(got, want, rtol=2e-6, atol=2e-6)


def test_one_eigendecomposition_serves_every_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = exact.eigvalsh

    def spy(a: torch.Tensor) -> torch.Tensor:
        calls.append(a.shape)
        return real(a)

    monkeypatch.setattr(exact, "eigvalsh", spy)
    ri.entropy(_x(2, 12, 30), alpha=ALPHAS, kernel="linear")
    assert len(calls) == 1


def test_joint_entropy_and_mutual_information_sweeps() -> None:
    x, y = _x(2, 16, 3, seed=1), _x(2, 16, 2, seed=2)
    orders = [0.5, 1.0, 2.0, 4.0]
    mi = ri.mutual_information(x, y, alpha=orders, kernel="gaussian", sigma=1.0)
    je = ri.joint_entropy(x, y, alpha=orders, kernel="gaussian", sigma=1.0)
    mm = matrix.entropy(ri.gram(x, "linear"), alpha=orders)
    for i, a in enumerate(orders):
        kw = {"alpha": a, "kernel": "gaussian", "sigma": 1.0, "method": "eig"}
        torch.testing.assert_close(mi[..., i], ri.mutual_information(x, y, **kw), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(je[..., i], ri.joint_entropy(x, y, **kw), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(mm[..., i], matrix.entropy(ri.gram(x, "linear"), alpha=a, method="eig"))


def test_sweep_gradient_matches_per_order_gradients() -> None:
    x = _x(8, 3, seed=3).requires_grad_()
    orders = [0.7, 2.0]
    (g_sweep,) = torch.autograd.grad(ri.entropy(x, alpha=orders, kernel="linear").sum(), x)
    g_each = sum(
        torch.autograd.grad(ri.entropy(x, alpha=a, kernel="linear", method="eig"), x)[0] for a in orders
    )
    torch.testing.assert_close(g_sweep, g_each)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "lanczos"}, ValueError, r"method='lanczos' takes a single alpha.*'eig'"),
        ({"method": "frobenius"}, ValueError, r"one order at a time.*'eig'"),
        ({"method": "power"}, ValueError, r"one order at a time"),
        ({"method": "nope"}, ValueError, r"method must be one of"),
    ],
)
def test_sweep_refusals(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ri.entropy(_x(6, 2), alpha=[2.0, 3.0], **kwargs)


def test_bad_sequences_are_refused() -> None:
    x = _x(6, 2)
    with pytest.raises(ValueError, match="empty sequence"):
        ri.entropy(x, alpha=[])
    with pytest.raises(ValueError, match=r"alpha must be > 0"):
        ri.entropy(x, alpha=[1.0, -1.0])
    with pytest.raises(TypeError, match=r"1-D sequence"):
        ri.entropy(x, alpha=torch.ones(2, 2))
    with pytest.raises(TypeError, match=r"a sequence of orders .* is accepted by entropy"):
        ri.conditional_entropy(x, x, alpha=[1.0, 2.0])
