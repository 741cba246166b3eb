"""An independent float64 NumPy/SciPy reference for the matrix-based Rényi quantities.

Written from the definitions (InfoCLIP Eqs. 2-4, 7), sharing no code with ``renyi_info``: kernels are
built with explicit loops over sample pairs, spectra come from :func:`scipy.linalg.eigvalsh`, and each
order of the entropy uses its own formula (Rényi, von Neumann for alpha = 1, min-entropy for
alpha = inf). All results are in nats.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

#: Eigenvalues at or below this fraction of the largest are treated as exact zeros (round-off of a
#: rank-deficient Gram in float64 is ~1e-16 relative; genuine eigenvalues in the tests are far larger).
REL_ZERO = 1e-11


def kernel(
    x: np.ndarray, name: str, *, sigma: float | None = None, degree: int = 1, coef: float = 0.0
) -> np.ndarray:
    """Gram matrix ``(n, n)`` of the rows of ``x`` ``(n, d)``, one entry at a time."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    k = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            xi, xj = x[i], x[j]
            if name == "linear":
                k[i, j] = float(np.dot(xi, xj))
            elif name == "cosine":
                ni, nj = math.sqrt(float(np.dot(xi, xi))), math.sqrt(float(np.dot(xj, xj)))
                # a zero row is the zero vector after normalisation (carries no mass)
                k[i, j] = 0.0 if ni == 0.0 or nj == 0.0 else float(np.dot(xi, xj)) / (ni * nj)
            elif name == "polynomial":
                k[i, j] = (float(np.dot(xi, xj)) + coef) ** degree
            elif name == "gaussian":
                assert sigma is not None
                diff = xi - xj
                k[i, j] = math.exp(-float(np.dot(diff, diff)) / (2.0 * sigma * sigma))
            else:
                raise AssertionError(name)
    return k


def spectrum(k: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``k / tr k``, ascending, with round-off negatives and relative zeros set to 0."""
    k = np.asarray(k, dtype=np.float64)
    k = 0.5 * (k + k.T)
    lam = scipy.linalg.eigvalsh(k / np.trace(k))
    lam = np.where(lam > REL_ZERO * lam.max(), lam, 0.0)
    return lam


def renyi_of_probabilities(p: np.ndarray, alpha: float) -> float:
    """Classical Rényi entropy (nats) of a probability vector ``p`` (zeros allowed)."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    if math.isinf(alpha):
        return -math.log(float(p.max()))
    if alpha == 1.0:
        return -float(np.sum(p * np.log(p)))
    return math.log(float(np.sum(p**alpha))) / (1.0 - alpha)


def matrix_entropy(k: np.ndarray, alpha: float) -> float:
    """``S_alpha(K / tr K)`` in nats."""
    return renyi_of_probabilities(spectrum(k), alpha)


def matrix_joint_entropy(*ks: np.ndarray, alpha: float) -> float:
    """``S_alpha`` of the trace-normalised Hadamard product of the ``ks``."""
    prod = np.ones_like(np.asarray(ks[0], dtype=np.float64))
    for k in ks:
        prod = prod * np.asarray(k, dtype=np.float64)
    return matrix_entropy(prod, alpha)


def matrix_mutual_information(ka: np.ndarray, kb: np.ndarray, alpha: float) -> float:
    """``S(A) + S(B) - S(A, B)`` in nats."""
    return matrix_entropy(ka, alpha) + matrix_entropy(kb, alpha) - matrix_joint_entropy(ka, kb, alpha=alpha)


def entropy(x: np.ndarray, alpha: float, kernel_name: str, **params: object) -> float:
    return matrix_entropy(kernel(x, kernel_name, **params), alpha)


def joint_entropy(xs: list[np.ndarray], alpha: float, kernel_name: str, **params: object) -> float:
    return matrix_joint_entropy(*[kernel(x, kernel_name, **params) for x in xs], alpha=alpha)


def mutual_information(
    x: np.ndarray, y: np.ndarray, alpha: float, kernel_name: str, **params: object
) -> float:
    return matrix_mutual_information(
        kernel(x, kernel_name, **params), kernel(y, kernel_name, **params), alpha
    )


# --- the grid the tests sweep (plain data, no computation) -------------------------------------------

#: Orders tested everywhere: below 1, von Neumann, between 1 and 2, the Frobenius order, integer, min.
ALPHAS = (0.5, 1.0, 1.5, 2.0, 3.0, math.inf)

#: Kernel names and the parameters the tests use for each.
KERNEL_PARAMS: dict[str, dict[str, object]] = {
    "cosine": {},
    "linear": {},
    "polynomial": {"degree": 2, "coef": 1.0},
    "gaussian": {"sigma": 1.3},
}


def methods_for(alpha: float) -> list[str]:
    """Every ``method`` that can compute ``alpha``."""
    out = ["auto", "eig"]
    if alpha == 2.0:
        out.append("frobenius")
    if math.isfinite(alpha) and alpha == int(alpha) and alpha >= 2:
        out.append("power")
    return out
