"""The infoclip guide's code runs as written, and the docstring examples of the package hold."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "infoclip.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_guide_code_blocks_run_as_written(capsys):
    blocks = _python_blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) >= 2
    namespace: dict = {"__name__": "__guide__"}
    for block in blocks:  # later blocks continue the earlier ones, as a reader would run them
        exec(compile(block, str(GUIDE), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "step 2:" in printed and "maftplus" in printed
    assert "nan" not in printed.lower()


def test_guide_has_mmseg_section():
    assert re.search(r"^## mmsegmentation$", GUIDE.read_text(encoding="utf-8"), flags=re.MULTILINE)


@pytest.mark.parametrize(
    "module",
    ["infoclip.lpam", "infoclip.losses", "infoclip.baselines", "infoclip.distiller", "infoclip.distributed"],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_import_infoclip_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, infoclip, infoclip.integrations; "
        "bad = [m for m in ('mmseg', 'mmengine', 'mmcv', 'open_clip') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
