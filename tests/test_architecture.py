"""The layering of src/renyi_info and src/infoclip (docs/architecture.md), checked from the source.

Every module's imports (top-level and lazy ones inside functions) are read with ``ast`` and compared with
the declared layer table: a module may import modules of its own layer or of lower layers only, the
import graph has no cycle, and infoclip uses nothing of renyi_info but its public names.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import torch

SRC = Path(__file__).resolve().parents[1] / "src"

#: Layers from the bottom up (docs/architecture.md). A module may import its own layer and the ones below.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"renyi_info.types", "renyi_info._validation", "renyi_info._units"}),
    ("kernels", {"renyi_info.bandwidths", "renyi_info.kernels"}),
    (
        "algorithms",
        {
            "renyi_info.algorithms",
            "renyi_info.algorithms.exact",
            "renyi_info.algorithms.lanczos",
            "renyi_info.algorithms.lanczos.options",
            "renyi_info.algorithms.lanczos.operators",
            "renyi_info.algorithms.lanczos.quadrature",
            "renyi_info.algorithms.lanczos.gradient",
            "renyi_info.algorithms.lanczos.estimator",
            "renyi_info.algorithms.fused",
            "renyi_info.algorithms.triton_tiles",
            "renyi_info.algorithms.routes",
            "renyi_info.algorithms.petz",
            "renyi_info.algorithms.pairings",
        },
    ),
    ("quantities", {"renyi_info.gram_level"}),
    (
        "front doors",
        {
            "renyi_info._inputs",
            "renyi_info._front_door",
            "renyi_info.features",
            "renyi_info.estimates",
            "renyi_info.dependence",
            "renyi_info.matrix",
        },
    ),
    ("tools", {"renyi_info.information_plane", "renyi_info.layerwise", "renyi_info.hf"}),
    ("package", {"renyi_info"}),
    (
        "infoclip",
        {
            "infoclip._checks",
            "infoclip.distiller",
            "infoclip.distributed",
            "infoclip.lpam",
            "infoclip.losses",
            "infoclip.baselines",
            "infoclip.registry",
            "infoclip.integrations",
            "infoclip.integrations.mmseg",
            "infoclip",
        },
    ),
]
LAYER_OF = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}
#: The modules whose ``__all__`` is renyi_info's public API (what infoclip may import).
PUBLIC_MODULES = ("renyi_info", "renyi_info.matrix", "renyi_info.gram_level")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULE_FILES = {
    _module_name(p): p for pkg in ("renyi_info", "infoclip") for p in sorted((SRC / pkg).rglob("*.py"))
}


def _is_package(module: str) -> bool:
    return MODULE_FILES[module].name == "__init__.py"


def _imports(module: str) -> list[tuple[str, str | None]]:
    """``(imported module, imported name or None)`` for every import statement, nested ones included."""
    tree = ast.parse(MODULE_FILES[module].read_text(encoding="utf-8"))
    package = module if _is_package(module) else module.rpartition(".")[0]
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                # ``from pkg import submodule`` imports the submodule; ``from mod import name`` the module
                out.append((sub, None) if sub in MODULE_FILES else (target, alias.name))
    return out


def _internal_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULE_FILES}
    for module in MODULE_FILES:
        for target, _ in _imports(module):
            if target in MODULE_FILES and target != module:
                edges[module].add(target)
    return edges


def test_every_module_has_a_declared_layer() -> None:
    undeclared = sorted(set(MODULE_FILES) - set(LAYER_OF))
    assert not undeclared, f"add these modules to LAYERS (and to docs/architecture.md): {undeclared}"
    missing = sorted(set(LAYER_OF) - set(MODULE_FILES))
    assert not missing, f"LAYERS names modules that do not exist: {missing}"


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{m} ({LAYERS[LAYER_OF[m]][0]}) imports {t} ({LAYERS[LAYER_OF[t]][0]})"
        for m, targets in _internal_edges().items()
        for t in targets
        if LAYER_OF[t] > LAYER_OF[m]
    ]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    edges = _internal_edges()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_infoclip_imports_only_public_renyi_info_names() -> None:
    public = {name: set(importlib.import_module(name).__all__) for name in PUBLIC_MODULES}
    bad = []
    for module in (m for m in MODULE_FILES if m.split(".")[0] == "infoclip"):
        for target, name in _imports(module):
            if target.split(".")[0] != "renyi_info":
                continue
            if target not in public:
                bad.append(f"{module} imports the non-public module {target}")
            elif name is not None and name not in public[target]:
                bad.append(f"{module} imports {target}.{name}, which is not in {target}.__all__")
    assert not bad, "\n".join(bad)


def test_the_parser_sees_lazy_imports() -> None:
    # the test is only as good as its parser: a function-level import must be found
    imports = _imports("renyi_info.algorithms.fused")
    assert ("renyi_info.algorithms.triton_tiles", None) in imports


def test_features_are_validated_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bandwidth rule no longer re-validates the features the public door already checked."""
    import renyi_info
    from renyi_info import _inputs, bandwidths

    calls = {"door": 0, "bandwidths": 0}

    def spy(where: str, real):
        def wrapped(*args, **kwargs):
            calls[where] += 1
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(_inputs, "check_features", spy("door", _inputs.check_features))
    monkeypatch.setattr(bandwidths, "check_features", spy("bandwidths", bandwidths.check_features))
    x = torch.randn(3, 20, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    renyi_info.mutual_information(x, x[..., :2], kernel="gaussian", sigma="median", method="eig")
    assert calls == {"door": 2, "bandwidths": 0}  # one check per input at the door, none below it
    renyi_info.bandwidth(x)  # the public bandwidth() is a door of its own
    assert calls["bandwidths"] == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda x: __import__("renyi_info").conditional_entropy(x, x, method="lanczos"),
        lambda x: __import__("renyi_info").conditional_mutual_information(x, x, x, method="lanczos"),
        lambda x: __import__("renyi_info").total_correlation(x, x, method="lanczos"),
        lambda x: __import__("renyi_info").matrix.conditional_entropy(x @ x.mT, x @ x.mT, method="lanczos"),
    ],
    ids=["conditional_entropy", "conditional_mutual_information", "total_correlation", "matrix"],
)
def test_derived_quantities_refuse_lanczos(call) -> None:
    """Their docstrings list the exact methods only: method='lanczos' is an error that says what to do."""
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=r"method='lanczos' is not available here.*exact method"):
        call(x)
