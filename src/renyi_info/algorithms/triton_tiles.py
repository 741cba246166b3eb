r"""Triton kernels of the fused alpha = 2 reduction (`renyi_info.algorithms.fused`) and its backward pass.

Imported lazily, only when ``triton`` is importable and a CUDA tensor (or ``backend="triton"``) asks for
it. Up to three inputs (``L <= 3``); the kernels compute every non-empty subset product at once.

* Forward: one program per tile ``(I, J)`` with ``J >= I`` (the Gram is symmetric; off-diagonal tiles
  count twice). It forms the kernel tiles $K_l(I, J)$ from ``BLOCK_K``-wide slices of the
  features (``tl.dot``, float32 accumulation), and writes $\sum_{ij} P_S(i,j)^2$ for each subset
  product $P_S$; PyTorch sums the per-tile partials in float64.
* Backward (one launch per input ``l`` that needs a gradient): one program per row block ``I`` and
  output column chunk; it streams over all column blocks ``J``, recomputes the tiles, forms
  $W_l = 2K_l\,(c_0 + c_1K_a^2 + c_2K_b^2 + c_3K_a^2K_b^2)$ (``a``, ``b`` the other inputs, ``c``
  the upstream gradients of the subsets containing ``l``), applies the kernel's chain rule and
  accumulates $W_l X_l(J)$ in registers. Nothing of size ``n x n`` is ever stored.

Under ``TRITON_INTERPRET=1`` (set before `triton` is imported) the same kernels run on CPU tensors,
which is how the test-suite checks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..kernels import TILE_DOT, TILE_GAUSSIAN, TILE_LABEL, TILE_POLYNOMIAL, TileKernel

__all__ = ["backward", "forward"]

# The jit kernels below compare their constexpr ``KIND`` with the literal numbers of the tile forms, which
# `renyi_info.kernels` defines (a kernel picks its form in `KernelSpec.tile`); this keeps the two in step.
if (TILE_DOT, TILE_POLYNOMIAL, TILE_GAUSSIAN, TILE_LABEL) != (0, 1, 2, 3):  # pragma: no cover
    raise ImportError(
        "renyi_info.kernels renumbered the tile forms: update the KIND branches of triton_tiles"
    )

#: Tile edge (rows = columns) of the forward and backward kernels.
BLOCK = 64
#: Output column chunk of the backward kernel (``None``: the input's width rounded up to a power of two,
#: at most 256, so that a row block's gradient stays in registers and the tiles are recomputed at most
#: ``ceil(d / 256)`` times).
BLOCK_DOUT: int | None = None


@triton.jit
def _kernel_tile(
    x_ptr,
    sq_ptr,
    b,
    offs_i,
    offs_j,
    n,
    D: tl.constexpr,
    KIND: tl.constexpr,
    DEGREE: tl.constexpr,
    coef,
    gamma,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    PREC: tl.constexpr,
):
    """``(K, S)`` of batch entry ``b``: the kernel tile and the dot-product tile ``X_I X_J^T`` (zero outside
    the matrix)."""
    x_ptr += b * n * D
    sq_ptr += b * n
    mi = offs_i < n
    mj = offs_j < n
    if KIND == 3:  # TILE_LABEL: label codes in column 0
        ci = tl.load(x_ptr + offs_i * D, mask=mi, other=-1.0)
        cj = tl.load(x_ptr + offs_j * D, mask=mj, other=-2.0)
        s = tl.where(ci[:, None] == cj[None, :], 1.0, 0.0).to(x_ptr.dtype.element_ty)
        k = s
    else:
        s = tl.zeros((BLOCK_M, BLOCK_N), dtype=x_ptr.dtype.element_ty)
        for k0 in range(0, D, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            mk = kk < D
            a = tl.load(x_ptr + offs_i[:, None] * D + kk[None, :], mask=mi[:, None] & mk[None, :], other=0.0)
            b = tl.load(x_ptr + offs_j[:, None] * D + kk[None, :], mask=mj[:, None] & mk[None, :], other=0.0)
            if PREC == "bf16":
                s += tl.dot(a.to(tl.bfloat16), tl.trans(b.to(tl.bfloat16))).to(s.dtype)
            elif PREC == "tf32":
                s += tl.dot(a, tl.trans(b), input_precision="tf32").to(s.dtype)
            else:
                s += tl.dot(a, tl.trans(b), input_precision="ieee").to(s.dtype)
        if KIND == 0:
            k = s
        elif KIND == 1:
            s = s + coef
            k = s
            for _ in tl.static_range(DEGREE - 1):
                k = k * s
        else:
            sqi = tl.load(sq_ptr + offs_i, mask=mi, other=0.0)
            sqj = tl.load(sq_ptr + offs_j, mask=mj, other=0.0)
            d2 = tl.maximum(sqi[:, None] + sqj[None, :] - 2.0 * s, 0.0)
            d2 = tl.where(offs_i[:, None] == offs_j[None, :], 0.0, d2)
            k = tl.exp(-gamma * d2)
    valid = mi[:, None] & mj[None, :]
    k = tl.where(valid, k, 0.0)
    return k, s


@triton.jit
def _sumsq(p):
    return tl.sum(tl.sum(p * p, axis=1), axis=0)


@triton.jit
def _forward_kernel(
    x0,
    x1,
    x2,
    q0,
    q1,
    q2,
    ti_ptr,
    tj_ptr,
    out_ptr,
    n,
    num_tiles,
    coef_ptr,
    g0,
    g1,
    g2,
    L: tl.constexpr,
    D0: tl.constexpr,
    D1: tl.constexpr,
    D2: tl.constexpr,
    K0: tl.constexpr,
    K1: tl.constexpr,
    K2: tl.constexpr,
    P0: tl.constexpr,
    P1: tl.constexpr,
    P2: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K0: tl.constexpr,
    BLOCK_K1: tl.constexpr,
    BLOCK_K2: tl.constexpr,
    PREC: tl.constexpr,
    NOUT: tl.constexpr,
):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    c0 = tl.load(coef_ptr)
    c1 = tl.load(coef_ptr + 1)
    c2 = tl.load(coef_ptr + 2)
    ti = tl.load(ti_ptr + pid)
    tj = tl.load(tj_ptr + pid)
    offs_i = ti * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_j = tj * BLOCK_M + tl.arange(0, BLOCK_M)
    w = tl.where(ti == tj, 1.0, 2.0)
    base = out_ptr + (b * num_tiles + pid) * NOUT
    t0, _s0 = _kernel_tile(x0, q0, b, offs_i, offs_j, n, D0, K0, P0, c0, g0, BLOCK_M, BLOCK_M, BLOCK_K0, PREC)
    tl.store(base, _sumsq(t0) * w)
    if L >= 2:
        t1, _s1 = _kernel_tile(
            x1, q1, b, offs_i, offs_j, n, D1, K1, P1, c1, g1, BLOCK_M, BLOCK_M, BLOCK_K1, PREC
        )
        p01 = t0 * t1
        tl.store(base + 1, _sumsq(t1) * w)
        tl.store(base + 2, _sumsq(p01) * w)
        if L >= 3:
            t2, _s2 = _kernel_tile(
                x2, q2, b, offs_i, offs_j, n, D2, K2, P2, c2, g2, BLOCK_M, BLOCK_M, BLOCK_K2, PREC
            )
            tl.store(base + 3, _sumsq(t2) * w)
            tl.store(base + 4, _sumsq(t0 * t2) * w)
            tl.store(base + 5, _sumsq(t1 * t2) * w)
            tl.store(base + 6, _sumsq(p01 * t2) * w)


@triton.jit
def _backward_kernel(
    x0,
    x1,
    x2,
    q0,
    q1,
    q2,
    xo,
    coeff_ptr,
    grad_ptr,
    n,
    coef_ptr,
    g0,
    g1,
    g2,
    go,
    L: tl.constexpr,
    LOUT: tl.constexpr,
    D0: tl.constexpr,
    D1: tl.constexpr,
    D2: tl.constexpr,
    K0: tl.constexpr,
    K1: tl.constexpr,
    K2: tl.constexpr,
    P0: tl.constexpr,
    P1: tl.constexpr,
    P2: tl.constexpr,
    DO: tl.constexpr,
    KO: tl.constexpr,
    PO: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K0: tl.constexpr,
    BLOCK_K1: tl.constexpr,
    BLOCK_K2: tl.constexpr,
    BLOCK_DOUT: tl.constexpr,
    PREC: tl.constexpr,
):
    pid_i = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = tl.program_id(2)
    c0 = tl.load(coef_ptr)
    c1 = tl.load(coef_ptr + 1)
    c2 = tl.load(coef_ptr + 2)
    offs_i = pid_i * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_c = pid_c * BLOCK_DOUT + tl.arange(0, BLOCK_DOUT)
    mi = offs_i < n
    xo = xo + b * n * DO
    e0 = tl.load(coeff_ptr + b * 4)
    e1 = tl.load(coeff_ptr + b * 4 + 1)
    e2 = tl.load(coeff_ptr + b * 4 + 2)
    e3 = tl.load(coeff_ptr + b * 4 + 3)
    mc = offs_c < DO
    acc = tl.zeros((BLOCK_M, BLOCK_DOUT), dtype=grad_ptr.dtype.element_ty)
    rs = tl.zeros((BLOCK_M,), dtype=grad_ptr.dtype.element_ty)
    for j0 in range(0, n, BLOCK_N):
        offs_j = j0 + tl.arange(0, BLOCK_N)
        mj = offs_j < n
        t0, s0 = _kernel_tile(
            x0, q0, b, offs_i, offs_j, n, D0, K0, P0, c0, g0, BLOCK_M, BLOCK_N, BLOCK_K0, PREC
        )
        if L == 1:
            tk = t0
            sk = s0
            w = 2.0 * e0 * t0
        else:
            t1, s1 = _kernel_tile(
                x1, q1, b, offs_i, offs_j, n, D1, K1, P1, c1, g1, BLOCK_M, BLOCK_N, BLOCK_K1, PREC
            )
            if L == 2:
                if LOUT == 0:
                    tk = t0
                    sk = s0
                    w = 2.0 * t0 * (e0 + e1 * t1 * t1)
                else:
                    tk = t1
                    sk = s1
                    w = 2.0 * t1 * (e0 + e1 * t0 * t0)
            else:
                t2, s2 = _kernel_tile(
                    x2, q2, b, offs_i, offs_j, n, D2, K2, P2, c2, g2, BLOCK_M, BLOCK_N, BLOCK_K2, PREC
                )
                if LOUT == 0:
                    tk = t0
                    sk = s0
                    a2 = t1 * t1
                    b2 = t2 * t2
                elif LOUT == 1:
                    tk = t1
                    sk = s1
                    a2 = t0 * t0
                    b2 = t2 * t2
                else:
                    tk = t2
                    sk = s2
                    a2 = t0 * t0
                    b2 = t1 * t1
                w = 2.0 * tk * (e0 + e1 * a2 + e2 * b2 + e3 * a2 * b2)
        if KO == 1:  # polynomial: dK/dS = p (S + c)^(p - 1), sk already holds S + c
            dk = tl.full((BLOCK_M, BLOCK_N), PO, dtype=sk.dtype)
            for _ in tl.static_range(PO - 1):
                dk = dk * sk
            w = w * dk
        elif KO == 2:
            w = w * tk
            rs += tl.sum(w, axis=1).to(rs.dtype)
        w = tl.where(mi[:, None] & mj[None, :], w, 0.0)
        xj = tl.load(xo + offs_j[:, None] * DO + offs_c[None, :], mask=mj[:, None] & mc[None, :], other=0.0)
        if PREC == "bf16":
            acc += tl.dot(w.to(tl.bfloat16), xj.to(tl.bfloat16)).to(acc.dtype)
        elif PREC == "tf32":
            acc += tl.dot(w.to(xj.dtype), xj, input_precision="tf32").to(acc.dtype)
        else:
            acc += tl.dot(w.to(xj.dtype), xj, input_precision="ieee").to(acc.dtype)
    if KO == 2:
        xi = tl.load(xo + offs_i[:, None] * DO + offs_c[None, :], mask=mi[:, None] & mc[None, :], other=0.0)
        res = (-4.0 * go) * (rs[:, None] * xi.to(acc.dtype) - acc)
    else:
        res = 2.0 * acc
    out = grad_ptr + b * n * DO + offs_i[:, None] * DO + offs_c[None, :]
    tl.store(out, res.to(grad_ptr.dtype.element_ty), mask=mi[:, None] & mc[None, :])


def _block_k(d: int) -> int:
    return max(16, min(64, triton.next_power_of_2(d)))


@dataclass
class _Slots:
    """The arguments both kernels share, for contiguous inputs padded to three slots: per slot the pointer, the
    squared norms (Gaussian kernels), the width, kind, degree, coefficient, gamma and K block."""

    xs: list[torch.Tensor]
    batch: int
    n: int
    ptrs: list[torch.Tensor]
    sqs: list[torch.Tensor]
    dims: list[int]
    kinds: list[int]
    degs: list[int]
    coefs: torch.Tensor
    gammas: list[float]
    bks: list[int]

    @classmethod
    def of(cls, xs: Sequence[torch.Tensor], kernels: Sequence[TileKernel]) -> _Slots:
        _check(xs, kernels)
        xs = [x.contiguous() for x in xs]
        dummy = xs[0].new_zeros(1)
        ptrs, sqs, dims, kinds, degs, coefs, gammas, bks = [], [], [], [], [], [], [], []
        for i in range(3):
            if i < len(xs):
                x, k = xs[i], kernels[i]
                ptrs.append(x)
                sqs.append((x * x).sum(-1).contiguous() if k.kind == TILE_GAUSSIAN else dummy)
                dims.append(x.shape[-1])
                kinds.append(k.kind)
                degs.append(k.degree)
                coefs.append(float(k.coef))
                gammas.append(float(k.gamma))
                bks.append(_block_k(x.shape[-1]))
            else:
                ptrs.append(dummy)
                sqs.append(dummy)
                dims.append(1)
                kinds.append(TILE_DOT)
                degs.append(1)
                coefs.append(0.0)
                gammas.append(0.0)
                bks.append(16)
        coef_t = torch.tensor(coefs, dtype=xs[0].dtype, device=xs[0].device)
        return cls(xs, xs[0].shape[0], xs[0].shape[1], ptrs, sqs, dims, kinds, degs, coef_t, gammas, bks)

    def meta(self, precision: str) -> dict[str, object]:
        """The compile-time arguments: the number of inputs, then the width, kind, degree and K block of each
        of the three slots, and the operand precision (float64 is always IEEE)."""
        meta: dict[str, object] = {"L": len(self.xs)}
        for i in range(3):
            meta.update(
                {
                    f"D{i}": self.dims[i],
                    f"K{i}": self.kinds[i],
                    f"P{i}": self.degs[i],
                    f"BLOCK_K{i}": self.bks[i],
                }
            )
        meta["PREC"] = precision if self.xs[0].dtype == torch.float32 else "ieee"
        return meta


def _check(xs: Sequence[torch.Tensor], kernels: Sequence[TileKernel]) -> None:
    if not 1 <= len(xs) <= 3:
        raise ValueError(f"the Triton kernels take 1 to 3 inputs; got {len(xs)}")
    for x, k in zip(xs, kernels):
        if x.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"the Triton kernels take float32 or float64 features; got {x.dtype}")
        if k.kind not in (TILE_DOT, TILE_POLYNOMIAL, TILE_GAUSSIAN, TILE_LABEL):
            raise ValueError(f"unknown tile kernel {k}")


def forward(
    xs: Sequence[torch.Tensor],
    kernels: Sequence[TileKernel],
    masks: Sequence[int],
    *,
    precision: str = "ieee",
    block: int | None = None,
) -> torch.Tensor:
    """``F_S`` for contiguous ``(B, n, d_l)`` inputs: ``(B, len(masks))`` in the inputs' dtype."""
    slots = _Slots.of(xs, kernels)
    block = block or BLOCK
    x0 = slots.xs[0]
    nb = triton.cdiv(slots.n, block)
    ti, tj = torch.triu_indices(nb, nb, device=x0.device).to(torch.int32)
    num_tiles = ti.numel()
    nout = (1 << len(slots.xs)) - 1
    out = torch.zeros(slots.batch, num_tiles, nout, dtype=x0.dtype, device=x0.device)
    _forward_kernel[(num_tiles, slots.batch)](
        *slots.ptrs,
        *slots.sqs,
        ti.contiguous(),
        tj.contiguous(),
        out,
        slots.n,
        num_tiles,
        slots.coefs,
        *slots.gammas,
        **slots.meta(precision),
        BLOCK_M=block,
        NOUT=nout,
    )
    sums = out.double().sum(1)
    return sums[:, [m - 1 for m in masks]].to(x0.dtype)


def backward(
    xs: Sequence[torch.Tensor],
    kernels: Sequence[TileKernel],
    masks: Sequence[int],
    grad: torch.Tensor,
    needs: Sequence[bool],
    *,
    precision: str = "ieee",
    block: int | None = None,
    block_dout: int | None = None,
) -> list[torch.Tensor | None]:
    """Gradients of ``sum_S grad[:, S] F_S`` with respect to each ``(B, n, d_l)`` input."""
    slots = _Slots.of(xs, kernels)
    block = block or BLOCK
    xs, count, batch, n = slots.xs, len(slots.xs), slots.batch, slots.n
    dims, kinds, degs = slots.dims, slots.kinds, slots.degs
    full = torch.zeros(batch, 1 << count, dtype=torch.float64, device=grad.device)
    for s, m in enumerate(masks):
        full[:, m] += grad[:, s].double()
    grads: list[torch.Tensor | None] = []
    for lout in range(count):
        if not needs[lout] or kinds[lout] == TILE_LABEL:
            grads.append(None)
            continue
        others = [i for i in range(count) if i != lout]
        bit = 1 << lout
        oa = 1 << others[0] if others else 0
        ob = 1 << others[1] if len(others) > 1 else 0
        cols = [bit, bit | oa if oa else 0, bit | ob if ob else 0, bit | oa | ob if oa and ob else 0]
        coeff = torch.stack([full[:, c] if c else torch.zeros_like(full[:, 0]) for c in cols], -1)
        coeff = coeff.to(xs[0].dtype).contiguous()
        out = torch.empty_like(xs[lout])
        bdo = block_dout or BLOCK_DOUT or min(256, max(16, triton.next_power_of_2(dims[lout])))
        grid = (triton.cdiv(n, block), triton.cdiv(dims[lout], bdo), batch)
        _backward_kernel[grid](
            *slots.ptrs,
            *slots.sqs,
            xs[lout],
            coeff,
            out,
            n,
            slots.coefs,
            *slots.gammas,
            slots.gammas[lout],
            **slots.meta(precision),
            LOUT=lout,
            DO=dims[lout],
            KO=kinds[lout],
            PO=degs[lout],
            BLOCK_M=block,
            BLOCK_N=block,
            BLOCK_DOUT=bdo,
            num_warps=8 if bdo * block >= 8192 else 4,
        )
        grads.append(out)
    return grads
