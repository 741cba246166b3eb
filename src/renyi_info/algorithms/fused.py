r"""Fused, tile-streaming alpha = 2 reductions of Hadamard products of kernel Grams.

For features $X_1,\dots,X_L$ (each ``(..., n, d_l)``) and kernels $\kappa_l$, the Frobenius
sums and traces of Hadamard products of their Grams $K_l$,

$$
F_S = \Big\lVert \mathop{\circ}_{l\in S} K_l \Big\rVert_F^2 = \sum_{i,j}\prod_{l\in S} K_l(i,j)^2,
\qquad T_S = \operatorname{tr}\mathop{\circ}_{l\in S} K_l = \sum_i \prod_{l\in S} K_l(i,i),
$$

are all that the alpha = 2 entropy, joint entropy and mutual information need
($S_2 = 2\log T - \log F$). `frobenius_sums` computes several $F_S$ in one pass over
tiles of the sample-pair grid without ever holding an ``n x n`` matrix: memory is
$O(n\sum_l d_l + \text{tile}^2)$ in the forward *and* the backward pass. The backward pass of its
custom `torch.autograd.Function` recomputes the tiles (as FlashAttention does) and applies

$$
\frac{\partial F_S}{\partial K_l(i,j)} = 2\,K_l(i,j)\prod_{m\in S\setminus l} K_m(i,j)^2
$$

through each kernel: dot product $K = XX^\top$ gives $\partial X = 2WX$ for a symmetric
weight $W$; polynomial $K=(XX^\top+c)^p$ uses $W\circ p(XX^\top+c)^{p-1}$ in its place;
Gaussian $K=\exp(-\gamma D)$, $\gamma = 1/(2\sigma^2)$ gives
$\partial x_a = -4\gamma\big(\sum_j M_{aj}\,x_a - (MX)_a\big)$ with $M = W\circ K$. Cosine rows
are L2-normalised first (with autograd) and then treated as linear. Only the tiles on and above the
diagonal are visited in the forward pass ($K$ is symmetric), halving its work.

On CUDA tensors the tiles are computed by Triton kernels (`renyi_info.algorithms.triton_tiles`) when
``triton`` is importable; elsewhere by PyTorch matrix products. If a Triton kernel that ``backend="auto"``
chose fails to compile or launch, the call falls back to the PyTorch tiles with one `RuntimeWarning`, and
``"auto"`` keeps to PyTorch for the rest of the process (an explicit ``backend="triton"`` raises instead). Operand precision on CUDA follows
`torch.get_float32_matmul_precision` (``"highest"``: IEEE float32, ``"high"``: TF32, ``"medium"``:
bfloat16 operands); accumulation is always float32 or better.

Subsets $S$ are given as bit masks: bit ``l`` set means input ``l`` is in the product
(``0b01`` = the first Gram, ``0b11`` = the Hadamard product of the first two).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeVar

import torch

from ..kernels import TILE_DOT, TILE_GAUSSIAN, TILE_LABEL, TILE_POLYNOMIAL, KernelSpec, TileKernel

__all__ = ["Backend", "LowRankWeight", "diagonal_products", "frobenius_sums", "lowrank_backward"]

#: Which implementation runs the tiles: ``"auto"`` (Triton on CUDA when available, else PyTorch),
#: ``"torch"`` or ``"triton"``.
Backend = Literal["auto", "torch", "triton"]

#: Default tile sizes of the PyTorch backend: ``block_rows`` rows against ``block_cols`` columns per step
#: (512 KiB per float32 tile buffer); chosen by timing on a shared 2-core CPU (see "Routes and cost model").
BLOCK_ROWS = 256
BLOCK_COLS = 512


def diagonal_products(
    xs: Sequence[torch.Tensor], specs: Sequence[KernelSpec], masks: Sequence[int]
) -> torch.Tensor:
    r"""Traces $T_S = \sum_i \prod_{l\in S} K_l(i,i)$ from the diagonals alone, $O(n\sum d_l)$.

    Args:
        xs: features ``(..., n, d_l)`` (already validated, same batch shape and ``n``).
        specs: one kernel per input.
        masks: subsets as bit masks (bit ``l`` = input ``l``).

    Returns:
        ``(..., len(masks))``, differentiable with respect to ``xs``.
    """
    diags = [spec.diagonal(x) for x, spec in zip(xs, specs)]
    out = []
    for mask in masks:
        prod = None
        for li, dg in enumerate(diags):
            if mask >> li & 1:
                prod = dg if prod is None else prod * dg
        assert prod is not None, "empty subset"
        out.append(prod.sum(-1))
    return torch.stack(out, -1)


# ----------------------------------------------------------------------------------------------------------
# PyTorch tile implementation
# ----------------------------------------------------------------------------------------------------------


class _Operands:
    """Per-input matrices such that one product ``left[I] @ right[J].T`` gives the tile's pre-activation.

    * linear: ``x @ x.T``;
    * polynomial: ``[x, 1] @ [x, c].T = x x^T + c``, then the power;
    * Gaussian: ``[x, |x|^2, 1] @ [2 gamma x, -gamma, -gamma |x|^2].T = -gamma ||x_i - x_j||^2``, then
      ``exp(min(., 0))`` (the clamp of round-off negatives of the distance);
    * label: codes compared directly.

    ``grad_right`` is what the backward multiplies the weight tile with: ``x`` (and, for the Gaussian,
    ``[x, 1]`` so that the same product also gives the row sums).
    """

    def __init__(self, x: torch.Tensor, k: TileKernel) -> None:
        self.k = k
        self.x = x
        if k.kind == TILE_GAUSSIAN:
            sq = (x * x).sum(-1, keepdim=True)
            one = torch.ones_like(sq)
            self.left = torch.cat([x, sq, one], -1)
            self.right = torch.cat([(2.0 * k.gamma) * x, -k.gamma * one, -k.gamma * sq], -1)
            self.grad_right = torch.cat([x, one], -1)
        elif k.kind == TILE_POLYNOMIAL and k.coef:
            one = torch.ones_like(x[..., :1])
            self.left = torch.cat([x, one], -1)
            self.right = torch.cat([x, k.coef * one], -1)
            self.grad_right = x
        else:
            self.left = self.right = self.grad_right = x

    def tile(
        self,
        i0: int,
        i1: int,
        j0: int,
        j1: int,
        diag: bool,
        out: torch.Tensor | None = None,
        keep_base: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Kernel tile ``K[i0:i1, j0:j1]`` and, for polynomials of degree > 1, the base ``S + c``.

        ``out``: a flat buffer of at least ``(i1 - i0) * (j1 - j0)`` elements to write the tile into (no
        allocation per tile); ``keep_base``: keep ``S + c`` for the backward pass.
        """
        k = self.k
        if k.kind == TILE_LABEL:  # canonical label codes (n, 1): K_ij = [y_i == y_j], no gradient
            return (self.x[i0:i1] == self.x[j0:j1].mT).to(self.x.dtype), None
        if out is None:
            s = self.left[i0:i1] @ self.right[j0:j1].mT
        else:
            s = torch.mm(self.left[i0:i1], self.right[j0:j1].mT, out=_view(out, i1 - i0, j1 - j0))
        if k.kind == TILE_DOT or (k.kind == TILE_POLYNOMIAL and k.degree == 1):
            return s, None
        if k.kind == TILE_POLYNOMIAL:
            return (s.pow(k.degree), s) if keep_base else (s.pow_(k.degree), None)
        t = s.clamp_max_(0.0).exp_()
        if diag:
            t.fill_diagonal_(1.0)
        return t, None


def _view(buf: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A contiguous ``(rows, cols)`` view of the start of a flat buffer."""
    return buf[: rows * cols].view(rows, cols)


def _products(
    tiles: Sequence[torch.Tensor],
    masks: Sequence[int],
    bufs: dict[int, torch.Tensor] | None = None,
    size: int = 0,
) -> dict[int, torch.Tensor]:
    """Hadamard products ``P_S`` of the tiles for each mask and every prefix mask they are built from.

    ``bufs``: flat buffers of ``size`` elements per composite mask (created on first use), so that no
    product tile is allocated per step.
    """
    cache: dict[int, torch.Tensor] = {}

    def prod(mask: int) -> torch.Tensor:
        if mask not in cache:
            low = (mask & -mask).bit_length() - 1
            rest = mask & (mask - 1)
            t = tiles[low]
            if rest == 0:
                cache[mask] = t
            elif bufs is None:
                cache[mask] = prod(rest) * t
            else:
                if mask not in bufs:
                    bufs[mask] = torch.empty(size, dtype=t.dtype, device=t.device)
                cache[mask] = torch.mul(prod(rest), t, out=_view(bufs[mask], *t.shape))
        return cache[mask]

    for m in masks:
        prod(m)
    return cache


def _row_blocks(n: int, block_rows: int, block_cols: int):
    """Yield ``(i0, i1, j0, j1, diag)`` for the tiles on and above the diagonal."""
    for i0 in range(0, n, block_rows):
        i1 = min(n, i0 + block_rows)
        yield i0, i1, i0, i1, True
        for j0 in range(i1, n, block_cols):
            yield i0, i1, j0, min(n, j0 + block_cols), False


def torch_forward(
    xs: Sequence[torch.Tensor],
    kernels: Sequence[TileKernel],
    masks: Sequence[int],
    block_rows: int,
    block_cols: int,
) -> torch.Tensor:
    """``F_S`` for 3-D inputs ``(B, n, d_l)``: ``(B, len(masks))`` in the inputs' dtype (float64 partials)."""
    batch, n = xs[0].shape[0], xs[0].shape[1]
    out = torch.zeros(batch, len(masks), dtype=torch.float64, device=xs[0].device)
    size = block_rows * max(block_rows, min(block_cols, n))
    tile_bufs = [torch.empty(size, dtype=x.dtype, device=x.device) for x in xs]
    prod_bufs: dict[int, torch.Tensor] = {}
    for b in range(batch):
        ops = [_Operands(x[b], k) for x, k in zip(xs, kernels)]
        diag_sums = torch.zeros(len(masks), dtype=torch.float64, device=xs[0].device)
        off_sums = torch.zeros_like(diag_sums)
        for i0, i1, j0, j1, diag in _row_blocks(n, block_rows, block_cols):
            tiles = [op.tile(i0, i1, j0, j1, diag, buf, False)[0] for op, buf in zip(ops, tile_bufs)]
            prods = _products(tiles, masks, prod_bufs, size)
            acc = diag_sums if diag else off_sums
            for s, m in enumerate(masks):
                p = prods[m].reshape(-1)
                acc[s] += torch.dot(p, p)
        out[b] = diag_sums + 2.0 * off_sums
    return out.to(xs[0].dtype)


def _weight(
    li: int, tiles: Sequence[torch.Tensor], masks: Sequence[int], g: Sequence[float]
) -> torch.Tensor | None:
    """``W_l / 2 = sum_{S ∋ l} g_S K_l prod_{m in S \\ l} K_m^2`` (the factor 2 is applied by the caller)."""
    q: torch.Tensor | float | None = None
    for gs, m in zip(g, masks):
        if not (m >> li & 1) or gs == 0.0:
            continue
        rest = [tiles[j] for j in range(len(tiles)) if m >> j & 1 and j != li]
        if not rest:
            q = gs if q is None else q + gs
            continue
        term = rest[0] * rest[0]
        for t in rest[1:]:
            term.mul_(t).mul_(t)
        if isinstance(q, torch.Tensor):
            q.add_(term, alpha=gs)
        elif q is None:
            q = term.mul_(gs)
        else:
            q = term.mul_(gs).add_(q)
    if q is None:
        return None
    return tiles[li] * q


def torch_backward(
    xs: Sequence[torch.Tensor],
    kernels: Sequence[TileKernel],
    masks: Sequence[int],
    grad: torch.Tensor,
    needs: Sequence[bool],
    block_rows: int,
    block_cols: int,
) -> list[torch.Tensor | None]:
    """Gradients of ``sum_S grad[:, S] * F_S`` with respect to each 3-D input (``None`` where not needed)."""
    grads = _gradient_buffers(xs, kernels, needs)
    for b in range(xs[0].shape[0]):
        g = [float(v) for v in grad[b]]
        for ops, (i0, i1, j0, j1), diag, cached in _recomputed_tiles(xs, kernels, b, block_rows, block_cols):
            tiles = [c[0] for c in cached]
            for li, (op, gx) in enumerate(zip(ops, grads)):
                if gx is None:
                    continue
                w = _weight(li, tiles, masks, g)
                if w is not None:  # dF_S / dK_l = 2 w (`_weight` returns half the derivative)
                    chain_rule(op, w, tiles[li], cached[li][1], gx[b], (i0, i1, j0, j1), diag, 2.0)
    return grads


def _gradient_buffers(
    xs: Sequence[torch.Tensor], kernels: Sequence[TileKernel], needs: Sequence[bool]
) -> list[torch.Tensor | None]:
    """A zero gradient per input that needs one (label kernels have none)."""
    return [
        torch.zeros_like(x) if need and k.kind != TILE_LABEL else None
        for x, k, need in zip(xs, kernels, needs)
    ]


def _recomputed_tiles(
    xs: Sequence[torch.Tensor], kernels: Sequence[TileKernel], b: int, block_rows: int, block_cols: int
) -> Iterator[
    tuple[list[_Operands], tuple[int, int, int, int], bool, list[tuple[torch.Tensor, torch.Tensor | None]]]
]:
    """For batch entry ``b``: the operands and, for every tile on or above the diagonal, its block, whether it is
    diagonal and the recomputed kernel tiles (with the polynomial base a backward pass needs)."""
    ops = [_Operands(x[b], k) for x, k in zip(xs, kernels)]
    for i0, i1, j0, j1, diag in _row_blocks(xs[0].shape[1], block_rows, block_cols):
        yield ops, (i0, i1, j0, j1), diag, [op.tile(i0, i1, j0, j1, diag) for op in ops]


def chain_rule(
    op: _Operands,
    w: torch.Tensor,
    tile: torch.Tensor,
    base: torch.Tensor | None,
    out: torch.Tensor,
    block: tuple[int, int, int, int],
    diag: bool,
    scale: float,
) -> None:
    r"""Add the gradient with respect to ``op.x`` of a loss whose derivative with respect to the kernel
    entries of one tile is ``scale * w`` (``w`` symmetric as a whole matrix; overwritten).

    ``block = (i0, i1, j0, j1)`` is the tile; an off-diagonal tile (``diag`` false) also stands for its
    transpose ``(j, i)``. Dot product: $\partial X = 2WX$; polynomial: ``W o p (S + c)^(p - 1)`` in
    place of ``W``; Gaussian ($\gamma$): $\partial x_a = -4\gamma(\sum_j M_{aj} x_a - (MX)_a)$ with
    $M = W\circ K$. ``out`` ``(n, d)`` is the gradient of this batch entry; label kernels have none.
    """
    i0, i1, j0, j1 = block
    k = op.k
    if k.kind == TILE_GAUSSIAN:
        # [x, 1] gives (M X) and the row sums of M in one product
        m = w.mul_(tile)
        d = op.x.shape[-1]
        c = -4.0 * k.gamma * scale
        r = m @ op.grad_right[j0:j1]
        out[i0:i1].addcmul_(r[:, d:], op.x[i0:i1], value=c)
        out[i0:i1].add_(r[:, :d], alpha=-c)
        if not diag:
            r = m.mT @ op.grad_right[i0:i1]
            out[j0:j1].addcmul_(r[:, d:], op.x[j0:j1], value=c)
            out[j0:j1].add_(r[:, :d], alpha=-c)
        return
    if k.kind == TILE_POLYNOMIAL and k.degree != 1:
        assert base is not None
        w.mul_(base.pow(k.degree - 1)).mul_(float(k.degree))
    out[i0:i1].addmm_(w, op.x[j0:j1], alpha=2.0 * scale)
    if not diag:
        out[j0:j1].addmm_(w.mT, op.x[i0:i1], alpha=2.0 * scale)


class LowRankWeight(NamedTuple):
    r"""A symmetric weight $W = \tfrac12(LR^\top + RL^\top) + \operatorname{diag}(c)$ on the Hadamard
    product of the kernels in ``mask`` (bit ``l`` = input ``l``): ``left``, ``right`` ``(B, n, r)``,
    ``diag`` ``(B, n)``."""

    mask: int
    left: torch.Tensor
    right: torch.Tensor
    diag: torch.Tensor


def lowrank_backward(
    xs: Sequence[torch.Tensor],
    kernels: Sequence[TileKernel],
    weights: Sequence[LowRankWeight],
    needs: Sequence[bool],
    block_rows: int = BLOCK_ROWS,
    block_cols: int = BLOCK_COLS,
) -> list[torch.Tensor | None]:
    r"""Gradients of $\sum_t \langle W_t, \circ_{l\in S_t} K_l\rangle$ with respect to each 3-D input
    ``(B, n, d_l)`` (prepared as for `frobenius_sums`), for low-rank-plus-diagonal weights
    (`LowRankWeight`), without an ``n x n`` buffer: the weight tiles are rebuilt from ``left`` and
    ``right`` (``O(n^2 r)``) and the kernel tiles recomputed, as in the fused backward pass. Used by the
    differentiable stochastic estimator (`renyi_info.algorithms.lanczos`).
    """
    grads = _gradient_buffers(xs, kernels, needs)
    for b in range(xs[0].shape[0]):
        for ops, (i0, i1, j0, j1), diag, cached in _recomputed_tiles(xs, kernels, b, block_rows, block_cols):
            tiles = [c[0] for c in cached]
            for t in weights:
                left, right = t.left[b], t.right[b]
                w = torch.mm(left[i0:i1], right[j0:j1].mT)
                w.addmm_(right[i0:i1], left[j0:j1].mT).mul_(0.5)
                if diag:
                    w.diagonal().add_(t.diag[b, i0:i1])
                for li, (op, gx) in enumerate(zip(ops, grads)):
                    if gx is None or not t.mask >> li & 1:
                        continue
                    wl = w.clone()
                    for m, other in enumerate(tiles):
                        if m != li and t.mask >> m & 1:
                            wl.mul_(other)
                    chain_rule(op, wl, tiles[li], cached[li][1], gx[b], (i0, i1, j0, j1), diag, 1.0)
    return grads


# ----------------------------------------------------------------------------------------------------------
# autograd Function and dispatch
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    kernels: tuple[TileKernel, ...]
    masks: tuple[int, ...]
    backend: str
    block_rows: int
    block_cols: int
    precision: str
    fallback: bool = False  # True when "auto" chose Triton: a failing kernel then falls back to PyTorch


#: The first failure of a Triton kernel that ``backend="auto"`` chose in this process (empty: none yet).
#: Once set, "auto" resolves to PyTorch, so the fallback warns once rather than on every call.
_triton_failure: list[str] = []

_T = TypeVar("_T")


def _run(cfg: _Config, on_triton: Callable[[], _T], on_torch: Callable[[], _T]) -> _T:
    """Run the Triton kernel when ``cfg`` asks for it; an automatic choice falls back to PyTorch if it fails."""
    if cfg.backend != "triton" or (cfg.fallback and _triton_failure):
        return on_torch()
    try:
        return on_triton()
    except torch.OutOfMemoryError:
        raise  # not a kernel defect: the PyTorch tiles would not fit either, and the user must see it
    except Exception as err:  # Triton's compile and launch errors share no base class below Exception
        if not cfg.fallback:
            raise
        _triton_failure.append(f"{type(err).__name__}: {err}")
        warnings.warn(
            "renyi_info: a Triton kernel of the fused alpha = 2 reduction failed to compile or launch "
            f"({_triton_failure[0]}); using the PyTorch tiles instead for the rest of this process "
            "(same values, slower). Pass backend='torch' to choose them explicitly, or backend='triton' to "
            "raise the error.",
            RuntimeWarning,
            stacklevel=2,
        )
        return on_torch()


def _forward(xs: Sequence[torch.Tensor], cfg: _Config) -> torch.Tensor:
    def on_triton() -> torch.Tensor:
        from . import triton_tiles  # lazy: needs triton, which only CUDA users have

        return triton_tiles.forward(xs, cfg.kernels, cfg.masks, precision=cfg.precision)

    return _run(
        cfg, on_triton, lambda: torch_forward(xs, cfg.kernels, cfg.masks, cfg.block_rows, cfg.block_cols)
    )


def _backward(
    xs: Sequence[torch.Tensor], cfg: _Config, grad: torch.Tensor, needs: Sequence[bool]
) -> list[torch.Tensor | None]:
    def on_triton() -> list[torch.Tensor | None]:
        from . import triton_tiles  # lazy: needs triton, which only CUDA users have

        return triton_tiles.backward(xs, cfg.kernels, cfg.masks, grad, needs, precision=cfg.precision)

    return _run(
        cfg,
        on_triton,
        lambda: torch_backward(xs, cfg.kernels, cfg.masks, grad, needs, cfg.block_rows, cfg.block_cols),
    )


#: The error of a gradient of the fused route's gradient (``create_graph=True``).
SECOND_ORDER_ERROR = (
    "the fused alpha = 2 route has a first-order gradient only: its gradient cannot be differentiated again "
    "(torch.autograd.grad(..., create_graph=True) or backward(create_graph=True)). Use method='eig' for that "
    "quantity (exact at any alpha, differentiable twice), or compute the first-order gradient without create_graph"
)


class FusedFrobenius(torch.autograd.Function):
    """``F_S`` of 3-D inputs ``(B, n, d_l)`` with a tile-recomputing backward (no ``n x n`` buffers).

    First order only: a backward pass asked to build a graph (``create_graph=True``) raises
    `SECOND_ORDER_ERROR`.
    """

    @staticmethod
    def forward(ctx, cfg: _Config, *xs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.cfg = cfg
        ctx.save_for_backward(*xs)
        return _forward(xs, cfg)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        if torch.is_grad_enabled():
            raise RuntimeError(SECOND_ORDER_ERROR)
        xs = ctx.saved_tensors
        needs = list(ctx.needs_input_grad[1:])
        grads = _backward(xs, ctx.cfg, grad.contiguous(), needs)
        return (None, *grads)


def triton_available() -> bool:
    """True when `triton` can be imported (it is only imported on first use)."""
    try:
        import triton  # noqa: F401
    except Exception:  # pragma: no cover - depends on the platform
        return False
    return True


def _auto_prefers_triton(device: torch.device, dtype: torch.dtype, count: int) -> bool:
    """Whether ``backend="auto"`` runs the Triton kernels: float32 CUDA, <= 3 inputs, none failed before."""
    gpu = device.type == "cuda" and dtype == torch.float32
    return gpu and count <= 3 and not _triton_failure and triton_available()


def resolve_backend(
    backend: str, device: torch.device, count: int, dtype: torch.dtype = torch.float32
) -> str:
    """``"auto"``: Triton for float32 CUDA tensors when importable (at most 3 inputs), PyTorch otherwise.

    (float64 on CUDA stays on PyTorch/cuBLAS: the Triton kernels are tuned and checked on GPUs for float32;
    ``backend="triton"`` still accepts float64, which is how the CPU interpreter tests run them.)
    """
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'triton'; got {backend!r}")
    if backend == "auto":
        return "triton" if _auto_prefers_triton(device, dtype, count) else "torch"
    if backend == "triton" and count > 3:
        raise ValueError(f"backend='triton' handles at most 3 inputs; got {count}. Use backend='torch'")
    return backend


def operand_precision() -> str:
    """Tile-product operand precision on CUDA from `torch.get_float32_matmul_precision`."""
    return {"highest": "ieee", "high": "tf32", "medium": "bf16"}.get(
        torch.get_float32_matmul_precision(), "ieee"
    )


def frobenius_sums(
    xs: Sequence[torch.Tensor],
    specs: Sequence[KernelSpec],
    masks: Sequence[int],
    *,
    backend: Backend = "auto",
    block_rows: int | None = None,
    block_cols: int | None = None,
    precision: Literal["ieee", "tf32", "bf16"] | None = None,
) -> torch.Tensor:
    r"""Squared Frobenius norms $F_S=\lVert\circ_{l\in S}K_l\rVert_F^2$ by streaming over tiles.

    Args:
        xs: features ``(..., n, d_l)`` (validated, same batch shape, ``n`` and dtype).
        specs: one validated kernel per input.
        masks: subsets as bit masks (bit ``l`` = input ``l``), e.g. ``[0b01, 0b10, 0b11]`` for the
            mutual information of two inputs.
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.
        block_rows: rows per tile of the PyTorch backend (default `BLOCK_ROWS`, 4 times larger on
            CUDA).
        block_cols: columns per tile of the PyTorch backend (default `BLOCK_COLS`, 8 times larger on
            CUDA).
        precision: Triton operand precision; default from `torch.get_float32_matmul_precision`.

    Returns:
        ``(..., len(masks))`` in the inputs' dtype, differentiable (once) with respect to ``xs``.

    Example:
        >>> import torch
        >>> from renyi_info.kernels import make_kernel
        >>> from renyi_info.algorithms.fused import frobenius_sums
        >>> x = torch.eye(3, dtype=torch.float64)
        >>> frobenius_sums([x], [make_kernel("linear")], [0b1])  # ||I||_F^2
        tensor([3.], dtype=torch.float64)
    """
    if not xs or len(xs) != len(specs):
        raise ValueError(
            f"frobenius_sums needs one kernel per input; got {len(xs)} inputs, {len(specs)} kernels"
        )
    count = len(xs)
    for m in masks:
        if not 0 < m < 1 << count:
            raise ValueError(f"masks must be bit masks of non-empty subsets of the {count} inputs; got {m}")
    on_gpu = xs[0].device.type == "cuda"  # bigger tiles: kernel launches, not caches, limit the GPU
    br = (4 * BLOCK_ROWS if on_gpu else BLOCK_ROWS) if block_rows is None else int(block_rows)
    bc = (8 * BLOCK_COLS if on_gpu else BLOCK_COLS) if block_cols is None else int(block_cols)
    if br < 1 or bc < 1:
        raise ValueError(f"block_rows and block_cols must be >= 1; got {br}, {bc}")
    feats = [s.tile_features(x) for x, s in zip(xs, specs)]
    batch_shape = feats[0].shape[:-2]
    n = feats[0].shape[-2]
    flat = [f.reshape(-1, n, f.shape[-1]).contiguous() for f in feats]
    cfg = _Config(
        kernels=tuple(s.tile() for s in specs),
        masks=tuple(int(m) for m in masks),
        backend=resolve_backend(backend, flat[0].device, count, flat[0].dtype),
        block_rows=br,
        block_cols=bc,
        precision=precision or operand_precision(),
        fallback=backend == "auto",
    )
    out = FusedFrobenius.apply(cfg, *flat)
    return out.reshape(*batch_shape, len(masks))
