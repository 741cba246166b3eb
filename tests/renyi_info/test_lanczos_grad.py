"""The stochastic gradient of method="lanczos" (`renyi_info.algorithms.lanczos.gradient.gradient_weight`).

What is checked, against the exact eigen path's autograd gradient (float64):
- with the sketch spanning everything (``deflate >= n``) the estimate is deterministic and its gradient is
  the exact gradient, for entropies, mutual information (mixed kernels) and the matrix API;
- in expectation over seeds (Krylov spaces complete, so that only the probes are random) the mean gradient
  equals the exact one within a statistical bound plus the documented bias of the chain rule through the
  estimated trace;
- with the default options the mean gradient is close to the exact one (the Lanczos truncation bias);
- dtypes, batching, bandwidth rules, labels and grad-mode glue.
"""

from __future__ import annotations

import math

import pytest
import torch

import renyi_info
from renyi_info import matrix as rm

F64 = torch.float64


def _x(n: int, d: int, seed: int = 0, batch: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.randn(*batch, n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _opts(seed: int, **kw: int) -> renyi_info.LanczosOptions:
    # full precision, no early stop: the statements below are about the estimator, not the speed defaults
    fields = {"tol": 0.0, "matvec_dtype": F64, **kw}
    return renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(seed), **fields)


def _grads(fn, inputs: list[torch.Tensor], **method) -> tuple[torch.Tensor, torch.Tensor]:
    """(value, flattened gradient with respect to every input) of ``fn(*inputs, **method)``."""
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    value = fn(*leaves, **method)
    value.sum().backward()
    return value.detach(), torch.cat([t.grad.flatten() for t in leaves])


# every case: (name, function of the inputs, inputs, alpha)
def _cases():
    x, y = _x(14, 3, seed=1), _x(14, 2, seed=2)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3])
    gauss = {"kernel": "gaussian", "sigma": 1.5}
    k1 = renyi_info.gram(x, kernel="gaussian", sigma=2.0)
    # full rank (a degree-2 polynomial Gram of 5-d features has rank up to 21 >= n): at alpha -> 1+ the
    # gradient along a null space depends on the round-off eigenvalues there (g' jumps from ~30 at 1e-17 to
    # 1 / (alpha - 1) at 0), which no two computations share
    k2 = renyi_info.gram(_x(14, 5, seed=3), kernel="polynomial", degree=2, coef=1.0)
    return [
        ("entropy gaussian", lambda a, **m: renyi_info.entropy(a, alpha=m.pop("alpha"), **gauss, **m), [x]),
        (
            "entropy polynomial",
            lambda a, **m: renyi_info.entropy(
                a, alpha=m.pop("alpha"), kernel="polynomial", degree=2, coef=1.0, **m
            ),
            [x],
        ),
        (
            "MI gaussian x linear",
            lambda a, b, **m: renyi_info.mutual_information(
                a, b, alpha=m.pop("alpha"), kernel=["gaussian", "linear"], sigma=[1.5, None], **m
            ),
            [x, y],
        ),
        (
            "joint entropy with labels",
            lambda a, **m: renyi_info.joint_entropy(
                a, labels, alpha=m.pop("alpha"), kernel=["cosine", "label"], **m
            ),
            [x],
        ),
        ("matrix entropy", lambda a, **m: rm.entropy(a, alpha=m.pop("alpha"), **m), [k1]),
        ("matrix MI", lambda a, b, **m: rm.mutual_information(a, b, alpha=m.pop("alpha"), **m), [k1, k2]),
    ]


CASES = _cases()


@pytest.mark.parametrize("alpha", [0.7, 1.0, 1.01, 2.5, math.inf])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_complete_sketch_gives_the_exact_gradient(case, alpha: float) -> None:
    """deflate >= n: Q spans the whole space, the probes are projected to 0, nothing is random."""
    _, fn, inputs = case
    n = inputs[0].shape[-2]
    _, exact = _grads(fn, inputs, alpha=alpha)
    _, approx = _grads(
        fn, inputs, alpha=alpha, method="lanczos", lanczos=_opts(0, deflate=n, steps=n, probes=2)
    )
    # float64 round-off of an eigendecomposition and of n Lanczos runs on near-eigenvectors, amplified by
    # |g'| <= |log lambda_min| ~ 10 on these well-conditioned Grams (smallest eigenvalue ~ 1e-3 of the largest)
    torch.testing.assert_close(approx, exact, rtol=1e-6, atol=1e-7 * float(exact.abs().max()))


def _bias_bound(values: torch.Tensor, grads: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""The bias of $S'(\hat T)\nabla\hat T$ (delta method, docs/guides/lanczos.md "Gradients"):
    $|\alpha-1|\,\mathrm{sd}(\hat S)\,\mathrm{sd}(\nabla\hat S) + (\alpha-1)^2\mathrm{var}(\hat S)|\nabla S|$,
    with a factor 2 for the higher-order terms; MI adds the bounds of its three entropies, which the
    sample spread of the MI itself stands in for."""
    sd_s = values.std()
    return 2.0 * (abs(alpha - 1.0) * sd_s * grads.std(0) + (alpha - 1.0) ** 2 * sd_s**2 * grads.mean(0).abs())


@pytest.mark.parametrize("alpha", [0.7, 1.0, 2.5])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_unbiased_in_expectation(case, alpha: float) -> None:
    """Complete Krylov spaces (steps = n), a partial sketch and few probes: the probes are the only
    randomness. Over R seeds the mean gradient must be within 5 standard errors of the exact gradient in
    every coordinate (at most a few hundred coordinates: a false alarm has probability < 1e-3), plus the
    documented bias of the chain rule through the estimated trace (zero at alpha = 1)."""
    _, fn, inputs = case
    n = inputs[0].shape[-2]
    _, exact = _grads(fn, inputs, alpha=alpha)
    runs = 200
    samples = [
        _grads(fn, inputs, alpha=alpha, method="lanczos", lanczos=_opts(seed, deflate=2, steps=n, probes=6))
        for seed in range(runs)
    ]
    values = torch.stack([v.sum() for v, _ in samples])
    grads = torch.stack([g for _, g in samples])
    error = (grads.mean(0) - exact).abs()
    allowed = 5.0 * grads.std(0) / math.sqrt(runs) + _bias_bound(values, grads, alpha)
    allowed = allowed + 1e-9 * float(exact.abs().max())  # coordinates that are exactly zero in both
    assert bool((error <= allowed).all()), float((error / allowed).max())


@pytest.mark.parametrize("alpha", [1.01, 2.0])
def test_default_options_match_the_exact_gradient_in_mean(alpha: float) -> None:
    """Default options (early stop, float32 mat-vecs, 20 steps < n): the Lanczos approximation of
    g'(A) z adds a truncation bias. The mean over R seeds must be within 3 of its standard errors (in norm)
    plus 5 % of the gradient's norm: the truncation bias the defaults allow on this smooth Gaussian Gram."""
    x = _x(160, 3, seed=4)
    kw = {"alpha": alpha, "kernel": "gaussian", "sigma": 1.0}
    _, exact = _grads(renyi_info.entropy, [x], **kw)
    runs = 24
    grads = torch.stack(
        [
            _grads(
                renyi_info.entropy,
                [x],
                **kw,
                method="lanczos",
                lanczos=renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(s)),
            )[1]
            for s in range(runs)
        ]
    )
    noise = float((grads - grads.mean(0)).norm(dim=1).mean()) / math.sqrt(runs)
    error = float((grads.mean(0) - exact).norm())
    assert error <= 3.0 * noise + 0.05 * float(exact.norm()), (error, noise, float(exact.norm()))


def test_float32_batched_and_rules() -> None:
    """float32 inputs get float32 gradients; batch entries are independent; sigma rules are constants (as on
    the exact path); an input that does not enter the quantity gets a zero gradient."""
    x = _x(40, 3, batch=(2,)).float().requires_grad_(True)
    s = renyi_info.entropy(x, alpha=1.5, kernel="gaussian", sigma="median", method="lanczos")
    s.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and bool(x.grad.isfinite().all())
    # a batch entry's gradient depends only on its own value
    x.grad = None
    renyi_info.entropy(x, alpha=1.5, kernel="gaussian", sigma="median", method="lanczos")[0].backward()
    assert x.grad is not None and float(x.grad[1].abs().max()) == 0.0 and float(x.grad[0].abs().max()) > 0


def test_extreme_scales_give_finite_gradients() -> None:
    """Features at 1e-150 and 1e150 (cosine and gaussian with a matching sigma) are the same Grams as at 1."""
    base = _x(30, 3, seed=5)
    ref = None
    for scale in (1e-150, 1.0, 1e150):
        kw = {"alpha": 1.3, "kernel": "gaussian", "sigma": 1.5 * scale, "method": "lanczos"}
        _, g = _grads(renyi_info.entropy, [base * scale], **kw, lanczos=_opts(0))
        assert bool(g.isfinite().all())
        g = g * scale  # d/dx of a function of x / scale
        if ref is None:
            ref = g
        # the same Gram up to the rounding of x * scale / sigma: relative 1e-12 of the gradient
        torch.testing.assert_close(g, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))
