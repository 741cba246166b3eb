"""Import an example's script (a file run as ``python examples/.../x.py``, not a package module) in a test."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_script(path: Path, module_name: str | None = None) -> ModuleType:
    """The module of the script at ``path``, executed once under ``module_name`` (default: from its path)."""
    name = module_name or "_script_" + "_".join(path.relative_to(EXAMPLES).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ovss_script(name: str) -> ModuleType:
    """``examples/ovss/<name>.py`` (train, evaluate, predict, ...)."""
    return load_script(EXAMPLES / "ovss" / f"{name}.py", f"_ovss_script_{name}")
