"""The shared front door (`renyi_info._front_door`): one Args text, one preparation, one route choice."""

from __future__ import annotations

import inspect
import pydoc
import re
from collections.abc import Sequence

import pytest
import torch

import renyi_info
from renyi_info import _front_door, dependence, estimates, features, matrix

PUBLIC = [
    getattr(module, name)
    for module in (features, matrix, estimates, dependence)
    for name in module.__all__
    if name in _front_door.QUANTITIES
]


def test_every_public_quantity_goes_through_the_door() -> None:
    names = {f"{f.__module__}.{f.__name__}" for f in PUBLIC}
    assert len(PUBLIC) == 19, names  # 17 quantities of features/matrices/estimates + DiME's two doors


@pytest.mark.parametrize("fn", PUBLIC, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_each_parameter_is_documented_once_in_signature_order(fn) -> None:
    doc = fn.__doc__
    args = doc[doc.index("    Args:\n") :].split("\n\n")[0].splitlines()[1:]
    documented = [m.group(1).lstrip("*") for line in args if (m := re.match(r"^ {8}(\*{0,2}\w+): ", line))]
    assert documented == list(inspect.signature(fn).parameters)
    # what help() prints is that docstring, shared entries included
    text = pydoc.render_doc(fn, renderer=pydoc.plaintext)
    assert "compute_dtype: ``torch.float32`` or ``torch.float64``" in text


def test_a_parameter_documented_nowhere_is_an_error_at_import() -> None:
    def entropy(
        x: torch.Tensor, *, alpha: float | Sequence[float] | torch.Tensor = 2.0, colour: str = "red"
    ) -> torch.Tensor:
        """Summary.

        Args:
            x: features.
        """
        raise AssertionError

    with pytest.raises(TypeError, match="parameter 'colour' is documented neither"):
        _front_door.front_door("features")(entropy)


@pytest.mark.parametrize("fn", PUBLIC, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_every_signature_restates_the_shared_options_exactly(fn) -> None:
    params = inspect.signature(fn).parameters
    kind = _front_door.QUANTITIES[fn.__name__].kind
    several = _front_door._several(params)
    options = [p for p in params.values() if p.name in _front_door.OPTIONS + _front_door.OWN_ARGUMENTS]
    assert options, fn
    for p in options:
        assert p.kind is p.KEYWORD_ONLY
        assert (str(p.annotation), p.default) == _front_door._expected(p.name, kind, several), p.name


@pytest.mark.parametrize(
    ("option", "declared"),
    [
        ("base", "base: float = math.e"),
        ("method", 'method: str = "auto"'),
        ("kernel", 'kernel: KernelArg = "cosine"'),
    ],
)
def test_a_signature_that_drifts_is_an_error_at_import(option: str, declared: str) -> None:
    source = f"""
from __future__ import annotations
import math


def entropy(x, *, alpha: float | Sequence[float] | torch.Tensor = 2.0, {declared}):
    \"\"\"Summary.

    Args:
        x: features.
    \"\"\"
"""
    namespace: dict = {}
    exec(source, namespace)  # a door written with one option restated differently
    with pytest.raises(TypeError, match=rf"option '{option}' is declared as .*_front_door.SIGNATURE"):
        _front_door.front_door("features")(namespace["entropy"])


def test_the_route_choice_is_the_resolved_method() -> None:
    """method='lanczos' is the stochastic estimate (the same number as the *_estimate value, same generator);
    any other method the exact evaluation."""
    x = torch.randn(60, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.randn(60, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def opts() -> renyi_info.LanczosOptions:
        return renyi_info.LanczosOptions(generator=torch.Generator().manual_seed(5))

    slq = renyi_info.mutual_information(x, y, alpha=1.5, method="lanczos", lanczos=opts())
    est = renyi_info.mutual_information_estimate(x, y, alpha=1.5, lanczos=opts())
    assert torch.equal(slq, est.value)  # the same computation, bit for bit
    exact = renyi_info.mutual_information(x, y, alpha=1.5, method="eig")
    a, b = renyi_info.gram(x), renyi_info.gram(y)
    # the exact route of features (here the dual one, n > d) against the spectra of the Grams: float64 round-off
    ref = renyi_info.matrix.mutual_information(a, b, alpha=1.5, method="eig")
    torch.testing.assert_close(exact, ref, rtol=1e-10, atol=1e-12)
    assert not torch.equal(slq, exact)


@pytest.mark.parametrize(
    "call, what",
    [
        (lambda: renyi_info.joint_entropy(), "joint_entropy needs at least one feature tensor"),
        (lambda: renyi_info.total_correlation(), "total_correlation needs at least one feature tensor"),
        (lambda: renyi_info.matrix.joint_entropy(), "joint_entropy needs at least one matrix"),
        (
            lambda: renyi_info.joint_entropy_estimate(),
            "joint_entropy_estimate needs at least one feature tensor",
        ),
    ],
)
def test_no_input_is_refused_by_name(call, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        call()
