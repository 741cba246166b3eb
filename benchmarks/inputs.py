"""Reproducible benchmark inputs: seeded Gaussian features and dependent pairs of views."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def features(
    n: int,
    d: int,
    *,
    seed: int = 0,
    batch: Sequence[int] = (),
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Gaussian features ``(*batch, n, d)`` from a seeded generator (reproducible across runs)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, n, d, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)


def paired_features(
    n: int,
    dx: int,
    dy: int,
    *,
    noise: float = 1.0,
    seed: int = 0,
    batch: Sequence[int] = (),
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dependent views ``x`` ``(*batch, n, dx)`` and ``y = x W + noise * e`` ``(*batch, n, dy)``.

    The mutual information between them is clearly non-zero, so relative differences of MI values are
    meaningful.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, dx, generator=gen, dtype=torch.float64)
    w = torch.randn(dx, dy, generator=gen, dtype=torch.float64) / math.sqrt(dx)
    y = x @ w + noise * torch.randn(*batch, n, dy, generator=gen, dtype=torch.float64)
    return x.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)
