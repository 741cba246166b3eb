"""Dtypes (half inputs computed in float32, float64 kept, ``compute_dtype``), CUDA, ``torch.compile``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference as ref
import renyi_info as ri
from reference import ALPHAS, KERNEL_PARAMS
from renyi_info import matrix

E = math.e
HALF = [torch.float16, torch.bfloat16]


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 6, 4, generator=g), torch.randn(3, 6, 2, generator=g)


def _calls(x: torch.Tensor, y: torch.Tensor, alpha: float, **kw: object) -> dict[str, torch.Tensor]:
    """Every public entry point on the same inputs."""
    return {
        "entropy": ri.entropy(x, alpha=alpha, **kw),
        "joint_entropy": ri.joint_entropy(x, y, alpha=alpha, **kw),
        "mutual_information": ri.mutual_information(x, y, alpha=alpha, **kw),
        "gram": ri.gram(x, **kw),
        "matrix.entropy": matrix.entropy(
            ri.gram(x, **kw), alpha=alpha, compute_dtype=kw.get("compute_dtype")
        ),
    }


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("kernel", list(KERNEL_PARAMS))
def test_half_inputs_are_computed_in_float32(dtype: torch.dtype, alpha: float, kernel: str) -> None:
    x, y = _data()
    xh, yh = x.to(dtype), y.to(dtype)
    kw = {"kernel": kernel, **KERNEL_PARAMS[kernel]}
    got = _calls(xh, yh, alpha, **kw)
    upcast = _calls(xh.float(), yh.float(), alpha, **kw)  # the same values, given in float32
    full = _calls(x, y, alpha, **kw)  # the unrounded float32 inputs
    tol = 2e-2 if dtype == torch.bfloat16 else 3e-3
    for name, value in got.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value).all(), name
        torch.testing.assert_close(value, upcast[name], atol=1e-5, rtol=1e-5, msg=name)
        torch.testing.assert_close(value, full[name], atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_matrix_inputs(dtype: torch.dtype) -> None:
    x, y = _data(1)
    a, b = ri.gram(x), ri.gram(y)
    for fn, args in (
        (matrix.entropy, (a,)),
        (matrix.mutual_information, (a, b)),
        (matrix.joint_entropy, (a, b)),
    ):
        got = fn(*(m.to(dtype) for m in args), alpha=1.5)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, fn(*(m.to(dtype).float() for m in args), alpha=1.5))
    assert matrix.normalize(a.to(dtype)).dtype == dtype  # normalize keeps the input's dtype (documented)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_input_gradients(dtype: torch.dtype) -> None:
    x, y = _data(2)
    xh = x.to(dtype).requires_grad_(True)
    yh = y.to(dtype).requires_grad_(True)
    gx, gy = torch.autograd.grad(ri.mutual_information(xh, yh, alpha=1.0).sum(), (xh, yh))
    assert gx.dtype == dtype and gy.dtype == dtype
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    xf = xh.detach().float().requires_grad_(True)
    yf = yh.detach().float().requires_grad_(True)
    ex, _ = torch.autograd.grad(ri.mutual_information(xf, yf, alpha=1.0).sum(), (xf, yf))
    torch.testing.assert_close(gx.float(), ex, atol=1e-2, rtol=2e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_float_inputs_keep_their_dtype(dtype: torch.dtype) -> None:
    x, y = _data(3)
    for alpha in ALPHAS:
        for name, value in _calls(x.to(dtype), y.to(dtype), alpha).items():
            assert value.dtype == dtype, name


def test_mixed_dtypes_promote() -> None:
    x, y = _data(4)
    assert ri.mutual_information(x, y.double()).dtype == torch.float64
    assert ri.joint_entropy(x.half(), y.bfloat16()).dtype == torch.float32
    assert matrix.mutual_information(ri.gram(x).half(), ri.gram(y).double()).dtype == torch.float64


@pytest.mark.parametrize("alpha", ALPHAS)
def test_compute_dtype_float64_on_float32_input(alpha: float) -> None:
    x, y = _data(5)
    got = _calls(x, y, alpha, compute_dtype=torch.float64)
    expected = _calls(x.double(), y.double(), alpha)
    for name, value in got.items():
        assert value.dtype == torch.float64, name
        torch.testing.assert_close(value, expected[name], atol=1e-12, rtol=1e-12, msg=name)
    # half inputs too
    got = ri.entropy(x.half(), alpha=alpha, compute_dtype=torch.float64)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, ri.entropy(x.half().double(), alpha=alpha))
    # and down: float64 input computed in float32
    assert ri.entropy(x.double(), alpha=alpha, compute_dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_compute_dtype_float64_is_exact_on_a_rank_deficient_float32_input(alpha: float) -> None:
    """float32 features, float64 compute: agrees with the float64 reference on the same values."""
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(6))  # Gram of rank 3, size 40
    expected = ref.entropy(x.double().numpy(), alpha, "linear")
    got = ri.entropy(x, alpha=alpha, kernel="linear", compute_dtype=torch.float64, base=E)
    assert float(got) == pytest.approx(expected, abs=1e-12)
    got32 = ri.entropy(x, alpha=alpha, kernel="linear", base=E)
    assert float(got32) == pytest.approx(expected, abs=1e-2)


def test_compute_dtype_gradient_flows_to_float32_input() -> None:
    x, _ = _data(7)
    x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(ri.entropy(x, alpha=0.5, compute_dtype=torch.float64).sum(), x)
    assert grad.dtype == torch.float32
    assert torch.isfinite(grad).all()


# --- CUDA ------------------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kernel", list(KERNEL_PARAMS))
def test_cuda_matches_cpu(dtype: torch.dtype, kernel: str) -> None:
    x, y = _data(8)
    x, y = x.to(dtype), y.to(dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    kw = {"kernel": kernel, **KERNEL_PARAMS[kernel]}
    for alpha in ALPHAS:
        cpu = _calls(x, y, alpha, **kw)
        gpu = _calls(x.cuda(), y.cuda(), alpha, **kw)
        for name, value in gpu.items():
            assert value.device.type == "cuda", name
            assert value.dtype == dtype, name
            np.testing.assert_allclose(
                value.cpu().numpy(), cpu[name].numpy(), atol=tol, rtol=tol, err_msg=name
            )


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("method", ["eig", "frobenius", "power", "auto"])
def test_cuda_gradients_match_cpu(method: str) -> None:
    x, y = _data(9)
    alpha = 2.0
    grads = []
    for device in ("cpu", "cuda"):
        xd = x.double().to(device).requires_grad_(True)
        yd = y.double().to(device).requires_grad_(True)
        mi = ri.mutual_information(xd, yd, alpha=alpha, method=method).sum()
        grads.append([g.cpu() for g in torch.autograd.grad(mi, (xd, yd))])
    for g_cpu, g_gpu in zip(*grads):
        torch.testing.assert_close(g_gpu, g_cpu, atol=1e-10, rtol=1e-8)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_cuda_half_inputs(dtype: torch.dtype) -> None:
    x, y = _data(10)
    for alpha in ALPHAS:
        gpu = ri.mutual_information(x.to(dtype).cuda(), y.to(dtype).cuda(), alpha=alpha)
        cpu = ri.mutual_information(x.to(dtype), y.to(dtype), alpha=alpha)
        assert gpu.dtype == torch.float32
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.cuda
@cuda
def test_cuda_empty_batch_and_errors() -> None:
    x = torch.randn(0, 5, 3, device="cuda")
    assert ri.entropy(x).shape == (0,)
    with pytest.raises(ValueError, match="non-finite"):
        ri.entropy(torch.full((4, 2), math.nan, device="cuda"))


# --- torch.compile -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason="torch.compile is not supported here")
def test_torch_compile_smoke() -> None:
    """Graph capture of :func:`renyi_info.entropy` (``aot_eager``: no C++ toolchain, a second or two)."""
    torch._dynamo.reset()
    x, _ = _data(11)

    def loss(a: torch.Tensor) -> torch.Tensor:
        return ri.entropy(a, alpha=1.5).sum()

    compiled = torch.compile(loss, backend="aot_eager")
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    out = compiled(xa)
    expected = loss(xb)
    torch.testing.assert_close(out, expected)
    (g_compiled,) = torch.autograd.grad(out, xa)
    (g_eager,) = torch.autograd.grad(expected, xb)
    torch.testing.assert_close(g_compiled, g_eager)
