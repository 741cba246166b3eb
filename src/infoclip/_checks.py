"""Argument checks shared by the infoclip modules and losses.

Every check raises a ``TypeError`` or ``ValueError`` naming the argument, what was expected and what
was received. Shape checks never synchronise a GPU; `check_all_finite` synchronises once for
all the tensors it is given.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import torch

#: The Gram axes of InfoCLIP's losses, each with what its samples are.
GRAM_AXES = {"batch": "N = batch size, one sample per image", "tokens": "N = B*HW, one sample per token"}

#: Estimators of the distillation loss's shared information: the paper's matrix mutual information, or DiME.
ESTIMATORS = {
    "mi": "the paper's matrix mutual information I_alpha(R^T; R^S), the default",
    "dime": "the difference of matrix-based entropies, zero for independent maps",
}


def check_floating(name: str, x: object, what: str) -> torch.Tensor:
    """``x`` must be a real floating tensor (``what`` describes the expected shape)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {what}; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a real floating-point tensor of shape {what}; got dtype {x.dtype}. "
            f"Convert it with {name}.float()"
        )
    if x.device.type == "meta":
        raise ValueError(
            f"{name} is a meta tensor (shape {tuple(x.shape)}, no data): the losses depend on the values of the "
            "features, which a meta tensor does not have. Pass the real features"
        )
    return x


#: Why an axis may not be empty, by the axis's short name (the text before its parenthesis).
_WHY_NONEMPTY = {
    "batch": "a batch of no images has no samples to build a Gram matrix over (and a loss averaged over no "
    "images is undefined)",
    "template": "the average over zero prompt templates is undefined; pass at least one template per class, "
    "or text_templates=False with (N_C, d) text",
}


def check_nonempty(name: str, x: torch.Tensor, axes: Sequence[str]) -> None:
    """Every named axis of ``x`` (its last ``len(axes)`` dims) must have at least one entry.

    Checked before any value is read, so that an empty input is refused by the axis it lacks (not later as a
    "non-finite" mean or a zero trace).
    """
    for axis, size in zip(axes, x.shape[-len(axes) :]):
        if size == 0:
            why = _WHY_NONEMPTY.get(
                axis.split(" ")[0], "a Gram matrix of empty samples has no trace to normalise by"
            )
            raise ValueError(
                f"{name} has an empty {axis} axis (shape {tuple(x.shape)}): at least one entry is needed, since "
                f"{why}"
            )


def visual_tokens(name: str, x: object) -> torch.Tensor:
    """Dense visual features as tokens ``(B, HW, d)``, from ``(B, HW, d)`` or ``(B, d, H, W)``."""
    what = "(B, HW, d) or (B, d, H, W)"
    x = check_floating(name, x, what)
    if x.dim() == 4:
        x = x.flatten(2).transpose(1, 2)
    elif x.dim() != 3:
        raise ValueError(
            f"{name} must have shape {what} (rank 3 or 4); got rank {x.dim()} with shape {tuple(x.shape)}"
        )
    check_nonempty(name, x, ("batch (B)", "token (HW)", "embedding (d)"))
    return x


def spatial_shape_of(x: torch.Tensor) -> tuple[int, int] | None:
    """``(H, W)`` of a ``(B, d, H, W)`` tensor; ``None`` for token layouts."""
    return (int(x.shape[-2]), int(x.shape[-1])) if x.dim() == 4 else None


def text_embeddings(name: str, t: object) -> torch.Tensor:
    """Class embeddings ``(N_C, d)`` (shared by the batch) or ``(B, N_C, d)`` (one set per sample)."""
    what = "(N_C, d) or (B, N_C, d)"
    t = check_floating(name, t, what)
    if t.dim() not in (2, 3):
        raise ValueError(
            f"{name} must have shape {what} (rank 2 or 3); got rank {t.dim()} with shape {tuple(t.shape)}"
        )
    check_nonempty(name, t, (("batch (B)",) if t.dim() == 3 else ()) + ("class (N_C)", "embedding (d)"))
    return t


def template_text_embeddings(name: str, t: object) -> torch.Tensor:
    """Class embeddings with a prompt-template axis, ``(N_C, T, d)`` or ``(B, N_C, T, d)`` (as
    mmsegmentation's CAT-Seg backbone gives them), averaged over the ``T`` templates and L2-normalised
    again: ``(N_C, d)`` or ``(B, N_C, d)``."""
    what = "(N_C, T, d) or (B, N_C, T, d)"
    t = check_floating(name, t, what)
    if t.dim() not in (3, 4):
        raise ValueError(
            f"{name} must have shape {what} (rank 3 or 4; text_templates=True) but has rank {t.dim()} with "
            f"shape {tuple(t.shape)}; pass text_templates=False for (N_C, d) or (B, N_C, d)"
        )
    axes = ("class (N_C)", "template (T)", "embedding (d)")
    check_nonempty(name, t, (("batch (B)",) if t.dim() == 4 else ()) + axes)
    return torch.nn.functional.normalize(t.mean(dim=-2), dim=-1)


def check_text_against_visual(v_name: str, v: torch.Tensor, t_name: str, t: torch.Tensor) -> None:
    """Text and visual tokens must share the embedding dim; per-sample text must match the batch."""
    if t.shape[-1] != v.shape[-1]:
        raise ValueError(
            f"{t_name} and {v_name} must have the same embedding dim d: {v_name} has d = {v.shape[-1]} "
            f"(shape {tuple(v.shape)} as (B, HW, d)), {t_name} has d = {t.shape[-1]} (shape {tuple(t.shape)})"
        )
    if t.dim() == 3 and t.shape[0] != v.shape[0]:
        raise ValueError(
            f"{t_name} has one set of class embeddings per sample (shape {tuple(t.shape)} = (B, N_C, d)) but "
            f"its batch size {t.shape[0]} differs from {v_name}'s {v.shape[0]}; pass (N_C, d) to share one "
            "set of classes across the batch"
        )


def alignment_map(name: str, r: object) -> torch.Tensor:
    """Pixel-text alignment maps ``(B, HW, N_C)`` (the output of `infoclip.LPAM`)."""
    what = "(B, HW, N_C)"
    r = check_floating(name, r, what)
    if r.dim() != 3:
        raise ValueError(
            f"{name} must have shape {what} (rank 3, as returned by infoclip.LPAM); got rank {r.dim()} with "
            f"shape {tuple(r.shape)}"
        )
    check_nonempty(name, r, ("batch (B)", "token (HW)", "class (N_C)"))
    return r


def check_same_shape(names: tuple[str, str], a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape {what}: {names[0]} has {tuple(a.shape)}, "
            f"{names[1]} has {tuple(b.shape)} (teacher and student must see the same batch, tokens and classes)"
        )


def check_choice(name: str, value: object, choices: Mapping[str, str]) -> str:
    """``value`` must be one of the names in ``choices`` (name -> what it means); the error lists them all."""
    if not isinstance(value, str) or value not in choices:
        listed = " or ".join(f"{choice!r} ({meaning})" for choice, meaning in choices.items())
        raise ValueError(f"{name} must be {listed}; got {value!r}")
    return str(value)


def check_seed(seed: object) -> int | None:
    """The seed of the generator of DiME's sampled pairings: an int, or ``None`` for torch's global generator."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be an int (a generator seeded with it draws the same pairings at every call) or None "
            f"(torch's global generator: new pairings each call); got {seed!r}"
        )
    return int(seed)


def check_global_batch(gram_over: str, batch: int, gather: bool) -> None:
    """A Gram over one sample is ``[[1]]``: every entropy is 0, so the loss is identically 0."""
    if gram_over == "batch" and batch < 2:
        where = "global batch (all ranks together)" if gather else "batch"
        raise ValueError(
            f"gram_over='batch' needs a {where} of at least 2 samples; got {batch}. A Gram matrix over one "
            "sample is [[1]], so every entropy is 0 and the loss would be identically 0 with no gradient. Use a "
            "batch size >= 2 (or gather=True to span the batches of all GPUs), or gram_over='tokens' "
            "(N = B*HW token samples)"
        )


def check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number > 0; got {value!r}")
    value = float(value)
    if not (0 < value < float("inf")):
        raise ValueError(f"{name} must be finite and > 0; got {value}")
    return value


def check_weight(name: str, value: object) -> float:
    """A loss weight: a finite real >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0; got {value!r}")
    value = float(value)
    if not (0 <= value < float("inf")):
        raise ValueError(f"{name} must be finite and >= 0; got {value}")
    return value


def check_embed_dim(embed_dim: object, name: str = "embed_dim") -> int:
    if isinstance(embed_dim, bool) or not isinstance(embed_dim, numbers.Integral) or int(embed_dim) < 1:
        raise ValueError(f"{name} must be an integer >= 1 (CLIP's joint embedding width); got {embed_dim!r}")
    return int(embed_dim)


def check_all_finite(named: Sequence[tuple[str, torch.Tensor]], *, across_ranks: bool = False) -> None:
    """Reject NaN/inf in any of the tensors, with one device synchronisation for all of them.

    With ``across_ranks`` (inside a process group) the flags are combined over all ranks first, so that
    every rank raises together instead of leaving the others waiting in a collective.
    """
    if not named:
        return
    with torch.no_grad():
        flags = torch.stack(
            [
                torch.isfinite(t).all() if t.numel() else torch.ones((), dtype=torch.bool, device=t.device)
                for _, t in named
            ]
        )
        if across_ranks:
            from .distributed import all_ranks_all

            flags = all_ranks_all(flags)
        if bool(flags.all()):
            return
        for (name, t), ok in zip(named, flags.tolist()):
            if not ok:
                bad = int((~torch.isfinite(t)).sum())
                where = (
                    f" ({bad} of {t.numel()} on this rank)" if across_ranks else f" ({bad} of {t.numel()})"
                )
                raise ValueError(
                    f"{name} contains non-finite values (NaN or inf){where}; the losses are undefined there. "
                    "Check the encoder outputs (overflow under float16 autocast is a common cause)"
                )


@dataclass(frozen=True)
class OptionRule:
    """The rule a distiller option's value must meet, attached to its annotation with ``typing.Annotated``.

    ``check(name, value)`` returns the value as the distiller stores it, or raises a ``TypeError`` /
    ``ValueError`` naming the option. `infoclip.registry` reads the rules from a distiller's constructor
    signature, so options are checked without building the distiller.
    """

    check: Callable[[str, object], object]
    expected: str


#: A loss weight option: a finite real >= 0.
Weight = Annotated[float, OptionRule(check_weight, "a finite number >= 0")]
#: A strictly positive option (a temperature, a logit scale).
Positive = Annotated[float, OptionRule(check_positive, "a finite number > 0")]
#: The Gram axis of InfoCLIP's losses.
GramAxis = Annotated[
    str, OptionRule(lambda name, value: check_choice(name, value, GRAM_AXES), "'batch' or 'tokens'")
]
