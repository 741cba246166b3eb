"""The docstring examples of every ``renyi_info`` module run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import renyi_info
from renyi_info import matrix

MODULES = sorted(m.name for m in pkgutil.walk_packages(renyi_info.__path__, prefix="renyi_info."))


def test_modules_are_discovered() -> None:
    assert {"renyi_info.features", "renyi_info.matrix", "renyi_info.kernels"} <= set(MODULES)


@pytest.mark.parametrize("name", ["renyi_info", *MODULES])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"


def _public_callables() -> list[tuple[str, object]]:
    out = []
    for prefix, namespace in (("renyi_info", renyi_info), ("renyi_info.matrix", matrix)):
        for name in namespace.__all__:
            obj = getattr(namespace, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                out.append((f"{prefix}.{name}", obj))
    return out


@pytest.mark.parametrize(("name", "obj"), _public_callables(), ids=[n for n, _ in _public_callables()])
def test_public_api_has_a_runnable_example(name: str, obj: object) -> None:
    doc = inspect.getdoc(obj) or ""
    assert ">>>" in doc, f"{name} has no docstring example"
    assert doctest.DocTestFinder().find(obj, name, globs={}), name
