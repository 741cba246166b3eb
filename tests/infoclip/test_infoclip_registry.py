"""The distiller registry: names, options read from the constructors, option checks that agree with the
constructors, extra inputs and the alignment map exposed for figures."""

from __future__ import annotations

import inspect
import math
from typing import Any, Literal

import pytest
import torch

from infoclip import (
    DISTILLERS,
    AlignmentMap,
    InfoCLIPLoss,
    KLDistiller,
    MAFTDistiller,
    distiller_names,
    distiller_spec,
    make_distiller,
    register_distiller,
)

#: Values for every option of every built-in distiller: some valid, some invalid (wrong type or range).
PROBES: dict[str, list[Any]] = {
    "lambda_compress": [0.0, 1, 2.5, -1.0, math.inf, "1", True],
    "lambda_distill": [0.5, -0.1, None],
    "alpha": [2, 1.01, 0.0, -2.0, "two"],
    "base": [2.0, math.e, 1.0, 0.0, "2"],
    "gram_over": ["batch", "tokens", "pixels", 3],
    "gather": [True, False, 1, "yes"],
    "text_templates": [True, 0],
    "weight": [0.1, 0, -0.5, math.nan, "w"],
    "temperature": [2.0, 0.0, -1.0],
    "logit_scale": [100, 0.0, math.inf],
    "scales": [(1, 2, 4), [1, 2], [1.5], "124", [True]],
    "include_dense": [True, "no"],
    # estimator='mi' (the default) refuses any pairing option: probe only values judged alone
    "estimator": ["mi", "dime", "kl", 2],
    "permutations": [None, 0, -3, "some", 1.5, True],
    "seed": [0, 7, None, "0", 1.0, False],
}


def test_the_built_in_distillers_in_order():
    assert distiller_names()[:5] == ("none", "infoclip", "kl", "maft", "maftplus")
    for name in distiller_names():
        spec = distiller_spec(name)
        assert spec.name == name == spec.cls.name
        assert type(make_distiller(name, 8)) is spec.cls
    with pytest.raises(ValueError, match=r"unknown distiller 'kd'.*'maftplus'"):
        distiller_spec("kd")


@pytest.mark.parametrize("name", distiller_names())
def test_options_are_the_constructor_keywords_with_their_defaults(name):
    spec = distiller_spec(name)
    params = inspect.signature(spec.cls.__init__).parameters
    expected = {p.name: p.default for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert {k: o.default for k, o in spec.options.items()} == expected
    assert set(spec.options) <= set(PROBES), "add probe values for a new option"


@pytest.mark.parametrize("name", [n for n in distiller_names() if distiller_spec(n).options])
def test_check_options_agrees_with_the_constructor(name):
    """A probe value the constructor refuses, `check_options` refuses with the same exception type (without
    building anything); a value `check_options` accepts, the constructor accepts. `check_options` is
    stricter only where a constructor coerces: a flag must be a bool (``bool("no")`` would be true)."""
    spec = distiller_spec(name)
    for option in spec.options:
        for value in PROBES[option]:
            try:
                spec.cls(8, **{option: value})
                built: type[Exception] | None = None
            except (TypeError, ValueError) as exc:
                built = type(exc)
            try:
                spec.check_options({option: value})
                checked: type[Exception] | None = None
            except (TypeError, ValueError) as exc:
                checked = type(exc)
                assert option in str(exc), (option, value, str(exc))
            if built is not None or checked is None:
                assert checked == built, (name, option, value, checked, built)
            else:  # refused by the check alone
                flag = spec.options[option].annotation is bool
                wrong_list = option == "scales"  # checked by the loss when it runs
                assert checked is TypeError and (flag or wrong_list), (name, option, value)


def test_check_options_returns_the_stored_values():
    assert distiller_spec("infoclip").check_options({"alpha": 2, "lambda_compress": 1}) == {
        "alpha": 2.0,
        "lambda_compress": 1.0,
    }
    assert distiller_spec("maftplus").check_options({"scales": [1, 2]}) == {"scales": [1, 2]}
    with pytest.raises(TypeError, match=r"scales must be a list of integers; got \[1\.5\]"):
        distiller_spec("maftplus").check_options({"scales": [1.5]})


def test_unknown_option_lists_what_the_distiller_takes():
    with pytest.raises(TypeError) as info:
        distiller_spec("kl").check_options({"lambda_compress": 1.0})
    msg = str(info.value)
    assert "'kl'" in msg and "lambda_compress" in msg
    for option in ("weight", "temperature", "logit_scale"):
        assert option in msg
    with pytest.raises(TypeError, match="takes no option"):
        make_distiller("none", 8, weight=1.0)


def test_extra_inputs_come_from_the_class():
    assert distiller_spec("maft").extra_inputs == MAFTDistiller.extra_inputs
    assert distiller_spec("infoclip").extra_inputs == ()


def test_only_infoclip_exposes_an_alignment_map_and_it_is_lpams():
    exposed = {name: distiller_spec(name).alignment for name in distiller_names()}
    assert {n for n, a in exposed.items() if a is not None} == {"infoclip"}
    alignment = exposed["infoclip"]
    assert alignment is not None and "LPAM" in alignment.title
    torch.manual_seed(0)
    distiller = make_distiller("infoclip", 8)
    visual, text = torch.randn(2, 8, 3, 3), torch.randn(4, 8)
    got = alignment.compute(distiller, visual, text)
    assert got.shape == (2, 9, 4)
    torch.testing.assert_close(got, distiller.lpam(visual, text), rtol=0, atol=0)


def test_a_new_constructor_option_is_picked_up_from_the_signature():
    class WithEstimator(KLDistiller):
        name = "kl_test_estimator"

        def __init__(self, embed_dim: int, *, estimator: Literal["mi", "dime"] = "mi", weight: float = 1.0):
            super().__init__(embed_dim, weight=weight)
            self.estimator = estimator

    try:
        spec = register_distiller(WithEstimator)
        assert distiller_names()[-1] == "kl_test_estimator"
        assert spec.options["estimator"].default == "mi"
        assert spec.check_options({"estimator": "dime"}) == {"estimator": "dime"}
        with pytest.raises(ValueError, match=r"estimator must be one of 'mi', 'dime'; got 'renyi'"):
            spec.check_options({"estimator": "renyi"})
        assert make_distiller("kl_test_estimator", 8, estimator="dime").estimator == "dime"
        with pytest.raises(ValueError, match="registered already"):
            register_distiller(WithEstimator)
        again = register_distiller(
            WithEstimator, alignment=AlignmentMap("logits", lambda d, v, t: v), replace=True
        )
        assert distiller_spec("kl_test_estimator") is again
    finally:
        DISTILLERS.pop("kl_test_estimator", None)
    assert "kl_test_estimator" not in distiller_names()


def test_register_distiller_needs_a_distiller_class():
    with pytest.raises(TypeError, match="Distiller subclass"):
        register_distiller(torch.nn.Linear)  # type: ignore[arg-type]
    assert isinstance(make_distiller("infoclip", 8), InfoCLIPLoss)
