"""The documentation builds strictly and renders every docstring's maths (no raw reStructuredText)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: reStructuredText that the Markdown renderer would show verbatim: maths roles and directives, and the
#: cross-reference roles (docstrings use $...$, $$...$$ and `name` instead).
RAW_REST = re.compile(r":(math|func|class|mod|meth|attr|data|obj|exc):`|\.\. math::")

#: Pages generated from examples/ovss, whose docstrings are converted by the examples/ovss work
#: (issue 10, requirement 5); drop the entry once they are.
NOT_YET_CONVERTED: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.skip("mkdocs/mkdocstrings are not installed (pip install 'renyi-info[docs]')")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return out


def test_api_pages_render_maths(site: Path) -> None:
    for page in ("api/renyi_info/index.html", "api/infoclip/index.html", "architecture/index.html"):
        assert (site / page).is_file(), f"{page} was not built"
    api = (site / "api/renyi_info/index.html").read_text(encoding="utf-8")
    # MathJax input, inline and displayed, produced by pymdownx.arithmatex from $...$ and $$...$$
    assert '<span class="arithmatex">' in api and '<div class="arithmatex">' in api


def test_no_raw_rest_in_any_page(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert pages
    raw = []
    for page in pages:
        rel = page.relative_to(site).as_posix()
        if rel.startswith(NOT_YET_CONVERTED):
            continue
        for m in RAW_REST.finditer(page.read_text(encoding="utf-8")):
            raw.append(f"{rel}: {m.group(0)}")
    assert not raw, "raw reStructuredText in the built site:\n" + "\n".join(raw[:50])
