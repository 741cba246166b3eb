"""The distillers by name: which exist, which options each takes, what each exposes for plots.

One `DistillerSpec` per distiller answers everything a trainer needs to know before it builds one:

| question | where the answer comes from |
| --- | --- |
| which distillers exist | `distiller_names`, in registration order |
| which options a distiller takes, their types and defaults | the keyword-only parameters of its constructor (`DistillerSpec.options`) |
| whether option values are valid | each option's annotation: a plain type, or a type with an `OptionRule` attached (`typing.Annotated`); checked by `DistillerSpec.check_options` without building the distiller |
| which extra inputs it reads | its class attribute `Distiller.extra_inputs` |
| what it exposes for plots | the `AlignmentMap` it was registered with (InfoCLIP: LPAM's alignment $R$) |

A new constructor option is therefore known to the registry as soon as it is in the signature; a new
distiller is one `register_distiller` call.

Example:
    >>> from infoclip.registry import distiller_spec
    >>> spec = distiller_spec("kl")
    >>> tuple(spec.options), spec.options["temperature"].default
    (('weight', 'temperature', 'logit_scale'), 1.0)
    >>> spec.check_options({"temperature": 2})
    {'temperature': 2.0}
"""

from __future__ import annotations

import inspect
import numbers
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ._checks import OptionRule
from .baselines import KLDistiller, MAFTDistiller, MAFTPlusDistiller, NoDistiller
from .distiller import Distiller
from .losses import InfoCLIPLoss

__all__ = [
    "DISTILLERS",
    "AlignmentMap",
    "DistillerOption",
    "DistillerSpec",
    "distiller_names",
    "distiller_spec",
    "make_distiller",
    "register_distiller",
]


@dataclass(frozen=True)
class AlignmentMap:
    """A pixel-text alignment a distiller can draw, for figures.

    Attributes:
        title: what the map is (a figure's column title), e.g. ``"LPAM alignment R"``.
        compute: ``compute(distiller, visual, text)`` with dense visual features ``(B, d, H, W)`` or
            ``(B, HW, d)`` and class embeddings ``(N_C, d)``; returns ``(B, HW, N_C)``.
    """

    title: str
    compute: Callable[[Distiller, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DistillerOption:
    """One keyword option of a distiller's constructor.

    Attributes:
        name: the keyword.
        annotation: its type (``float``, ``bool``, ``Sequence[int]``, ``Literal[...]``, ...).
        default: the constructor's default.
        rule: the `OptionRule` attached to the annotation, if any.
    """

    name: str
    annotation: Any
    default: Any
    rule: OptionRule | None = None

    @property
    def expected(self) -> str:
        """What a value must be, in words."""
        return self.rule.expected if self.rule is not None else _describe(self.annotation)

    def check(self, value: object) -> Any:
        """``value`` as the distiller would store it; ``TypeError``/``ValueError`` naming the option."""
        if self.rule is not None:
            return self.rule.check(self.name, value)
        if not _matches(value, self.annotation):
            # a value outside a list of allowed values is a wrong value, anything else a wrong type
            error = ValueError if typing.get_origin(self.annotation) is Literal else TypeError
            raise error(f"{self.name} must be {self.expected}; got {value!r}")
        return value


@dataclass(frozen=True)
class DistillerSpec:
    """Everything known about one distiller, read from its class (see the module docstring).

    Attributes:
        name: the registry name (the class's ``name``).
        cls: the `Distiller` subclass; ``cls(embed_dim, **options)`` builds one.
        summary: the first paragraph of the class docstring.
        options: the constructor's keyword options by name.
        extra_inputs: the optional forward inputs it reads (`Distiller.extra_inputs`).
        alignment: the alignment map it exposes for figures, or ``None``.
    """

    name: str
    cls: type[Distiller]
    summary: str
    options: Mapping[str, DistillerOption]
    extra_inputs: tuple[str, ...]
    alignment: AlignmentMap | None = None

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check option names and values against the constructor's signature (nothing is built).

        Args:
            options: keyword options for ``cls``.

        Returns:
            The options as the distiller stores them (e.g. numbers as ``float``).

        Raises:
            TypeError: an option this distiller does not take (the message lists those it takes), or a
                value of the wrong type.
            ValueError: a value out of range, or not one of an option's allowed values (``Literal``).
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            takes = ", ".join(
                f"{o.name} ({o.expected}, default {o.default!r})" for o in self.options.values()
            )
            raise TypeError(
                f"distiller {self.name!r} takes no option(s) {unknown}; it takes: {takes or 'no options'}"
            )
        return {key: self.options[key].check(value) for key, value in options.items()}

    def build(self, embed_dim: int, **options: Any) -> Distiller:
        """``cls(embed_dim, **options)``: a distiller for CLIP's joint embedding width ``embed_dim``."""
        self.check_options(options)
        return self.cls(embed_dim, **options)


#: The registered distillers by name (`register_distiller`; `make_distiller` builds one).
DISTILLERS: dict[str, DistillerSpec] = {}


def _split_annotated(annotation: Any) -> tuple[Any, OptionRule | None]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, next((e for e in extras if isinstance(e, OptionRule)), None)
    return annotation, None


def _options_of(cls: type[Distiller]) -> dict[str, DistillerOption]:
    """The keyword-only parameters of ``cls.__init__`` (after ``embed_dim``) as options."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    options = {}
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        annotation, rule = _split_annotated(hints.get(param.name, Any))
        options[param.name] = DistillerOption(param.name, annotation, param.default, rule)
    return options


def _describe(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Sequence, list, tuple) and args:
        plural = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(args[0], _describe(args[0]))}"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _matches(value: object, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if origin is Literal:
        return value in args
    if origin in (Sequence, list, tuple):
        return isinstance(value, list | tuple) and all(_matches(v, args[0] if args else Any) for v in value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def register_distiller(
    cls: type[Distiller], *, alignment: AlignmentMap | None = None, replace: bool = False
) -> DistillerSpec:
    """Make a `Distiller` subclass known by its ``name`` (to `make_distiller`, trainers and configs).

    Args:
        cls: the class; its ``name``, constructor signature and ``extra_inputs`` describe it.
        alignment: the pixel-text alignment it can draw for figures, if any.
        replace: allow replacing a registered distiller of the same name.

    Returns:
        Its `DistillerSpec`.

    Raises:
        ValueError: the name is taken (and ``replace`` is false).
        TypeError: ``cls`` is not a `Distiller` subclass.
    """
    if not (isinstance(cls, type) and issubclass(cls, Distiller)):
        raise TypeError(f"register_distiller needs a Distiller subclass; got {cls!r}")
    if cls.name in DISTILLERS and not replace:
        raise ValueError(
            f"a distiller named {cls.name!r} is registered already; pass replace=True to replace it"
        )
    doc = inspect.getdoc(cls) or ""
    spec = DistillerSpec(
        name=cls.name,
        cls=cls,
        summary=" ".join(doc.split("\n\n")[0].split()),
        options=_options_of(cls),
        extra_inputs=tuple(cls.extra_inputs),
        alignment=alignment,
    )
    DISTILLERS[cls.name] = spec
    return spec


def distiller_names() -> tuple[str, ...]:
    """The registered distiller names, in registration order."""
    return tuple(DISTILLERS)


def distiller_spec(name: str) -> DistillerSpec:
    """The `DistillerSpec` of a registered distiller.

    Raises:
        ValueError: no distiller has that name (the message lists the names).
    """
    if name not in DISTILLERS:
        raise ValueError(f"unknown distiller {name!r}; choose one of {list(DISTILLERS)}")
    return DISTILLERS[name]


def make_distiller(name: str, embed_dim: int, **kwargs: Any) -> Distiller:
    """Build a distiller by name: ``"none"``, ``"infoclip"``, ``"kl"``, ``"maft"`` or ``"maftplus"``.

    Args:
        name: a registered name (`distiller_names`).
        embed_dim: CLIP's joint embedding width ``d``.
        **kwargs: the chosen class's options (e.g. ``lambda_compress`` for ``"infoclip"``, ``temperature``
            for ``"kl"``, ``weight`` for the baselines; `DistillerSpec.options`).

    Returns:
        A `infoclip.distiller.Distiller` (an ``nn.Module``) returning a `infoclip.DistillationOutput`.

    Raises:
        ValueError: unknown name, or an option value out of range.
        TypeError: an option the chosen distiller does not take, or a value of the wrong type.

    Example:
        >>> from infoclip import make_distiller
        >>> type(make_distiller("infoclip", 512, gram_over="tokens")).__name__
        'InfoCLIPLoss'
    """
    return distiller_spec(name).build(embed_dim, **kwargs)


def _lpam_alignment(distiller: Distiller, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    assert isinstance(distiller, InfoCLIPLoss)
    return distiller.lpam(visual, text)


register_distiller(NoDistiller)
register_distiller(InfoCLIPLoss, alignment=AlignmentMap("LPAM alignment R", _lpam_alignment))
register_distiller(KLDistiller)
register_distiller(MAFTDistiller)
register_distiller(MAFTPlusDistiller)
