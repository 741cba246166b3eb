r"""All-gather along the batch dimension that keeps gradients, for batch Grams over the global batch.

With ``gather=True`` the InfoCLIP losses build their batch Gram matrices over the samples of every
rank: each rank gathers the (teacher and student) alignment maps of all ranks, computes the *global*
loss (the same value on every rank), and back-propagates into its own slice only.

Gradient convention (what equals what). Let $L$ be the loss of the concatenated global batch.
The backward of `all_gather_with_grad` sums the incoming gradients over the ranks
(``all_reduce``) and returns the local slice, so on each of the $W$ ranks

$$
\text{grad of local input } x_r = W \cdot \frac{\partial L}{\partial x_r}.
$$

Every rank holds the whole of $L$, and DistributedDataParallel *averages* parameter gradients
over the ranks, so after DDP's averaging every parameter (LPAM's and the student's) receives exactly
$\partial L/\partial\theta$: the gradient of single-process training on the global batch, with no
dependence on the number of GPUs. Without DDP, sum the local parameter gradients over ranks and divide
by $W$ (that is what DDP does) to get the same. This is the convention of
``torch.distributed.nn.functional.all_gather``; local slices may differ in size between ranks (for
example the last, smaller batch of an epoch).

Outside an initialised process group (or with one process) the functions return their input
unchanged, so single-GPU and multi-GPU runs use the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = ["all_gather_with_grad", "all_ranks_all", "gather_batches", "is_distributed", "world_size"]


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of ranks of the default group; 1 outside a process group."""
    return dist.get_world_size() if is_distributed() else 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's ``x`` along dim 0; backward: all-reduce (sum) and keep the local slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: tuple[int, ...], rank: int) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes, ctx.rank = sizes, rank
        largest = max(sizes)
        padded = x.new_zeros((largest, *x.shape[1:]))
        padded[: x.shape[0]] = x
        pieces = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(pieces, padded.contiguous())
        return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def all_ranks_all(flags: torch.Tensor) -> torch.Tensor:
    """Elementwise logical AND of a boolean vector over all ranks (itself outside a process group)."""
    if not is_distributed() or dist.get_world_size() == 1:
        return flags
    as_int = flags.to(torch.int32)
    dist.all_reduce(as_int, op=dist.ReduceOp.MIN)
    return as_int.bool()


def _global_shapes(tensors: Sequence[torch.Tensor], names: Sequence[str]) -> list[tuple[int, ...]]:
    """Gather every rank's shapes of ``tensors`` (one collective) and check the non-batch dims agree.

    Returns, per tensor, the batch sizes of all ranks. All ranks see the same gathered shapes, so they all
    raise (or not) together: no rank is left waiting in a collective.
    """
    rank_width = max(t.dim() for t in tensors) + 1
    desc = torch.zeros(len(tensors), rank_width, dtype=torch.long)
    for i, t in enumerate(tensors):
        desc[i, 0] = t.dim()
        desc[i, 1 : 1 + t.dim()] = torch.tensor(t.shape, dtype=torch.long)
    desc = desc.to(tensors[0].device)
    everyone = [torch.empty_like(desc) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, desc)
    table = torch.stack(everyone).cpu()  # (W, len(tensors), rank_width)
    sizes = []
    for i, name in enumerate(names):
        rows = table[:, i]
        if not bool((rows[:, 0] == rows[0, 0]).all()) or not bool((rows[:, 2:] == rows[0, 2:]).all()):
            shapes = [tuple(int(s) for s in row[1 : 1 + int(row[0])]) for row in rows]
            raise ValueError(
                f"gather=True needs {name} to have the same shape on every rank except the batch dim; got "
                f"{shapes} on ranks 0..{len(shapes) - 1}"
            )
        sizes.append(tuple(int(s) for s in rows[:, 1]))
    return sizes


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` ``(b_r, ...)`` of every rank along dim 0, keeping the gradient of the local slice.

    See the module docstring for the gradient convention. Outside a process group: returns ``x``.

    Args:
        x: ``(b_r, ...)``; ``b_r`` may differ between ranks, the other dims may not.

    Returns:
        ``(sum_r b_r, ...)``, rank order.

    Example:
        >>> import torch
        >>> from infoclip.distributed import all_gather_with_grad
        >>> all_gather_with_grad(torch.ones(2, 3)).shape  # no process group: unchanged
        torch.Size([2, 3])
    """
    return gather_batches([x], ["x"])[0]


def gather_batches(tensors: Sequence[torch.Tensor], names: Sequence[str]) -> list[torch.Tensor]:
    """`all_gather_with_grad` of several tensors with one shape check for all of them."""
    if not is_distributed() or dist.get_world_size() == 1:
        return list(tensors)
    sizes = _global_shapes(tensors, names)
    rank = dist.get_rank()
    return [_AllGatherWithGrad.apply(t, s, rank) for t, s in zip(tensors, sizes)]
