"""The one pass over a large input (finite check + scale) and the batch-parallel eigendecomposition."""

from __future__ import annotations

import math

import pytest
import torch

import renyi_info as ri
from renyi_info._validation import finite_abs_max
from renyi_info.algorithms import exact
from renyi_info.kernels import condition_features, make_kernel


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [(0, 0, 0), (2, 17, 5), (3, 63, 31)])
def test_every_non_finite_entry_is_found_by_the_scan(bad: float, where: tuple[int, int, int]) -> None:
    x = torch.randn(4, 64, 32, generator=torch.Generator().manual_seed(0))
    x[where] = bad
    with pytest.raises(ValueError, match=r"x contains 1 non-finite value"):
        finite_abs_max("x", x)
    with pytest.raises(ValueError, match=r"x contains 1 non-finite value"):
        ri.entropy(x, alpha=1.0, kernel="linear")


def test_scan_is_the_largest_absolute_entry() -> None:
    x = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x[1, 2, 3] = -50.0
    assert torch.equal(finite_abs_max("x", x), x.abs().amax((-2, -1)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("power", [-60, -20, 0, 20, 60])
def test_power_of_two_scaling_is_exact(dtype: torch.dtype, power: int) -> None:
    """Scaled by 2^k, the features give the same entropy to the last bit wherever the Gram stays in range."""
    if dtype == torch.float32 and abs(power) > 30:
        power = 30 * (1 if power > 0 else -1)
    x = torch.randn(3, 24, 16, generator=torch.Generator().manual_seed(2), dtype=dtype)
    y = x * 2.0**power
    spec = make_kernel("linear")
    cx, cy = condition_features("x", x, spec, dtype), condition_features("x", y, spec, dtype)
    # the conditioned features differ by an exact power of two per batch entry
    ratio = cy / cx
    assert bool((ratio == ratio[..., :1, :1]).all())
    for alpha in (0.5, 1.0, 2.0, 3.0):
        assert torch.equal(
            ri.entropy(x, alpha=alpha, kernel="linear"), ri.entropy(y, alpha=alpha, kernel="linear")
        )


def test_float32_features_near_overflow_are_scaled() -> None:
    x = torch.randn(2, 40, 8, generator=torch.Generator().manual_seed(3))
    big = x * 1e30  # squares overflow float32: must be rescaled before the Gram
    for alpha in (1.0, 2.0):
        want = ri.entropy(x.double(), alpha=alpha, kernel="linear")
        got = ri.entropy(big, alpha=alpha, kernel="linear")
        assert bool(torch.isfinite(got).all())
        # float32 rounding of the Gram: relative 1e-5 covers n * eps at these sizes
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_eigvalsh_of_a_batch_equals_lapack_per_matrix() -> None:
    a = torch.randn(9, 50, 30, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    g = a @ a.mT
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = exact.eigvalsh(g.reshape(3, 3, 50, 50))
        assert torch.get_num_threads() == 2  # the caller's setting is left as it was
    finally:
        torch.set_num_threads(threads)
    want = torch.stack([torch.linalg.eigvalsh(m) for m in g]).reshape(3, 3, 50)
    assert torch.equal(got, want)


def test_gradient_is_unchanged_by_the_data_pass() -> None:
    x = torch.randn(
        2, 10, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(
        lambda t: ri.entropy(t * 3e10, alpha=1.0, kernel="linear", base=math.e), (x,)
    )
