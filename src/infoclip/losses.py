r"""InfoCLIP losses: compression $L_c$ (Eqs. 6-9), distillation $L_d$ (Eqs. 10-11), and
`InfoCLIPLoss`, which owns the shared `infoclip.LPAM` and routes the gradients.

One module (about 670 lines) on purpose: each loss is a function plus a thin `nn.Module`, and the two
losses and `InfoCLIPLoss` share their Gram construction, option checks and gradient routing; most of the
length is their documented signatures.

Gram matrices use the cosine kernel (the paper's degree-1 polynomial kernel on L2-normalised features,
Eq. 7) and are built along one of two sample axes, ``gram_over``:

``"batch"`` (default, as the paper, InfoSAM and ITRD)
    $N = B$: each sample's whole tensor (its ``HW x d`` visual tokens, its ``N_C x d`` class
    embeddings, its ``HW x N_C`` alignment map) is flattened and L2-normalised, and
    $K_{ij} = \langle \hat x_i, \hat x_j\rangle$.
``"tokens"``
    $N = B\cdot HW$: each visual token (``d`` features) and each alignment row (``N_C`` scores) is
    a sample. There is no per-token text variable: every token is paired with the class embeddings of
    its own image, so $G_L$ is the image-level text Gram expanded to tokens
    ($K^L_{(b,p),(c,q)} = \cos(t_b, t_c)$, a Kronecker product with an ``HW x HW`` all-ones block).

Text shared by the batch (``(N_C, d)``) gives an all-ones $G_L$ under either axis: the all-ones
matrix is the Hadamard identity, so the text term drops out exactly (the paper's remark for a fixed
class set) and is skipped; per-sample text ``(B, N_C, d)`` enters the joint Gram as in Eq. 8.

Entropies come from `renyi_info.gram_level.feature_entropies` (exact for every alpha: the Frobenius
identity at alpha = 2, matrix powers at alpha in {3, 4}, the spectrum otherwise) and are in bits by default
(``base=2``, Eq. 8). It picks a route per term: the ``N x N`` Grams for the batch axis, and for a long token
axis at alpha = 2 one fused, tile-streaming pass over all terms that never holds an ``N x N`` matrix (memory
$O(N(d + N_C))$ in the forward and backward pass). Per-sample text enters the token axis as a ``B``-dimensional
feature per token whose linear Gram is the image-level text Gram (see `_text_features`), not as an
expanded ``N x N`` matrix.
Grams and entropies are computed in float32 (float64 for float64 inputs, and for alpha <= 1, where the
spectrum needs it: see "Precision" in the method guide), with autocast disabled; the losses are float32
(float64 for float64 inputs).
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from torch import nn

from renyi_info import dime
from renyi_info.gram_level import (
    KernelSpec,
    check_alpha,
    check_base,
    check_permutations,
    feature_entropies,
    make_kernel,
    normalize_rows,
    resolve_dtype,
    resolve_method,
    to_base,
)

from ._checks import (
    ESTIMATORS,
    GRAM_AXES,
    GramAxis,
    OptionRule,
    Weight,
    alignment_map,
    check_all_finite,
    check_choice,
    check_global_batch,
    check_same_shape,
    check_seed,
    check_text_against_visual,
    check_weight,
    template_text_embeddings,
    text_embeddings,
    visual_tokens,
)
from .distiller import DistillationOutput, Distiller, DistillerInputs
from .distributed import gather_batches, is_distributed
from .lpam import LPAM

#: InfoCLIPLoss's Rényi order option (the rule of `renyi_info`'s ``alpha``).
RenyiOrder = Annotated[float, OptionRule(lambda _name, value: check_alpha(value), "a number > 0")]
#: InfoCLIPLoss's logarithm base option.
LogBase = Annotated[float, OptionRule(lambda _name, value: check_base(value), "a number > 0 and != 1")]
#: The estimator of L_d.
Estimator = Annotated[
    str, OptionRule(lambda name, value: check_choice(name, value, ESTIMATORS), "'mi' or 'dime'")
]
#: DiME's pairings: all of them, or a number to sample.
Pairings = Annotated[
    int | str | None,
    OptionRule(lambda _name, value: check_permutations(value), "None, 'auto', 'exact' or an int >= 1"),
]
#: The seed of DiME's sampled pairings.
PairingSeed = Annotated[int | None, OptionRule(lambda _name, value: check_seed(value), "an int or None")]

__all__ = [
    "CompressionLoss",
    "DistillationLoss",
    "InfoCLIPLoss",
    "compression_loss",
    "distillation_loss",
]

_COSINE = make_kernel("cosine")
_LINEAR = make_kernel("linear")


def _as_samples(x: torch.Tensor, gram_over: str) -> torch.Tensor:
    """``(B, T, f)`` -> ``(B, T*f)`` (one sample per image) or ``(B*T, f)`` (one sample per token)."""
    return x.reshape(x.shape[0], -1) if gram_over == "batch" else x.reshape(-1, x.shape[-1])


def _text_features(
    text: torch.Tensor, tokens: int, gram_over: str, dtype: torch.dtype
) -> tuple[torch.Tensor, KernelSpec]:
    r"""Features and kernel of the per-sample text variable ``(B, N_C, d)``.

    Batch axis: each image's flattened class embeddings under the cosine kernel. Token axis: token
    $(b, p)$ carries $y_b = \hat t_b Q$, where $\hat t_b$ is image $b$'s flattened, L2-normalised text
    and $Q$ (``N_C d x B``, detached) an orthonormal basis of a space containing every $\hat t_c$ (QR of
    $\hat T^\top$). Then $y_b\cdot y_c = \hat t_b Q Q^\top \hat t_c^\top = \cos(t_b, t_c)$ under the linear
    kernel, with ``B`` features per token instead of ``N_C d``; and since $\hat T Q Q^\top = \hat T$, the
    gradient through $\hat T$ with $Q$ held fixed is the exact gradient.
    """
    flat = text.reshape(text.shape[0], -1).to(dtype)
    if gram_over == "batch":
        return flat, _COSINE
    unit = normalize_rows(flat)
    basis = torch.linalg.qr(unit.detach().mT).Q  # (N_C d, B): reduced QR, columns span every row of unit
    return (unit @ basis).repeat_interleave(tokens, dim=0), _LINEAR


def _entropies(
    xs: list[torch.Tensor],
    specs: list[KernelSpec],
    masks: list[int],
    names: list[str],
    alpha: float,
    method: str,
    base: float,
) -> list[torch.Tensor]:
    """Entropies in ``base`` of the Hadamard products of the Grams of the inputs in each mask.

    `renyi_info.gram_level.feature_entropies` picks the route of each term: the Gram for the batch axis
    (``N = B`` samples), the fused tile-streaming pass at alpha = 2 for long token axes (no ``N x N``
    matrix in the forward or the backward pass).
    """
    terms = feature_entropies(xs, specs, alpha, method, masks, names)
    return [to_base(t, base) for t in terms]


def _compression(
    v: torch.Tensor, t: torch.Tensor, r: torch.Tensor, alpha: float, base: float, gram_over: str
) -> torch.Tensor:
    """L_c on validated (and gathered) tokens v (B, HW, d), text t, alignment r (B, HW, N_C)."""
    method = resolve_method("auto", alpha)
    dtype = resolve_dtype([v.dtype, t.dtype, r.dtype], None, method=method, alpha=alpha)
    with torch.autocast(device_type=r.device.type, enabled=False):
        xs = [_as_samples(r, gram_over).to(dtype), _as_samples(v, gram_over).to(dtype)]
        specs = [_COSINE, _COSINE]
        if t.dim() == 3:  # per-sample text; shared text has an all-ones Gram (the Hadamard identity)
            text, spec = _text_features(t, v.shape[1], gram_over, dtype)
            xs.append(text)
            specs.append(spec)
        s_r, s_vlr = _entropies(
            xs,
            specs,
            [0b1, (1 << len(xs)) - 1],
            ["the teacher alignment map", "the joint (visual, text, alignment) Gram"],
            alpha,
            method,
            base,
        )
    return (s_r - s_vlr).to(resolve_dtype([v.dtype, t.dtype, r.dtype], None))


def _distillation(
    r_t: torch.Tensor,
    r_s: torch.Tensor,
    alpha: float,
    base: float,
    gram_over: str,
    estimator: str = "mi",
    permutations: Any = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_d = -I(R^T; R^S) (``estimator="mi"``) or -DiME(R^T; R^S) on validated (and gathered) alignment maps."""
    if estimator == "dime":
        shared = dime(
            _as_samples(r_t, gram_over),
            _as_samples(r_s, gram_over),
            alpha=alpha,
            base=base,
            kernel="cosine",
            permutations=permutations,
            generator=torch.Generator().manual_seed(0) if generator is None else generator,
        )
        return (-shared).to(resolve_dtype([r_t.dtype, r_s.dtype], None))
    method = resolve_method("auto", alpha)
    dtype = resolve_dtype([r_t.dtype, r_s.dtype], None, method=method, alpha=alpha)
    with torch.autocast(device_type=r_t.device.type, enabled=False):
        xs = [_as_samples(r_t, gram_over).to(dtype), _as_samples(r_s, gram_over).to(dtype)]
        s_t, s_s, s_ts = _entropies(
            xs,
            [_COSINE, _COSINE],
            [0b01, 0b10, 0b11],
            [
                "the teacher alignment map",
                "the student alignment map",
                "the joint (teacher, student) alignment Gram",
            ],
            alpha,
            method,
            base,
        )
    return (-(s_t + s_s - s_ts)).to(resolve_dtype([r_t.dtype, r_s.dtype], None))


def _check_options(alpha: object, base: object, gram_over: object) -> tuple[float, float, str]:
    return check_alpha(alpha), check_base(base), check_choice("gram_over", gram_over, GRAM_AXES)


def _check_estimator_options(estimator: object, permutations: object, generator: object, what: str) -> str:
    """The estimator; ``permutations`` and the pairings' ``what`` (generator or seed) belong to DiME only."""
    estimator = check_choice("estimator", estimator, ESTIMATORS)
    if estimator == "mi" and (permutations is not None or generator is not None):
        raise ValueError(
            f"permutations and {what} choose the shuffled pairings of estimator='dime'; the default estimator "
            f"'mi' has none. Pass estimator='dime', or drop permutations and {what}"
        )
    return estimator


def _seeded(seed: int | None) -> torch.Generator:
    """A generator seeded with ``seed`` (the same pairings at every call), or torch's global one (``None``)."""
    return torch.default_generator if seed is None else torch.Generator().manual_seed(seed)


def _check_compression_inputs(
    teacher_visual: object, teacher_text: object, teacher_alignment: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    v = visual_tokens("teacher_visual", teacher_visual)
    t = text_embeddings("teacher_text", teacher_text)
    r = alignment_map("teacher_alignment", teacher_alignment)
    check_text_against_visual("teacher_visual", v, "teacher_text", t)
    expected = (v.shape[0], v.shape[1], t.shape[-2])
    if tuple(r.shape) != expected:
        raise ValueError(
            f"teacher_alignment must have shape (B, HW, N_C) = {expected} to match teacher_visual (B, HW) = "
            f"{tuple(v.shape[:2])} and teacher_text N_C = {t.shape[-2]}; got {tuple(r.shape)}"
        )
    return v, t, r


def _gather_compression(
    v: torch.Tensor, t: torch.Tensor, r: torch.Tensor, gather: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not gather:
        return v, t, r
    if t.dim() == 3:
        v, t, r = gather_batches([v, t, r], ["teacher_visual", "teacher_text", "teacher_alignment"])
    else:  # shared text: the same on every rank
        v, r = gather_batches([v, r], ["teacher_visual", "teacher_alignment"])
    return v, t, r


def compression_loss(
    teacher_visual: torch.Tensor,
    teacher_text: torch.Tensor,
    teacher_alignment: torch.Tensor,
    *,
    alpha: float = 2.0,
    base: float = 2.0,
    gram_over: str = "batch",
    gather: bool = False,
) -> torch.Tensor:
    r"""InfoCLIP compression loss $L_c$ (information bottleneck on the teacher's alignment, Eqs. 6-9).

    $$
    L_c = I_\alpha(D_V^T, D_L^T; R^T) - S_\alpha(G_V^T, G_L^T)
        = S_\alpha(G_R^T) - S_\alpha(G_V^T, G_L^T, G_R^T)
    $$

    The teacher entropy $S_\alpha(G_V^T, G_L^T)$ is dropped: it does not depend on anything being
    trained. At alpha = 2 (default) this is Eq. 9,
    $L_c = -\log_2\lVert G_R\rVert_F^2 + \log_2\lVert G_{VLR}\rVert_F^2$ with trace-normalised Grams;
    other alpha use the exact eigenvalue (or matrix-power) route of Eq. 8. Minimising it lowers the
    entropy of the alignment map (compression) while keeping its joint entropy with the inputs high.

    The function is plain maths: nothing is detached. `InfoCLIPLoss` detaches the teacher
    features and keeps $R^T$ attached so that LPAM learns from this loss.

    Args:
        teacher_visual: the frozen CLIP's dense visual features ``(B, HW, d)`` or ``(B, d, H, W)``.
        teacher_text: its class embeddings ``(N_C, d)`` (shared by the batch) or ``(B, N_C, d)``.
        teacher_alignment: LPAM's map $R^T$ ``(B, HW, N_C)``.
        alpha: Rényi order > 0 (2: the paper's Frobenius form).
        base: logarithm base (2: bits, as the paper).
        gram_over: ``"batch"`` (N = B) or ``"tokens"`` (N = B*HW); see the module docs for the text term.
        gather: inside ``torch.distributed``, build the Grams over the global batch of all ranks
            (`infoclip.distributed`); a no-op outside a process group. Shared text must be the same on
            every rank.

    Returns:
        Scalar tensor (float32, or float64 for float64 inputs).

    Raises:
        TypeError: non-tensor or non-floating inputs; non-numeric alpha/base.
        ValueError: wrong ranks or mismatched shapes, non-finite values, ``gram_over="batch"`` with a
            (global) batch of 1, an unknown ``gram_over``, alpha <= 0.

    Example:
        >>> import torch
        >>> from infoclip import compression_loss
        >>> v, t, r = torch.randn(4, 9, 8), torch.randn(5, 8), torch.randn(4, 9, 5)
        >>> compression_loss(v, t, r).shape
        torch.Size([])
    """
    alpha, base, gram_over = _check_options(alpha, base, gram_over)
    v, t, r = _check_compression_inputs(teacher_visual, teacher_text, teacher_alignment)
    gather = bool(gather) and is_distributed()
    v, t, r = _gather_compression(v, t, r, gather)
    check_global_batch(gram_over, v.shape[0], gather)
    check_all_finite(
        [("teacher_visual", v), ("teacher_text", t), ("teacher_alignment", r)], across_ranks=gather
    )
    return _compression(v, t, r, alpha, base, gram_over)


def distillation_loss(
    teacher_alignment: torch.Tensor,
    student_alignment: torch.Tensor,
    *,
    alpha: float = 2.0,
    base: float = 2.0,
    gram_over: str = "batch",
    gather: bool = False,
    estimator: str = "mi",
    permutations: int | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""InfoCLIP distillation loss $L_d = -I_\alpha(R^T; R^S)$ (alignment transfer, Eqs. 10-11).

    $$
    L_d = -S_\alpha(G_r^T) - S_\alpha(G_r^S) + S_\alpha(G_r^T, G_r^S)
    $$

    At alpha = 2 (default) this is Eq. 11,
    $\log_2\lVert G^T\rVert_F^2 + \log_2\lVert G^S\rVert_F^2 - \log_2\lVert G^{TS}\rVert_F^2$ with
    trace-normalised Grams. It is not clamped: matrix Rényi mutual information can be negative for
    alpha > 1. Both arguments receive gradients ($R^T$ is not detached in InfoCLIP: LPAM learns
    through both branches).

    With ``estimator="dime"`` (opt-in) the shared information is DiME on the same cosine Grams
    (`renyi_info.dime`), $L_d = -\mathrm{DiME}_\alpha(R^T; R^S) =
    S_\alpha(G_r^T, G_r^S) - \mathbb{E}_\pi S_\alpha(G_r^T, P_\pi G_r^S P_\pi^\top)$: zero for a student
    unrelated to the teacher, including one whose batch Gram is the identity, which maximises
    $I_\alpha$ whatever the teacher (see `InfoCLIPLoss` and "The distillation loss and orthogonal students"
    in the theory page).

    Args:
        teacher_alignment: $R^T$ ``(B, HW, N_C)``.
        student_alignment: $R^S$ ``(B, HW, N_C)``, same shape.
        alpha: Rényi order > 0 (2: the paper's Frobenius form).
        base: logarithm base (2: bits).
        gram_over: ``"batch"`` (N = B) or ``"tokens"`` (N = B*HW).
        gather: Grams over the global batch of all ranks (see `compression_loss`).
        estimator: ``"mi"`` (the paper's $I_\alpha$, default) or ``"dime"``.
        permutations: DiME's pairings (``estimator="dime"`` only): ``None`` (exact over all $N!$
            pairings for $N \le 7$, else 128 sampled), ``"exact"`` ($N \le 8$) or a number to sample; see
            `renyi_info.dime`. With ``gram_over="tokens"`` every pairing builds an ``N x N`` joint Gram.
        generator: the ``torch.Generator`` of DiME's sampled pairings (``estimator="dime"`` only);
            default: a fresh generator seeded with 0 at every call, so the loss is a deterministic
            function of its inputs. Pass your own generator to draw new pairings each step.

    Returns:
        Scalar tensor.

    Raises:
        TypeError: non-tensor or non-floating inputs.
        ValueError: wrong ranks, different shapes, non-finite values, ``gram_over="batch"`` with a
            (global) batch of 1; an unknown ``estimator``; ``permutations`` or ``generator`` with
            ``estimator="mi"``.

    Example:
        >>> import torch
        >>> from infoclip import distillation_loss
        >>> r = torch.randn(4, 9, 5)
        >>> bool(distillation_loss(r, r) < 0)  # identical maps share all their information
        True
    """
    alpha, base, gram_over = _check_options(alpha, base, gram_over)
    estimator = _check_estimator_options(estimator, permutations, generator, "generator")
    r_t = alignment_map("teacher_alignment", teacher_alignment)
    r_s = alignment_map("student_alignment", student_alignment)
    check_same_shape(("teacher_alignment", "student_alignment"), r_t, r_s, "(B, HW, N_C)")
    gather = bool(gather) and is_distributed()
    if gather:
        r_t, r_s = gather_batches([r_t, r_s], ["teacher_alignment", "student_alignment"])
    check_global_batch(gram_over, r_t.shape[0], gather)
    check_all_finite([("teacher_alignment", r_t), ("student_alignment", r_s)], across_ranks=gather)
    return _distillation(r_t, r_s, alpha, base, gram_over, estimator, permutations, generator)


class CompressionLoss(nn.Module):
    """Module form of `compression_loss` (same arguments, fixed at construction).

    Example:
        >>> import torch
        >>> from infoclip import CompressionLoss, compression_loss
        >>> v, t, r = torch.randn(4, 9, 8), torch.randn(5, 8), torch.randn(4, 9, 5)
        >>> bool(CompressionLoss()(v, t, r) == compression_loss(v, t, r))
        True
    """

    def __init__(
        self, *, alpha: float = 2.0, base: float = 2.0, gram_over: str = "batch", gather: bool = False
    ) -> None:
        super().__init__()
        self.alpha, self.base, self.gram_over = _check_options(alpha, base, gram_over)
        self.gather = bool(gather)

    def forward(
        self, teacher_visual: torch.Tensor, teacher_text: torch.Tensor, teacher_alignment: torch.Tensor
    ) -> torch.Tensor:
        return compression_loss(
            teacher_visual,
            teacher_text,
            teacher_alignment,
            alpha=self.alpha,
            base=self.base,
            gram_over=self.gram_over,
            gather=self.gather,
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, base={self.base}, gram_over={self.gram_over!r}, gather={self.gather}"


class DistillationLoss(nn.Module):
    """Module form of `distillation_loss`.

    Its ``estimator`` and ``permutations`` are those of `distillation_loss`; instead of a generator it takes
    ``seed``: with ``estimator="dime"`` each call draws its sampled pairings from a generator seeded with it
    (the same pairings at every call: default 0), or from torch's global generator for ``seed=None`` (new
    pairings each call, reproducible through ``torch.manual_seed``).

    Example:
        >>> import torch
        >>> from infoclip import DistillationLoss, distillation_loss
        >>> a, b = torch.randn(4, 9, 5), torch.randn(4, 9, 5)
        >>> bool(DistillationLoss()(a, b) == distillation_loss(a, b))
        True
        >>> bool(DistillationLoss(estimator="dime")(a, b) == distillation_loss(a, b, estimator="dime"))
        True
    """

    def __init__(
        self,
        *,
        alpha: float = 2.0,
        base: float = 2.0,
        gram_over: str = "batch",
        gather: bool = False,
        estimator: Estimator = "mi",
        permutations: Pairings = None,
        seed: PairingSeed = 0,
    ) -> None:
        super().__init__()
        self.alpha, self.base, self.gram_over = _check_options(alpha, base, gram_over)
        self.gather = bool(gather)
        self.permutations = check_permutations(permutations)
        self.seed = check_seed(seed)
        self.estimator = _check_estimator_options(estimator, permutations, None, "seed")

    def forward(self, teacher_alignment: torch.Tensor, student_alignment: torch.Tensor) -> torch.Tensor:
        return distillation_loss(
            teacher_alignment,
            student_alignment,
            alpha=self.alpha,
            base=self.base,
            gram_over=self.gram_over,
            gather=self.gather,
            estimator=self.estimator,
            permutations=self.permutations,
            generator=_seeded(self.seed) if self.estimator == "dime" else None,
        )

    def extra_repr(self) -> str:
        extra = f", estimator='dime', permutations={self.permutations!r}, seed={self.seed}"
        return f"alpha={self.alpha}, base={self.base}, gram_over={self.gram_over!r}, gather={self.gather}" + (
            extra if self.estimator == "dime" else ""
        )


class InfoCLIPLoss(Distiller):
    r"""The InfoCLIP objective: $\lambda_1 L_c + \lambda_2 L_d$ with one LPAM shared by teacher and
    student (add it to the task loss, Eq. 12).

    $$
    R^T = \mathrm{LPAM}(D_V^T, D_L^T),\quad R^S = \mathrm{LPAM}(D_V^S, D_L^S),\qquad
    \text{total} = \lambda_1 L_c(D_V^T, D_L^T, R^T) + \lambda_2 L_d(R^T, R^S)
    $$

    Gradient routing:

    - the teacher's features are detached (the frozen CLIP gets no gradient, even if its tensors
      require one);
    - $R^T$ is **not** detached: LPAM learns from $L_c$ and from both branches of $L_d$;
    - the student's features (and through them the fine-tuned CLIP) get gradients from $L_d$ only.

    Train ``self.lpam`` at the decoder's learning rate (2e-4 in the paper), not CLIP's:
    ``optimizer = AdamW([*model_groups, *loss.parameter_groups(lr=2e-4)])``. It is a training-time
    module only.

    Args:
        embed_dim: CLIP's joint embedding width ``d`` (LPAM's width).
        lambda_compress: $\lambda_1$ (paper: 1).
        lambda_distill: $\lambda_2$ (paper: 1).
        alpha: Rényi order (paper: 2).
        base: logarithm base (paper: 2).
        gram_over: ``"batch"`` (paper) or ``"tokens"`` (see `infoclip.losses`).
        gather: Grams over the global batch of all ranks under ``torch.distributed``
            (`infoclip.distributed`: after DDP's gradient averaging every parameter gets the gradient
            of the global-batch loss).
        text_templates: the text inputs carry one embedding per prompt template, ``(N_C, T, d)`` or
            ``(B, N_C, T, d)`` (mmsegmentation's CAT-Seg port); they are averaged over the templates
            and L2-normalised again, $\hat t_c = \bar t_c / \lVert \bar t_c \rVert$ with
            $\bar t_c = \frac1T \sum_j t_{c,j}$, before anything else.
        estimator: how $L_d$ measures what $R^S$ shares with $R^T$: ``"mi"`` (the paper's
            $-I_\alpha(R^T;R^S)$, default) or ``"dime"`` ($-\mathrm{DiME}_\alpha(R^T;R^S)$ on the same
            Grams; see below and `renyi_info.dime`).
        permutations: DiME's pairings (``estimator="dime"`` only): ``None`` (exact over all $N!$ pairings
            for $N \le 7$, else 128 sampled), ``"exact"`` ($N \le 8$) or a number to sample.
        seed: DiME's sampled pairings come from a generator seeded with it at every step (default 0:
            deterministic), or from torch's global generator for ``None``; unused by ``"mi"`` and by exact
            pairings.

    What $L_d$ rewards (``estimator="mi"``): with batch Grams (``gram_over="batch"``, $N = B \ll d$)
    and the cosine kernel, $I_\alpha(R^T;R^S) \le \min(S_\alpha(G^T), S_\alpha(G^S))$, with equality
    when the student's Gram is the identity. So **any student whose batch alignment maps are orthogonal
    attains the maximum, $S_\alpha(G^T)$, whatever the teacher**: the mutual information of two
    representations that both tell the batch's samples apart is maximal (mutual information is invariant
    to bijections), and at the paper's setting $L_d$ rewards decorrelating the batch as much as copying
    the teacher's relations. Measured with the library (alpha = 2, cosine, $N = 4$, $d = 512$, a teacher
    with correlated rows, mean of 10 seeds; ``benchmarks/bench_ld_property.py``): a student equal to the
    teacher, the shuffled teacher, a Gaussian-noise student and an orthogonal student score 0.128, 0.127,
    0.603 and 0.609 bits, the last equal to $S_2(G^T)$. With ``gram_over="tokens"`` ($N \gg d$) rows
    cannot be orthogonal and the escape is closed. ``estimator="dime"`` scores the orthogonal and the noise
    students 0 (a shuffled pairing does as well as the true one) and ranks a teacher-like student first
    ($N = 8$, two clusters: teacher 0.55 bits, noise 0.00, orthogonal 0.00); see "The distillation loss and
    orthogonal students" in the theory page and "When each estimator fits" in the InfoCLIP guide.

    Shape:
        forward(teacher_visual, teacher_text, student_visual, student_text): visual ``(B, HW, d)`` or
        ``(B, d, H, W)``; text ``(N_C, d)`` or ``(B, N_C, d)`` (with ``text_templates``: ``(N_C, T, d)``
        or ``(B, N_C, T, d)``); teacher and student alike. Extra keywords
        of the `infoclip.distiller.Distiller` interface are accepted and ignored. It returns a
        `infoclip.DistillationOutput` with ``total``, ``compression``, ``distillation``,
        ``teacher_alignment`` and ``student_alignment`` (``(B, HW, N_C)``, local batch).

    Example:
        >>> import torch
        >>> from infoclip import InfoCLIPLoss
        >>> loss = InfoCLIPLoss(64)
        >>> tv, sv = torch.randn(4, 36, 64), torch.randn(4, 36, 64, requires_grad=True)
        >>> text = torch.randn(10, 64)
        >>> out = loss(tv, text, sv, text)
        >>> out.total.backward()
        >>> out.student_alignment.shape, sv.grad is not None
        (torch.Size([4, 36, 10]), True)
    """

    name = "infoclip"

    def __init__(
        self,
        embed_dim: int,
        *,
        lambda_compress: Weight = 1.0,
        lambda_distill: Weight = 1.0,
        alpha: RenyiOrder = 2.0,
        base: LogBase = 2.0,
        gram_over: GramAxis = "batch",
        gather: bool = False,
        text_templates: bool = False,
        estimator: Estimator = "mi",
        permutations: Pairings = None,
        seed: PairingSeed = 0,
    ) -> None:
        super().__init__(embed_dim)
        self.permutations = check_permutations(permutations)
        self.seed = check_seed(seed)
        self.estimator = _check_estimator_options(estimator, permutations, None, "seed")
        self.text_templates = bool(text_templates)
        self.lambda_compress = check_weight("lambda_compress", lambda_compress)
        self.lambda_distill = check_weight("lambda_distill", lambda_distill)
        self.alpha, self.base, self.gram_over = _check_options(alpha, base, gram_over)
        self.gather = bool(gather)
        self.lpam = LPAM(self.embed_dim)

    def prepare_text(self, name: str, text: torch.Tensor) -> torch.Tensor:
        """The text as class embeddings: averaged over the prompt templates when ``text_templates`` is set."""
        return template_text_embeddings(name, text) if self.text_templates else text

    def distill(self, inputs: DistillerInputs, **extras: Any) -> DistillationOutput:
        """Both losses of one training step; the teacher's features are detached here.

        Returns:
            The weighted ``total`` and its parts; the alignment maps cover the local batch.
        """
        tv, tt, sv, st = inputs[:4]
        tv, tt = tv.detach(), tt.detach()
        r_t = self.lpam(tv, tt)
        r_s = self.lpam(sv, st)
        gather = self.gather and is_distributed()
        v_all, t_all, rt_all = _gather_compression(tv, tt, r_t, gather)
        rs_all = gather_batches([r_s], ["student_alignment"])[0] if gather else r_s
        check_global_batch(self.gram_over, v_all.shape[0], gather)
        check_all_finite(
            [
                ("teacher_visual", tv),
                ("teacher_text", tt),
                ("student_visual", sv),
                ("student_text", st),
                ("teacher_alignment (LPAM output)", r_t),
                ("student_alignment (LPAM output)", r_s),
            ],
            across_ranks=gather,
        )
        l_c = _compression(v_all, t_all, rt_all, self.alpha, self.base, self.gram_over)
        l_d = _distillation(
            rt_all,
            rs_all,
            self.alpha,
            self.base,
            self.gram_over,
            self.estimator,
            self.permutations,
            _seeded(self.seed) if self.estimator == "dime" else None,
        )
        weighted_c = self.lambda_compress * l_c
        weighted_d = self.lambda_distill * l_d
        return DistillationOutput(
            total=weighted_c + weighted_d,
            compression=l_c,
            distillation=l_d,
            teacher_alignment=r_t,
            student_alignment=r_s,
            terms={"loss_compress": weighted_c, "loss_distill": weighted_d},
        )

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, lambda_compress={self.lambda_compress}, "
            f"lambda_distill={self.lambda_distill}, alpha={self.alpha}, gram_over={self.gram_over!r}, "
            f"gather={self.gather}"
            + (", text_templates=True" if self.text_templates else "")
            + (
                f", estimator='dime', permutations={self.permutations!r}, seed={self.seed}"
                if self.estimator == "dime"
                else ""
            )
        )
