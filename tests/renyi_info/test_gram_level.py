"""renyi_info.gram_level, the public unchecked layer, equals the checked matrix API and a float64 reference."""

from __future__ import annotations

import math

import pytest
import torch

from renyi_info import gram_level as gl
from renyi_info import matrix

F64 = torch.float64


def _grams(count: int, n: int = 9, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(2, n, 3, generator=g, dtype=F64) for _ in range(count)]
    return [gl.kernel_matrix(x, gl.make_kernel("gaussian", sigma=1.5)) for x in xs]


@pytest.mark.parametrize(
    ("alpha", "method"), [(2.0, "frobenius"), (3.0, "power"), (0.5, "eig"), (1.0, "eig")]
)
def test_gram_level_equals_matrix_api(alpha: float, method: str) -> None:
    a, b, c = _grams(3)
    # the same float64 operations in the same order: agreement to a few ulps of values of order log n
    tol = dict(rtol=1e-12, atol=1e-12)
    e = math.e
    torch.testing.assert_close(
        gl.gram_entropy(a, alpha, method), matrix.entropy(a, alpha=alpha, method=method, base=e), **tol
    )
    torch.testing.assert_close(
        gl.gram_mutual_information(a, b, alpha, method),
        matrix.mutual_information(a, b, alpha=alpha, method=method, base=e),
        **tol,
    )
    torch.testing.assert_close(
        gl.gram_conditional_entropy(a, b, alpha, method),
        matrix.conditional_entropy(a, b, alpha=alpha, method=method, base=e),
        **tol,
    )
    torch.testing.assert_close(
        gl.gram_conditional_mutual_information(a, b, c, alpha, method),
        matrix.conditional_mutual_information(a, b, c, alpha=alpha, method=method, base=e),
        **tol,
    )
    torch.testing.assert_close(
        gl.gram_total_correlation([a, b, c], alpha, method, ["a", "b", "c"]),
        matrix.total_correlation(a, b, c, alpha=alpha, method=method, base=e),
        **tol,
    )


def test_gram_entropy_against_eigenvalues() -> None:
    (k,) = _grams(1, n=12, seed=3)
    lam = torch.linalg.eigvalsh(k / k.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]).clamp_min(0)
    want = torch.log((lam**1.5).sum(-1)) / (1.0 - 1.5)
    # a well-conditioned float64 spectrum of 12 eigenvalues: round-off far below 1e-10
    torch.testing.assert_close(gl.gram_entropy(k, 1.5, "eig"), want, rtol=1e-10, atol=1e-10)
    # units: to_base divides by ln(base)
    torch.testing.assert_close(gl.to_base(want, 2.0), want / math.log(2.0))


def test_resolve_method_and_lanczos_gradient() -> None:
    assert gl.resolve_method("auto", 2.0) == "frobenius"
    assert gl.resolve_method("auto", 3.0) == "power"
    assert gl.resolve_method("auto", 1.5) == "eig"
    (k,) = _grams(1)
    k = k.clone().requires_grad_()
    gl.gram_entropy(k, 2.0, "lanczos").sum().backward()  # (the gradient's values: tests/test_lanczos_grad.py)
    assert k.grad is not None and bool(k.grad.isfinite().all())


def test_zero_trace_is_still_reported() -> None:
    with pytest.raises(ValueError, match="zero trace"):
        gl.gram_entropy(torch.zeros(3, 3), 2.0, "frobenius", "k")
