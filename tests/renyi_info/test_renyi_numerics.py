"""Regression tests of the eigenvalue floor on full-rank spectra with long tails (float32)."""

from __future__ import annotations

import pytest
import torch

import renyi_info


@pytest.mark.parametrize("alpha", [1.01, 1.1, 1.5])
def test_float32_alpha_above_one_keeps_the_spectral_tail(alpha: float) -> None:
    # A Gaussian Gram of low-dimensional data has many eigenvalues below n * eps * lam_max in float32.
    # Dropping them would shift S_alpha by about (their mass) / (alpha - 1): tens of percent at 1.01.
    x = torch.randn(512, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kw = dict(alpha=alpha, kernel="gaussian", sigma=2.0, method="eig")
    exact = renyi_info.entropy(x, compute_dtype=torch.float64, **kw)
    single = renyi_info.entropy(x.float(), **kw)
    assert single.dtype == torch.float32
    assert float(abs(single.double() - exact) / exact) < 1e-4


def test_tail_is_large_enough_to_matter() -> None:
    # Guard for the test above: the float32 spectrum really has mass below the alpha <= 1 floor.
    x = torch.randn(512, 4, generator=torch.Generator().manual_seed(0))
    lam = torch.linalg.eigvalsh(renyi_info.gram(x, "gaussian", sigma=2.0)).clamp_min(0)
    floor = 512 * torch.finfo(torch.float32).eps * lam[-1]
    assert float(lam[lam <= floor].sum()) > 1e-4
