"""The OVSS example is importable the standard way: no sys.path edits, a package of its own (issue 12, F)."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _touches_sys_path(tree: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Attribute)
        and n.attr == "path"
        and isinstance(n.value, ast.Name)
        and n.value.id == "sys"
        for n in ast.walk(tree)
    )


def test_no_sys_path_manipulation_in_examples():
    offenders = [
        str(p.relative_to(ROOT))
        for p in EXAMPLES.rglob("*.py")
        if _touches_sys_path(ast.parse(p.read_text(encoding="utf-8")))
    ]
    offenders += [
        str(p.relative_to(ROOT))
        for pattern in ("*.md", "*.sh", "*.toml", "*.yaml")
        for p in EXAMPLES.rglob(pattern)
        if "sys.path" in p.read_text(encoding="utf-8")
    ]
    assert not offenders, f"sys.path manipulation in {offenders}"


def test_example_package_metadata():
    meta = tomllib.loads((EXAMPLES / "ovss" / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = meta["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["ovss"]
    assert wheel["dev-mode-exact"] is True  # an editable install exposes `ovss` only, not the scripts
    assert meta["project"]["dependencies"] == ["renyi-info[ovss]"]  # one dependency list: the root extra
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ovss" in root["project"]["optional-dependencies"]


def test_install_commands_install_the_example_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert '-e ".[ovss]" -e examples/ovss && python examples/ovss/train.py' in readme
    assert "-e examples/ovss" in (ROOT / ".ci" / "install_deps.sh").read_text(encoding="utf-8")
    assert "-e examples/ovss" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])  # predict.py: test_ovss_predict
def test_scripts_import_the_package_next_to_them(tmp_path, script):
    pytest.importorskip("open_clip")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # nothing points at examples/ovss
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / "ovss" / script), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "usage:" in res.stdout


def test_wheel_holds_the_package_and_its_data(tmp_path):
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed (pip builds the package in an isolated environment)")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(EXAMPLES / "ovss"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ovss/__init__.py" in names and "ovss/classes/coco.json" in names
    assert "ovss/model_configs/ovss-tiny.json" in names
    assert not any(n.startswith(("train", "predict", "scripts/")) for n in names)
