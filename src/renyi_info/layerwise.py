r"""Entropies of hidden states layer by layer: prompt entropy, dataset entropy, effective rank, Diff-eRank.

One module (about 680 lines) on purpose: its four public quantities share one door (the checks of hidden
states, masks and options), one pooling and one batched spectral path (length buckets, primal or dual
Gram by shape, the Lanczos route), and splitting them would spread that path over several files.

Hidden states arrive as a model returns them: ``(L, B, T, d)`` (layers, sequences, token positions,
features) or a sequence of ``L`` tensors ``(B, T, d)`` (a Hugging Face model's ``hidden_states``), with
an attention mask ``(B, T)`` (1 = token, 0 = padding; left or right padding, or holes). Every function
computes all layers and all sequences in one batched call, on the device of the tensors.

**Matrix-based entropy.** For the ``n`` token vectors of a sequence (rows of $Z \in \mathbb{R}^{n\times d}$),
optionally centred ($z_i - \bar z$, the mean over the sequence's real tokens) and optionally scaled to
unit norm (``kernel="cosine"``),

$$
S_\alpha(Z) = \frac{1}{1-\alpha}\log\sum_{i}\Big(\frac{\lambda_i(ZZ^\top)}{\operatorname{tr} ZZ^\top}\Big)^\alpha,
\qquad S_1(Z) = -\sum_i p_i\log p_i,\; p_i = \frac{\lambda_i}{\operatorname{tr}},
$$

in nats unless ``base`` says otherwise, $0 \le S_\alpha \le \log\min(n, d)$.

* **Prompt entropy** (Skean et al., *Layer by Layer*, ICML 2025): $S_\alpha$ of each sequence's token Gram,
  per layer: ``(L, B)``. Their convention: linear kernel, no centring, α = 1 by default, normalised by
  ``maxEntropy`` $=\log\min(N, D)$ (``normalization="max"``; they also report raw, $\log N$ and
  $\log D$).
* **Dataset entropy** (same paper): one vector per sequence (the mean of its real tokens, or its last real
  token), then $S_\alpha$ of the ``B x B`` Gram of these vectors, per layer: ``(L,)``.
* **Effective rank** (Wei et al., *Diff-eRank*, NeurIPS 2024): $\operatorname{eRank}(Z) = \exp S_1(Z)$
  with the tokens centred and scaled to unit norm (their normalised covariance
  $\Sigma = \frac1n\sum_i \tilde z_i\tilde z_i^\top$, $\tilde z_i = (z_i-\bar z)/\lVert z_i-\bar z\rVert$, has
  the non-zero spectrum of $\tilde Z\tilde Z^\top/n$). It is the exponential of the von Neumann entropy of the
  covariance, i.e. of the *squared* singular values of $\tilde Z$ (RankMe, Garrido et al. 2023, uses the
  singular values themselves: a different number).
* **Diff-eRank** (Wei et al.): $\operatorname{eRank}(\text{reference}) - \operatorname{eRank}(\text{model})$ on
  the same inputs; the paper's reference is the untrained model of the same configuration, its model the
  trained one, and the difference of a data set is taken between $\exp$ of the *mean entropy* over its
  sequences (``reduction="dataset"``).

**Padding.** A padded position's row is set to zero (whatever the model wrote there, NaN included): the
Gram of the padded sequence is that of its real tokens bordered by zero rows and columns, so its
spectrum is theirs plus ``T - n`` zeros, which contribute nothing at any α (they are below the eigenvalue
floor at α ≤ 1 and add $0^\alpha = 0$ above). Variable lengths therefore share one batched call. Under
``kernel="cosine"`` a zero row stays zero. Centring subtracts the mean of the real tokens only.

**Route.** With $d < T$ the ``d x d`` dual $Z^\top Z$ (same non-zero spectrum, zero rows add nothing to it)
replaces the ``T x T`` Gram. α = 2 alone needs no spectrum ($S_2 = -\log\lVert A\rVert_F^2$); any other
order or a sequence of orders (one spectrum for all of them) is exact by eigenvalues, in float64 when an
order is ≤ 1 (the library's precision rule). ``method="lanczos"`` estimates long prompts matrix-free
(`renyi_info.LanczosOptions`), sequences grouped by length.

Every function validates its arguments once and raises a ``ValueError`` naming the argument, the layer
and the sequence for: a mask that does not match the hidden states, a sequence with no token (or, with
``centre=True`` or ``pooling`` over one vector, nothing left after centring), non-finite real tokens.
The exact methods are differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch

from ._units import to_base
from ._validation import (
    autocast_disabled,
    check_alphas,
    check_base,
    check_flag,
    check_not_meta,
    largest_abs,
    needs_float64,
)
from .algorithms import exact
from .algorithms import lanczos as slq
from .algorithms.lanczos.options import check_options
from .kernels import KernelSpec, normalize_rows, safe_exponent, times_power_of_two

__all__ = [
    "NORMALIZATIONS",
    "POOLINGS",
    "dataset_entropy",
    "diff_erank",
    "effective_rank",
    "pool",
    "prompt_entropy",
]

Normalization = Literal["none", "log_n", "log_d", "max"]
Pooling = Literal["mean", "last"]
#: ``none``: nats (or ``base``); ``log_n``: divided by $\log N$ (N samples of each Gram); ``log_d``: by
#: $\log d$; ``max``: by $\log\min(N, d)$, the largest value the entropy can take (Skean et al.'s
#: ``maxEntropy``).
NORMALIZATIONS: tuple[str, ...] = ("none", "log_n", "log_d", "max")
#: One vector per sequence for the dataset entropy: the mean of its real tokens, or its last real token.
POOLINGS: tuple[str, ...] = ("mean", "last")
METHODS: tuple[str, ...] = ("auto", "eig", "lanczos")
KERNELS: tuple[str, ...] = ("linear", "cosine")


# ---- validation (once, here) ------------------------------------------------------------------------------


def _check_hidden(name: str, hidden: object) -> torch.Tensor:
    """``(L, B, T, d)`` real floating hidden states, or a sequence of ``L`` tensors ``(B, T, d)``."""
    if isinstance(hidden, (list, tuple)):
        if not hidden:
            raise ValueError(f"{name} is an empty sequence; pass one (B, T, d) tensor per layer")
        bad = [i for i, h in enumerate(hidden) if not isinstance(h, torch.Tensor) or h.dim() != 3]
        if bad:
            raise ValueError(
                f"{name} must be a sequence of (B, T, d) tensors (one per layer); entry {bad[0]} is "
                f"{type(hidden[bad[0]]).__name__} "
                f"{tuple(hidden[bad[0]].shape) if isinstance(hidden[bad[0]], torch.Tensor) else ''}"
            )
        shapes = {tuple(h.shape) for h in hidden}
        if len(shapes) != 1:
            raise ValueError(f"{name}: every layer must have the same shape (B, T, d); got {sorted(shapes)}")
        hidden = torch.stack(list(hidden))
    if not isinstance(hidden, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor (L, B, T, d) or a sequence of (B, T, d) tensors; "
            f"got {type(hidden).__name__}"
        )
    if not hidden.is_floating_point():
        raise TypeError(
            f"{name} must be a real floating tensor; got dtype {hidden.dtype}. Use {name}.float()"
        )
    check_not_meta(name, hidden)
    if hidden.dim() != 4:
        raise ValueError(
            f"{name} must have shape (L, B, T, d) (layers, sequences, tokens, features); got shape "
            f"{tuple(hidden.shape)}. A single layer is hidden[None]"
        )
    if min(hidden.shape) == 0:
        raise ValueError(f"{name} has an empty axis: shape {tuple(hidden.shape)} (L, B, T, d)")
    return hidden


def _check_mask(mask: object, hidden: torch.Tensor, name: str) -> torch.Tensor:
    """A ``(B, T)`` 0/1 mask (bool, integer or floating) -> bool ``(B, T)`` on the hidden states' device."""
    _, b, t, _ = hidden.shape
    if mask is None:
        return torch.ones(b, t, dtype=torch.bool, device=hidden.device)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"attention_mask must be a torch.Tensor (B, T) of 0/1 or None; got {type(mask).__name__}"
        )
    if tuple(mask.shape) != (b, t):
        raise ValueError(
            f"attention_mask has shape {tuple(mask.shape)} but {name} has (L, B, T, d) = {tuple(hidden.shape)}: "
            f"the mask must be (B, T) = ({b}, {t}), one entry per token of each sequence"
        )
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("attention_mask must hold 0 (padding) and 1 (token) only")
        mask = mask != 0
    mask = mask.to(hidden.device)
    counts = mask.sum(-1)
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"attention_mask: sequence {empty[0]} has no token (all padding){' (and others: ' + str(empty[1:]) + ')' if len(empty) > 1 else ''}; "
            "its entropy is undefined. Drop such sequences from the batch"
        )
    return mask


def _check_gram_dtype(gram_dtype: object) -> None:
    if gram_dtype is not None and gram_dtype not in (torch.float32, torch.float64):
        raise ValueError(f"gram_dtype must be None, torch.float32 or torch.float64; got {gram_dtype!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}")
    return str(value)


def _masked(hidden: torch.Tensor, mask: torch.Tensor, name: str) -> torch.Tensor:
    """Padding rows set to zero (whatever the model wrote there), after `_check_finite` on the real tokens."""
    z = hidden
    if not bool(mask.all()):
        z = torch.where(
            mask[None, :, :, None], hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device)
        )
    _check_finite(z, name)
    return z


def _located(index: Sequence[int], offset: int, sequences: Sequence[int] | None) -> tuple[int, int]:
    """(layer, sequence) of the hidden states from an index ``(layer, row)`` into a chunk and a bucket."""
    layer, row = int(index[0]), int(index[1])
    return layer + offset, row if sequences is None else sequences[row]


def _check_finite(
    z: torch.Tensor, name: str, offset: int = 0, sequences: Sequence[int] | None = None
) -> torch.Tensor:
    """The largest ``|entry|`` of each matrix of ``z`` ``(L, k, n, d)`` (zero padding) from one scan
    (`renyi_info._validation.largest_abs`), which is also the check: a non-finite value is an error naming
    its layer and sequence."""
    m = largest_abs(z)
    bad = ~torch.isfinite(m)
    if bool(bad.any()):
        layer, seq = _located(bad.nonzero()[0].tolist(), offset, sequences)
        count = int(bad.sum())
        raise ValueError(
            f"{name} has non-finite values (NaN or inf) in the real tokens of layer {layer}, sequence {seq}"
            f"{f' (and {count - 1} other layer/sequence pairs)' if count > 1 else ''}; the entropies are "
            "undefined there. Check the model's dtype (float16 overflow?) or mask those tokens out"
        )
    return m


# ---- the one computation -------------------------------------------------------------------------------------


def _conditioned(
    z: torch.Tensor, dtype: torch.dtype, gram: torch.dtype | None = None, m: torch.Tensor | None = None
) -> torch.Tensor:
    """``z`` in ``dtype``, times a power of two per matrix (exact) where its largest entry ``m`` (found here
    unless given) is outside the range that needs none for a Gram formed in ``gram`` (default ``dtype``;
    `renyi_info.kernels.safe_exponent`): the cast and the scaling in one pass."""
    m = largest_abs(z) if m is None else m
    _, e = torch.frexp(m.to(torch.float64))
    ok = (m == 0) | (e.abs() <= safe_exponent(gram or dtype, z.shape[-2], z.shape[-1]))
    if bool(ok.all()):
        return z.to(dtype)
    return times_power_of_two(z, torch.where(m > 0, -e, torch.zeros_like(e)), dtype)


def _linear_gram(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``Z Z^T`` ``(..., n, n)`` in ``dtype``, or the dual ``Z^T Z`` ``(..., d, d)`` when ``d < n`` (same
    non-zero spectrum). A widening cast is done one matrix at a time, so that each matrix's wide copy is
    multiplied while it is still in cache (25 matrices 400 x 1024 to float64: 23% faster than casting them
    all first)."""
    n, d = z.shape[-2], z.shape[-1]

    def gram(x: torch.Tensor) -> torch.Tensor:
        return x.mT @ x if d < n else x @ x.mT

    if z.dtype == dtype or z.dim() < 3:
        return gram(z.to(dtype))
    flat = z.flatten(0, -3)
    out = flat.new_empty(flat.shape[0], min(n, d), min(n, d), dtype=dtype)
    for i in range(flat.shape[0]):
        out[i] = gram(flat[i].to(dtype))
    return out.reshape(*z.shape[:-2], *out.shape[-2:])


def _checked_gram(
    z: torch.Tensor,
    dtype: torch.dtype,
    where: str,
    offset: int,
    sequences: Sequence[int] | None,
    raw: torch.Tensor,
) -> torch.Tensor:
    r"""The linear Gram of ``z`` in ``dtype``; the finiteness check and the scaling folded into it.

    The Gram is formed from ``z`` as it is and then judged by its diagonal, ``D_i = \sum_k z_{ik}^2`` (rows,
    or columns for the dual): a non-finite entry of ``z`` makes its ``D_i`` non-finite, and with
    ``D = max_i D_i`` the largest entry ``m`` of ``z`` lies in ``[sqrt(D / k), sqrt(D)]`` (``k`` terms per
    sum). When every matrix's ``D`` is finite and puts ``m`` inside the window where nothing overflows or
    underflows (`renyi_info.kernels.safe_exponent`), the Gram is the one `_conditioned` would give: the
    input was read once. (A float64 Gram of float32 hidden states always passes: squares of float32
    numbers are far inside float64's range.) Otherwise ``raw`` (the tokens before centring or cosine
    scaling) is scanned (`_check_finite`: an error naming layer and sequence) and the Gram is formed again
    from ``z`` scaled by a power of two per matrix.
    """
    n, d = z.shape[-2], z.shape[-1]
    c = _linear_gram(z, dtype)
    top = c.diagonal(dim1=-2, dim2=-1).amax(-1).detach()
    window = 2.0 ** (2 * safe_exponent(dtype, n, d))  # m in [2^-W, 2^W]  <=  D <= 4^W and D 4^W >= k
    terms = n if d < n else d
    if bool((torch.isfinite(top) & (top <= window) & (top * window >= terms)).all()):  # 0: underflow?
        return c
    _check_finite(raw, where, offset, sequences)
    c = _linear_gram(_conditioned(z, dtype), dtype)
    if not bool(torch.isfinite(c.diagonal(dim1=-2, dim2=-1)).all()):
        raise ValueError(
            f"{where}: centring or scaling the tokens overflowed (entries near the largest "
            f"{z.dtype} number); divide the hidden states by a power of two first"
        )
    return c


def _spectrum_dtype(dtype: torch.dtype, alphas: tuple[float, ...]) -> torch.dtype:
    """float64 for float64 inputs or an order <= 1 that needs the spectrum (the library's precision rule),
    else float32 (α = 2 alone needs no spectrum)."""
    wide = dtype == torch.float64 or (needs_float64("eig", alphas) and alphas != (2.0,))
    return torch.float64 if wide else torch.float32


def _trace(c: torch.Tensor, where: str, offset: int, sequences: Sequence[int] | None) -> torch.Tensor:
    """The traces ``(L, k)`` of Grams ``c`` ``(L, k, m, m)``; a zero trace is an error naming layer and
    sequence."""
    trace = c.diagonal(dim1=-2, dim2=-1).sum(-1)
    if bool((trace <= 0).any()):
        layer, seq = _located((trace <= 0).nonzero()[0].tolist(), offset, sequences)
        raise ValueError(
            f"{where}: the Gram of layer {layer}, sequence {seq} has zero trace (every real token is the "
            "zero vector, e.g. a single token after centring); its entropy is undefined"
        )
    return trace


def _unit_trace_nats(a: torch.Tensor, alphas: tuple[float, ...], n: int) -> torch.Tensor:
    """Entropies in nats ``(..., k)`` of unit-trace Grams ``a`` ``(..., m, m)`` (zero rows allowed) whose
    primal size is ``n >= m``: α = 2 alone by the Frobenius norm, else from one spectrum, padded with the
    ``n - m`` zero eigenvalues of the primal Gram (its eigenvalue floor and range)."""
    if alphas == (2.0,):
        return exact.in_range(-torch.log((a * a).sum((-2, -1))), n)[..., None]
    lam = exact.eigvalsh(a)
    if lam.shape[-1] < n:
        lam = torch.cat([lam.new_zeros(*lam.shape[:-1], n - lam.shape[-1]), lam], -1)
    return exact.spectral_entropies(lam, alphas)


def _lanczos_nats(
    z: torch.Tensor,
    alphas: tuple[float, ...],
    options: slq.LanczosOptions | None,
    m: torch.Tensor | None = None,
) -> torch.Tensor:
    """The stochastic Lanczos estimate ``(..., 1)`` of one order, in float32 unless ``z`` is float64 (the
    library's rule for ``method="lanczos"``: its stochastic error is far above float32 rounding), of ``z``
    scaled by a power of two per matrix where its squares could overflow or underflow in the mat-vecs'
    dtype (`_conditioned`; ``m``: the largest ``|entry|`` of each matrix, if known)."""
    if len(alphas) != 1:
        raise ValueError(
            f"method='lanczos' takes a single alpha; got {list(alphas)}. Use method='auto' (one spectrum serves "
            "every order) or call once per order"
        )
    dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    opts = options if options is not None else slq.LanczosOptions()
    low = opts.matvec_dtype  # explicit mat-vecs narrower than ``dtype``: the Gram is formed there
    z = _conditioned(
        z, dtype, low if low is not None and torch.finfo(low).max < torch.finfo(dtype).max else None, m
    )
    return slq.features_nats("entropy", [z], [KernelSpec("linear")], alphas[0], opts).value[..., None]


def _normalise(s: torch.Tensor, normalization: str, n: torch.Tensor, d: int, where: str) -> torch.Tensor:
    """``s`` ``(..., k)`` divided by the chosen log (``n``: samples per Gram, broadcast over ``(...)``)."""
    if normalization == "none":
        return s
    logn = torch.log(n.to(torch.float64))
    if normalization == "log_d":
        if d < 2:
            raise ValueError(f"normalization='log_d' needs d >= 2 (log 1 = 0); {where} has d = {d}")
        denom = torch.full_like(logn, math.log(d))
    elif normalization == "log_n":
        denom = logn
    else:
        denom = torch.clamp(logn, max=math.log(d)) if d >= 2 else torch.zeros_like(logn)
    if bool((denom <= 0).any()):
        raise ValueError(
            f"normalization={normalization!r} divides by log N = 0 for a Gram of one sample (a sequence of one "
            f"token, or d = 1) in {where}; its entropy is 0 and has no normalised value. Use normalization='none'"
        )
    return s / denom.to(s.dtype)[..., None]


def _prepare(z: torch.Tensor, centre: bool, kernel: str) -> torch.Tensor:
    """Real tokens ``(..., n, d)`` centred (over the ``n`` tokens) if asked, rows normalised for ``"cosine"``.

    Either transform rounds its results to the tokens' dtype: half-precision tokens are transformed in
    float32 (float16 centring moved entropies by 1e-3), and before centring, tokens whose largest entry is
    so small that the centred tokens would be rounded on the subnormal grid, or so large that their sum
    would overflow, are multiplied by a power of two per matrix (`_centrable`: exact, and the kernels are
    scale-free).
    """
    if not centre and kernel != "cosine":
        return z
    if torch.finfo(z.dtype).bits < 32:
        z = z.float()
    if centre:
        z = _centrable(z)
        z = z - z.mean(-2, keepdim=True)
    if kernel == "cosine":
        z = normalize_rows(z)
    return z


def _centrable(z: torch.Tensor) -> torch.Tensor:
    """``z`` ``(..., n, d)`` times ``2^k`` per matrix where its largest entry ``m`` is below ``tiny / eps``
    (centred tokens would be rounded on the subnormal grid) or above ``max / (2 n)`` (the sum of ``n``
    tokens or the difference of two would overflow), with ``m 2^k`` in ``[1/2, 1)`` (exact:
    `renyi_info.kernels.times_power_of_two`); else as it is."""
    info = torch.finfo(z.dtype)
    m = largest_abs(z)
    out = (m > 0) & ((m < info.tiny / info.eps) | (m > info.max / (2 * z.shape[-2])))
    if not bool(out.any()):
        return z
    _, e = torch.frexp(m)
    return times_power_of_two(z, torch.where(out, -e, torch.zeros_like(e)), z.dtype)


def _result(s: torch.Tensor, alpha: object, base: float) -> torch.Tensor:
    s = to_base(s, base)
    return s if isinstance(alpha, (list, tuple, torch.Tensor)) else s[..., 0]


def _orders(alpha: object) -> tuple[float, ...]:
    a = check_alphas(alpha)
    return a if isinstance(a, tuple) else (a,)


def _chunks(count: int, per: int) -> list[slice]:
    return [slice(i, min(i + per, count)) for i in range(0, count, per)]


def _layers_per_chunk(grams: int, side: int, tokens: int, d: int, budget: int = 1 << 26) -> int:
    """Layers processed together: about ``budget`` bytes of float64 working memory per chunk (``grams``
    Grams ``side x side`` and one sequence's ``tokens x d`` working copy per layer)."""
    per_layer = (grams * side * side + tokens * d) * 8
    return max(1, budget // max(per_layer, 1))


# ---- public functions --------------------------------------------------------------------------------------


def prompt_entropy(
    hidden_states: torch.Tensor | Sequence[torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    *,
    alpha: float | Sequence[float] | torch.Tensor = 1.0,
    kernel: Literal["linear", "cosine"] = "linear",
    centre: bool = False,
    normalization: Normalization = "none",
    base: float = math.e,
    method: Literal["auto", "eig", "lanczos"] = "auto",
    lanczos: slq.LanczosOptions | None = None,
    gram_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Prompt entropy: $S_\alpha$ of each sequence's token Gram, for every layer at once.

    $$
    S_\alpha(Z_{\ell b}) = \frac{1}{1-\alpha}\log\sum_i\Big(\frac{\lambda_i(Z_{\ell b}Z_{\ell b}^\top)}
    {\operatorname{tr}Z_{\ell b}Z_{\ell b}^\top}\Big)^\alpha
    $$

    with $Z_{\ell b}$ the real tokens of sequence $b$ at layer $\ell$ (see the module docs for padding,
    centring, routes and the papers' conventions).

    Args:
        hidden_states: ``(L, B, T, d)``, or a sequence of ``L`` tensors ``(B, T, d)`` (``outputs.hidden_states``).
        attention_mask: ``(B, T)`` of 0/1 (bool, integer or floating); ``None``: every position is a token.
        alpha: order > 0 (1: von Neumann, ``inf``), or a sequence of orders (a trailing axis, one spectrum).
        kernel: ``"linear"`` (Skean et al.) or ``"cosine"`` (rows scaled to unit norm, after centring).
        centre: subtract each sequence's mean token before the kernel (Wei et al.'s matrix entropy).
        normalization: ``"none"``, ``"log_n"`` ($N$ = real tokens of the sequence), ``"log_d"`` or
            ``"max"`` ($\log\min(N, d)$), see `NORMALIZATIONS`.
        base: logarithm base of the unnormalised value (``math.e``: nats; 2: bits).
        method: ``"auto"``/``"eig"`` (exact; α = 2 alone by the Frobenius norm) or ``"lanczos"`` (a stochastic
            estimate for long prompts, one order; `renyi_info.LanczosOptions`).
        lanczos: options of ``method="lanczos"``.
        gram_dtype: ``None`` (default): the Gram in the spectrum's precision, float64 at an order <= 1 (the
            library's rule); ``torch.float32``: the Gram of float32 hidden states in float32 and its
            spectrum still in float64, the precision of the usual hand loop, faster when ``d`` is much
            larger than the sequences (the Gram's cost dominates): each Gram entry is then off by about
            $\sqrt d\,\epsilon_{32}\lVert z_i\rVert\lVert z_j\rVert$, a few 1e-7 relative on the entropies
            of hidden-state-like data (``benchmarks/bench_layerwise.py``), more where small eigenvalues carry
            the entropy (orders well below 1, rank-deficient tokens that are not duplicates).

    Returns:
        ``(L, B)`` (``(L, B, k)`` for ``k`` orders), float32, or float64 for float64 hidden states.

    Raises:
        TypeError: hidden states that are not a real floating tensor, a bad ``alpha`` type, ``lanczos`` that
            is not a `renyi_info.LanczosOptions`, ``centre`` that is not a bool.
        ValueError: bad shapes, a mask that does not fit, a sequence with no token, non-finite real tokens
            (naming layer and sequence), a zero Gram, a normalisation by $\log 1$, ``lanczos`` without
            ``method="lanczos"`` or ``gram_dtype`` with it.

    Example:
        >>> import torch
        >>> from renyi_info.layerwise import prompt_entropy
        >>> h = torch.eye(4).expand(2, 1, 4, 4)  # 2 layers, 1 sequence of 4 orthogonal tokens
        >>> prompt_entropy(h, torch.tensor([[1, 1, 1, 0]]), normalization="log_n")  # 3 real tokens
        tensor([[1.],
                [1.]])
    """
    hidden = _check_hidden("hidden_states", hidden_states)
    mask = _check_mask(attention_mask, hidden, "hidden_states")
    alphas = _orders(alpha)
    base_ = check_base(base)
    kernel_ = _check_choice("kernel", kernel, KERNELS)
    centre = check_flag("centre", centre)
    norm = _check_choice("normalization", normalization, NORMALIZATIONS)
    method_ = _check_choice("method", method, METHODS)
    _check_gram_dtype(gram_dtype)
    check_options(lanczos, method_)
    if gram_dtype is not None and method_ == "lanczos":
        raise ValueError(
            "gram_dtype is only used by the exact methods (method='auto' or 'eig'); method='lanczos' never forms "
            "the Gram (its mat-vec precision is LanczosOptions(matvec_dtype=...)). Drop gram_dtype"
        )
    out_dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    lengths = mask.sum(-1)
    with autocast_disabled():
        if method_ == "lanczos":
            s = _grouped_lanczos(_Tokens.of(hidden, mask, centre, kernel_), alphas, lanczos)
        else:
            s = _bucketed(_Tokens.of(hidden, mask, centre, kernel_), alphas, gram_dtype)
        s = _normalise(s, norm, lengths[None, :].expand(s.shape[:2]), hidden.shape[-1], "hidden_states")
    return _result(s, alpha, base_ if norm == "none" else math.e).to(out_dtype)


#: Grams whose sizes lie within this factor share one padded batch of eigendecompositions (`_bucketed`).
BUCKET_RATIO = 1.1


def _buckets(sizes: list[int]) -> list[list[int]]:
    """Sequence indices grouped by Gram size, each group's largest at most `BUCKET_RATIO` times its smallest."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and sizes[i] <= BUCKET_RATIO * sizes[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class _Tokens(NamedTuple):
    """Checked hidden states ``(L, B, T, d)`` and where each sequence's real tokens are, with the token
    transform of the call (``centre``, ``kernel``): what every route of `prompt_entropy` reads."""

    hidden: torch.Tensor
    sizes: list[int]  # real tokens per sequence
    positions: list[slice | torch.Tensor]  # a slice where they are one block (a view), else their indices
    centre: bool
    kernel: str

    @staticmethod
    def of(hidden: torch.Tensor, mask: torch.Tensor, centre: bool, kernel: str) -> _Tokens:
        lengths = mask.sum(-1)
        first = mask.to(torch.uint8).argmax(-1)
        last = mask.shape[-1] - 1 - mask.flip(-1).to(torch.uint8).argmax(-1)
        sizes = lengths.tolist()
        positions: list[slice | torch.Tensor] = [
            slice(f, la + 1) if la - f + 1 == n else mask[b].nonzero().flatten()
            for b, (f, la, n) in enumerate(zip(first.tolist(), last.tolist(), sizes))
        ]
        return _Tokens(hidden, sizes, positions, centre, kernel)

    def of_sequence(self, layers: slice, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence ``b``'s real tokens at ``layers``, as they are (``raw``) and transformed: ``(l, 1, n, d)``."""
        raw = self.hidden[layers, b, self.positions[b]][:, None]
        return raw, _prepare(raw, self.centre, self.kernel)


def _bucketed(tokens: _Tokens, alphas: tuple[float, ...], gram_dtype: torch.dtype | None) -> torch.Tensor:
    """Exact entropies ``(L, B, k)``: one Gram per sequence of its real tokens, all layers at once, and one
    batched eigendecomposition per group of similar Gram sizes.

    Each sequence's Gram is formed from its real tokens only, a view of the hidden states where they are
    one block (`_Tokens`): the primal ``n x n`` or the dual ``d x d`` by its own shape (`_linear_gram`),
    which also checks the tokens (`_checked_gram`). The hidden states are read once, by the Gram. The
    Grams of a group of similar sizes (`_buckets`) are then bordered with zeros to the group's largest and
    decomposed together: the zero border adds zero eigenvalues, which contribute nothing at any order, and
    costs at most `BUCKET_RATIO` cubed more work than exact sizes. Layers are processed in chunks of about
    `_layers_per_chunk`.
    """
    sizes = tokens.sizes
    layers, _, _, d = tokens.hidden.shape
    dtype = _spectrum_dtype(tokens.hidden.dtype, alphas)
    out: torch.Tensor | None = None
    for group in _buckets([min(n, d) for n in sizes]):
        side = max(min(sizes[b], d) for b in group)
        primal = max(sizes[b] for b in group)
        for sl in _chunks(layers, _layers_per_chunk(len(group), side, max(sizes), d)):
            a = tokens.hidden.new_empty(sl.stop - sl.start, len(group), side, side, dtype=dtype)
            for i, b in enumerate(group):
                raw, z = tokens.of_sequence(sl, b)
                c = _checked_gram(z, gram_dtype or dtype, "hidden_states", sl.start, [b], raw)
                trace = _trace(c, "hidden_states", sl.start, [b])
                m = c.shape[-1]
                a[:, i, :m, :m] = c[:, 0] / trace[:, 0, None, None]
                a[:, i, m:] = 0  # the zero border up to the group's largest Gram
                a[:, i, :m, m:] = 0
            part = _unit_trace_nats(a, alphas, primal)
            if out is None:
                out = part.new_empty(layers, len(sizes), part.shape[-1])
            out[sl, torch.tensor(group, device=out.device)] = part
    assert out is not None
    return out


def _grouped_lanczos(
    tokens: _Tokens, alphas: tuple[float, ...], options: slq.LanczosOptions | None
) -> torch.Tensor:
    """SLQ per group of sequences of equal length, on their real tokens only (no padding)."""
    layers, batch, _, d = tokens.hidden.shape
    out = torch.zeros(layers, batch, 1, dtype=torch.float64, device=tokens.hidden.device)
    for n in sorted(set(tokens.sizes)):
        seqs = [b for b, size in enumerate(tokens.sizes) if size == n]
        for sl in _chunks(layers, _layers_per_chunk(len(seqs), n, n, d)):
            pairs = [tokens.of_sequence(sl, b) for b in seqs]
            # one prompt: its tokens as they are (a view where they are one block); several: one batch
            raw, z = pairs[0] if len(pairs) == 1 else (torch.cat(parts, 1) for parts in zip(*pairs))
            m = _check_finite(raw, "hidden_states", sl.start, seqs)
            transformed = tokens.centre or tokens.kernel != "linear"  # else z is raw: its scan serves
            out[sl, torch.tensor(seqs, device=out.device)] = _lanczos_nats(
                z, alphas, options, None if transformed else m
            ).to(torch.float64)
    return out


def pool(
    hidden_states: torch.Tensor | Sequence[torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    pooling: Pooling = "mean",
) -> torch.Tensor:
    """One vector per sequence and layer ``(L, B, d)``: the mean of the real tokens, or the last real token.

    Args:
        hidden_states: ``(L, B, T, d)`` or a sequence of ``(B, T, d)``.
        attention_mask: ``(B, T)`` 0/1, or ``None``.
        pooling: ``"mean"`` or ``"last"`` (the real token at the largest position: right or left padding).

    Returns:
        ``(L, B, d)`` in the hidden states' dtype.

    Example:
        >>> import torch
        >>> from renyi_info.layerwise import pool
        >>> h = torch.arange(6.0).reshape(1, 1, 3, 2)
        >>> pool(h, torch.tensor([[1, 1, 0]]), "last")
        tensor([[[2., 3.]]])
    """
    hidden = _check_hidden("hidden_states", hidden_states)
    mask = _check_mask(attention_mask, hidden, "hidden_states")
    how = _check_choice("pooling", pooling, POOLINGS)
    return _pooled(hidden, mask, how, hidden.dtype)


def _pooled(hidden: torch.Tensor, mask: torch.Tensor, how: str, dtype: torch.dtype) -> torch.Tensor:
    """`pool` of checked arguments, in ``dtype``. The mean is summed in float64 (the sum of finite float16
    or float32 tokens can overflow their dtype, their mean cannot) and rounded to ``dtype`` once."""
    z = _masked(hidden, mask, "hidden_states")
    if how == "mean":
        total = z.sum(-2, dtype=torch.float64)
        return (total / mask.sum(-1).to(torch.float64)[None, :, None]).to(dtype)
    positions = torch.arange(mask.shape[-1], device=mask.device)
    last = torch.where(mask, positions, -1).amax(-1)
    return z[:, torch.arange(mask.shape[0], device=mask.device), last].to(dtype)


def dataset_entropy(
    hidden_states: torch.Tensor | Sequence[torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    *,
    pooling: Pooling = "mean",
    alpha: float | Sequence[float] | torch.Tensor = 1.0,
    kernel: Literal["linear", "cosine"] = "linear",
    centre: bool = False,
    normalization: Normalization = "none",
    base: float = math.e,
) -> torch.Tensor:
    r"""Dataset entropy: $S_\alpha$ of the ``B x B`` Gram of one vector per sequence, for every layer.

    $$
    S_\alpha(V_\ell),\qquad V_\ell = [v_{\ell 1},\dots,v_{\ell B}]^\top,\quad
    v_{\ell b} = \text{mean or last real token of sequence } b \text{ at layer } \ell
    $$

    (`pool`); the route (``B x B`` or ``d x d``) follows the shape. ``centre`` subtracts the mean vector over
    the ``B`` sequences; ``normalization`` uses $N = B$.

    Args:
        hidden_states: ``(L, B, T, d)`` or a sequence of ``(B, T, d)``.
        attention_mask: ``(B, T)`` 0/1, or ``None``.
        pooling: ``"mean"`` or ``"last"``.
        alpha: order > 0, or a sequence of orders (trailing axis).
        kernel: ``"linear"`` or ``"cosine"``.
        centre: centre the pooled vectors over the sequences.
        normalization: see `NORMALIZATIONS`.
        base: logarithm base of the unnormalised value.

    Returns:
        ``(L,)`` (``(L, k)`` for ``k`` orders).

    Example:
        >>> import torch
        >>> from renyi_info.layerwise import dataset_entropy
        >>> h = torch.eye(3).reshape(1, 3, 1, 3)  # 3 one-token sequences, orthogonal
        >>> dataset_entropy(h, normalization="log_n")
        tensor([1.])
    """
    hidden = _check_hidden("hidden_states", hidden_states)
    mask = _check_mask(attention_mask, hidden, "hidden_states")
    how = _check_choice("pooling", pooling, POOLINGS)
    # (L, 1, B, d): B samples per layer, in float64 (B vectors: rounding means of half-precision or
    # subnormal tokens to their dtype moved the entropies by 1e-5 and more)
    vectors = _pooled(hidden, mask, how, torch.float64)[:, None]
    alphas = _orders(alpha)
    base_ = check_base(base)
    kernel_ = _check_choice("kernel", kernel, KERNELS)
    centre = check_flag("centre", centre)
    norm = _check_choice("normalization", normalization, NORMALIZATIONS)
    out_dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    with autocast_disabled():
        z = _prepare(vectors, centre, kernel_)
        dtype = _spectrum_dtype(z.dtype, alphas)
        c = _checked_gram(z, dtype, "the pooled vectors", 0, None, vectors)
        a = c / _trace(c, "the pooled vectors", 0, None)[..., None, None]
        s = _unit_trace_nats(a, alphas, z.shape[-2])[:, 0]
        n = torch.full((s.shape[0],), vectors.shape[2], device=s.device)
        s = _normalise(s, norm, n, vectors.shape[-1], "the pooled vectors")
    return _result(s, alpha, base_ if norm == "none" else math.e).to(out_dtype)


def effective_rank(
    hidden_states: torch.Tensor | Sequence[torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    *,
    centre: bool = True,
    kernel: Literal["linear", "cosine"] = "cosine",
) -> torch.Tensor:
    r"""Effective rank $\exp S_1$ of each sequence's tokens, every layer: ``(L, B)``, in $[1, \min(n, d)]$.

    $$
    \operatorname{eRank}(Z) = \exp\Big(-\sum_i p_i\log p_i\Big),\qquad
    p_i = \frac{\lambda_i(\Sigma)}{\operatorname{tr}\Sigma},\quad
    \Sigma = \frac1n\sum_{i=1}^n \tilde z_i\tilde z_i^\top,\;
    \tilde z_i = \frac{z_i - \bar z}{\lVert z_i - \bar z\rVert}
    $$

    Wei et al.'s convention by default (centred, unit-norm tokens); ``centre=False, kernel="linear"`` gives
    the effective rank of the raw token Gram. Equal to ``exp(prompt_entropy(..., alpha=1, centre=centre,
    kernel=kernel))``.

    Args:
        hidden_states: ``(L, B, T, d)`` or a sequence of ``(B, T, d)``.
        attention_mask: ``(B, T)`` 0/1, or ``None``.
        centre: subtract each sequence's mean token first.
        kernel: ``"cosine"`` (unit-norm tokens) or ``"linear"``.

    Returns:
        ``(L, B)``.

    Example:
        >>> import torch
        >>> from renyi_info.layerwise import effective_rank
        >>> h = torch.eye(3).reshape(1, 1, 3, 3)  # 3 orthogonal tokens, not centred: rank 3
        >>> round(float(effective_rank(h, centre=False)), 4)
        3.0
    """
    return torch.exp(prompt_entropy(hidden_states, attention_mask, alpha=1.0, kernel=kernel, centre=centre))


def diff_erank(
    reference: torch.Tensor | Sequence[torch.Tensor],
    model: torch.Tensor | Sequence[torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    *,
    reduction: Literal["dataset", "none"] = "dataset",
    centre: bool = True,
    kernel: Literal["linear", "cosine"] = "cosine",
) -> torch.Tensor:
    r"""Diff-eRank: the effective rank of ``reference`` minus that of ``model`` on the same inputs.

    $$
    \text{none:}\quad \operatorname{eRank}(Z^{\text{ref}}_{\ell b}) - \operatorname{eRank}(Z^{\text{model}}_{\ell b}),
    \qquad
    \text{dataset:}\quad \exp\Big(\frac1B\sum_b S_1(Z^{\text{ref}}_{\ell b})\Big)
    - \exp\Big(\frac1B\sum_b S_1(Z^{\text{model}}_{\ell b})\Big)
    $$

    Wei et al. take the untrained model of the same configuration as ``reference`` and the trained one as
    ``model`` (a larger value: more redundancy removed by training), and reduce a data set by the mean
    entropy (``"dataset"``). The two may differ in ``d``; they must have the same ``L``, ``B`` and ``T``.

    Args:
        reference: hidden states ``(L, B, T, d_r)`` (or a sequence of ``(B, T, d_r)``).
        model: hidden states ``(L, B, T, d_m)`` of the same inputs.
        attention_mask: ``(B, T)`` 0/1, or ``None``.
        reduction: ``"dataset"`` (``(L,)``) or ``"none"`` (``(L, B)``).
        centre: see `effective_rank`.
        kernel: see `effective_rank`.

    Returns:
        ``(L,)`` or ``(L, B)``.

    Example:
        >>> import torch
        >>> from renyi_info.layerwise import diff_erank
        >>> ref = torch.eye(4).reshape(1, 1, 4, 4)
        >>> collapsed = torch.ones(1, 1, 4, 4) + torch.eye(4) * 1e-3
        >>> bool(diff_erank(ref, collapsed, centre=False) > 2.9)
        True
    """
    how = _check_choice("reduction", reduction, ("dataset", "none"))
    ref = _check_hidden("reference", reference)
    mod = _check_hidden("model", model)
    if ref.shape[:3] != mod.shape[:3]:
        raise ValueError(
            f"reference and model must share (L, B, T) (the same inputs, layer for layer); got "
            f"{tuple(ref.shape[:3])} and {tuple(mod.shape[:3])}. Select matching layers first"
        )
    s_ref = prompt_entropy(ref, attention_mask, alpha=1.0, kernel=kernel, centre=centre)
    s_mod = prompt_entropy(mod, attention_mask, alpha=1.0, kernel=kernel, centre=centre)
    if how == "none":
        return torch.exp(s_ref) - torch.exp(s_mod)
    return torch.exp(s_ref.mean(-1)) - torch.exp(s_mod.mean(-1))
