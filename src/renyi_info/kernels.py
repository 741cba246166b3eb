r"""Kernel Gram matrices of sample features.

The one home of every kernel (about 610 lines on purpose): each kernel's definition, with everything a
route needs to know about it, stands here and nowhere else.

All kernels map features ``x`` of shape ``(..., n, d)`` to a symmetric positive semi-definite Gram
matrix ``K`` of shape ``(..., n, n)``:

$$
\text{cosine:}\; K_{ij} = \frac{x_i^\top x_j}{\lVert x_i\rVert\,\lVert x_j\rVert} \qquad
\text{linear:}\; K_{ij} = x_i^\top x_j \qquad
\text{polynomial:}\; K_{ij} = (x_i^\top x_j + c)^{p} \qquad
\text{gaussian:}\; K_{ij} = \exp\!\Big(-\frac{\lVert x_i - x_j\rVert^2}{2\sigma^2}\Big)
$$

``cosine`` is the paper's degree-1 polynomial kernel on L2-normalised rows (InfoCLIP Eq. 7) and the
default everywhere. A row of zero norm under ``cosine`` is a zero vector after normalisation (the
``torch.nn.functional.normalize`` convention): its row and column of ``K`` are zero, so the sample
carries no mass and the entropy is that of the remaining samples. If every row is zero the Gram has
zero trace and the functions raise a ``ValueError``.

``label`` is the kernel of a discrete variable: $K_{ij} = 1$ if $y_i = y_j$, else 0 (the
Gram of one-hot codes). It takes integer or bool class labels of shape ``(..., n)`` or ``(..., n, 1)``
(a trailing dimension of size 1 is dropped, so write a batch of ``B`` single-label sets as
``(B, 1, 1)``); floating-point input is rejected with a ``TypeError`` rather than guessed to be
integral, so that features are never silently read as class ids. Since $L \circ L = L$,
$S(Y, Y) = S(Y)$ and $S(Y \mid Y) = 0$.

The Gaussian bandwidth can be a number or a rule evaluated on each batch entry (see
`renyi_info.bandwidth`): ``sigma="silverman"`` or ``sigma="median"``.

Each kernel is defined once, as a subclass of `KernelSpec` registered in `KERNEL_TYPES`: its parameters,
its Gram, its rescaling, its diagonal, its tile form and features for the fused tiles, its Lanczos operands
and whether it is bounded. The routes (`renyi_info.algorithms`) ask the definition and never test a name.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, TypeVar

import torch

from ._validation import check_features, check_finite, finite_abs_max, public, resolve_dtype
from .bandwidths import BANDWIDTH_RULES, abs_max, rule_bandwidth
from .types import BandwidthRule, KernelName

#: ``sqrt(tiny)`` of each floating dtype. Kernel entries below it (relative to the unit diagonal) are
#: flushed to zero: products of two of them would be subnormal (a 10-100x slow path of CPU matrix
#: products), and they are 1e-19 (float32) or 1e-154 (float64) of the diagonal, far below its rounding.
SQRT_TINY = {
    dt: math.sqrt(torch.finfo(dt).tiny)
    for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the rows (last dim) of ``x``; zero rows stay zero.

    Each row is first divided by its largest ``|entry|`` (exactly scale-free: its squared norm can then
    neither overflow nor underflow, whatever the row's scale, from subnormal to ``finfo.max``). A row is
    zero only when all its entries are 0: the cosine kernel is invariant to each row's scale, so a
    small row is a direction like any other.
    """
    m = abs_max(x, (-1,))
    y = x / m
    norm = torch.linalg.vector_norm(y, dim=-1, keepdim=True)  # in [1, sqrt(d)] for non-zero rows
    nonzero = norm > 0
    # A zero row is scaled by 0 (not divided by its zero norm): the same value, and a zero gradient, so a
    # massless sample does not perturb training.
    return torch.where(nonzero, y / torch.where(nonzero, norm, torch.ones_like(norm)), torch.zeros_like(y))


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances ``(..., n, n)`` with an exact zero diagonal."""
    sq = (x * x).sum(-1)
    d2 = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * (x @ x.mT)
    n = x.shape[-2]
    off_diag = 1.0 - torch.eye(n, dtype=x.dtype, device=x.device)
    return d2.clamp_min(0.0) * off_diag


def gaussian_kernel(x: torch.Tensor, sigma: float | str) -> torch.Tensor:
    r"""Gaussian Gram $\exp(-\lVert x_i-x_j\rVert^2/(2\sigma^2))$ ``(..., n, n)``, scale-proof.

    The features are divided by their largest ``|entry|`` ``m`` (per batch entry) and the bandwidth by
    the same ``m``: the same kernel, but no square over- or underflows (features at 1e-30 in float32 and
    bandwidth rules give the kernel of the unscaled data; a tiny ``sigma`` gives the identity). Entries
    below `SQRT_TINY` are flushed to zero (subnormal values would slow every later product).
    """
    m = abs_max(x, (-2, -1))
    y = x / m
    if isinstance(sigma, str):
        c = rule_bandwidth(y, sigma).to(y.dtype)[..., None, None] ** -2.0
    else:
        c = (m / sigma) ** 2  # 1 / sigma_y^2
    c = c.clamp_max(torch.finfo(x.dtype).max)
    d2 = squared_distances(y)
    expo = torch.where(d2 > 0, d2 * (-0.5 * c), torch.zeros_like(d2))
    cut = math.log(SQRT_TINY[x.dtype])
    return torch.exp(torch.where(expo < cut, torch.full_like(expo, -math.inf), expo))


def check_kernel_range(
    name: str, x: torch.Tensor, spec: KernelSpec, dtype: torch.dtype | None = None
) -> None:
    r"""Refuse a linear/polynomial Gram whose entries or their squares would leave ``dtype``'s range
    (default: ``x``'s dtype; a narrower one where the Gram is formed after a cast).

    The largest entry of such a Gram is on the diagonal, $(\lVert x_i\rVert^2 + c)^p$; its square
    (Frobenius sums) and ``n`` of them (the trace) must stay finite and its value above ``tiny / eps``.
    """
    if x.numel() == 0:
        return
    limits = dtype or x.dtype
    info = torch.finfo(limits)
    m = abs_max(x, (-2, -1))
    r2 = (torch.linalg.vector_norm(x / m, dim=-1) ** 2).amax(-1)
    log_r2 = torch.log(r2) + 2.0 * torch.log(m.reshape(r2.shape))
    log_coef = math.log(spec.coef) if spec.coef > 0 else -math.inf
    log_top = spec.degree * torch.logaddexp(log_r2, torch.full_like(log_r2, log_coef))
    n = x.shape[-2]
    high = 0.5 * (math.log(info.max) - 2.0 * math.log(n))
    low = math.log(info.tiny) - math.log(info.eps)
    top = float(log_top.detach().amax()) if bool((log_r2 > -math.inf).any()) else -math.inf
    bottom = float(log_top.detach().amin())
    if top > high or (bottom < low and bottom > -math.inf):
        what = "overflows" if top > high else "underflows"
        value = top if top > high else bottom
        raise ValueError(
            f"kernel={spec.name!r} {what} {limits} on {name}: the largest Gram entry (|x_i|^2 + coef)^degree "
            f"of a batch entry is about 1e{value / math.log(10):.0f}, outside the range where its square and sums "
            f"are finite in {limits}. Rescale {name} (e.g. {name} / {name}.abs().amax()), lower the degree or "
            "coef, pass compute_dtype=torch.float64, or use kernel='cosine' (invariant to the scale of each row)"
        )


# ---- the kernel definitions: one class per kernel, the only place that knows what a kernel is ----------

#: Tile forms: how the tile code (the PyTorch tiles of `renyi_info.algorithms.fused`, the Lanczos row tiles and
#: the Triton kernels, whose ``KIND`` constants these numbers are) evaluates a kernel tile from one product of
#: operands. ``TILE_DOT``: the product itself; ``TILE_POLYNOMIAL``: ``(S + coef)^degree``; ``TILE_GAUSSIAN``:
#: ``exp(-gamma ||x_i - x_j||^2)``; ``TILE_LABEL``: ``[y_i == y_j]``. A kernel names its form in `KernelSpec.tile`.
TILE_DOT, TILE_POLYNOMIAL, TILE_GAUSSIAN, TILE_LABEL = 0, 1, 2, 3


@dataclass(frozen=True)
class TileKernel:
    """A kernel as the tile code sees it: a tile form and its parameters (from `KernelSpec.tile`)."""

    kind: int
    degree: int = 1
    coef: float = 0.0
    gamma: float = 0.0


class LanczosOperands(NamedTuple):
    """What the Lanczos row tiles of one kernel need (`KernelSpec.lanczos_operands`), batch ``(B, n, .)``.

    A tile is ``left[rows] @ right[:, cols]`` followed by the tile form of ``tile`` (for ``TILE_GAUSSIAN``,
    the product is already the exponent); ``x`` holds the features the dot-product shortcuts use and
    ``diag`` ``(B, n)`` the kernel's diagonal (its sum is the trace).
    """

    tile: TileKernel
    x: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    diag: torch.Tensor


@dataclass(frozen=True)
class KernelSpec:
    """A validated kernel choice: the kernel's definition (its class) and its parameters.

    Each kernel is one subclass registered in `KERNEL_TYPES` (`make_kernel` builds it). The subclass owns
    everything the routes need to know about the kernel: the check of its parameters (`make`), its Gram
    (`gram`), the rescaling that keeps its trace-normalised Gram unchanged (`scale`), the features and tile
    form of the fused tiles (`tile_features`, `tile`), its diagonal (`diagonal`), the operands of the
    Lanczos mat-vecs (`lanczos_operands`) and whether its entries are bounded (`bounded`).
    """

    name: str
    sigma: float | str | None = None  # a number or a rule in BANDWIDTH_RULES (gaussian only)
    degree: int = 1
    coef: float = 0.0

    #: Entries in [-1, 1] for inputs of any scale (so float32 mat-vecs can hold them).
    bounded: ClassVar[bool] = False
    #: Takes integer class labels ``(..., n)`` instead of floating features.
    takes_labels: ClassVar[bool] = False
    #: Takes a bandwidth ``sigma`` (every other kernel refuses one).
    takes_sigma: ClassVar[bool] = False

    @classmethod
    def make(cls, name: str, sigma: object, degree: object, coef: object) -> KernelSpec:
        """The spec of this kernel after checking its parameters (``sigma`` is only for the Gaussian)."""
        if sigma is not None:
            raise ValueError(
                f"sigma is only used by kernel='gaussian'; got sigma={sigma!r} with kernel={name!r}"
            )
        return cls(name)

    @property
    def is_dot_product(self) -> bool:
        """True for kernels that are a dot product of (possibly normalised) features (the ``feature`` and
        ``dual`` routes need it)."""
        return False

    @property
    def homogeneous(self) -> bool:
        """True when the Gram of ``c x`` is ``c^2`` times the Gram of ``x`` (so the trace-normalised Gram
        does not depend on the features' scale, and a power-of-two rescaling is exact)."""
        return False

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised Gram ``(..., n, n)`` of validated features (computed in ``x``'s dtype)."""
        raise NotImplementedError

    def check_range(self, name: str, x: torch.Tensor, dtype: torch.dtype | None = None) -> None:
        """Refuse features whose Gram would leave ``dtype``'s range (default ``x``'s; nothing for bounded
        kernels)."""

    def scale(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Features rescaled so that the *trace-normalised* Gram is unchanged and nothing over/underflows
        (a constant for autograd); ``x`` itself where the Gram is not scale-free."""
        return x

    def tile(self) -> TileKernel:
        """The tile form of this kernel on `tile_features`."""
        return TileKernel(TILE_DOT)

    def tile_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features the fused tiles use (differentiably), for the form `tile`."""
        return x

    def diagonal(self, x: torch.Tensor) -> torch.Tensor:
        """The Gram's diagonal ``(..., n)`` from the features, differentiable."""
        z = self.tile_features(x)
        return (z * z).sum(-1)

    def lanczos_operands(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> LanczosOperands:
        """The operands of the Lanczos row tiles for batched features ``(B, n, d)``: by default the
        `tile_features` for the form `tile` and the `diagonal`, normalised in ``x``'s dtype and then cast to
        ``dtype`` (default: ``x``'s)."""
        z = self.tile_features(x)
        return self._operands(z, z, z.mT, self.diagonal(x), dtype)

    def _operands(
        self,
        x: torch.Tensor,
        left: torch.Tensor,
        right: torch.Tensor,
        diag: torch.Tensor,
        dtype: torch.dtype | None,
    ) -> LanczosOperands:
        """`LanczosOperands` cast to ``dtype``; operands it cannot hold are an error.

        Only a cast to a narrower range can overflow: operands already in ``dtype`` are finite (they are
        formed from validated features), and are not scanned again.
        """
        low = dtype or x.dtype
        narrowed = any(torch.finfo(t.dtype).max > torch.finfo(low).max for t in (left, right))
        if narrowed and torch.finfo(x.dtype).max > torch.finfo(low).max:
            try:  # features in range for their own dtype may not be for ``low``: their Gram is formed there
                self.check_range("the features", x, low)
            except ValueError:
                raise ValueError(
                    f"the {self.name} kernel's Gram of these features leaves the range of {low}, the dtype of the "
                    f"mat-vecs (LanczosOptions(matvec_dtype={low})): its entries or their sums overflow or "
                    "underflow there. Use LanczosOptions(matvec_dtype=None) (automatic) or torch.float64"
                ) from None
        # row blocks of ``left`` are read contiguously; ``right`` (often a transposed view) goes to the
        # matrix products as it is: a transposed copy of 2048 x 1024 features cost as much as 5 mat-vecs
        x, left, right = x.to(low).contiguous(), left.to(low).contiguous(), right.to(low)
        if narrowed and not all(bool(t.isfinite().all()) for t in (left, right)):
            raise ValueError(
                f"the {self.name} kernel's operands overflow {low} (features too large for float32 "
                "mat-vecs). Use LanczosOptions(matvec_dtype=None) (automatic) or torch.float64"
            )
        return LanczosOperands(self.tile(), x, left, right, diag)


#: The kernel definitions by name, in the order of `KERNELS` (`make_kernel` looks them up here).
KERNEL_TYPES: dict[str, type[KernelSpec]] = {}

_K = TypeVar("_K", bound=type[KernelSpec])


def _register(name: str) -> Callable[[_K], _K]:
    def add(cls: _K) -> _K:
        KERNEL_TYPES[name] = cls
        return cls

    return add


@_register("cosine")
@dataclass(frozen=True)
class CosineKernel(KernelSpec):
    r"""$K_{ij} = x_i^\top x_j / (\lVert x_i\rVert\,\lVert x_j\rVert)$: linear on L2-normalised rows."""

    bounded: ClassVar[bool] = True

    @property
    def is_dot_product(self) -> bool:
        return True

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        z = normalize_rows(x)
        return z @ z.mT

    def tile_features(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_rows(x)


def _homogeneous_scale(x: torch.Tensor) -> torch.Tensor:
    """``x`` divided by its largest row norm (per batch entry): every entry of ``x x^T`` is then at most 1."""
    y = x / abs_max(x, (-2, -1))
    r = torch.linalg.vector_norm(y, dim=-1, keepdim=True).amax(-2, keepdim=True).detach()
    return y / torch.where(r > 0, r, torch.ones_like(r))


@_register("linear")
@dataclass(frozen=True)
class LinearKernel(KernelSpec):
    r"""$K_{ij} = x_i^\top x_j$."""

    @property
    def is_dot_product(self) -> bool:
        return True

    @property
    def homogeneous(self) -> bool:
        return True

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        return x @ x.mT

    def check_range(self, name: str, x: torch.Tensor, dtype: torch.dtype | None = None) -> None:
        check_kernel_range(name, x, self, dtype)

    def scale(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return _homogeneous_scale(x)


@_register("polynomial")
@dataclass(frozen=True)
class PolynomialKernel(KernelSpec):
    r"""$K_{ij} = (x_i^\top x_j + c)^p$ (``degree`` $p \ge 1$, ``coef`` $c \ge 0$)."""

    @classmethod
    def make(cls, name: str, sigma: object, degree: object, coef: object) -> KernelSpec:
        super().make(name, sigma, degree, coef)
        if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or int(degree) < 1:
            raise ValueError(f"degree must be an integer >= 1; got {degree!r}")
        if (
            isinstance(coef, bool)
            or not isinstance(coef, numbers.Real)
            or not (0 <= float(coef) < float("inf"))
        ):
            raise ValueError(
                f"coef must be a finite real >= 0 (a negative offset can make the kernel indefinite); got {coef!r}"
            )
        return cls(name, None, int(degree), float(coef))

    @property
    def is_dot_product(self) -> bool:
        return self.degree == 1 and self.coef == 0

    @property
    def homogeneous(self) -> bool:
        return self.is_dot_product

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        k = x @ x.mT
        if self.coef:
            k = k + self.coef
        return k if self.degree == 1 else k.pow(self.degree)

    def check_range(self, name: str, x: torch.Tensor, dtype: torch.dtype | None = None) -> None:
        check_kernel_range(name, x, self, dtype)

    def scale(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.coef == 0:  # homogeneous: the normalised Gram does not depend on the scale
            return _homogeneous_scale(x)
        self.check_range(name, x)
        return x

    def tile(self) -> TileKernel:
        return (
            TileKernel(TILE_DOT)
            if self.is_dot_product
            else TileKernel(TILE_POLYNOMIAL, self.degree, self.coef)
        )

    def diagonal(self, x: torch.Tensor) -> torch.Tensor:
        sq = (x * x).sum(-1)
        if self.coef:
            sq = sq + self.coef
        return sq.pow(self.degree) if self.degree != 1 else sq


@_register("gaussian")
@dataclass(frozen=True)
class GaussianKernel(KernelSpec):
    r"""$K_{ij} = \exp(-\lVert x_i - x_j\rVert^2 / (2\sigma^2))$, ``sigma`` a number or a bandwidth rule."""

    bounded: ClassVar[bool] = True
    takes_sigma: ClassVar[bool] = True

    @classmethod
    def make(cls, name: str, sigma: object, degree: object, coef: object) -> KernelSpec:
        if sigma is None:
            raise ValueError(
                "kernel='gaussian' needs a bandwidth: pass sigma=<float > 0>, sigma='silverman' or "
                "sigma='median' (the kernel is exp(-|x-y|^2 / (2 sigma^2)))"
            )
        if isinstance(sigma, str):
            if sigma not in BANDWIDTH_RULES:
                raise ValueError(
                    f"sigma must be a number > 0 or one of the bandwidth rules {BANDWIDTH_RULES}; got {sigma!r}"
                )
            return cls(name, sigma)
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
            raise TypeError(f"sigma must be a real number > 0, 'silverman' or 'median'; got {sigma!r}")
        if not (float(sigma) > 0 and float(sigma) < float("inf")):
            raise ValueError(f"sigma must be finite and > 0; got {sigma}")
        return cls(name, float(sigma))

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        assert self.sigma is not None
        return gaussian_kernel(x, self.sigma)

    def scale(self, name: str, x: torch.Tensor) -> torch.Tensor:
        # a bandwidth rule is scale-free; a numeric bandwidth is not
        return x / abs_max(x, (-2, -1)) if isinstance(self.sigma, str) else x

    def tile(self) -> TileKernel:
        return TileKernel(TILE_GAUSSIAN, gamma=0.5)  # on tile_features, pre-scaled by 1 / sigma

    def tile_features(self, x: torch.Tensor) -> torch.Tensor:
        """``x / sigma`` (for a bandwidth rule, the rule's per-entry ``sigma``, a constant as in `gram`), so
        that the tiles use $\\gamma = 1/2$ exactly in any precision."""
        assert self.sigma is not None
        if isinstance(self.sigma, str):
            sigma = rule_bandwidth(x, self.sigma).to(x.dtype)
            return x / sigma[..., None, None]
        return x / self.sigma

    def diagonal(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)

    def lanczos_operands(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> LanczosOperands:
        """The exponent ``-|x_i - x_j|^2 / (2 sigma^2) = [2s x_i, -s, -s|x_i|^2] . [x_j, |x_j|^2, 1]`` as one
        product, on ``x / m`` with ``sigma / m`` (``m`` the largest ``|entry|``: no square over/underflows)."""
        assert self.sigma is not None
        m = abs_max(x, (-2, -1))  # (B, 1, 1)
        x = x / m
        sq = (x * x).sum(-1)
        if isinstance(self.sigma, str):
            sigma = rule_bandwidth(x, self.sigma).to(x.dtype)[:, None, None]
        else:
            sigma = self.sigma / m
        # |x| <= 1 entrywise, so |s x_i . x_j| <= s d: capping s at max / (8 d) keeps the three terms
        # of the exponent finite (a larger s only makes exp(-s |xi - xj|^2) an exact 0)
        s = (0.5 / sigma**2).clamp_max(torch.finfo(dtype or x.dtype).max / (8.0 * x.shape[-1]))
        ones = torch.ones_like(sq)[..., None]
        left = torch.cat([2.0 * s * x, -s * ones, -s * sq[..., None]], dim=-1)
        right = torch.cat([x, sq[..., None], ones], dim=-1).mT
        return self._operands(x, left, right, torch.ones_like(sq), dtype)


@_register("label")
@dataclass(frozen=True)
class LabelKernel(KernelSpec):
    r"""$K_{ij} = [y_i = y_j]$ of integer class labels (canonical codes ``(..., n, 1)``, see
    `renyi_info._validation.check_labels`)."""

    bounded: ClassVar[bool] = True
    takes_labels: ClassVar[bool] = True

    def gram(self, x: torch.Tensor) -> torch.Tensor:
        return (x == x.mT).to(x.dtype)  # exact in any float dtype

    def tile(self) -> TileKernel:
        return TileKernel(TILE_LABEL)

    def diagonal(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)


#: The kernel names (the keys of `KERNEL_TYPES`).
KERNELS: tuple[str, ...] = tuple(KERNEL_TYPES)


def takes_labels(kernel: object) -> bool:
    """Whether the kernel named ``kernel`` takes integer labels (False for unknown names: `make_kernel`
    refuses those)."""
    cls = KERNEL_TYPES.get(kernel) if isinstance(kernel, str) else None
    return cls is not None and cls.takes_labels


def takes_sigma(kernel: object) -> bool:
    """Whether the kernel named ``kernel`` takes a bandwidth ``sigma`` (False for unknown names)."""
    cls = KERNEL_TYPES.get(kernel) if isinstance(kernel, str) else None
    return cls is not None and cls.takes_sigma


def make_kernel(
    kernel: object, *, sigma: object = None, degree: object = 1, coef: object = 0.0
) -> KernelSpec:
    """Validate a kernel name and its parameters and return its `KernelSpec` (an instance of its definition)."""
    if not isinstance(kernel, str) or kernel not in KERNEL_TYPES:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    return KERNEL_TYPES[kernel].make(kernel, sigma, degree, coef)


def kernel_matrix(x: torch.Tensor, spec: KernelSpec) -> torch.Tensor:
    """Unnormalised Gram of already validated features (computed in ``x``'s dtype): ``spec.gram(x)``."""
    return spec.gram(x)


def scale_features(name: str, x: torch.Tensor, spec: KernelSpec) -> torch.Tensor:
    """Features rescaled so that the *trace-normalised* Gram is unchanged and nothing over/underflows.

    Linear and polynomial kernels with ``coef = 0`` are homogeneous: ``x`` is divided by its largest row
    norm (per batch entry), so every Gram entry is at most 1. A Gaussian kernel with a bandwidth rule is
    scale-free: ``x`` is divided by its largest ``|entry|``. Polynomial kernels with ``coef > 0`` are
    not scale-free: they are checked (`check_kernel_range`). The scales are constants for autograd
    (exact: the normalised Gram does not depend on them). Each kernel's rule is its `KernelSpec.scale`.
    """
    return spec.scale(name, x)


def safe_exponent(dtype: torch.dtype, n: int, d: int) -> int:
    r"""The largest ``W`` such that features with $\max|x| \in [2^{-W}, 2^{W}]$ need no rescaling.

    For a dot-product Gram the largest quantities formed are the Frobenius sums $\le n^2 d^2 \max|x|^4$
    (and their round-off): they stay below ``2^-8`` of the dtype's largest value when
    $4W + 2\log_2(nd) + 8 \le \log_2(\text{max})$. The same window keeps $\max|x|^2$ far above the
    smallest normal number.
    """
    top = math.log2(torch.finfo(dtype).max)
    return max(0, int((top - 2.0 * math.log2(max(n * d, 1)) - 8.0) // 4))


def times_power_of_two(x: torch.Tensor, k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x 2^k`` in ``dtype``: ``x`` ``(..., n, d)``, integer exponents ``k`` ``(...)``, one per matrix.

    Exact wherever the result is a normal number. The factor is formed in the wider of ``x``'s dtype and
    ``dtype``; where ``2^k`` is beyond that dtype's range (the scale of subnormal float64 entries is up to
    ``2^1074``; float32 entries need up to ``2^149``, beyond float32) it is applied as two factors
    ``2^(k//2)`` and ``2^(k - k//2)``, each in range. One factor needs one pass over ``x``, the cast
    included.
    """
    wide = torch.promote_types(x.dtype, dtype)
    one = torch.ones(k.shape, dtype=wide, device=x.device)
    if bool((k.abs() <= int(math.log2(torch.finfo(wide).max))).all()):
        return (x * torch.ldexp(one, k)[..., None, None]).to(dtype)
    half = torch.div(k, 2, rounding_mode="floor")
    return (x * torch.ldexp(one, half)[..., None, None] * torch.ldexp(one, k - half)[..., None, None]).to(
        dtype
    )


def condition_features(name: str, x: torch.Tensor, spec: KernelSpec, dtype: torch.dtype) -> torch.Tensor:
    """Checked features ``x`` made ready for ``spec`` in ``dtype``: one pass over a large input.

    Every kernel: the finiteness check is the pass that finds the largest ``|x|`` (`finite_abs_max`).
    Homogeneous kernels (`KernelSpec.homogeneous`: the trace-normalised Gram does not depend on the scale
    of ``x``): ``x`` is multiplied by a power of two ``2^-e`` (exact in binary floating point: the Gram is
    the unscaled one times ``4^-e``, bit for bit) and only when its largest entry lies outside the window
    where nothing can overflow or underflow (`safe_exponent`): usually the features go to the Gram
    untouched, or cast to ``dtype`` in the same pass as the scaling. Other kernels: the cast, then their
    `KernelSpec.scale`. Labels are cast only.
    """
    if spec.takes_labels:
        return x.to(dtype)
    m = finite_abs_max(name, x)
    if not spec.homogeneous:
        return spec.scale(name, x.to(dtype))
    _, exponent = torch.frexp(m.to(torch.float64))  # m = mantissa * 2^exponent, mantissa in [1/2, 1)
    window = safe_exponent(dtype, x.shape[-2], x.shape[-1])
    if m.numel() == 0 or bool(((m == 0) | (exponent.abs() <= window)).all()):
        return x.to(dtype)
    return times_power_of_two(x, torch.where(m > 0, -exponent, torch.zeros_like(exponent)), dtype)


def check_trace(name: str, trace: torch.Tensor) -> None:
    """A Gram with zero trace has no normalisation (every row zero under cosine, all-zero features...)."""
    if trace.numel() and not bool((trace > 0).all()):
        raise ValueError(
            f"the Gram matrix of {name} has zero trace (for example every row of {name} is zero), so it cannot "
            "be trace-normalised; give each batch entry at least one non-zero sample"
        )


@public
def gram(
    x: torch.Tensor,
    kernel: KernelName = "cosine",
    *,
    sigma: float | BandwidthRule | None = None,
    degree: int = 1,
    coef: float = 0.0,
    normalize: bool = True,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Gram matrix of the samples in ``x``, trace-normalised by default (InfoCLIP Eq. 7).

    $$
    A = \frac{K}{\operatorname{tr} K}, \qquad K_{ij} = \kappa(x_i, x_j)
    $$

    Args:
        x: features ``(..., n, d)``: leading batch dims, ``n`` samples, ``d`` features; for
            ``kernel="label"`` integer class labels ``(..., n)`` or ``(..., n, 1)``.
        kernel: ``"cosine"`` (default), ``"linear"``, ``"polynomial"``, ``"gaussian"`` or ``"label"``
            (module docs).
        sigma: Gaussian bandwidth (required for ``"gaussian"``, rejected otherwise): a number, or
            ``"silverman"`` / ``"median"`` for a rule evaluated per batch entry (`bandwidth`).
        degree: polynomial degree (``"polynomial"`` only).
        coef: polynomial offset ``c >= 0`` (``"polynomial"`` only).
        normalize: divide by the trace so that ``tr A = 1``.
        compute_dtype: ``torch.float32`` or ``torch.float64``; default: the input's dtype, at least float32.

    Returns:
        ``(..., n, n)`` in the compute dtype.

    Raises:
        TypeError: ``x`` is not a floating tensor.
        ValueError: bad shape, non-finite values, unknown kernel or parameters, or zero trace.

    Example:
        >>> import torch, renyi_info
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
        >>> renyi_info.gram(x)
        tensor([[0.3333, 0.0000, 0.3333],
                [0.0000, 0.3333, 0.0000],
                [0.3333, 0.0000, 0.3333]])
    """
    x = check_features("x", x, labels=takes_labels(kernel))
    check_finite("x", x)
    spec = make_kernel(kernel, sigma=sigma, degree=degree, coef=coef)
    x = x.to(resolve_dtype((x.dtype,), compute_dtype))
    if not normalize:
        spec.check_range("x", x)
        return spec.gram(x)
    k = spec.gram(spec.scale("x", x))
    trace = k.diagonal(dim1=-2, dim2=-1).sum(-1)
    check_trace("x", trace)
    return k / trace[..., None, None]
