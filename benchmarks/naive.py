"""The naive research-code references that renyi_info is compared against, and `max_rel_diff`.

They materialise the normalised Grams and their Hadamard products, call the full ``torch.linalg.eigh``
(eigenvectors too) and get their gradients from autograd; results are in bits.
"""

from __future__ import annotations

import torch


def max_rel_diff(value: torch.Tensor | float, reference: torch.Tensor | float) -> float:
    """``max |value - reference| / max(|reference|, tiny)`` over all elements, as a Python float."""
    v = torch.as_tensor(value, dtype=torch.float64)
    r = torch.as_tensor(reference, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny
    return float(((v - r).abs() / r.abs().clamp_min(tiny)).max())


def naive_gram(x: torch.Tensor, kernel: str = "cosine", sigma: float | None = None) -> torch.Tensor:
    """Trace-normalised Gram ``K / tr K`` of ``x`` ``(..., n, d)``, fully materialised.

    Kernels: ``cosine`` (F.normalize then ``x xᵀ``), ``linear`` (``x xᵀ``), ``gaussian``
    (``exp(-cdist(x, x)² / (2σ²))``).
    """
    if kernel == "cosine":
        z = torch.nn.functional.normalize(x, dim=-1)
        k = z @ z.transpose(-2, -1)
    elif kernel == "linear":
        k = x @ x.transpose(-2, -1)
    elif kernel == "gaussian":
        if sigma is None:
            raise ValueError("naive_gram: kernel='gaussian' needs sigma")
        k = torch.exp(-(torch.cdist(x, x) ** 2) / (2 * sigma**2))
    else:
        raise ValueError(f"naive_gram: kernel must be 'cosine', 'linear' or 'gaussian'; got {kernel!r}")
    trace = torch.diagonal(k, dim1=-2, dim2=-1).sum(-1)
    return k / trace[..., None, None]


def naive_renyi_entropy(a: torch.Tensor, alpha: float) -> torch.Tensor:
    """Rényi entropy in bits of a trace-one PSD matrix ``a``: full ``eigh`` (eigenvectors too), ``|λ|^α``.

    ``alpha = 1`` gives von Neumann's ``-Σ λ log2 λ``. This is the common research snippet; its
    gradient comes from autograd through ``torch.linalg.eigh``.
    """
    eigenvalues, _eigenvectors = torch.linalg.eigh(a)
    lam = torch.abs(eigenvalues)
    if alpha == 1:
        return -(lam * torch.log2(lam.clamp_min(1e-30))).sum(-1)
    return torch.log2(torch.sum(lam**alpha, dim=-1)) / (1 - alpha)


def naive_entropy(
    x: torch.Tensor, alpha: float = 2.0, kernel: str = "cosine", sigma: float | None = None
) -> torch.Tensor:
    """``S_α(K_x / tr K_x)`` in bits, naively (materialised Gram, full ``eigh``)."""
    return naive_renyi_entropy(naive_gram(x, kernel, sigma), alpha)


def naive_joint_entropy(
    *xs: torch.Tensor, alpha: float = 2.0, kernel: str = "cosine", sigma: float | None = None
) -> torch.Tensor:
    """Joint entropy in bits: Hadamard product of the normalised Grams, renormalised, full ``eigh``."""
    a = naive_gram(xs[0], kernel, sigma)
    for x in xs[1:]:
        a = a * naive_gram(x, kernel, sigma)
    trace = torch.diagonal(a, dim1=-2, dim2=-1).sum(-1)
    return naive_renyi_entropy(a / trace[..., None, None], alpha)


def naive_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 2.0,
    kernel: str = "cosine",
    sigma: float | None = None,
) -> torch.Tensor:
    """``I_α(x; y) = S(A) + S(B) - S(A∘B / tr(A∘B))`` in bits, naively (three full ``eigh`` calls)."""
    a = naive_gram(x, kernel, sigma)
    b = naive_gram(y, kernel, sigma)
    ab = a * b
    ab = ab / torch.diagonal(ab, dim1=-2, dim2=-1).sum(-1)[..., None, None]
    return naive_renyi_entropy(a, alpha) + naive_renyi_entropy(b, alpha) - naive_renyi_entropy(ab, alpha)
