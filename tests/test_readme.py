"""The README's code runs as written, and CI runs the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quickstart_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README.md has no python block"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["a"].shape == (256, 256)


def test_ci_runs_the_readme_test_command() -> None:
    match = re.search(
        r"<!-- test-command -->\s*```bash\n(.*?)```\s*<!-- /test-command -->", README, flags=re.S
    )
    assert match, "README.md must mark its test command with <!-- test-command --> markers"
    assert "pytest" in match.group(1)
    assert "test-command" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_demo_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "renyi_demo.py"), "--n", "64"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "I_2.0 = -0.0391" in out  # the negative mutual information of the brief's counterexample
