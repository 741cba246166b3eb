"""A Triton kernel that fails to compile or launch falls back to the PyTorch tiles with one warning.

No GPU is needed: the automatic choice of Triton is forced and the kernels are replaced by ones that raise,
as a compile error (``triton.compiler.errors.CompilationError``) or a launch failure would in a user's loop.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from renyi_info.algorithms import fused
from renyi_info.kernels import make_kernel

# The module whose kernels are replaced; importing it needs triton (torch's Linux wheels bring it).
triton_tiles = pytest.importorskip("renyi_info.algorithms.triton_tiles", reason="needs triton")

F64 = torch.float64
SPECS = [make_kernel("gaussian", sigma=1.5), make_kernel("cosine")]
MASKS = [0b01, 0b10, 0b11]


def _inputs(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 9, d, generator=g, dtype=F64, requires_grad=True) for d in (3, 4)]


def _value_and_grads(backend: str) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    xs = _inputs()
    out = fused.frobenius_sums(xs, SPECS, MASKS, backend=backend)  # type: ignore[arg-type]
    return out.detach(), torch.autograd.grad(out.sum(), xs)


def _broken(*args, **kwargs):
    raise RuntimeError("simulated: PTX compilation failed")


@pytest.fixture
def auto_prefers_triton(monkeypatch):
    """ "auto" chooses Triton (as on a float32 CUDA tensor), with a fresh failure record."""
    monkeypatch.setattr(fused, "_triton_failure", [])
    monkeypatch.setattr(fused, "_auto_prefers_triton", lambda device, dtype, count: not fused._triton_failure)


@pytest.mark.parametrize("broken", ["forward", "backward"])
def test_failed_kernel_falls_back_with_one_warning(monkeypatch, auto_prefers_triton, broken):
    want, want_grads = _value_and_grads("torch")
    if broken == "forward":
        monkeypatch.setattr(triton_tiles, "forward", _broken)
    else:  # a forward that works (the PyTorch tiles stand in for it) and a backward that fails
        monkeypatch.setattr(
            triton_tiles,
            "forward",
            lambda xs, kernels, masks, precision: fused.torch_forward(xs, kernels, masks, 4, 4),
        )
        monkeypatch.setattr(triton_tiles, "backward", _broken)
    with pytest.warns(RuntimeWarning, match="failed to compile or launch.*simulated: PTX") as record:
        got, got_grads = _value_and_grads("auto")
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    # Same arithmetic up to tile order: float64 sums of 9 x 9 products agree to a few ulps.
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    # The failure is remembered: later automatic calls use PyTorch directly, silently.
    assert fused.resolve_backend("auto", torch.device("cpu"), 2) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = _value_and_grads("auto")
    torch.testing.assert_close(again, want, rtol=1e-12, atol=0)


def test_explicit_triton_backend_raises_the_kernel_error(monkeypatch, auto_prefers_triton):
    monkeypatch.setattr(triton_tiles, "forward", _broken)
    with pytest.raises(RuntimeError, match="simulated: PTX"):
        fused.frobenius_sums(_inputs(), SPECS, MASKS, backend="triton")
    assert fused._triton_failure == []  # an explicit choice never disables "auto"


def test_out_of_memory_is_not_hidden_by_the_fallback(monkeypatch, auto_prefers_triton):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("simulated: CUDA out of memory")

    monkeypatch.setattr(triton_tiles, "forward", oom)
    with pytest.raises(torch.OutOfMemoryError):
        fused.frobenius_sums(_inputs(), SPECS, MASKS, backend="auto")
    assert fused._triton_failure == []
