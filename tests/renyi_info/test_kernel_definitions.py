"""The kernel definitions (`renyi_info.kernels.KernelSpec` subclasses): every part a route asks a kernel for
agrees with its Gram, for every registered kernel, and a kernel added by one definition alone works on every
route (gram, fused, Lanczos) and in gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import renyi_info
from renyi_info import kernels
from renyi_info.algorithms.fused import frobenius_sums
from renyi_info.algorithms.lanczos.operators import FeatureOperator
from renyi_info.kernels import TILE_POLYNOMIAL, KernelSpec, TileKernel, make_kernel, normalize_rows

F64 = torch.float64

#: One spec per registered kernel, with parameters where it takes some.
SPECS = {
    "cosine": {},
    "linear": {},
    "polynomial": {"degree": 3, "coef": 0.5},
    "gaussian": {"sigma": 1.3},
    "label": {},
}


def _inputs(name: str, n: int = 23, d: int = 4, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if kernels.KERNEL_TYPES[name].takes_labels:
        return torch.randint(0, 3, (batch, n, 1), generator=g).to(F64)  # canonical label codes
    return torch.randn(batch, n, d, generator=g, dtype=F64)


def test_the_table_covers_every_registered_kernel() -> None:
    assert set(SPECS) == set(kernels.KERNEL_TYPES) == set(kernels.KERNELS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_definition_agrees_with_its_gram(name: str) -> None:
    """Diagonal, fused tiles and Lanczos operands of a kernel give its Gram's diagonal, ||K||_F^2 and K z.

    All in float64 on O(1) entries: the three are sums of at most n^2 = 529 products, so 1e-12 relative is
    far above their round-off (~n eps) and far below any real disagreement.
    """
    spec = make_kernel(name, **SPECS[name])
    x = _inputs(name)
    k = spec.gram(x)
    torch.testing.assert_close(spec.diagonal(x), k.diagonal(dim1=-2, dim2=-1), rtol=1e-12, atol=0)
    fro = frobenius_sums([x], [spec], [0b1], backend="torch")[..., 0]
    torch.testing.assert_close(fro, (k * k).sum((-2, -1)), rtol=1e-12, atol=0)
    z = torch.randn(x.shape[0], x.shape[1], 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    op = FeatureOperator([x], [spec])
    torch.testing.assert_close(op.matmul(z), k @ z, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.trace, k.diagonal(dim1=-2, dim2=-1).sum(-1), rtol=1e-12, atol=0)
    if spec.bounded:  # the promise float32 mat-vecs rely on
        assert bool((k.abs() <= 1 + 1e-12).all())


@dataclass(frozen=True)
class _SquaredCosine(KernelSpec):
    r"""$K_{ij} = \cos(x_i, x_j)^2$: a kernel defined here only, to show that one definition is enough."""

    bounded = True

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        z = normalize_rows(x)
        return (z @ z.mT) ** 2

    def tile(self) -> TileKernel:
        return TileKernel(TILE_POLYNOMIAL, 2, 0.0)  # (z_i . z_j)^2 on normalised rows

    def tile_features(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_rows(x)

    def diagonal(self, x: torch.Tensor) -> torch.Tensor:
        z = normalize_rows(x)
        return (z * z).sum(-1) ** 2


@pytest.fixture
def squared_cosine(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(kernels.KERNEL_TYPES, "squared_cosine", _SquaredCosine)
    monkeypatch.setattr(kernels, "KERNELS", (*kernels.KERNELS, "squared_cosine"))
    return "squared_cosine"


def _reference_entropy(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """Plain float64 reference: eigenvalues of the trace-normalised squared-cosine Gram, in bits."""
    z = x / x.norm(dim=-1, keepdim=True)
    k = (z @ z.mT) ** 2
    lam = torch.linalg.eigvalsh(k / k.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]).clamp_min(0)
    return torch.log2((lam**alpha).sum(-1)) / (1 - alpha)


def test_a_kernel_added_by_one_definition_works_on_every_route(squared_cosine: str) -> None:
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(3), dtype=F64)
    y = torch.randn(40, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    ref = _reference_entropy(x, 2.0)
    # the spectrum route, the fused alpha = 2 route and an exhaustive Lanczos (steps = n: exact quadrature)
    eig = renyi_info.entropy(x, kernel=squared_cosine, method="eig")  # type: ignore[arg-type]
    fro = renyi_info.entropy(x, kernel=squared_cosine, method="frobenius")  # type: ignore[arg-type]
    opts = renyi_info.LanczosOptions(
        probes=4, steps=40, deflate=40, tol=0.0, generator=torch.Generator().manual_seed(0)
    )
    slq = renyi_info.entropy(x, kernel=squared_cosine, method="lanczos", lanczos=opts)  # type: ignore[arg-type]
    # float64 spectra and sums of 40 x 40 matrices with O(1) entries: agreement to 1e-10 is round-off
    torch.testing.assert_close(eig, ref, rtol=1e-10, atol=0)
    torch.testing.assert_close(fro, ref, rtol=1e-10, atol=0)
    # deflate = steps = n with tol = 0: complete Krylov spaces; what is left is the estimator's own floors (the
    # breakdown test at 10 sqrt(n) eps, round-off Ritz values counted as zeros), measured at ~1e-8 relative. A
    # wrong operand or diagonal of the new kernel would be off by O(1)
    torch.testing.assert_close(slq, ref, rtol=1e-6, atol=0)
    # mixed with a registered kernel in a mutual information, and its gradient through the fused tiles
    xr = x.clone().requires_grad_(True)
    kw = {"kernel": [squared_cosine, "cosine"], "alpha": 2.0}
    mi_fused = renyi_info.mutual_information(xr, y, method="frobenius", **kw)  # type: ignore[arg-type]
    (g_fused,) = torch.autograd.grad(mi_fused, xr)
    mi_eig = renyi_info.mutual_information(xr, y, method="eig", **kw)  # type: ignore[arg-type]
    (g_eig,) = torch.autograd.grad(mi_eig, xr)
    torch.testing.assert_close(mi_fused, mi_eig, rtol=1e-10, atol=0)
    torch.testing.assert_close(g_fused, g_eig, rtol=1e-8, atol=1e-12)


def test_an_unknown_kernel_is_refused_with_the_registered_names() -> None:
    with pytest.raises(ValueError, match=r"kernel must be one of \('cosine', 'linear'"):
        make_kernel("squared_cosine")
