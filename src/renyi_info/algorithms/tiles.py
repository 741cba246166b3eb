"""The kernels as the fused tile code sees them, shared by the PyTorch and Triton tile implementations.

Cosine is linear on L2-normalised rows, and a Gaussian is ``exp(-||x_i - x_j||^2 / 2)`` on features
pre-scaled by ``1 / sigma`` (`renyi_info.algorithms.fused.tile_features`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels import KernelSpec

#: Kernel kinds of the tile code (also the ``KIND`` constants of the Triton kernels).
LINEAR, POLYNOMIAL, GAUSSIAN, LABEL = 0, 1, 2, 3


@dataclass(frozen=True)
class TileKernel:
    """A kernel as the tile code sees it (cosine already turned into linear on normalised rows)."""

    kind: int
    degree: int = 1
    coef: float = 0.0
    gamma: float = 0.0


def tile_kernel(spec: KernelSpec) -> TileKernel:
    """The `TileKernel` of a validated `renyi_info.kernels.KernelSpec`."""
    if spec.is_dot_product:
        return TileKernel(LINEAR)
    if spec.name == "label":
        return TileKernel(LABEL)
    if spec.name == "polynomial":
        return TileKernel(POLYNOMIAL, spec.degree, spec.coef)
    return TileKernel(GAUSSIAN, gamma=0.5)  # the features are pre-scaled by 1 / sigma
