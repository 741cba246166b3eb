r"""Pairings of two views of the same samples, and DiME of two Grams over them (trusted inputs).

DiME (Skean et al. 2023) compares the joint entropy of the true pairing of two views with its expected
value when the second view's samples are shuffled:

$$
\mathrm{DiME}_\alpha(A;B) = \mathbb{E}_\pi\big[S_\alpha(A, P_\pi B P_\pi^\top)\big] - S_\alpha(A, B),
$$

with $\pi$ uniform over the $n!$ permutations and the joint entropy of the trace-normalised Hadamard
product (InfoCLIP Eq. 3). `all_permutations` enumerates the pairings (the exact expectation, small
``n``), `sample_permutations` draws them uniformly with replacement (an unbiased estimate), and
`dime_nats` evaluates the difference for given pairings. Inputs are validated at the public door
(`renyi_info.dependence`, `renyi_info.matrix.dime`) with the rule of the ``permutations`` argument,
`check_permutations`, which `renyi_info.gram_level` exports for libraries that take the argument themselves.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers

import torch
from torch.utils.checkpoint import checkpoint

from . import exact

#: ``permutations="auto"`` averages over all ``n!`` pairings up to this ``n`` (5040 at n = 7).
EXACT_MAX_N = 7
#: ``permutations="exact"`` is accepted up to this ``n`` (40320 pairings at n = 8).
ENUMERATE_MAX_N = 8
#: ``permutations="auto"`` draws this many pairings above `EXACT_MAX_N`.
DEFAULT_SAMPLES = 128
#: Pairings evaluated together are bounded so that one chunk of joint Grams holds at most this many entries.
CHUNK_ENTRIES = 1 << 22
#: A sampled table of pairings holds at most this many entries (count x n; 512 MiB as int64, as much again
#: for the uniforms it is drawn from): beyond it a count is refused, not left to fail in the allocator.
SAMPLED_MAX_ENTRIES = 1 << 26


def check_permutations(permutations: object) -> int | str | None:
    """The ``permutations`` argument of DiME, checked: ``None`` or ``"auto"``, ``"exact"``, or an int >= 1.

    Args:
        permutations: ``None`` or ``"auto"`` (all ``n!`` pairings for ``n <= 7`` samples, 128 sampled ones
            otherwise), ``"exact"`` (all pairings) or the number of pairings to sample.

    Returns:
        ``permutations`` as given, a count as a plain ``int``.

    Raises:
        TypeError: anything else than these.
        ValueError: a count below 1.

    Example:
        >>> from renyi_info.gram_level import check_permutations
        >>> check_permutations("exact"), check_permutations(64)
        ('exact', 64)
    """
    if permutations is None or permutations in ("auto", "exact"):
        return permutations  # type: ignore[return-value]
    if isinstance(permutations, bool) or not isinstance(permutations, numbers.Integral):
        raise TypeError(
            f"permutations must be None or 'auto' (all n! pairings for n <= {EXACT_MAX_N} samples, "
            f"{DEFAULT_SAMPLES} sampled ones otherwise), 'exact', or an int >= 1 (the number of pairings to "
            f"sample); got {permutations!r}"
        )
    if int(permutations) < 1:
        raise ValueError(
            f"permutations must be >= 1 sampled pairings (or 'auto'/'exact'); got {permutations}"
        )
    return int(permutations)


@functools.lru_cache(maxsize=16)
def _enumerated(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long).reshape(
        math.factorial(n), n
    )


def all_permutations(n: int, device: torch.device) -> torch.Tensor:
    """Every permutation of ``range(n)`` in lexicographic order (the identity first): ``(n!, n)`` int64.

    Built once per ``n`` (a training loss asks for the same table at every step) and copied to ``device``.
    """
    return _enumerated(n).to(device)


def sample_permutations(
    n: int, count: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``count`` permutations of ``range(n)`` drawn independently and uniformly: ``(count, n)`` int64.

    Each row is the argsort of ``n`` float64 uniforms drawn from ``generator`` (on the generator's device;
    torch's global generator when ``None``), so a seeded generator gives the same pairings on every device.
    Ties, which would bias the draw, have probability below ``n^2 2^{-53}``.
    """
    where = generator.device if generator is not None else torch.device("cpu")
    keys = torch.rand(count, n, generator=generator, device=where, dtype=torch.float64)
    return keys.argsort(-1).to(device)


def _permuted(b: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """``P_pi B P_pi^T`` for every row ``pi`` of ``perms``: ``(..., n, n)`` -> ``(..., P, n, n)``."""
    return b[..., perms[:, :, None], perms[:, None, :]]


def _shuffled_entropy_sum(
    ka: torch.Tensor, kb: torch.Tensor, perms: torch.Tensor, alpha: float, method: str, name: str
) -> torch.Tensor:
    """The sum over the rows of ``perms`` of the joint entropy of ``ka`` with ``kb`` shuffled: ``(...)``."""
    joint = ka.unsqueeze(-3) * _permuted(kb, perms)
    return exact.gram_entropy(joint, alpha, method, name).sum(-1)


def dime_nats(
    ka: torch.Tensor,
    kb: torch.Tensor,
    alpha: float,
    method: str,
    perms: torch.Tensor,
    names: tuple[str, str] = ("a", "b"),
) -> torch.Tensor:
    r"""DiME in nats: the mean joint entropy of ``ka`` with ``kb`` shuffled by each row of ``perms``, minus the
    joint entropy of the true pairing.

    Args:
        ka: ``(..., n, n)`` symmetric PSD Grams (unnormalised), trusted.
        kb: ``(..., n, n)`` Grams of the second view, same shape.
        alpha: a checked order (> 0, ``inf`` allowed).
        method: a resolved exact method (``"eig"``, ``"frobenius"``, ``"power"``).
        perms: ``(P, n)`` permutations (`all_permutations` or `sample_permutations`); the same pairings for
            every batch entry.
        names: how error messages call the two views.

    Returns:
        ``(...)`` in nats. Differentiable in ``ka`` and ``kb``. Pairings are evaluated in chunks of at most
        `CHUNK_ENTRIES` joint-Gram entries; when there are several chunks and a gradient is needed, each
        chunk is recomputed in the backward pass (activation checkpointing) instead of being kept, so the
        memory stays that of one chunk however many pairings there are.

    Raises:
        ValueError: a joint Gram of zero trace (possible for kernels without a unit diagonal).
    """
    joint_name = f"the Hadamard product of {names[0]} and {names[1]}"
    true_pairing = exact.gram_entropy(ka * kb, alpha, method, joint_name)
    n = ka.shape[-1]
    per_perm = max(1, ka[..., 0, 0].numel() * n * n)
    chunk = max(1, CHUNK_ENTRIES // per_perm)
    recompute = perms.shape[0] > chunk and torch.is_grad_enabled() and (ka.requires_grad or kb.requires_grad)
    total = torch.zeros_like(true_pairing)
    shuffled_name = f"the Hadamard product of {names[0]} and a shuffled {names[1]}"
    for start in range(0, perms.shape[0], chunk):
        part = perms[start : start + chunk]
        if recompute:
            value = checkpoint(
                _shuffled_entropy_sum, ka, kb, part, alpha, method, shuffled_name, use_reentrant=False
            )
        else:
            value = _shuffled_entropy_sum(ka, kb, part, alpha, method, shuffled_name)
        total = total + value
    return total / perms.shape[0] - true_pairing
