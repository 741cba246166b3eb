"""The one definition of what every public quantity function does, behind its explicit signature.

Each public function of `renyi_info.features`, `renyi_info.matrix` and `renyi_info.estimates` keeps its own
typed signature and the text that is its own (summary, maths, its inputs, example), is decorated with
`front_door` and has one line of body, ``return of_features("<name>", locals())`` (or `of_matrices`,
`estimate_of_features`). What they share lives here, once:

- **the shared `Args:` text** of the options (``alpha``, ``kernel``, ``base``, ``method``, ``sigma``,
  ``degree``, ``coef``, ``compute_dtype``, ``lanczos``): `front_door` writes each option a function does
  not document itself into its docstring, in signature order, in the variant its quantity needs
  (`QUANTITIES`); a parameter documented nowhere is an error at import;
- **the preparation call** (`renyi_info._inputs.prepare_features` / `prepare_matrices`: validation, dtype,
  the resolved method);
- **the route choice**: the stochastic Lanczos estimate when the resolved method is ``"lanczos"``, else the
  quantity's exact evaluation, then the conversion to the caller's base.

Adding an option means: its parameter in the signatures, its text in `_OPTION_DOCS`, and its handling in
`renyi_info._inputs`.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from ._inputs import Prepared, prepare_features, prepare_matrices
from ._units import to_base
from ._validation import public
from .algorithms import routes
from .algorithms.lanczos import Estimate, features_nats, matrices_nats
from .gram_level import (
    gram_conditional_entropy,
    gram_conditional_mutual_information,
    gram_divergence,
    gram_entropy,
    gram_mutual_information,
    gram_total_correlation,
    hadamard,
)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Quantity:
    """What one public quantity is: which methods it accepts (``kind`` of `renyi_info._inputs`), which
    Lanczos estimate computes it (``None``: exact methods only) and how it is evaluated exactly."""

    kind: str
    lanczos: str | None
    features: Callable[[Prepared], torch.Tensor] | None = None
    matrices: Callable[[Prepared], torch.Tensor] | None = None


def _two(grams: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return grams[0], grams[1]


def _routed(quantity: str) -> Callable[[Prepared], torch.Tensor]:
    """The exact evaluation of features: the signed entropy terms of ``quantity`` (`routes.SIGNED_TERMS`), each
    on the route the cost model picks."""
    return lambda p: routes.quantity_nats(quantity, p.tensors, p.specs, p.alpha, p.method, p.names)


#: The quantities by public name, in nats: each exact evaluation of features and of matrices.
QUANTITIES: dict[str, Quantity] = {
    "entropy": Quantity(
        "entropy",
        "entropy",
        features=_routed("joint_entropy"),
        matrices=lambda p: gram_entropy(p.tensors[0], p.alpha, p.method, p.names[0]),
    ),
    "joint_entropy": Quantity(
        "entropy",
        "entropy",
        features=_routed("joint_entropy"),
        matrices=lambda p: gram_entropy(hadamard(list(p.tensors)), p.alpha, p.method, "the Hadamard product"),
    ),
    "mutual_information": Quantity(
        "entropy",
        "mutual_information",
        features=_routed("mutual_information"),
        matrices=lambda p: gram_mutual_information(p.tensors[0], p.tensors[1], p.alpha, p.method),
    ),
    "conditional_entropy": Quantity(
        "derived",
        None,
        features=_routed("conditional_entropy"),
        matrices=lambda p: gram_conditional_entropy(p.tensors[0], p.tensors[1], p.order, p.method),
    ),
    "conditional_mutual_information": Quantity(
        "derived",
        None,
        features=_routed("conditional_mutual_information"),
        matrices=lambda p: gram_conditional_mutual_information(
            p.tensors[0], p.tensors[1], p.tensors[2], p.order, p.method
        ),
    ),
    "total_correlation": Quantity(
        "derived",
        None,
        features=_routed("total_correlation"),
        matrices=lambda p: gram_total_correlation(p.tensors, p.order, p.method, p.names),
    ),
    "divergence": Quantity(
        "divergence",
        None,
        features=lambda p: gram_divergence(*_two(p.grams()), p.order, p.method, ("x", "y")),
        matrices=lambda p: gram_divergence(p.tensors[0], p.tensors[1], p.order, p.method),
    ),
    # DiME's doors (`renyi_info.dependence`, `renyi_info.matrix`) average over pairings they draw themselves:
    # only the shared text and the exact-method rule come from here.
    "dime": Quantity("derived", None),
    "entropy_estimate": Quantity("estimate", "entropy"),
    "joint_entropy_estimate": Quantity("estimate", "entropy"),
    "mutual_information_estimate": Quantity("estimate", "mutual_information"),
}

#: The keyword options the preparation takes (a public function has those of them its quantity uses).
OPTIONS = ("alpha", "base", "method", "kernel", "sigma", "degree", "coef", "compute_dtype", "lanczos")
#: Arguments of a door that are neither its inputs nor shared options: its body handles them (DiME's pairings).
OWN_ARGUMENTS = ("permutations", "generator")


def _inputs(name: str, arguments: Mapping[str, object], what: str) -> tuple[list[str], list[object]]:
    """The tensor arguments of a call (the parameters that are not options), with their names for messages:
    ``x``, ``y``, ... or, for ``*xs``, ``xs[0]``, ``xs[1]``, ..."""
    names: list[str] = []
    values: list[object] = []
    for key, value in arguments.items():
        if key in OPTIONS or key in OWN_ARGUMENTS:
            continue
        if isinstance(value, tuple):  # *xs / *mats
            if not value:
                raise ValueError(f"{name} needs at least one {what}; got none")
            names.extend(f"{key}[{i}]" for i in range(len(value)))
            values.extend(value)
        else:
            names.append(key)
            values.append(value)
    return names, values


def _options(arguments: Mapping[str, object]) -> dict[str, Any]:
    return {k: v for k, v in arguments.items() if k in OPTIONS}


def of_features(name: str, arguments: Mapping[str, object]) -> torch.Tensor:
    """The public quantity ``name`` of the feature tensors in ``arguments`` (a call's ``locals()``)."""
    return _evaluate(name, arguments, "features")


def of_matrices(name: str, arguments: Mapping[str, object]) -> torch.Tensor:
    """The public quantity ``name`` of the Gram matrices in ``arguments`` (a call's ``locals()``)."""
    return _evaluate(name, arguments, "matrices")


def prepared(name: str, arguments: Mapping[str, object], context: str) -> Prepared:
    """The preparation of every door: the inputs and options of a call (``locals()``) of the quantity ``name``,
    validated, in the compute dtype, with the resolved method (``context``: ``"features"`` or
    ``"matrices"``)."""
    features = context == "features"
    names, tensors = _inputs(name, arguments, "feature tensor" if features else "matrix")
    prepare = prepare_features if features else prepare_matrices
    return prepare(QUANTITIES[name].kind, names, tensors, **_options(arguments))


def _evaluate(name: str, arguments: Mapping[str, object], context: str) -> torch.Tensor:
    """Prepare, then the route choice: the Lanczos estimate when the resolved method is ``"lanczos"``, else the
    quantity's exact evaluation; in the caller's base."""
    q = QUANTITIES[name]
    features = context == "features"
    p = prepared(name, arguments, context)
    if p.lanczos is not None:
        assert q.lanczos is not None
        if features:
            nats = features_nats(q.lanczos, p.tensors, p.specs, p.order, p.lanczos).value
        else:
            nats = matrices_nats(q.lanczos, p.tensors, p.order, p.lanczos).value
    else:
        exact = q.features if features else q.matrices
        assert exact is not None
        nats = exact(p)
    return to_base(nats, p.base)


def estimate_of_features(name: str, arguments: Mapping[str, object]) -> Estimate:
    """The stochastic estimate ``name`` of the feature tensors in ``arguments``, with its errors."""
    q = QUANTITIES[name]
    assert q.lanczos is not None
    p = prepared(name, arguments, "features")
    assert p.lanczos is not None
    est = features_nats(q.lanczos, p.tensors, p.specs, p.order, p.lanczos)
    return Estimate(*(to_base(t, p.base) for t in est))


# ---- the shared Args text ----------------------------------------------------------------------------------

_KERNELS = '``"cosine"`` (default), ``"linear"``, ``"polynomial"``, ``"gaussian"`` or ``"label"`` (integer class labels ``(..., n)``); see `renyi_info.gram`'
_PER_INPUT = ": one value for all inputs or a sequence with one per input"


def _option_docs(option: str, context: str, kind: str, several: bool) -> str | None:
    """The shared text of ``option`` for a function of ``context`` (``"features"``, ``"matrices"``,
    ``"estimates"``) computing a quantity of ``kind`` from one or ``several`` inputs."""
    per_input = _PER_INPUT if several else ""
    if option == "alpha":
        if kind == "divergence":
            return "order, finite and > 0; default 0.5."
        if kind == "estimate":
            return (
                "order, > 0 and finite (``alpha = inf`` has no standard error: its value is the function without "
                '``_estimate``, with ``method="lanczos"``).'
            )
        if kind == "entropy":
            return (
                'order, > 0 (``1`` and ``float("inf")`` included), or a sequence of orders (list, tuple or 1-D '
                'tensor, ``method="auto"`` or ``"eig"``): one value per order on a trailing axis, all from one '
                "eigendecomposition of each Gram."
            )
        return 'order, > 0 (``1`` and ``float("inf")`` included).'
    if option == "base":
        return "logarithm base: 2 (bits, the paper's choice) by default, ``math.e`` for nats."
    if option == "method":
        if kind == "derived":
            return (
                'an exact method: ``"auto"`` (the cheapest one for alpha), ``"eig"`` (spectrum, any alpha), '
                '``"frobenius"`` (alpha = 2) or ``"power"`` (integer alpha >= 2).'
            )
        if kind == "divergence":
            return (
                '``"auto"`` (= ``"eig"``), ``"eig"`` (any alpha) or ``"power"`` (integer alpha >= 2, positive '
                "definite $B$)."
            )
        return (
            '``"auto"`` (the cheapest exact method for alpha), ``"eig"`` (spectrum, any alpha), ``"frobenius"`` '
            '(alpha = 2), ``"power"`` (integer alpha >= 2) or ``"lanczos"`` (a stochastic, matrix-free estimate '
            'for large n, any alpha, with a stochastic gradient; never chosen by ``"auto"``; see '
            "`renyi_info.algorithms.lanczos`)."
        )
    if option == "kernel":
        return (
            f"one kernel name for all inputs or a sequence with one per input: {_KERNELS}."
            if several
            else f"{_KERNELS}."
        )
    if option == "sigma":
        return (
            'Gaussian bandwidth (required by ``kernel="gaussian"``, refused by the others): a number > 0, or a '
            'rule evaluated per batch entry, ``"silverman"`` or ``"median"`` (`renyi_info.bandwidth`)'
            + (per_input + " (``None`` for the inputs of other kernels)." if several else ".")
        )
    if option == "degree":
        return f'polynomial degree >= 1 (``kernel="polynomial"`` only){per_input}.'
    if option == "coef":
        return f'polynomial offset ``c >= 0`` (``kernel="polynomial"`` only){per_input}.'
    if option == "compute_dtype":
        if context == "matrices":
            return (
                "``torch.float32`` or ``torch.float64``; default: the input's dtype, at least float32 (a float32 "
                "matrix is not promoted: its entries already carry float32 rounding)."
            )
        if kind == "estimate":
            return "``torch.float32`` or ``torch.float64``; default: the input's dtype, at least float32."
        return (
            "``torch.float32`` or ``torch.float64``; default: the input's dtype, at least float32 (float16 and "
            "bfloat16 inputs are computed in float32), and float64 for the spectrum at alpha <= 1 with "
            '``method="eig"`` (float32 there is 2-100% off; see "Precision" in the method guide); '
            "``torch.float32`` opts out. The result has the input's dtype."
        )
    if option == "lanczos":
        if kind == "estimate":
            return "`renyi_info.LanczosOptions` (default ``LanczosOptions()``), with ``probes >= 3``."
        where = (
            "mat-vecs with the matrix" if context == "matrices" else "mat-vecs recomputed from the features"
        )
        return (
            f'`renyi_info.LanczosOptions` of ``method="lanczos"`` (probes, steps, deflation, generator; a '
            f"stochastic estimate from {where}); default ``LanczosOptions()``; refused with the other methods."
        )
    return None


_ENTRY = re.compile(r"^ {8}(\*{0,2}[A-Za-z_]\w*): ")


def _fill_args(fn: Callable[..., Any], context: str) -> str:
    """``fn``'s docstring with every parameter's ``Args:`` entry: its own, else the shared one."""
    doc = inspect.cleandoc(fn.__doc__ or "")
    q = QUANTITIES[fn.__name__]
    params = inspect.signature(fn).parameters
    several = _several(params)
    lines = textwrap.indent(doc, "    ").splitlines()
    lines[0] = lines[0].strip()
    start = lines.index("    Args:")
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith("        ")),
        len(lines),
    )
    own: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[start + 1 : end]:
        m = _ENTRY.match(line)
        if m:
            current = own.setdefault(m.group(1).lstrip("*"), [])
        if current is not None and line:
            current.append(line)
    entries: list[str] = []
    for p in params.values():
        if p.name in own:
            entries.extend(own.pop(p.name))
            continue
        text = _option_docs(p.name, context, q.kind, several)
        if text is None:
            raise TypeError(
                f"{fn.__qualname__}: parameter {p.name!r} is documented neither in its docstring nor here"
            )
        entries.extend(
            textwrap.wrap(
                f"{p.name}: {text}",
                width=112,
                initial_indent=" " * 8,
                subsequent_indent=" " * 12,
                break_on_hyphens=False,
                break_long_words=False,
            )
        )
    if own:
        raise TypeError(f"{fn.__qualname__}: its docstring documents no such parameters: {sorted(own)}")
    return "\n".join([*lines[: start + 1], *entries, "", *lines[end:]]).rstrip() + "\n"


# ---- the shared signature ----------------------------------------------------------------------------------

#: Each option's annotation (as written: the modules use ``from __future__ import annotations``) and default in
#: the explicit public signatures, for a door of one input and of several (one value per input allowed).
#: `front_door` refuses a signature that restates an option otherwise: the signatures are written out for
#: their readers (users, IDEs, type checkers), and this table is the one definition they must agree with.
SIGNATURE: dict[str, tuple[str, str, object]] = {
    "base": ("float", "float", 2.0),
    "method": ("Method", "Method", "auto"),
    "kernel": ("KernelName", "KernelArg", "cosine"),
    "sigma": ("float | BandwidthRule | None", "SigmaArg", None),
    "degree": ("int", "int | Sequence[int]", 1),
    "coef": ("float", "float | Sequence[float]", 0.0),
    "compute_dtype": ("torch.dtype | None", "torch.dtype | None", None),
    "lanczos": ("LanczosOptions | None", "LanczosOptions | None", None),
    "permutations": ("Permutations", "Permutations", None),
    "generator": ("torch.Generator | None", "torch.Generator | None", None),
}
#: ``alpha``: a sequence of orders where one spectrum serves them all (kind ``"entropy"`` with exact methods).
ALPHA_SWEEP = "float | Sequence[float] | torch.Tensor"


def _expected(option: str, kind: str, several: bool) -> tuple[str, object]:
    """The annotation and default ``option`` must have in a signature of a quantity of ``kind``."""
    if option == "alpha":
        return (ALPHA_SWEEP if kind == "entropy" else "float"), (0.5 if kind == "divergence" else 2.0)
    one, many, default = SIGNATURE[option]
    return (many if several else one), default


def _several(params: Mapping[str, inspect.Parameter]) -> bool:
    """Whether a door takes several inputs (options may then hold one value per input)."""
    inputs = [p for p in params.values() if p.name not in OPTIONS and p.name not in OWN_ARGUMENTS]
    return len(inputs) > 1 or any(p.kind is p.VAR_POSITIONAL for p in inputs)


def _check_signature(fn: Callable[..., Any]) -> None:
    """Every option of ``fn``'s signature is keyword-only, annotated and defaulted as `SIGNATURE` says."""
    params = inspect.signature(fn).parameters
    kind = QUANTITIES[fn.__name__].kind
    several = _several(params)
    for p in params.values():
        if p.name not in OPTIONS and p.name not in OWN_ARGUMENTS:
            continue
        annotation, default = _expected(p.name, kind, several)
        got = (p.kind, str(p.annotation), p.default)
        if got != (p.KEYWORD_ONLY, annotation, default):
            raise TypeError(
                f"{fn.__module__}.{fn.__qualname__}: option {p.name!r} is declared as {got[1]} = {got[2]!r}"
                f"{'' if p.kind is p.KEYWORD_ONLY else ' (not keyword-only)'}; every public signature "
                f"declares it keyword-only as {p.name}: {annotation} = {default!r} (_front_door.SIGNATURE)"
            )


def front_door(context: str) -> Callable[[F], F]:
    """Decorator of the public quantity functions of ``context`` (``"features"``, ``"matrices"``,
    ``"estimates"``): the signature checked against `SIGNATURE`, the shared ``Args:`` text written into the
    docstring (for `help` and the API pages), then `renyi_info._validation.public` (autocast off, results in
    the caller's dtype)."""

    def decorate(fn: F) -> F:
        _check_signature(fn)
        fn.__doc__ = _fill_args(fn, context)
        return public(fn)

    return decorate


__all__: Sequence[str] = ["QUANTITIES", "estimate_of_features", "front_door", "of_features", "of_matrices"]
