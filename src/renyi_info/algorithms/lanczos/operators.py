r"""Gram operators: ``K @ Z`` without materialising ``K`` (features, through the kernels' own Lanczos operands) or
with the given matrix (matrix API)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ...kernels import (
    SQRT_TINY,
    TILE_DOT,
    TILE_LABEL,
    TILE_POLYNOMIAL,
    KernelSpec,
    LanczosOperands,
)

#: Row tiles of a recomputed kernel hold at most this many entries per batch (4 MiB in float64: the
#: elementwise passes over a tile stay in cache; measured fastest on a 2-core x86 CPU).
_TILE_ENTRIES = 1 << 19


class GramOperator:
    """Unnormalised symmetric PSD Gram ``K`` ``(B, n, n)`` as a mat-vec ``Z (B, n, c) -> K Z``."""

    n: int
    trace: torch.Tensor  # (B,)
    dtype: torch.dtype  # of the products

    def matmul(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class DenseOperator(GramOperator):
    """A materialised Gram ``k`` ``(B, n, n)``."""

    def __init__(self, k: torch.Tensor) -> None:
        self.k = k
        self.n = k.shape[-1]
        self.dtype = k.dtype
        self.trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)

    def matmul(self, z: torch.Tensor) -> torch.Tensor:
        return self.k @ z


class FeatureOperator(GramOperator):
    r"""Hadamard product of kernel Grams of features, $K = \circ_l K_l(X_l)$, never materialised.

    Args:
        xs: ``L >= 1`` feature tensors ``(B, n, d_l)`` (validated, in the compute dtype; label codes
            ``(B, n, 1)`` for ``kernel="label"``).
        specs: one `renyi_info.kernels.KernelSpec` per input.
        dtype: precision of the tiles and products (default: the features'). The features are normalised
            (cosine rows, the Gaussian's scale) in their own dtype first, then cast: features at 1e300 in
            float64 give the same float32 mat-vecs as features at 1.

    Raises:
        ValueError: operands that ``dtype`` cannot hold (linear or polynomial kernels of huge features
            with ``LanczosOptions(matvec_dtype=torch.float32)``).
    """

    def __init__(
        self, xs: Sequence[torch.Tensor], specs: Sequence[KernelSpec], dtype: torch.dtype | None = None
    ) -> None:
        self.factors: list[LanczosOperands] = []
        diag = None
        for x, spec in zip(xs, specs):
            f = spec.lanczos_operands(x, dtype)
            self.factors.append(f)
            diag = f.diag if diag is None else diag * f.diag
        assert diag is not None
        self.n = xs[0].shape[-2]
        self.dtype = dtype or xs[0].dtype
        self.trace = diag.sum(-1)

    def matmul(self, z: torch.Tensor) -> torch.Tensor:
        fs = self.factors
        if all(f.tile.kind == TILE_DOT for f in fs):
            if len(fs) == 1:
                x = fs[0].x
                return x @ (x.mT @ z)
            if len(fs) == 2:
                d1, d2 = fs[0].x.shape[-1], fs[1].x.shape[-1]
                c = z.shape[-1]
                # flops: factored 4 n d1 d2 c against tiles 2 n^2 (d1 + d2 + c)
                if 2 * d1 * d2 * c <= self.n * (d1 + d2 + c):
                    return _hadamard_dot_matmul(fs[0].x, fs[1].x, z)
        return self._tiled_matmul(z)

    def _tile(self, f: LanczosOperands, b: int, r0: int, r1: int, c0: int = 0) -> torch.Tensor:
        """Rows ``r0:r1``, columns ``c0:n`` of the kernel of factor ``f`` for batch entry ``b``, by its tile
        form (`renyi_info.kernels.TileKernel`)."""
        k = f.tile
        if k.kind == TILE_LABEL:
            return (f.x[b, r0:r1] == f.right[b, :, c0:]).to(f.x.dtype)
        g = torch.mm(f.left[b, r0:r1], f.right[b, :, c0:])
        if k.kind == TILE_DOT:
            return g
        if k.kind == TILE_POLYNOMIAL:
            if k.coef:
                g.add_(k.coef)
            return g.pow_(k.degree) if k.degree > 1 else g
        # TILE_GAUSSIAN (the product is the exponent): exact zero self-distance, as in kernels.squared_distances
        g.clamp_max_(0.0).diagonal(r0 - c0).zero_()
        # flush entries below sqrt(tiny) (as kernels.gaussian_kernel): subnormals slow every later product
        return g.masked_fill_(g < math.log(SQRT_TINY[g.dtype]), -math.inf).exp_()

    def _tiled_matmul(self, z: torch.Tensor) -> torch.Tensor:
        """``K z`` from the row blocks of the upper triangle of ``K`` (symmetric): block ``I`` computes
        ``K[I, I:]`` once and uses it for ``(K z)[I]`` and, transposed, for ``(K z)[I+1:]``: half the
        kernel evaluations of full rows, the same product flops."""
        batch, n = z.shape[0], self.n
        tile = max(1, _TILE_ENTRIES // n)
        out = torch.zeros_like(z)
        for b in range(batch):
            for r0 in range(0, n, tile):
                r1 = min(n, r0 + tile)
                k = self._tile(self.factors[0], b, r0, r1, r0)
                for f in self.factors[1:]:
                    k.mul_(self._tile(f, b, r0, r1, r0))
                out[b, r0:r1].addmm_(k, z[b, r0:])
                if r1 < n:
                    out[b, r1:].addmm_(k[:, r1 - r0 :].mT, z[b, r0:r1])
        return out


def _hadamard_dot_matmul(x1: torch.Tensor, x2: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    r"""$(X_1X_1^\top \circ X_2X_2^\top) z = \operatorname{rowdot}(X_1 (X_1^\top\operatorname{diag}(z)X_2), X_2)$.

    ``O(n d1 d2)`` per column; columns are processed in chunks bounding the temporaries.
    """
    batch, n, d1 = x1.shape
    d2 = x2.shape[-1]
    c = z.shape[-1]
    chunk = max(1, _TILE_ENTRIES // max(1, batch * n * max(d1, d2)))
    out = torch.empty_like(z)
    for c0 in range(0, c, chunk):
        c1 = min(c, c0 + chunk)
        cc = c1 - c0
        zx1 = z[..., c0:c1, None] * x1[..., None, :]  # (B, n, cc, d1)
        m = zx1.reshape(batch, n, cc * d1).mT @ x2  # (B, cc*d1, d2): rows (c, i)
        m = m.reshape(batch, cc, d1, d2).permute(0, 2, 1, 3).reshape(batch, d1, cc * d2)
        y = (x1 @ m).reshape(batch, n, cc, d2)  # (B, n, cc, d2)
        out[..., c0:c1] = (y * x2[..., None, :]).sum(-1)
    return out
