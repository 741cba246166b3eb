"""The one pass over a large input (finite check + scale) and the batch-parallel eigendecomposition."""

from __future__ import annotations

import math
import multiprocessing
import os

import numpy as np
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


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e-40], ids=["overflow", "underflow", "subnormal"])
def test_float32_features_near_overflow_are_scaled(scale: float) -> None:
    x = torch.randn(2, 40, 8, generator=torch.Generator().manual_seed(3))
    big = x * scale  # squares overflow or underflow float32: must be rescaled before the Gram
    for alpha in (1.0, 2.0):
        want = ri.entropy(x.double(), alpha=alpha, kernel="linear")
        got = ri.entropy(big, alpha=alpha, kernel="linear")
        assert bool(torch.isfinite(got).all())
        # float32 rounding of the Gram: relative 1e-5 covers n * eps at these sizes; subnormal tokens
        # (1e-40: steps of 2^-149, 1e-5 of their size) carry that much rounding themselves
        torch.testing.assert_close(got.double(), want, rtol=1e-4 if scale < 1e-38 else 1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", ["linear", "cosine"])
@pytest.mark.parametrize("scale", [1e-310, 2.0**-1040, 1e300], ids=["subnormal", "deep-subnormal", "huge"])
def test_float64_features_near_the_ends_of_float64_are_scaled(scale: float, kernel: str) -> None:
    """Subnormal float64 features need a scale of up to 2^1074, beyond float64's range (it was applied as
    one factor: inf, and a NaN entropy); applied as two factors it is exact."""
    x = torch.randn(2, 40, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    want = ri.entropy(x, alpha=[0.5, 1.0, 2.0], kernel=kernel)
    got = ri.entropy(x * scale, alpha=[0.5, 1.0, 2.0], kernel=kernel)
    assert bool(torch.isfinite(got).all())
    # the features times `scale` carry their own rounding: 2^-1040 leaves 34 significant bits (1e-10
    # relative), the Gram and spectrum add n * eps_64
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("scale", [1e30, 1e-30], ids=["squares-overflow", "squares-underflow"])
@pytest.mark.parametrize("kernel", ["linear", "polynomial"])
def test_float32_matvecs_of_float64_features_out_of_float32_range_are_an_error(
    scale: float, kernel: str
) -> None:
    """Float64 features near 1e30 (or 1e-30) are in float64's range, so they are not rescaled, and cast to
    float32 they are finite: but their Gram entries (1e60, 1e-60) are not, and explicit float32 mat-vecs
    returned NaN (or a zero-trace error). It is an error naming the option to change."""
    x = torch.randn(2, 30, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    opts = ri.LanczosOptions(probes=4, steps=10, matvec_dtype=torch.float32)
    with pytest.raises(ValueError, match=r"float32.*matvec_dtype"):
        ri.entropy(x * scale, alpha=1.0, kernel=kernel, method="lanczos", lanczos=opts)
    ok = ri.entropy(x, alpha=1.0, kernel=kernel, method="lanczos", lanczos=opts)  # in range: no error
    assert bool(torch.isfinite(ok).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_eigvalsh_of_a_batch_equals_lapack_per_matrix(dtype: torch.dtype, threads: int, monkeypatch) -> None:
    monkeypatch.setattr(exact, "SPREAD_MIN_WORK", 0)  # small matrices take the spread route too
    calls = []
    numpy_eigvalsh = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda m: calls.append(len(m)) or numpy_eigvalsh(m))
    a = torch.randn(7, 50, 30, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    g = (a @ a.mT).to(dtype)
    batch = g.reshape(7, 1, 50, 50).transpose(0, 1)  # (1, 7, 50, 50), not contiguous in its batch axes
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = exact.eigvalsh(batch)
        assert torch.get_num_threads() == threads  # the caller's setting is left as it was
    finally:
        torch.set_num_threads(before)
    want = torch.stack([torch.linalg.eigvalsh(m) for m in g])[None]
    assert got.shape == (1, 7, 50) and got.dtype == dtype
    # with several threads the 7 matrices were spread over them (NumPy's LAPACK), else one PyTorch call
    assert sorted(calls) == (
        [] if threads == 1 else sorted(len(p) for p in np.array_split(range(7), threads))
    )
    # both are LAPACK's backward-stable syevd (PyTorch's, or NumPy's on the spread route): each eigenvalue
    # within a small multiple of n eps ||A||_2 of the other's
    bound = 10 * 50 * torch.finfo(dtype).eps * float(want.abs().amax())
    torch.testing.assert_close(got, want, rtol=0.0, atol=bound)
    assert bool((got[..., 1:] >= got[..., :-1]).all())  # ascending, as torch.linalg.eigvalsh


def test_eigvalsh_spread_route_restores_the_blas_threads_and_keeps_gradients(monkeypatch) -> None:
    monkeypatch.setattr(exact, "SPREAD_MIN_WORK", 0)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    g = torch.randn(4, 20, 20, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    g = g @ g.mT

    def blas_threads() -> list[int]:  # PyTorch's own OpenMP threads follow torch.set_num_threads: left out
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        exact.eigvalsh(g)
        after = blas_threads()
        leaf = g.clone().requires_grad_()
        exact.eigvalsh(leaf).sum().backward()  # needs a gradient: PyTorch's own route
    finally:
        torch.set_num_threads(threads)
    assert after == before  # the one-thread BLAS limit is lifted when the call returns
    # d(sum of eigenvalues)/dA = d tr(A)/dA = I
    torch.testing.assert_close(leaf.grad, torch.eye(20, dtype=torch.float64).expand(4, 20, 20))


def test_gradient_is_unchanged_by_the_data_pass() -> None:
    x = torch.randn(
        2, 10, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(
        lambda t: ri.entropy(t * 3e10, alpha=1.0, kernel="linear", base=math.e), (x,)
    )


def _eigvalsh_in_child(queue) -> None:  # module level: a multiprocessing target
    torch.set_num_threads(2)
    g = torch.eye(30, dtype=torch.float64).expand(4, 30, 30) * 2.0
    queue.put(float(exact.eigvalsh(g).sum()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_eigvalsh_spread_route_works_in_a_forked_child(monkeypatch) -> None:
    """A DataLoader worker is a forked child: the parent's pool has no threads there, and must not be used."""
    monkeypatch.setattr(exact, "SPREAD_MIN_WORK", 0)  # the child inherits the setting
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        exact.eigvalsh(torch.eye(30, dtype=torch.float64).expand(4, 30, 30))  # the parent's pool now exists
    finally:
        torch.set_num_threads(threads)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_eigvalsh_in_child, args=(queue,))
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
        pytest.fail("exact.eigvalsh hung in a forked child")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == pytest.approx(4 * 30 * 2.0)  # the trace of 4 matrices 2 I
